/* Element types of tensors in files and on backends, and conversions between them. */
#ifndef AGENTLORA_DTYPE_H
#define AGENTLORA_DTYPE_H

#include <stddef.h>
#include <stdint.h>

enum al_dtype {
    AL_DTYPE_F32 = 0,
    AL_DTYPE_F16,
    AL_DTYPE_BF16,
    /* Types a safetensors file may hold that the engine reads past but never computes with. */
    AL_DTYPE_F64,
    AL_DTYPE_I64,
    AL_DTYPE_I32,
    AL_DTYPE_I16,
    AL_DTYPE_I8,
    AL_DTYPE_U8,
    AL_DTYPE_BOOL,
    AL_DTYPE_F8_E4M3,
    AL_DTYPE_F8_E5M2,
    AL_DTYPE_COUNT
};

/* Bytes per element. */
size_t al_dtype_size(enum al_dtype dtype);
/* The safetensors spelling: "F32", "BF16", ... */
const char *al_dtype_name(enum al_dtype dtype);
/* Parses a safetensors dtype string; returns -1 (no error recorded) when unknown. */
int al_dtype_parse(const char *name, enum al_dtype *out);
/* True for F32, F16 and BF16: the types model weights may be stored in. */
int al_dtype_is_float(enum al_dtype dtype);

float al_bf16_to_f32(uint16_t h);
uint16_t al_f32_to_bf16(float f); /* round to nearest even, NaN preserved */
float al_f16_to_f32(uint16_t h);
uint16_t al_f32_to_f16(float f); /* round to nearest even */

/* Converts n elements between float types (F32, F16, BF16). src and dst must not overlap. */
void al_convert(void *dst, enum al_dtype dst_dtype, const void *src, enum al_dtype src_dtype, int64_t n);

#endif
