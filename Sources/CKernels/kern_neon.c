// The ARM64 tiers: neon (ARMv8 Advanced SIMD), neon-dotprod (SDOT, ARMv8.2+: Cortex-A55/A76 and later, Apple M1)
// and neon-i8mm (SMMLA, ARMv8.6+: Cortex-A510/X2, Graviton 3, Apple M2 and later).
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#if defined(__aarch64__)
#include <arm_neon.h>

#if defined(__clang__)
#define DOTPROD __attribute__((target("dotprod")))
#define I8MM __attribute__((target("dotprod,i8mm")))
#else
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#define I8MM __attribute__((target("arch=armv8.6-a+dotprod+i8mm")))
#endif

static inline float fp16s(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lfm_f16_to_f32(h);
}
static inline float32x4_t ld_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t ld_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

static void quantize_act_q8(const float *x, int n, int8_t *q, float *d, int32_t *s) {
    int nb = n / 32;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(xb + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        float amax = vmaxvq_f32(m);
        float db = amax / 127.f, id = db != 0.f ? 1.f / db : 0.f;
        int32x4_t sum = vdupq_n_s32(0);
        int16x8_t h[4];
        for (int k = 0; k < 4; k++) {
            int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * k], id)), c = vcvtnq_s32_f32(vmulq_n_f32(v[2 * k + 1], id));
            sum = vaddq_s32(sum, vaddq_s32(a, c));
            h[k] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(c));
        }
        vst1q_s8(q + b * 32, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
        vst1q_s8(q + b * 32 + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
        d[b] = db;
        s[b] = vaddvq_s32(sum);
    }
}

#define FLOAT_MATVEC(NAME, WT, LOADW, WIDEN)                                                                           \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,         \
                     const float *xd, const int32_t *xs, float *y) {                                                   \
        (void)xq;                                                                                                      \
        (void)xd;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) {                                                                                \
            const WT *p = (const WT *)(w + (size_t)r * ld);                                                            \
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;                                                \
            int i = 0;                                                                                                 \
            for (; i + 16 <= cols; i += 16) {                                                                          \
                a0 = vfmaq_f32(a0, LOADW(p + i), vld1q_f32(xf + i));                                                   \
                a1 = vfmaq_f32(a1, LOADW(p + i + 4), vld1q_f32(xf + i + 4));                                           \
                a2 = vfmaq_f32(a2, LOADW(p + i + 8), vld1q_f32(xf + i + 8));                                           \
                a3 = vfmaq_f32(a3, LOADW(p + i + 12), vld1q_f32(xf + i + 12));                                         \
            }                                                                                                          \
            for (; i + 4 <= cols; i += 4) a0 = vfmaq_f32(a0, LOADW(p + i), vld1q_f32(xf + i));                         \
            float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));                                     \
            for (; i < cols; i++) s += WIDEN(p[i]) * xf[i];                                                            \
            y[r] = s;                                                                                                  \
        }                                                                                                              \
    }
#define ID(v) (v)
FLOAT_MATVEC(mv_f32, float, vld1q_f32, ID)
FLOAT_MATVEC(mv_f16, uint16_t, ld_f16, lfm_f16_to_f32)
FLOAT_MATVEC(mv_bf16, uint16_t, ld_bf16, lfm_b2f)

// Float weights, prefill: 2 rows × 4 tokens per tile.
#define FLOAT_GEMM(NAME, WT, LOADW, WIDEN, MV)                                                                         \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,            \
                     const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {               \
        int T4 = T / 4 * 4, R2 = r0 + (r1 - r0) / 2 * 2, K4 = cols / 4 * 4;                                            \
        for (int r = r0; r < R2; r += 2) {                                                                             \
            const WT *p0 = (const WT *)(w + (size_t)r * ld), *p1 = (const WT *)(w + (size_t)(r + 1) * ld);             \
            for (int t = 0; t < T4; t += 4) {                                                                          \
                float32x4_t c[2][4];                                                                                   \
                for (int i = 0; i < 2; i++)                                                                            \
                    for (int j = 0; j < 4; j++) c[i][j] = vdupq_n_f32(0);                                              \
                for (int k = 0; k < K4; k += 4) {                                                                      \
                    float32x4_t w0 = LOADW(p0 + k), w1 = LOADW(p1 + k);                                                \
                    for (int j = 0; j < 4; j++) {                                                                      \
                        float32x4_t v = vld1q_f32(X + (size_t)(t + j) * ldx + k);                                      \
                        c[0][j] = vfmaq_f32(c[0][j], w0, v);                                                           \
                        c[1][j] = vfmaq_f32(c[1][j], w1, v);                                                           \
                    }                                                                                                  \
                }                                                                                                      \
                for (int j = 0; j < 4; j++) {                                                                          \
                    float s0 = vaddvq_f32(c[0][j]), s1 = vaddvq_f32(c[1][j]);                                          \
                    for (int k = K4; k < cols; k++) {                                                                  \
                        float xv = X[(size_t)(t + j) * ldx + k];                                                       \
                        s0 += WIDEN(p0[k]) * xv;                                                                       \
                        s1 += WIDEN(p1[k]) * xv;                                                                       \
                    }                                                                                                  \
                    Y[(size_t)(t + j) * ldy + r] = s0;                                                                 \
                    Y[(size_t)(t + j) * ldy + r + 1] = s1;                                                             \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (T4 < T)                                                                                                    \
            lfm_scalar_gemm_generic(MV, w, ld, cols, r0, r1, T - T4, X + (size_t)T4 * ldx, ldx, NULL, NULL, NULL, ldq, \
                                    Y + (size_t)T4 * ldy, ldy);                                                        \
        if (R2 < r1 && T4 > 0)                                                                                         \
            lfm_scalar_gemm_generic(MV, w, ld, cols, R2, r1, T4, X, ldx, NULL, NULL, NULL, ldq, Y, ldy);               \
    }
FLOAT_GEMM(mm_f32, float, vld1q_f32, ID, mv_f32)
FLOAT_GEMM(mm_f16, uint16_t, ld_f16, lfm_f16_to_f32, mv_f16)
FLOAT_GEMM(mm_bf16, uint16_t, ld_bf16, lfm_b2f, mv_bf16)

// Integer dots without SDOT: widening multiplies (s8 × s8 → s16) and pairwise accumulation into s32.
static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_s8(p, vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(acc, p);
}
static inline void q4_unpack(const uint8_t *blk, int8x16_t *lo, int8x16_t *hi) {
    uint8x16_t q = vld1q_u8(blk + 2);
    *lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f)));
    *hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
}

#define INT_MATVECS(SFX, ATTR, DOT16)                                                                                  \
    ATTR static void mv_q8_0_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        (void)xs;                                                                                                      \
        int nb = cols / 32;                                                                                            \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0;                                                                  \
            int b = 0;                                                                                                 \
            for (; b + 2 <= nb; b += 2) {                                                                              \
                for (int k = 0; k < 2; k++) {                                                                          \
                    const uint8_t *blk = row + (size_t)(b + k) * 34;                                                   \
                    const int8_t *x = xq + (b + k) * 32;                                                               \
                    int32x4_t d = DOT16(vdupq_n_s32(0), vld1q_s8((const int8_t *)blk + 2), vld1q_s8(x));               \
                    d = DOT16(d, vld1q_s8((const int8_t *)blk + 18), vld1q_s8(x + 16));                                \
                    float32x4_t f = vmulq_n_f32(vcvtq_f32_s32(d), fp16s(blk) * xd[b + k]);                             \
                    if (k == 0)                                                                                        \
                        a0 = vaddq_f32(a0, f);                                                                         \
                    else                                                                                               \
                        a1 = vaddq_f32(a1, f);                                                                         \
                }                                                                                                      \
            }                                                                                                          \
            for (; b < nb; b++) {                                                                                      \
                const uint8_t *blk = row + (size_t)b * 34;                                                             \
                const int8_t *x = xq + b * 32;                                                                         \
                int32x4_t d = DOT16(vdupq_n_s32(0), vld1q_s8((const int8_t *)blk + 2), vld1q_s8(x));                   \
                d = DOT16(d, vld1q_s8((const int8_t *)blk + 18), vld1q_s8(x + 16));                                    \
                a0 = vaddq_f32(a0, vmulq_n_f32(vcvtq_f32_s32(d), fp16s(blk) * xd[b]));                                 \
            }                                                                                                          \
            y[r] = vaddvq_f32(vaddq_f32(a0, a1));                                                                      \
        }                                                                                                              \
    }                                                                                                                  \
    ATTR static void mv_q4_0_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        int nb = cols / 32;                                                                                            \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            float32x4_t a0 = vdupq_n_f32(0);                                                                           \
            float corr = 0;                                                                                            \
            for (int b = 0; b < nb; b++) {                                                                             \
                const uint8_t *blk = row + (size_t)b * 18;                                                             \
                int8x16_t lo, hi;                                                                                      \
                q4_unpack(blk, &lo, &hi);                                                                              \
                int32x4_t d = DOT16(vdupq_n_s32(0), lo, vld1q_s8(xq + b * 32));                                        \
                d = DOT16(d, hi, vld1q_s8(xq + b * 32 + 16));                                                          \
                float sc = fp16s(blk) * xd[b];                                                                         \
                a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(d), sc);                                                            \
                corr += sc * (float)(8 * xs[b]);                                                                       \
            }                                                                                                          \
            y[r] = vaddvq_f32(a0) - corr;                                                                              \
        }                                                                                                              \
    }
INT_MATVECS(neon, , dot16_neon)

LFM_GEMM_FROM_MATVEC(mm_q8_0_neon, mv_q8_0_neon)
LFM_GEMM_FROM_MATVEC(mm_q4_0_neon, mv_q4_0_neon)

DOTPROD static inline int32x4_t dot16_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
INT_MATVECS(dotprod, DOTPROD, dot16_sdot)
LFM_GEMM_FROM_MATVEC(mm_q8_0_dotprod, mv_q8_0_dotprod)
LFM_GEMM_FROM_MATVEC(mm_q4_0_dotprod, mv_q4_0_dotprod)

// i8mm prefill: 2 rows × 2 tokens per SMMLA (a 2×8 by 8×2 product into a 2×2 s32 tile), four per 32-element block.
// Lanes of the tile: (r0,t0) (r0,t1) (r1,t0) (r1,t1); the block's four scales multiply them in one vector op.
I8MM static void gemm_q_i8mm(int q4, const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X,
                             int ldx, const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y,
                             int ldy) {
    int nb = cols / 32, qb = ldq / 32;
    int T2 = T / 2 * 2, R2 = r0 + (r1 - r0) / 2 * 2;
    size_t bs = q4 ? 18 : 34;
    for (int r = r0; r < R2; r += 2) {
        const uint8_t *p0 = w + (size_t)r * ld, *p1 = p0 + ld;
        for (int t = 0; t < T2; t += 2) {
            const int8_t *x0 = XQ + (size_t)t * ldq, *x1 = x0 + ldq;
            float32x4_t acc = vdupq_n_f32(0);
            float c00 = 0, c01 = 0, c10 = 0, c11 = 0;
            for (int b = 0; b < nb; b++) {
                const uint8_t *b0 = p0 + (size_t)b * bs, *b1 = p1 + (size_t)b * bs;
                int8x16_t wa0, wa1, wb0, wb1; // row 0: elements 0..15, 16..31; row 1 likewise
                if (q4) {
                    q4_unpack(b0, &wa0, &wa1);
                    q4_unpack(b1, &wb0, &wb1);
                } else {
                    wa0 = vld1q_s8((const int8_t *)b0 + 2);
                    wa1 = vld1q_s8((const int8_t *)b0 + 18);
                    wb0 = vld1q_s8((const int8_t *)b1 + 2);
                    wb1 = vld1q_s8((const int8_t *)b1 + 18);
                }
                int8x16_t xa0 = vld1q_s8(x0 + b * 32), xa1 = vld1q_s8(x0 + b * 32 + 16);
                int8x16_t xb0 = vld1q_s8(x1 + b * 32), xb1 = vld1q_s8(x1 + b * 32 + 16);
                int32x4_t m = vdupq_n_s32(0);
#define MM(WA, WB, XA, XB)                                                                                             \
    m = vmmlaq_s32(m, vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(WA), vreinterpretq_s64_s8(WB))),            \
                   vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(XA), vreinterpretq_s64_s8(XB))));              \
    m = vmmlaq_s32(m, vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(WA), vreinterpretq_s64_s8(WB))),            \
                   vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(XA), vreinterpretq_s64_s8(XB))));
                MM(wa0, wb0, xa0, xb0)
                MM(wa1, wb1, xa1, xb1)
#undef MM
                float d0 = fp16s(b0), d1 = fp16s(b1), e0 = XD[(size_t)t * qb + b], e1 = XD[(size_t)(t + 1) * qb + b];
                float sc[4] = {d0 * e0, d0 * e1, d1 * e0, d1 * e1};
                acc = vfmaq_f32(acc, vcvtq_f32_s32(m), vld1q_f32(sc));
                if (q4) {
                    float s0 = 8.f * (float)XS[(size_t)t * qb + b], s1 = 8.f * (float)XS[(size_t)(t + 1) * qb + b];
                    c00 += sc[0] * s0;
                    c01 += sc[1] * s1;
                    c10 += sc[2] * s0;
                    c11 += sc[3] * s1;
                }
            }
            float o[4];
            vst1q_f32(o, acc);
            Y[(size_t)t * ldy + r] = o[0] - c00;
            Y[(size_t)(t + 1) * ldy + r] = o[1] - c01;
            Y[(size_t)t * ldy + r + 1] = o[2] - c10;
            Y[(size_t)(t + 1) * ldy + r + 1] = o[3] - c11;
        }
    }
    lfm_matvec_fn mv = q4 ? mv_q4_0_dotprod : mv_q8_0_dotprod;
    if (T2 < T)
        lfm_scalar_gemm_generic(mv, w, ld, cols, r0, r1, T - T2, X ? X + (size_t)T2 * ldx : NULL, ldx,
                                XQ + (size_t)T2 * ldq, XD + (size_t)T2 * qb, XS + (size_t)T2 * qb, ldq,
                                Y + (size_t)T2 * ldy, ldy);
    if (R2 < r1 && T2 > 0) lfm_scalar_gemm_generic(mv, w, ld, cols, R2, r1, T2, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}
I8MM static void mm_q8_0_i8mm(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                              const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    gemm_q_i8mm(0, w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}
I8MM static void mm_q4_0_i8mm(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                              const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    gemm_q_i8mm(1, w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}

// ---------------------------------------------------------------------------------------------
// Row and elementwise kernels (the same exp as the x86 tiers: Cephes reduction, |rel err| < 2e-7).

static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.33654f)), vdupq_n_f32(88.3762626647949f));
    float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_n_f32(x, n, 0.693359375f);
    r = vfmsq_n_f32(r, n, -2.12194440e-4f);
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static void silu(float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        vst1q_f32(x + i, vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(v)))));
    }
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}
static void glu(const float *a, const float *g, size_t n, float *y) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vdivq_f32(vld1q_f32(a + i), vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(vld1q_f32(g + i))))));
    for (; i < n; i++) y[i] = a[i] / (1.0f + expf(-g[i]));
}
static void relu(float *x, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmaxq_f32(vld1q_f32(x + i), vdupq_n_f32(0)));
    for (; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}
static void elu(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        float32x4_t p = vdupq_n_f32(1.0f / 5040);
        p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, v);
        p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, v);
        p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, v);
        p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, v);
        p = vfmaq_f32(vdupq_n_f32(0.5f), p, v);
        p = vfmaq_f32(v, p, vmulq_f32(v, v));
        float32x4_t e = vsubq_f32(exp4(v), vdupq_n_f32(1.0f));
        float32x4_t neg = vbslq_f32(vcgeq_f32(v, vdupq_n_f32(-0.25f)), p, e);
        vst1q_f32(y + i, vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0)), v, neg));
    }
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]);
}
// Exact GELU with the same erf as the x86 tiers (A&S 7.1.26 above |z| = 0.5, Taylor series below).
static void gelu(float *x, size_t n) {
    size_t i = 0;
    const float32x4_t one = vdupq_n_f32(1.0f);
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        float32x4_t z = vmulq_n_f32(v, 0.70710678118654752f), a = vabsq_f32(z);
        float32x4_t t = vdivq_f32(one, vfmaq_n_f32(one, a, 0.3275911f));
        float32x4_t p = vdupq_n_f32(1.061405429f);
        p = vfmaq_f32(vdupq_n_f32(-1.453152027f), p, t);
        p = vfmaq_f32(vdupq_n_f32(1.421413741f), p, t);
        p = vfmaq_f32(vdupq_n_f32(-0.284496736f), p, t);
        p = vfmaq_f32(vdupq_n_f32(0.254829592f), p, t);
        p = vmulq_f32(p, t);
        float32x4_t erfa = vfmsq_f32(one, p, exp4(vnegq_f32(vmulq_f32(a, a))));
        float32x4_t a2 = vmulq_f32(a, a), q = vdupq_n_f32(1.0f / 216);
        q = vfmaq_f32(vdupq_n_f32(-1.0f / 42), q, a2);
        q = vfmaq_f32(vdupq_n_f32(1.0f / 10), q, a2);
        q = vfmaq_f32(vdupq_n_f32(-1.0f / 3), q, a2);
        q = vfmaq_f32(one, q, a2);
        float32x4_t ser = vmulq_n_f32(vmulq_f32(q, a), 1.12837916709551257f);
        float32x4_t e = vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.5f)), ser, erfa);
        e = vbslq_f32(vcltq_f32(z, vdupq_n_f32(0)), vnegq_f32(e), e);
        vst1q_f32(x + i, vmulq_f32(vmulq_n_f32(v, 0.5f), vaddq_f32(one, e)));
    }
    for (; i < n; i++) x[i] = (float)(0.5 * (double)x[i] * (1.0 + erf((double)x[i] * 0.70710678118654752440)));
}
static void row_f16(const uint8_t *p, int cols, float *out) {
    const uint16_t *h = (const uint16_t *)p;
    int i = 0;
    for (; i + 4 <= cols; i += 4) vst1q_f32(out + i, ld_f16(h + i));
    for (; i < cols; i++) out[i] = lfm_f16_to_f32(h[i]);
}
static void row_bf16(const uint8_t *p, int cols, float *out) {
    const uint16_t *h = (const uint16_t *)p;
    int i = 0;
    for (; i + 4 <= cols; i += 4) vst1q_f32(out + i, ld_bf16(h + i));
    for (; i < cols; i++) out[i] = lfm_b2f(h[i]);
}
static void row_q8_0(const uint8_t *p, int cols, float *out) {
    for (int b = 0; b < cols / 32; b++) {
        const uint8_t *blk = p + (size_t)b * 34;
        float d = fp16s(blk);
        for (int k = 0; k < 2; k++) {
            int8x16_t q = vld1q_s8((const int8_t *)blk + 2 + 16 * k);
            int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
            float *o = out + b * 32 + 16 * k;
            vst1q_f32(o, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
            vst1q_f32(o + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), d));
            vst1q_f32(o + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
            vst1q_f32(o + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), d));
        }
    }
}
static void row_q4_0(const uint8_t *p, int cols, float *out) {
    for (int b = 0; b < cols / 32; b++) {
        const uint8_t *blk = p + (size_t)b * 18;
        float d = fp16s(blk);
        int8x16_t lo, hi;
        q4_unpack(blk, &lo, &hi);
        int8x16_t parts[2] = {vsubq_s8(lo, vdupq_n_s8(8)), vsubq_s8(hi, vdupq_n_s8(8))};
        for (int k = 0; k < 2; k++) {
            int16x8_t a = vmovl_s8(vget_low_s8(parts[k])), c = vmovl_s8(vget_high_s8(parts[k]));
            float *o = out + b * 32 + 16 * k;
            vst1q_f32(o, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(a))), d));
            vst1q_f32(o + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(a))), d));
            vst1q_f32(o + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(c))), d));
            vst1q_f32(o + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(c))), d));
        }
    }
}
static void rmsnorm(const float *x, const float *w, int n, float eps, float *y) {
    float32x4_t s = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t v = vld1q_f32(x + i);
        s = vfmaq_f32(s, v, v);
    }
    float ss = vaddvq_f32(s);
    for (; i < n; i++) ss += x[i] * x[i];
    float r = 1 / sqrtf(ss / (float)n + eps);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), r)));
    for (; i < n; i++) y[i] = w[i] * (x[i] * r);
}
static void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    float32x4_t s = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) s = vaddq_f32(s, vld1q_f32(x + i));
    float sum = vaddvq_f32(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    float32x4_t v = vdupq_n_f32(0), m = vdupq_n_f32(mean);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t d = vsubq_f32(vld1q_f32(x + i), m);
        v = vfmaq_f32(v, d, d);
    }
    float var = vaddvq_f32(v);
    for (; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    float r = 1.0f / sqrtf(var / (float)n + eps);
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vfmaq_f32(vld1q_f32(b + i), vmulq_n_f32(vsubq_f32(vld1q_f32(x + i), m), r), vld1q_f32(w + i)));
    for (; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}
static void softmax(float *x, int n) {
    float32x4_t mv = vdupq_n_f32(-INFINITY);
    int i = 0;
    for (; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vld1q_f32(x + i));
    float mx = vmaxvq_f32(mv);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float32x4_t s = vdupq_n_f32(0), m = vdupq_n_f32(mx);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), m));
        vst1q_f32(x + i, e);
        s = vaddq_f32(s, e);
    }
    float sum = vaddvq_f32(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++) x[i] *= inv;
}
static float dot(const float *a, const float *b, size_t n) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(a + i), vld1q_f32(b + i));
        a1 = vfmaq_f32(a1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(a + i), vld1q_f32(b + i));
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
static void axpy(float a, const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}
static void attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *sc,
                   float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        float s = dot(q, K + (size_t)j * ld, (size_t)hd) * scale;
        sc[j] = s;
        mx = s > mx ? s : mx;
    }
    float total = 0;
    for (int j = 0; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        total += sc[j];
    }
    float inv = 1.0f / total;
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int j = 0; j < n; j++) axpy(sc[j] * inv, V + (size_t)j * ld, out, (size_t)hd);
}

void lfm_register_neon(lfm_table *t) {
    const int T = LFM_TIER_NEON;
    t->quantize_act = quantize_act_q8;
    LFM_MARK(t, LFM_FN_QUANT_ACT, T);
    lfm_matvec_fn mv[] = {mv_f32, mv_f16, mv_bf16, mv_q8_0_neon, mv_q4_0_neon};
    lfm_gemm_fn mm[] = {mm_f32, mm_f16, mm_bf16, mm_q8_0_neon, mm_q4_0_neon};
    lfm_set_products(t, mv, mm, T);
    t->row[LFM_TYPE_F16] = row_f16;
    t->row[LFM_TYPE_BF16] = row_bf16; // F32 rows are a memcpy on every tier
    t->row[LFM_TYPE_Q8_0] = row_q8_0;
    t->row[LFM_TYPE_Q4_0] = row_q4_0;
    for (int i = 0; i < LFM_TYPE_BLOCK32_COUNT; i++) LFM_MARK(t, LFM_FN_ROW + i, T);
    t->silu = silu;
    t->glu = glu;
    t->gelu = gelu;
    t->relu = relu;
    t->elu = elu;
    t->layernorm = layernorm;
    t->rmsnorm = rmsnorm;
    t->softmax = softmax;
    t->attend = attend;
    t->axpy = axpy;
    t->dot = dot;
    int fns[] = {LFM_FN_SILU,    LFM_FN_GLU,     LFM_FN_GELU,   LFM_FN_RELU, LFM_FN_ELU, LFM_FN_LAYERNORM,
                 LFM_FN_RMSNORM, LFM_FN_SOFTMAX, LFM_FN_ATTEND, LFM_FN_AXPY, LFM_FN_DOT};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) LFM_MARK(t, fns[i], T);
    lfm_register_kquant_neon(t);
}
void lfm_register_neon_dotprod(lfm_table *t) {
    const int T = LFM_TIER_NEON_DOTPROD;
    t->matvec[LFM_TYPE_Q8_0] = mv_q8_0_dotprod;
    t->matvec[LFM_TYPE_Q4_0] = mv_q4_0_dotprod;
    t->gemm[LFM_TYPE_Q8_0] = mm_q8_0_dotprod;
    t->gemm[LFM_TYPE_Q4_0] = mm_q4_0_dotprod;
    LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q8_0, T);
    LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q4_0, T);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q8_0, T);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_0, T);
    lfm_register_kquant_neon_dotprod(t);
}
void lfm_register_neon_i8mm(lfm_table *t) {
    const int T = LFM_TIER_NEON_I8MM;
    t->gemm[LFM_TYPE_Q8_0] = mm_q8_0_i8mm;
    t->gemm[LFM_TYPE_Q4_0] = mm_q4_0_i8mm;
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q8_0, T);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_0, T);
}
#else
void lfm_register_neon(lfm_table *t) { (void)t; }
void lfm_register_neon_dotprod(lfm_table *t) { (void)t; }
void lfm_register_neon_i8mm(lfm_table *t) { (void)t; }
#endif
