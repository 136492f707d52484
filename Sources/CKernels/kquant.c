// ggml's K-quant super-block types Q3_K, Q4_K, Q5_K and Q6_K (256 elements per block): the reference quantizers (no
// importance weights) and dequantizers, written from the layouts and algorithms of ggml-quants.c so that the bytes
// equal `llama-quantize --pure` and the floats equal `gguf.quants.dequantize`. Every float operation is kept in the
// reference's order with contraction off (no FMA), as the reference is compiled for baseline x86-64.
#pragma STDC FP_CONTRACT OFF
#include "internal.h"
#include <math.h>
#include <string.h>

// Round to nearest, ties to even, through the float mantissa (valid for |v| < 2^22): 1.5·2^23 added puts the
// integer in the low mantissa bits.
static inline int round_mantissa(float v) {
    float t = v + 12582912.f;
    int32_t bits;
    memcpy(&bits, &t, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = lfm_f32_to_f16(v);
    memcpy(p, &h, 2);
}
static inline float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return lfm_f16_to_f32(h);
}

// The fits run on 16 groups at once, one per vector lane (GCC/Clang vector extensions: AVX2, AVX-512 or NEON code
// where the compiler targets it, plain C otherwise). Each lane performs exactly the scalar reference's sequence of
// IEEE operations (same order, no contraction; comparisons become lane masks), so the result is bit-identical to
// fitting the groups one after another. Sixteen lanes are two Q4_K/Q5_K super-blocks or the sixteen sub-blocks of
// one Q6_K super-block: twice the independent work per accumulation chain of the least-squares trials, whose
// sums are sequential in the reference's order.
// With Clang the exported quantizers are compiled three times on x86-64 (AVX-512, AVX2 and baseline, by
// per-function target attributes) and pick the copy of the active kernel tier (LFM_CPU forces a lower one); the
// bytes are the same. GCC ignores the FP_CONTRACT pragma and would fuse multiplies and adds where FMA is enabled, so
// a GCC build keeps the baseline copy only (no FMA there).
#pragma GCC diagnostic ignored "-Wpsabi"
#if defined(__x86_64__) && defined(__clang__)
#define KQ_X86 1
#endif
#define KQ_INLINE static inline __attribute__((always_inline))

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
typedef uint8_t vb __attribute__((vector_size(16)));

KQ_INLINE vf vsplat(float v) { return (vf){v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v}; }
KQ_INLINE vi isplat(int32_t v) { return (vi){v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v}; }
KQ_INLINE vf sel(vi m, vf a, vf b) {
    vi r = ((vi)a & m) | ((vi)b & ~m);
    return (vf)r;
}
KQ_INLINE vi seli(vi m, vi a, vi b) { return (a & m) | (b & ~m); }
KQ_INLINE vf vabs(vf a) { return (vf)((vi)a & isplat(0x7fffffff)); }
// round_mantissa lane by lane, clamped to [lo, hi]
KQ_INLINE vi vround_clamp(vf v, int lo, int hi) {
    vf t = v + vsplat(12582912.f);
    vi q = ((vi)t & isplat(0x007fffff)) - isplat(0x00400000);
    q = seli(q < isplat(lo), isplat(lo), q);
    return seli(q > isplat(hi), isplat(hi), q);
}
// round_mantissa as a float, for lanes within ±2^22 (where it is the integer nearest v, ties to even), clamped to
// [lo, hi]: one rounding instruction where the compiler has the builtin, else the exact pair
// v + 1.5·2^23 − 1.5·2^23.
KQ_INLINE vf vround_clamp_f(vf v, float lo, float hi) {
#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_roundeven)
#define KQ_ROUNDEVEN 1
#endif
#endif
#if defined(KQ_ROUNDEVEN)
    vf t = __builtin_elementwise_roundeven(v);
#else
    vf t = (v + vsplat(12582912.f)) - vsplat(12582912.f);
#endif
    t = sel(t < vsplat(lo), vsplat(lo), t);
    return sel(t > vsplat(hi), vsplat(hi), t);
}

KQ_INLINE vf vfloat(vi q) { return __builtin_convertvector(q, vf); }
KQ_INLINE vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
// 16 levels (in 0..255) stored as bytes
KQ_INLINE void vstore_bytes(uint8_t *p, vi q) {
    vb b = __builtin_convertvector(q, vb);
    memcpy(p, &b, sizeof b);
}

// Whether any lane of the mask is set.
KQ_INLINE int any_lane(vi m) {
    int any = 0;
    for (int j = 0; j < 16; ++j) any |= m[j];
    return any;
}

// Whether any lane of any of the n vectors holds a NaN or an infinity (the float rounding is not used there).
KQ_INLINE int any_nonfinite(const vf *X, int n) {
    vi bad = isplat(0);
    for (int i = 0; i < n; ++i) bad |= ~(vabs(X[i]) <= vsplat(3.40282347e38f));
    return any_lane(bad);
}

// Sixteen rows of sixteen floats (row j from p[j]) transposed: T[i] lane j = p[j][i]. With Clang's shuffles, four
// butterfly stages swap the off-diagonal blocks of 8, 4, 2 and 1 lanes between row pairs; else element copies.
#if defined(__clang__)
#define KQ_PAIR(b, ...)                                                                                               \
    for (int i = 0; i < 16; ++i)                                                                                      \
        if (!(i & (b))) {                                                                                             \
            vf a = T[i], c = T[i + (b)];                                                                              \
            T[i] = __builtin_shufflevector(a, c, __VA_ARGS__);                                                        \
            T[i + (b)] = __builtin_shufflevector(a, c, KQ_HI_##b);                                                    \
        }
#define KQ_HI_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define KQ_HI_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define KQ_HI_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define KQ_HI_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#endif
KQ_INLINE void transpose16(const float *const *p, vf *T) {
#if defined(__clang__)
    for (int j = 0; j < 16; ++j) T[j] = vload(p[j]);
    KQ_PAIR(8, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
    KQ_PAIR(4, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27)
    KQ_PAIR(2, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
    KQ_PAIR(1, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30)
#else
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) T[i][j] = p[j][i];
#endif
}

// The sixteen 16-value sub-blocks of a super-block in lanes: X[i] lane j = x[16j + i].
KQ_INLINE void subblocks16(const float *x, vf *X) {
    const float *rows[16];
    for (int j = 0; j < 16; ++j) rows[j] = x + 16 * j;
    transpose16(rows, X);
}

// Scale and offset for 16 groups of 32 values (X[i] lane j: value i of group j) into [0, nmax] (an asymmetric
// group): a first guess from min..max, then nstep+1 trial scales (nmax + rmin + rdelta·k over the range), each
// refitted by weighted least squares for scale and offset (offset clamped to ≤ 0), kept when its weighted squared
// error is lower (later trials use the offset kept so far). *scale_out gets the scales, *neg_min the negated offsets;
// L[i] lane j receives level i of group j. A trial's levels are a function of its (inverse scale, offset) pair, so
// the lanes keep that pair of their best trial and the levels are computed once at the end by the same operations.
KQ_INLINE void fit_affine(const vf *X, const vf *W, int nmax, float rmin, float rdelta, int nstep, vi *L,
                          vf *scale_out, vf *neg_min) {
    vf lo = X[0], hi = X[0], sw = W[0], swx = W[0] * X[0];
    for (int i = 1; i < 32; ++i) {
        lo = sel(X[i] < lo, X[i], lo);
        hi = sel(X[i] > hi, X[i], hi);
        sw = sw + W[i];
        swx = swx + W[i] * X[i];
    }
    vf xmin = lo;
    int odd = any_nonfinite(X, 32); // NaN or ±inf anywhere: the integer form throughout
    lo = sel(lo > vsplat(0), vsplat(0), lo);
    vi flat = hi == lo;
    vf lo0 = lo;
    vf inv = vsplat((float)nmax) / (hi - lo);
    vf scale = vsplat(1) / inv;
    vf err_best = vsplat(0);
    for (int i = 0; i < 32; ++i) {
        vf e = scale * vfloat(vround_clamp(inv * (X[i] - lo), 0, nmax)) + lo - X[i];
        err_best = err_best + W[i] * (e * e);
    }
    vf inv_best = inv, lo_best = lo; // the pair whose levels are kept
    vf Q[32];
    for (int k = 0; k <= nstep; ++k) {
        inv = vsplat(rmin + rdelta * k + nmax) / (hi - lo);
        vf sl = vsplat(0), sl2 = vsplat(0), sxl = vsplat(0);
        // inv·(x − lo) is monotonic in x, so over a group its extremes are at xmin and hi: when they lie within
        // ±2^22 in every lane that is not flat, the float rounding gives round_mantissa's integers with fewer
        // operations; otherwise the integer form, whose results beyond that range are the reference's too
        vf span = hi - lo, top = inv * span, bottom = inv * (xmin - lo);
        vi wide = ~flat & ~((span > vsplat(0)) & (top < vsplat(4194304.f)) & (bottom > vsplat(-4194304.f)));
        int any_wide = odd || any_lane(wide);
        if (any_wide)
            for (int i = 0; i < 32; ++i) Q[i] = vfloat(vround_clamp(inv * (X[i] - lo), 0, nmax));
        for (int i = 0; i < 32; ++i) {
            vf q = any_wide ? Q[i] : vround_clamp_f(inv * (X[i] - lo), 0, (float)nmax);
            Q[i] = q;
            sl = sl + W[i] * q;
            sl2 = sl2 + W[i] * q * q;
            sxl = sxl + W[i] * q * X[i];
        }
        vf det = sw * sl2 - sl * sl;
        vi ok = det > vsplat(0);
        vf sc = (sw * sxl - swx * sl) / det;
        vf m = (sl2 * swx - sl * sxl) / det;
        vi pos = m > vsplat(0);
        m = sel(pos, vsplat(0), m);
        sc = sel(pos, sxl / sl2, sc);
        vf err = vsplat(0);
        for (int i = 0; i < 32; ++i) {
            vf e = sc * Q[i] + m - X[i];
            err = err + W[i] * (e * e);
        }
        vi better = ok & (err < err_best);
        inv_best = sel(better, inv, inv_best);
        lo_best = sel(better, lo, lo_best);
        err_best = sel(better, err, err_best);
        scale = sel(better, sc, scale);
        lo = sel(better, m, lo);
    }
    for (int i = 0; i < 32; ++i) L[i] = seli(flat, isplat(0), vround_clamp(inv_best * (X[i] - lo_best), 0, nmax));
    *neg_min = -sel(flat, lo0, lo);
    *scale_out = sel(flat, vsplat(0), scale);
}

// Per lane, the value of largest magnitude over 16 values (the first on ties) and, in *amax, its magnitude.
KQ_INLINE vf signed_max16(const vf *X, vf *amax) {
    vf m = vsplat(0), v = vsplat(0);
    for (int i = 0; i < 16; ++i) {
        vf a = vabs(X[i]);
        vi gt = a > m;
        m = sel(gt, a, m);
        v = sel(gt, X[i], v);
    }
    *amax = m;
    return v;
}

// Symmetric scales for 16 groups of 16 values (X[i] lane j) into [-nmax, nmax-1] with x²-weighted least squares
// over 19 trial scales around -nmax/max (the signed value of largest magnitude). L[i] receives level + nmax; as in
// fit_affine the lanes keep their best trial's inverse scale and the levels are computed once at the end.
KQ_INLINE void fit_symmetric(const vf *X, int nmax, vi *L, vf *scale_out) {
    vf amax, vmax = signed_max16(X, &amax);
    vi zero = amax < vsplat(1e-15f);
    vf inv = vsplat((float)-nmax) / vmax;
    vf sxl = vsplat(0), sl2 = vsplat(0);
    for (int i = 0; i < 16; ++i) {
        vf qf = vfloat(vround_clamp(inv * X[i], -nmax, nmax - 1)), w = X[i] * X[i];
        sxl = sxl + w * X[i] * qf;
        sl2 = sl2 + w * qf * qf;
    }
    vf scale = sel(sl2 != vsplat(0), sxl / sl2, vsplat(0));
    vf best = scale * sxl, inv_best = inv;
    // |inv·x| ≤ |x| (nmax + 0.9) / |vmax| stays far within ±2^22 (|x| ≤ |vmax|) in every lane but the all-zero
    // ones, whose results are discarded: the float rounding gives round_mantissa's integers (unless a value is not
    // finite)
    int odd = any_nonfinite(X, 16);
    for (int k = -9; k <= 9; ++k) {
        if (k == 0) continue;
        inv = vsplat(-(nmax + 0.1f * k)) / vmax;
        sxl = sl2 = vsplat(0);
        for (int i = 0; i < 16; ++i) {
            vf qf = odd ? vfloat(vround_clamp(inv * X[i], -nmax, nmax - 1))
                        : vround_clamp_f(inv * X[i], (float)-nmax, (float)(nmax - 1)),
               w = X[i] * X[i];
            sxl = sxl + w * X[i] * qf;
            sl2 = sl2 + w * qf * qf;
        }
        vi better = (sl2 > vsplat(0)) & (sxl * sxl > best * sl2);
        inv_best = sel(better, inv, inv_best);
        scale = sel(better, sxl / sl2, scale);
        best = sel(better, scale * sxl, best);
    }
    for (int i = 0; i < 16; ++i)
        L[i] = seli(zero, isplat(0), vround_clamp(inv_best * X[i], -nmax, nmax - 1) + isplat(nmax));
    *scale_out = sel(zero, vsplat(0), scale);
}

// The 12 bytes of 6-bit (scale, min) pairs of Q4_K/Q5_K: pairs 0-3 in the low 6 bits of bytes 0-3 / 4-7; pairs 4-7
// as nibbles of bytes 8-11 with their top 2 bits in the high bits of bytes 0-3 / 4-7.
void lfm_kq_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    int a, b;
    lfm_kq_sm(j, s, &a, &b);
    *sc = (uint8_t)a;
    *m = (uint8_t)b;
}

// One Q4_K / Q5_K super-block from its eight groups' fitted scales and offsets (lanes lane0 … lane0+7 of the fit):
// the 6-bit scales and offsets under two f16 super-scales, then every level requantized from them as the reference
// does (groups whose scale quantizes to zero keep the fit's levels).
KQ_INLINE void finish_affine(const float *x, uint8_t *blk, int nmax, vf vs, vf vm, const vi *Lv, int lane0,
                             uint8_t *L) {
    float sc[8], mn[8];
    float top_sc = 0, top_mn = 0;
    for (int j = 0; j < 8; ++j) {
        sc[j] = vs[lane0 + j];
        mn[j] = vm[lane0 + j];
        if (sc[j] > top_sc) top_sc = sc[j];
        if (mn[j] > top_mn) top_mn = mn[j];
    }
    float is = top_sc > 0 ? 63.f / top_sc : 0.f;
    float im = top_mn > 0 ? 63.f / top_mn : 0.f;
    uint8_t *scales = blk + 4, ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)round_mantissa(is * sc[j]);
        lm[j] = (uint8_t)round_mantissa(im * mn[j]);
        if (ls[j] > 63) ls[j] = 63;
        if (lm[j] > 63) lm[j] = 63;
    }
    lfm_kq_pack_sm(ls, lm, scales);
    put_f16(blk, top_sc / 63.f);
    put_f16(blk + 2, top_mn / 63.f);
    float d = get_f16(blk), dmin = get_f16(blk + 2);
    for (int j = 0; j < 8; ++j) {
        uint8_t s, m;
        lfm_kq_scale_min(j, scales, &s, &m);
        float dj = d * s;
        if (!dj) {
            for (int l = 0; l < 32; ++l) L[32 * j + l] = (uint8_t)Lv[l][lane0 + j];
            continue;
        }
        // the reference's round(clamp((x + m) / d)) per element, sixteen lanes at a time (IEEE division, same bits)
        vf vd = vsplat(dj), vmj = vsplat(dmin * m);
        for (int l = 0; l < 32; l += 16)
            vstore_bytes(L + 32 * j + l, vround_clamp((vload(x + 32 * j + l) + vmj) / vd, 0, nmax));
    }
}

// Two Q4_K / Q5_K super-blocks (x0, x1: 256 values each) fitted together, lanes 0-7 and 8-15; their levels go to
// L0 and L1.
KQ_INLINE void quantize_affine_pair(const float *x0, const float *x1, uint8_t *blk0, uint8_t *blk1, int nmax,
                                    float rmin, int nstep, uint8_t *L0, uint8_t *L1) {
    vf X[32], W[32], vs, vm;
    vi Lv[32];
    const float *rows[16];
    for (int j = 0; j < 8; ++j) {
        rows[j] = x0 + 32 * j;
        rows[8 + j] = x1 + 32 * j;
    }
    transpose16(rows, X);
    for (int j = 0; j < 16; ++j) rows[j] += 16;
    transpose16(rows, X + 16);
    vf acc = vsplat(0);
    for (int l = 0; l < 32; ++l) acc = acc + X[l] * X[l];
    vf rms;
    for (int j = 0; j < 16; ++j) rms[j] = sqrtf(acc[j] / 32);
    for (int l = 0; l < 32; ++l) W[l] = rms + vabs(X[l]);
    fit_affine(X, W, nmax, rmin, 0.1f, nstep, Lv, &vs, &vm);
    finish_affine(x0, blk0, nmax, vs, vm, Lv, 0, L0);
    finish_affine(x1, blk1, nmax, vs, vm, Lv, 8, L1);
}

// The levels of one Q4_K / Q5_K super-block packed: low nibbles of groups 2g and 2g+1 share 32 bytes; Q5_K's fifth
// bits go to qh, bit 2g / 2g+1 of byte l.
KQ_INLINE void pack_affine(const uint8_t *L, uint8_t *blk, int q5) {
    uint8_t *qh = blk + 16, *qs = blk + (q5 ? 48 : 16);
    if (q5) memset(qh, 0, 32);
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            int a = L[64 * g + l], c = L[64 * g + 32 + l];
            if (q5) qh[l] |= (uint8_t)(((a >> 4) << (2 * g)) | ((c >> 4) << (2 * g + 1)));
            qs[32 * g + l] = (uint8_t)((a & 15) | ((c & 15) << 4));
        }
}

// Q4_K (q5 = 0) / Q5_K: super-blocks fitted two at a time (an odd last one beside a copy of itself), then packed.
KQ_INLINE void quantize_affine_rows(const float *src, uint8_t *dst, size_t n, int q5) {
    uint8_t L0[256], L1[256], spare[LFM_Q5_K_BYTES];
    size_t bytes = q5 ? LFM_Q5_K_BYTES : LFM_Q4_K_BYTES, nb = n / 256;
    for (size_t b = 0; b < nb; b += 2) {
        int two = b + 1 < nb;
        const float *x0 = src + b * 256, *x1 = two ? x0 + 256 : x0;
        uint8_t *blk0 = dst + b * bytes, *blk1 = two ? blk0 + bytes : spare;
        quantize_affine_pair(x0, x1, blk0, blk1, q5 ? 31 : 15, q5 ? -0.5f : -1.f, q5 ? 15 : 20, L0, L1);
        pack_affine(L0, blk0, q5);
        if (two) pack_affine(L1, blk1, q5);
    }
}

KQ_INLINE void q4k_rows(const float *src, uint8_t *dst, size_t n) { quantize_affine_rows(src, dst, n, 0); }
KQ_INLINE void q5k_rows(const float *src, uint8_t *dst, size_t n) { quantize_affine_rows(src, dst, n, 1); }

KQ_INLINE void q6k_rows(const float *src, uint8_t *dst, size_t n) {
    uint8_t L[256];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q6_K_BYTES;
        vf X[16], vs;
        vi Lv[16];
        subblocks16(x, X);
        fit_symmetric(X, 32, Lv, &vs);
        float sc[16], top = 0, top_abs = 0;
        for (int j = 0; j < 16; ++j) {
            sc[j] = vs[j];
            float a = fabsf(sc[j]);
            if (a > top_abs) {
                top_abs = a;
                top = sc[j];
            }
        }
        memset(blk, 0, LFM_Q6_K_BYTES);
        if (top_abs < 1e-15f) continue; // all zero: d = 0
        float inv = -128.f / top;
        put_f16(blk + 208, 1 / inv);
        int8_t *scales = (int8_t *)(blk + 192);
        for (int j = 0; j < 16; ++j) {
            int v = round_mantissa(inv * sc[j]);
            scales[j] = (int8_t)(v > 127 ? 127 : v);
        }
        float d = get_f16(blk + 208);
        for (int j = 0; j < 16; ++j) {
            float dj = d * scales[j];
            if (!dj) { // the fit's levels
                for (int i = 0; i < 16; ++i) L[16 * j + i] = (uint8_t)Lv[i][j];
                continue;
            }
            // the reference's round(clamp(x / d)) + 32, sixteen lanes at a time (IEEE division, same bits)
            vstore_bytes(L + 16 * j, vround_clamp(vload(x + 16 * j) / vsplat(dj), -32, 31) + isplat(32));
        }
        uint8_t *ql = blk, *qh = blk + 128;
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                int a = Lh[l], c = Lh[l + 32], e = Lh[l + 64], f = Lh[l + 96];
                ql[64 * h + l] = (uint8_t)((a & 15) | ((e & 15) << 4));
                ql[64 * h + l + 32] = (uint8_t)((c & 15) | ((f & 15) << 4));
                qh[32 * h + l] = (uint8_t)((a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((f >> 4) << 6));
            }
        }
    }
}

// Q3_K: the reference fits each 16-value sub-block symmetrically into [-4, 3] from -4/max (max: the value of largest
// magnitude), then up to five passes of coordinate descent: element by element, the level that the least-squares scale
// of the others suggests (x·Σwl²/Σwxl, w = x²) is taken when it raises Σwxl²/Σwl²; a sub-block stops after a
// pass that changed nothing. Here the sixteen sub-blocks of a super-block run in the lanes (X[i] lane j: value i of
// sub-block j), each lane's acceptance a mask, so every lane performs the reference's sequence exactly. L[i] receives
// level + 4; *scale_out Σwxl/Σwl² (0 for an all-zero sub-block).
KQ_INLINE void fit_q3(const vf *X, vi *L, vf *scale_out) {
    vf amax, vmax = signed_max16(X, &amax);
    vi zero = amax < vsplat(1e-15f);
    vf inv = vsplat(-4.f) / vmax;
    vf Lf[16], sumlx = vsplat(0), suml2 = vsplat(0);
    for (int i = 0; i < 16; ++i) {
        Lf[i] = vfloat(vround_clamp(inv * X[i], -4, 3));
        vf w = X[i] * X[i];
        sumlx = sumlx + w * X[i] * Lf[i];
        suml2 = suml2 + w * Lf[i] * Lf[i];
    }
    vi active = ~zero;
    for (int pass = 0; pass < 5; ++pass) {
        vi changed = isplat(0);
        for (int i = 0; i < 16; ++i) {
            vf w = X[i] * X[i];
            vf slx = sumlx - w * X[i] * Lf[i];
            vf sl2 = suml2 - w * Lf[i] * Lf[i];
            vf nl = vfloat(vround_clamp(X[i] * sl2 / slx, -4, 3));
            vf slx2 = slx + w * X[i] * nl, sl22 = sl2 + w * nl * nl;
            vi take = active & (slx > vsplat(0)) & (nl != Lf[i]) & (sl22 > vsplat(0)) &
                      (slx2 * slx2 * suml2 > sumlx * sumlx * sl22);
            Lf[i] = sel(take, nl, Lf[i]);
            sumlx = sel(take, slx2, sumlx);
            suml2 = sel(take, sl22, suml2);
            changed |= take;
        }
        active &= changed;
        if (!any_lane(active)) break;
    }
    for (int i = 0; i < 16; ++i) L[i] = seli(zero, isplat(0), __builtin_convertvector(Lf[i], vi) + isplat(4));
    *scale_out = sel(zero | ~(suml2 > vsplat(0)), vsplat(0), sumlx / suml2);
}

// The levels of one Q3_K super-block whose d and scales are stored: each sub-block's levels requantized from its
// stored scale (those whose scale is zero keep the fit's levels in L, given as level + 4), then packed: bit 2 of
// element e's level at bit e / 32 of hmask[e mod 32], the low two bits of elements 128h + l + 32k at bits 2k of
// qs[32h + l].
KQ_INLINE void finish_q3(const float *x, uint8_t *blk, uint8_t *L) {
    uint8_t *hm = blk, *qs = blk + 32;
    int8_t sc[16];
    lfm_q3k_scales(blk + 96, sc);
    float d = get_f16(blk + 108);
    for (int j = 0; j < 16; ++j) {
        float dj = d * sc[j];
        if (!dj) continue;
        // the reference's round(clamp(x / d)) + 4, sixteen lanes at a time (IEEE division, same bits)
        vstore_bytes(L + 16 * j, vround_clamp(vload(x + 16 * j) / vsplat(dj), -4, 3) + isplat(4));
    }
    memset(hm, 0, 32);
    for (int e = 0; e < 256; ++e) hm[e % 32] |= (uint8_t)((L[e] >> 2) << (e / 32));
    for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 32; ++l) {
            const uint8_t *Lh = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)((Lh[0] & 3) | ((Lh[32] & 3) << 2) | ((Lh[64] & 3) << 4) | ((Lh[96] & 3) << 6));
        }
}

KQ_INLINE void q3k_finish(const float *x, uint8_t *blk, uint8_t *L) { finish_q3(x, blk, L); }

KQ_INLINE void q3k_rows(const float *src, uint8_t *dst, size_t n) {
    uint8_t L[256];
    for (size_t b = 0; b < n / 256; b++) {
        const float *x = src + b * 256;
        uint8_t *blk = dst + b * LFM_Q3_K_BYTES, *scales = blk + 96;
        vf X[16], vs;
        vi Lv[16];
        subblocks16(x, X);
        fit_q3(X, Lv, &vs);
        float top = 0, top_abs = 0;
        for (int j = 0; j < 16; ++j) {
            float a = fabsf(vs[j]);
            if (a > top_abs) {
                top_abs = a;
                top = vs[j];
            }
            for (int i = 0; i < 16; ++i) L[16 * j + i] = (uint8_t)Lv[i][j];
        }
        memset(scales, 0, 12);
        if (top) {
            float inv = -32.f / top;
            for (int j = 0; j < 16; ++j) {
                int8_t l = (int8_t)round_mantissa(inv * vs[j]); // the reference keeps the rounded value in an int8_t
                lfm_q3k_put_scale(scales, j, (l < -32 ? -32 : (l > 31 ? 31 : l)) + 32);
            }
            put_f16(blk + 108, 1 / inv);
        } else {
            put_f16(blk + 108, 0.f);
        }
        finish_q3(x, blk, L);
    }
}

// The three copies of each quantizer and the exported entry points that choose between them.
#if defined(KQ_X86)
#define KQ_T512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
#define KQ_TAVX2 __attribute__((target("avx2")))
static int kq_level(void) {
    int t = lfm_tier();
    return t == LFM_TIER_AVX512 ? 2 : (t == LFM_TIER_AVX2 || t == LFM_TIER_AVX2_VNNI) ? 1 : 0;
}
#define KQ_EXPORT(name, body, params, args)                                                                           \
    KQ_T512 static void name##_512 params { body args; }                                                              \
    KQ_TAVX2 static void name##_avx2 params { body args; }                                                            \
    static void name##_base params { body args; }                                                                     \
    void name params {                                                                                                \
        switch (kq_level()) {                                                                                         \
        case 2: name##_512 args; break;                                                                               \
        case 1: name##_avx2 args; break;                                                                              \
        default: name##_base args;                                                                                    \
        }                                                                                                             \
    }
#else
#define KQ_EXPORT(name, body, params, args) \
    void name params { body args; }
#endif

#define KQ_ROWS (const float *src, uint8_t *dst, size_t n)
KQ_EXPORT(lfm_quantize_q3_k, q3k_rows, KQ_ROWS, (src, dst, n))
KQ_EXPORT(lfm_quantize_q4_k, q4k_rows, KQ_ROWS, (src, dst, n))
KQ_EXPORT(lfm_quantize_q5_k, q5k_rows, KQ_ROWS, (src, dst, n))
KQ_EXPORT(lfm_quantize_q6_k, q6k_rows, KQ_ROWS, (src, dst, n))
KQ_EXPORT(lfm_q3k_finish, q3k_finish, (const float *x, uint8_t *blk, uint8_t *L), (x, blk, L))

void lfm_dequantize_q3_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q3_K_BYTES, *hm = blk, *qs = blk + 32;
        int8_t sc[16];
        lfm_q3k_scales(blk + 96, sc);
        float d = get_f16(blk + 108);
        float *y = dst + b * 256;
        for (int e = 0; e < 256; e++) {
            int g = e / 32, l = e % 32;
            int v = ((qs[32 * (g / 4) + l] >> (2 * (g % 4))) & 3) - ((hm[l] >> g) & 1 ? 0 : 4);
            float dl = d * (float)sc[e / 16];
            y[e] = dl * (float)v;
        }
    }
}

void lfm_dequantize_q4_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q4_K_BYTES, *qs = blk + 16;
        float d = get_f16(blk), dmin = get_f16(blk + 2);
        float *y = dst + b * 256;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            lfm_kq_scale_min(j, blk + 4, &s, &m);
            float dj = d * s, mj = dmin * m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) y[32 * j + l] = dj * ((q[l] >> shift) & 15) - mj;
        }
    }
}

void lfm_dequantize_q5_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q5_K_BYTES, *qh = blk + 16, *qs = blk + 48;
        float d = get_f16(blk), dmin = get_f16(blk + 2);
        float *y = dst + b * 256;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            lfm_kq_scale_min(j, blk + 4, &s, &m);
            float dj = d * s, mj = dmin * m;
            const uint8_t *q = qs + 32 * (j / 2);
            int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4);
                y[32 * j + l] = dj * v - mj;
            }
        }
    }
}

void lfm_dequantize_q6_k(const uint8_t *src, float *dst, size_t n) {
    for (size_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = src + b * LFM_Q6_K_BYTES;
        const int8_t *sc = (const int8_t *)(blk + 192);
        float d = get_f16(blk + 208);
        float *y = dst + b * 256;
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            uint8_t lo = blk[64 * h + l + 32 * (k & 1)];
            int v = ((k < 2 ? lo : lo >> 4) & 15) | (((blk[128 + 32 * h + l] >> (2 * k)) & 3) << 4);
            y[e] = d * sc[8 * h + 2 * k + l / 16] * (v - 32);
        }
    }
}
