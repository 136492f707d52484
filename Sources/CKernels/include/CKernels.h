// Small C kernels used by the Swift modules: exact float conversions and the
// ggml block quantizers (Q8_0, Q4_0). All functions are pure and thread-safe.
#ifndef LFM_CKERNELS_H
#define LFM_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// ggml block sizes (elements per block) and bytes per block.
#define LFM_QK8_0 32
#define LFM_QK4_0 32
#define LFM_Q8_0_BYTES 34
#define LFM_Q4_0_BYTES 18
/// K-quant super-blocks: 256 elements; Q3_K {hmask[32], qs[64], scales[12], d}, Q4_K {d, dmin, scales[12],
/// qs[128]}, Q5_K {d, dmin, scales[12], qh[32], qs[128]}, Q6_K {ql[128], qh[64], scales[16], d} (ggml's block_q3_K,
/// block_q4_K, block_q5_K, block_q6_K).
#define LFM_QK_K 256
#define LFM_Q3_K_BYTES 110
#define LFM_Q4_K_BYTES 144
#define LFM_Q5_K_BYTES 176
#define LFM_Q6_K_BYTES 210

/// IEEE binary16 <-> binary32, round to nearest even (numpy `astype(np.float16)` semantics).
uint16_t lfm_f32_to_f16(float x);
float lfm_f16_to_f32(uint16_t h);
/// bfloat16 with the rounding of the `gguf` Python package (NaN quieted, round to nearest even).
uint16_t lfm_f32_to_bf16(float x);
float lfm_bf16_to_f32(uint16_t h);

void lfm_convert_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void lfm_convert_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
void lfm_convert_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void lfm_convert_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/// Quantize `n` floats (n a multiple of 32) into ggml Q8_0 / Q4_0 blocks, byte-identical to
/// ggml's reference quantizer (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`).
void lfm_quantize_q8_0(const float *src, uint8_t *dst, size_t n);
void lfm_quantize_q4_0(const float *src, uint8_t *dst, size_t n);
void lfm_dequantize_q8_0(const uint8_t *src, float *dst, size_t n);
void lfm_dequantize_q4_0(const uint8_t *src, float *dst, size_t n);
/// Quantize `n` floats (n a multiple of 256) into Q3_K / Q4_K / Q5_K / Q6_K, byte-identical to ggml's reference
/// quantizers (`quantize_row_q4_K_ref` etc., what `llama-quantize` runs without an importance matrix); dequantize like
/// `dequantize_row_q4_K` / `gguf.quants.dequantize`.
void lfm_quantize_q3_k(const float *src, uint8_t *dst, size_t n);
void lfm_quantize_q4_k(const float *src, uint8_t *dst, size_t n);
void lfm_quantize_q5_k(const float *src, uint8_t *dst, size_t n);
void lfm_quantize_q6_k(const float *src, uint8_t *dst, size_t n);
void lfm_dequantize_q3_k(const uint8_t *src, float *dst, size_t n);
void lfm_dequantize_q4_k(const uint8_t *src, float *dst, size_t n);
void lfm_dequantize_q5_k(const uint8_t *src, float *dst, size_t n);
void lfm_dequantize_q6_k(const uint8_t *src, float *dst, size_t n);
/// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes.
void lfm_kq_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m);
/// Importance-weighted quantization of `rows` rows of `n_per_row` floats into type `type` (LFM_T_Q4_0, LFM_T_Q3_K,
/// LFM_T_Q4_K, LFM_T_Q5_K, LFM_T_Q6_K), `weights` holding one weight per column (an importance-matrix entry),
/// byte-identical to ggml's weighted quantizers (what `llama-quantize --imatrix` runs). Returns 0, writing nothing,
/// for a type without a weighted path (Q8_0 and the float types: ggml has none) or a row width that is not a whole
/// number of blocks.
int lfm_quantize_rows_weighted(int32_t type, const float *src, uint8_t *dst, int64_t rows, int64_t n_per_row,
                               const float *weights);
/// 1 when `type` has a weighted quantizer (lfm_quantize_rows_weighted), else 0.
int lfm_type_has_weighted_quantizer(int32_t type);

#ifdef __cplusplus
}
#endif

// ---------------------------------------------------------------------------------------------
// Runtime kernels, dispatched through the active tier (dispatch.c). Weight rows are read straight from the bundle's
// ggml layouts.

#ifdef __cplusplus
extern "C" {
#endif

/// ggml type ids handled by the matrix kernels.
enum {
    LFM_T_F32 = 0,
    LFM_T_F16 = 1,
    LFM_T_Q4_0 = 2,
    LFM_T_Q8_0 = 8,
    LFM_T_Q3_K = 11,
    LFM_T_Q4_K = 12,
    LFM_T_Q5_K = 13,
    LFM_T_Q6_K = 14,
    LFM_T_BF16 = 30
};

/// Kernel tiers: one table of kernels per instruction-set level, chosen once at start (LFM_CPU or the best the CPU
/// has). Each tier falls back per function to the best lower tier of its family.
enum {
    LFM_TIER_SCALAR = 0,       // portable C, the reference
    LFM_TIER_AVX2 = 1,         // AVX2 + FMA + F16C
    LFM_TIER_AVX2_VNNI = 2,    // plus VEX AVX-VNNI
    LFM_TIER_AVX512 = 3,       // AVX-512 F/BW/VL/DQ + VNNI (+ BF16 where present)
    LFM_TIER_NEON = 4,         // ARMv8 Advanced SIMD
    LFM_TIER_NEON_DOTPROD = 5, // plus SDOT/UDOT
    LFM_TIER_NEON_I8MM = 6,    // plus SMMLA/USMMLA
    LFM_TIER_COUNT = 7
};
const char *lfm_tier_name(int tier);
/// The tier named `name` (case-insensitive), or -1.
int lfm_tier_from_name(const char *name);
/// 1 when this CPU can run `tier`.
int lfm_tier_supported(int tier);
int lfm_best_tier(void);
/// The active tier.
int lfm_tier(void);
/// Switches the active tier (tests, benchmarks); -1 when the CPU cannot run it.
int lfm_set_tier(int tier);
/// A message when LFM_CPU names an unknown tier or one this CPU lacks (the best tier is used meanwhile), else NULL.
const char *lfm_tier_env_error(void);
/// The kernels of the active table, by index: name and the tier that serves it.
int lfm_kernel_count(void);
const char *lfm_kernel_name(int i);
int lfm_kernel_tier(int i);
/// 1 when weights of this ggml type take q8 block activations (`lfm_quantize_act_q8`), 0 for float activations.
int lfm_type_wants_q8(int type);

/// The BLAS serving large F32 GEMMs: "OpenBLAS (core)" when libopenblas could be loaded, else "none".
const char *lfm_blas_name(void);

/// 1 when the CPU has the AVX-512 tier (legacy query).
int lfm_cpu_has_vnni(void);
int lfm_cpu_has_avx512bf16(void);
/// 1 forces the scalar tier (tests compare it with the fast ones); 0 restores the previous tier.
void lfm_set_reference_kernels(int on);

/// Activations quantized to 8 bits in blocks of 32 (for Q8_0 / Q4_0 weights): `q[n]`, per block scale `d[n/32]`
/// and sum of quants `s[n/32]`.
void lfm_quantize_act_q8(const float *x, int n, int8_t *q, float *d, int32_t *s);

/// y[r] = dot(W row r, x) for rows [r0, r1). `w` is the tensor's first byte, `cols` the row length.
/// For F32/F16/BF16 weights `xf` is used; for Q8_0/Q4_0 and the K-quants the quantized activation (xq, xd, xs),
/// in blocks of 32 (a K-quant row's 256-element super-block reads eight of them).
void lfm_matvec(int type, const void *w, int cols, int r0, int r1, const float *xf, const int8_t *xq, const float *xd,
                const int32_t *xs, float *y);

/// Y[t][r] = dot(W row r, X[t]) for rows [r0, r1) and tokens [0, T): X rows are `ldx` apart (floats) and
/// their quantized forms `ldq` bytes / `ldq/32` blocks apart; Y rows are `ldy` apart.
void lfm_matmul(int type, const void *w, int cols, int r0, int r1, int T, const float *X, int ldx, const int8_t *XQ,
                const float *XD, const int32_t *XS, int ldq, float *Y, int ldy);

/// Y[t][r] = dot(W row r, X[t]) for T independent rows (a batch of decode steps of several conversations): each
/// token's result is bit-equal to `lfm_matvec` on it alone, while the weights are read once — rows are taken in
/// blocks small enough to stay in cache and every token's matrix-vector product runs over a block before the next.
/// Arguments as `lfm_matmul`.
void lfm_matvec_batch(int type, const void *w, int cols, int r0, int r1, int T, const float *X, int ldx,
                      const int8_t *XQ, const float *XD, const int32_t *XS, int ldq, float *Y, int ldy);

/// One row of a (possibly quantized) table, as floats.
void lfm_row_to_f32(int type, const void *w, int cols, int row, float *out);

/// A persistent pool of worker threads; `run` calls fn(ctx, ith, nth) on every thread (the caller is ith 0)
/// and returns when all are done.
typedef struct lfm_pool lfm_pool;
lfm_pool *lfm_pool_create(int nthreads);
void lfm_pool_destroy(lfm_pool *p);
int lfm_pool_size(const lfm_pool *p);
void lfm_pool_run(lfm_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);
/// Runs fn(ctx, 0, 1) on the caller alone, in turn with the pool's other jobs (a job too small to split).
void lfm_pool_solo(lfm_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif
/// Read bandwidth probe: sums `n` floats (vectorized); used by benchmarks for the memory-bandwidth bound.
float lfm_sum_f32(const float *x, size_t n);
#ifdef __cplusplus
}
#endif

#endif

#ifdef __cplusplus
extern "C" {
#endif
/// Row and elementwise kernels, dispatched through the active tier.
void lfm_silu(float *x, size_t n);                                // x ← x·σ(x)
void lfm_glu(const float *a, const float *g, size_t n, float *y); // y ← a·σ(g)
void lfm_gelu_erf(float *x, size_t n);                            // x ← ½x(1 + erf(x/√2))
void lfm_relu(float *x, size_t n);
void lfm_elu(const float *x, float *y, size_t n); // y ← x > 0 ? x : expm1(x)
void lfm_layernorm(const float *x, const float *w, const float *b, int n, float eps, float *y);
void lfm_softmax(float *x, int n);                                            // in place, over n
void lfm_rmsnorm(const float *x, const float *w, int n, float eps, float *y); // y = w ⊙ x / √(mean(x²) + eps)
void lfm_axpy(float a, const float *x, float *y, size_t n);                   // y ← y + a·x
float lfm_dot_f32(const float *a, const float *b, size_t n);
/// One query against n keys/values (rows `ld` floats apart): out = softmax(q·Kᵀ·scale)·V; `scores` holds n floats.
void lfm_attend(const float *q, int hd, const float *K, const float *V, int ld, int n, float scale, float *scores,
                float *out);
#ifdef __cplusplus
}
#endif
