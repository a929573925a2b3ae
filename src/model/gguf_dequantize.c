/* ggml tensor types: names, block layouts, and dequantisation to F32 of the types Llama
 * GGUF files use. Block layouts are those of the GGML specification; every scale is an
 * IEEE half. Values are computed in the order ggml's reference dequantiser computes them
 * (scale products first, in float) so results match it bit for bit. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "model/gguf_internal.h"

/* Values per block of the simple quantisations, and of the "K" super-blocks. */
enum { QK = 32, QK_K = 256 };
enum { K_SCALE_BYTES = 12 }; /* Q4_K: 8 six-bit scales and 8 six-bit mins, packed */

struct type_info {
    int type;
    const char *name;
    struct al_ggml_layout layout;
    bool supported;
};

/* Every type whose layout is known, so that files holding others still open (and their
 * tensors are sized); `supported` marks the ones al_gguf_dequantize handles. */
static const struct type_info TYPES[] = {
    {AL_GGML_F32, "F32", {1, 4}, true},
    {AL_GGML_F16, "F16", {1, 2}, true},
    {AL_GGML_Q4_0, "Q4_0", {QK, 2 + QK / 2}, true},
    {AL_GGML_Q4_1, "Q4_1", {QK, 2 + 2 + QK / 2}, true},
    {6, "Q5_0", {QK, 2 + 4 + QK / 2}, false},
    {7, "Q5_1", {QK, 2 + 2 + 4 + QK / 2}, false},
    {AL_GGML_Q8_0, "Q8_0", {QK, 2 + QK}, true},
    {9, "Q8_1", {QK, 4 + QK}, false},
    {10, "Q2_K", {QK_K, QK_K / 16 + QK_K / 4 + 2 + 2}, false},
    {11, "Q3_K", {QK_K, QK_K / 8 + QK_K / 4 + 12 + 2}, false},
    {AL_GGML_Q4_K, "Q4_K", {QK_K, 2 + 2 + K_SCALE_BYTES + QK_K / 2}, true},
    {13, "Q5_K", {QK_K, 2 + 2 + K_SCALE_BYTES + QK_K / 8 + QK_K / 2}, false},
    {AL_GGML_Q6_K, "Q6_K", {QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2}, true},
    {15, "Q8_K", {QK_K, 4 + QK_K + QK_K / 16 * 2}, false},
    {24, "I8", {1, 1}, false},
    {25, "I16", {1, 2}, false},
    {26, "I32", {1, 4}, false},
    {27, "I64", {1, 8}, false},
    {28, "F64", {1, 8}, false},
    {AL_GGML_BF16, "BF16", {1, 2}, true},
};

static const struct type_info *type_info(enum al_ggml_type type)
{
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++)
        if (TYPES[k].type == (int)type)
            return &TYPES[k];
    return NULL;
}

bool al_ggml_layout_of(enum al_ggml_type type, struct al_ggml_layout *out)
{
    const struct type_info *info = type_info(type);
    if (info)
        *out = info->layout;
    return info != NULL;
}

const char *al_ggml_type_name(enum al_ggml_type type)
{
    const struct type_info *info = type_info(type);
    return info ? info->name : "unknown";
}

bool al_ggml_type_supported(enum al_ggml_type type)
{
    const struct type_info *info = type_info(type);
    return info && info->supported;
}

static float half_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return al_f16_to_f32(h);
}

/* Q8_0: half d, 32 signed bytes; x = d * q. */
static void dequantize_q8_0(const uint8_t *block, float *y)
{
    float d = half_at(block);
    const int8_t *q = (const int8_t *)(block + 2);
    for (int j = 0; j < QK; j++)
        y[j] = (float)q[j] * d;
}

/* Q4_0: half d, 16 bytes of nibbles; low nibbles are values 0..15, high nibbles 16..31;
 * x = d * (q - 8). */
static void dequantize_q4_0(const uint8_t *block, float *y)
{
    float d = half_at(block);
    const uint8_t *q = block + 2;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)((q[j] & 0x0F) - 8) * d;
        y[j + QK / 2] = (float)((q[j] >> 4) - 8) * d;
    }
}

/* Q4_1: half d, half m, nibbles as Q4_0; x = d * q + m. */
static void dequantize_q4_1(const uint8_t *block, float *y)
{
    float d = half_at(block), m = half_at(block + 2);
    const uint8_t *q = block + 4;
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (float)(q[j] & 0x0F) * d + m;
        y[j + QK / 2] = (float)(q[j] >> 4) * d + m;
    }
}

/* Q4_K's packed six-bit scale and min of sub-block j (of 8): the first four sit in the
 * low six bits of bytes 0..3 (scales) and 4..7 (mins); the last four take their low four
 * bits from bytes 8..11 and their top two from the spare high bits of bytes 0..7. */
static void q4_k_scale_min(int j, const uint8_t *s, uint8_t *scale, uint8_t *min)
{
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *min = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q4_K: half d, half dmin, 12 bytes of scales/mins, 128 bytes of nibbles. Each 64 values
 * use 32 bytes: low nibbles for the first 32 (sub-block 2i), high for the next (2i+1);
 * x = d * scale * q - dmin * min. */
static void dequantize_q4_k(const uint8_t *block, float *y)
{
    float d = half_at(block), dmin = half_at(block + 2);
    const uint8_t *scales = block + 4;
    const uint8_t *q = block + 4 + K_SCALE_BYTES;
    for (int sub = 0; sub < 8; sub += 2, q += 32, y += 64) {
        uint8_t sc, m;
        q4_k_scale_min(sub, scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        q4_k_scale_min(sub + 1, scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) {
            y[l] = d1 * (float)(q[l] & 0x0F) - m1;
            y[l + 32] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q6_K: 128 bytes of low nibbles (ql), 64 bytes of high two-bit pairs (qh), 16 signed
 * scales, half d. Each half of 128 values uses 64 bytes of ql and 32 of qh: value l+32k
 * (k = 0..3) takes its low four bits from ql[l] / ql[l+32] (low then high nibble) and its
 * top two from bits 2k..2k+1 of qh[l]; scales cover 16 values; x = d * scale * (q - 32). */
static void dequantize_q6_k(const uint8_t *block, float *y)
{
    const uint8_t *ql = block;
    const uint8_t *qh = block + QK_K / 2;
    const int8_t *sc = (const int8_t *)(block + QK_K / 2 + QK_K / 4);
    float d = half_at(block + QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, y += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = (int)((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
    }
}

typedef void (*block_dequantizer)(const uint8_t *block, float *y);

static block_dequantizer block_dequantizer_of(enum al_ggml_type type)
{
    switch (type) {
    case AL_GGML_Q8_0: return dequantize_q8_0;
    case AL_GGML_Q4_0: return dequantize_q4_0;
    case AL_GGML_Q4_1: return dequantize_q4_1;
    case AL_GGML_Q4_K: return dequantize_q4_k;
    case AL_GGML_Q6_K: return dequantize_q6_k;
    default: return NULL;
    }
}

int al_gguf_dequantize(const struct al_gguf_tensor *t, float *out)
{
    if (!al_ggml_type_supported(t->type))
        return al_fail("%s: tensor %s has ggml type %s (%d), which cannot be read (supported: F32, F16, BF16, "
                       "Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)", t->file, t->name, al_ggml_type_name(t->type), (int)t->type);
    switch (t->type) {
    case AL_GGML_F32:
        memcpy(out, t->data, (size_t)t->count * sizeof(float));
        return 0;
    case AL_GGML_F16:
        al_convert(out, AL_DTYPE_F32, t->data, AL_DTYPE_F16, t->count);
        return 0;
    case AL_GGML_BF16:
        al_convert(out, AL_DTYPE_F32, t->data, AL_DTYPE_BF16, t->count);
        return 0;
    default:
        break;
    }
    struct al_ggml_layout layout;
    al_ggml_layout_of(t->type, &layout);
    block_dequantizer dequantize_block = block_dequantizer_of(t->type);
    int64_t blocks = t->count / layout.block_values;
    const uint8_t *data = t->data;
#pragma omp parallel for schedule(static) if (blocks > 4096)
    for (int64_t b = 0; b < blocks; b++)
        dequantize_block(data + b * layout.block_bytes, out + b * layout.block_values);
    return 0;
}
