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

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = lfm_f32_to_f16(v);
    memcpy(p, &h, 2);
}
static inline float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lfm_f16_to_f32(h);
}

// The fits run on 8 groups at once, one per vector lane (GCC/Clang vector extensions: AVX2 or NEON code where the
// compiler targets it, plain C otherwise). Each lane performs exactly the scalar reference's sequence of IEEE
// operations (same order, no contraction; comparisons become lane masks), so the result is bit-identical to
// fitting the groups one after another.
// The exported quantizers are compiled for AVX2 and baseline x86-64 (picked at load time) where clones are available.
#pragma GCC diagnostic ignored "-Wpsabi"
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LFM_KQ_NO_CLONES 1
#endif
#endif
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__) && !defined(LFM_KQ_NO_CLONES)
#define KQ_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KQ_CLONES
#endif
#define KQ_INLINE static inline __attribute__((always_inline))

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

KQ_INLINE v8f vsplat(float v) { return (v8f){v, v, v, v, v, v, v, v}; }
KQ_INLINE v8i isplat(int32_t v) { return (v8i){v, v, v, v, v, v, v, v}; }
KQ_INLINE v8f sel(v8i m, v8f a, v8f b) {
    v8i r = ((v8i)a & m) | ((v8i)b & ~m);
    return (v8f)r;
}
KQ_INLINE v8i seli(v8i m, v8i a, v8i b) { return (a & m) | (b & ~m); }
KQ_INLINE v8f vabs(v8f a) { return (v8f)((v8i)a & isplat(0x7fffffff)); }
// round_mantissa lane by lane, clamped to [lo, hi]
KQ_INLINE v8i vround_clamp(v8f v, int lo, int hi) {
    v8f t = v + vsplat(12582912.f);
    v8i q = ((v8i)t & isplat(0x007fffff)) - isplat(0x00400000);
    q = seli(q < isplat(lo), isplat(lo), q);
    return seli(q > isplat(hi), isplat(hi), q);
}
KQ_INLINE v8f vfloat(v8i q) { return __builtin_convertvector(q, v8f); }

// Scale and offset for 8 groups of 32 values (X[i] lane j: value i of group j) into [0, nmax] (an asymmetric
// group): a first guess from min..max, then nstep+1 trial scales (nmax + rmin + rdelta·k over the range), each
// refitted by weighted least squares for scale and offset (offset clamped to ≤ 0), kept when its weighted squared
// error is lower (later trials use the offset kept so far). *scale_out gets the scales, *neg_min the negated offsets;
// L[i] lane j receives level i of group j.
KQ_INLINE void fit_affine8(const v8f *X, const v8f *W, int nmax, float rmin, float rdelta, int nstep, v8i *L,
                           v8f *scale_out, v8f *neg_min) {
    v8f lo = X[0], hi = X[0], sw = W[0], swx = W[0] * X[0];
    for (int i = 1; i < 32; ++i) {
        lo = sel(X[i] < lo, X[i], lo);
        hi = sel(X[i] > hi, X[i], hi);
        sw = sw + W[i];
        swx = swx + W[i] * X[i];
    }
    lo = sel(lo > vsplat(0), vsplat(0), lo);
    v8i flat = hi == lo;
    v8f lo0 = lo;
    v8f inv = vsplat((float)nmax) / (hi - lo);
    v8f scale = vsplat(1) / inv;
    v8f err_best = vsplat(0);
    for (int i = 0; i < 32; ++i) {
        L[i] = vround_clamp(inv * (X[i] - lo), 0, nmax);
        v8f e = scale * vfloat(L[i]) + lo - X[i];
        err_best = err_best + W[i] * (e * e);
    }
    v8i T[32];
    for (int k = 0; k <= nstep; ++k) {
        inv = vsplat(rmin + rdelta * k + nmax) / (hi - lo);
        v8f sl = vsplat(0), sl2 = vsplat(0), sxl = vsplat(0);
        for (int i = 0; i < 32; ++i) {
            T[i] = vround_clamp(inv * (X[i] - lo), 0, nmax);
            v8f q = vfloat(T[i]);
            sl = sl + W[i] * q;
            sl2 = sl2 + W[i] * q * q;
            sxl = sxl + W[i] * q * X[i];
        }
        v8f det = sw * sl2 - sl * sl;
        v8i ok = det > vsplat(0);
        v8f sc = (sw * sxl - swx * sl) / det;
        v8f m = (sl2 * swx - sl * sxl) / det;
        v8i pos = m > vsplat(0);
        m = sel(pos, vsplat(0), m);
        sc = sel(pos, sxl / sl2, sc);
        v8f err = vsplat(0);
        for (int i = 0; i < 32; ++i) {
            v8f e = sc * vfloat(T[i]) + m - X[i];
            err = err + W[i] * (e * e);
        }
        v8i better = ok & (err < err_best);
        for (int i = 0; i < 32; ++i) L[i] = seli(better, T[i], L[i]);
        err_best = sel(better, err, err_best);
        scale = sel(better, sc, scale);
        lo = sel(better, m, lo);
    }
    for (int i = 0; i < 32; ++i) L[i] = seli(flat, isplat(0), L[i]);
    *neg_min = -sel(flat, lo0, lo);
    *scale_out = sel(flat, vsplat(0), scale);
}

// Symmetric scales for 8 groups of 16 values (X[i] lane j) into [-nmax, nmax-1] with x²-weighted least squares over
// 19 trial scales around -nmax/max (the signed value of largest magnitude). L[i] receives level + nmax.
KQ_INLINE void fit_symmetric8(const v8f *X, int nmax, v8i *L, v8f *scale_out) {
    v8f amax = vsplat(0), vmax = vsplat(0);
    for (int i = 0; i < 16; ++i) {
        v8f a = vabs(X[i]);
        v8i gt = a > amax;
        amax = sel(gt, a, amax);
        vmax = sel(gt, X[i], vmax);
    }
    v8i zero = amax < vsplat(1e-15f);
    v8f inv = vsplat((float)-nmax) / vmax;
    v8f sxl = vsplat(0), sl2 = vsplat(0);
    for (int i = 0; i < 16; ++i) {
        v8i q = vround_clamp(inv * X[i], -nmax, nmax - 1);
        L[i] = q + isplat(nmax);
        v8f qf = vfloat(q), w = X[i] * X[i];
        sxl = sxl + w * X[i] * qf;
        sl2 = sl2 + w * qf * qf;
    }
    v8f scale = sel(sl2 != vsplat(0), sxl / sl2, vsplat(0));
    v8f best = scale * sxl;
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        inv = vsplat(-(nmax + 0.1f * k)) / vmax;
        v8i T[16];
        sxl = sl2 = vsplat(0);
        for (int i = 0; i < 16; ++i) {
            T[i] = vround_clamp(inv * X[i], -nmax, nmax - 1);
            v8f qf = vfloat(T[i]), w = X[i] * X[i];
            sxl = sxl + w * X[i] * qf;
            sl2 = sl2 + w * qf * qf;
        }
        v8i better = (sl2 > vsplat(0)) & (sxl * sxl > best * sl2);
        for (int i = 0; i < 16; ++i) L[i] = seli(better, T[i] + isplat(nmax), L[i]);
        scale = sel(better, sxl / sl2, scale);
        best = sel(better, scale * sxl, best);
    }
    for (int i = 0; i < 16; ++i) L[i] = seli(zero, isplat(0), L[i]);
    *scale_out = sel(zero, vsplat(0), scale);
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
KQ_INLINE void quantize_affine_k(const float *x, uint8_t *blk, int nmax, float rmin, int nstep, uint8_t *L) {
    v8f X[32], W[32], vs, vm;
    v8i Lv[32];
    float s2[8];
    for (int l = 0; l < 32; ++l)
        for (int j = 0; j < 8; ++j) X[l][j] = x[32 * j + l];
    v8f acc = vsplat(0);
    for (int l = 0; l < 32; ++l) acc = acc + X[l] * X[l];
    for (int j = 0; j < 8; ++j) s2[j] = sqrtf(acc[j] / 32);
    v8f rms = {s2[0], s2[1], s2[2], s2[3], s2[4], s2[5], s2[6], s2[7]};
    for (int l = 0; l < 32; ++l) W[l] = rms + vabs(X[l]);
    fit_affine8(X, W, nmax, rmin, 0.1f, nstep, Lv, &vs, &vm);
    float sc[8], mn[8];
    float top_sc = 0, top_mn = 0;
    for (int j = 0; j < 8; ++j) {
        sc[j] = vs[j];
        mn[j] = vm[j];
        for (int l = 0; l < 32; ++l) L[32 * j + l] = (uint8_t)Lv[l][j];
        if (sc[j] > top_sc) top_sc = sc[j];
        if (mn[j] > top_mn) top_mn = mn[j];
    }
    float is = top_sc > 0 ? 63.f / top_sc : 0.f;
    float im = top_mn > 0 ? 63.f / top_mn : 0.f;
    uint8_t *scales = blk + 4, ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)round_mantissa(is * sc[j]);
        lm[j] = (uint8_t)round_mantissa(im * mn[j]);
        if (ls[j] > 63) ls[j] = 63;
        if (lm[j] > 63) lm[j] = 63;
    }
    lfm_kq_pack_sm(ls, lm, scales);
    put_f16(blk, top_sc / 63.f);
    put_f16(blk + 2, top_mn / 63.f);
    float d = get_f16(blk), dmin = get_f16(blk + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        lfm_kq_scale_min(j, scales, &s, &m);
        float dj = d * s;
        if (!dj) continue;
        // the reference's round(clamp((x + m) / d)) per element, eight lanes at a time (IEEE division, same bits)
        v8f vd = vsplat(dj), vmj = vsplat(dmin * m);
        for (int l = 0; l < 32; l += 8) {
            v8f xv;
            memcpy(&xv, x + 32 * j + l, sizeof xv);
            v8i q = vround_clamp((xv + vmj) / vd, 0, nmax);
            for (int k = 0; k < 8; ++k) L[32 * j + l + k] = (uint8_t)q[k];
        }
    }
}

// Q4_K (q5 = 0) / Q5_K: each super-block fitted, then its levels packed.
KQ_INLINE void quantize_affine_rows(const float *src, uint8_t *dst, size_t n, int q5) {
    uint8_t L[256];
    size_t bytes = q5 ? LFM_Q5_K_BYTES : LFM_Q4_K_BYTES;
    for (size_t b = 0; b < n / 256; b++) {
        uint8_t *blk = dst + b * bytes, *qh = blk + 16, *qs = blk + (q5 ? 48 : 16);
        quantize_affine_k(src + b * 256, blk, q5 ? 31 : 15, q5 ? -0.5f : -1.f, q5 ? 15 : 20, L);
        if (q5) memset(qh, 0, 32);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * g + l], c = L[64 * g + 32 + l];
                if (q5 && a > 15) qh[l] |= (uint8_t)(1 << (2 * g));
                if (q5 && c > 15) qh[l] |= (uint8_t)(2 << (2 * g));
                qs[32 * g + l] = (uint8_t)((a & 15) | ((c & 15) << 4));
            }
    }
}

KQ_CLONES
void lfm_quantize_q4_k(const float *src, uint8_t *dst, size_t n) { quantize_affine_rows(src, dst, n, 0); }

KQ_CLONES
void lfm_quantize_q5_k(const float *src, uint8_t *dst, size_t n) { quantize_affine_rows(src, dst, n, 1); }

// The reference's round(clamp(x / d)) + 32 for 16 elements, eight lanes at a time (IEEE division, same bits).
KQ_INLINE void requant_symmetric16(const float *x, float d, int8_t *L) {
    v8f vd = vsplat(d);
    for (int l = 0; l < 16; l += 8) {
        v8f xv;
        memcpy(&xv, x + l, sizeof xv);
        v8i q = vround_clamp(xv / vd, -32, 31);
        for (int k = 0; k < 8; ++k) L[l + k] = (int8_t)(q[k] + 32);
    }
}

KQ_CLONES
void lfm_quantize_q6_k(const float *src, uint8_t *dst, size_t n) {
    int8_t L[256];
    float sc[16];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q6_K_BYTES;
        float top = 0, top_abs = 0;
        for (int half = 0; half < 2; ++half) { // sub-blocks 8·half … 8·half+7, one per lane
            v8f X[16];
            v8i Lv[16];
            for (int i = 0; i < 16; ++i)
                for (int j = 0; j < 8; ++j) X[i][j] = x[16 * (8 * half + j) + i];
            v8f vs;
            fit_symmetric8(X, 32, Lv, &vs);
            for (int j = 0; j < 8; ++j) {
                sc[8 * half + j] = vs[j];
                for (int i = 0; i < 16; ++i) L[16 * (8 * half + j) + i] = (int8_t)Lv[i][j];
            }
        }
        for (int j = 0; j < 16; ++j) {
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
            requant_symmetric16(x + 16 * j, dj, L + 16 * j);
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
