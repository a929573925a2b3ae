/* GGUF files (llama.cpp's single-file model format): metadata, tensors, dequantisation,
 * and the mapping of a Llama GGUF onto this engine's Hugging Face conventions.
 *
 * Format (little-endian): magic "GGUF", u32 version (2 or 3), u64 tensor count, u64
 * metadata count; then the metadata (string key, u32 value type, value), the tensor infos
 * (string name, u32 dim count, u64 dims fastest-first, u32 ggml type, u64 offset), padding
 * to the alignment (general.alignment, default 32), and the data section, to which the
 * tensor offsets are relative. Strings are u64 length + bytes (no NUL). Arrays are u32
 * element type, u64 count, elements.
 *
 *     struct al_gguf *g = al_gguf_open("model.gguf");
 *     const struct al_gguf_tensor *t = al_gguf_find_tensor(g, "token_embd.weight");
 *     float *x = malloc(t->count * sizeof *x);
 *     al_gguf_dequantize(t, x);
 */
#ifndef AGENTLORA_GGUF_H
#define AGENTLORA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentlora/config.h"

/* Metadata value types (the numbering is the file format's). */
enum al_gguf_value_type {
    AL_GGUF_UINT8 = 0,
    AL_GGUF_INT8 = 1,
    AL_GGUF_UINT16 = 2,
    AL_GGUF_INT16 = 3,
    AL_GGUF_UINT32 = 4,
    AL_GGUF_INT32 = 5,
    AL_GGUF_FLOAT32 = 6,
    AL_GGUF_BOOL = 7,
    AL_GGUF_STRING = 8,
    AL_GGUF_ARRAY = 9,
    AL_GGUF_UINT64 = 10,
    AL_GGUF_INT64 = 11,
    AL_GGUF_FLOAT64 = 12,
    AL_GGUF_VALUE_TYPE_COUNT
};

/* Tensor element types (ggml's numbering; only these are dequantised, any other type is
 * an error naming it and the tensor). */
enum al_ggml_type {
    AL_GGML_F32 = 0,
    AL_GGML_F16 = 1,
    AL_GGML_Q4_0 = 2,
    AL_GGML_Q4_1 = 3,
    AL_GGML_Q8_0 = 8,
    AL_GGML_Q4_K = 12,
    AL_GGML_Q6_K = 14,
    AL_GGML_BF16 = 30,
};

/* The most dimensions a ggml tensor has. */
#define AL_GGUF_MAX_DIMS 4
/* Data alignment when general.alignment is absent (the format's default). */
#define AL_GGUF_DEFAULT_ALIGNMENT 32

struct al_gguf_value {
    enum al_gguf_value_type type;
    /* Scalars: integers in both u and i (as read, sign-extended for signed types), floats
     * in f, bools in u (0 or 1). Integers are also copied to f so a reader asking for a
     * float accepts either. */
    uint64_t u;
    int64_t i;
    double f;
    /* STRING: a NUL-terminated copy (a string holding a NUL is an error). */
    const char *str;
    /* ARRAY: element type and count; numeric elements stay in the file (little-endian,
     * unaligned: read them with al_gguf_array_*); string elements are NUL-terminated
     * copies. Arrays of arrays are rejected at open. */
    enum al_gguf_value_type elem_type;
    uint64_t count;
    const uint8_t *elems;
    const char *const *strings;
};

struct al_gguf_kv {
    const char *key;
    struct al_gguf_value value;
};

struct al_gguf_tensor {
    const char *name;
    enum al_ggml_type type;
    int ndim;
    int64_t shape[AL_GGUF_MAX_DIMS]; /* row-major, slowest first: [out, in] for a matrix */
    int64_t count;
    uint64_t offset;                 /* in the data section, as the file says */
    const void *data;                /* inside the mapping */
    size_t nbytes;
    const char *file;                /* for error messages */
};

struct al_gguf;

/* Maps and validates a file: magic, version, counts against the file size, every
 * string, key and value inside the file, value and tensor types known, dimensions
 * positive and their product not overflowing, block-quantised rows a whole number of
 * blocks, offsets aligned and every tensor inside the data section, no duplicate keys or
 * tensor names. Tensors of types that cannot be dequantised open fine (their sizes are
 * checked when the type's layout is known); al_gguf_dequantize refuses them.
 * Errors name the file and the key or tensor. */
struct al_gguf *al_gguf_open(const char *path);
void al_gguf_close(struct al_gguf *gguf);

const char *al_gguf_path(const struct al_gguf *gguf);
uint32_t al_gguf_version(const struct al_gguf *gguf);
uint64_t al_gguf_alignment(const struct al_gguf *gguf);

int al_gguf_kv_count(const struct al_gguf *gguf);
const struct al_gguf_kv *al_gguf_kv(const struct al_gguf *gguf, int index);
/* The value of a key, or NULL (no error recorded). */
const struct al_gguf_value *al_gguf_find(const struct al_gguf *gguf, const char *key);

/* Typed reads of a key. They fail, naming the file and key, when the key is missing or
 * holds another type (any integer type is accepted for an integer, any number for a
 * float). The _or variants return the fallback when the key is missing. */
int al_gguf_get_int(const struct al_gguf *gguf, const char *key, int64_t *out);
int al_gguf_get_float(const struct al_gguf *gguf, const char *key, double *out);
int al_gguf_get_string(const struct al_gguf *gguf, const char *key, const char **out);
int al_gguf_get_int_or(const struct al_gguf *gguf, const char *key, int64_t fallback, int64_t *out);
int al_gguf_get_float_or(const struct al_gguf *gguf, const char *key, double fallback, double *out);
/* An array of the given element type (AL_GGUF_ARRAY is not a valid element type). */
int al_gguf_get_array(const struct al_gguf *gguf, const char *key, enum al_gguf_value_type elem_type,
                      const struct al_gguf_value **out);

/* Element i of a numeric array as an integer (integer and bool arrays) or a double
 * (any numeric array). i must be < count. */
int64_t al_gguf_array_int(const struct al_gguf_value *array, uint64_t i);
double al_gguf_array_float(const struct al_gguf_value *array, uint64_t i);

int al_gguf_tensor_count(const struct al_gguf *gguf);
const struct al_gguf_tensor *al_gguf_tensor(const struct al_gguf *gguf, int index);
/* The tensor of that name, or NULL (no error recorded). */
const struct al_gguf_tensor *al_gguf_find_tensor(const struct al_gguf *gguf, const char *name);

/* "Q4_K", "F16", ...; "type N" for types this file does not know the name of. */
const char *al_ggml_type_name(enum al_ggml_type type);
/* True for the types al_gguf_dequantize handles. */
bool al_ggml_type_supported(enum al_ggml_type type);

/* Writes the tensor's count values as F32 into out, in row-major order. Fails, naming
 * the type and the tensor, for any type al_ggml_type_supported refuses. */
int al_gguf_dequantize(const struct al_gguf_tensor *tensor, float *out);

/* ---- a Llama GGUF as a Hugging Face model ---- */

/* Hyper-parameters from the llama.* metadata (general.architecture must be "llama"),
 * the vocabulary size from tokenizer.ggml.tokens, tying from the absence of
 * output.weight, bos/eos from tokenizer.ggml.*_token_id. Errors name the file and key. */
int al_gguf_model_config(const struct al_gguf *gguf, struct al_model_config *out);

/* The Hugging Face name of a llama.cpp tensor name ("blk.3.attn_q.weight" ->
 * "model.layers.3.self_attn.q_proj.weight"), or -1 with an error for a name this engine
 * does not know. out has room for size bytes. */
int al_gguf_hf_tensor_name(const char *gguf_name, char *out, size_t size);

/* Dequantises a tensor into out (tensor->count floats) in Hugging Face layout: llama.cpp's
 * converter stores attn_q and attn_k with the two halves of every head's rows interleaved
 * (for its RoPE, which rotates adjacent pairs); this undoes it so that out is what the
 * Hugging Face checkpoint holds. */
int al_gguf_load_hf_tensor(const struct al_gguf_tensor *tensor, const struct al_model_config *config,
                           float *out);

/* ---- conversion to a Hugging Face model folder ---- */

/* Writes OUT_DIR/tokenizer.json (byte-level BPE: vocabulary, merges, control and
 * user-defined tokens as special and plain added tokens, the pre-tokenizer that
 * tokenizer.ggml.pre names) and OUT_DIR/tokenizer_config.json (bos/eos/pad/unk, the chat
 * template when present). Fails for tokenizers other than "gpt2" BPE and for unknown
 * pre-tokenizer names. */
int al_gguf_write_tokenizer(const struct al_gguf *gguf, const char *out_dir);

/* Converts a Llama GGUF into OUT_DIR (created when missing; it must not already hold a
 * model): config.json, model.safetensors (every tensor dequantised, un-permuted and
 * renamed, stored as dtype: F32, F16 or BF16), tokenizer.json, tokenizer_config.json. */
int al_gguf_convert(const char *gguf_path, const char *out_dir, enum al_dtype dtype);

/* True when path names a GGUF file (it starts with the magic "GGUF"). */
bool al_path_is_gguf(const char *path);

/* For commands given a GGUF file where a model folder is expected: the folder
 * "<gguf_path>.hf", converted (as al_gguf_convert with dtype) on first use and reused
 * afterwards while the file's size and modification time are those recorded in its
 * gguf_source.json (written last, so an interrupted conversion is never reused). A folder
 * converted from another version of the file, or with another dtype, is an error that
 * says to delete it. Returns the folder (the caller frees) or NULL. */
char *al_gguf_model_dir(const char *gguf_path, enum al_dtype dtype);

#endif
