// Prefill kernels side by side, one thread: for each tier this CPU runs and each quantized block type, the time of a
// T-token product (`lfm_matmul`), of the same T tokens as batched decode rows (`lfm_matvec_batch`: each row's result
// bit-equal to its matvec) and of one token's matrix-vector product (`lfm_matvec`), as GFLOP/s (2·rows·cols·T per
// product) and ms, medians of `reps` runs. The weights are the backbone's FFN shape by default (8192 × 2048);
// K-quant rows need a multiple of 256 columns.
//
//   cc -O2 -ISources/CKernels/include Sources/CKernels/*.c scripts/bench/gemm_bench.c -lm -lpthread -ldl \
//      -o /tmp/gemm_bench && /tmp/gemm_bench [rows cols tokens reps]
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 8192, cols = argc > 2 ? atoi(argv[2]) : 2048;
    int T = argc > 3 ? atoi(argv[3]) : 64, reps = argc > 4 ? atoi(argv[4]) : 7;
    if (rows <= 0 || cols <= 0 || cols % 256 || T <= 0 || T > 4096 || reps <= 0 || reps > 1000) {
        fprintf(stderr, "usage: gemm_bench [rows cols(multiple of 256) tokens(1..4096) reps(1..1000)]\n");
        return 2;
    }
    const int types[] = {LFM_T_Q4_0, LFM_T_Q8_0, LFM_T_Q3_K, LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K};
    const char *names[] = {"q4_0", "q8_0", "q3_k", "q4_k", "q5_k", "q6_k"};
    const size_t block_bytes[] = {18, 34, 110, 144, 176, 210}, block_elems[] = {32, 32, 256, 256, 256, 256};
    size_t n = (size_t)rows * cols;
    float *wf = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * (size_t)T * cols);
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) wf[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f - 1.f;
    for (size_t i = 0; i < (size_t)T * cols; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f - 1.f;
    int nb = cols / 32;
    int8_t *xq = malloc((size_t)T * cols);
    float *xd = malloc(sizeof(float) * (size_t)T * nb), *y = malloc(sizeof(float) * (size_t)T * rows);
    int32_t *xs = malloc(sizeof(int32_t) * (size_t)T * nb);
    for (int t = 0; t < T; t++)
        lfm_quantize_act_q8(x + (size_t)t * cols, cols, xq + (size_t)t * cols, xd + (size_t)t * nb,
                            xs + (size_t)t * nb);
    double *tm = malloc(sizeof(double) * reps);
    printf("%-10s %-5s %12s %12s %12s %12s %12s  (%d×%d, %d tokens, median of %d)\n", "tier", "type", "gemm ms",
           "GFLOP/s", "batch ms", "matvec ms", "GB/s", rows, cols, T, reps);
    for (int ti = 0; ti < 6; ti++) {
        size_t bytes = n / block_elems[ti] * block_bytes[ti];
        uint8_t *w = malloc(bytes);
        switch (types[ti]) {
        case LFM_T_Q4_0: lfm_quantize_q4_0(wf, w, n); break;
        case LFM_T_Q8_0: lfm_quantize_q8_0(wf, w, n); break;
        case LFM_T_Q3_K: lfm_quantize_q3_k(wf, w, n); break;
        case LFM_T_Q4_K: lfm_quantize_q4_k(wf, w, n); break;
        case LFM_T_Q5_K: lfm_quantize_q5_k(wf, w, n); break;
        default: lfm_quantize_q6_k(wf, w, n); break;
        }
        for (int tier = 0; tier < LFM_TIER_COUNT; tier++) {
            if (!lfm_tier_supported(tier) || lfm_set_tier(tier) < 0) continue;
            double med[3];
            for (int mode = 0; mode < 3; mode++) {
                for (int r = 0; r < reps; r++) {
                    double t0 = now();
                    if (mode == 0)
                        lfm_matmul(types[ti], w, cols, 0, rows, T, x, cols, xq, xd, xs, cols, y, rows);
                    else if (mode == 1)
                        lfm_matvec_batch(types[ti], w, cols, 0, rows, T, x, cols, xq, xd, xs, cols, y, rows);
                    else
                        lfm_matvec(types[ti], w, cols, 0, rows, NULL, xq, xd, xs, y);
                    tm[r] = now() - t0;
                }
                qsort(tm, reps, sizeof(double), cmp);
                med[mode] = tm[reps / 2];
            }
            printf("%-10s %-5s %12.3f %12.1f %12.3f %12.3f %12.1f\n", lfm_tier_name(tier), names[ti], med[0] * 1e3,
                   2.0 * n * T / med[0] * 1e-9, med[1] * 1e3, med[2] * 1e3, bytes / med[2] * 1e-9);
        }
        free(w);
    }
    return 0;
}
