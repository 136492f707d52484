// Checks every kernel of every tier this CPU can run against the scalar tier (the reference), in plain C so it
// also runs cross-compiled for ARM64 under qemu (scripts/arm64_check.sh). Integer results must match exactly
// (activation quantization) or within float summation-order error (block dots: each block's integer dot is exact,
// the float accumulation order differs); float kernels within 1e-6 relative to the magnitude of their terms.
//
//   cc -O2 -ISources/CKernels/include Sources/CKernels/*.c Tests/KernelCheck/kernel_check.c -lm -lpthread
//   ./a.out            # exit 0 when every tier passes; one line per tier and kernel
#include "CKernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng = 88172645463325252ULL;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

static int failures = 0;
static void check(const char *tier, const char *what, double err, double tol) {
    int ok = err <= tol && !isnan(err);
    if (!ok) failures++;
    printf("  %-12s %-28s max err %.3g (tol %.3g) %s\n", tier, what, err, tol, ok ? "ok" : "FAIL");
}

static size_t type_bytes(int type, int n) {
    switch (type) {
    case LFM_T_F32:
        return (size_t)n * 4;
    case LFM_T_F16:
    case LFM_T_BF16:
        return (size_t)n * 2;
    case LFM_T_Q8_0:
        return (size_t)n / 32 * 34;
    case LFM_T_Q4_0:
        return (size_t)n / 32 * 18;
    case LFM_T_Q4_K:
        return (size_t)n / 256 * LFM_Q4_K_BYTES;
    case LFM_T_Q5_K:
        return (size_t)n / 256 * LFM_Q5_K_BYTES;
    case LFM_T_Q6_K:
        return (size_t)n / 256 * LFM_Q6_K_BYTES;
    case LFM_T_Q3_K:
        return (size_t)n / 256 * LFM_Q3_K_BYTES;
    }
    return 0;
}
static void encode(int type, const float *x, int n, void *out) {
    switch (type) {
    case LFM_T_F32:
        memcpy(out, x, (size_t)n * 4);
        break;
    case LFM_T_F16:
        lfm_convert_f32_to_f16(x, out, n);
        break;
    case LFM_T_BF16:
        lfm_convert_f32_to_bf16(x, out, n);
        break;
    case LFM_T_Q8_0:
        lfm_quantize_q8_0(x, out, n);
        break;
    case LFM_T_Q4_0:
        lfm_quantize_q4_0(x, out, n);
        break;
    case LFM_T_Q4_K:
        lfm_quantize_q4_k(x, out, n);
        break;
    case LFM_T_Q5_K:
        lfm_quantize_q5_k(x, out, n);
        break;
    case LFM_T_Q6_K:
        lfm_quantize_q6_k(x, out, n);
        break;
    case LFM_T_Q3_K:
        lfm_quantize_q3_k(x, out, n);
        break;
    }
}
static int is_kquant(int t) { return t == LFM_T_Q3_K || t == LFM_T_Q4_K || t == LFM_T_Q5_K || t == LFM_T_Q6_K; }
static const char *type_name(int t) {
    switch (t) {
    case LFM_T_F32:
        return "f32";
    case LFM_T_F16:
        return "f16";
    case LFM_T_BF16:
        return "bf16";
    case LFM_T_Q8_0:
        return "q8_0";
    case LFM_T_Q4_0:
        return "q4_0";
    case LFM_T_Q4_K:
        return "q4_k";
    case LFM_T_Q5_K:
        return "q5_k";
    case LFM_T_Q6_K:
        return "q6_k";
    case LFM_T_Q3_K:
        return "q3_k";
    }
    return "?";
}

// y[T][rows] through the active tier; `scale` gets Σ|w·x| per output (the error yardstick).
static void run_mm(int type, const void *w, int rows, int cols, int T, const float *X, float *Y) {
    int8_t *q = malloc((size_t)T * cols);
    float *d = malloc(sizeof(float) * (size_t)T * cols / 32 + 4);
    int32_t *s = malloc(sizeof(int32_t) * (size_t)T * cols / 32 + 4);
    for (int t = 0; t < T; t++)
        lfm_quantize_act_q8(X + (size_t)t * cols, cols, q + (size_t)t * cols, d + (size_t)t * cols / 32,
                            s + (size_t)t * cols / 32);
    int half = rows / 2; // two calls, as two workers would split the rows
    if (T == 1) {
        lfm_matvec(type, w, cols, 0, half, X, q, d, s, Y);
        lfm_matvec(type, w, cols, half, rows, X, q, d, s, Y);
    } else {
        lfm_matmul(type, w, cols, 0, half, T, X, cols, q, d, s, cols, Y, rows);
        lfm_matmul(type, w, cols, half, rows, T, X, cols, q, d, s, cols, Y, rows);
    }
    free(q);
    free(d);
    free(s);
}

static void check_tier(int tier) {
    const char *tn = lfm_tier_name(tier);
    printf("tier %s\n", tn);
    // activation quantization: bit-exact
    {
        int n = 4096;
        float *x = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) x[i] = frand() * (i % 97 == 0 ? 40.f : 1.f);
        for (int i = 0; i < 64; i++) x[i] = 0; // an all-zero block
        int8_t q0[4096], q1[4096];
        float d0[128], d1[128];
        int32_t s0[128], s1[128];
        lfm_set_tier(LFM_TIER_SCALAR);
        lfm_quantize_act_q8(x, n, q0, d0, s0);
        lfm_set_tier(tier);
        lfm_quantize_act_q8(x, n, q1, d1, s1);
        int diff = memcmp(q0, q1, n) != 0 || memcmp(d0, d1, sizeof d0) != 0 || memcmp(s0, s1, sizeof s0) != 0;
        check(tn, "quantize_act (bit-exact)", diff ? 1 : 0, 0);
        free(x);
    }
    int types[] = {LFM_T_F32,  LFM_T_F16,  LFM_T_BF16, LFM_T_Q8_0, LFM_T_Q4_0,
                   LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K, LFM_T_Q3_K};
    int shapes[][3] = {{7, 64, 1}, {33, 2048, 1}, {9, 96, 1},    {16, 512, 5}, {37, 2048, 13},
                       {6, 64, 4}, {3, 32, 8},    {10, 8192, 9}, {40, 256, 17}};
    // K-quant rows are whole 256-element super-blocks; token counts around the 4-token tiles
    int kshapes[][3] = {{7, 256, 1},    {33, 2048, 1}, {5, 768, 3},   {16, 512, 5},
                        {37, 2048, 13}, {10, 8192, 9}, {40, 256, 17}, {3, 1024, 4}};
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        int type = types[ti];
        int kq = is_kquant(type);
        int (*sh)[3] = kq ? kshapes : shapes;
        size_t nsh = kq ? sizeof kshapes / sizeof kshapes[0] : sizeof shapes / sizeof shapes[0];
        double worst_mv = 0, worst_mm = 0;
        for (size_t si = 0; si < nsh; si++) {
            int rows = sh[si][0], cols = sh[si][1], T = sh[si][2];
            float *wf = malloc(sizeof(float) * (size_t)rows * cols), *X = malloc(sizeof(float) * (size_t)T * cols);
            for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = frand();
            for (size_t i = 0; i < (size_t)T * cols; i++) X[i] = frand();
            void *w = malloc(type_bytes(type, rows * cols));
            encode(type, wf, rows * cols, w);
            float *Y0 = malloc(sizeof(float) * (size_t)T * rows), *Y1 = malloc(sizeof(float) * (size_t)T * rows);
            lfm_set_tier(LFM_TIER_SCALAR);
            run_mm(type, w, rows, cols, T, X, Y0);
            lfm_set_tier(tier);
            run_mm(type, w, rows, cols, T, X, Y1);
            // yardstick: Σ|w||x| ≤ cols for |w|, |x| ≤ 1
            double err = 0;
            for (size_t i = 0; i < (size_t)T * rows; i++) {
                double e = fabs((double)Y0[i] - Y1[i]) / cols;
                if (e > err || isnan(Y1[i])) err = isnan(Y1[i]) ? NAN : e;
            }
            if (T == 1)
                worst_mv = fmax(worst_mv, err);
            else
                worst_mm = fmax(worst_mm, err);
            if (isnan(err)) {
                if (T == 1)
                    worst_mv = NAN;
                else
                    worst_mm = NAN;
            }
            // row dequantization: exact
            float *r0 = malloc(sizeof(float) * cols), *r1 = malloc(sizeof(float) * cols);
            lfm_set_tier(LFM_TIER_SCALAR);
            lfm_row_to_f32(type, w, cols, rows - 1, r0);
            lfm_set_tier(tier);
            lfm_row_to_f32(type, w, cols, rows - 1, r1);
            if (memcmp(r0, r1, sizeof(float) * cols) != 0) {
                printf("  row_to_f32 %s differs\n", type_name(type));
                failures++;
            }
            free(r0);
            free(r1);
            free(wf);
            free(X);
            free(w);
            free(Y0);
            free(Y1);
        }
        char name[64];
        snprintf(name, sizeof name, "matvec_%s", type_name(type));
        check(tn, name, worst_mv, 1e-6);
        // the avx512 tier with BF16 runs prefill of every type but F32/F16 on bf16 dot products: bf16 rounding of
        // weights and activations
        int bf16_prefill = type != LFM_T_F32 && type != LFM_T_F16;
        double tol = (tier == LFM_TIER_AVX512 && lfm_cpu_has_avx512bf16() && bf16_prefill)
                         ? 1e-2
                         : 1e-6;
        snprintf(name, sizeof name, "gemm_%s", type_name(type));
        check(tn, name, worst_mm, tol);
    }
    // elementwise and row kernels
    {
        int n = 1000 + 7;
        float *x = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n),
              *b = malloc(sizeof(float) * n);
        float *a0 = malloc(sizeof(float) * n), *a1 = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) {
            x[i] = frand() * 6;
            g[i] = frand() * 6;
            w[i] = frand();
            b[i] = frand();
        }
        x[3] = -90;
        x[4] = 89;
        x[5] = 1e-6f;
        x[6] = -1e-6f;
        x[7] = 0;
#define ELEM(NAME, CALL, TOL)                                                                                          \
    {                                                                                                                  \
        double err = 0;                                                                                                \
        lfm_set_tier(LFM_TIER_SCALAR);                                                                                 \
        memcpy(a0, x, sizeof(float) * n);                                                                              \
        {                                                                                                              \
            float *o = a0;                                                                                             \
            CALL;                                                                                                      \
        }                                                                                                              \
        lfm_set_tier(tier);                                                                                            \
        memcpy(a1, x, sizeof(float) * n);                                                                              \
        {                                                                                                              \
            float *o = a1;                                                                                             \
            CALL;                                                                                                      \
        }                                                                                                              \
        for (int i = 0; i < n; i++) {                                                                                  \
            double e = fabs((double)a0[i] - a1[i]) / fmax(1.0, fabs((double)a0[i]));                                   \
            if (!(e <= err)) err = e;                                                                                  \
        }                                                                                                              \
        check(tn, NAME, err, TOL);                                                                                     \
    }
        ELEM("silu", lfm_silu(o, n), 1e-6)
        ELEM("glu", lfm_glu(x, g, n, o), 1e-6)
        ELEM("gelu", lfm_gelu_erf(o, n), 1e-6)
        ELEM("relu", lfm_relu(o, n), 0)
        ELEM("elu", lfm_elu(x, o, n), 1e-6)
        ELEM("layernorm", lfm_layernorm(x, w, b, n, 1e-5f, o), 1e-6)
        ELEM("rmsnorm", lfm_rmsnorm(x, w, n, 1e-5f, o), 1e-6)
        ELEM("softmax", lfm_softmax(o, n), 1e-6)
        ELEM("axpy", lfm_axpy(0.37f, g, o, n), 1e-6) {
            lfm_set_tier(LFM_TIER_SCALAR);
            double d0 = lfm_dot_f32(x, g, n);
            lfm_set_tier(tier);
            double d1 = lfm_dot_f32(x, g, n);
            check(tn, "dot", fabs(d0 - d1) / n, 1e-6);
        }
        // attention: one query over 77 keys, head sizes 64, 128, 40
        int hds[] = {64, 128, 40};
        double err = 0;
        for (int h = 0; h < 3; h++) {
            int hd = hds[h], nk = 77, ld = hd + 8;
            float *K = malloc(sizeof(float) * nk * ld), *V = malloc(sizeof(float) * nk * ld), q[128], sc[77], o0[128],
                  o1[128];
            for (int i = 0; i < nk * ld; i++) {
                K[i] = frand();
                V[i] = frand();
            }
            for (int i = 0; i < hd; i++) q[i] = frand();
            lfm_set_tier(LFM_TIER_SCALAR);
            lfm_attend(q, hd, K, V, ld, nk, 0.125f, sc, o0);
            lfm_set_tier(tier);
            lfm_attend(q, hd, K, V, ld, nk, 0.125f, sc, o1);
            for (int i = 0; i < hd; i++) {
                double e = fabs((double)o0[i] - o1[i]);
                if (!(e <= err)) err = e;
            }
            free(K);
            free(V);
        }
        check(tn, "attend", err, 1e-6);
        free(x);
        free(g);
        free(w);
        free(b);
        free(a0);
        free(a1);
    }
    // who serves what (a function still on scalar is named)
    int scalar_left = 0;
    for (int i = 0; i < lfm_kernel_count(); i++)
        if (lfm_kernel_tier(i) == LFM_TIER_SCALAR && tier != LFM_TIER_SCALAR) {
            printf("  %-12s %-28s served by scalar\n", tn, lfm_kernel_name(i));
            scalar_left++;
        }
    (void)scalar_left;
}

// The K-quant quantizers as compiled for this machine (on ARM64: the NEON lowering of their lane-parallel fits)
// against ggml: FNV-1a hashes of the bytes that ggml's quantize_row_q*_K_ref (libggml-base of the vendored
// llama.cpp) writes for this input (made once on x86 with the same generator; docs/format.md §6.1).
static void check_kquant_bytes(void) {
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    int n = 256 * 96;
    float *x = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        float v = (float)((st >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
        int b = i / 256;
        x[i] = b % 6 == 0   ? v
               : b % 6 == 1 ? v * v * v
               : b % 6 == 2 ? (v > 0 ? v : 0) * 7.f
               : b % 6 == 3 ? 0.f
               : b % 6 == 4 ? ((i % 256) == 5 ? 25.f : v * 0.01f)
                            : -fabsf(v) * 1e-3f;
    }
    uint8_t *o = malloc((size_t)n);
    const uint64_t want[4] = {0xaf44dfd6a7be30c6ULL, 0x0ebed1c469a629eaULL, 0xa1900484dfc87f5aULL,
                              0xe02683c25e15a9b1ULL};
    int types[4] = {LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K, LFM_T_Q3_K};
    for (int t = 0; t < 4; t++) {
        encode(types[t], x, n, o);
        size_t len = type_bytes(types[t], n);
        uint64_t h = 1469598103934665603ULL;
        for (size_t i = 0; i < len; i++) {
            h ^= o[i];
            h *= 1099511628211ULL;
        }
        char name[64];
        snprintf(name, sizeof name, "quantize_%s = ggml (hash)", type_name(types[t]));
        check("scalar", name, h == want[t] ? 0 : 1, 0);
        // one super-block fewer: the same bytes as the prefix (no state carried between blocks)
        uint8_t *o2 = malloc(len);
        encode(types[t], x, n - 256, o2);
        snprintf(name, sizeof name, "quantize_%s, odd block count", type_name(types[t]));
        check("scalar", name, memcmp(o, o2, type_bytes(types[t], n - 256)) != 0, 0);
        free(o2);
    }
    free(x);
    free(o);
}

// The scalar K-quant products against their definition: dequantized weights · dequantized q8 activations.
static void check_kquant_reference(void) {
    int types[] = {LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K, LFM_T_Q3_K};
    int rows = 9, cols = 1536;
    lfm_set_tier(LFM_TIER_SCALAR);
    for (int ti = 0; ti < 4; ti++) {
        float *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * cols), y[9];
        float *row = malloc(sizeof(float) * cols);
        for (int i = 0; i < rows * cols; i++) wf[i] = frand() * (i % 300 < 40 ? 3.f : 1.f);
        for (int i = 0; i < cols; i++) x[i] = frand();
        void *w = malloc(type_bytes(types[ti], rows * cols));
        encode(types[ti], wf, rows * cols, w);
        int8_t *q = malloc(cols);
        float *d = malloc(sizeof(float) * cols / 32);
        int32_t *s = malloc(sizeof(int32_t) * cols / 32);
        lfm_quantize_act_q8(x, cols, q, d, s);
        lfm_matvec(types[ti], w, cols, 0, rows, x, q, d, s, y);
        double err = 0;
        for (int r = 0; r < rows; r++) {
            lfm_row_to_f32(types[ti], w, cols, r, row);
            double ref = 0;
            for (int i = 0; i < cols; i++) ref += (double)row[i] * ((double)q[i] * d[i / 32]);
            double e = fabs(ref - y[r]) / cols;
            if (!(e <= err)) err = e;
        }
        char name[64];
        snprintf(name, sizeof name, "matvec_%s = dequant dot", type_name(types[ti]));
        check("scalar", name, err, 1e-6);
        free(wf);
        free(x);
        free(row);
        free(w);
        free(q);
        free(d);
        free(s);
    }
}

// Batched decode rows (`lfm_matvec_batch`, the four-token kernels where a tier has them, padding and singles
// around them) must be bit-equal to each token through `lfm_matvec` alone, for every T and a block count that is
// not a multiple of four.
// Block counts per row for the block-32 types: a group of four and three more, two groups, an odd count, and rows
// past 4096 and 8192 columns, with and without a tail (avx512's four-token Q4_0 kernel takes rows past 4096 columns
// in spans of 4096 over all the rows: 260 blocks are spans of 128, 128 and 4; its Q8_0 kernel takes another path
// past 4096).
static const int batch_blocks[] = {7, 8, 13, 133, 260, 263};
enum { N_BATCH_BLOCKS = sizeof batch_blocks / sizeof batch_blocks[0] };

static void check_batch_bits(int tier) {
    static const int types[] = {LFM_T_Q8_0, LFM_T_Q4_0, LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K, LFM_T_Q3_K};
    lfm_set_tier(tier);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0] * N_BATCH_BLOCKS; ti++) {
        int type = types[ti / N_BATCH_BLOCKS], kq = is_kquant(type);
        if (kq && ti % N_BATCH_BLOCKS) continue;
        int rows = 37, cols = kq ? 256 * 3 : 32 * batch_blocks[ti % N_BATCH_BLOCKS], maxT = 9;
        size_t rb = type_bytes(type, cols);
        uint8_t *w = malloc(rb * rows);
        float *row = malloc(sizeof(float) * cols);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++) row[i] = frand();
            encode(type, row, cols, w + rb * r);
        }
        float *X = malloc(sizeof(float) * (size_t)maxT * cols);
        for (int i = 0; i < maxT * cols; i++) X[i] = frand() * (i % 53 == 0 ? 9.f : 1.f);
        int8_t *q = malloc((size_t)maxT * cols);
        float *d = malloc(sizeof(float) * (size_t)maxT * cols / 32);
        int32_t *s = malloc(sizeof(int32_t) * (size_t)maxT * cols / 32);
        for (int t = 0; t < maxT; t++)
            lfm_quantize_act_q8(X + (size_t)t * cols, cols, q + (size_t)t * cols, d + (size_t)t * cols / 32,
                                s + (size_t)t * cols / 32);
        float *alone = malloc(sizeof(float) * (size_t)maxT * rows);
        float *batch = malloc(sizeof(float) * (size_t)maxT * rows);
        for (int t = 0; t < maxT; t++)
            lfm_matvec(type, w, cols, 0, rows, X + (size_t)t * cols, q + (size_t)t * cols, d + (size_t)t * cols / 32,
                       s + (size_t)t * cols / 32, alone + (size_t)t * rows);
        int bad = 0;
        for (int T = 1; T <= maxT; T++) {
            memset(batch, 0xff, sizeof(float) * (size_t)T * rows);
            lfm_matvec_batch(type, w, cols, 0, 20, T, X, cols, q, d, s, cols, batch, rows);
            lfm_matvec_batch(type, w, cols, 20, rows, T, X, cols, q, d, s, cols, batch, rows);
            if (memcmp(batch, alone, sizeof(float) * (size_t)T * rows) != 0) bad++;
        }
        char what[64];
        snprintf(what, sizeof what, "batch = alone %s ×%d (T 1..%d)", type_name(type), cols, maxT);
        check(lfm_tier_name(tier), what, bad, 0);
        free(w);
        free(row);
        free(X);
        free(q);
        free(d);
        free(s);
        free(alone);
        free(batch);
    }
}

// The x86 tiers share one decode summation order for Q8_0 / Q4_0 (x86_int8.h), so their matvecs agree bitwise.
static void check_x86_same_bits(void) {
    static const int tiers[] = {LFM_TIER_AVX2, LFM_TIER_AVX2_VNNI, LFM_TIER_AVX512};
    static const int types[] = {LFM_T_Q8_0, LFM_T_Q4_0};
    if (!lfm_tier_supported(LFM_TIER_AVX2)) return;
    for (size_t ti = 0; ti < 2 * N_BATCH_BLOCKS; ti++) {
        int type = types[ti / N_BATCH_BLOCKS], rows = 29, cols = 32 * batch_blocks[ti % N_BATCH_BLOCKS];
        size_t rb = type_bytes(type, cols);
        uint8_t *w = malloc(rb * rows);
        float *x = malloc(sizeof(float) * cols), *y0 = malloc(sizeof(float) * rows), *y = malloc(sizeof(float) * rows);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++) x[i] = frand();
            encode(type, x, cols, w + rb * r);
        }
        for (int i = 0; i < cols; i++) x[i] = frand() * (i % 29 == 0 ? 7.f : 1.f);
        int8_t *q = malloc(cols);
        float *d = malloc(sizeof(float) * cols / 32);
        int32_t *s = malloc(sizeof(int32_t) * cols / 32);
        lfm_quantize_act_q8(x, cols, q, d, s);
        lfm_set_tier(LFM_TIER_AVX2);
        lfm_matvec(type, w, cols, 0, rows, x, q, d, s, y0);
        for (int k = 1; k < 3; k++) {
            if (!lfm_tier_supported(tiers[k])) continue;
            lfm_set_tier(tiers[k]);
            memset(y, 0xff, sizeof(float) * rows);
            lfm_matvec(type, w, cols, 0, rows, x, q, d, s, y);
            char what[64];
            snprintf(what, sizeof what, "matvec = avx2's %s ×%d", type_name(type), cols);
            check(lfm_tier_name(tiers[k]), what, memcmp(y, y0, sizeof(float) * rows) != 0, 0);
        }
        free(w);
        free(x);
        free(y0);
        free(y);
        free(q);
        free(d);
        free(s);
    }
}

// Their K-quant prefill is one tile GEMM in three encodings (maddubs, AVX-VNNI, AVX512-VNNI on 256 bits) with exact
// integer parts, so every x86 tier's product equals avx2's bitwise, tile edges (rows and tokens) included. T stays
// below 8: from 8 tokens the avx512 tier with BF16 takes its bf16 GEMM (checked against scalar above). The avx512
// one-token products (512-bit integer dots, avx2's float operations) equal avx2's bitwise too.
static void check_x86_kquant_gemm_bits(void) {
    static const int tiers[] = {LFM_TIER_AVX2_VNNI, LFM_TIER_AVX512};
    static const int types[] = {LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K, LFM_T_Q3_K};
    static const int tokens[] = {1, 7};
    if (!lfm_tier_supported(LFM_TIER_AVX2)) return;
    int rows = 13, cols = 768, Tmax = 7;
    for (int ti = 0; ti < 4; ti++) {
        int type = types[ti];
        size_t rb = type_bytes(type, cols);
        uint8_t *w = malloc(rb * rows);
        float *X = malloc(sizeof(float) * cols * Tmax), *y0 = malloc(sizeof(float) * rows * Tmax),
              *y = malloc(sizeof(float) * rows * Tmax);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++) X[i] = frand() * (r == 3 && i % 7 == 0 ? 9.f : 1.f);
            encode(type, X, cols, w + rb * r);
        }
        for (int i = 0; i < cols * Tmax; i++) X[i] = frand() * (i % 29 == 0 ? 7.f : 1.f);
        for (int k = 0; k < 2; k++) {
            int T = tokens[k];
            lfm_set_tier(LFM_TIER_AVX2);
            run_mm(type, w, rows, cols, T, X, y0);
            for (int j = 0; j < 2; j++) {
                if (!lfm_tier_supported(tiers[j])) continue;
                lfm_set_tier(tiers[j]);
                memset(y, 0xff, sizeof(float) * rows * T);
                run_mm(type, w, rows, cols, T, X, y);
                char what[64];
                snprintf(what, sizeof what, "%s = avx2's %s (%d×%d, T %d)", T == 1 ? "matvec" : "gemm",
                         type_name(type), rows, cols, T);
                check(lfm_tier_name(tiers[j]), what, memcmp(y, y0, sizeof(float) * rows * T) != 0, 0);
            }
        }
        free(w);
        free(X);
        free(y0);
        free(y);
    }
}

int main(void) {
    int best = lfm_best_tier();
    for (int t = 0; t < LFM_TIER_COUNT; t++)
        if (lfm_tier_supported(t)) check_batch_bits(t);
    check_x86_same_bits();
    check_x86_kquant_gemm_bits();
    check_kquant_bytes();
    check_kquant_reference();
    printf("best tier: %s; BLAS for large F32 GEMMs: %s\n", lfm_tier_name(best), lfm_blas_name());
    int ran = 0;
    for (int t = 1; t < LFM_TIER_COUNT; t++)
        if (lfm_tier_supported(t)) {
            check_tier(t);
            ran++;
        }
    if (lfm_set_tier(LFM_TIER_COUNT) != -1 || lfm_tier_from_name("nonsense") != -1) {
        printf("tier API accepted a bad tier\n");
        failures++;
    }
    printf("%d tier(s) checked, %d failure(s)\n", ran, failures);
    return failures ? 1 : 0;
}
