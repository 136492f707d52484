// The ARM64 tiers' K-quant products (Q3_K, Q4_K, Q5_K, Q6_K weights × q8 activations in blocks of 32): the integer dot
// of each sub-block with SMULL/SADALP (neon) or SDOT (neon-dotprod), combined per super-block by the same float
// helpers as the scalar tier (internal.h), so the results equal the scalar tier's. neon-i8mm uses neon-dotprod's.
#include "internal.h"
#if defined(__aarch64__)
#include <arm_neon.h>

#if defined(__clang__)
#define DOTPROD __attribute__((target("dotprod")))
#else
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}
DOTPROD static inline int32x4_t dot16_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

// The three row dots and their matvec/GEMM entries, for one 16-byte integer dot primitive.
#define KQ_NEON(SFX, ATTR, DOT16)                                                                                      \
    ATTR static float dot_q4_k_##SFX(const uint8_t *w, const int8_t *xq, const float *xd, const int32_t *xs, int nb) { \
        const uint8x16_t m4 = vdupq_n_u8(0x0f);                                                                        \
        float acc = 0.f;                                                                                               \
        for (int i = 0; i < nb; i++) {                                                                                 \
            const uint8_t *blk = w + (size_t)i * LFM_Q4_K_BYTES, *qs = blk + 16;                                       \
            const int8_t *x = xq + 256 * i;                                                                            \
            int32_t isum[8];                                                                                           \
            for (int g = 0; g < 4; g++) {                                                                              \
                uint8x16_t v0 = vld1q_u8(qs + 32 * g), v1 = vld1q_u8(qs + 32 * g + 16);                                \
                const int8_t *xg = x + 64 * g;                                                                         \
                int32x4_t lo = DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(v0, m4)), vld1q_s8(xg));             \
                lo = DOT16(lo, vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(xg + 16));                              \
                int32x4_t hi = DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vld1q_s8(xg + 32));       \
                hi = DOT16(hi, vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)), vld1q_s8(xg + 48));                             \
                isum[2 * g] = vaddvq_s32(lo);                                                                          \
                isum[2 * g + 1] = vaddvq_s32(hi);                                                                      \
            }                                                                                                          \
            acc += lfm_kq_affine_block(blk, isum, xd + 8 * i, xs + 8 * i);                                             \
        }                                                                                                              \
        return acc;                                                                                                    \
    }                                                                                                                  \
    ATTR static float dot_q5_k_##SFX(const uint8_t *w, const int8_t *xq, const float *xd, const int32_t *xs, int nb) { \
        const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);                                                   \
        float acc = 0.f;                                                                                               \
        for (int i = 0; i < nb; i++) {                                                                                 \
            const uint8_t *blk = w + (size_t)i * LFM_Q5_K_BYTES, *qs = blk + 48;                                       \
            uint8x16_t h0 = vld1q_u8(blk + 16), h1 = vld1q_u8(blk + 32);                                               \
            const int8_t *x = xq + 256 * i;                                                                            \
            int32_t isum[8];                                                                                           \
            for (int g = 0; g < 4; g++) {                                                                              \
                uint8x16_t v0 = vld1q_u8(qs + 32 * g), v1 = vld1q_u8(qs + 32 * g + 16);                                \
                const int8_t *xg = x + 64 * g;                                                                         \
                uint8x16_t a0 = vorrq_u8(vandq_u8(v0, m4), vshlq_n_u8(vandq_u8(h0, one), 4));                          \
                uint8x16_t a1 = vorrq_u8(vandq_u8(v1, m4), vshlq_n_u8(vandq_u8(h1, one), 4));                          \
                h0 = vshrq_n_u8(h0, 1);                                                                                \
                h1 = vshrq_n_u8(h1, 1);                                                                                \
                uint8x16_t b0 = vorrq_u8(vshrq_n_u8(v0, 4), vshlq_n_u8(vandq_u8(h0, one), 4));                         \
                uint8x16_t b1 = vorrq_u8(vshrq_n_u8(v1, 4), vshlq_n_u8(vandq_u8(h1, one), 4));                         \
                h0 = vshrq_n_u8(h0, 1);                                                                                \
                h1 = vshrq_n_u8(h1, 1);                                                                                \
                int32x4_t lo = DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(a0), vld1q_s8(xg));                           \
                lo = DOT16(lo, vreinterpretq_s8_u8(a1), vld1q_s8(xg + 16));                                            \
                int32x4_t hi = DOT16(vdupq_n_s32(0), vreinterpretq_s8_u8(b0), vld1q_s8(xg + 32));                      \
                hi = DOT16(hi, vreinterpretq_s8_u8(b1), vld1q_s8(xg + 48));                                            \
                isum[2 * g] = vaddvq_s32(lo);                                                                          \
                isum[2 * g + 1] = vaddvq_s32(hi);                                                                      \
            }                                                                                                          \
            acc += lfm_kq_affine_block(blk, isum, xd + 8 * i, xs + 8 * i);                                             \
        }                                                                                                              \
        return acc;                                                                                                    \
    }                                                                                                                  \
    ATTR static float dot_q6_k_##SFX(const uint8_t *w, const int8_t *xq, const float *xd, int nb) {                    \
        const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);                                                    \
        const int8x16_t off = vdupq_n_s8(32);                                                                          \
        float acc = 0.f;                                                                                               \
        for (int i = 0; i < nb; i++) {                                                                                 \
            const uint8_t *blk = w + (size_t)i * LFM_Q6_K_BYTES;                                                       \
            const int8_t *x = xq + 256 * i;                                                                            \
            int32_t isum[16];                                                                                          \
            for (int h = 0; h < 2; h++) {                                                                              \
                for (int s = 0; s < 2; s++) { /* the two 16-byte halves of each 32-element run */                      \
                    uint8x16_t l0 = vld1q_u8(blk + 64 * h + 16 * s), l1 = vld1q_u8(blk + 64 * h + 32 + 16 * s);        \
                    uint8x16_t qh = vld1q_u8(blk + 128 + 32 * h + 16 * s);                                             \
                    uint8x16_t q[4] = {vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(qh, m3), 4)),                    \
                                       vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), m3), 4)),     \
                                       vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), m3), 4)),    \
                                       vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4))};                 \
                    for (int k = 0; k < 4; k++) {                                                                      \
                        int e = 128 * h + 32 * k + 16 * s;                                                             \
                        int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q[k]), off);                                        \
                        isum[e / 16] = vaddvq_s32(DOT16(vdupq_n_s32(0), v, vld1q_s8(x + e)));                          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
            acc += lfm_kq_q6_block(blk, isum, xd + 8 * i);                                                             \
        }                                                                                                              \
        return acc;                                                                                                    \
    }                                                                                                                  \
    ATTR static float dot_q3_k_##SFX(const uint8_t *w, const int8_t *xq, const float *xd, int nb) {                    \
        const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);                                                      \
        const int8x16_t off = vdupq_n_s8(4);                                                                           \
        float acc = 0.f;                                                                                               \
        for (int i = 0; i < nb; i++) {                                                                                 \
            const uint8_t *blk = w + (size_t)i * LFM_Q3_K_BYTES;                                                       \
            const int8_t *x = xq + 256 * i;                                                                            \
            int32_t isum[16];                                                                                          \
            for (int s = 0; s < 2; s++) { /* the two 16-byte halves of each 32-element run */                          \
                uint8x16_t hm = vld1q_u8(blk + 16 * s);                                                                \
                for (int h = 0; h < 2; h++) {                                                                          \
                    uint8x16_t qs = vld1q_u8(blk + 32 + 32 * h + 16 * s);                                              \
                    for (int k = 0; k < 4; k++) {                                                                      \
                        int g = 4 * h + k, e = 32 * g + 16 * s;                                                        \
                        uint8x16_t lv = vandq_u8(vshlq_u8(qs, vdupq_n_s8((int8_t)(-2 * k))), m3);                      \
                        uint8x16_t hb = vandq_u8(vshlq_u8(hm, vdupq_n_s8((int8_t)-g)), one);                           \
                        int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lv, vshlq_n_u8(hb, 2))), off);             \
                        isum[e / 16] = vaddvq_s32(DOT16(vdupq_n_s32(0), v, vld1q_s8(x + e)));                          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
            acc += lfm_kq_q3_block(blk, isum, xd + 8 * i);                                                             \
        }                                                                                                              \
        return acc;                                                                                                    \
    }                                                                                                                  \
    ATTR static void mv_q3_k_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) y[r] = dot_q3_k_##SFX(w + (size_t)r * ld, xq, xd, cols / 256);                   \
    }                                                                                                                  \
    LFM_GEMM_FROM_MATVEC(mm_q3_k_##SFX, mv_q3_k_##SFX)                                                                 \
    ATTR static void mv_q4_k_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        for (int r = r0; r < r1; r++) y[r] = dot_q4_k_##SFX(w + (size_t)r * ld, xq, xd, xs, cols / 256);               \
    }                                                                                                                  \
    ATTR static void mv_q5_k_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        for (int r = r0; r < r1; r++) y[r] = dot_q5_k_##SFX(w + (size_t)r * ld, xq, xd, xs, cols / 256);               \
    }                                                                                                                  \
    ATTR static void mv_q6_k_##SFX(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf,             \
                                   const int8_t *xq, const float *xd, const int32_t *xs, float *y) {                   \
        (void)xf;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) y[r] = dot_q6_k_##SFX(w + (size_t)r * ld, xq, xd, cols / 256);                   \
    }                                                                                                                  \
    LFM_GEMM_FROM_MATVEC(mm_q4_k_##SFX, mv_q4_k_##SFX)                                                                 \
    LFM_GEMM_FROM_MATVEC(mm_q5_k_##SFX, mv_q5_k_##SFX)                                                                 \
    LFM_GEMM_FROM_MATVEC(mm_q6_k_##SFX, mv_q6_k_##SFX)                                                                 \
    static void register_##SFX(lfm_table *t, int tier) {                                                               \
        lfm_matvec_fn mv[] = {mv_q4_k_##SFX, mv_q5_k_##SFX, mv_q6_k_##SFX};                                            \
        lfm_gemm_fn mm[] = {mm_q4_k_##SFX, mm_q5_k_##SFX, mm_q6_k_##SFX};                                              \
        for (int i = 0; i < 3; i++) {                                                                                  \
            t->matvec[LFM_TYPE_Q4_K + i] = mv[i];                                                                      \
            t->gemm[LFM_TYPE_Q4_K + i] = mm[i];                                                                        \
            LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q4_K + i, tier);                                                      \
            LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_K + i, tier);                                                        \
        }                                                                                                              \
        t->matvec[LFM_TYPE_Q3_K] = mv_q3_k_##SFX;                                                                      \
        t->gemm[LFM_TYPE_Q3_K] = mm_q3_k_##SFX;                                                                        \
        LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q3_K, tier);                                                              \
        LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q3_K, tier);                                                                \
    }

KQ_NEON(neon, , dot16_neon)

// Row dequantization, bit-equal to the scalar dequantizers (separate multiply and subtract, no fused ops).
static inline void store16(uint8x16_t q, float f, float m, float *out) {
    uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_u8(vget_high_u8(q));
    float32x4_t vf = vdupq_n_f32(f), vm = vdupq_n_f32(m);
    uint32x4_t w[4] = {vmovl_u16(vget_low_u16(lo)), vmovl_u16(vget_high_u16(lo)), vmovl_u16(vget_low_u16(hi)),
                       vmovl_u16(vget_high_u16(hi))};
    for (int k = 0; k < 4; k++) vst1q_f32(out + 4 * k, vsubq_f32(vmulq_f32(vf, vcvtq_f32_u32(w[k])), vm));
}
static void row_affine(const uint8_t *p, int cols, float *out, int q5) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), one = vdupq_n_u8(1);
    size_t bytes = q5 ? LFM_Q5_K_BYTES : LFM_Q4_K_BYTES;
    for (int i = 0; i < cols / 256; i++) {
        const uint8_t *blk = p + (size_t)i * bytes, *qs = blk + (q5 ? 48 : 16);
        float d = lfm_f16_to_f32(lfm_rd16(blk)), dmin = lfm_f16_to_f32(lfm_rd16(blk + 2));
        uint8x16_t h[2] = {vld1q_u8(blk + 16), vld1q_u8(blk + 32)};
        for (int j = 0; j < 8; j++) {
            int sc, m;
            lfm_kq_sm(j, blk + 4, &sc, &m);
            float f = d * sc, mm = dmin * m;
            for (int s = 0; s < 2; s++) {
                uint8x16_t v = vld1q_u8(qs + 32 * (j / 2) + 16 * s);
                v = (j & 1) ? vshrq_n_u8(v, 4) : vandq_u8(v, m4);
                if (q5) v = vorrq_u8(v, vshlq_n_u8(vandq_u8(vshlq_u8(h[s], vdupq_n_s8((int8_t)-j)), one), 4));
                store16(v, f, mm, out + 256 * i + 32 * j + 16 * s);
            }
        }
    }
}
static void row_q4_k(const uint8_t *p, int cols, float *out) { row_affine(p, cols, out, 0); }
static void row_q5_k(const uint8_t *p, int cols, float *out) { row_affine(p, cols, out, 1); }
static void row_q6_k(const uint8_t *p, int cols, float *out) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(3);
    for (int i = 0; i < cols / 256; i++) {
        const uint8_t *blk = p + (size_t)i * LFM_Q6_K_BYTES;
        const int8_t *sc = (const int8_t *)(blk + 192);
        float d = lfm_f16_to_f32(lfm_rd16(blk + 208));
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 2; s++) {
                uint8x16_t l0 = vld1q_u8(blk + 64 * h + 16 * s), l1 = vld1q_u8(blk + 64 * h + 32 + 16 * s);
                uint8x16_t qh = vld1q_u8(blk + 128 + 32 * h + 16 * s);
                uint8x16_t q[4] = {vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(qh, m3), 4)),
                                   vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), m3), 4)),
                                   vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), m3), 4)),
                                   vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4))};
                for (int k = 0; k < 4; k++) {
                    int e = 128 * h + 32 * k + 16 * s;
                    int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q[k]), vdupq_n_s8(32));
                    int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
                    int32x4_t w[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_s16(vget_high_s16(lo)),
                                      vmovl_s16(vget_low_s16(hi)), vmovl_s16(vget_high_s16(hi))};
                    float32x4_t f = vdupq_n_f32(d * sc[e / 16]);
                    for (int c = 0; c < 4; c++) vst1q_f32(out + 256 * i + e + 4 * c, vmulq_f32(f, vcvtq_f32_s32(w[c])));
                }
            }
    }
}
static void row_q3_k(const uint8_t *p, int cols, float *out) {
    const uint8x16_t m3 = vdupq_n_u8(3), one = vdupq_n_u8(1);
    for (int i = 0; i < cols / 256; i++) {
        const uint8_t *blk = p + (size_t)i * LFM_Q3_K_BYTES;
        int8_t sc[16];
        lfm_q3k_scales(blk + 96, sc);
        float d = lfm_f16_to_f32(lfm_rd16(blk + 108));
        for (int s = 0; s < 2; s++) {
            uint8x16_t hm = vld1q_u8(blk + 16 * s);
            for (int h = 0; h < 2; h++) {
                uint8x16_t qs = vld1q_u8(blk + 32 + 32 * h + 16 * s);
                for (int k = 0; k < 4; k++) {
                    int g = 4 * h + k, e = 32 * g + 16 * s;
                    uint8x16_t lv = vandq_u8(vshlq_u8(qs, vdupq_n_s8((int8_t)(-2 * k))), m3);
                    uint8x16_t hb = vandq_u8(vshlq_u8(hm, vdupq_n_s8((int8_t)-g)), one);
                    int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lv, vshlq_n_u8(hb, 2))), vdupq_n_s8(4));
                    int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
                    int32x4_t w[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_s16(vget_high_s16(lo)),
                                      vmovl_s16(vget_low_s16(hi)), vmovl_s16(vget_high_s16(hi))};
                    float32x4_t f = vdupq_n_f32(d * (float)sc[e / 16]);
                    for (int c = 0; c < 4; c++) vst1q_f32(out + 256 * i + e + 4 * c, vmulq_f32(f, vcvtq_f32_s32(w[c])));
                }
            }
        }
    }
}
KQ_NEON(sdot, DOTPROD, dot16_sdot)

void lfm_register_kquant_neon(lfm_table *t) {
    register_neon(t, LFM_TIER_NEON);
    t->row[LFM_TYPE_Q4_K] = row_q4_k;
    t->row[LFM_TYPE_Q5_K] = row_q5_k;
    t->row[LFM_TYPE_Q6_K] = row_q6_k;
    t->row[LFM_TYPE_Q3_K] = row_q3_k;
    for (int i = 0; i < 3; i++) LFM_MARK(t, LFM_FN_ROW + LFM_TYPE_Q4_K + i, LFM_TIER_NEON);
    LFM_MARK(t, LFM_FN_ROW + LFM_TYPE_Q3_K, LFM_TIER_NEON);
}
void lfm_register_kquant_neon_dotprod(lfm_table *t) { register_sdot(t, LFM_TIER_NEON_DOTPROD); }
#else
void lfm_register_kquant_neon(lfm_table *t) { (void)t; }
void lfm_register_kquant_neon_dotprod(lfm_table *t) { (void)t; }
#endif
