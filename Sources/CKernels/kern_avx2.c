// The avx2 tier (AVX2 + FMA + F16C: Intel Haswell and later, AMD Zen and later) and the avx2-vnni tier (the same
// plus VEX-encoded AVX-VNNI: Intel Alder Lake and later), which replaces only the integer dot products.
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2VNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
// AVX512-VNNI's EVEX vpdpbusd on 256-bit registers, for the avx512 tier on CPUs without VEX AVX-VNNI (AMD Zen 4,
// Intel Ice Lake and Cascade Lake): the AVX-VNNI flavour's code, another encoding of the same instruction.
#define AVX512VNNI256 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

AVX2 static inline float hsum256(__m256 a) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}
AVX2 static inline float hmax256(__m256 a) {
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_movehdup_ps(v));
    return _mm_cvtss_f32(v);
}
AVX2 static inline float fp16s(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
AVX2 static inline __m256 ld_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
AVX2 static inline __m256 ld_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
AVX2 static inline __m256 ld_f32(const float *p) { return _mm256_loadu_ps(p); }

AVX2 static float dot8(const float *a, const float *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hsum256(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// Same results as the scalar quantizer: amax/127 scale, x·(1/d) rounded to nearest even (cvtps = lrintf's mode).
AVX2 static void quantize_act_q8(const float *x, int n, int8_t *q, float *d, int32_t *s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int nb = n / 32;
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16),
               v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        float amax = hmax256(m);
        float db = amax / 127.f, id = db != 0.f ? 1.f / db : 0.f;
        __m256 iv = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, iv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, iv));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, iv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, iv));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)(q + b * 32), _mm256_permutevar8x32_epi32(p, perm));
        d[b] = db;
        s[b] = _mm_cvtsi128_si32(s4);
    }
}

// Float weights, decode: one row at a time, 32 elements per iteration into four accumulators.
#define FLOAT_MATVEC(NAME, WT, LOADW, WIDEN)                                                                           \
    AVX2 static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, const float *xf, const int8_t *xq,    \
                          const float *xd, const int32_t *xs, float *y) {                                              \
        (void)xq;                                                                                                      \
        (void)xd;                                                                                                      \
        (void)xs;                                                                                                      \
        for (int r = r0; r < r1; r++) {                                                                                \
            const WT *p = (const WT *)(w + (size_t)r * ld);                                                            \
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),                       \
                   a3 = _mm256_setzero_ps();                                                                           \
            int i = 0;                                                                                                 \
            for (; i + 32 <= cols; i += 32) {                                                                          \
                a0 = _mm256_fmadd_ps(LOADW(p + i), _mm256_loadu_ps(xf + i), a0);                                       \
                a1 = _mm256_fmadd_ps(LOADW(p + i + 8), _mm256_loadu_ps(xf + i + 8), a1);                               \
                a2 = _mm256_fmadd_ps(LOADW(p + i + 16), _mm256_loadu_ps(xf + i + 16), a2);                             \
                a3 = _mm256_fmadd_ps(LOADW(p + i + 24), _mm256_loadu_ps(xf + i + 24), a3);                             \
            }                                                                                                          \
            for (; i + 8 <= cols; i += 8) a0 = _mm256_fmadd_ps(LOADW(p + i), _mm256_loadu_ps(xf + i), a0);             \
            float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                            \
            for (; i < cols; i++) s += WIDEN(p[i]) * xf[i];                                                            \
            y[r] = s;                                                                                                  \
        }                                                                                                              \
    }
#define ID(v) (v)
FLOAT_MATVEC(mv_f32, float, ld_f32, ID)
FLOAT_MATVEC(mv_f16, uint16_t, ld_f16, _cvtsh_ss)
FLOAT_MATVEC(mv_bf16, uint16_t, ld_bf16, lfm_b2f)

// Float weights, prefill: 2 rows × 4 tokens per tile; each 8-element chunk of a row is widened once and used by
// four FMAs. Token blocks keep the activations in L2 while the row pairs pass over them.
#define FLOAT_GEMM(NAME, WT, LOADW, WIDEN, MV)                                                                         \
    AVX2 static void NAME(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X, int ldx,       \
                          const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {          \
        int T4 = T / 4 * 4, R2 = r0 + (r1 - r0) / 2 * 2, K8 = cols / 8 * 8;                                            \
        int tb = (int)((512 * 1024) / ((size_t)(cols > 0 ? cols : 1) * 4)) / 4 * 4;                                    \
        if (tb < 4) tb = 4;                                                                                            \
        for (int t0 = 0; t0 < T4; t0 += tb) {                                                                          \
            int t1 = t0 + tb < T4 ? t0 + tb : T4;                                                                      \
            for (int r = r0; r < R2; r += 2) {                                                                         \
                const WT *p0 = (const WT *)(w + (size_t)r * ld), *p1 = (const WT *)(w + (size_t)(r + 1) * ld);         \
                for (int t = t0; t < t1; t += 4) {                                                                     \
                    const float *x0 = X + (size_t)t * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;             \
                    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;                                 \
                    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;                                                 \
                    for (int k = 0; k < K8; k += 8) {                                                                  \
                        __m256 w0 = LOADW(p0 + k), w1 = LOADW(p1 + k);                                                 \
                        __m256 v = _mm256_loadu_ps(x0 + k);                                                            \
                        c00 = _mm256_fmadd_ps(w0, v, c00);                                                             \
                        c10 = _mm256_fmadd_ps(w1, v, c10);                                                             \
                        v = _mm256_loadu_ps(x1 + k);                                                                   \
                        c01 = _mm256_fmadd_ps(w0, v, c01);                                                             \
                        c11 = _mm256_fmadd_ps(w1, v, c11);                                                             \
                        v = _mm256_loadu_ps(x2 + k);                                                                   \
                        c02 = _mm256_fmadd_ps(w0, v, c02);                                                             \
                        c12 = _mm256_fmadd_ps(w1, v, c12);                                                             \
                        v = _mm256_loadu_ps(x3 + k);                                                                   \
                        c03 = _mm256_fmadd_ps(w0, v, c03);                                                             \
                        c13 = _mm256_fmadd_ps(w1, v, c13);                                                             \
                    }                                                                                                  \
                    float s[2][4] = {{hsum256(c00), hsum256(c01), hsum256(c02), hsum256(c03)},                         \
                                     {hsum256(c10), hsum256(c11), hsum256(c12), hsum256(c13)}};                        \
                    for (int k = K8; k < cols; k++)                                                                    \
                        for (int j = 0; j < 4; j++) {                                                                  \
                            s[0][j] += WIDEN(p0[k]) * X[(size_t)(t + j) * ldx + k];                                    \
                            s[1][j] += WIDEN(p1[k]) * X[(size_t)(t + j) * ldx + k];                                    \
                        }                                                                                              \
                    for (int j = 0; j < 4; j++) {                                                                      \
                        Y[(size_t)(t + j) * ldy + r] = s[0][j];                                                        \
                        Y[(size_t)(t + j) * ldy + r + 1] = s[1][j];                                                    \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (T4 < T)                                                                                                    \
            lfm_scalar_gemm_generic(MV, w, ld, cols, r0, r1, T - T4, X + (size_t)T4 * ldx, ldx, NULL, NULL, NULL, ldq, \
                                    Y + (size_t)T4 * ldy, ldy);                                                        \
        if (R2 < r1 && T4 > 0)                                                                                         \
            lfm_scalar_gemm_generic(MV, w, ld, cols, R2, r1, T4, X, ldx, NULL, NULL, NULL, ldq, Y, ldy);               \
    }
FLOAT_GEMM(mm_f32, float, ld_f32, ID, mv_f32)
FLOAT_GEMM(mm_f16, uint16_t, ld_f16, _cvtsh_ss, mv_f16)
FLOAT_GEMM(mm_bf16, uint16_t, ld_bf16, lfm_b2f, mv_bf16)

// Integer kernels, AVX2 flavour.
#define TGT AVX2
#define SFX(n) n##_avx2
#define DOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define DOT4(u0, s0, u1, s1, u2, s2, u3, s3)                                                                           \
    _mm256_madd_epi16(                                                                                                 \
        _mm256_add_epi16(_mm256_add_epi16(_mm256_maddubs_epi16((u0), (s0)), _mm256_maddubs_epi16((u1), (s1))),         \
                         _mm256_add_epi16(_mm256_maddubs_epi16((u2), (s2)), _mm256_maddubs_epi16((u3), (s3)))),        \
        _mm256_set1_epi16(1))
#include "x86_int8.h"
#undef TGT
#undef SFX
#undef DOT
#undef DOT4
// AVX-VNNI flavour.
#define TGT AVX2VNNI
#define SFX(n) n##_vnni
#define DOT(u, s) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), (u), (s))
#define DOT4(u0, s0, u1, s1, u2, s2, u3, s3)                                                                           \
    _mm256_dpbusd_avx_epi32(                                                                                           \
        _mm256_dpbusd_avx_epi32(                                                                                       \
            _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), (u0), (s0)), (u1), (s1)), (u2),    \
            (s2)),                                                                                                     \
        (u3), (s3))
#include "x86_int8.h"
#undef TGT
#undef SFX
#undef DOT
#undef DOT4
// AVX512-VNNI (EVEX, ymm) flavour.
#define TGT AVX512VNNI256
#define SFX(n) n##_evnni
#define DOT(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define DOT4(u0, s0, u1, s1, u2, s2, u3, s3)                                                                           \
    _mm256_dpbusd_epi32(                                                                                               \
        _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), (u0), (s0)), (u1), (s1)), \
                            (u2), (s2)),                                                                               \
        (u3), (s3))
#include "x86_int8.h"
#undef TGT
#undef SFX
#undef DOT
#undef DOT4

AVX2 static void row_f16(const uint8_t *p, int cols, float *out) {
    const uint16_t *h = (const uint16_t *)p;
    int i = 0;
    for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(out + i, ld_f16(h + i));
    for (; i < cols; i++) out[i] = _cvtsh_ss(h[i]);
}
AVX2 static void row_bf16(const uint8_t *p, int cols, float *out) {
    const uint16_t *h = (const uint16_t *)p;
    int i = 0;
    for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(out + i, ld_bf16(h + i));
    for (; i < cols; i++) out[i] = lfm_b2f(h[i]);
}
AVX2 static void row_q8_0(const uint8_t *p, int cols, float *out) {
    for (int b = 0; b < cols / 32; b++) {
        const uint8_t *blk = p + (size_t)b * 34;
        __m256 d = _mm256_set1_ps(fp16s(blk));
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(
                out + b * 32 + k * 8,
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 2 + k * 8)))), d));
    }
}
AVX2 static void row_q4_0(const uint8_t *p, int cols, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256 eight = _mm256_set1_ps(8.f);
    for (int b = 0; b < cols / 32; b++) {
        const uint8_t *blk = p + (size_t)b * 18;
        __m256 d = _mm256_set1_ps(fp16s(blk));
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
        __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        uint8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, u);
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(tmp + k * 8))));
            _mm256_storeu_ps(out + b * 32 + k * 8, _mm256_mul_ps(_mm256_sub_ps(v, eight), d));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row and elementwise kernels. exp: Cephes-style range reduction and polynomial (|rel err| < 2e-7); the input is
// clamped to [−87.3, 88.3] so 2^n stays a normal float.

AVX2 static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.3762626647949f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static void silu(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

AVX2 static void glu(const float *a, const float *g, size_t n, float *y) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(g + i)));
        _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_loadu_ps(a + i), _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
    for (; i < n; i++) y[i] = a[i] / (1.0f + expf(-g[i]));
}

// Exact GELU, ½x(1 + erf(x/√2)), with erf from Abramowitz & Stegun 7.1.26 (|abs err| ≤ 1.5e-7) below |z| = 0.5
// switched to its Taylor series (relative error < 1e-7 near zero, where 7.1.26's absolute error would dominate).
AVX2 static void gelu(float *x, size_t n) {
    size_t i = 0;
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
        __m256 s = _mm256_and_ps(z, sign), a = _mm256_andnot_ps(sign, z);
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one));
        __m256 p = _mm256_set1_ps(1.061405429f);
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
        p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
        p = _mm256_mul_ps(p, t);
        __m256 erfa = _mm256_fnmadd_ps(p, exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a))), one);
        // series: erf(a) = 2/√π (a − a³/3 + a⁵/10 − a⁷/42 + a⁹/216)
        __m256 a2 = _mm256_mul_ps(a, a);
        __m256 q = _mm256_set1_ps(1.0f / 216);
        q = _mm256_fmadd_ps(q, a2, _mm256_set1_ps(-1.0f / 42));
        q = _mm256_fmadd_ps(q, a2, _mm256_set1_ps(1.0f / 10));
        q = _mm256_fmadd_ps(q, a2, _mm256_set1_ps(-1.0f / 3));
        q = _mm256_fmadd_ps(q, a2, one);
        __m256 ser = _mm256_mul_ps(_mm256_mul_ps(q, a), _mm256_set1_ps(1.12837916709551257f));
        __m256 small = _mm256_cmp_ps(a, _mm256_set1_ps(0.5f), _CMP_LT_OQ);
        __m256 e = _mm256_or_ps(_mm256_blendv_ps(erfa, ser, small), s);
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = (float)(0.5 * (double)x[i] * (1.0 + erf((double)x[i] * 0.70710678118654752440)));
}

AVX2 static void relu(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_max_ps(_mm256_loadu_ps(x + i), _mm256_setzero_ps()));
    for (; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

// ELU(alpha 1): x for x > 0, expm1(x) otherwise; expm1 by a degree-7 series for |x| ≤ 0.25 and exp(x) − 1 below.
AVX2 static void elu(const float *x, float *y, size_t n) {
    size_t i = 0;
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), small = _mm256_set1_ps(-0.25f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 p = _mm256_set1_ps(1.0f / 5040);
        p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.0f / 720));
        p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.0f / 120));
        p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.0f / 24));
        p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(1.0f / 6));
        p = _mm256_fmadd_ps(p, v, _mm256_set1_ps(0.5f));
        p = _mm256_fmadd_ps(p, _mm256_mul_ps(v, v), v);
        __m256 e = _mm256_sub_ps(exp256(v), one);
        __m256 neg = _mm256_blendv_ps(e, p, _mm256_cmp_ps(v, small, _CMP_GE_OQ));
        _mm256_storeu_ps(y + i, _mm256_blendv_ps(neg, v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
    }
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]);
}

AVX2 static void layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    float sum = hsum256(s);
    for (; i < n; i++) sum += x[i];
    float mean = sum / (float)n;
    __m256 m = _mm256_set1_ps(mean), v = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        v = _mm256_fmadd_ps(d, d, v);
    }
    float var = hsum256(v);
    for (; i < n; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    float r = 1.0f / sqrtf(var / (float)n + eps);
    __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), rv);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}

AVX2 static void rmsnorm(const float *x, const float *w, int n, float eps, float *y) {
    __m256 s = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        s = _mm256_fmadd_ps(v, v, s);
    }
    float ss = hsum256(s);
    for (; i < n; i++) ss += x[i] * x[i];
    float r = 1 / sqrtf(ss / (float)n + eps);
    __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), rv)));
    for (; i < n; i++) y[i] = w[i] * (x[i] * r);
}

AVX2 static void softmax(float *x, int n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float mx = hmax256(mv);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    __m256 m = _mm256_set1_ps(mx), s = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum256(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

// One query against n keys/values: scores, softmax, then the weighted sum of values in chunks of 64 columns
// (8 accumulators in registers).
AVX2 static void attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *sc,
                        float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        float s = dot8(q, K + (size_t)j * ld, hd) * scale;
        sc[j] = s;
        mx = s > mx ? s : mx;
    }
    __m256 m = _mm256_set1_ps(mx), sum = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(sc + j), m));
        _mm256_storeu_ps(sc + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum256(sum);
    for (; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        total += sc[j];
    }
    float inv = 1.0f / total;
    int H8 = hd / 8 * 8;
    for (int c0 = 0; c0 < H8; c0 += 64) {
        int nc = (H8 - c0) / 8 < 8 ? (H8 - c0) / 8 : 8;
        __m256 acc[8];
        for (int c = 0; c < nc; c++) acc[c] = _mm256_setzero_ps();
        for (j = 0; j < n; j++) {
            __m256 wv = _mm256_set1_ps(sc[j] * inv);
            const float *v = V + (size_t)j * ld + c0;
            for (int c = 0; c < nc; c++) acc[c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + 8 * c), acc[c]);
        }
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(out + c0 + 8 * c, acc[c]);
    }
    for (int i = H8; i < hd; i++) {
        float s = 0;
        for (j = 0; j < n; j++) s += sc[j] * inv * V[(size_t)j * ld + i];
        out[i] = s;
    }
}

AVX2 static void axpy(float a, const float *x, float *y, size_t n) {
    __m256 av = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
AVX2 static float dot(const float *a, const float *b, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void lfm_register_avx2(lfm_table *t) {
    const int T = LFM_TIER_AVX2;
    t->quantize_act = quantize_act_q8;
    LFM_MARK(t, LFM_FN_QUANT_ACT, T);
    lfm_matvec_fn mv[] = {mv_f32, mv_f16, mv_bf16, mv_q8_0_avx2, mv_q4_0_avx2};
    lfm_gemm_fn mm[] = {mm_f32, mm_f16, mm_bf16, mm_q8_0_avx2, mm_q4_0_avx2};
    lfm_set_products(t, mv, mm, T);
    t->row[LFM_TYPE_F16] = row_f16;
    t->row[LFM_TYPE_BF16] = row_bf16; // F32 rows are a memcpy on every tier
    t->row[LFM_TYPE_Q8_0] = row_q8_0;
    t->row[LFM_TYPE_Q4_0] = row_q4_0;
    for (int i = 0; i < LFM_TYPE_BLOCK32_COUNT; i++) LFM_MARK(t, LFM_FN_ROW + i, T);
    t->matvec4[LFM_TYPE_Q8_0] = mv4_q8_0_avx2;
    t->matvec4[LFM_TYPE_Q4_0] = mv4_q4_0_avx2;
    t->matvec4_from[LFM_TYPE_Q8_0] = t->matvec4_from[LFM_TYPE_Q4_0] = (signed char)T;
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
    for (int f = LFM_FN_SILU; f < LFM_FN_COUNT; f++) LFM_MARK(t, f, T);
    lfm_register_kquant_avx2(t);
}

// The integer products of a VNNI flavour over the avx2 ones, marked with `tier`.
static void register_vnni(lfm_table *t, int tier, lfm_matvec_fn mv8, lfm_matvec_fn mv4, lfm_matvec4_fn mv4_8,
                          lfm_matvec4_fn mv4_4, lfm_gemm_fn mm8, lfm_gemm_fn mm4) {
    t->matvec[LFM_TYPE_Q8_0] = mv8;
    t->matvec[LFM_TYPE_Q4_0] = mv4;
    t->matvec4[LFM_TYPE_Q8_0] = mv4_8;
    t->matvec4[LFM_TYPE_Q4_0] = mv4_4;
    t->matvec4_from[LFM_TYPE_Q8_0] = t->matvec4_from[LFM_TYPE_Q4_0] = (signed char)tier;
    t->gemm[LFM_TYPE_Q8_0] = mm8;
    t->gemm[LFM_TYPE_Q4_0] = mm4;
    LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q8_0, tier);
    LFM_MARK(t, LFM_FN_MATVEC + LFM_TYPE_Q4_0, tier);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q8_0, tier);
    LFM_MARK(t, LFM_FN_GEMM + LFM_TYPE_Q4_0, tier);
}

void lfm_register_avx2_vnni(lfm_table *t) {
    register_vnni(t, LFM_TIER_AVX2_VNNI, mv_q8_0_vnni, mv_q4_0_vnni, mv4_q8_0_vnni, mv4_q4_0_vnni, mm_q8_0_vnni,
                  mm_q4_0_vnni);
    lfm_register_kquant_avx2_vnni(t);
}

// The avx512 tier without AVX-VNNI: the same products through the EVEX flavour (kern_avx512.c then replaces the
// Q8_0 / Q4_0 ones with its 512-bit kernels; the 256-bit K-quant GEMMs stay).
void lfm_register_avx512_vnni256(lfm_table *t) {
    register_vnni(t, LFM_TIER_AVX512, mv_q8_0_evnni, mv_q4_0_evnni, mv4_q8_0_evnni, mv4_q4_0_evnni, mm_q8_0_evnni,
                  mm_q4_0_evnni);
    lfm_register_kquant_avx512_vnni256(t);
}
#else
void lfm_register_avx2(lfm_table *t) { (void)t; }
void lfm_register_avx2_vnni(lfm_table *t) { (void)t; }
void lfm_register_avx512_vnni256(lfm_table *t) { (void)t; }
#endif
