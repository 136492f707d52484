// CPU detection, the per-tier kernel tables and the public entry points that dispatch through them.
// A table is built for each tier the CPU can run: scalar first, then every lower tier of the same family, then the
// tier itself, so a function a tier lacks falls back to the best lower one. The active tier is chosen once, from
// LFM_CPU or the best the CPU has; tests and benchmarks switch it with lfm_set_tier.
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <math.h>
#include <pthread.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

static const char *const TIER_NAMES[LFM_TIER_COUNT] = {"scalar", "avx2",         "avx2-vnni", "avx512",
                                                       "neon",   "neon-dotprod", "neon-i8mm"};

const char *lfm_tier_name(int tier) { return tier >= 0 && tier < LFM_TIER_COUNT ? TIER_NAMES[tier] : "unknown"; }

int lfm_tier_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < LFM_TIER_COUNT; i++)
        if (strcasecmp(name, TIER_NAMES[i]) == 0) return i;
    return -1;
}

// ---------------------------------------------------------------------------------------------
// What the CPU has (computed once; relaxed atomics keep ThreadSanitizer quiet about the lazy init).

enum {
    F_AVX2 = 1,
    F_AVXVNNI = 2,
    F_AVX512 = 4,
    F_AVX512BF16 = 8,
    F_NEON = 16,
    F_DOTPROD = 32,
    F_I8MM = 64,
    F_DONE = 1 << 30
};
static int g_features = 0;

#if defined(__x86_64__)
static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static int detect(void) {
    int f = 0;
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
        unsigned long long xcr = osxsave ? xgetbv0() : 0;
        int ymm = (xcr & 0x6) == 0x6, zmm = (xcr & 0xe6) == 0xe6;
        unsigned b7 = 0, c7 = 0, a71 = 0;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            b7 = b;
            c7 = c;
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) a71 = a;
        int avx2 = (b7 >> 5) & 1;
        if (avx && ymm && avx2 && fma && f16c) {
            f |= F_AVX2;
            if ((a71 >> 4) & 1) f |= F_AVXVNNI;
            int avx512 =
                ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 30) & 1) && ((b7 >> 31) & 1) && ((c7 >> 11) & 1);
            if (avx512 && zmm) {
                f |= F_AVX512;
                if ((a71 >> 5) & 1) f |= F_AVX512BF16;
            }
        }
    }
#elif defined(__aarch64__)
    f |= F_NEON; // Advanced SIMD (and its f16 <-> f32 conversions) is part of every ARMv8-A core
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & (1UL << 20)) f |= F_DOTPROD; // HWCAP_ASIMDDP
    if (hw2 & (1UL << 13)) f |= F_I8MM;   // HWCAP2_I8MM
#elif defined(__APPLE__)
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0 && v) f |= F_DOTPROD;
    v = 0;
    len = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_I8MM", &v, &len, NULL, 0) == 0 && v) f |= F_I8MM;
#endif
    if (!(f & F_DOTPROD)) f &= ~F_I8MM;
#endif
    return f;
}

static int features(void) {
    int f = __atomic_load_n(&g_features, __ATOMIC_RELAXED);
    if (!(f & F_DONE)) {
        f = detect() | F_DONE;
        __atomic_store_n(&g_features, f, __ATOMIC_RELAXED);
    }
    return f;
}

int lfm_cpu_has_avx512bf16(void) { return (features() & F_AVX512BF16) != 0; }

int lfm_tier_supported(int tier) {
    int f = features();
    switch (tier) {
    case LFM_TIER_SCALAR:
        return 1;
    case LFM_TIER_AVX2:
        return (f & F_AVX2) != 0;
    case LFM_TIER_AVX2_VNNI:
        return (f & F_AVXVNNI) != 0;
    case LFM_TIER_AVX512:
        return (f & F_AVX512) != 0;
    case LFM_TIER_NEON:
        return (f & F_NEON) != 0;
    case LFM_TIER_NEON_DOTPROD:
        return (f & F_DOTPROD) != 0;
    case LFM_TIER_NEON_I8MM:
        return (f & F_I8MM) != 0;
    }
    return 0;
}

int lfm_best_tier(void) {
    static const int order[] = {LFM_TIER_AVX512,    LFM_TIER_AVX2_VNNI,    LFM_TIER_AVX2,
                                LFM_TIER_NEON_I8MM, LFM_TIER_NEON_DOTPROD, LFM_TIER_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (lfm_tier_supported(order[i])) return order[i];
    return LFM_TIER_SCALAR;
}

// Legacy query kept for callers that ask about the AVX-512 integer paths.
int lfm_cpu_has_vnni(void) { return lfm_tier_supported(LFM_TIER_AVX512); }

// ---------------------------------------------------------------------------------------------
// Tables.

static lfm_table g_tables[LFM_TIER_COUNT];
static int g_built[LFM_TIER_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_active = -1;
static int g_env_error = 0; // 1 unknown name, 2 unsupported tier
static char g_env_value[64];

static void build(int tier) {
    lfm_table *t = &g_tables[tier];
    lfm_register_scalar(t);
    switch (tier) {
    case LFM_TIER_AVX512:
        lfm_register_avx2(t);
        if (lfm_tier_supported(LFM_TIER_AVX2_VNNI))
            lfm_register_avx2_vnni(t);
        else
            lfm_register_avx512_vnni256(t);
        lfm_register_avx512(t);
        break;
    case LFM_TIER_AVX2_VNNI:
        lfm_register_avx2(t);
        lfm_register_avx2_vnni(t);
        break;
    case LFM_TIER_AVX2:
        lfm_register_avx2(t);
        break;
    case LFM_TIER_NEON_I8MM:
        lfm_register_neon(t);
        lfm_register_neon_dotprod(t);
        lfm_register_neon_i8mm(t);
        break;
    case LFM_TIER_NEON_DOTPROD:
        lfm_register_neon(t);
        lfm_register_neon_dotprod(t);
        break;
    case LFM_TIER_NEON:
        lfm_register_neon(t);
        break;
    default:
        break;
    }
    lfm_register_blas(t, tier);
    // a four-token matvec is only valid beside the one-token matvec of its own tier (one summation order)
    for (int i = 0; i < LFM_TYPE_COUNT; i++)
        if (t->matvec4[i] && t->matvec4_from[i] != t->from[LFM_FN_MATVEC + i]) t->matvec4[i] = NULL;
    g_built[tier] = 1;
}

static void init_once(void) {
    for (int i = 0; i < LFM_TIER_COUNT; i++)
        if (lfm_tier_supported(i)) build(i);
    int tier = lfm_best_tier();
    const char *e = getenv("LFM_CPU");
    if (e && *e) {
        snprintf(g_env_value, sizeof g_env_value, "%s", e);
        int want = lfm_tier_from_name(e);
        if (want < 0)
            g_env_error = 1;
        else if (!lfm_tier_supported(want))
            g_env_error = 2;
        else
            tier = want;
    }
    __atomic_store_n(&g_active, tier, __ATOMIC_RELEASE);
}

const lfm_table *lfm_active(void) {
    int a = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
    if (a < 0) {
        pthread_once(&g_once, init_once);
        a = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
    }
    return &g_tables[a];
}

int lfm_tier(void) {
    lfm_active();
    return __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
}

int lfm_set_tier(int tier) {
    lfm_active();
    if (tier < 0 || tier >= LFM_TIER_COUNT || !lfm_tier_supported(tier) || !g_built[tier]) return -1;
    __atomic_store_n(&g_active, tier, __ATOMIC_RELEASE);
    return 0;
}

const char *lfm_tier_env_error(void) {
    lfm_active();
    static char msg[256];
    if (g_env_error == 1) {
        snprintf(msg, sizeof msg,
                 "LFM_CPU='%s' is not a kernel tier (scalar, avx2, avx2-vnni, avx512, neon, neon-dotprod, neon-i8mm)",
                 g_env_value);
        return msg;
    }
    if (g_env_error == 2) {
        snprintf(msg, sizeof msg, "LFM_CPU='%s': this CPU cannot run that tier (best here: %s)", g_env_value,
                 lfm_tier_name(lfm_best_tier()));
        return msg;
    }
    return NULL;
}

// Legacy switch: 1 forces the scalar tier, 0 restores the best (or LFM_CPU's) tier.
void lfm_set_reference_kernels(int on) {
    static int saved = -1;
    if (on) {
        if (saved < 0) saved = lfm_tier();
        lfm_set_tier(LFM_TIER_SCALAR);
    } else {
        lfm_set_tier(saved >= 0 ? saved : lfm_best_tier());
        saved = -1;
    }
}

static const char *const FN_NAMES[LFM_FN_COUNT] = {
    "quantize_act", "matvec_f32",  "matvec_f16",  "matvec_bf16", "matvec_q8_0", "matvec_q4_0", "matvec_q4_k",
    "matvec_q5_k",  "matvec_q6_k", "matvec_q3_k", "gemm_f32",    "gemm_f16",    "gemm_bf16",   "gemm_q8_0",
    "gemm_q4_0",    "gemm_q4_k",   "gemm_q5_k",   "gemm_q6_k",   "gemm_q3_k",   "row_f32",     "row_f16",
    "row_bf16",     "row_q8_0",    "row_q4_0",    "row_q4_k",    "row_q5_k",    "row_q6_k",    "row_q3_k",
    "silu",         "glu",         "gelu",        "relu",        "elu",         "layernorm",   "rmsnorm",
    "softmax",      "attend",      "axpy",        "dot"};

int lfm_kernel_count(void) { return LFM_FN_COUNT; }
const char *lfm_kernel_name(int i) { return i >= 0 && i < LFM_FN_COUNT ? FN_NAMES[i] : NULL; }
int lfm_kernel_tier(int i) { return i >= 0 && i < LFM_FN_COUNT ? lfm_active()->from[i] : -1; }

// ---------------------------------------------------------------------------------------------
// Public entry points.

void lfm_quantize_act_q8(const float *x, int n, int8_t *q, float *d, int32_t *s) {
    lfm_active()->quantize_act(x, n, q, d, s);
}

int lfm_type_wants_q8(int type) {
    return type == LFM_T_Q8_0 || type == LFM_T_Q4_0 || type == LFM_T_Q3_K || type == LFM_T_Q4_K || type == LFM_T_Q5_K ||
           type == LFM_T_Q6_K;
}

enum { SCRATCH_SLOTS = 2 };
typedef struct {
    void *p[SCRATCH_SLOTS];
    size_t n[SCRATCH_SLOTS];
} scratch_set;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *v) {
    scratch_set *s = v;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *lfm_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_init);
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        pthread_setspecific(scratch_key, s);
    }
    if (s->n[slot] < bytes) {
        free(s->p[slot]);
        size_t n = (bytes + 4095) / 4096 * 4096;
        s->p[slot] = aligned_alloc(64, n);
        s->n[slot] = s->p[slot] ? n : 0;
    }
    return s->p[slot];
}

void lfm_matvec(int type, const void *w, int cols, int r0, int r1, const float *xf, const int8_t *xq, const float *xd,
                const int32_t *xs, float *y) {
    int ti = lfm_type_index(type);
    if (ti < 0) {
        for (int r = r0; r < r1; r++) y[r] = NAN;
        return;
    }
    lfm_active()->matvec[ti]((const uint8_t *)w, lfm_row_bytes(ti, cols), cols, r0, r1, xf, xq, xd, xs, y);
}

// An unknown weight type gives NaN outputs (Swift validates types at load, so this is never reached there).
static void unknown_type_rows(float *Y, int T, int ldy, int r0, int r1) {
    for (int t = 0; t < T; t++)
        for (int r = r0; r < r1; r++) Y[(size_t)t * ldy + r] = NAN;
}

void lfm_matmul(int type, const void *w, int cols, int r0, int r1, int T, const float *X, int ldx, const int8_t *XQ,
                const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int ti = lfm_type_index(type);
    if (ti < 0) {
        unknown_type_rows(Y, T, ldy, r0, r1);
        return;
    }
    const lfm_table *k = lfm_active();
    size_t ld = lfm_row_bytes(ti, cols);
    if (T == 1) {
        k->matvec[ti]((const uint8_t *)w, ld, cols, r0, r1, X, XQ, XD, XS, Y);
        return;
    }
    k->gemm[ti]((const uint8_t *)w, ld, cols, r0, r1, T, X, ldx, XQ, XD, XS, ldq, Y, ldy);
}

void lfm_row_to_f32(int type, const void *w, int cols, int row, float *out) {
    int ti = lfm_type_index(type);
    if (ti < 0) return;
    lfm_active()->row[ti]((const uint8_t *)w + (size_t)row * lfm_row_bytes(ti, cols), cols, out);
}

void lfm_silu(float *x, size_t n) { lfm_active()->silu(x, n); }
void lfm_glu(const float *a, const float *g, size_t n, float *y) { lfm_active()->glu(a, g, n, y); }
void lfm_gelu_erf(float *x, size_t n) { lfm_active()->gelu(x, n); }
void lfm_relu(float *x, size_t n) { lfm_active()->relu(x, n); }
void lfm_elu(const float *x, float *y, size_t n) { lfm_active()->elu(x, y, n); }
void lfm_layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y) {
    lfm_active()->layernorm(x, w, b, n, eps, y);
}
void lfm_rmsnorm(const float *x, const float *w, int n, float eps, float *y) { lfm_active()->rmsnorm(x, w, n, eps, y); }
void lfm_softmax(float *x, int n) { lfm_active()->softmax(x, n); }
void lfm_attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *scores,
                float *out) {
    lfm_active()->attend(q, hd, K, V, ld, n, scale, scores, out);
}
void lfm_axpy(float a, const float *x, float *y, size_t n) { lfm_active()->axpy(a, x, y, n); }
float lfm_dot_f32(const float *a, const float *b, size_t n) { return lfm_active()->dot(a, b, n); }

void lfm_matvec_batch(int type, const void *w, int cols, int r0, int r1, int T, const float *X, int ldx,
                      const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy) {
    int ti = lfm_type_index(type);
    if (ti < 0) {
        unknown_type_rows(Y, T, ldy, r0, r1);
        return;
    }
    const lfm_table *k = lfm_active();
    size_t ld = lfm_row_bytes(ti, cols);
    int qb = ldq / 32;
    lfm_matvec4_fn mv4 = XQ ? k->matvec4[ti] : NULL;
    // Weights per block: the first pass brings them into L2, the other tokens' passes read them from there. Token
    // by token, 48 KiB; by groups of four, 512 KiB (each four-token call builds its token tables, so a block must be
    // long enough to pay for them).
    int block = (int)((size_t)(mv4 ? 512 * 1024 : 48 * 1024) / (ld > 0 ? ld : 1));
    if (block < 1) block = 1;
    // groups of four (a last group of two or three padded to four: one four-token pass reads the weights once and
    // costs less than two one-token passes on every tier that has the kernel), then a last single token alone
    int T4 = mv4 ? T / 4 * 4 + (T % 4 >= 2 ? 4 : 0) : 0;
    // one pass over the weights (a single group of four) needs no blocking, and each call rebuilds its token tables
    if (T4 >= T && T4 == 4) block = r1 - r0 > 0 ? r1 - r0 : 1;
    int8_t *padq = NULL;
    float *pady = NULL, *padd = NULL;
    int32_t *pads = NULL;
    if (T4 > T) { // padding tokens: zero activations (their rows are computed and dropped)
        padq = calloc((size_t)ldq + 32, 1);
        padd = calloc((size_t)qb + 1, sizeof(float));
        pads = calloc((size_t)qb + 1, sizeof(int32_t));
        pady = malloc(sizeof(float) * (size_t)(r1 > 0 ? r1 : 1));
    }
    for (int b = r0; b < r1; b += block) {
        int e = b + block < r1 ? b + block : r1;
        for (int t = 0; t < T4; t += 4) {
            const int8_t *xq[4];
            const float *xd[4];
            const int32_t *xs[4];
            float *y[4];
            for (int j = 0; j < 4; j++) {
                int u = t + j;
                if (u < T) {
                    xq[j] = XQ + (size_t)u * ldq;
                    xd[j] = XD + (size_t)u * qb;
                    xs[j] = XS + (size_t)u * qb;
                    y[j] = Y + (size_t)u * ldy;
                } else {
                    xq[j] = padq;
                    xd[j] = padd;
                    xs[j] = pads;
                    y[j] = pady;
                }
            }
            mv4((const uint8_t *)w, ld, cols, b, e, xq, xd, xs, y);
        }
        for (int t = T4 < T ? T4 : T; t < T; t++)
            k->matvec[ti]((const uint8_t *)w, ld, cols, b, e, X ? X + (size_t)t * ldx : NULL,
                          XQ ? XQ + (size_t)t * ldq : NULL, XD ? XD + (size_t)t * qb : NULL,
                          XS ? XS + (size_t)t * qb : NULL, Y + (size_t)t * ldy);
    }
    free(padq);
    free(padd);
    free(pads);
    free(pady);
}
