// Decode kernels from memory, the way a decode step meets them: about 600 MB of Q4_0 weights (as many matrices of
// the given shape as fit) written to a temporary file and mapped, so they come from DRAM through 4 KiB page-cache
// pages as a bundle's do; `threads` threads split each matrix's rows (`pieces` calls each: 1, as the runtime's pool
// takes them since it went to one piece per thread; 4 is how it took them before) and meet at a barrier after every
// matrix. Prints the median of 7 passes over all the matrices for one token
// (`lfm_matvec`) and for four tokens in one pass (`lfm_matvec_batch`), and four times the first over the second.
// The active tier (LFM_CPU forces a lower one).
//
//   cc -O2 -ISources/CKernels/include Sources/CKernels/*.c scripts/bench/matvec_mem_bench.c -lm -lpthread -o /tmp/mmb
//   /tmp/mmb [threads rows cols [pieces]]
#include "CKernels.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { PASSES = 7, MAXT = 16 };
static int rows = 8192, cols = 2048, nthreads = 2, pieces = 1, nmat, batched;
static const uint8_t *base;
static size_t mbytes;
static int8_t *xq;
static float *xd, *y;
static int32_t *xs;
static pthread_barrier_t bar;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *worker(void *arg) {
    int id = (int)(long)arg, per = rows / nthreads, r0 = id * per, r1 = id == nthreads - 1 ? rows : r0 + per;
    for (int m = 0; m < nmat; m++) {
        const uint8_t *w = base + mbytes * m;
        for (int c = 0; c < pieces; c++) {
            int b = r0 + (r1 - r0) * c / pieces, e = r0 + (r1 - r0) * (c + 1) / pieces;
            if (batched)
                lfm_matvec_batch(LFM_T_Q4_0, w, cols, b, e, 4, NULL, cols, xq, xd, xs, cols, y, rows);
            else
                lfm_matvec(LFM_T_Q4_0, w, cols, b, e, NULL, xq, xd, xs, y);
        }
        pthread_barrier_wait(&bar);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, v = *(const double *)b;
    return x < v ? -1 : x > v;
}

int main(int argc, char **argv) {
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 3) rows = atoi(argv[2]), cols = atoi(argv[3]);
    if (argc > 4) pieces = atoi(argv[4]);
    if (nthreads < 1 || nthreads > MAXT || pieces < 1 || pieces > 64 || rows < 4 * nthreads * pieces || cols <= 0 ||
        cols % 32) {
        fprintf(stderr, "usage: matvec_mem_bench [threads(1..%d) rows cols(multiple of 32) [pieces(1..64)]]\n", MAXT);
        return 2;
    }
    mbytes = (size_t)rows * cols / 32 * 18;
    nmat = (int)(600e6 / mbytes) > 0 ? (int)(600e6 / mbytes) : 1;
    float *wf = malloc(sizeof(float) * (size_t)rows * cols), *x = malloc(sizeof(float) * 4 * (size_t)cols);
    uint8_t *wq = malloc(mbytes);
    xq = malloc(4 * (size_t)cols), xd = malloc(sizeof(float) * 4 * (cols / 32));
    xs = malloc(sizeof(int32_t) * 4 * (cols / 32)), y = malloc(sizeof(float) * 4 * (size_t)rows);
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        wf[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f - 1;
    for (int i = 0; i < 4 * cols; i++) x[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 8388608.f - 1;
    lfm_quantize_q4_0(wf, wq, (size_t)rows * cols);
    for (int t = 0; t < 4; t++)
        lfm_quantize_act_q8(x + (size_t)t * cols, cols, xq + (size_t)t * cols, xd + t * (cols / 32),
                            xs + t * (cols / 32));
    char path[] = "/tmp/matvec_mem_bench.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return perror("mkstemp"), 1;
    unlink(path);
    for (int m = 0; m < nmat; m++)
        if (write(fd, wq, mbytes) != (ssize_t)mbytes) return perror("write"), 1;
    base = mmap(NULL, mbytes * nmat, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return perror("mmap"), 1;
    printf("%s tier, %d thread(s) × %d piece(s), %d × %d Q4_0 × %d matrices (%.0f MB), median of %d passes, ms\n",
           lfm_tier_name(lfm_tier()), nthreads, pieces, rows, cols, nmat, mbytes * nmat / 1e6, PASSES);
    double med[2];
    for (batched = 0; batched < 2; batched++) {
        double tm[PASSES];
        for (int p = 0; p < PASSES; p++) {
            pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
            pthread_t th[MAXT];
            double t0 = now();
            for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, worker, (void *)(long)i);
            for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
            tm[p] = now() - t0;
            pthread_barrier_destroy(&bar);
        }
        qsort(tm, PASSES, sizeof(double), cmp);
        med[batched] = tm[PASSES / 2];
        printf("%-18s %8.2f ms  %6.1f GB/s\n", batched ? "4 tokens, 1 pass" : "1 token", med[batched] * 1e3,
               mbytes * nmat / med[batched] / 1e9);
    }
    printf("4 × one token / four-token pass: %.2f\n", 4 * med[0] / med[1]);
    return 0;
}
