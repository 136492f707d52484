// The scalar tier: the portable reference every vector tier is tested against (and falls back to).
// Float dot products accumulate in double; integer block dots are exact, scaled per block in float.
#include "internal.h"
#include <math.h>

static void quantize_act_q8(const float *x, int n, int8_t *q, float *d, int32_t *s) {
    int nb = n / 32;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float amax = 0.f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        float db = amax / 127.f, id = db != 0.f ? 1.f / db : 0.f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            int qi = (int)lrintf(xb[j] * id);
            q[b * 32 + j] = (int8_t)qi;
            sum += qi;
        }
        d[b] = db;
        s[b] = sum;
    }
}

static float dot_f32(const float *w, const float *x, int n) {
    double a = 0;
    for (int i = 0; i < n; i++) a += (double)w[i] * x[i];
    return (float)a;
}
static float dot_f16(const uint16_t *w, const float *x, int n) {
    double a = 0;
    for (int i = 0; i < n; i++) a += (double)lfm_f16_to_f32(w[i]) * x[i];
    return (float)a;
}
static float dot_bf16(const uint16_t *w, const float *x, int n) {
    double a = 0;
    for (int i = 0; i < n; i++) a += (double)lfm_b2f(w[i]) * x[i];
    return (float)a;
}
static float dot_q8_0(const uint8_t *w, const int8_t *xq, const float *xd, int nb) {
    float acc = 0.f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * 34;
        const int8_t *wq = (const int8_t *)(blk + 2);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += (int32_t)wq[j] * xq[b * 32 + j];
        acc += (float)sum * lfm_f16_to_f32(lfm_rd16(blk)) * xd[b];
    }
    return acc;
}
static float dot_q4_0(const uint8_t *w, const int8_t *xq, const float *xd, const int32_t *xs, int nb) {
    float acc = 0.f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * 18, *qs = blk + 2;
        int32_t sum = 0;
        for (int j = 0; j < 16; j++)
            sum += (int32_t)(qs[j] & 0xf) * xq[b * 32 + j] + (int32_t)(qs[j] >> 4) * xq[b * 32 + j + 16];
        acc += (float)(sum - 8 * xs[b]) * lfm_f16_to_f32(lfm_rd16(blk)) * xd[b];
    }
    return acc;
}

#define MATVEC(NAME, EXPR)                                                                                             \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,         \
                     const float *xd, const int32_t *xs, float *y) {                                                   \
        (void)xf;                                                                                                      \
        (void)xq;                                                                                                      \
        (void)xd;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            y[r] = EXPR;                                                                                               \
        }                                                                                                              \
    }
MATVEC(mv_f32, dot_f32((const float *)row, xf, cols))
MATVEC(mv_f16, dot_f16((const uint16_t *)row, xf, cols))
MATVEC(mv_bf16, dot_bf16((const uint16_t *)row, xf, cols))
MATVEC(mv_q8_0, dot_q8_0(row, xq, xd, cols / 32))
MATVEC(mv_q4_0, dot_q4_0(row, xq, xd, xs, cols / 32))

// GEMM as one matvec per token (the vector tiers use it for tails).
void lfm_scalar_gemm_generic(lfm_matvec_fn mv, const uint8_t *w, size_t ld, int cols, int r0, int r1, int T,
                             const float *X, int ldx, const int8_t *XQ, const float *XD, const int32_t *XS, int ldq,
                             float *Y, int ldy) {
    int qb = ldq / 32;
    for (int t = 0; t < T; t++)
        mv(w, ld, cols, r0, r1, X ? X + (size_t)t * ldx : NULL, XQ ? XQ + (size_t)t * ldq : NULL,
           XD ? XD + (size_t)t * qb : NULL, XS ? XS + (size_t)t * qb : NULL, Y + (size_t)t * ldy);
}

LFM_GEMM_FROM_MATVEC(mm_f32, mv_f32)
LFM_GEMM_FROM_MATVEC(mm_f16, mv_f16)
LFM_GEMM_FROM_MATVEC(mm_bf16, mv_bf16)
LFM_GEMM_FROM_MATVEC(mm_q8_0, mv_q8_0)
LFM_GEMM_FROM_MATVEC(mm_q4_0, mv_q4_0)

static void row_f32(const uint8_t *p, int cols, float *out) { memcpy(out, p, (size_t)cols * 4); }
static void row_f16(const uint8_t *p, int cols, float *out) { lfm_convert_f16_to_f32((const uint16_t *)p, out, cols); }
static void row_bf16(const uint8_t *p, int cols, float *out) {
    lfm_convert_bf16_to_f32((const uint16_t *)p, out, cols);
}
static void row_q8_0(const uint8_t *p, int cols, float *out) { lfm_dequantize_q8_0(p, out, cols); }
static void row_q4_0(const uint8_t *p, int cols, float *out) { lfm_dequantize_q4_0(p, out, cols); }

static void silu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}
static void glu(const float *a, const float *g, size_t n, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] / (1.0f + expf(-g[i]));
}
static void gelu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * (double)x[i] * (1.0 + erf((double)x[i] * 0.70710678118654752440)));
}
static void relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}
static void elu(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]);
}
static void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    float mean = (float)(s / n);
    double v = 0;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        v += d * d;
    }
    float r = (float)(1.0 / sqrt(v / n + eps));
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}
static void rmsnorm(const float *x, const float *w, int n, float eps, float *y) {
    float ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1 / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) y[i] = w[i] * (x[i] * r);
}
static void softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < n; i++) x[i] *= inv;
}
static void attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *scores,
                   float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ld;
        float s = 0;
        for (int i = 0; i < hd; i++) s += q[i] * k[i];
        s *= scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
    }
    float total = 0;
    for (int j = 0; j < n; j++) {
        scores[j] = expf(scores[j] - mx);
        total += scores[j];
    }
    float inv = 1.0f / total;
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int j = 0; j < n; j++) {
        float w = scores[j] * inv;
        const float *v = V + (size_t)j * ld;
        for (int i = 0; i < hd; i++) out[i] += w * v[i];
    }
}
static void axpy(float a, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}
static float dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return (float)s;
}

void lfm_register_scalar(lfm_table *t) {
    t->quantize_act = quantize_act_q8;
    lfm_matvec_fn mv[] = {mv_f32, mv_f16, mv_bf16, mv_q8_0, mv_q4_0};
    lfm_gemm_fn mm[] = {mm_f32, mm_f16, mm_bf16, mm_q8_0, mm_q4_0};
    lfm_row_fn rw[] = {row_f32, row_f16, row_bf16, row_q8_0, row_q4_0};
    for (int i = 0; i < LFM_TYPE_BLOCK32_COUNT; i++) {
        t->matvec[i] = mv[i];
        t->gemm[i] = mm[i];
        t->row[i] = rw[i];
    }
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
    lfm_register_kquant_scalar(t);
    for (int f = 0; f < LFM_FN_COUNT; f++) LFM_MARK(t, f, LFM_TIER_SCALAR);
}
