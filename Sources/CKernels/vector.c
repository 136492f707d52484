// Elementwise and row kernels for the audio encoder and heads: LayerNorm, SiLU, GLU, exact GELU, softmax.
// The AVX-512 paths use a Cephes-style exp (|rel err| < 2e-7); the portable paths call libm.
#include "CKernels.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

int lfm_vector_fast(void);

#if defined(__x86_64__)
#define VAVX512 __attribute__((target("avx512f,avx512dq,fma")))
VAVX512 static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.72283f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
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
    for (i = 0; i + 16 <= n; i += 16) { __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), m); v = _mm512_fmadd_ps(d, d, v); }
    float var = _mm512_reduce_add_ps(v);
    for (; i < n; i++) { float d = x[i] - mean; var += d * d; }
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
    for (i = 0; i + 16 <= n; i += 16) { __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m)); _mm512_storeu_ps(x + i, e); s = _mm512_add_ps(s, e); }
    float sum = _mm512_reduce_add_ps(s);
    for (; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}
#endif

void lfm_silu(float *x, size_t n) {
#if defined(__x86_64__)
    if (lfm_vector_fast()) { silu512(x, n); return; }
#endif
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void lfm_glu(const float *a, const float *g, size_t n, float *y) {
#if defined(__x86_64__)
    if (lfm_vector_fast()) { glu512(a, g, n, y); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = a[i] / (1.0f + expf(-g[i]));
}

void lfm_gelu_erf(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(0.5 * (double)x[i] * (1.0 + erf((double)x[i] * 0.70710678118654752440)));
}

void lfm_relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

void lfm_layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
#if defined(__x86_64__)
    if (lfm_vector_fast()) { layernorm512(x, w, b, n, eps, y); return; }
#endif
    double s = 0; for (int i = 0; i < n; i++) s += x[i];
    float mean = (float)(s / n);
    double v = 0; for (int i = 0; i < n; i++) { double d = x[i] - mean; v += d * d; }
    float r = (float)(1.0 / sqrt(v / n + eps));
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * r * w[i] + b[i];
}

void lfm_softmax(float *x, int n) {
#if defined(__x86_64__)
    if (lfm_vector_fast()) { softmax512(x, n); return; }
#endif
    float mx = -INFINITY; for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0; for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); s += x[i]; }
    float inv = (float)(1.0 / s); for (int i = 0; i < n; i++) x[i] *= inv;
}

#if defined(__x86_64__)
VAVX512 static void attend512(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *sc, float *out) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ld;
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a);
        float s = _mm512_reduce_add_ps(a) * scale;
        sc[j] = s; mx = s > mx ? s : mx;
    }
    __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) { __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(sc + j), m)); _mm512_storeu_ps(sc + j, e); sum = _mm512_add_ps(sum, e); }
    float total = _mm512_reduce_add_ps(sum);
    for (; j < n; j++) { sc[j] = expf(sc[j] - mx); total += sc[j]; }
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
#endif

void lfm_attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *scores, float *out) {
#if defined(__x86_64__)
    if (lfm_vector_fast() && hd % 16 == 0 && hd <= 128) { attend512(q, hd, K, V, ld, n, scale, scores, out); return; }
#endif
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *k = K + (size_t)j * ld;
        float s = 0; for (int i = 0; i < hd; i++) s += q[i] * k[i];
        s *= scale; scores[j] = s; mx = s > mx ? s : mx;
    }
    float total = 0;
    for (int j = 0; j < n; j++) { scores[j] = expf(scores[j] - mx); total += scores[j]; }
    float inv = 1.0f / total;
    for (int i = 0; i < hd; i++) out[i] = 0;
    for (int j = 0; j < n; j++) {
        float w = scores[j] * inv; const float *v = V + (size_t)j * ld;
        for (int i = 0; i < hd; i++) out[i] += w * v[i];
    }
}

#if defined(__x86_64__)
// ELU(alpha 1): x for x > 0, expm1(x) otherwise; expm1 by a degree-7 series for |x| ≤ 0.25 (error < 1e-9) and
// exp(x) − 1 below (relative error ~1e-6 where |result| ≥ 0.22).
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
#endif

void lfm_elu(const float *x, float *y, size_t n) {
#if defined(__x86_64__)
    if (lfm_vector_fast()) { elu512(x, y, n); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : expm1f(x[i]);
}
