// ggml's K-quant super-block types Q4_K, Q5_K and Q6_K (256 elements per block): the reference quantizers (no
// importance weights) and dequantizers, written from the layouts and algorithms of ggml-quants.c so that the bytes
// equal `llama-quantize --pure` and the floats equal `gguf.quants.dequantize`. Every float operation is kept in the
// reference's order with contraction off (no FMA), as the reference is compiled for baseline x86-64.
#pragma STDC FP_CONTRACT OFF
#include "internal.h"
#include <math.h>
#include <string.h>

// Round to nearest, ties to even, through the float mantissa (valid for |v| < 2^22): 1.5·2^23 added puts the
// integer in the low mantissa bits.
static inline int round_mantissa(float v) {
    float t = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = lfm_f32_to_f16(v);
    memcpy(p, &h, 2);
}
static inline float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lfm_f16_to_f32(h);
}

// Scale and offset for n values into [0, nmax] (an asymmetric group): a first guess from min..max, then nstep+1
// trial scales (nmax + rmin + rdelta·k over the range), each refitted by weighted least squares for scale and
// offset (offset clamped to ≤ 0), kept when its weighted squared error is lower. Returns the scale; *neg_min gets
// the negated offset. L receives the levels of the best fit.
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, uint8_t *tmp,
                        float rmin, float rdelta, int nstep) {
    float lo = x[0], hi = x[0];
    float sw = w[0];
    float swx = sw * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        float wi = w[i];
        sw += wi;
        swx += wi * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.f;
    }
    float inv = nmax / (hi - lo);
    float scale = 1 / inv;
    float err_best = 0;
    for (int i = 0; i < n; ++i) {
        int q = clampi(round_mantissa(inv * (x[i] - lo)), 0, nmax);
        L[i] = (uint8_t)q;
        float e = scale * L[i] + lo - x[i];
        err_best += w[i] * (e * e);
    }
    for (int k = 0; k <= nstep; ++k) {
        inv = (rmin + rdelta * k + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; ++i) {
            int q = clampi(round_mantissa(inv * (x[i] - lo)), 0, nmax);
            tmp[i] = (uint8_t)q;
            float wi = w[i];
            sl += wi * q;
            sl2 += wi * q * q;
            sxl += wi * q * x[i];
        }
        float det = sw * sl2 - sl * sl;
        if (!(det > 0)) continue;
        float s = (sw * sxl - swx * sl) / det;
        float m = (sl2 * swx - sl * sxl) / det;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; ++i) {
            float e = s * tmp[i] + m - x[i];
            err += w[i] * (e * e);
        }
        if (err < err_best) {
            memcpy(L, tmp, (size_t)n);
            err_best = err;
            scale = s;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

// Symmetric scale for n values into [-nmax, nmax-1] with x²-weighted least squares over 19 trial scales around
// -nmax/max (the signed value of largest magnitude). L receives level + nmax.
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            vmax = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float inv = -nmax / vmax;
    float sxl = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
        int q = clampi(round_mantissa(inv * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(q + nmax);
        float wi = x[i] * x[i];
        sxl += wi * x[i] * q;
        sl2 += wi * q * q;
    }
    float scale = sl2 ? sxl / sl2 : 0.0f;
    float best = scale * sxl;
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        inv = -(nmax + 0.1f * k) / vmax;
        sxl = sl2 = 0;
        for (int i = 0; i < n; ++i) {
            int q = clampi(round_mantissa(inv * x[i]), -nmax, nmax - 1);
            float wi = x[i] * x[i];
            sxl += wi * x[i] * q;
            sl2 += wi * q * q;
        }
        if (sl2 > 0 && sxl * sxl > best * sl2) {
            for (int i = 0; i < n; ++i) L[i] = (int8_t)(nmax + clampi(round_mantissa(inv * x[i]), -nmax, nmax - 1));
            scale = sxl / sl2;
            best = scale * sxl;
        }
    }
    return scale;
}

// The 12 bytes of 6-bit (scale, min) pairs of Q4_K/Q5_K: pairs 0-3 in the low 6 bits of bytes 0-3 / 4-7; pairs 4-7
// as nibbles of bytes 8-11 with their top 2 bits in the high bits of bytes 0-3 / 4-7.
void lfm_kq_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    int a, b;
    lfm_kq_sm(j, s, &a, &b);
    *sc = (uint8_t)a;
    *m = (uint8_t)b;
}

// Q4_K / Q5_K share everything but the level count and the search parameters.
static void quantize_affine_k(const float *x, uint8_t *blk, int nmax, float rmin, int nstep, uint8_t *L) {
    float sc[8], mn[8], w[32];
    uint8_t tmp[32];
    float top_sc = 0, top_mn = 0;
    for (int j = 0; j < 8; ++j) {
        const float *xj = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; ++l) s2 += xj[l] * xj[l];
        float rms = sqrtf(s2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = rms + fabsf(xj[l]);
        sc[j] = fit_affine(32, nmax, xj, w, L + 32 * j, &mn[j], tmp, rmin, 0.1f, nstep);
        if (sc[j] > top_sc) top_sc = sc[j];
        if (mn[j] > top_mn) top_mn = mn[j];
    }
    float is = top_sc > 0 ? 63.f / top_sc : 0.f;
    float im = top_mn > 0 ? 63.f / top_mn : 0.f;
    uint8_t *scales = blk + 4;
    memset(scales, 0, 12);
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = (uint8_t)round_mantissa(is * sc[j]), lm = (uint8_t)round_mantissa(im * mn[j]);
        if (ls > 63) ls = 63;
        if (lm > 63) lm = 63;
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    put_f16(blk, top_sc / 63.f);
    put_f16(blk + 2, top_mn / 63.f);
    float d = get_f16(blk), dmin = get_f16(blk + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        lfm_kq_scale_min(j, scales, &s, &m);
        float dj = d * s;
        if (!dj) continue;
        float mj = dmin * m;
        for (int l = 0; l < 32; ++l)
            L[32 * j + l] = (uint8_t)clampi(round_mantissa((x[32 * j + l] + mj) / dj), 0, nmax);
    }
}

void lfm_quantize_q4_k(const float *src, uint8_t *dst, size_t n) {
    uint8_t L[256];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q4_K_BYTES;
        quantize_affine_k(x, blk, 15, -1.f, 20, L);
        uint8_t *qs = blk + 16;
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    }
}

void lfm_quantize_q5_k(const float *src, uint8_t *dst, size_t n) {
    uint8_t L[256];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q5_K_BYTES;
        quantize_affine_k(x, blk, 31, -0.5f, 15, L);
        uint8_t *qh = blk + 16, *qs = blk + 48;
        memset(qh, 0, 32);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * g + l], c = L[64 * g + 32 + l];
                if (a > 15) qh[l] |= (uint8_t)(1 << (2 * g));
                if (c > 15) qh[l] |= (uint8_t)(2 << (2 * g));
                qs[32 * g + l] = (uint8_t)((a & 15) | ((c & 15) << 4));
            }
    }
}

void lfm_quantize_q6_k(const float *src, uint8_t *dst, size_t n) {
    int8_t L[256];
    float sc[16];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q6_K_BYTES;
        float top = 0, top_abs = 0;
        for (int j = 0; j < 16; ++j) {
            sc[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
            float a = fabsf(sc[j]);
            if (a > top_abs) {
                top_abs = a;
                top = sc[j];
            }
        }
        memset(blk, 0, LFM_Q6_K_BYTES);
        if (top_abs < 1e-15f) continue; // all zero: d = 0
        float inv = -128.f / top;
        put_f16(blk + 208, 1 / inv);
        int8_t *scales = (int8_t *)(blk + 192);
        for (int j = 0; j < 16; ++j) {
            int v = round_mantissa(inv * sc[j]);
            scales[j] = (int8_t)(v > 127 ? 127 : v);
        }
        float d = get_f16(blk + 208);
        for (int j = 0; j < 16; ++j) {
            float dj = d * scales[j];
            if (!dj) continue;
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = (int8_t)(clampi(round_mantissa(x[16 * j + l] / dj), -32, 31) + 32);
        }
        uint8_t *ql = blk, *qh = blk + 128;
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                int a = Lh[l], c = Lh[l + 32], e = Lh[l + 64], f = Lh[l + 96];
                ql[64 * h + l] = (uint8_t)((a & 15) | ((e & 15) << 4));
                ql[64 * h + l + 32] = (uint8_t)((c & 15) | ((f & 15) << 4));
                qh[32 * h + l] = (uint8_t)((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((f >> 4) << 6));
            }
        }
    }
}

void lfm_dequantize_q4_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q4_K_BYTES, *qs = blk + 16;
        float d = get_f16(blk), dmin = get_f16(blk + 2);
        float *y = dst + b * 256;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            lfm_kq_scale_min(j, blk + 4, &s, &m);
            float dj = d * s, mj = dmin * m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) y[32 * j + l] = dj * ((q[l] >> shift) & 15) - mj;
        }
    }
}

void lfm_dequantize_q5_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q5_K_BYTES, *qh = blk + 16, *qs = blk + 48;
        float d = get_f16(blk), dmin = get_f16(blk + 2);
        float *y = dst + b * 256;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            lfm_kq_scale_min(j, blk + 4, &s, &m);
            float dj = d * s, mj = dmin * m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4);
                y[32 * j + l] = dj * v - mj;
            }
        }
    }
}

void lfm_dequantize_q6_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q6_K_BYTES;
        const int8_t *sc = (const int8_t *)(blk + 192);
        float d = get_f16(blk + 208);
        float *y = dst + b * 256;
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            uint8_t lo = blk[64 * h + l + 32 * (k & 1)];
            int v = ((k < 2 ? lo : lo >> 4) & 15) | (((blk[128 + 32 * h + l] >> (2 * k)) & 3) << 4);
            y[e] = d * sc[8 * h + 2 * k + l / 16] * (v - 32);
        }
    }
}
