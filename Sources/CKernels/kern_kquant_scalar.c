// The scalar tier's K-quant products (Q3_K, Q4_K, Q5_K, Q6_K weights × q8 activations in blocks of 32): exact integer
// dots per sub-block, combined per super-block in float by the helpers of internal.h (which the NEON tiers share).
#include "internal.h"

static float dot_q4_k(const uint8_t *w, const int8_t *xq, const float *xd, const int32_t *xs, int nb) {
    float acc = 0.f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * LFM_Q4_K_BYTES, *qs = blk + 16;
        const int8_t *x = xq + 256 * i;
        int32_t isum[8];
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = qs + 32 * (j / 2);
            int sh = (j & 1) * 4, s = 0;
            for (int l = 0; l < 32; l++) s += ((q[l] >> sh) & 15) * x[32 * j + l];
            isum[j] = s;
        }
        acc += lfm_kq_affine_block(blk, isum, xd + 8 * i, xs + 8 * i);
    }
    return acc;
}

static float dot_q5_k(const uint8_t *w, const int8_t *xq, const float *xd, const int32_t *xs, int nb) {
    float acc = 0.f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * LFM_Q5_K_BYTES, *qh = blk + 16, *qs = blk + 48;
        const int8_t *x = xq + 256 * i;
        int32_t isum[8];
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = qs + 32 * (j / 2);
            int sh = (j & 1) * 4, s = 0;
            for (int l = 0; l < 32; l++) s += (((q[l] >> sh) & 15) | (((qh[l] >> j) & 1) << 4)) * x[32 * j + l];
            isum[j] = s;
        }
        acc += lfm_kq_affine_block(blk, isum, xd + 8 * i, xs + 8 * i);
    }
    return acc;
}

static float dot_q6_k(const uint8_t *w, const int8_t *xq, const float *xd, int nb) {
    float acc = 0.f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * LFM_Q6_K_BYTES;
        const int8_t *x = xq + 256 * i;
        int32_t isum[16] = {0};
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) {
                    uint8_t lo = blk[64 * h + l + 32 * (k & 1)];
                    int v = ((k < 2 ? lo : lo >> 4) & 15) | (((blk[128 + 32 * h + l] >> (2 * k)) & 3) << 4);
                    int e = 128 * h + 32 * k + l;
                    isum[e / 16] += (v - 32) * x[e];
                }
        acc += lfm_kq_q6_block(blk, isum, xd + 8 * i);
    }
    return acc;
}

// Q3_K: level = the two bits of qs | hmask's bit << 2 (0..7), weight d·scale·(level − 4) per 16 elements.
static float dot_q3_k(const uint8_t *w, const int8_t *xq, const float *xd, int nb) {
    float acc = 0.f;
    for (int i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * LFM_Q3_K_BYTES, *hm = blk, *qs = blk + 32;
        const int8_t *x = xq + 256 * i;
        int32_t isum[16];
        for (int g = 0; g < 8; g++) // 32-element runs: two sub-blocks each
            for (int h = 0; h < 2; h++) {
                int s = 0;
                for (int l = 16 * h; l < 16 * h + 16; l++) {
                    int v = ((qs[32 * (g / 4) + l] >> (2 * (g % 4))) & 3) | (((hm[l] >> g) & 1) << 2);
                    s += (v - 4) * x[32 * g + l];
                }
                isum[2 * g + h] = s;
            }
        acc += lfm_kq_q3_block(blk, isum, xd + 8 * i);
    }
    return acc;
}

#define MATVEC_K(NAME, EXPR)                                                                                           \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,         \
                     const float *xd, const int32_t *xs, float *y) {                                                   \
        (void)xf;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            y[r] = EXPR;                                                                                               \
        }                                                                                                              \
    }
MATVEC_K(mv_q4_k, dot_q4_k(row, xq, xd, xs, cols / 256))
MATVEC_K(mv_q5_k, dot_q5_k(row, xq, xd, xs, cols / 256))
MATVEC_K(mv_q6_k, dot_q6_k(row, xq, xd, cols / 256))
MATVEC_K(mv_q3_k, dot_q3_k(row, xq, xd, cols / 256))
LFM_GEMM_FROM_MATVEC(mm_q4_k, mv_q4_k)
LFM_GEMM_FROM_MATVEC(mm_q5_k, mv_q5_k)
LFM_GEMM_FROM_MATVEC(mm_q6_k, mv_q6_k)
LFM_GEMM_FROM_MATVEC(mm_q3_k, mv_q3_k)

static void row_q4_k(const uint8_t *p, int cols, float *out) { lfm_dequantize_q4_k(p, out, cols); }
static void row_q5_k(const uint8_t *p, int cols, float *out) { lfm_dequantize_q5_k(p, out, cols); }
static void row_q6_k(const uint8_t *p, int cols, float *out) { lfm_dequantize_q6_k(p, out, cols); }
static void row_q3_k(const uint8_t *p, int cols, float *out) { lfm_dequantize_q3_k(p, out, cols); }

void lfm_register_kquant_scalar(lfm_table *t) {
    t->matvec[LFM_TYPE_Q4_K] = mv_q4_k;
    t->matvec[LFM_TYPE_Q5_K] = mv_q5_k;
    t->matvec[LFM_TYPE_Q6_K] = mv_q6_k;
    t->gemm[LFM_TYPE_Q4_K] = mm_q4_k;
    t->gemm[LFM_TYPE_Q5_K] = mm_q5_k;
    t->gemm[LFM_TYPE_Q6_K] = mm_q6_k;
    t->row[LFM_TYPE_Q4_K] = row_q4_k;
    t->row[LFM_TYPE_Q5_K] = row_q5_k;
    t->row[LFM_TYPE_Q6_K] = row_q6_k;
    t->matvec[LFM_TYPE_Q3_K] = mv_q3_k;
    t->gemm[LFM_TYPE_Q3_K] = mm_q3_k;
    t->row[LFM_TYPE_Q3_K] = row_q3_k;
}
