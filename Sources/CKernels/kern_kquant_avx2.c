// The avx2 tier's K-quant products (Q4_K, Q5_K, Q6_K weights × q8 activations in blocks of 32). Each weight
// super-block is unpacked once into 8-bit levels and per-sub-block float factors, then dotted with up to four
// tokens' activations (GEMM) or one (matvec): VPMADDUBSW/VPMADDWD give exact integer dots per 32 elements, scaled in
// float per sub-block. The avx2-vnni and avx512 tiers use these too (they fall back per function).
#include "internal.h"
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define TILE 4

AVX2 static inline float hsum(__m256 a) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}
AVX2 static inline float f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
// Lane j of v in every lane.
AVX2 static inline __m256 lane(__m256 v, int j) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j)); }
// Exact dot of 32 unsigned levels (≤ 63) with 32 int8 activations, as 8 int32 partial sums.
AVX2 static inline __m256i udot32(__m256i q, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// An unpacked Q4_K/Q5_K super-block: levels of the eight sub-blocks, d·scⱼ and dmin·mⱼ per lane j.
typedef struct {
    __m256i q[8];
    __m256 dsc, dmn;
} affine_sb;

AVX2 static inline void affine_factors(const uint8_t *blk, affine_sb *u) {
    // the 12 scale bytes as three words a, b, c: sc0-3 = a & 63, m0-3 = b & 63, sc4-7 = c's low nibbles with a's
    // top 2 bits, m4-7 = c's high nibbles with b's top 2 bits (byte-wise, four at a time)
    uint32_t a, b, c;
    memcpy(&a, blk + 4, 4);
    memcpy(&b, blk + 8, 4);
    memcpy(&c, blk + 12, 4);
    uint64_t sc = (uint64_t)(a & 0x3f3f3f3fu) | (uint64_t)((c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4)) << 32;
    uint64_t mn = (uint64_t)(b & 0x3f3f3f3fu) | (uint64_t)(((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4))
                                                    << 32;
    __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    __m256 mnf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
    u->dsc = _mm256_mul_ps(_mm256_set1_ps(f16at(blk)), scf);
    u->dmn = _mm256_mul_ps(_mm256_set1_ps(f16at(blk + 2)), mnf);
}
AVX2 static inline void unpack_q4_k(const uint8_t *blk, affine_sb *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int g = 0; g < 4; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * g));
        u->q[2 * g] = _mm256_and_si256(v, m4);
        u->q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    affine_factors(blk, u);
}
AVX2 static inline void unpack_q5_k(const uint8_t *blk, affine_sb *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 16));
    for (int g = 0; g < 4; g++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 48 + 32 * g));
        __m256i b0 = _mm256_slli_epi16(_mm256_and_si256(hb, one), 4);
        __m256i b1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4);
        hb = _mm256_srli_epi16(hb, 2);
        u->q[2 * g] = _mm256_or_si256(_mm256_and_si256(v, m4), b0);
        u->q[2 * g + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), b1);
    }
    affine_factors(blk, u);
}
// Σⱼ xdⱼ·(d·scⱼ·isumⱼ) accumulated in *acc, Σⱼ xdⱼ·dmin·mⱼ·xsⱼ in *accm (subtracted at the end).
AVX2 static inline void affine_dot(const affine_sb *u, const int8_t *x, const float *xd, const int32_t *xs, __m256 *acc,
                                   __m256 *accm) {
    __m256 xdv = _mm256_loadu_ps(xd);
    __m256 f = _mm256_mul_ps(u->dsc, xdv);
    __m256 a = *acc;
    for (int j = 0; j < 8; j++) a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(udot32(u->q[j], x + 32 * j)), lane(f, j), a);
    *acc = a;
    __m256 xsv = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)xs));
    *accm = _mm256_fmadd_ps(_mm256_mul_ps(u->dmn, xdv), xsv, *accm);
}

// An unpacked Q6_K super-block: levels − 32 (signed) per 32 elements and the two 16-element scales of each as int16.
typedef struct {
    __m256i q[8], sc[8];
    float d;
} q6_sb;

AVX2 static inline void unpack_q6_k(const uint8_t *blk, q6_sb *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30), off = _mm256_set1_epi8(32);
    const int8_t *sc = (const int8_t *)(blk + 192);
    for (int h = 0; h < 2; h++) {
        __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
        __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
        __m256i *q = u->q + 4 * h;
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m2));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
        for (int k = 0; k < 4; k++) q[k] = _mm256_sub_epi8(q[k], off);
    }
    for (int b = 0; b < 8; b++) u->sc[b] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * b + 1]), _mm_set1_epi16(sc[2 * b]));
    u->d = f16at(blk + 208);
}
AVX2 static inline void q6_dot(const q6_sb *u, const int8_t *x, const float *xd, __m256 *acc) {
    __m256 f = _mm256_mul_ps(_mm256_set1_ps(u->d), _mm256_loadu_ps(xd));
    __m256 a = *acc;
    for (int b = 0; b < 8; b++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x + 32 * b));
        // signed × signed through |x| · (q with x's sign): pairs stay within ±2·32·127
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(u->q[b], xv));
        __m256i s = _mm256_madd_epi16(p, u->sc[b]);
        a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), lane(f, b), a);
    }
    *acc = a;
}

// Rows [r0, r1) × tokens [0, T): each row's super-blocks unpacked once per tile of TILE tokens.
#define KQ_PRODUCT(NAME, SB, UNPACK, BYTES, DOT, FINISH)                                                               \
    AVX2 static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const int8_t *XQ,              \
                          const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {                            \
        int nb = cols / 256, qb = ldq / 32;                                                                            \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            for (int t0 = 0; t0 < T; t0 += TILE) {                                                                     \
                int tn = T - t0 < TILE ? T - t0 : TILE;                                                                \
                __m256 acc[TILE], accm[TILE];                                                                          \
                for (int k = 0; k < TILE; k++) acc[k] = accm[k] = _mm256_setzero_ps();                                 \
                for (int i = 0; i < nb; i++) {                                                                         \
                    SB u;                                                                                              \
                    UNPACK(row + (size_t)i * BYTES, &u);                                                               \
                    for (int k = 0; k < tn; k++) {                                                                     \
                        size_t t = (size_t)(t0 + k);                                                                   \
                        DOT;                                                                                           \
                    }                                                                                                  \
                }                                                                                                      \
                for (int k = 0; k < tn; k++) Y[(size_t)(t0 + k) * ldy + r] = FINISH;                                   \
            }                                                                                                          \
        }                                                                                                              \
    }
KQ_PRODUCT(prod_q4_k, affine_sb, unpack_q4_k, LFM_Q4_K_BYTES,
           affine_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, XS + t * qb + 8 * i, &acc[k], &accm[k]),
           hsum(_mm256_sub_ps(acc[k], accm[k])))
KQ_PRODUCT(prod_q5_k, affine_sb, unpack_q5_k, LFM_Q5_K_BYTES,
           affine_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, XS + t * qb + 8 * i, &acc[k], &accm[k]),
           hsum(_mm256_sub_ps(acc[k], accm[k])))
KQ_PRODUCT(prod_q6_k, q6_sb, unpack_q6_k, LFM_Q6_K_BYTES,
           q6_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, &acc[k]), hsum(acc[k]))

#define KQ_ENTRY(MV, MM, PROD)                                                                                         \
    static void MV(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,           \
                   const float *xd, const int32_t *xs, float *y) {                                                     \
        (void)xf;                                                                                                      \
        PROD(w, ld, cols, r0, r1, 1, xq, xd, xs, cols, y, 0);                                                          \
    }                                                                                                                  \
    static void MM(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,              \
                   const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {                 \
        (void)X;                                                                                                       \
        (void)ldx;                                                                                                     \
        PROD(w, ld, cols, r0, r1, T, XQ, XD, XS, ldq, Y, ldy);                                                         \
    }
KQ_ENTRY(mv_q4_k, mm_q4_k, prod_q4_k)
KQ_ENTRY(mv_q5_k, mm_q5_k, prod_q5_k)
KQ_ENTRY(mv_q6_k, mm_q6_k, prod_q6_k)

// Row dequantization, bit-equal to the scalar dequantizers (products and differences rounded separately, no FMA).
AVX2 static inline void store_levels(__m256i q, __m256 f, __m256 m, int sign_levels, float *out) {
    for (int k = 0; k < 4; k++) {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)&q + 8 * k));
        __m256 v = _mm256_cvtepi32_ps(sign_levels ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b));
        _mm256_storeu_ps(out + 8 * k, _mm256_sub_ps(_mm256_mul_ps(f, v), m));
    }
}
AVX2 static void row_affine(const uint8_t *p, int cols, float *out, int q5) {
    for (int i = 0; i < cols / 256; i++) {
        affine_sb u;
        if (q5)
            unpack_q5_k(p + (size_t)i * LFM_Q5_K_BYTES, &u);
        else
            unpack_q4_k(p + (size_t)i * LFM_Q4_K_BYTES, &u);
        for (int j = 0; j < 8; j++) store_levels(u.q[j], lane(u.dsc, j), lane(u.dmn, j), 0, out + 256 * i + 32 * j);
    }
}
AVX2 static void row_q4_k(const uint8_t *p, int cols, float *out) { row_affine(p, cols, out, 0); }
AVX2 static void row_q5_k(const uint8_t *p, int cols, float *out) { row_affine(p, cols, out, 1); }
AVX2 static void row_q6_k(const uint8_t *p, int cols, float *out) {
    for (int i = 0; i < cols / 256; i++) {
        const uint8_t *blk = p + (size_t)i * LFM_Q6_K_BYTES;
        const int8_t *sc = (const int8_t *)(blk + 192);
        q6_sb u;
        unpack_q6_k(blk, &u);
        for (int b = 0; b < 8; b++) {
            float *o = out + 256 * i + 32 * b;
            __m256 f0 = _mm256_set1_ps(u.d * sc[2 * b]), f1 = _mm256_set1_ps(u.d * sc[2 * b + 1]);
            for (int k = 0; k < 4; k++) {
                __m128i v = _mm_loadl_epi64((const __m128i *)((const uint8_t *)&u.q[b] + 8 * k));
                _mm256_storeu_ps(o + 8 * k,
                                 _mm256_mul_ps(k < 2 ? f0 : f1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
            }
        }
    }
}

void lfm_register_kquant_avx2(lfm_table *t) {
    const int T = LFM_TIER_AVX2;
    lfm_matvec_fn mv[] = {mv_q4_k, mv_q5_k, mv_q6_k};
    lfm_gemm_fn mm[] = {mm_q4_k, mm_q5_k, mm_q6_k};
    for (int i = 0; i < 3; i++) {
        t->matvec[LFM_TYPE_Q4_K + i] = mv[i];
        t->gemm[LFM_TYPE_Q4_K + i] = mm[i];
        LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q4_K + i, T);
        LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_K + i, T);
    }
    t->row[LFM_TYPE_Q4_K] = row_q4_k;
    t->row[LFM_TYPE_Q5_K] = row_q5_k;
    t->row[LFM_TYPE_Q6_K] = row_q6_k;
    for (int i = 0; i < 3; i++) LFM_MARK(t, LFM_FN_ROW + LFM_TYPE_Q4_K + i, T);
}
#else
void lfm_register_kquant_avx2(lfm_table *t) { (void)t; }
#endif
