// Exact float conversions and ggml reference block quantizers.
// Compiled with contraction off: numpy/ggml compute x*id and +8.5 as two roundings.
#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"
#include <math.h>
#include <string.h>

// Hot loops are compiled for AVX-512, AVX2 and baseline x86-64, picked at load time (ifunc). Not under
// ThreadSanitizer: its instrumented ifunc resolvers would run before the sanitizer runtime is initialised.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LFM_NO_CLONES 1
#endif
#endif
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__) && !defined(LFM_NO_CLONES)
#define LFM_CLONES __attribute__((target_clones("avx512bw", "avx2", "default")))
#else
#define LFM_CLONES
#endif

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t lfm_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u) { // inf or nan
        if (absu > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((absu >> 13) & 0x3ffu);
        return sign | 0x7c00u;
    }
    if (absu >= 0x477ff000u) return sign | 0x7c00u; // rounds to >= 65520 -> inf
    if (absu < 0x38800000u) {                       // result is subnormal or zero in half precision
        if (absu < 0x33000000u) return sign;        // < 2^-25 rounds to 0 (ties to even: exactly 2^-25 -> 0)
        uint32_t exp = absu >> 23;                  // 102..112
        uint32_t mant = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exp; // 14..24
        uint32_t halfm = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (halfm & 1u))) halfm += 1u;
        return sign | (uint16_t)halfm;
    }
    // normal: rebias exponent and round mantissa from 23 to 10 bits
    uint32_t r = absu - 0x38000000u; // exponent rebias (127-15)<<23
    uint32_t halfm = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (halfm & 1u))) halfm += 1u;
    return sign | (uint16_t)halfm;
}

float lfm_f16_to_f32(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: value = mant * 2^-24
        float v = (float)mant * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t lfm_f32_to_bf16(float x) {
    uint32_t n = f32_bits(x);
    if ((n & 0x7fffffffu) > 0x7f800000u) {
        n = (n & 0xffff0000u) | (64u << 16);
        return (uint16_t)(n >> 16);
    }
    uint64_t r = ((uint64_t)n + (0x7fffu + ((n >> 16) & 1u))) >> 16;
    return (uint16_t)r;
}

float lfm_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

void lfm_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = lfm_f32_to_f16(src[i]);
}
void lfm_convert_f32_to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = lfm_f32_to_bf16(src[i]);
}
void lfm_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = lfm_f16_to_f32(src[i]);
}
LFM_CLONES
void lfm_convert_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)src[i] << 16);
}

// roundf (half away from zero) without a libm call, so the loop vectorizes: v - trunc(v) is exact.
static inline float round_half_away(float v) {
    float t = __builtin_truncf(v);
    float f = v - t;
    t += (f >= 0.5f) ? 1.0f : 0.0f;
    t -= (f <= -0.5f) ? 1.0f : 0.0f;
    return t;
}

LFM_CLONES
void lfm_quantize_q8_0(const float *src, uint8_t *dst, size_t n) {
    size_t nb = n / LFM_QK8_0;
    for (size_t b = 0; b < nb; b++) {
        const float *x = src + b * LFM_QK8_0;
        uint8_t *y = dst + b * LFM_Q8_0_BYTES;
        float amax = 0.0f;
        for (int j = 0; j < LFM_QK8_0; j++) {
            float v = fabsf(x[j]);
            amax = v > amax ? v : amax;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = lfm_f32_to_f16(d);
        memcpy(y, &dh, 2);
        int8_t *qs = (int8_t *)(y + 2);
        int8_t q[LFM_QK8_0];
        for (int j = 0; j < LFM_QK8_0; j++) q[j] = (int8_t)round_half_away(x[j] * id);
        memcpy(qs, q, LFM_QK8_0);
    }
}

LFM_CLONES
void lfm_quantize_q4_0(const float *src, uint8_t *dst, size_t n) {
    size_t nb = n / LFM_QK4_0;
    for (size_t b = 0; b < nb; b++) {
        const float *x = src + b * LFM_QK4_0;
        uint8_t *y = dst + b * LFM_Q4_0_BYTES;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < LFM_QK4_0; j++) {
            float v = x[j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = lfm_f32_to_f16(d);
        memcpy(y, &dh, 2);
        uint8_t *qs = y + 2;
        for (int j = 0; j < LFM_QK4_0 / 2; j++) {
            float x0 = x[j] * id;
            float x1 = x[j + LFM_QK4_0 / 2] * id;
            float t0 = x0 + 8.5f, t1 = x1 + 8.5f;
            int q0 = (int)t0, q1 = (int)t1;
            if (q0 > 15) q0 = 15;
            if (q0 < 0) q0 = 0;
            if (q1 > 15) q1 = 15;
            if (q1 < 0) q1 = 0;
            qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void lfm_dequantize_q8_0(const uint8_t *src, float *dst, size_t n) {
    size_t nb = n / LFM_QK8_0;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *y = src + b * LFM_Q8_0_BYTES;
        uint16_t dh;
        memcpy(&dh, y, 2);
        float d = lfm_f16_to_f32(dh);
        const int8_t *qs = (const int8_t *)(y + 2);
        for (int j = 0; j < LFM_QK8_0; j++) dst[b * LFM_QK8_0 + j] = (float)qs[j] * d;
    }
}

void lfm_dequantize_q4_0(const uint8_t *src, float *dst, size_t n) {
    size_t nb = n / LFM_QK4_0;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *y = src + b * LFM_Q4_0_BYTES;
        uint16_t dh;
        memcpy(&dh, y, 2);
        float d = lfm_f16_to_f32(dh);
        const uint8_t *qs = y + 2;
        for (int j = 0; j < LFM_QK4_0 / 2; j++) {
            dst[b * LFM_QK4_0 + j] = (float)((int)(qs[j] & 0x0f) - 8) * d;
            dst[b * LFM_QK4_0 + j + 16] = (float)((int)(qs[j] >> 4) - 8) * d;
        }
    }
}
