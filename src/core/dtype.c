/* Element types and the float conversions between F32, F16 and BF16. */
#include "agentlora/dtype.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_table[AL_DTYPE_COUNT] = {
    [AL_DTYPE_F32] = {"F32", 4},   [AL_DTYPE_F16] = {"F16", 2},         [AL_DTYPE_BF16] = {"BF16", 2},
    [AL_DTYPE_F64] = {"F64", 8},   [AL_DTYPE_I64] = {"I64", 8},         [AL_DTYPE_I32] = {"I32", 4},
    [AL_DTYPE_I16] = {"I16", 2},   [AL_DTYPE_I8] = {"I8", 1},           [AL_DTYPE_U8] = {"U8", 1},
    [AL_DTYPE_BOOL] = {"BOOL", 1}, [AL_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [AL_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t al_dtype_size(enum al_dtype dtype)
{
    return (unsigned)dtype < AL_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

const char *al_dtype_name(enum al_dtype dtype)
{
    return (unsigned)dtype < AL_DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

int al_dtype_parse(const char *name, enum al_dtype *out)
{
    for (int i = 0; i < AL_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (enum al_dtype)i;
            return 0;
        }
    }
    return -1;
}

int al_dtype_is_float(enum al_dtype dtype)
{
    return dtype == AL_DTYPE_F32 || dtype == AL_DTYPE_F16 || dtype == AL_DTYPE_BF16;
}

static uint32_t float_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static float bits_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float al_bf16_to_f32(uint16_t h)
{
    return bits_float((uint32_t)h << 16);
}

uint16_t al_f32_to_bf16(float f)
{
    uint32_t bits = float_bits(f);
    if (isnan(f))
        return (uint16_t)((bits >> 16) | 0x40); /* keep it a (quiet) NaN */
    uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
    return (uint16_t)((bits + rounding) >> 16);
}

float al_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    if (exponent == 0x1f)
        return bits_float(sign | 0x7f800000 | (mantissa << 13));
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24 */
        float value = ldexpf((float)mantissa, -24);
        return sign ? -value : value;
    }
    return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t al_f32_to_f16(float f)
{
    uint32_t bits = float_bits(f);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    float magnitude = fabsf(f);
    if (isnan(f))
        return sign | 0x7e00;
    if (magnitude >= 65520.0f) /* rounds to infinity */
        return sign | 0x7c00;
    if (magnitude < 6.103515625e-05f) {
        /* subnormal: units of 2^-24, rounded to nearest even by rintf */
        return sign | (uint16_t)rintf(magnitude * 16777216.0f);
    }
    uint32_t abs_bits = bits & 0x7fffffff;
    uint32_t rounding = 0xfff + ((abs_bits >> 13) & 1);
    abs_bits += rounding;
    return sign | (uint16_t)(((abs_bits >> 23) - 112) << 10 | ((abs_bits >> 13) & 0x3ff));
}

static float load_float(const void *src, enum al_dtype dtype, int64_t i)
{
    switch (dtype) {
    case AL_DTYPE_F16:
        return al_f16_to_f32(((const uint16_t *)src)[i]);
    case AL_DTYPE_BF16:
        return al_bf16_to_f32(((const uint16_t *)src)[i]);
    default:
        return ((const float *)src)[i];
    }
}

static void store_float(void *dst, enum al_dtype dtype, int64_t i, float value)
{
    switch (dtype) {
    case AL_DTYPE_F16:
        ((uint16_t *)dst)[i] = al_f32_to_f16(value);
        break;
    case AL_DTYPE_BF16:
        ((uint16_t *)dst)[i] = al_f32_to_bf16(value);
        break;
    default:
        ((float *)dst)[i] = value;
        break;
    }
}

void al_convert(void *dst, enum al_dtype dst_dtype, const void *src, enum al_dtype src_dtype, int64_t n)
{
    if (dst_dtype == src_dtype) {
        memcpy(dst, src, (size_t)n * al_dtype_size(dst_dtype));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        store_float(dst, dst_dtype, i, load_float(src, src_dtype, i));
}
