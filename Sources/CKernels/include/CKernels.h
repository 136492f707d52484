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

#ifdef __cplusplus
}
#endif
#endif
