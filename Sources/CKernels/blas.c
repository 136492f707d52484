// Optional OpenBLAS for large float GEMMs (F32 weights, T ≥ 16 tokens), loaded at run time with dlopen so that the
// package neither links nor needs it. Measured on the 2-core Zen 3 machine (README, "Kernels"): OpenBLAS's sgemm is
// 1.4–2.9× our AVX2 float tile from 16 tokens up and slower below (0.6× at 2 tokens), so it serves only T ≥ 16.
// Debian's OpenBLAS 0.3.21 does not recognise Sapphire Rapids and would run its Prescott kernels: on a CPU with the
// AVX-512 tier OPENBLAS_CORETYPE=SkylakeX is set before the library loads unless the user set it. OpenBLAS runs one
// thread per call; our pool splits the rows (no oversubscription). LFM_BLAS=none turns it off.
#include "internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#if (defined(__linux__) || defined(__APPLE__)) && !defined(LFM_NO_DLOPEN)
#include <dlfcn.h>
#define LFM_HAVE_DLOPEN 1
#endif

typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
static sgemm_fn g_sgemm;
static char g_name[96] = "none";
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void load(void) {
#ifdef LFM_HAVE_DLOPEN
    const char *off = getenv("LFM_BLAS");
    if (off && strcmp(off, "none") == 0) return;
#if defined(__x86_64__)
    if (lfm_tier_supported(LFM_TIER_AVX512)) setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
#endif
    const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};
    void *h = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    sgemm_fn f = (sgemm_fn)dlsym(h, "cblas_sgemm");
    void (*threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    char *(*core)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    if (!f || !threads) return;
    threads(1);
    snprintf(g_name, sizeof g_name, "OpenBLAS (%s)", core ? core() : "?");
    g_sgemm = f;
#endif
}

const char *lfm_blas_name(void) {
    pthread_once(&g_once, load);
    return g_name;
}

static lfm_gemm_fn g_lower[LFM_TIER_COUNT];

// Row-major X (T × cols) times Wᵀ (rows r0..r1) into Y (T × ldy), through cblas_sgemm (101 = RowMajor, 111 =
// NoTrans, 112 = Trans); smaller products take the tier's own kernel.
#define BLAS_GEMM(TIER)                                                                                                \
    static void mm_f32_blas_##TIER(const uint8_t *w, size_t ld, int cols, int r0, int r1, int T, const float *X,       \
                                   int ldx, const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y,   \
                                   int ldy) {                                                                          \
        if (T >= 16 && r1 - r0 >= 16 && g_sgemm) {                                                                     \
            g_sgemm(101, 111, 112, T, r1 - r0, cols, 1.f, X, ldx, (const float *)(w + (size_t)r0 * ld), (int)(ld / 4), \
                    0.f, Y + r0, ldy);                                                                                 \
            return;                                                                                                    \
        }                                                                                                              \
        g_lower[TIER](w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);                                        \
    }
BLAS_GEMM(1)
BLAS_GEMM(2) BLAS_GEMM(3) BLAS_GEMM(4) BLAS_GEMM(5) BLAS_GEMM(6)

    void lfm_register_blas(lfm_table *t, int tier) {
    static const lfm_gemm_fn fns[LFM_TIER_COUNT] = {NULL,          mm_f32_blas_1, mm_f32_blas_2, mm_f32_blas_3,
                                                    mm_f32_blas_4, mm_f32_blas_5, mm_f32_blas_6};
    if (tier <= LFM_TIER_SCALAR || tier >= LFM_TIER_COUNT) return; // the reference stays pure C
    lfm_blas_name();
    if (!g_sgemm) return;
    g_lower[tier] = t->gemm[LFM_TYPE_F32];
    t->gemm[LFM_TYPE_F32] = fns[tier];
}
