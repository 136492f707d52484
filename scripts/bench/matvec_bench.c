// Decode kernels side by side, one thread: for each tier this CPU runs and each block type, the time of one token's
// matrix-vector product, of four tokens one after another, and of four tokens through `lfm_matvec_batch` (one pass
// over the weights where the tier has a four-token kernel). Medians of `reps` runs over a matrix larger than the
// last-level cache (the backbone's FFN shape by default), so the weights come from memory as in a decode step.
//
//   cc -O2 -ISources/CKernels/include Sources/CKernels/*.c scripts/bench/matvec_bench.c -lm -lpthread -ldl \
//      -o /tmp/matvec_bench && /tmp/matvec_bench [rows cols reps]
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
    int reps = argc > 3 ? atoi(argv[3]) : 21;
    if (rows <= 0 || cols <= 0 || cols % 32 || reps <= 0 || reps > 1000) {
        fprintf(stderr, "usage: matvec_bench [rows cols(multiple of 32) reps(1..1000)]\n");
        return 2;
    }
    const int types[] = {LFM_T_Q4_0, LFM_T_Q8_0};
    const char *names[] = {"q4_0", "q8_0"};
    float *wf = malloc(sizeof(float) * (size_t)rows * cols), *x = malloc(sizeof(float) * 4 * (size_t)cols);
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f;
    for (int i = 0; i < 4 * cols; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f - 1.f;
    for (size_t i = 0; i < (size_t)rows * cols; i++) wf[i] -= 1.f; // uniform in [-1, 1)
    int nb = cols / 32;
    int8_t *xq = malloc(4 * (size_t)cols);
    float *xd = malloc(sizeof(float) * 4 * nb), *y = malloc(sizeof(float) * 4 * (size_t)rows);
    int32_t *xs = malloc(sizeof(int32_t) * 4 * nb);
    for (int t = 0; t < 4; t++)
        lfm_quantize_act_q8(x + (size_t)t * cols, cols, xq + (size_t)t * cols, xd + t * nb, xs + t * nb);
    double *tm = malloc(sizeof(double) * reps);
    printf("%-10s %-5s %14s %14s %14s %8s  (%d×%d, median of %d, ms)\n", "tier", "type", "1 token", "4 × 1 token",
           "4 batched", "4x/batch", rows, cols, reps);
    for (int ti = 0; ti < 2; ti++) {
        size_t bytes = (size_t)rows * cols / 32 * (types[ti] == LFM_T_Q4_0 ? 18 : 34);
        uint8_t *w = malloc(bytes);
        if (types[ti] == LFM_T_Q4_0)
            lfm_quantize_q4_0(wf, w, (size_t)rows * cols);
        else
            lfm_quantize_q8_0(wf, w, (size_t)rows * cols);
        for (int tier = 0; tier < LFM_TIER_COUNT; tier++) {
            if (!lfm_tier_supported(tier) || lfm_set_tier(tier) < 0) continue;
            double med[3];
            for (int mode = 0; mode < 3; mode++) {
                for (int r = 0; r < reps; r++) {
                    double t0 = now();
                    if (mode == 0)
                        lfm_matvec(types[ti], w, cols, 0, rows, NULL, xq, xd, xs, y);
                    else if (mode == 1)
                        for (int t = 0; t < 4; t++)
                            lfm_matvec(types[ti], w, cols, 0, rows, NULL, xq + (size_t)t * cols, xd + t * nb,
                                       xs + t * nb, y + (size_t)t * rows);
                    else
                        lfm_matvec_batch(types[ti], w, cols, 0, rows, 4, NULL, cols, xq, xd, xs, cols, y, rows);
                    tm[r] = now() - t0;
                }
                qsort(tm, reps, sizeof(double), cmp);
                med[mode] = tm[reps / 2] * 1e3;
            }
            printf("%-10s %-5s %14.3f %14.3f %14.3f %8.2f\n", lfm_tier_name(tier), names[ti], med[0], med[1], med[2],
                   med[1] / med[2]);
        }
        free(w);
    }
    return 0;
}
