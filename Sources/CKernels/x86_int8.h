// (No include guard: included once per integer flavour.)
// Integer (Q8_0 / Q4_0 × q8 activation) kernels in 256-bit registers, included twice by kern_avx2.c: once with
// AVX2's maddubs + madd (u8 × s8 pairs to s16, then pairs to s32), once with AVX-VNNI's vpdpbusd; kern_avx512.c
// takes the one-block helpers only (X86_INT8_CHAIN_HELPERS_ONLY) for its 512-bit kernels of the same order.
// Requires: TGT (target attribute), SFX(name) (suffix), DOT(u8, s8) → s32 × 8 (four adjacent products summed),
// DOT4(u0, s0, u1, s1, u2, s2, u3, s3) → s32 × 8 (the four DOTs summed; the u operands are nibbles ≤ 15).
// Q4_0 nibbles are unsigned (0..15) and enter as the u8 operand; the −8 offset is removed with Σx per block.
// Q8_0 uses |w| and sign(x, w) (both within ±127, so maddubs cannot saturate).

// The 16 nibble bytes broadcast to both 128-bit halves (a load), the upper half shifted right by 4 (a variable
// 64-bit shift), then masked: [low nibbles = elements 0..15 | high nibbles = 16..31].
TGT static inline __m256i SFX(q4_unpack)(const uint8_t *blk, __m256i m4) {
    __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk + 2)));
    return _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), m4);
}

// Q4_0 decode. One summation order serves one token (`mv_q4_0`) and four at once (`mv4_q4_0`), so a batched token is
// bit-equal to the same token alone. Per token there are eight float chains: block b feeds chain (b mod 4, h),
// where h = 0 takes the products of elements e with e mod 8 < 4 (plus −8·Σx, the offset of the unsigned nibbles)
// and h = 1 the rest; each chain is fma(float(integer part), dw·dx, acc) over its blocks in order, and the row's
// value is ((c00 + c01) + (c10 + c11)) + ((c20 + c21) + (c30 + c31)). The integer parts are exact, however they are
// formed.
TGT static inline float SFX(q4_chains_sum)(const float *c) {
    return ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]));
}

// The two integer parts of one block for one token, [h0 h1] in the low two s32 lanes: the dot's s32 lane m holds
// elements 4m..4m+3, so h0 is lanes 0+2+4+6 and h1 lanes 1+3+5+7.
TGT static inline __m128i SFX(q4_halves)(__m256i d) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    return _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
}

// Blocks b..b+3 of one token into its chains: h[j] holds block j's [h0 h1], corr2/dx2 the per-call tables
// ([−8·Σx_b, 0] or zeros, [dx_b, dx_b]) at block b, blk block b's bytes (`stride` apart, scale first).
TGT static inline __m256 SFX(chains4)(const __m128i *h, const int32_t *corr2, const float *dx2, const uint8_t *blk,
                                      int stride, __m256 acc) {
    __m256i p = _mm256_set_m128i(_mm_unpacklo_epi64(h[2], h[3]), _mm_unpacklo_epi64(h[0], h[1]));
    p = _mm256_add_epi32(p, _mm256_load_si256((const __m256i *)corr2));
    uint64_t s01 = 0, s23 = 0; // the four fp16 scales, each twice
    for (int j = 0; j < 2; j++) {
        uint16_t a, c;
        memcpy(&a, blk + stride * j, 2);
        memcpy(&c, blk + stride * (j + 2), 2);
        s01 |= ((uint64_t)a * 0x10001u) << (32 * j);
        s23 |= ((uint64_t)c * 0x10001u) << (32 * j);
    }
    __m256 dw = _mm256_cvtph_ps(_mm_set_epi64x((long long)s23, (long long)s01));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_load_ps(dx2)), acc);
}

// A block past the last group of four, into chain b mod 4 of `c` (scalar fmaf: the same single rounding).
TGT static inline void SFX(chains1)(__m256i d, int32_t corr, float sc, int b, float *c) {
    int32_t hv[4];
    _mm_storeu_si128((__m128i *)hv, SFX(q4_halves)(d));
    int k = b & 3;
    c[2 * k] = fmaf((float)(hv[0] + corr), sc, c[2 * k]);
    c[2 * k + 1] = fmaf((float)hv[1], sc, c[2 * k + 1]);
}

// One block's dot for one token: Q4_0 nibbles (unsigned, the offset is in the tables), or Q8_0 as |w| × sign(x, w)
// (which keeps maddubs within range).
TGT static inline __m256i SFX(block_dot)(const uint8_t *blk, const int8_t *x, int q4) {
    const __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    if (q4) return DOT(SFX(q4_unpack)(blk, _mm256_set1_epi8(0x0f)), xv);
    const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));
    return DOT(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
}

// kern_avx512.c takes only the helpers above (its own 512-bit kernels keep this summation order).
#ifndef X86_INT8_CHAIN_HELPERS_ONLY

// The per-call tables of one token: corr2 = [−8·Σx_b, 0] (Q4_0) or zeros (Q8_0), dx2 = [dx_b, dx_b].
static void SFX(one_token_tables)(int nb, const float *xd, const int32_t *xs, int32_t **corr2, float **dx2) {
    *corr2 = aligned_alloc(32, (size_t)nb * 8 + 32);
    *dx2 = aligned_alloc(32, (size_t)nb * 8 + 32);
    for (int b = 0; b < nb; b++) {
        (*corr2)[2 * b] = xs ? -8 * xs[b] : 0;
        (*corr2)[2 * b + 1] = 0;
        (*dx2)[2 * b] = (*dx2)[2 * b + 1] = xd[b];
    }
}

// The one-token Q4_0 / Q8_0 matvec (q4 a constant after inlining).
TGT static inline __attribute__((always_inline)) void SFX(mv_chains)(const uint8_t *w, size_t ld, int cols, int r0,
                                                                     int r1, const int8_t *xq, const float *xd,
                                                                     const int32_t *xs, float *y, int q4) {
    int nb = cols / 32, n4 = nb / 4 * 4, bs = q4 ? 18 : 34;
    int32_t *corr;
    float *dx2;
    SFX(one_token_tables)(nb, xd, q4 ? xs : NULL, &corr, &dx2);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < n4; b += 4) {
            const uint8_t *blk = row + (size_t)b * bs;
            lfm_prefetch_ahead(blk, 2);
            __m128i h[4];
            for (int j = 0; j < 4; j++) h[j] = SFX(q4_halves)(SFX(block_dot)(blk + bs * j, xq + (b + j) * 32, q4));
            acc = SFX(chains4)(h, corr + 2 * b, dx2 + 2 * b, blk, bs, acc);
        }
        float c[8] __attribute__((aligned(32)));
        _mm256_store_ps(c, acc);
        for (int b = n4; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * bs;
            SFX(chains1)(SFX(block_dot)(blk, xq + b * 32, q4), corr[2 * b], fp16s(blk) * xd[b], b, c);
        }
        y[r] = SFX(q4_chains_sum)(c);
    }
    free(corr);
    free(dx2);
}

TGT static void SFX(mv_q4_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                             const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    SFX(mv_chains)(w, ld, cols, r0, r1, xq, xd, xs, y, 1);
}

TGT static void SFX(mv_q8_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,
                             const float *xd, const int32_t *xs, float *y) {
    (void)xf;
    SFX(mv_chains)(w, ld, cols, r0, r1, xq, xd, xs, y, 0);
}

// The per-call tables of four tokens, per block b: xi = the activations in 8-byte chunks, chunk k (elements
// 8k..8k+7) as [t0 | t1 | t2 | t3]; corr = [−8·Σx, 0] per token (Q4_0; zeros without xs); dx2 = [dx, dx] per token.
static void SFX(four_token_tables)(int nb, const int8_t *const *xq, const float *const *xd, const int32_t *const *xs,
                                   int8_t **xi, int32_t **corr, float **dx2) {
    *xi = aligned_alloc(32, (size_t)nb * 128 + 32);
    *corr = aligned_alloc(32, (size_t)nb * 32 + 32);
    *dx2 = aligned_alloc(32, (size_t)nb * 32 + 32);
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < 4; t++) {
            for (int k = 0; k < 4; k++) memcpy(*xi + (size_t)b * 128 + k * 32 + t * 8, xq[t] + b * 32 + k * 8, 8);
            (*corr)[8 * b + 2 * t] = xs ? -8 * xs[t][b] : 0;
            (*corr)[8 * b + 2 * t + 1] = 0;
            (*dx2)[8 * b + 2 * t] = (*dx2)[8 * b + 2 * t + 1] = xd[t][b];
        }
}

// Chain (k, h) of token t is lane 2t + h of accumulator k; q4_chains_sum for the four tokens at once.
TGT static inline void SFX(four_token_store)(__m256 a0, __m256 a1, __m256 a2, __m256 a3, float *const *y, int r) {
    __m256 s0 = _mm256_add_ps(a0, _mm256_permute_ps(a0, 0xb1)), s1 = _mm256_add_ps(a1, _mm256_permute_ps(a1, 0xb1));
    __m256 s2 = _mm256_add_ps(a2, _mm256_permute_ps(a2, 0xb1)), s3 = _mm256_add_ps(a3, _mm256_permute_ps(a3, 0xb1));
    float v[8] __attribute__((aligned(32)));
    _mm256_store_ps(v, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (int t = 0; t < 4; t++) y[t][r] = v[2 * t];
}

// Four tokens at once, the same chains. Activations are interleaved once per call in 8-byte chunks — for block b,
// chunk k (elements 8k..8k+7): [t0 | t1 | t2 | t3] — and each chunk of nibbles is broadcast to the four 64-bit lanes
// (chunks 0/2 are the low/high nibbles of bytes 0..7, chunks 1/3 of bytes 8..15). One u8×s8 product then serves four
// tokens; the four chunks' s16 sums are added (|sum| ≤ 8·15·127 < 2^15), widened once, and each 64-bit lane holds
// one token's [h0 h1]. Per 32 weights × 4 tokens: 2 broadcasts, 2 shifts, 4 ands, 4 products, 3 adds, 1 widening, 1
// cvt, 1 fma, against 4 of nearly everything one token at a time.
TGT static void SFX(mv4_q4_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *const *xq,
                              const float *const *xd, const int32_t *const *xs, float *const *y) {
    int nb = cols / 32;
    const __m128i m4x = _mm_set1_epi8(0x0f);
    int8_t *xi;
    int32_t *corr;
    float *dx2;
    SFX(four_token_tables)(nb, xq, xd, xs, &xi, &corr, &dx2);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        uint8_t nib[32] __attribute__((aligned(16))); // the block's nibbles as bytes: elements 0..31
#define Q4X4_STEP(bb, A)                                                                                               \
    {                                                                                                                  \
        const uint8_t *blk = row + (size_t)(bb) * 18;                                                                  \
        const __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));                                                 \
        _mm_store_si128((__m128i *)nib, _mm_and_si128(q, m4x));                                                        \
        _mm_store_si128((__m128i *)(nib + 16), _mm_and_si128(_mm_srli_epi16(q, 4), m4x));                              \
        int64_t c0, c1, c2, c3;                                                                                        \
        memcpy(&c0, nib, 8);                                                                                           \
        memcpy(&c1, nib + 8, 8);                                                                                       \
        memcpy(&c2, nib + 16, 8);                                                                                      \
        memcpy(&c3, nib + 24, 8);                                                                                      \
        const int8_t *xb = xi + (size_t)(bb) * 128;                                                                    \
        __m256i p = DOT4(_mm256_set1_epi64x(c0), _mm256_load_si256((const __m256i *)xb), _mm256_set1_epi64x(c1),       \
                         _mm256_load_si256((const __m256i *)(xb + 32)), _mm256_set1_epi64x(c2),                        \
                         _mm256_load_si256((const __m256i *)(xb + 64)), _mm256_set1_epi64x(c3),                        \
                         _mm256_load_si256((const __m256i *)(xb + 96)));                                               \
        p = _mm256_add_epi32(p, _mm256_load_si256((const __m256i *)(corr + 8 * (bb))));                                \
        __m256 sc = _mm256_mul_ps(_mm256_set1_ps(fp16s(blk)), _mm256_load_ps(dx2 + 8 * (bb)));                         \
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, A);                                                             \
    }
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            lfm_prefetch_ahead(row + (size_t)b * 18, 2);
            Q4X4_STEP(b, a0) Q4X4_STEP(b + 1, a1) Q4X4_STEP(b + 2, a2) Q4X4_STEP(b + 3, a3)
        }
        if (b < nb) Q4X4_STEP(b, a0)
        if (b + 1 < nb) Q4X4_STEP(b + 1, a1)
        if (b + 2 < nb) Q4X4_STEP(b + 2, a2)
#undef Q4X4_STEP
        SFX(four_token_store)(a0, a1, a2, a3, y, r);
    }
    free(xi);
    free(corr);
    free(dx2);
}

// Q8_0, four tokens: each 8-byte chunk of weights broadcast, |w| × sign(x, w) per chunk, and the chunks widened
// one by one (two s16 pair sums of |w|·|x| could reach 2·32258).
TGT static void SFX(mv4_q8_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, const int8_t *const *xq,
                              const float *const *xd, const int32_t *const *xs, float *const *y) {
    (void)xs;
    int nb = cols / 32;
    int8_t *xi;
    int32_t *corr;
    float *dx2;
    SFX(four_token_tables)(nb, xq, xd, NULL, &xi, &corr, &dx2);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = w + (size_t)r * ld;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#define Q8_CHUNK(k)                                                                                                    \
    ({                                                                                                                 \
        int64_t c;                                                                                                     \
        memcpy(&c, blk + 2 + 8 * (k), 8);                                                                              \
        const __m256i wv = _mm256_set1_epi64x(c);                                                                      \
        DOT(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(xb + 32 * (k))), wv));     \
    })
#define Q8X4_STEP(bb, A)                                                                                               \
    {                                                                                                                  \
        const uint8_t *blk = row + (size_t)(bb) * 34;                                                                  \
        const int8_t *xb = xi + (size_t)(bb) * 128;                                                                    \
        __m256i p = _mm256_add_epi32(_mm256_add_epi32(Q8_CHUNK(0), Q8_CHUNK(1)),                                      \
                                     _mm256_add_epi32(Q8_CHUNK(2), Q8_CHUNK(3)));                                     \
        __m256 sc = _mm256_mul_ps(_mm256_set1_ps(fp16s(blk)), _mm256_load_ps(dx2 + 8 * (bb)));                         \
        A = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, A);                                                             \
    }
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            lfm_prefetch_ahead(row + (size_t)b * 34, 3);
            Q8X4_STEP(b, a0) Q8X4_STEP(b + 1, a1) Q8X4_STEP(b + 2, a2) Q8X4_STEP(b + 3, a3)
        }
        if (b < nb) Q8X4_STEP(b, a0)
        if (b + 1 < nb) Q8X4_STEP(b + 1, a1)
        if (b + 2 < nb) Q8X4_STEP(b + 2, a2)
#undef Q8X4_STEP
#undef Q8_CHUNK
        SFX(four_token_store)(a0, a1, a2, a3, y, r);
    }
    free(xi);
    free(corr);
    free(dx2);
}

// Q8_0 prefill: 2 rows × 4 tokens per tile, eight named accumulators (kept in registers). The eight scale products
// of a block, dw[row]·dx[token], come from one vector multiply ([d0 ×4 | d1 ×4] times [dx0..dx3 | dx0..dx3]) in a
// first pass into `scv`, so the main loop reads each as a broadcast load (no shuffle uops); each (row, token) then
// costs sign, dot, cvt and one fma. Token blocks keep the quantized activations L2-resident while every row pair
// passes over them.
TGT static void SFX(tile_q8)(const uint8_t *r0p, const uint8_t *r1p, int nb, const int8_t *XQ, int ldq,
                             const float *dwv, const float *dxv, float *scv, float *out) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (int b = 0; b < nb; b++)
        _mm256_store_ps(scv + 8 * b, _mm256_mul_ps(_mm256_load_ps(dwv + 8 * b), _mm256_load_ps(dxv + 8 * b)));
    for (int b = 0; b < nb; b++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)(r0p + (size_t)b * 34 + 2));
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)(r1p + (size_t)b * 34 + 2));
        const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
        const float *sc = scv + 8 * b;
        const int8_t *xb = XQ + b * 32;
#define Q8_TOKEN(j, c0, c1)                                                                                            \
    {                                                                                                                  \
        const __m256i x = _mm256_loadu_si256((const __m256i *)(xb + (j) * ldq));                                       \
        c0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT(a0, _mm256_sign_epi8(x, w0))), _mm256_broadcast_ss(sc + (j)), c0); \
        c1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT(a1, _mm256_sign_epi8(x, w1))), _mm256_broadcast_ss(sc + 4 + (j)),  \
                             c1);                                                                                      \
    }
        Q8_TOKEN(0, c00, c10) Q8_TOKEN(1, c01, c11) Q8_TOKEN(2, c02, c12) Q8_TOKEN(3, c03, c13)
#undef Q8_TOKEN
    }
    out[0] = hsum256(c00);
    out[1] = hsum256(c01);
    out[2] = hsum256(c02);
    out[3] = hsum256(c03);
    out[4] = hsum256(c10);
    out[5] = hsum256(c11);
    out[6] = hsum256(c12);
    out[7] = hsum256(c13);
}

TGT static void SFX(gemm_q8)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                             const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int nb = cols / 32, qb = ldq / 32;
    int T4 = T / 4 * 4, R2 = r0 + (r1 - r0) / 2 * 2;
    float *scv = aligned_alloc(32, sizeof(float) * 8 * (size_t)nb + 32); // a tile's scale products
    float *dwv = aligned_alloc(32, sizeof(float) * 8 * (size_t)nb + 32); // [d0 ×4 | d1 ×4] per block
    // [dx0..dx3 | dx0..dx3] per block, for every tile of 4 tokens
    float *dxv = aligned_alloc(32, sizeof(float) * 2 * (size_t)nb * (size_t)(T4 > 0 ? T4 : 1) + 32);
    for (int t = 0; t < T4; t += 4)
        for (int b = 0; b < nb; b++)
            for (int k = 0; k < 4; k++)
                dxv[(size_t)t * 2 * nb + 8 * b + k] = dxv[(size_t)t * 2 * nb + 8 * b + 4 + k] =
                    XD[(size_t)(t + k) * qb + b];
    int tb = (int)((128 * 1024) / (size_t)(cols > 0 ? cols : 1)) / 4 * 4;
    if (tb < 4) tb = 4;
    for (int t0 = 0; t0 < T4; t0 += tb) {
        int t1 = t0 + tb < T4 ? t0 + tb : T4;
        for (int r = r0; r < R2; r += 2) {
            const uint8_t *p0 = w + (size_t)r * ld, *p1 = p0 + ld;
            for (int b = 0; b < nb; b++) {
                float d0 = fp16s(p0 + b * 34), d1 = fp16s(p1 + b * 34);
                for (int k = 0; k < 4; k++) {
                    dwv[8 * b + k] = d0;
                    dwv[8 * b + 4 + k] = d1;
                }
            }
            for (int t = t0; t < t1; t += 4) {
                float acc[8];
                SFX(tile_q8)(p0, p1, nb, XQ + (size_t)t * ldq, ldq, dwv, dxv + (size_t)t * 2 * nb, scv, acc);
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 4; j++) Y[(size_t)(t + j) * ldy + r + i] = acc[i * 4 + j];
            }
        }
    }
    free(dwv);
    free(dxv);
    free(scv);
    // leftover tokens (all rows) and the odd last row (tokens of the tiles)
    if (T4 < T)
        lfm_scalar_gemm_generic(SFX(mv_q8_0), w, ld, cols, r0, r1, T - T4, X ? X + (size_t)T4 * ldx : NULL, ldx,
                                XQ + (size_t)T4 * ldq, XD + (size_t)T4 * qb, XS + (size_t)T4 * qb, ldq,
                                Y + (size_t)T4 * ldy, ldy);
    if (R2 < r1 && T4 > 0)
        lfm_scalar_gemm_generic(SFX(mv_q8_0), w, ld, cols, R2, r1, T4, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}

// Q4_0 prefill, 4 rows × 4 tokens per tile. The activations of each 4-token group are interleaved once per call in
// 8-byte chunks, [t0 x[8k..8k+8) | t1 | t2 | t3] for k = 0..3, and each row's unpacked nibbles [8k..8k+8) are
// broadcast to the four 64-bit lanes (a load). One u8×s8 product per chunk then serves four tokens at once; the four
// chunks' s16 sums are added before a single widening step (|sum| ≤ 8·15·127 < 2^15, so nothing saturates), and the
// s32 lanes (2 per token) take the block's four scale products in one fma. Per 32 weights × 4 tokens: 4 products,
// 3 adds, 1 widening, 1 cvt, 1 fma, instead of 4 of each (the integer-multiply pipe is the bottleneck on Zen).
TGT static void SFX(tile_q4x4)(const uint8_t *un, size_t ustride, int nb, const int8_t *xi, const float *scv,
                               float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = xi + (size_t)b * 128;
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)xb), x1 = _mm256_loadu_si256((const __m256i *)(xb + 32));
        const __m256i x2 = _mm256_loadu_si256((const __m256i *)(xb + 64)),
                      x3 = _mm256_loadu_si256((const __m256i *)(xb + 96));
        const float *sc = scv + (size_t)b * 32;
#define Q4X4_ROW(acc, i)                                                                                               \
    {                                                                                                                  \
        const uint8_t *u = un + (i) * ustride + (size_t)b * 32;                                                        \
        int64_t c0, c1, c2, c3;                                                                                        \
        memcpy(&c0, u, 8);                                                                                             \
        memcpy(&c1, u + 8, 8);                                                                                         \
        memcpy(&c2, u + 16, 8);                                                                                        \
        memcpy(&c3, u + 24, 8);                                                                                        \
        __m256i d = DOT4(_mm256_set1_epi64x(c0), x0, _mm256_set1_epi64x(c1), x1, _mm256_set1_epi64x(c2), x2,           \
                         _mm256_set1_epi64x(c3), x3);                                                                  \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(sc + 8 * (i)), acc);                               \
    }
        Q4X4_ROW(a0, 0) Q4X4_ROW(a1, 1) Q4X4_ROW(a2, 2) Q4X4_ROW(a3, 3)
#undef Q4X4_ROW
    }
    float v[8] __attribute__((aligned(32)));
    __m256 acc[4] = {a0, a1, a2, a3};
    for (int i = 0; i < 4; i++) {
        _mm256_store_ps(v, acc[i]);
        for (int t = 0; t < 4; t++) out[i * 4 + t] = v[2 * t] + v[2 * t + 1];
    }
}

// One row of Q4_0 for the tile GEMM: 32 levels per block (the nibbles, 0..15) and the block's scale.
TGT static void SFX(q4_0_levels)(const uint8_t *p, int nb, uint8_t *un, float *dw, float *mw, int16_t *hsc) {
    (void)mw;
    (void)hsc;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        dw[b] = fp16s(p + (size_t)b * 18);
        _mm256_store_si256((__m256i *)(un + (size_t)b * 32), SFX(q4_unpack)(p + (size_t)b * 18, m4));
    }
}

// The Q6_K form of the tile (levels ≤ 63, a scale per 16 elements): the two chunks of each 16 are summed in s16
// (2 · 2 · 63 · 127 < 2^15), then VPMADDWD applies the integer scale to each pair (maddubs in both flavours).
TGT static void SFX(tile_q6x4)(const uint8_t *un, const int16_t *hsc, size_t ustride, int nb, const int8_t *xi,
                               const float *scv, float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int b = 0; b < nb; b++) {
        const int8_t *xb = xi + (size_t)b * 128;
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)xb), x1 = _mm256_loadu_si256((const __m256i *)(xb + 32));
        const __m256i x2 = _mm256_loadu_si256((const __m256i *)(xb + 64)),
                      x3 = _mm256_loadu_si256((const __m256i *)(xb + 96));
        const float *sc = scv + (size_t)b * 32;
#define Q6X4_ROW(acc, i)                                                                                               \
    {                                                                                                                  \
        const uint8_t *u = un + (i) * ustride + (size_t)b * 32;                                                        \
        const int16_t *h = hsc + (i) * (size_t)(2 * nb) + 2 * b;                                                       \
        int64_t c0, c1, c2, c3;                                                                                        \
        memcpy(&c0, u, 8);                                                                                             \
        memcpy(&c1, u + 8, 8);                                                                                         \
        memcpy(&c2, u + 16, 8);                                                                                        \
        memcpy(&c3, u + 24, 8);                                                                                        \
        __m256i lo = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_set1_epi64x(c0), x0),                                \
                                      _mm256_maddubs_epi16(_mm256_set1_epi64x(c1), x1));                               \
        __m256i hi = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_set1_epi64x(c2), x2),                                \
                                      _mm256_maddubs_epi16(_mm256_set1_epi64x(c3), x3));                               \
        __m256i d = _mm256_add_epi32(_mm256_madd_epi16(lo, _mm256_set1_epi16(h[0])),                                   \
                                     _mm256_madd_epi16(hi, _mm256_set1_epi16(h[1])));                                  \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(sc + 8 * (i)), acc);                               \
    }
        Q6X4_ROW(a0, 0) Q6X4_ROW(a1, 1) Q6X4_ROW(a2, 2) Q6X4_ROW(a3, 3)
#undef Q6X4_ROW
    }
    float v[8] __attribute__((aligned(32)));
    __m256 acc[4] = {a0, a1, a2, a3};
    for (int i = 0; i < 4; i++) {
        _mm256_store_ps(v, acc[i]);
        for (int t = 0; t < 4; t++) out[i * 4 + t] = v[2 * t] + v[2 * t + 1];
    }
}

// Prefill of weights with unsigned levels (Q4_0's nibbles, Q4_K's and Q5_K's levels ≤ 31, Q6_K's ≤ 63), 4 rows ×
// 4 tokens per tile: Y = Σ_b dw_b·dx_b·Σ level·x (times the 16-element scales for LFM_LEVELS_HALVES) plus the
// offsets Σ mw·(coef·dx·Σx), over blocks or 16-element halves (lfm_levels_fn's kinds). `levels` unpacks a row;
// `mv` serves the tokens and rows outside the tiles. The 4-level DOT4 sums stay within s16: 4 · 2 · 31 · 127 < 2^15.
TGT void SFX(lfm_gemm_levels)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                              const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy,
                              lfm_levels_fn levels, int kind, float coef, lfm_matvec_fn mv) {
    int nb = cols / 32, qb = ldq / 32;
    int halves = kind == LFM_LEVELS_HALVES, no = halves ? 2 * nb : nb; // offset terms per row and token
    int T4 = T / 4 * 4, R4 = r0 + (r1 - r0) / 4 * 4;
    int8_t *xi = aligned_alloc(32, (size_t)(T4 > 0 ? T4 : 1) * cols + 32);                   // interleaved activations
    float *dxq = aligned_alloc(32, sizeof(float) * 2 * (size_t)nb * (T4 > 0 ? T4 : 1) + 32); // [dx0 dx0 dx1 dx1 ..]
    float *xe = malloc(sizeof(float) * (size_t)(T > 0 ? T : 1) * no); // coef·dx·Σx per (token, offset term)
    float *dw = malloc(sizeof(float) * 4 * (size_t)nb);
    float *mw = kind != LFM_LEVELS_SAME ? malloc(sizeof(float) * 4 * (size_t)no) : dw;
    int16_t *hsc = halves ? malloc(sizeof(int16_t) * 4 * (size_t)no) : NULL;
    float *scv = aligned_alloc(32, sizeof(float) * 32 * (size_t)nb + 32);
    uint8_t *un = aligned_alloc(32, (size_t)128 * nb + 32);
    for (int t = 0; t < T; t++)
        for (int b = 0; b < nb; b++) {
            float dx = XD[(size_t)t * qb + b];
            if (!halves) {
                xe[(size_t)t * no + b] = coef * dx * (float)XS[(size_t)t * qb + b];
                continue;
            }
            const int8_t *x = XQ + (size_t)t * ldq + b * 32;
            for (int h = 0; h < 2; h++) {
                int sum = 0;
                for (int k = 0; k < 16; k++) sum += x[16 * h + k];
                xe[(size_t)t * no + 2 * b + h] = coef * dx * (float)sum;
            }
        }
    for (int t = 0; t < T4; t += 4)
        for (int b = 0; b < nb; b++) {
            int8_t *o = xi + (size_t)t * cols + (size_t)b * 128;
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < 4; j++) memcpy(o + k * 32 + j * 8, XQ + (size_t)(t + j) * ldq + b * 32 + k * 8, 8);
            float *d = dxq + (size_t)t * 2 * nb + (size_t)b * 8;
            for (int j = 0; j < 4; j++) d[2 * j] = d[2 * j + 1] = XD[(size_t)(t + j) * qb + b];
        }
    int tb = (int)((128 * 1024) / (size_t)(cols > 0 ? cols : 1)) / 4 * 4;
    if (tb < 4) tb = 4;
    for (int t0 = 0; t0 < T4; t0 += tb) {
        int t1 = t0 + tb < T4 ? t0 + tb : T4;
        for (int r = r0; r < R4; r += 4) {
            for (int i = 0; i < 4; i++)
                levels(w + (size_t)(r + i) * ld, nb, un + (size_t)i * nb * 32, dw + (size_t)i * nb,
                       kind != LFM_LEVELS_SAME ? mw + (size_t)i * no : NULL, halves ? hsc + (size_t)i * no : NULL);
            for (int t = t0; t < t1; t += 4) {
                const float *dq = dxq + (size_t)t * 2 * nb;
                for (int b = 0; b < nb; b++) {
                    __m256 dx = _mm256_load_ps(dq + (size_t)b * 8);
                    for (int i = 0; i < 4; i++)
                        _mm256_store_ps(scv + (size_t)b * 32 + i * 8,
                                        _mm256_mul_ps(_mm256_set1_ps(dw[i * nb + b]), dx));
                }
                float out[16];
                if (halves)
                    SFX(tile_q6x4)(un, hsc, (size_t)nb * 32, nb, xi + (size_t)t * cols, scv, out);
                else
                    SFX(tile_q4x4)(un, (size_t)nb * 32, nb, xi + (size_t)t * cols, scv, out);
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        Y[(size_t)(t + j) * ldy + r + i] =
                            out[i * 4 + j] + dot8(mw + (size_t)i * no, xe + (size_t)(t + j) * no, no);
            }
        }
    }
    free(xi);
    free(dxq);
    free(xe);
    if (mw != dw) free(mw);
    free(hsc);
    free(dw);
    free(scv);
    free(un);
    if (T4 < T)
        lfm_scalar_gemm_generic(mv, w, ld, cols, r0, r1, T - T4, X ? X + (size_t)T4 * ldx : NULL, ldx,
                                XQ + (size_t)T4 * ldq, XD + (size_t)T4 * qb, XS + (size_t)T4 * qb, ldq,
                                Y + (size_t)T4 * ldy, ldy);
    if (R4 < r1 && T4 > 0) lfm_scalar_gemm_generic(mv, w, ld, cols, R4, r1, T4, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}

TGT static void SFX(gemm_q4)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                             const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    SFX(lfm_gemm_levels)(w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy, SFX(q4_0_levels),
                         LFM_LEVELS_SAME, -8.f, SFX(mv_q4_0));
}

TGT static void SFX(mm_q8_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                             const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    SFX(gemm_q8)(w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}
TGT static void SFX(mm_q4_0)(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,
                             const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    SFX(gemm_q4)(w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}
#endif // X86_INT8_CHAIN_HELPERS_ONLY
