// Importance-weighted quantizers: Q4_0, Q3_K, Q4_K, Q5_K and Q6_K with a per-column weight vector (an importance
// matrix entry: mean squared activation of each input column), reimplemented from the algorithms ggml uses when
// `llama-quantize --imatrix` hands it weights (ggml-quants.c: the weighted row paths of quantize_q4_0 / quantize_q3_K /
// quantize_q4_K / quantize_q5_K / quantize_q6_K and their scale searches). The bytes equal ggml's for the same input
// (Tests/Fixtures/quant/weighted-*.bin hold blocks produced by ggml). Every float operation keeps the reference's
// order with contraction off, as ggml-base is built for baseline x86-64 (no FMA). Q8_0 has no weighted path in ggml:
// its quantizer ignores the weights, and so does ours (the caller uses lfm_quantize_q8_0).
#pragma STDC FP_CONTRACT OFF
#include "internal.h"
#include <math.h>
#include <string.h>

#define WQ_EPS 1e-15f

// Round to nearest, ties to even, through the float mantissa (|v| < 2^22).
static inline int wq_round(float v) {
    float t = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    return (bits & 0x007fffff) - 0x00400000;
}
static inline int wq_clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline void wq_put_f16(uint8_t *p, float v) {
    uint16_t h = lfm_f32_to_f16(v);
    memcpy(p, &h, 2);
}
static inline float wq_get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lfm_f16_to_f32(h);
}

// Symmetric scale for n values into levels [-nmax, nmax-1] (stored as level + nmax in L) minimizing the w-weighted
// squared error: the first guess -nmax/max (max: the value of largest magnitude), then 18 trial scales
// -(nmax + 0.1·k)/max, k = ±1…±9, each refitted by weighted least squares; a trial wins when it explains more of
// the weighted energy (sum(w·x·l)² / sum(w·l²)).
static float wq_fit_symmetric(int n, int nmax, const float *x, const float *w, int8_t *L) {
    float big = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            big = x[i];
        }
    }
    if (amax < WQ_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float inv = -nmax / big;
    float sxl = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
        int l = wq_clamp(wq_round(inv * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        sxl += w[i] * x[i] * l;
        sll += w[i] * l * l;
    }
    float scale = sll ? sxl / sll : 0.0f;
    float best = scale * sxl;
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        inv = -(nmax + 0.1f * k) / big;
        sxl = sll = 0;
        for (int i = 0; i < n; ++i) {
            int l = wq_clamp(wq_round(inv * x[i]), -nmax, nmax - 1);
            sxl += w[i] * x[i] * l;
            sll += w[i] * l * l;
        }
        if (sll > 0 && sxl * sxl > best * sll) {
            for (int i = 0; i < n; ++i) L[i] = (int8_t)(nmax + wq_clamp(wq_round(inv * x[i]), -nmax, nmax - 1));
            scale = sxl / sll;
            best = scale * sxl;
        }
    }
    return scale;
}

// Scale and offset for n values into [0, nmax] (x ≈ scale·l − offset), w-weighted squared error: a first guess
// over min..max (min clamped to ≤ 0), then nstep+1 trial inverse scales (nmax + rmin + rdelta·k)/(max − min), each
// refitted by weighted least squares for scale and offset (offset clamped to ≤ 0, then scale alone), kept when the
// weighted error drops. Returns the scale; *neg_min gets the negated offset.
static float wq_fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min, float rmin,
                           float rdelta, int nstep) {
    uint8_t T[32];
    float lo = x[0], hi = x[0];
    float sw = w[0];
    float swx = sw * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi <= lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.f;
    }
    float inv = nmax / (hi - lo);
    float scale = 1 / inv;
    float err_best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = (uint8_t)wq_clamp(wq_round(inv * (x[i] - lo)), 0, nmax);
        float e = scale * L[i] + lo - x[i];
        err_best += w[i] * (e * e);
    }
    for (int k = 0; k <= nstep; ++k) {
        inv = (rmin + rdelta * k + nmax) / (hi - lo);
        float sl = 0, sll = 0, sxl = 0;
        for (int i = 0; i < n; ++i) {
            int l = wq_clamp(wq_round(inv * (x[i] - lo)), 0, nmax);
            T[i] = (uint8_t)l;
            sl += w[i] * l;
            sll += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        float det = sw * sll - sl * sl;
        if (!(det > 0)) continue;
        float sc = (sw * sxl - swx * sl) / det;
        float m = (sll * swx - sl * sxl) / det;
        if (m > 0) {
            m = 0;
            sc = sxl / sll;
        }
        float err = 0;
        for (int i = 0; i < n; ++i) {
            float e = sc * T[i] + m - x[i];
            err += w[i] * (e * e);
        }
        if (err < err_best) {
            memcpy(L, T, (size_t)n);
            err_best = err;
            scale = sc;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

// Non-negative super-block scale for n sub-block values (scales or mins) into [0, nmax] levels with weights w: the
// best of nmax/max and 8 nearby inverse scales by weighted error, then up to 5 passes of coordinate moves (one
// level at a time to the value that best fits the least-squares scale of the others).
static float wq_fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float top = 0;
    for (int i = 0; i < n; ++i) top = top > x[i] ? top : x[i];
    if (top < WQ_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float inv = nmax / top;
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)wq_round(inv * x[i]);
    float scale = 1 / inv;
    float err_best = 0;
    for (int i = 0; i < n; ++i) {
        float e = x[i] - scale * L[i];
        err_best += w[i] * e * e;
    }
    for (int k = -4; k <= 4; ++k) {
        if (k == 0) continue;
        float inv_k = (0.1f * k + nmax) / top;
        float scale_k = 1 / inv_k;
        float err = 0;
        for (int i = 0; i < n; ++i) {
            int l = wq_round(inv_k * x[i]);
            if (l > nmax) l = nmax;
            float e = x[i] - scale_k * l;
            err += w[i] * e * e;
        }
        if (err < err_best) {
            err_best = err;
            inv = inv_k;
        }
    }
    float sxl = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
        int l = wq_round(inv * x[i]);
        if (l > nmax) l = nmax;
        L[i] = (uint8_t)l;
        sxl += w[i] * x[i] * l;
        sll += w[i] * l * l;
    }
    for (int pass = 0; pass < 5; ++pass) {
        int moved = 0;
        for (int i = 0; i < n; ++i) {
            float a = sxl - w[i] * x[i] * L[i];
            float b = sll - w[i] * L[i] * L[i];
            if (a > 0 && b > 0) {
                int l = wq_round(x[i] * b / a);
                if (l > nmax) l = nmax;
                if (l != L[i]) {
                    a += w[i] * x[i] * l;
                    b += w[i] * l * l;
                    if (a * a * sll > sxl * sxl * b) {
                        L[i] = (uint8_t)l;
                        sxl = a;
                        sll = b;
                        ++moved;
                    }
                }
            }
        }
        if (!moved) break;
    }
    return sll > 0.0f ? sxl / sll : 0.0f;
}

static void wq_row_q4_0(const float *x, uint8_t *dst, int64_t n, const float *qw) {
    float s2 = 0;
    for (int64_t j = 0; j < n; ++j) s2 += x[j] * x[j];
    float sigma2 = s2 / n;
    float w[32];
    int8_t L[32];
    for (int64_t b = 0; b < n / 32; ++b) {
        const float *xb = x + 32 * b, *q = qw + 32 * b;
        uint8_t *blk = dst + b * LFM_Q4_0_BYTES;
        for (int j = 0; j < 32; ++j) w[j] = q[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        wq_put_f16(blk, wq_fit_symmetric(32, 8, xb, w, L));
        for (int j = 0; j < 16; ++j) blk[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
}

// Q4_K / Q5_K: the 8 sub-block fits (weights qw·√(σ² + x²), σ² = 2·mean(x²) over the super-block), the 6-bit
// scales and mins by a weighted positive fit with the sub-blocks' weight sums, then the levels again from the stored
// scales.
static void wq_block_affine(const float *x, const float *qw, uint8_t *blk, int nmax, uint8_t *L) {
    float s2 = 0;
    for (int l = 0; l < 256; ++l) s2 += x[l] * x[l];
    float sigma2 = 2 * s2 / 256;
    float w[32], sw[8], sc[8], mn[8];
    uint8_t Ls[8], Lm[8];
    for (int j = 0; j < 8; ++j) {
        for (int l = 0; l < 32; ++l) w[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float s = 0;
        for (int l = 0; l < 32; ++l) s += w[l];
        sw[j] = s;
        sc[j] = wq_fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mn[j], -0.9f, 0.05f, 36);
    }
    float d = wq_fit_positive(8, 63, sc, Ls, sw);
    float dm = wq_fit_positive(8, 63, mn, Lm, sw);
    uint8_t *scales = blk + 4;
    if (nmax == 31)
        for (int j = 0; j < 8; ++j) {
            if (Ls[j] > 63) Ls[j] = 63;
            if (Lm[j] > 63) Lm[j] = 63;
        }
    lfm_kq_pack_sm(Ls, Lm, scales);
    wq_put_f16(blk, d);
    wq_put_f16(blk + 2, dm);
    float df = wq_get_f16(blk), mf = wq_get_f16(blk + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        lfm_kq_scale_min(j, scales, &s, &m);
        float dj = df * s;
        if (!dj) continue;
        float mj = mf * m;
        for (int l = 0; l < 32; ++l)
            L[32 * j + l] = (uint8_t)wq_clamp(wq_round((x[32 * j + l] + mj) / dj), 0, nmax);
    }
}

static void wq_row_q4_k(const float *x, uint8_t *dst, int64_t n, const float *qw) {
    uint8_t L[256];
    for (int64_t b = 0; b < n / 256; ++b) {
        uint8_t *blk = dst + b * LFM_Q4_K_BYTES, *qs = blk + 16;
        wq_block_affine(x + 256 * b, qw + 256 * b, blk, 15, L);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) qs[32 * g + l] = (uint8_t)(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
    }
}

static void wq_row_q5_k(const float *x, uint8_t *dst, int64_t n, const float *qw) {
    uint8_t L[256];
    for (int64_t b = 0; b < n / 256; ++b) {
        uint8_t *blk = dst + b * LFM_Q5_K_BYTES, *qh = blk + 16, *qs = blk + 48;
        wq_block_affine(x + 256 * b, qw + 256 * b, blk, 31, L);
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

// Q6_K: each 16-value sub-block fitted symmetrically with the raw importance as weights, then the 8-bit sub-block
// scales against the largest, and the levels again from the stored scales.
static void wq_row_q6_k(const float *x, uint8_t *dst, int64_t n, const float *qw) {
    int8_t L[256];
    float sc[16];
    for (int64_t b = 0; b < n / 256; ++b) {
        const float *xb = x + 256 * b, *q = qw + 256 * b;
        uint8_t *blk = dst + b * LFM_Q6_K_BYTES;
        float top = 0, top_abs = 0;
        for (int j = 0; j < 16; ++j) {
            sc[j] = wq_fit_symmetric(16, 32, xb + 16 * j, q + 16 * j, L + 16 * j);
            float a = fabsf(sc[j]);
            if (a > top_abs) {
                top_abs = a;
                top = sc[j];
            }
        }
        memset(blk, 0, LFM_Q6_K_BYTES);
        if (top_abs < WQ_EPS) continue;
        float inv = -128.f / top;
        wq_put_f16(blk + 208, 1 / inv);
        int8_t *scales = (int8_t *)(blk + 192);
        for (int j = 0; j < 16; ++j) {
            int v = wq_round(inv * sc[j]);
            scales[j] = (int8_t)(v > 127 ? 127 : v);
        }
        float d = wq_get_f16(blk + 208);
        for (int j = 0; j < 16; ++j) {
            float dj = d * scales[j];
            if (!dj) continue;
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = (int8_t)(wq_clamp(wq_round(xb[16 * j + l] / dj), -32, 31) + 32);
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

// Q3_K: each 16-value sub-block fitted symmetrically into [-4, 3] with weights qw·sqrt(σ² + x²) (σ² twice the
// super-block's mean square), then the sixteen sub-block scales fitted the same way into 6 bits (weighted by each
// sub-block's total weight) under one f16 scale, and the levels again from the stored scales.
static void wq_row_q3_k(const float *x, uint8_t *dst, int64_t n, const float *qw) {
    int8_t L[256], Ls[16];
    float scales[16], weight[16], sw[16];
    for (int64_t b = 0; b < n / 256; ++b) {
        const float *xb = x + 256 * b, *q = qw + 256 * b;
        uint8_t *blk = dst + b * LFM_Q3_K_BYTES;
        float sumx2 = 0;
        for (int j = 0; j < 256; ++j) sumx2 += xb[j] * xb[j];
        float sigma2 = 2 * sumx2 / 256;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weight[l] = q[16 * j + l] * sqrtf(sigma2 + xb[16 * j + l] * xb[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += weight[l];
            sw[j] = sumw;
            scales[j] = wq_fit_symmetric(16, 4, xb + 16 * j, weight, L + 16 * j);
        }
        memset(blk + 96, 0, 12);
        float d_block = wq_fit_symmetric(16, 32, scales, sw, Ls);
        for (int j = 0; j < 16; ++j) lfm_q3k_put_scale(blk + 96, j, Ls[j]);
        wq_put_f16(blk + 108, d_block);
        lfm_q3k_finish(xb, blk, (uint8_t *)L);
    }
}

int lfm_type_has_weighted_quantizer(int32_t type) {
    return type == LFM_T_Q4_0 || type == LFM_T_Q3_K || type == LFM_T_Q4_K || type == LFM_T_Q5_K || type == LFM_T_Q6_K;
}

int lfm_quantize_rows_weighted(int32_t type, const float *src, uint8_t *dst, int64_t rows, int64_t n_per_row,
                               const float *weights) {
    size_t row_bytes;
    void (*row)(const float *, uint8_t *, int64_t, const float *);
    switch (type) {
    case LFM_T_Q4_0:
        if (n_per_row % 32) return 0;
        row_bytes = (size_t)n_per_row / 32 * LFM_Q4_0_BYTES;
        row = wq_row_q4_0;
        break;
    case LFM_T_Q4_K:
        if (n_per_row % 256) return 0;
        row_bytes = (size_t)n_per_row / 256 * LFM_Q4_K_BYTES;
        row = wq_row_q4_k;
        break;
    case LFM_T_Q5_K:
        if (n_per_row % 256) return 0;
        row_bytes = (size_t)n_per_row / 256 * LFM_Q5_K_BYTES;
        row = wq_row_q5_k;
        break;
    case LFM_T_Q6_K:
        if (n_per_row % 256) return 0;
        row_bytes = (size_t)n_per_row / 256 * LFM_Q6_K_BYTES;
        row = wq_row_q6_k;
        break;
    case LFM_T_Q3_K:
        if (n_per_row % 256) return 0;
        row_bytes = (size_t)n_per_row / 256 * LFM_Q3_K_BYTES;
        row = wq_row_q3_k;
        break;
    default: return 0;
    }
    for (int64_t r = 0; r < rows; ++r) row(src + r * n_per_row, dst + (size_t)r * row_bytes, n_per_row, weights);
    return 1;
}
