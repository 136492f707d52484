// The x86 tiers' K-quant products (Q3_K, Q4_K, Q5_K, Q6_K weights × q8 activations in blocks of 32). Each weight
// super-block is unpacked once into 8-bit levels and per-sub-block float factors, then dotted with up to four
// tokens' activations (GEMM) or one (matvec): VPMADDUBSW/VPMADDWD give exact integer dots per 32 elements, scaled in
// float per sub-block. The avx2-vnni tier uses these too; the avx512 tier has its own one-token products (512-bit
// integer dots, the same float operations, so the same bits) and a bf16 prefill in kern_avx512.c.
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
// Lane j of the result = the sum of s[j]'s eight lanes (a VPHADDD tree, then the two 128-bit halves added).
AVX2 static inline __m256i sum_lanes8(const __m256i *s) {
    __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
    __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}
// Σⱼ xdⱼ·(d·scⱼ·isumⱼ) accumulated in *acc (the eight integer sums gathered into one vector first, so one
// conversion and one fma per super-block), Σⱼ xdⱼ·dmin·mⱼ·xsⱼ in *accm (subtracted at the end).
AVX2 static inline void affine_dot(const affine_sb *u, const int8_t *x, const float *xd, const int32_t *xs, __m256 *acc,
                                   __m256 *accm) {
    __m256 xdv = _mm256_loadu_ps(xd);
    __m256i s[8];
    for (int j = 0; j < 8; j++) s[j] = udot32(u->q[j], x + 32 * j);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum_lanes8(s)), _mm256_mul_ps(u->dsc, xdv), *acc);
    __m256i xsv = _mm256_loadu_si256((const __m256i *)xs);
    *accm = _mm256_fmadd_ps(_mm256_mul_ps(u->dmn, xdv), _mm256_cvtepi32_ps(xsv), *accm);
}

// Q6_K: the levels stay unsigned (0..63) so that one VPMADDUBSW takes them as they are (pairs ≤ 2·63·127 < 2^15);
// VPMADDWD then applies the 16-element scales in integers, the eight sub-block sums of a super-block are gathered into
// one vector (a VPHADDD tree), and the −32 offset is Σ scale · Σx per 16 elements (the activations' half sums,
// computed once per call). Per super-block and token: one int→float conversion and one fma.
typedef struct {
    __m256i q[8], sc[8], s16; // levels per 32 elements; [sc_2b ×8 | sc_2b+1 ×8] per block b; the 16 scales
    float d;
} q6_sb;

// The sixteen int16 scales, and per block b the pair [sc_2b ×8 | sc_2b+1 ×8] for VPMADDWD.
AVX2 static inline void sixteen_scales(q6_sb *u, const int8_t *sc) {
    u->s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
    const __m256i lo = _mm256_permute4x64_epi64(u->s16, 0x44), hi = _mm256_permute4x64_epi64(u->s16, 0xee);
    for (int b = 0; b < 8; b++) {
        // int16 scale 2b' in the low 128-bit lane, 2b'+1 in the high one (b' = b mod 4, from lo or hi)
        char e = (char)(4 * (b & 3)), f = (char)(4 * (b & 3) + 2);
        __m256i m = _mm256_setr_epi8(e, e + 1, e, e + 1, e, e + 1, e, e + 1, e, e + 1, e, e + 1, e, e + 1, e, e + 1,
                                     f, f + 1, f, f + 1, f, f + 1, f, f + 1, f, f + 1, f, f + 1, f, f + 1, f, f + 1);
        u->sc[b] = _mm256_shuffle_epi8(b < 4 ? lo : hi, m);
    }
}
AVX2 static inline void unpack_q6_k(const uint8_t *blk, q6_sb *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
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
    }
    sixteen_scales(u, (const int8_t *)(blk + 192));
    u->d = f16at(blk + 208);
}
// The sixteen signed Q3_K scales from the 12 scale bytes, as lfm_q3k_scales does it in words: lanes 0-3 take the low
// nibbles of words 0, 1 then their high nibbles, each with two bits of word 2 on top; then − 32 per byte.
AVX2 static inline __m128i q3k_scales(const uint8_t *s) {
    uint32_t a[3];
    memcpy(a, s, 12);
    __m128i A = _mm_setr_epi32((int)a[0], (int)a[1], (int)a[0], (int)a[1]), C = _mm_set1_epi32((int)a[2]);
    __m128i lo = _mm_and_si128(_mm_srlv_epi32(A, _mm_setr_epi32(0, 0, 4, 4)), _mm_set1_epi8(0x0f));
    __m128i hi = _mm_and_si128(_mm_srlv_epi32(C, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi32(hi, 4)), _mm_set1_epi8(32));
}
// Q3_K in the same form: levels 0..7 (qs's two bits | hmask's bit << 2), the sixteen 6-bit scales − 32, offset −4.
AVX2 static inline void unpack_q3_k(const uint8_t *blk, q6_sb *u) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256i hm = _mm256_loadu_si256((const __m256i *)blk);
    for (int h = 0; h < 2; h++) {
        __m256i qs = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * h));
        for (int j = 0; j < 4; j++) {
            int b = 4 * h + j;
            __m256i hb = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, b), one), 2);
            u->q[b] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3), hb);
        }
    }
    int8_t sc[16];
    _mm_storeu_si128((__m128i *)sc, q3k_scales(blk + 96));
    sixteen_scales(u, sc);
    u->d = f16at(blk + 108);
}
// Σ x per 16 elements of one token's activations (n/16 values, int16: |Σ| ≤ 16·127).
AVX2 static void half_sums(const int8_t *x, int n, int16_t *out) {
    const __m256i one = _mm256_set1_epi8(1);
    for (int i = 0; i < n; i += 32) {
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(one, _mm256_loadu_si256((const __m256i *)(x + i))),
                                      _mm256_set1_epi16(1)); // s32 lanes: 4 elements each
        __m128i h = _mm_hadd_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1)); // [a01 a23 b01 b23]
        h = _mm_hadd_epi32(h, h);                                                             // [a b a b]
        out[i / 16] = (int16_t)_mm_cvtsi128_si32(h);
        out[i / 16 + 1] = (int16_t)_mm_extract_epi32(h, 1);
    }
}
// `shift`: log2 of the level offset (Q6_K 32, Q3_K 4).
AVX2 static inline void kq16_dot(const q6_sb *u, const int8_t *x, const float *xd, const int16_t *hs, __m256 *acc,
                                 int shift) {
    __m256i s[8];
    for (int b = 0; b < 8; b++)
        s[b] = _mm256_madd_epi16(_mm256_maddubs_epi16(u->q[b], _mm256_loadu_si256((const __m256i *)(x + 32 * b))),
                                 u->sc[b]);
    __m256i t = sum_lanes8(s); // one sum per block
    __m256i off = _mm256_madd_epi16(u->s16, _mm256_loadu_si256((const __m256i *)hs));
    t = _mm256_sub_epi32(t, _mm256_slli_epi32(off, shift));
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(_mm256_set1_ps(u->d), _mm256_loadu_ps(xd)), *acc);
}

// Rows [r0, r1) × tokens [0, T): each row's super-blocks unpacked once per tile of TILE tokens (decode reads the
// rows front to back: the lines 4 KiB ahead are prefetched).
#define KQ_PRODUCT(NAME, SB, UNPACK, BYTES, DOT, FINISH, PREP, DONE)                                                   \
    AVX2 static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const int8_t *XQ,              \
                          const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {                            \
        int nb = cols / 256, qb = ldq / 32;                                                                            \
        PREP;                                                                                                          \
        for (int r = r0; r < r1; r++) {                                                                                \
            const uint8_t *row = w + (size_t)r * ld;                                                                   \
            for (int t0 = 0; t0 < T; t0 += TILE) {                                                                     \
                int tn = T - t0 < TILE ? T - t0 : TILE;                                                                \
                __m256 acc[TILE], accm[TILE];                                                                          \
                for (int k = 0; k < TILE; k++) acc[k] = accm[k] = _mm256_setzero_ps();                                 \
                for (int i = 0; i < nb; i++) {                                                                         \
                    SB u;                                                                                              \
                    lfm_prefetch_ahead(row + (size_t)i * BYTES, (BYTES + 63) / 64);                                    \
                    UNPACK(row + (size_t)i * BYTES, &u);                                                               \
                    for (int k = 0; k < tn; k++) {                                                                     \
                        size_t t = (size_t)(t0 + k);                                                                   \
                        DOT;                                                                                           \
                    }                                                                                                  \
                }                                                                                                      \
                for (int k = 0; k < tn; k++) Y[(size_t)(t0 + k) * ldy + r] = FINISH;                                   \
            }                                                                                                          \
        }                                                                                                              \
        DONE;                                                                                                          \
    }
KQ_PRODUCT(prod_q4_k, affine_sb, unpack_q4_k, LFM_Q4_K_BYTES,
           affine_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, XS + t * qb + 8 * i, &acc[k], &accm[k]),
           hsum(_mm256_sub_ps(acc[k], accm[k])), (void)0, (void)0)
KQ_PRODUCT(prod_q5_k, affine_sb, unpack_q5_k, LFM_Q5_K_BYTES,
           affine_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, XS + t * qb + 8 * i, &acc[k], &accm[k]),
           hsum(_mm256_sub_ps(acc[k], accm[k])), (void)0, (void)0)
#define KQ16_PRODUCT(NAME, UNPACK, BYTES, SHIFT)                                                                       \
    KQ_PRODUCT(NAME, q6_sb, UNPACK, BYTES,                                                                             \
               kq16_dot(&u, XQ + t * ldq + 256 * i, XD + t * qb + 8 * i, hs + t * (size_t)(cols / 16) + 16 * i,        \
                        &acc[k], SHIFT),                                                                               \
               hsum(acc[k]), int16_t *hs = malloc(sizeof(int16_t) * (size_t)(T > 0 ? T : 1) * (cols / 16) + 64);       \
               for (int t = 0; t < T; t++) half_sums(XQ + (size_t)t * ldq, cols, hs + (size_t)t * (cols / 16)),        \
               free(hs))
KQ16_PRODUCT(prod_q6_k, unpack_q6_k, LFM_Q6_K_BYTES, 5)
KQ16_PRODUCT(prod_q3_k, unpack_q3_k, LFM_Q3_K_BYTES, 2)

#define KQ_ENTRY(MV, PROD)                                                                                             \
    static void MV(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,           \
                   const float *xd, const int32_t *xs, float *y) {                                                     \
        (void)xf;                                                                                                      \
        PROD(w, ld, cols, r0, r1, 1, xq, xd, xs, cols, y, 0);                                                          \
    }
KQ_ENTRY(mv_q4_k, prod_q4_k)
KQ_ENTRY(mv_q5_k, prod_q5_k)
KQ_ENTRY(mv_q6_k, prod_q6_k)
KQ_ENTRY(mv_q3_k, prod_q3_k)

// Prefill through x86_int8.h's 4-row × 4-token tile GEMM, where one u8×s8 product serves four tokens (the
// products above spend one per token). Q4_K / Q5_K: a row's levels per 32-element sub-block, dw = d·scⱼ and
// mw = dmin·mⱼ (w = dw·level − mw). Q6_K: levels 0..63, dw = d, the integer scale of each 16 elements and
// mw = d·scale (w = d·scale·(level − 32)).
#define KQ_LEVELS(NAME, UNPACK, BYTES)                                                                                 \
    AVX2 static void NAME(const uint8_t *row, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc) {               \
        (void)hsc;                                                                                                     \
        for (int i = 0; i < nb / 8; i++) {                                                                             \
            affine_sb u;                                                                                               \
            UNPACK(row + (size_t)i * BYTES, &u);                                                                       \
            for (int j = 0; j < 8; j++) _mm256_store_si256((__m256i *)(un + 256 * (size_t)i + 32 * j), u.q[j]);        \
            _mm256_storeu_ps(dw + 8 * i, u.dsc);                                                                       \
            _mm256_storeu_ps(mw + 8 * i, u.dmn);                                                                       \
        }                                                                                                              \
    }
KQ_LEVELS(levels_q4_k, unpack_q4_k, LFM_Q4_K_BYTES)
KQ_LEVELS(levels_q5_k, unpack_q5_k, LFM_Q5_K_BYTES)
// Q3_K as Q6_K with levels 0..7 and offset −4.
AVX2 static inline void levels16(const uint8_t *row, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc, int q3) {
    for (int i = 0; i < nb / 8; i++) {
        q6_sb u;
        int8_t sc[16];
        if (q3) {
            const uint8_t *blk = row + (size_t)i * LFM_Q3_K_BYTES;
            unpack_q3_k(blk, &u);
            lfm_q3k_scales(blk + 96, sc);
        } else {
            const uint8_t *blk = row + (size_t)i * LFM_Q6_K_BYTES;
            unpack_q6_k(blk, &u);
            memcpy(sc, blk + 192, 16);
        }
        for (int j = 0; j < 8; j++) {
            _mm256_store_si256((__m256i *)(un + 256 * (size_t)i + 32 * j), u.q[j]);
            dw[8 * i + j] = u.d;
        }
        for (int h = 0; h < 16; h++) {
            hsc[16 * i + h] = sc[h];
            mw[16 * i + h] = u.d * (float)sc[h];
        }
    }
}
AVX2 static void levels_q6_k(const uint8_t *row, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc) {
    levels16(row, nb, un, dw, mw, hsc, 0);
}
AVX2 static void levels_q3_k(const uint8_t *row, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc) {
    levels16(row, nb, un, dw, mw, hsc, 1);
}
#define KQ_TILE_GEMM(NAME, FLAVOUR, LEVELS, KIND, COEF, MV)                                                            \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,            \
                     const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {               \
        FLAVOUR(w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy, LEVELS, KIND, COEF, MV);                      \
    }
KQ_TILE_GEMM(tile_q4_k_avx2, lfm_gemm_levels_avx2, levels_q4_k, LFM_LEVELS_BLOCK, -1.f, mv_q4_k)
KQ_TILE_GEMM(tile_q5_k_avx2, lfm_gemm_levels_avx2, levels_q5_k, LFM_LEVELS_BLOCK, -1.f, mv_q5_k)
KQ_TILE_GEMM(tile_q6_k_avx2, lfm_gemm_levels_avx2, levels_q6_k, LFM_LEVELS_HALVES, -32.f, mv_q6_k)
KQ_TILE_GEMM(tile_q3_k_avx2, lfm_gemm_levels_avx2, levels_q3_k, LFM_LEVELS_HALVES, -4.f, mv_q3_k)
KQ_TILE_GEMM(tile_q4_k_vnni, lfm_gemm_levels_vnni, levels_q4_k, LFM_LEVELS_BLOCK, -1.f, mv_q4_k)
KQ_TILE_GEMM(tile_q5_k_vnni, lfm_gemm_levels_vnni, levels_q5_k, LFM_LEVELS_BLOCK, -1.f, mv_q5_k)
KQ_TILE_GEMM(tile_q4_k_evnni, lfm_gemm_levels_evnni, levels_q4_k, LFM_LEVELS_BLOCK, -1.f, mv_q4_k)
KQ_TILE_GEMM(tile_q5_k_evnni, lfm_gemm_levels_evnni, levels_q5_k, LFM_LEVELS_BLOCK, -1.f, mv_q5_k)

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
                __m256i q = _mm256_sub_epi8(u.q[b], _mm256_set1_epi8(32)); // levels − 32
                __m128i v = _mm_loadl_epi64((const __m128i *)((const uint8_t *)&q + 8 * k));
                _mm256_storeu_ps(o + 8 * k,
                                 _mm256_mul_ps(k < 2 ? f0 : f1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
            }
        }
    }
}
AVX2 static void row_q3_k(const uint8_t *p, int cols, float *out) {
    for (int i = 0; i < cols / 256; i++) {
        const uint8_t *blk = p + (size_t)i * LFM_Q3_K_BYTES;
        int8_t sc[16];
        lfm_q3k_scales(blk + 96, sc);
        q6_sb u;
        unpack_q3_k(blk, &u);
        for (int b = 0; b < 8; b++) {
            float *o = out + 256 * i + 32 * b;
            __m256 f0 = _mm256_set1_ps(u.d * (float)sc[2 * b]), f1 = _mm256_set1_ps(u.d * (float)sc[2 * b + 1]);
            __m256i q = _mm256_sub_epi8(u.q[b], _mm256_set1_epi8(4)); // levels − 4
            for (int k = 0; k < 4; k++) {
                __m128i v = _mm_loadl_epi64((const __m128i *)((const uint8_t *)&q + 8 * k));
                _mm256_storeu_ps(o + 8 * k,
                                 _mm256_mul_ps(k < 2 ? f0 : f1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// avx512 one-token products. The integer sums per 32-element sub-block are the avx2 products' exactly (integer
// arithmetic: 512-bit VPDPBUSD, or VPMADDUBSW/VPMADDWD for Q6_K's signed 16-element scales, over 64 levels at a time),
// gathered into the same eight-lane vector; the float operations after it are the avx2 ones in the same order, so each
// row's result is bit-equal to the avx2 and avx2-vnni tiers'.
#define AVX512KQ __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

// Four vectors of 16 int32 partial sums, each [half A | half B] (8 lanes a half) → lanes 0–3: the sums of z0..z3's
// A halves, lanes 8–11: of their B halves.
AVX512KQ static inline __m512i sum_halves4(__m512i z0, __m512i z1, __m512i z2, __m512i z3) {
    __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi64(z0, z1), _mm512_unpackhi_epi64(z0, z1));
    __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi64(z2, z3), _mm512_unpackhi_epi64(z2, z3));
    __m512 af = _mm512_castsi512_ps(a), bf = _mm512_castsi512_ps(b);
    __m512i c = _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(af, bf, _MM_SHUFFLE(2, 0, 2, 0))),
                                 _mm512_castps_si512(_mm512_shuffle_ps(af, bf, _MM_SHUFFLE(3, 1, 3, 1))));
    return _mm512_add_epi32(c, _mm512_shuffle_i32x4(c, c, _MM_SHUFFLE(2, 3, 0, 1)));
}

// Q4_K / Q5_K: a 64-byte load of the levels holds groups g, g+1; its low nibbles are sub-blocks 2g and 2g+2, its high
// nibbles 2g+1 and 2g+3, so each row is dotted with the activations in sub-block order 0 2 1 3 4 6 5 7 (made once per
// call).
AVX512KQ static void mv_affine512(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *xq,
                                  const float *xd, const int32_t *xs, float *y, int q5) {
    static const int perm[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    int nb = cols / 256;
    int8_t *xp = aligned_alloc(64, (size_t)cols + 64);
    if (!xp) { // no memory for the reordered activations: the avx2 product (same bits)
        (q5 ? prod_q5_k : prod_q4_k)(w, ld, cols, r0, r1, 1, xq, xd, xs, cols, y, 0);
        return;
    }
    for (int i = 0; i < nb; i++)
        for (int k = 0; k < 8; k++) memcpy(xp + 256 * i + 32 * k, xq + 256 * i + 32 * perm[k], 32);
    const __m512i m4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
    // sum_halves4 gives [sb0 sb1 sb4 sb5 · · · · sb2 sb3 sb6 sb7 · · · ·]
    const __m512i order = _mm512_setr_epi32(0, 1, 8, 9, 2, 3, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    const size_t bytes = q5 ? LFM_Q5_K_BYTES : LFM_Q4_K_BYTES;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
        for (int i = 0; i < nb; i++) {
            const uint8_t *blk = row + (size_t)i * bytes, *qs = blk + (q5 ? 48 : 16);
            lfm_prefetch_ahead(blk, (int)((bytes + 63) / 64));
            affine_sb u;
            affine_factors(blk, &u);
            const int8_t *x = xp + 256 * (size_t)i;
            __m512i q0 = _mm512_loadu_si512((const void *)qs), q1 = _mm512_loadu_si512((const void *)(qs + 64));
            __m512i l0 = _mm512_and_si512(q0, m4), h0 = _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4);
            __m512i l1 = _mm512_and_si512(q1, m4), h1 = _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4);
            if (q5) {
                // fifth bits: bit 2g of qh byte e is element e of sub-block 2g, bit 2g+1 of 2g+1; the high 256 bits
                // take qh >> 2 (groups g+1)
                __m256i hb = _mm256_loadu_si256((const __m256i *)(blk + 16));
                __m512i H = _mm512_inserti64x4(_mm512_castsi256_si512(hb), _mm256_srli_epi16(hb, 2), 1);
                __m512i H1 = _mm512_srli_epi16(H, 4);
                l0 = _mm512_or_si512(l0, _mm512_slli_epi16(_mm512_and_si512(H, one), 4));
                h0 = _mm512_or_si512(h0, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H, 1), one), 4));
                l1 = _mm512_or_si512(l1, _mm512_slli_epi16(_mm512_and_si512(H1, one), 4));
                h1 = _mm512_or_si512(h1, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(H1, 1), one), 4));
            }
            __m512i z0 = _mm512_dpbusd_epi32(zero, l0, _mm512_load_si512((const void *)x));
            __m512i z1 = _mm512_dpbusd_epi32(zero, h0, _mm512_load_si512((const void *)(x + 64)));
            __m512i z2 = _mm512_dpbusd_epi32(zero, l1, _mm512_load_si512((const void *)(x + 128)));
            __m512i z3 = _mm512_dpbusd_epi32(zero, h1, _mm512_load_si512((const void *)(x + 192)));
            __m256i isum = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, sum_halves4(z0, z1, z2, z3)));
            // the avx2 affine_dot's float operations
            __m256 xdv = _mm256_loadu_ps(xd + 8 * i);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(u.dsc, xdv), acc);
            __m256i xsv = _mm256_loadu_si256((const __m256i *)(xs + 8 * i));
            accm = _mm256_fmadd_ps(_mm256_mul_ps(u.dmn, xdv), _mm256_cvtepi32_ps(xsv), accm);
        }
        y[r] = hsum(_mm256_sub_ps(acc, accm));
    }
    free(xp);
}

// Q6_K: 64 bytes of ql hold blocks 4h, 4h+1 in their low nibbles and 4h+2, 4h+3 in their high ones, the 32 qh bytes of
// the half the two high bits of all four, so each vector of 64 levels is contiguous in the activations. The 16-element
// scales ride in VPMADDWD, one scale per 128-bit lane. Q3_K (q3 = 1) in the same form: the 32 qs bytes of half h hold
// the two low bits of blocks 4h … 4h+3 at bits 0, 2, 4, 6 and the 32 hmask bytes their third bit at bits 4h … 4h+3,
// so a vector of blocks (4h, 4h+1) or (4h+2, 4h+3) is two shifts of each broadcast; levels 0..7, offset −4.
AVX512KQ static void mv_kq16_512(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *xq,
                                 const float *xd, float *y, int q3) {
    int nb = cols / 256;
    int16_t *hs = malloc(sizeof(int16_t) * (size_t)(cols / 16) + 64);
    if (!hs) {
        (q3 ? prod_q3_k : prod_q6_k)(w, ld, cols, r0, r1, 1, xq, xd, NULL, cols, y, 0);
        return;
    }
    half_sums(xq, cols, hs);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
    // qh << 4 (block 4h) | qh << 2 (4h+1); qh (4h+2) | qh >> 2 (4h+3): 16-bit lanes 0–15 and 16–31
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    // Q3_K: qs >> 0 | 2 (blocks 4h, 4h+1), >> 4 | 6 (4h+2, 4h+3); the third bit tested in hmask (bit 4h + [0 | 1],
    // 4h + [2 | 3]) and added as 4 under the byte mask
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i qa = shr, qb = _mm512_add_epi16(shr, _mm512_set1_epi16(4));
    __m512i hbit[2][2];
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 2; k++)
            hbit[h][k] = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (4 * h + 2 * k))),
                                            _mm256_set1_epi8((char)(1 << (4 * h + 2 * k + 1))), 1);
    // int16 scale s broadcast over 128-bit lane m: s = 8h + m (blocks 4h, 4h+1) or 8h + 4 + m (4h+2, 4h+3)
#define Q6_LANES(a) a, a, a, a, a, a, a, a
#define Q6_SIDX(v) Q6_LANES(4 * v), Q6_LANES(4 * v + 1), Q6_LANES(4 * v + 2), Q6_LANES(4 * v + 3)
    static const int16_t ix[4][32] __attribute__((aligned(64))) = {{Q6_SIDX(0)}, {Q6_SIDX(1)}, {Q6_SIDX(2)},
                                                                   {Q6_SIDX(3)}};
#undef Q6_SIDX
#undef Q6_LANES
    const __m512i sidx[4] = {_mm512_load_si512((const void *)ix[0]), _mm512_load_si512((const void *)ix[1]),
                             _mm512_load_si512((const void *)ix[2]), _mm512_load_si512((const void *)ix[3])};
    // sum_halves4 gives [b0 b2 b4 b6 · · · · b1 b3 b5 b7 · · · ·]
    const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < nb; i++) {
            const uint8_t *blk = row + (size_t)i * (q3 ? LFM_Q3_K_BYTES : LFM_Q6_K_BYTES);
            lfm_prefetch_ahead(blk, q3 ? (LFM_Q3_K_BYTES + 63) / 64 : (LFM_Q6_K_BYTES + 63) / 64);
            const int8_t *x = xq + 256 * (size_t)i;
            __m256i s16 =
                _mm256_cvtepi8_epi16(q3 ? q3k_scales(blk + 96) : _mm_loadu_si128((const __m128i *)(blk + 192)));
            __m512i S = _mm512_castsi256_si512(s16);
            __m512i z[4];
            __m512i H = q3 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk)) : m4;
            for (int h = 0; h < 2; h++) {
                __m512i A, B;
                if (q3) {
                    __m512i Q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * h)));
                    A = _mm512_and_si512(_mm512_srlv_epi16(Q, qa), m3);
                    B = _mm512_and_si512(_mm512_srlv_epi16(Q, qb), m3);
                    A = _mm512_mask_add_epi8(A, _mm512_test_epi8_mask(H, hbit[h][0]), A, four);
                    B = _mm512_mask_add_epi8(B, _mm512_test_epi8_mask(H, hbit[h][1]), B, four);
                } else {
                    __m512i L = _mm512_loadu_si512((const void *)(blk + 64 * h));
                    __m512i Q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
                    A = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_sllv_epi16(Q, shl), m2));
                    B = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4),
                                        _mm512_and_si512(_mm512_srlv_epi16(Q, shr), m2));
                }
                __m512i xa = _mm512_loadu_si512((const void *)(x + 128 * h)),
                        xb = _mm512_loadu_si512((const void *)(x + 128 * h + 64));
                z[2 * h] = _mm512_madd_epi16(_mm512_maddubs_epi16(A, xa), _mm512_permutexvar_epi16(sidx[2 * h], S));
                z[2 * h + 1] =
                    _mm512_madd_epi16(_mm512_maddubs_epi16(B, xb), _mm512_permutexvar_epi16(sidx[2 * h + 1], S));
            }
            __m256i t = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, sum_halves4(z[0], z[1], z[2], z[3])));
            // the avx2 kq16_dot's operations after the block sums
            __m256i off = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)(hs + 16 * i)));
            t = _mm256_sub_epi32(t, _mm256_slli_epi32(off, q3 ? 2 : 5));
            __m256 dv = _mm256_set1_ps(f16at(blk + (q3 ? 108 : 208)));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(dv, _mm256_loadu_ps(xd + 8 * i)), acc);
        }
        y[r] = hsum(acc);
    }
    free(hs);
}
static void mv_q4_k_512(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                        const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    mv_affine512(w, ld, cols, r0, r1, xq, xd, xs, y, 0);
}
static void mv_q5_k_512(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                        const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    mv_affine512(w, ld, cols, r0, r1, xq, xd, xs, y, 1);
}
static void mv_q6_k_512v(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                         const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    (void)xs;
    mv_kq16_512(w, ld, cols, r0, r1, xq, xd, y, 0);
}
static void mv_q3_k_512(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                        const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    (void)xs;
    mv_kq16_512(w, ld, cols, r0, r1, xq, xd, y, 1);
}

void lfm_register_kquant_avx2(lfm_table *t) {
    const int T = LFM_TIER_AVX2;
    const int kt[] = {LFM_TYPE_Q4_K, LFM_TYPE_Q5_K, LFM_TYPE_Q6_K, LFM_TYPE_Q3_K};
    lfm_matvec_fn mv[] = {mv_q4_k, mv_q5_k, mv_q6_k, mv_q3_k};
    lfm_gemm_fn mm[] = {tile_q4_k_avx2, tile_q5_k_avx2, tile_q6_k_avx2, tile_q3_k_avx2};
    lfm_row_fn row[] = {row_q4_k, row_q5_k, row_q6_k, row_q3_k};
    for (int i = 0; i < 4; i++) {
        t->matvec[kt[i]] = mv[i];
        t->gemm[kt[i]] = mm[i];
        t->row[kt[i]] = row[i];
        LFM_MARK(t, LFM_FN_MATVEC + kt[i], T);
        LFM_MARK(t, LFM_FN_GEMM + kt[i], T);
        LFM_MARK(t, LFM_FN_ROW + kt[i], T);
    }
}

void lfm_register_kquant_avx2_vnni(lfm_table *t) {
    t->gemm[LFM_TYPE_Q4_K] = tile_q4_k_vnni;
    t->gemm[LFM_TYPE_Q5_K] = tile_q5_k_vnni;
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_K, LFM_TIER_AVX2_VNNI);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q5_K, LFM_TIER_AVX2_VNNI);
}

void lfm_register_kquant_avx512_vnni256(lfm_table *t) {
    t->gemm[LFM_TYPE_Q4_K] = tile_q4_k_evnni;
    t->gemm[LFM_TYPE_Q5_K] = tile_q5_k_evnni;
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_K, LFM_TIER_AVX512);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q5_K, LFM_TIER_AVX512);
}

void lfm_register_kquant_avx512(lfm_table *t) {
    lfm_matvec_fn mv[] = {mv_q4_k_512, mv_q5_k_512, mv_q6_k_512v, mv_q3_k_512};
    const int kt[] = {LFM_TYPE_Q4_K, LFM_TYPE_Q5_K, LFM_TYPE_Q6_K, LFM_TYPE_Q3_K};
    for (int i = 0; i < 4; i++) {
        t->matvec[kt[i]] = mv[i];
        LFM_MARK(t, LFM_FN_MATVEC + kt[i], LFM_TIER_AVX512);
    }
}
#else
void lfm_register_kquant_avx2(lfm_table *t) { (void)t; }
void lfm_register_kquant_avx2_vnni(lfm_table *t) { (void)t; }
void lfm_register_kquant_avx512_vnni256(lfm_table *t) { (void)t; }
void lfm_register_kquant_avx512(lfm_table *t) { (void)t; }
#endif
