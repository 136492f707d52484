// The avx512 tier (AVX-512 F/BW/VL/DQ + VNNI; bf16 dot products for prefill where AVX512_BF16 is present).
// Integer dots use VNNI; up to 4 rows per pass share the activation loads.
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>

int lfm_cpu_has_avx512bf16(void);

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

AVX512 static inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// Same results as the portable loop: amax/127 scale, x·(1/d) rounded to nearest even (lrintf's default mode).
AVX512 static void quantize_act_q8_avx512(const float *x, int n, int8_t *q, float *d, int32_t *s) {
    int nb = n / 32;
    for (int b = 0; b < nb; b++) {
        __m512 a = _mm512_loadu_ps(x + b * 32), c = _mm512_loadu_ps(x + b * 32 + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(c)));
        float db = amax / 127.f, id = db != 0.f ? 1.f / db : 0.f;
        __m512 iv = _mm512_set1_ps(id);
        __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, iv)), qc = _mm512_cvtps_epi32(_mm512_mul_ps(c, iv));
        _mm_storeu_si128((__m128i *)(q + b * 32), _mm512_cvtsepi32_epi8(qa));
        _mm_storeu_si128((__m128i *)(q + b * 32 + 16), _mm512_cvtsepi32_epi8(qc));
        d[b] = db;
        s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qc));
    }
}

AVX512 static void dot_f32_rows(const float *w, size_t ld, int nr, const float *x, int n, float *out) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        for (int r = 0; r < nr; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + r * ld + i), xv, acc[r]);
    }
    for (int r = 0; r < nr; r++) {
        float s = hsum512(acc[r]);
        for (int j = i; j < n; j++) s += w[r * ld + j] * x[j];
        out[r] = s;
    }
}

AVX512 static void dot_f16_rows(const uint16_t *w, size_t ld, int nr, const float *x, int n, float *out) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        for (int r = 0; r < nr; r++) {
            __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + r * ld + i)));
            acc[r] = _mm512_fmadd_ps(wv, xv, acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        float s = hsum512(acc[r]);
        for (int j = i; j < n; j++) s += lfm_f16_to_f32(w[r * ld + j]) * x[j];
        out[r] = s;
    }
}

AVX512 static void dot_bf16_rows(const uint16_t *w, size_t ld, int nr, const float *x, int n, float *out) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        for (int r = 0; r < nr; r++) {
            __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + r * ld + i)));
            __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
            acc[r] = _mm512_fmadd_ps(wv, xv, acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        float s = hsum512(acc[r]);
        for (int j = i; j < n; j++) s += lfm_b2f(w[r * ld + j]) * x[j];
        out[r] = s;
    }
}

AVX512 static inline float fp16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX512 static inline float hsum256(__m256 a) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}

// One 32-element block per step in 256-bit registers: |w| · sign(x, w) with VNNI (u8 × s8 → s32), one
// float FMA per block with the block's two scales. Four rows per pass share the activation loads; the
// accumulators are separate variables so they stay in registers.
#define Q8_STEP(acc, r)                                                                                                \
    {                                                                                                                  \
        const uint8_t *blk = w + (r) * ld + (size_t)b * 34;                                                            \
        __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));                                                   \
        __m256i dot = _mm256_dpbusd_epi32(zero, _mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));                   \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16(blk) * dx), acc);                           \
    }

AVX512 static void dot_q8_0_rows(const uint8_t *w, size_t ld, int nr, const int8_t *xq, const float *xd, int nb,
                                 float *out) {
    const __m256i zero = _mm256_setzero_si256();
    if (nr == 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            float dx = xd[b];
            Q8_STEP(a0, 0) Q8_STEP(a1, 1) Q8_STEP(a2, 2) Q8_STEP(a3, 3)
        }
        out[0] = hsum256(a0);
        out[1] = hsum256(a1);
        out[2] = hsum256(a2);
        out[3] = hsum256(a3);
        return;
    }
    for (int r = 0; r < nr; r++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int b = 0;
        for (; b + 2 <= nb; b += 2) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            float dx = xd[b];
            Q8_STEP(a0, r)
            b++;
            xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            dx = xd[b];
            Q8_STEP(a1, r)
            b--;
        }
        for (; b < nb; b++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            float dx = xd[b];
            Q8_STEP(a0, r)
        }
        out[r] = hsum256(_mm256_add_ps(a0, a1));
    }
}

#define Q4_STEP(acc, corr, r)                                                                                          \
    {                                                                                                                  \
        const uint8_t *blk = w + (r) * ld + (size_t)b * 18;                                                            \
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));                                                       \
        __m256i wv = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));                  \
        __m256i dot = _mm256_dpbusd_epi32(zero, wv, xv);                                                               \
        float sc = fp16(blk) * dx;                                                                                     \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(sc), acc);                                       \
        corr += sc * sx;                                                                                               \
    }

AVX512 static void dot_q4_0_rows(const uint8_t *w, size_t ld, int nr, const int8_t *xq, const float *xd,
                                 const int32_t *xs, int nb, float *out) {
    const __m256i zero = _mm256_setzero_si256();
    const __m128i m4 = _mm_set1_epi8(0x0f);
    if (nr == 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (int b = 0; b < nb; b++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            float dx = xd[b], sx = 8.f * (float)xs[b];
            Q4_STEP(a0, c0, 0) Q4_STEP(a1, c1, 1) Q4_STEP(a2, c2, 2) Q4_STEP(a3, c3, 3)
        }
        out[0] = hsum256(a0) - c0;
        out[1] = hsum256(a1) - c1;
        out[2] = hsum256(a2) - c2;
        out[3] = hsum256(a3) - c3;
        return;
    }
    for (int r = 0; r < nr; r++) {
        __m256 a0 = _mm256_setzero_ps();
        float c0 = 0;
        for (int b = 0; b < nb; b++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
            float dx = xd[b], sx = 8.f * (float)xs[b];
            Q4_STEP(a0, c0, r)
        }
        out[r] = hsum256(a0) - c0;
    }
}

// Decode (matrix-vector) of Q8_0 / Q4_0 in the x86 decode summation order of x86_int8.h, shared with the avx2 and
// avx2-vnni tiers (so every x86 tier gives the same bits): per token eight float chains, block b feeding chain
// (b mod 4, h) with h = 0 the products of elements e with e mod 8 < 4 (plus −8·Σx for Q4_0) and h = 1 the rest,
// then ((c00 + c01) + (c10 + c11)) + ((c20 + c21) + (c30 + c31)). One row at a time (the prefetcher follows one
// sequential stream); the integer parts are exact however they are formed.
#define TGT AVX512
#define SFX(n) n##_512
#define DOT(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define X86_INT8_CHAIN_HELPERS_ONLY
#include "x86_int8.h"
#undef X86_INT8_CHAIN_HELPERS_ONLY
#undef TGT
#undef SFX
#undef DOT

// The per-call tables of one token, per group of four blocks b..b+3 (lane j·4 + i of a 16-lane vector belongs to
// block b+j): x as [x_b+j[0..16) for j = 0..3 | x_b+j[16..32) for j = 0..3] (Q4_0: the low and high nibbles of the
// four blocks; Q8_0 reads xq as it is), the integer start −8·Σx in lane 4j (Q4_0, else 0) and dx in lanes 4j..4j+3.
typedef struct {
    int8_t *x;
    int32_t *corr;
    float *dx;
} one_token512;

static one_token512 one_token512_tables(int nb, const int8_t *xq, const float *xd, const int32_t *xs, int q4) {
    int ng = nb / 4;
    uint8_t *m = lfm_scratch(0, (size_t)ng * 256 + 64);
    one_token512 t = {(int8_t *)m, (int32_t *)(m + (size_t)ng * 128), (float *)(m + (size_t)ng * 192)};
    for (int g = 0; g < ng; g++)
        for (int j = 0; j < 4; j++) {
            int b = 4 * g + j;
            if (q4) {
                memcpy(t.x + (size_t)g * 128 + 16 * j, xq + 32 * b, 16);
                memcpy(t.x + (size_t)g * 128 + 64 + 16 * j, xq + 32 * b + 16, 16);
            }
            for (int i = 0; i < 4; i++) {
                t.corr[16 * g + 4 * j + i] = q4 && i == 0 ? -8 * xs[b] : 0;
                t.dx[16 * g + 4 * j + i] = xd[b];
            }
        }
    return t;
}

// Lanes 4j, 4j+1 ← the sums of lanes (4j, 4j+2) and (4j+1, 4j+3): block j's two integer parts [h0 h1] when lane
// 4j + m holds its groups m and m + 4 of four elements.
AVX512 static inline __m512i halves4(__m512i d) { return _mm512_add_epi32(d, _mm512_shuffle_epi32(d, 0x4e)); }

// The four scales of blocks at p, p + stride, … as 16 floats, each in its block's four lanes.
AVX512 static inline __m512 scales4(const uint8_t *p, int stride) {
    uint16_t h[4];
    for (int j = 0; j < 4; j++) memcpy(h + j, p + stride * j, 2);
    __m128 f = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)h));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                 _mm512_castps128_ps512(f));
}

// Blocks b..b+3 of one row for one token: their [h0 h1] pairs in lanes 4j, 4j+1.
AVX512 static inline __m512i group_q4_0(const uint8_t *blk, const int8_t *x, const int32_t *corr) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i q = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(blk + 2)));
    q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 20)), 1);
    q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 38)), 2);
    q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 56)), 3);
    __m512i d = _mm512_dpbusd_epi32(_mm512_load_si512((const void *)corr), _mm512_and_si512(q, m4),
                                    _mm512_load_si512((const void *)x));
    d = _mm512_dpbusd_epi32(d, _mm512_and_si512(_mm512_srli_epi16(q, 4), m4),
                            _mm512_load_si512((const void *)(x + 64)));
    return halves4(d);
}

// Q8_0 as |w| × (x with the sign of w), two blocks per vector; lane 4j + m then collects groups m and m + 4.
AVX512 static inline __m512i group_q8_0(const uint8_t *blk, const int8_t *x) {
    __m512i w0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 2))),
                                    _mm256_loadu_si256((const __m256i *)(blk + 36)), 1);
    __m512i w1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 70))),
                                    _mm256_loadu_si256((const __m256i *)(blk + 104)), 1);
    __m512i x0 = _mm512_loadu_si512((const void *)x), x1 = _mm512_loadu_si512((const void *)(x + 64));
    const __m512i z = _mm512_setzero_si512();
    x0 = _mm512_mask_sub_epi8(x0, _mm512_movepi8_mask(w0), z, x0);
    x1 = _mm512_mask_sub_epi8(x1, _mm512_movepi8_mask(w1), z, x1);
    __m512i d0 = _mm512_dpbusd_epi32(z, _mm512_abs_epi8(w0), x0), d1 = _mm512_dpbusd_epi32(z, _mm512_abs_epi8(w1), x1);
    // 128-bit lanes [d0.0 d0.2 d1.0 d1.2] + [d0.1 d0.3 d1.1 d1.3]: block j's groups m + (m + 4) in lane 4j + m
    return halves4(_mm512_add_epi32(_mm512_shuffle_i64x2(d0, d1, 0x88), _mm512_shuffle_i64x2(d0, d1, 0xdd)));
}

AVX512 static inline __attribute__((always_inline)) void mv_chains512(const uint8_t *w, size_t ld, int cols, int r0,
                                                                      int r1, const int8_t *xq, const float *xd,
                                                                      const int32_t *xs, float *y, int q4) {
    int nb = cols / 32, n4 = nb / 4 * 4, bs = q4 ? 18 : 34;
    one_token512 t = one_token512_tables(nb, xq, xd, xs, q4);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < n4; b += 4) {
            const uint8_t *blk = row + (size_t)b * bs;
            lfm_prefetch_ahead(blk, q4 ? 2 : 3);
            int g = b / 4;
            __m512i d = q4 ? group_q4_0(blk, t.x + (size_t)g * 128, t.corr + 16 * g) : group_q8_0(blk, xq + 32 * b);
            __m512 sc = _mm512_mul_ps(scales4(blk, bs), _mm512_load_ps(t.dx + 16 * g));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sc, acc);
        }
        float v[16] __attribute__((aligned(64))), c[8];
        if (n4 == nb) { // q4_chains_sum with the halves added in the vector
            _mm512_store_ps(v, _mm512_add_ps(acc, _mm512_permute_ps(acc, 0xb1)));
            y[r] = (v[0] + v[4]) + (v[8] + v[12]);
            continue;
        }
        _mm512_store_ps(v, acc);
        for (int k = 0; k < 4; k++) {
            c[2 * k] = v[4 * k];
            c[2 * k + 1] = v[4 * k + 1];
        }
        for (int b = n4; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bs;
            chains1_512(block_dot_512(blk, xq + 32 * b, q4), q4 ? -8 * xs[b] : 0, fp16(blk) * xd[b], b, c);
        }
        y[r] = q4_chains_sum_512(c);
    }
}

AVX512 static void mv_q8_0(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                    const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    mv_chains512(w, ld, cols, r0, r1, xq, xd, xs, y, 0);
}
AVX512 static void mv_q4_0(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                    const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    mv_chains512(w, ld, cols, r0, r1, xq, xd, xs, y, 1);
}

// The per-call tables of four tokens (Q8_0), per pair of blocks (b, b+1) (a last odd block paired with itself),
// lane 8i + 2t + h of a 16-lane vector belonging to block b+i, token t, half h: x + 128 (unsigned) in four 64-byte
// chunks, chunk k = [elements 8k..8k+8 of block b for t = 0..3 | the same of block b+1], and dx.
typedef struct {
    uint8_t *x;
    float *dx;
} four_token512;

static four_token512 four_token512_tables(int nb, const int8_t *const *xq, const float *const *xd) {
    int np = (nb + 1) / 2;
    uint8_t *m = lfm_scratch(0, (size_t)np * 320 + 64);
    four_token512 t = {m, (float *)(m + (size_t)np * 256)};
    for (int p = 0; p < np; p++)
        for (int i = 0; i < 2; i++) {
            int b = 2 * p + i < nb ? 2 * p + i : nb - 1;
            for (int u = 0; u < 4; u++) {
                for (int k = 0; k < 4; k++) {
                    uint8_t *o = t.x + (size_t)p * 256 + 64 * k + 32 * i + 8 * u;
                    memcpy(o, xq[u] + 32 * b + 8 * k, 8);
                    for (int e = 0; e < 8; e++) o[e] ^= 0x80;
                }
                t.dx[16 * p + 8 * i + 2 * u] = t.dx[16 * p + 8 * i + 2 * u + 1] = xd[u][b];
            }
        }
    return t;
}

// Chain (k, h) of token t is lane 8(k mod 2) + 2t + h of accumulator k / 2. The sum of the chains in the order of
// q4_chains_sum, for the four tokens at once: the halves, then chains 0 + 1 and 2 + 3, then the two.
AVX512 static inline void four_token512_store(__m512 a0, __m512 a1, float *const *y, int r) {
    __m512 h0 = _mm512_add_ps(a0, _mm512_permute_ps(a0, 0xb1)), h1 = _mm512_add_ps(a1, _mm512_permute_ps(a1, 0xb1));
    __m256 k01 = _mm256_add_ps(_mm512_castps512_ps256(h0), _mm512_extractf32x8_ps(h0, 1));
    __m256 k23 = _mm256_add_ps(_mm512_castps512_ps256(h1), _mm512_extractf32x8_ps(h1, 1));
    float v[8] __attribute__((aligned(32)));
    _mm256_store_ps(v, _mm256_add_ps(k01, k23));
    for (int t = 0; t < 4; t++) y[t][r] = v[2 * t];
}

// One pair of Q8_0 blocks (b0, b1; the same block twice for a last odd one) of one row for four tokens: the
// integer parts, as floats. The two halves of the integer sum form in parallel.
AVX512 static inline __attribute__((always_inline)) __m512 pair512(const uint8_t *b0, const uint8_t *b1,
                                                                   const uint8_t *xb) {
    const __m512i z = _mm512_setzero_si512();
    __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                    _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
    // −128·Σw per block half h, in lanes 8i + 2t + h for every t; chunk k of both blocks: 64-bit lanes k, 4 + k
    __m512i s = _mm512_dpbusd_epi32(z, _mm512_set1_epi8(1), wv);
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0xb1));
    __m512i d = _mm512_sub_epi32(z, _mm512_slli_epi32(halves4(s), 7));
    const __m512i k0 = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4), one = _mm512_set1_epi64(1);
    const __m512i k1 = _mm512_add_epi64(k0, one), k2 = _mm512_add_epi64(k1, one), k3 = _mm512_add_epi64(k2, one);
    d = _mm512_dpbusd_epi32(d, _mm512_load_si512((const void *)xb), _mm512_permutexvar_epi64(k0, wv));
    __m512i e = _mm512_dpbusd_epi32(z, _mm512_load_si512((const void *)(xb + 64)), _mm512_permutexvar_epi64(k1, wv));
    d = _mm512_dpbusd_epi32(d, _mm512_load_si512((const void *)(xb + 128)), _mm512_permutexvar_epi64(k2, wv));
    e = _mm512_dpbusd_epi32(e, _mm512_load_si512((const void *)(xb + 192)), _mm512_permutexvar_epi64(k3, wv));
    return _mm512_cvtepi32_ps(_mm512_add_epi32(d, e));
}

// [scale of b0 ×8 | scale of b1 ×8].
AVX512 static inline __m512 pair_scales512(const uint8_t *b0, const uint8_t *b1) {
    uint16_t h0, h1;
    memcpy(&h0, b0, 2);
    memcpy(&h1, b1, 2);
    __m128 dw2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | (uint32_t)h1 << 16)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                                 _mm512_castps128_ps512(dw2));
}

// Words w0 ×8 then w1 ×8 of v (the scales of two blocks, as fp16) to floats.
AVX512 static inline __m512 scales_from512(__m512i v, int w0, int w1) {
    __m512i idx = _mm512_mask_blend_epi16(0xff00, _mm512_set1_epi16((short)w0), _mm512_set1_epi16((short)w1));
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, v)));
}

// Q8_0, four tokens at once, two blocks per step: each 8-byte chunk of weights is broadcast to its block's four
// 64-bit lanes, so one u8×s8 product (x + 128, unsigned, by w) serves the four tokens, and four products, from
// −128·Σw of the half (shared by the four tokens), give each token's [h0 h1] of both blocks; one cvt and one fma
// per two blocks and four tokens. Four blocks at a time take their scales from two 64-byte loads (one word permute
// per pair).
AVX512 static void mv4_q8_0(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *const *xq,
                            const float *const *xd, const int32_t *const *xs, float *const *y) {
    (void)xs;
    int nb = cols / 32, bs = 34, np = nb / 2;
    // the scale words of blocks 0, 1 in the load at block 0, and of blocks 2, 3 in the load at block 0 + `off`
    const int off = 64, s0 = 0, s1 = bs / 2, s2 = (2 * bs - off) / 2, s3 = (3 * bs - off) / 2;
    four_token512 t = four_token512_tables(nb, xq, xd);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int p = 0;
        for (; p + 2 <= np; p += 2) {
            const uint8_t *g = row + (size_t)(2 * p) * bs;
            lfm_prefetch_ahead(g, 3); // four blocks: 136 bytes
            __m512i A = _mm512_loadu_si512((const void *)g), B = _mm512_loadu_si512((const void *)(g + off));
            __m512 da = pair512(g, g + bs, t.x + (size_t)p * 256);
            __m512 db = pair512(g + 2 * bs, g + 3 * bs, t.x + (size_t)(p + 1) * 256);
            a0 = _mm512_fmadd_ps(da, _mm512_mul_ps(scales_from512(A, s0, s1), _mm512_load_ps(t.dx + 16 * p)), a0);
            a1 = _mm512_fmadd_ps(db, _mm512_mul_ps(scales_from512(B, s2, s3), _mm512_load_ps(t.dx + 16 * (p + 1))),
                                 a1);
        }
        for (; p * 2 < nb; p++) { // a last pair (to a0: p is even), then a last odd block paired with itself
            const uint8_t *b0 = row + (size_t)(2 * p) * bs, *b1 = 2 * p + 1 < nb ? b0 + bs : b0;
            __m512 di = pair512(b0, b1, t.x + (size_t)p * 256);
            __m512 sc = _mm512_mul_ps(pair_scales512(b0, b1), _mm512_load_ps(t.dx + 16 * p));
            __mmask16 live = b1 != b0 ? 0xffff : 0x00ff;
            if (p & 1)
                a1 = _mm512_mask3_fmadd_ps(di, sc, a1, live);
            else
                a0 = _mm512_mask3_fmadd_ps(di, sc, a0, live);
        }
        four_token512_store(a0, a1, y, r);
    }
}

// Q4_0, four tokens, four blocks per step: the group's nibbles are unpacked once (as in the one-token kernel) and
// also with each block's two 8-byte halves swapped (one in-lane shuffle each). Lane 4j + m of a product then meets
// elements 4m..4m+4 (mod 16) of block j in the nibbles and those 8 away in the swapped ones; the tables fill the
// first with token 2p's x where m < 2 and token 2p + 1's where m ≥ 2, the second the other way round, so four
// products per token pair leave lane 4j + 2u + h holding, from −8·Σx on, block j's half h for token u of the pair:
// the one-token kernel's chain layout for two tokens (one cvt, one multiply and one fma serve both), with no
// shuffles of the sums. Tables per group: per token pair x for the nibbles and the swapped nibbles, low and high
// (256 bytes), the integer start (16 lanes, −8·Σx in lanes 4j and 4j + 2) and dx of lanes 4j + 2u + h.
typedef struct {
    int8_t *x;
    int32_t *corr;
    float *dx;
} four_q4_512;

// Built in vectors (the tables are rebuilt for every piece of rows; against the scalar build, 1–4 % faster on the
// depthformer's matrices from memory): per token, the first and second 16 bytes of each block (two loads, two
// 128-bit lane shuffles), then per pair a 64-bit blend of the two tokens' bytes and of their halves-swapped bytes;
// Σx and dx through one lane permute per pair.
AVX512 static four_q4_512 four_q4_512_tables(int nb, const int8_t *const *xq, const float *const *xd,
                                             const int32_t *const *xs) {
    int ng = nb / 4;
    uint8_t *m = lfm_scratch(0, (size_t)ng * 768 + 64);
    four_q4_512 t = {(int8_t *)m, (int32_t *)(m + (size_t)ng * 512), (float *)(m + (size_t)ng * 640)};
    // lane 4j + 2v + h of pair p: token 2p + v, block j (its value at 4u + j of the gathered vectors)
    const __m512i idx[2] = {_mm512_setr_epi32(0, 0, 4, 4, 1, 1, 5, 5, 2, 2, 6, 6, 3, 3, 7, 7),
                            _mm512_setr_epi32(8, 8, 12, 12, 9, 9, 13, 13, 10, 10, 14, 14, 11, 11, 15, 15)};
    for (int g = 0; g < ng; g++) {
        __m512i lo[4], hi[4], sw[4], shw[4];
        int32_t sv[16] __attribute__((aligned(64)));
        float dv[16] __attribute__((aligned(64)));
        for (int u = 0; u < 4; u++) {
            const int8_t *x = xq[u] + (size_t)128 * g;
            __m512i a = _mm512_loadu_si512((const void *)x), b = _mm512_loadu_si512((const void *)(x + 64));
            lo[u] = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            hi[u] = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            sw[u] = _mm512_shuffle_epi32(lo[u], 0x4e);
            shw[u] = _mm512_shuffle_epi32(hi[u], 0x4e);
            memcpy(sv + 4 * u, xs[u] + 4 * g, 16);
            memcpy(dv + 4 * u, xd[u] + 4 * g, 16);
        }
        const __m512i s = _mm512_load_si512((const void *)sv);
        const __m512 d = _mm512_load_ps(dv);
        for (int p = 0; p < 2; p++) {
            int8_t *o = t.x + (size_t)g * 512 + 256 * p;
            int u0 = 2 * p, u1 = u0 + 1;
            _mm512_store_si512((void *)o, _mm512_mask_blend_epi64(0xaa, lo[u0], lo[u1]));
            _mm512_store_si512((void *)(o + 64), _mm512_mask_blend_epi64(0xaa, sw[u0], sw[u1]));
            _mm512_store_si512((void *)(o + 128), _mm512_mask_blend_epi64(0xaa, hi[u0], hi[u1]));
            _mm512_store_si512((void *)(o + 192), _mm512_mask_blend_epi64(0xaa, shw[u0], shw[u1]));
            __m512i c = _mm512_maskz_permutexvar_epi32(0x5555, idx[p], s);
            _mm512_store_si512((void *)(t.corr + 32 * g + 16 * p),
                               _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(c, 3)));
            _mm512_store_ps(t.dx + 32 * g + 16 * p, _mm512_permutexvar_ps(idx[p], d));
        }
    }
    return t;
}

// The scales of the four blocks of a group, each in its block's four lanes (one 64-byte load and a word permute).
AVX512 static inline __m512 group_scales_q4(const uint8_t *blk) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 9 | 9 << 16, 9 | 9 << 16, 18 | 18 << 16, 18 | 18 << 16,
                                          27 | 27 << 16, 27 | 27 << 16, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_cvtph_ps(
        _mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, _mm512_loadu_si512((const void *)blk))));
}

// Blocks b0..b1 (whole groups) of one row into its accumulators; `pf` > 0 prefetches that many bytes ahead.
AVX512 static inline __attribute__((always_inline)) void four_q4_span(const uint8_t *row, four_q4_512 t, int b0,
                                                                      int b1, size_t pf, __m512 *acc01,
                                                                      __m512 *acc23) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 a01 = *acc01, a23 = *acc23;
    for (int b = b0; b < b1; b += 4) {
        const uint8_t *blk = row + (size_t)b * 18;
        if (pf) {
            __builtin_prefetch(blk + pf, 0, 3);
            __builtin_prefetch(blk + pf + 64, 0, 3);
        }
        int g = b / 4;
        __m512i q = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(blk + 2)));
        q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 20)), 1);
        q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 38)), 2);
        q = _mm512_inserti32x4(q, _mm_loadu_si128((const __m128i *)(blk + 56)), 3);
        const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        const __m512i lor = _mm512_shuffle_epi32(lo, 0x4e), hir = _mm512_shuffle_epi32(hi, 0x4e);
        const int8_t *x = t.x + (size_t)g * 512;
        const int32_t *c = t.corr + 32 * g;
        __m512i s01 = _mm512_load_si512((const void *)c), s23 = _mm512_load_si512((const void *)(c + 16));
        s01 = _mm512_dpbusd_epi32(s01, lo, _mm512_load_si512((const void *)x));
        s23 = _mm512_dpbusd_epi32(s23, lo, _mm512_load_si512((const void *)(x + 256)));
        s01 = _mm512_dpbusd_epi32(s01, lor, _mm512_load_si512((const void *)(x + 64)));
        s23 = _mm512_dpbusd_epi32(s23, lor, _mm512_load_si512((const void *)(x + 320)));
        s01 = _mm512_dpbusd_epi32(s01, hi, _mm512_load_si512((const void *)(x + 128)));
        s23 = _mm512_dpbusd_epi32(s23, hi, _mm512_load_si512((const void *)(x + 384)));
        s01 = _mm512_dpbusd_epi32(s01, hir, _mm512_load_si512((const void *)(x + 192)));
        s23 = _mm512_dpbusd_epi32(s23, hir, _mm512_load_si512((const void *)(x + 448)));
        const __m512 dw = group_scales_q4(blk);
        a01 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), _mm512_mul_ps(dw, _mm512_load_ps(t.dx + 32 * g)), a01);
        a23 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s23), _mm512_mul_ps(dw, _mm512_load_ps(t.dx + 32 * g + 16)), a23);
    }
    *acc01 = a01;
    *acc23 = a23;
}

// The four tokens' sums of one row from its accumulators over the first n4 blocks (the rest, if any, one block at
// a time in the one-token order) into y[u][r].
AVX512 static inline __attribute__((always_inline)) void four_q4_finish(__m512 a01, __m512 a23, const uint8_t *row,
                                                                        int n4, int nb, const int8_t *const *xq,
                                                                        const float *const *xd,
                                                                        const int32_t *const *xs, float *const *y,
                                                                        int r) {
    if (n4 == nb) { // q4_chains_sum in the vectors: the halves, chains 0 + 1 and 2 + 3, then the two
        __m512 s01 = _mm512_add_ps(a01, _mm512_permute_ps(a01, 0xb1));
        __m512 s23 = _mm512_add_ps(a23, _mm512_permute_ps(a23, 0xb1));
        s01 = _mm512_add_ps(s01, _mm512_shuffle_f32x4(s01, s01, 0xb1));
        s23 = _mm512_add_ps(s23, _mm512_shuffle_f32x4(s23, s23, 0xb1));
        s01 = _mm512_add_ps(s01, _mm512_shuffle_f32x4(s01, s01, 0x4e));
        s23 = _mm512_add_ps(s23, _mm512_shuffle_f32x4(s23, s23, 0x4e));
        float o[2][16] __attribute__((aligned(64)));
        _mm512_store_ps(o[0], s01);
        _mm512_store_ps(o[1], s23);
        for (int u = 0; u < 4; u++) y[u][r] = o[u / 2][2 * (u % 2)];
        return;
    }
    float v[2][16] __attribute__((aligned(64)));
    _mm512_store_ps(v[0], a01);
    _mm512_store_ps(v[1], a23);
    for (int u = 0; u < 4; u++) {
        float c[8];
        for (int k = 0; k < 4; k++) {
            c[2 * k] = v[u / 2][4 * k + 2 * (u % 2)];
            c[2 * k + 1] = v[u / 2][4 * k + 2 * (u % 2) + 1];
        }
        for (int b = n4; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * 18;
            chains1_512(block_dot_512(blk, xq[u] + 32 * b, 1), -8 * xs[u][b], fp16(blk) * xd[u][b], b, c);
        }
        y[u][r] = q4_chains_sum_512(c);
    }
}

// Rows of up to 128 blocks (4096 columns) run whole, one after another (their tables, 192 bytes per block, stay in
// L1). Longer rows run in column spans of 128 blocks over all the rows, the accumulators kept per row between
// spans (the same sums in the same order), so the tables in use still fit in L1; the span of the row four ahead is
// prefetched, as the hardware prefetchers do not follow the strided reads. Measured from memory (2 threads, 600 MB
// of 2048 × 8192 weights mapped from a file): 48 GB/s against 19 whole-row and 27 for the previous pair kernel.
AVX512 static void mv4_q4_0(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *const *xq,
                            const float *const *xd, const int32_t *const *xs, float *const *y) {
    enum { SPAN = 128 };
    int nb = cols / 32, n4 = nb / 4 * 4, n = r1 - r0;
    if (n <= 0) return;
    four_q4_512 t = four_q4_512_tables(nb, xq, xd, xs);
    if (n4 <= SPAN) {
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = w + (size_t)r * ld;
            __m512 a01 = _mm512_setzero_ps(), a23 = a01;
            four_q4_span(row, t, 0, n4, 0, &a01, &a23);
            four_q4_finish(a01, a23, row, n4, nb, xq, xd, xs, y, r);
        }
    } else {
        __m512 *acc = lfm_scratch(1, sizeof(__m512) * 2 * (size_t)n);
        for (int i = 0; i < 2 * n; i++) acc[i] = _mm512_setzero_ps();
        for (int b0 = 0; b0 < n4; b0 += SPAN) {
            int b1 = b0 + SPAN < n4 ? b0 + SPAN : n4;
            for (int i = 0; i < n; i++)
                four_q4_span(w + (size_t)(r0 + i) * ld, t, b0, b1, 4 * ld, acc + 2 * i, acc + 2 * i + 1);
        }
        for (int i = 0; i < n; i++)
            four_q4_finish(acc[2 * i], acc[2 * i + 1], w + (size_t)(r0 + i) * ld, n4, nb, xq, xd, xs, y, r0 + i);
    }
}

// Float weights, one row per pass (decode): four 16-lane accumulators.
AVX512 static float dot_f16_row(const uint16_t *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16))),
                             _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 32))),
                             _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 48))),
                             _mm512_loadu_ps(x + i + 48), a3);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += lfm_f16_to_f32(w[i]) * x[i];
    return s;
}
AVX512 static inline __m512 bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
AVX512 static float dot_bf16_row(const uint16_t *w, const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(bf16x16(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(bf16x16(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(bf16x16(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(bf16x16(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += lfm_b2f(w[i]) * x[i];
    return s;
}

AVX512 static inline float dot_f32_vec(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// Prefill (matrix-matrix): 4 rows × 4 tokens per tile, 16 accumulators in registers.
// Q8_0: activations are made unsigned (x + 128, a sign-bit flip) so VNNI needs no sign fix-ups; the bias this adds,
// 128·Σw per block, is removed afterwards with one dot product over blocks per (row, token).
// Q4_0: weights are unsigned nibbles; the −8 offset is removed the same way with Σx per block.
// Per block product: dpbusd, cvt, mul (row scale, embedded broadcast), fma (token scale) — four vector ops.
AVX512 static void gemm_q8_0_tile(const uint8_t *w, size_t ld, int nb, const int8_t *XQ, const float *XD, int ldq,
                                  const float *dw, const float *cw, float *Y, int ldy) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    const int qb = ldq / 32;
    for (int b = 0; b < nb; b++) {
        __m256i xu0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(XQ + 0 * ldq + b * 32)), flip);
        __m256i xu1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(XQ + 1 * ldq + b * 32)), flip);
        __m256i xu2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(XQ + 2 * ldq + b * 32)), flip);
        __m256i xu3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(XQ + 3 * ldq + b * 32)), flip);
        __m256 dx0 = _mm256_set1_ps(XD[0 * qb + b]), dx1 = _mm256_set1_ps(XD[1 * qb + b]);
        __m256 dx2 = _mm256_set1_ps(XD[2 * qb + b]), dx3 = _mm256_set1_ps(XD[3 * qb + b]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(w + i * ld + (size_t)b * 34 + 2));
            __m256 s = _mm256_set1_ps(dw[i * nb + b]);
            acc[i][0] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, xu0, wv)), s), dx0,
                                        acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, xu1, wv)), s), dx1,
                                        acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, xu2, wv)), s), dx2,
                                        acc[i][2]);
            acc[i][3] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, xu3, wv)), s), dx3,
                                        acc[i][3]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            // remove 128·Σw: Σ_b cw[i][b] · dx[j][b], cw = −128·dw·Σw
            Y[(size_t)j * ldy + i] = hsum256(acc[i][j]) + dot_f32_vec(cw + i * nb, XD + j * qb, nb);
        }
}

AVX512 static void gemm_q4_0_tile(const uint8_t *w, size_t ld, int nb, const int8_t *XQ, const float *XE, int ldq,
                                  const float *XD, const float *dw, float *Y, int ldy) {
    const __m256i zero = _mm256_setzero_si256();
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    const int qb = ldq / 32;
    for (int b = 0; b < nb; b++) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(XQ + 0 * ldq + b * 32));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(XQ + 1 * ldq + b * 32));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(XQ + 2 * ldq + b * 32));
        __m256i x3 = _mm256_loadu_si256((const __m256i *)(XQ + 3 * ldq + b * 32));
        __m256 dx0 = _mm256_set1_ps(XD[0 * qb + b]), dx1 = _mm256_set1_ps(XD[1 * qb + b]);
        __m256 dx2 = _mm256_set1_ps(XD[2 * qb + b]), dx3 = _mm256_set1_ps(XD[3 * qb + b]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __m128i q = _mm_loadu_si128((const __m128i *)(w + i * ld + (size_t)b * 18 + 2));
            __m256i wv = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
            __m256 s = _mm256_set1_ps(dw[i * nb + b]);
            acc[i][0] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, wv, x0)), s), dx0,
                                        acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, wv, x1)), s), dx1,
                                        acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, wv, x2)), s), dx2,
                                        acc[i][2]);
            acc[i][3] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(zero, wv, x3)), s), dx3,
                                        acc[i][3]);
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            // remove the nibble offset: Σ_b dw[i][b] · (−8 · dx[j][b] · Σx[j][b])
            Y[(size_t)j * ldy + i] = hsum256(acc[i][j]) + dot_f32_vec(dw + i * nb, XE + j * qb, nb);
        }
}

// Float weights, prefill: 4 rows × 4 tokens per tile; each 16-element chunk of the 4 rows is widened once and
// multiplied with the 4 tokens (16 FMAs per 4 conversions).
#define FLOAT_GEMM_TILE(NAME, WT, LOADW)                                                                               \
    AVX512 static void NAME(const WT *w, size_t ldw, int n, const float *X, int ldx, float *Y, int ldy) {              \
        __m512 acc[4][4];                                                                                              \
        for (int i = 0; i < 4; i++)                                                                                    \
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();                                               \
        int k = 0;                                                                                                     \
        for (; k + 16 <= n; k += 16) {                                                                                 \
            __m512 x0 = _mm512_loadu_ps(X + k), x1 = _mm512_loadu_ps(X + ldx + k);                                     \
            __m512 x2 = _mm512_loadu_ps(X + 2 * ldx + k), x3 = _mm512_loadu_ps(X + 3 * ldx + k);                       \
            _Pragma("unroll") for (int i = 0; i < 4; i++) {                                                            \
                __m512 wv = LOADW(w + i * ldw + k);                                                                    \
                acc[i][0] = _mm512_fmadd_ps(wv, x0, acc[i][0]);                                                        \
                acc[i][1] = _mm512_fmadd_ps(wv, x1, acc[i][1]);                                                        \
                acc[i][2] = _mm512_fmadd_ps(wv, x2, acc[i][2]);                                                        \
                acc[i][3] = _mm512_fmadd_ps(wv, x3, acc[i][3]);                                                        \
            }                                                                                                          \
        }                                                                                                              \
        for (int i = 0; i < 4; i++)                                                                                    \
            for (int j = 0; j < 4; j++) {                                                                              \
                float s = _mm512_reduce_add_ps(acc[i][j]);                                                             \
                for (int kk = k; kk < n; kk++) s += WIDEN(w[i * ldw + kk]) * X[j * ldx + kk];                          \
                Y[(size_t)j * ldy + i] = s;                                                                            \
            }                                                                                                          \
    }
AVX512 static inline __m512 load_f16x16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
AVX512 static inline __m512 load_f32x16(const float *p) { return _mm512_loadu_ps(p); }
#define WIDEN(v) lfm_f16_to_f32(v)
FLOAT_GEMM_TILE(gemm_f16_tile, uint16_t, load_f16x16)
#undef WIDEN
#define WIDEN(v) lfm_b2f(v)
FLOAT_GEMM_TILE(gemm_bf16_tile, uint16_t, bf16x16)
#undef WIDEN
#define WIDEN(v) (v)
FLOAT_GEMM_TILE(gemm_f32_tile, float, load_f32x16)
#undef WIDEN

// Prefill, two blocks per 512-bit step (nb even). Scales are expanded once per call into 16-lane vectors that
// the products read as memory operands: per pair of blocks and (row, token) the work is dpbusd, cvt, mul, fma.
// Q8_0: lanes 0–7 hold block 2p, lanes 8–15 block 2p+1. Q4_0: the nibbles unpack to [lo 2p | lo 2p+1 | hi 2p |
// hi 2p+1], so the activation is permuted the same way and the scale lanes follow that pattern.
AVX512 static void gemm_pair_tile(int q4, const uint8_t *w, size_t ld, int np, const int8_t *XP, int ldq,
                                  const float *dwE, const float *dxE, float *acc_out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i zero = _mm512_setzero_si512();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int p = 0; p < np; p++) {
        __m512i xv[4];
        for (int j = 0; j < 4; j++) {
            __m512i x = _mm512_loadu_si512((const void *)(XP + (size_t)j * ldq + p * 64));
            xv[j] = q4 ? x : _mm512_xor_si512(x, flip);
        }
        const float *dxp = dxE + (size_t)p * 16;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            __m512i wv;
            if (q4) {
                const uint8_t *blk = w + i * ld + (size_t)p * 36;
                __m256i y = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 2))),
                                                    _mm_loadu_si128((const __m128i *)(blk + 20)), 1);
                wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(y, m4)),
                                        _mm256_and_si256(_mm256_srli_epi16(y, 4), m4), 1);
            } else {
                const uint8_t *blk = w + i * ld + (size_t)p * 68;
                wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 2))),
                                        _mm256_loadu_si256((const __m256i *)(blk + 36)), 1);
            }
            __m512 sw = _mm512_load_ps(dwE + ((size_t)i * np + p) * 16);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                __m512i dot = q4 ? _mm512_dpbusd_epi32(zero, wv, xv[j]) : _mm512_dpbusd_epi32(zero, xv[j], wv);
                acc[i][j] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), sw),
                                            _mm512_load_ps(dxp + (size_t)j * np * 16), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc_out[i * 4 + j] = _mm512_reduce_add_ps(acc[i][j]);
}

// Y rows [r0, R4) × tokens [0, T4) through gemm_pair_tile; returns 1 when it handled them.
AVX512 static int gemm_pairs(int type, const uint8_t *base, size_t ld, int cols, int r0, int R4, int T4,
                             const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int nb = cols / 32, np = nb / 2, qb = ldq / 32;
    int q4 = type == LFM_T_Q4_0;
    size_t bs = q4 ? 18 : 34;
    // per-call activation data: expanded token scales (token-tile major), permuted activations for Q4_0,
    // and the per-block corrections
    float *dxE = aligned_alloc(64, (size_t)T4 * np * 64);
    int8_t *xp = q4 ? aligned_alloc(64, (size_t)T4 * ldq + 64) : NULL;
    float *xe = q4 ? malloc(sizeof(float) * (size_t)T4 * qb) : NULL;
    float *dwE = aligned_alloc(64, (size_t)4 * np * 64);
    float *cw = malloc(sizeof(float) * 4 * nb);
    if (!dxE || !dwE || !cw || (q4 && (!xp || !xe))) {
        free(dxE);
        free(xp);
        free(xe);
        free(dwE);
        free(cw);
        return 0;
    }
    for (int t = 0; t < T4; t++) {
        // token t lives in tile t/4, slot t%4: dxE[(tile*4 + slot) * np * 16 + p * 16]
        float *d = dxE + (size_t)t * np * 16;
        for (int p = 0; p < np; p++) {
            float a = XD[t * qb + 2 * p], b = XD[t * qb + 2 * p + 1];
            for (int k = 0; k < 16; k++) d[p * 16 + k] = q4 ? ((k / 4) % 2 ? b : a) : (k < 8 ? a : b);
            if (q4) {
                const int8_t *x0 = XQ + (size_t)t * ldq + 2 * p * 32, *x1 = x0 + 32;
                int8_t *o = xp + (size_t)t * ldq + p * 64;
                memcpy(o, x0, 16);
                memcpy(o + 16, x1, 16);
                memcpy(o + 32, x0 + 16, 16);
                memcpy(o + 48, x1 + 16, 16);
            }
        }
        if (q4)
            for (int b = 0; b < nb; b++) xe[t * qb + b] = -8.f * XD[t * qb + b] * (float)XS[t * qb + b];
    }
    const int8_t *XP = q4 ? xp : XQ;
    float out[16];
    for (int r = r0; r < R4; r += 4) {
        const uint8_t *rows = base + (size_t)r * ld;
        for (int i = 0; i < 4; i++)
            for (int p = 0; p < np; p++) {
                const uint8_t *b0 = rows + i * ld + (size_t)(2 * p) * bs, *b1 = b0 + bs;
                float a = fp16(b0), b = fp16(b1);
                float *e = dwE + ((size_t)i * np + p) * 16;
                for (int k = 0; k < 16; k++) e[k] = q4 ? ((k / 4) % 2 ? b : a) : (k < 8 ? a : b);
                if (!q4) {
                    int s0 = 0, s1 = 0;
                    for (int k = 0; k < 32; k++) {
                        s0 += ((const int8_t *)(b0 + 2))[k];
                        s1 += ((const int8_t *)(b1 + 2))[k];
                    }
                    cw[i * nb + 2 * p] = -128.f * a * (float)s0;
                    cw[i * nb + 2 * p + 1] = -128.f * b * (float)s1;
                } else {
                    cw[i * nb + 2 * p] = a;
                    cw[i * nb + 2 * p + 1] = b;
                }
            }
        for (int t = 0; t < T4; t += 4) {
            gemm_pair_tile(q4, rows, ld, np, XP + (size_t)t * ldq, ldq, dwE, dxE + (size_t)t * np * 16, out);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    float c = q4 ? dot_f32_vec(cw + i * nb, xe + (size_t)(t + j) * qb, nb)
                                 : dot_f32_vec(cw + i * nb, XD + (size_t)(t + j) * qb, nb);
                    Y[(size_t)(t + j) * ldy + r + i] = out[i * 4 + j] + c;
                }
        }
    }
    free(dxE);
    free(xp);
    free(xe);
    free(dwE);
    free(cw);
    return 1;
}
// Prefill for Q4_0 weights on CPUs with AVX512_BF16: each 4-row panel is dequantized once per call to bf16
// ((q − 8)·d, exact in float, rounded to nearest even in bf16: a relative error ≤ 2⁻⁹, far below Q4_0's own),
// the activations are rounded to bf16 once, and the products run as pure vdpbf16ps (32 MACs per instruction, no
// per-block scale work). Decode (T = 1) keeps the exact int8 path. LFM_Q4_PREFILL=int8 selects the int8 path.
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))
static int cpu_has_bf16(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *e = getenv("LFM_Q4_PREFILL");
        v = lfm_cpu_has_avx512bf16() && !(e && strcmp(e, "int8") == 0);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

AVX512BF16 static void row_f32_to_bf16(const float *x, int n, uint16_t *out) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(out + i), (__m512i)v);
    }
    for (; i < n; i++) out[i] = lfm_f32_to_bf16(x[i]);
}

AVX512BF16 static void q4_0_row_to_bf16(const uint8_t *row, int nb, uint16_t *out) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m512 eight = _mm512_set1_ps(8.f);
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 18;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m512 d = _mm512_set1_ps(_cvtsh_ss(h));
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
        __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, m4)));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4)));
        lo = _mm512_mul_ps(_mm512_sub_ps(lo, eight), d);
        hi = _mm512_mul_ps(_mm512_sub_ps(hi, eight), d);
        _mm512_storeu_si512((void *)(out + b * 32), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

AVX512BF16 static void q8_0_row_to_bf16(const uint8_t *row, int nb, uint16_t *out) {
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 34;
        uint16_t h;
        memcpy(&h, blk, 2);
        __m512 d = _mm512_set1_ps(_cvtsh_ss(h));
        __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2))));
        __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18))));
        _mm512_storeu_si512((void *)(out + b * 32),
                            (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, d), _mm512_mul_ps(lo, d)));
    }
}

// Y[j][i] = Σ_k W[i][k]·X[j][k] for 4 rows × NT tokens (NT ≤ 4), n a multiple of 32.
AVX512BF16 static void gemm_bf16dp_tile(const uint16_t *W, int ldw, const uint16_t *X, int ldx, int n, int NT, float *Y,
                                        int ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    if (NT == 4) {
        for (int k = 0; k < n; k += 32) {
            __m512bh x0 = (__m512bh)_mm512_loadu_si512((const void *)(X + k)),
                     x1 = (__m512bh)_mm512_loadu_si512((const void *)(X + ldx + k));
            __m512bh x2 = (__m512bh)_mm512_loadu_si512((const void *)(X + 2 * ldx + k)),
                     x3 = (__m512bh)_mm512_loadu_si512((const void *)(X + 3 * ldx + k));
#pragma unroll
            for (int i = 0; i < 4; i++) {
                __m512bh w = (__m512bh)_mm512_loadu_si512((const void *)(W + i * ldw + k));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], w, x0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], w, x1);
                acc[i][2] = _mm512_dpbf16_ps(acc[i][2], w, x2);
                acc[i][3] = _mm512_dpbf16_ps(acc[i][3], w, x3);
            }
        }
    } else {
        for (int k = 0; k < n; k += 32)
            for (int j = 0; j < NT; j++) {
                __m512bh x = (__m512bh)_mm512_loadu_si512((const void *)(X + j * ldx + k));
                for (int i = 0; i < 4; i++)
                    acc[i][j] =
                        _mm512_dpbf16_ps(acc[i][j], (__m512bh)_mm512_loadu_si512((const void *)(W + i * ldw + k)), x);
            }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < NT; j++) Y[(size_t)j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

// Rows [r0, R4) (a multiple of 4 apart) × all T tokens; returns 1 when done.
// `row` (the K-quants) dequantizes one row to float with the lower tier's exact row kernel; the built-in types
// (Q4_0, Q8_0, BF16) go to bf16 directly.
AVX512BF16 static int gemm_q_bf16(int type, lfm_row_fn row_fn, const uint8_t *base, size_t ld, int cols, int r0,
                                  int R4, int T, const float *X, int ldx, float *Y, int ldy) {
    int nb = cols / 32;
    uint16_t *xb = aligned_alloc(64, (size_t)T * cols * 2 + 64), *wb = aligned_alloc(64, (size_t)4 * cols * 2 + 64);
    float *wf = row_fn ? aligned_alloc(64, (size_t)cols * 4 + 64) : NULL;
    if (!xb || !wb || (row_fn && !wf)) {
        free(xb);
        free(wb);
        free(wf);
        return 0;
    }
    for (int t = 0; t < T; t++) row_f32_to_bf16(X + (size_t)t * ldx, cols, xb + (size_t)t * cols);
    // K blocks keep the 4-row panel and 4 tokens in L1 (≤ 16 KB each)
    // token blocks keep the activations L2-resident (≤ ~1 MB) while every 4-row panel passes over them
    int tb = (int)((1024 * 1024) / ((size_t)cols * 2)) / 4 * 4;
    if (tb < 16) tb = 16;
    if (tb > T) tb = T;
    for (int t0 = 0; t0 < T; t0 += tb) {
        int t1 = t0 + tb < T ? t0 + tb : T;
        for (int r = r0; r < R4; r += 4) {
            for (int i = 0; i < 4; i++) {
                const uint8_t *row = base + (size_t)(r + i) * ld;
                if (row_fn) {
                    row_fn(row, cols, wf);
                    row_f32_to_bf16(wf, cols, wb + (size_t)i * cols);
                } else if (type == LFM_T_Q4_0)
                    q4_0_row_to_bf16(row, nb, wb + (size_t)i * cols);
                else if (type == LFM_T_Q8_0)
                    q8_0_row_to_bf16(row, nb, wb + (size_t)i * cols);
                else
                    memcpy(wb + (size_t)i * cols, row, (size_t)cols * 2); // BF16
            }
            for (int t = t0; t < t1; t += 4) {
                int nt = t1 - t < 4 ? t1 - t : 4;
                gemm_bf16dp_tile(wb, cols, xb + (size_t)t * cols, cols, cols, nt, Y + (size_t)t * ldy + r, ldy);
            }
        }
    }
    free(xb);
    free(wb);
    free(wf);
    return 1;
}

#define VAVX512 __attribute__((target("avx512f,avx512dq,fma")))
VAVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

VAVX512 static void silu512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_storeu_ps(x + i, _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

VAVX512 static void glu512(const float *a, const float *g, size_t n, float *y) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(g + i)));
        _mm512_storeu_ps(y + i, _mm512_div_ps(_mm512_loadu_ps(a + i), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
    for (; i < n; i++) y[i] = a[i] / (1.0f + expf(-g[i]));
}

VAVX512 static void layernorm512(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    __m512 s = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + i));
    float sum = _mm512_reduce_add_ps(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m512 m = _mm512_set1_ps(mean), v = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m);
        v = _mm512_fmadd_ps(d, d, v);
    }
    float var = _mm512_reduce_add_ps(v);
    for (; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    float r = 1.0f / sqrtf(var / (float)n + eps);
    __m512 rv = _mm512_set1_ps(r);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), rv);
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(d, _mm512_loadu_ps(w + i), _mm512_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}

VAVX512 static void softmax512(float *x, int n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
    float mx = _mm512_reduce_max_ps(mv);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m512 m = _mm512_set1_ps(mx), s = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    float sum = _mm512_reduce_add_ps(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

VAVX512 static void attend512(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale,
                              float *sc, float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ld;
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a);
        float s = _mm512_reduce_add_ps(a) * scale;
        sc[j] = s;
        mx = s > mx ? s : mx;
    }
    __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sc + j), m));
        _mm512_storeu_ps(sc + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    float total = _mm512_reduce_add_ps(sum);
    for (; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        total += sc[j];
    }
    float inv = 1.0f / total;
    __m512 acc[8];
    int nv = hd / 16;
    for (int i = 0; i < nv && i < 8; i++) acc[i] = _mm512_setzero_ps();
    for (j = 0; j < n; j++) {
        __m512 w = _mm512_set1_ps(sc[j] * inv);
        const float *v = V + (size_t)j * ld;
        for (int i = 0; i < nv; i++) acc[i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(v + 16 * i), acc[i]);
    }
    for (int i = 0; i < nv; i++) _mm512_storeu_ps(out + 16 * i, acc[i]);
}
VAVX512 static void elu512(const float *x, float *y, size_t n) {
    size_t i = 0;
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), small = _mm512_set1_ps(-0.25f);
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 p = _mm512_set1_ps(1.0f / 5040);
        p = _mm512_fmadd_ps(p, v, _mm512_set1_ps(1.0f / 720));
        p = _mm512_fmadd_ps(p, v, _mm512_set1_ps(1.0f / 120));
        p = _mm512_fmadd_ps(p, v, _mm512_set1_ps(1.0f / 24));
        p = _mm512_fmadd_ps(p, v, _mm512_set1_ps(1.0f / 6));
        p = _mm512_fmadd_ps(p, v, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(v, v), v);
        __m512 e = _mm512_sub_ps(exp512(v), one);
        __mmask16 near = _mm512_cmp_ps_mask(v, small, _CMP_GE_OQ);
        __m512 neg = _mm512_mask_blend_ps(near, e, p);
        __mmask16 pos = _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ);
        _mm512_storeu_ps(y + i, _mm512_mask_blend_ps(pos, neg, v));
    }
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]);
}

// attend512 keeps hd/16 accumulators in registers (hd ≤ 128); other sizes take the lower tier's kernel.
static void (*g_attend_lower)(const float *, int, const float *, const float *, int, int, float, float *, float *);
static void attend_any(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *sc,
                       float *out) {
    if (hd % 16 == 0 && hd <= 128)
        attend512(q, hd, K, V, ld, n, scale, sc, out);
    else
        g_attend_lower(q, hd, K, V, ld, n, scale, sc, out);
}

static void dot_rows512(int ti, const uint8_t *w, size_t ld, int nr, int cols, const float *xf, const int8_t *xq,
                        const float *xd, const int32_t *xs, float *out) {
    switch (ti) {
    case LFM_TYPE_F32:
        dot_f32_rows((const float *)w, ld / 4, nr, xf, cols, out);
        return;
    case LFM_TYPE_F16:
        dot_f16_rows((const uint16_t *)w, ld / 2, nr, xf, cols, out);
        return;
    case LFM_TYPE_BF16:
        dot_bf16_rows((const uint16_t *)w, ld / 2, nr, xf, cols, out);
        return;
    case LFM_TYPE_Q8_0:
        dot_q8_0_rows(w, ld, nr, xq, xd, cols / 32, out);
        return;
    case LFM_TYPE_Q4_0:
        dot_q4_0_rows(w, ld, nr, xq, xd, xs, cols / 32, out);
        return;
    }
}

static void mv_f32(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                   const float *xd, const int32_t *xs, float *y) {
    for (int r = r0; r < r1; r += 4)
        dot_f32_rows((const float *)(w + (size_t)r * ld), ld / 4, r1 - r < 4 ? r1 - r : 4, xf, cols, y + r);
}
static void mv_f16(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                   const float *xd, const int32_t *xs, float *y) {
    for (int r = r0; r < r1; r++) y[r] = dot_f16_row((const uint16_t *)(w + (size_t)r * ld), xf, cols);
}
static void mv_bf16(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                    const float *xd, const int32_t *xs, float *y) {
    for (int r = r0; r < r1; r++) y[r] = dot_bf16_row((const uint16_t *)(w + (size_t)r * ld), xf, cols);
}
// Tokens [t0, t1) of a Q8_0 / Q4_0 product over rows [r0, r1) one token at a time, with the decode kernels (a few
// tokens: Mimi's transformer steps, leftovers of the 4-token tiles).
static void q_tokens512(int ti, const uint8_t *base, size_t ld, int cols, int r0, int r1, int t0, int t1,
                        const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int qb = ldq / 32;
    for (int t = t0; t < t1; t++)
        (ti == LFM_TYPE_Q8_0 ? mv_q8_0 : mv_q4_0)(base, ld, cols, r0, r1, NULL, XQ + (size_t)t * ldq,
                                                  XD + (size_t)t * qb, XS + (size_t)t * qb, Y + (size_t)t * ldy);
}

static void gemm512(int ti, const uint8_t *base, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                    const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int qb = ldq / 32;
    // Few tokens of Q8_0 / Q4_0 (the detokenizer's 6 positions a frame, Mimi's steps, short prompts): the decode
    // kernels, four tokens at a time, beat the tiles and the bf16 GEMM. scripts/bench/gemm_bench.c, one thread,
    // 8192 × 2048, Zen 4: Q4_0 6 / 16 / 32 / 48 tokens 2.2 / 5.5 / 9.9 / 16.5 ms against 3.0 / 8.2 / 13.7 / 22.8 ms;
    // Q8_0 6 / 8 tokens 3.5 / 6.2 against 7.0 / 7.1 ms, level at 16, behind from 24.
    if ((ti == LFM_TYPE_Q8_0 || ti == LFM_TYPE_Q4_0) && XQ && T < (ti == LFM_TYPE_Q4_0 ? 64 : 16)) {
        lfm_matvec_batch(ti == LFM_TYPE_Q8_0 ? LFM_T_Q8_0 : LFM_T_Q4_0, base, cols, r0, r1, T, X, ldx, XQ, XD, XS,
                         ldq, Y, ldy);
        return;
    }
    float tmp[4];
    if ((ti == LFM_TYPE_F16 || ti == LFM_TYPE_BF16 || ti == LFM_TYPE_F32) && T >= 4 && r1 - r0 >= 4) {
        int T4 = T / 4 * 4, R4 = r0 + (r1 - r0) / 4 * 4;
        for (int r = r0; r < R4; r += 4) {
            for (int t = 0; t < T4; t += 4) {
                float *yt = Y + (size_t)t * ldy + r;
                const float *xt = X + (size_t)t * ldx;
                if (ti == LFM_TYPE_F16)
                    gemm_f16_tile((const uint16_t *)(base + (size_t)r * ld), ld / 2, cols, xt, ldx, yt, ldy);
                else if (ti == LFM_TYPE_BF16)
                    gemm_bf16_tile((const uint16_t *)(base + (size_t)r * ld), ld / 2, cols, xt, ldx, yt, ldy);
                else
                    gemm_f32_tile((const float *)(base + (size_t)r * ld), ld / 4, cols, xt, ldx, yt, ldy);
            }
            for (int t = T4; t < T; t++) {
                dot_rows512(ti, base + (size_t)r * ld, ld, 4, cols, X + (size_t)t * ldx, NULL, NULL, NULL, tmp);
                for (int k = 0; k < 4; k++) Y[(size_t)t * ldy + r + k] = tmp[k];
            }
        }
        r0 = R4;
    }
    int type = ti == LFM_TYPE_Q4_0   ? LFM_T_Q4_0
               : ti == LFM_TYPE_Q8_0 ? LFM_T_Q8_0
               : ti == LFM_TYPE_BF16 ? LFM_T_BF16
                                     : -1;
    if ((ti == LFM_TYPE_Q4_0 || ti == LFM_TYPE_Q8_0 || ti == LFM_TYPE_BF16) && T >= 8 && r1 - r0 >= 4 &&
        cols % 32 == 0 && cpu_has_bf16() && X) {
        int R4 = r0 + (r1 - r0) / 4 * 4;
        if (gemm_q_bf16(type, NULL, base, ld, cols, r0, R4, T, X, ldx, Y, ldy)) {
            r0 = R4;
            goto tail;
        }
    }
    if ((ti == LFM_TYPE_Q8_0 || ti == LFM_TYPE_Q4_0) && T >= 4 && r1 - r0 >= 4) {
        int nb = cols / 32;
        float *dw = malloc(sizeof(float) * 4 * nb), *cw = malloc(sizeof(float) * 4 * nb);
        float *xe = NULL;
        int T4 = T / 4 * 4, R4 = r0 + (r1 - r0) / 4 * 4;
        if (ti == LFM_TYPE_Q4_0 && nb % 2 == 0 &&
            gemm_pairs(type, base, ld, cols, r0, R4, T4, XQ, XD, XS, ldq, Y, ldy)) {
            q_tokens512(ti, base, ld, cols, r0, R4, T4, T, XQ, XD, XS, ldq, Y, ldy);
            free(dw);
            free(cw);
            r0 = R4;
            goto tail;
        }
        if (ti == LFM_TYPE_Q4_0) {
            xe = malloc(sizeof(float) * (size_t)T * qb);
            for (int t = 0; t < T; t++)
                for (int b = 0; b < nb; b++) xe[t * qb + b] = -8.f * XD[t * qb + b] * (float)XS[t * qb + b];
        }
        for (int r = r0; r < R4; r += 4) {
            const uint8_t *rows = base + (size_t)r * ld;
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < nb; b++) {
                    const uint8_t *blk = rows + i * ld + (size_t)b * (ti == LFM_TYPE_Q8_0 ? 34 : 18);
                    dw[i * nb + b] = fp16(blk);
                    if (ti == LFM_TYPE_Q8_0) {
                        int sw = 0;
                        const int8_t *q = (const int8_t *)(blk + 2);
                        for (int k = 0; k < 32; k++) sw += q[k];
                        cw[i * nb + b] = -128.f * dw[i * nb + b] * (float)sw;
                    }
                }
            for (int t = 0; t < T4; t += 4) {
                if (ti == LFM_TYPE_Q8_0)
                    gemm_q8_0_tile(rows, ld, nb, XQ + (size_t)t * ldq, XD + (size_t)t * qb, ldq, dw, cw,
                                   Y + (size_t)t * ldy + r, ldy);
                else
                    gemm_q4_0_tile(rows, ld, nb, XQ + (size_t)t * ldq, xe + (size_t)t * qb, ldq, XD + (size_t)t * qb,
                                   dw, Y + (size_t)t * ldy + r, ldy);
            }
            q_tokens512(ti, base, ld, cols, r, r + 4, T4, T, XQ, XD, XS, ldq, Y, ldy);
        }
        free(dw);
        free(cw);
        free(xe);
        r0 = R4;
    }
tail:
    if ((ti == LFM_TYPE_Q8_0 || ti == LFM_TYPE_Q4_0) && XQ) {
        q_tokens512(ti, base, ld, cols, r0, r1, 0, T, XQ, XD, XS, ldq, Y, ldy);
        return;
    }
    for (int r = r0; r < r1; r += 4) {
        int nr = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *rows = base + (size_t)r * ld;
        for (int t = 0; t < T; t++) {
            dot_rows512(ti, rows, ld, nr, cols, X ? X + (size_t)t * ldx : NULL, XQ ? XQ + (size_t)t * ldq : NULL,
                        XD ? XD + (size_t)t * qb : NULL, XS ? XS + (size_t)t * qb : NULL, tmp);
            for (int k = 0; k < nr; k++) Y[(size_t)t * ldy + r + k] = tmp[k];
        }
    }
}

#define GEMM512(NAME, TI)                                                                                              \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,            \
                     const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {               \
        gemm512(TI, w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);                                          \
    }
GEMM512(mm_f32, LFM_TYPE_F32)
GEMM512(mm_f16, LFM_TYPE_F16)
GEMM512(mm_bf16, LFM_TYPE_BF16)
GEMM512(mm_q8_0, LFM_TYPE_Q8_0)
GEMM512(mm_q4_0, LFM_TYPE_Q4_0)

// K-quant prefill (Q4_K, Q5_K, Q6_K, Q3_K) with AVX512_BF16: each 4-row panel is dequantized once per call by the lower
// tier's row kernel and rounded to bf16, then runs the bf16 dot-product tile like Q4_0 above (on Zen 4 this is ~1.7×
// the 256-bit integer tile). Without BF16, below 8 tokens, on the row tail and with LFM_Q4_PREFILL=int8 the lower
// tier's integer tile GEMM runs (exact integer parts, bit-equal across the x86 tiers).
static lfm_gemm_fn g_kq_gemm_lower[4];
static lfm_row_fn g_kq_row[4];
static void gemm_kq512(int k, const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                       const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    if (T >= 8 && r1 - r0 >= 4 && cols % 32 == 0 && X && cpu_has_bf16()) {
        int R4 = r0 + (r1 - r0) / 4 * 4;
        if (gemm_q_bf16(-1, g_kq_row[k], w, ld, cols, r0, R4, T, X, ldx, Y, ldy)) r0 = R4;
    }
    if (r0 < r1) g_kq_gemm_lower[k](w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}
#define GEMM_KQ512(NAME, K)                                                                                            \
    static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,            \
                     const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {               \
        gemm_kq512(K, w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);                                        \
    }
GEMM_KQ512(mm_q4_k, 0)
GEMM_KQ512(mm_q5_k, 1)
GEMM_KQ512(mm_q6_k, 2)
GEMM_KQ512(mm_q3_k, 3)

void lfm_register_avx512(lfm_table *t) {
    const int T = LFM_TIER_AVX512;
    lfm_register_kquant_avx512(t);
    lfm_gemm_fn kq[] = {mm_q4_k, mm_q5_k, mm_q6_k, mm_q3_k};
    const int kt[] = {LFM_TYPE_Q4_K, LFM_TYPE_Q5_K, LFM_TYPE_Q6_K, LFM_TYPE_Q3_K};
    for (int i = 0; i < 4; i++) {
        g_kq_gemm_lower[i] = t->gemm[kt[i]];
        g_kq_row[i] = t->row[kt[i]];
        t->gemm[kt[i]] = kq[i];
        LFM_MARK(t, LFM_FN_GEMM + kt[i], T);
    }
    t->quantize_act = quantize_act_q8_avx512;
    LFM_MARK(t, LFM_FN_QUANT_ACT, T);
    lfm_matvec_fn mv[] = {mv_f32, mv_f16, mv_bf16, mv_q8_0, mv_q4_0};
    lfm_gemm_fn mm[] = {mm_f32, mm_f16, mm_bf16, mm_q8_0, mm_q4_0};
    lfm_set_products(t, mv, mm, T);
    t->matvec4[LFM_TYPE_Q8_0] = mv4_q8_0;
    t->matvec4[LFM_TYPE_Q4_0] = mv4_q4_0;
    t->matvec4_from[LFM_TYPE_Q8_0] = t->matvec4_from[LFM_TYPE_Q4_0] = (signed char)T;
    t->silu = silu512;
    LFM_MARK(t, LFM_FN_SILU, T);
    t->glu = glu512;
    LFM_MARK(t, LFM_FN_GLU, T);
    t->layernorm = layernorm512;
    LFM_MARK(t, LFM_FN_LAYERNORM, T);
    t->softmax = softmax512;
    LFM_MARK(t, LFM_FN_SOFTMAX, T);
    t->elu = elu512;
    LFM_MARK(t, LFM_FN_ELU, T);
    g_attend_lower = t->attend;
    t->attend = attend_any;
    LFM_MARK(t, LFM_FN_ATTEND, T);
}
#else
void lfm_register_avx512(lfm_table *t) { (void)t; }
#endif
