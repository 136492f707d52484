// Internal interface of the kernel layer: one table of function pointers per ISA tier, filled from the scalar
// reference upwards (each tier overrides only what it implements, so every function falls back to the best lower
// tier). Not part of the public header.
#ifndef LFM_KERNELS_INTERNAL_H
#define LFM_KERNELS_INTERNAL_H

#include "CKernels.h"
#include <string.h>

/// Matrix-vector for rows [r0, r1): y[r] = dot(row r, x). `xf` float activations, or (xq, xd, xs) q8 blocks.
typedef void (*lfm_matvec_fn)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                              const float *xd, const int32_t *xs, float *y);
/// Matrix-matrix for rows [r0, r1) × tokens [0, T); X rows `ldx` floats apart, quantized rows `ldq` apart.
typedef void (*lfm_gemm_fn)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                            const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy);
typedef void (*lfm_row_fn)(const uint8_t *row, int cols, float *out);
/// Matrix-vector for four tokens at once (q8 activations), each token's result bit-equal to the same tier's
/// `lfm_matvec_fn` on it alone: y[t][r] = dot(row r, token t) for rows [r0, r1).
typedef void (*lfm_matvec4_fn)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *const *xq,
                               const float *const *xd, const int32_t *const *xs, float *const *y);

/// A 64-byte aligned buffer of at least `bytes` owned by the calling thread, one per `slot` (0 or 1), reused from
/// call to call (the per-call token tables of the decode kernels would otherwise be allocated and freed thousands of
/// times a step); freed when the thread exits. NULL if memory runs out. A kernel must not call another kernel while
/// it holds a slot that kernel uses.
void *lfm_scratch(int slot, size_t bytes);

/// Prefetches `lines` cache lines 4 KiB past `p`: the decode kernels read rows front to back, and a pass that is
/// slower per byte (four tokens at once) would otherwise leave the hardware prefetcher behind.
static inline void lfm_prefetch_ahead(const void *p, int lines) {
    for (int i = 0; i < lines; i++) __builtin_prefetch((const char *)p + 4096 + 64 * i, 0, 3);
}

enum {
    LFM_TYPE_F32,
    LFM_TYPE_F16,
    LFM_TYPE_BF16,
    LFM_TYPE_Q8_0,
    LFM_TYPE_Q4_0,
    LFM_TYPE_Q4_K, // the K-quants: kern_kquant_*.c register them on each tier
    LFM_TYPE_Q5_K,
    LFM_TYPE_Q6_K,
    LFM_TYPE_Q3_K,
    LFM_TYPE_COUNT
};
/// The types `lfm_set_products` installs (f32 … q4_0, in order); the K-quants are installed by their own files.
#define LFM_TYPE_BLOCK32_COUNT (LFM_TYPE_Q4_0 + 1)

/// The functions of one table, by index (for reporting which tier serves each).
enum {
    LFM_FN_QUANT_ACT,
    LFM_FN_MATVEC, /* + type */
    LFM_FN_GEMM = LFM_FN_MATVEC + LFM_TYPE_COUNT,
    LFM_FN_ROW = LFM_FN_GEMM + LFM_TYPE_COUNT,
    LFM_FN_SILU = LFM_FN_ROW + LFM_TYPE_COUNT,
    LFM_FN_GLU,
    LFM_FN_GELU,
    LFM_FN_RELU,
    LFM_FN_ELU,
    LFM_FN_LAYERNORM,
    LFM_FN_RMSNORM,
    LFM_FN_SOFTMAX,
    LFM_FN_ATTEND,
    LFM_FN_AXPY,
    LFM_FN_DOT,
    LFM_FN_COUNT
};

typedef struct lfm_table {
    void (*quantize_act)(const float *x, int n, int8_t *q, float *d, int32_t *s);
    lfm_matvec_fn matvec[LFM_TYPE_COUNT];
    lfm_gemm_fn gemm[LFM_TYPE_COUNT];
    lfm_row_fn row[LFM_TYPE_COUNT];
    /// Four-token matvec where a tier has one, NULL otherwise; valid only with the matvec of the same tier
    /// (`matvec4_from`), since the two share one summation order — the dispatcher drops a mismatched one.
    lfm_matvec4_fn matvec4[LFM_TYPE_COUNT];
    signed char matvec4_from[LFM_TYPE_COUNT];
    void (*silu)(float *x, size_t n);
    void (*glu)(const float *a, const float *g, size_t n, float *y);
    void (*gelu)(float *x, size_t n);
    void (*relu)(float *x, size_t n);
    void (*elu)(const float *x, float *y, size_t n);
    void (*layernorm)(const float *x, const float *w, const float *b, int n, float eps, float *y);
    void (*rmsnorm)(const float *x, const float *w, int n, float eps, float *y);
    void (*softmax)(float *x, int n);
    void (*attend)(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *sc,
                   float *out);
    void (*axpy)(float a, const float *x, float *y, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
    /// Tier that provided each function (LFM_FN_*), for `lfm_kernel_report`.
    signed char from[LFM_FN_COUNT];
} lfm_table;

/// Registration: each sets the pointers it implements and marks them with `tier`.
void lfm_register_scalar(lfm_table *t);
void lfm_register_avx2(lfm_table *t);
void lfm_register_avx2_vnni(lfm_table *t);
void lfm_register_avx512_vnni256(lfm_table *t);
void lfm_register_avx512(lfm_table *t);
void lfm_register_neon(lfm_table *t);
void lfm_register_neon_dotprod(lfm_table *t);
void lfm_register_neon_i8mm(lfm_table *t);
/// The K-quant products of each tier (kern_kquant_*.c), called by the tier's own registration.
void lfm_register_kquant_scalar(lfm_table *t);
void lfm_register_kquant_avx2(lfm_table *t);
void lfm_register_kquant_avx2_vnni(lfm_table *t);
void lfm_register_kquant_avx512_vnni256(lfm_table *t);
void lfm_register_kquant_avx512(lfm_table *t);
void lfm_register_kquant_neon(lfm_table *t);
void lfm_register_kquant_neon_dotprod(lfm_table *t);
/// OpenBLAS for large F32 GEMMs on top of a vector tier, when the library can be loaded (blas.c).
void lfm_register_blas(lfm_table *t, int tier);

static inline int lfm_type_index(int ggml_type) {
    switch (ggml_type) {
    case LFM_T_F32:
        return LFM_TYPE_F32;
    case LFM_T_F16:
        return LFM_TYPE_F16;
    case LFM_T_BF16:
        return LFM_TYPE_BF16;
    case LFM_T_Q8_0:
        return LFM_TYPE_Q8_0;
    case LFM_T_Q4_0:
        return LFM_TYPE_Q4_0;
    case LFM_T_Q4_K:
        return LFM_TYPE_Q4_K;
    case LFM_T_Q5_K:
        return LFM_TYPE_Q5_K;
    case LFM_T_Q6_K:
        return LFM_TYPE_Q6_K;
    case LFM_T_Q3_K:
        return LFM_TYPE_Q3_K;
    }
    return -1;
}

static inline size_t lfm_row_bytes(int type_index, int cols) {
    switch (type_index) {
    case LFM_TYPE_F32:
        return (size_t)cols * 4;
    case LFM_TYPE_F16:
    case LFM_TYPE_BF16:
        return (size_t)cols * 2;
    case LFM_TYPE_Q8_0:
        return (size_t)cols / 32 * 34;
    case LFM_TYPE_Q4_0:
        return (size_t)cols / 32 * 18;
    case LFM_TYPE_Q4_K:
        return (size_t)cols / 256 * LFM_Q4_K_BYTES;
    case LFM_TYPE_Q5_K:
        return (size_t)cols / 256 * LFM_Q5_K_BYTES;
    case LFM_TYPE_Q6_K:
        return (size_t)cols / 256 * LFM_Q6_K_BYTES;
    case LFM_TYPE_Q3_K:
        return (size_t)cols / 256 * LFM_Q3_K_BYTES;
    }
    return 0;
}

static inline float lfm_b2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t lfm_rd16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/// K-quant super-block helpers shared by the tiers (kquant.c has the layouts). Sub-block j's 6-bit scale and min.
static inline void lfm_kq_sm(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}
/// The inverse: the 12 scale bytes from sub-block j's 6-bit scale ls[j] and min lm[j] (j < 4 in the low 6 bits of
/// bytes j / j + 4, j ≥ 4 as nibbles of byte j + 4 with the top two bits in bytes j − 4 / j).
static inline void lfm_kq_pack_sm(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}
/// One Q4_K/Q5_K super-block's dot from the exact integer dots of its eight 32-element sub-blocks with the q8
/// activation blocks (`xd`, `xs`: that super-block's eight scales and quant sums):
/// Σⱼ xdⱼ·(d·scⱼ·isumⱼ − dmin·mⱼ·xsⱼ).
static inline float lfm_kq_affine_block(const uint8_t *blk, const int32_t *isum, const float *xd, const int32_t *xs) {
    uint16_t h0, h1;
    memcpy(&h0, blk, 2);
    memcpy(&h1, blk + 2, 2);
    float d = lfm_f16_to_f32(h0), dmin = lfm_f16_to_f32(h1), acc = 0.f;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        lfm_kq_sm(j, blk + 4, &sc, &m);
        acc += xd[j] * (d * (float)(sc * isum[j]) - dmin * (float)(m * xs[j]));
    }
    return acc;
}
/// One Q6_K super-block's dot from the exact integer dots of its sixteen 16-element sub-blocks (levels − 32):
/// Σ_b xd_b·d·(sc₂b·isum₂b + sc₂b₊₁·isum₂b₊₁) over its eight q8 activation blocks.
static inline float lfm_kq_q6_block(const uint8_t *blk, const int32_t *isum, const float *xd) {
    uint16_t h;
    memcpy(&h, blk + 208, 2);
    const int8_t *sc = (const int8_t *)(blk + 192);
    float d = lfm_f16_to_f32(h), acc = 0.f;
    for (int b = 0; b < 8; b++) acc += xd[b] * (d * (float)(sc[2 * b] * isum[2 * b] + sc[2 * b + 1] * isum[2 * b + 1]));
    return acc;
}

/// The sixteen signed scales of a Q3_K super-block (6 bits each, stored + 32) from its 12 scale bytes: scale j's low
/// nibble is the low (j < 8) or high nibble of byte j mod 8, its top two bits are bits 2·(j / 4) of byte 8 + j mod 4.
/// Four scales per 32-bit word (little-endian byte order, as the file's): words 0/1 take the low nibbles of bytes
/// 0-3 / 4-7, words 2/3 their high nibbles, each with two bits of bytes 8-11 on top.
static inline void lfm_q3k_scales(const uint8_t *s, int8_t *out) {
    uint32_t a[3], w[4];
    memcpy(a, s, 12);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    w[0] = (a[0] & m4) | ((a[2] & m2) << 4);
    w[1] = (a[1] & m4) | (((a[2] >> 2) & m2) << 4);
    w[2] = ((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4);
    w[3] = ((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4);
    // − 32 in every byte without borrows between bytes: each byte gets its top bit set first (b + 128 ≥ 32)
    for (int k = 0; k < 4; k++) w[k] = ((w[k] | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
    memcpy(out, w, 16);
}
/// The inverse for one scale: sub-block j's stored scale l (0..63) into the 12 scale bytes (zeroed first).
static inline void lfm_q3k_put_scale(uint8_t *s, int j, int l) {
    if (j < 8)
        s[j] = (uint8_t)(l & 0xF);
    else
        s[j - 8] |= (uint8_t)((l & 0xF) << 4);
    s[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}
/// Completes a Q3_K super-block whose d and scales are stored (kquant.c): levels requantized from the stored scales
/// (sub-blocks whose scale is zero keep L's, given as level + 4), then packed into hmask and qs.
void lfm_q3k_finish(const float *x, uint8_t *blk, uint8_t *L);
/// One Q3_K super-block's dot from the exact integer dots of its sixteen 16-element sub-blocks (levels − 4), as
/// lfm_kq_q6_block: Σ_b xd_b·d·(sc₂b·isum₂b + sc₂b₊₁·isum₂b₊₁).
static inline float lfm_kq_q3_block(const uint8_t *blk, const int32_t *isum, const float *xd) {
    int8_t sc[16];
    lfm_q3k_scales(blk + 96, sc);
    float d = lfm_f16_to_f32(lfm_rd16(blk + 108)), acc = 0.f;
    for (int b = 0; b < 8; b++) acc += xd[b] * (d * (float)(sc[2 * b] * isum[2 * b] + sc[2 * b + 1] * isum[2 * b + 1]));
    return acc;
}

/// Scalar reference pieces that vector tiers reuse for tails and odd shapes.
void lfm_scalar_gemm_generic(lfm_matvec_fn mv, const uint8_t *w, size_t ld, int cols, int r0, int r1, int T,
                             const float *X, int ldx, const int8_t *XQ, const float *XD, const int32_t *XS, int ldq,
                             float *Y, int ldy);
/// A GEMM that runs one matvec per token (the scalar tier's, and where a vector tier has no tile of its own).
#define LFM_GEMM_FROM_MATVEC(NAME, MV)                                                                                 \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,            \
                     const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {               \
        lfm_scalar_gemm_generic(MV, w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);                          \
    }

/// A row of unsigned-level weights for the x86 tile GEMM: per 32-element block b, 32 level bytes at un + 32·b and
/// the level scale dw[b]; the offset factors mw (per block, or per 16 elements for LFM_LEVELS_HALVES) unless the
/// kind is LFM_LEVELS_SAME; for LFM_LEVELS_HALVES also the integer scale of each 16 elements, hsc.
typedef void (*lfm_levels_fn)(const uint8_t *row, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc);
enum {
    LFM_LEVELS_SAME,   // w = dw·(level + coef) per block (Q4_0: coef −8)
    LFM_LEVELS_BLOCK,  // w = dw·level + coef·mw per block (Q4_K, Q5_K: coef −1)
    LFM_LEVELS_HALVES, // w = dw·hsc·(level + coef) per 16 elements, mw = dw·hsc (Q6_K: coef −32, levels ≤ 63;
                       // Q3_K: coef −4, levels ≤ 7)
};
#if defined(__x86_64__)
/// x86_int8.h's 4-row × 4-token GEMM for unsigned-level weights (Q4_0, Q3_K, Q4_K, Q5_K, Q6_K), AVX2, AVX-VNNI and
/// AVX512-VNNI (256-bit) flavours; `mv` runs the tokens and rows outside the tiles.
void lfm_gemm_levels_avx2(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                          const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy,
                          lfm_levels_fn levels, int kind, float coef, lfm_matvec_fn mv);
void lfm_gemm_levels_vnni(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                          const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy,
                          lfm_levels_fn levels, int kind, float coef, lfm_matvec_fn mv);
void lfm_gemm_levels_evnni(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                           const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy,
                           lfm_levels_fn levels, int kind, float coef, lfm_matvec_fn mv);
#endif

/// The active table (set once at start from LFM_CPU or the CPU; tests switch it with lfm_set_tier).
const lfm_table *lfm_active(void);

#define LFM_MARK(t, fn, tier) ((t)->from[(fn)] = (signed char)(tier))

/// Installs a tier's matvec and GEMM for the f32 … q4_0 weight types (LFM_TYPE_BLOCK32_COUNT, in LFM_TYPE_* order).
static inline void lfm_set_products(lfm_table *t, const lfm_matvec_fn *mv, const lfm_gemm_fn *mm, int tier) {
    for (int i = 0; i < LFM_TYPE_BLOCK32_COUNT; i++) {
        t->matvec[i] = mv[i];
        LFM_MARK(t, LFM_FN_MATVEC + i, tier);
        t->gemm[i] = mm[i];
        LFM_MARK(t, LFM_FN_GEMM + i, tier);
    }
}

#endif
