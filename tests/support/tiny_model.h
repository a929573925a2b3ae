/* Tiny random model folders for tests: config.json plus model.safetensors (or shards with
 * model.safetensors.index.json), in exactly the layout Hugging Face writes, so that the
 * same folder goes through al_model_files_open like a real checkpoint.
 *
 *     struct tiny_model_spec spec = tiny_model_default_spec();
 *     spec.arch = AL_ARCH_QWEN2;
 *     spec.dtype = AL_DTYPE_BF16;
 *     char *dir = test_tmpdir();
 *     cr_assert_eq(tiny_model_write(&spec, dir), 0, "%s", al_error_message());
 *
 * Weights are deterministic in the seed: the same spec always gives the same bytes, and
 * each tensor draws from its own random stream, so an edit to one tensor (see
 * tiny_model_edits) leaves every other tensor's values unchanged. */
#ifndef AGENTLORA_TEST_TINY_MODEL_H
#define AGENTLORA_TEST_TINY_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/config.h"
#include "agentlora/dtype.h"
#include "agentlora/safetensors.h"

struct tiny_model_spec {
    enum al_arch arch;           /* Qwen2 adds q/k/v biases */
    int hidden_size;
    int intermediate_size;
    int num_layers;
    int num_heads;
    int num_kv_heads;
    int head_dim;                /* 0: hidden_size / num_heads, and config.json leaves it out */
    int vocab_size;
    int max_position_embeddings; /* 0: 256 */
    bool tied;                   /* tie_word_embeddings: no lm_head.weight is written */
    enum al_dtype dtype;         /* F32, F16 or BF16; also written as torch_dtype */
    uint64_t seed;
    bool rope_llama3;            /* rope_scaling llama3: factor 8, low 1, high 4, original 64 */
    double rope_theta;           /* 0: 10000 */
    double rms_norm_eps;         /* 0: 1e-5 */
    int shards;                  /* 0 or 1: model.safetensors; n > 1: n shards and an index */
};

/* A small Llama: hidden 64, intermediate 128, 2 layers, 4 heads, 2 kv heads (head_dim 16),
 * vocab 128, untied, F32, seed 1, one file. Tests change the fields they care about. */
struct tiny_model_spec tiny_model_default_spec(void);

/* Ways to break a folder on purpose, for validation tests. Names are full tensor names
 * ("model.layers.0.self_attn.k_proj.weight"); NULL fields do nothing. */
struct tiny_model_edits {
    const char *omit;            /* leave this tensor out */
    const char *extra;           /* add a tensor of this name: shape [hidden], the weights' dtype */
    const char *reshape;         /* write this tensor with reshape_to instead of its proper shape */
    int reshape_ndim;
    int64_t reshape_to[AL_MAX_DIMS];
    const char *retype;          /* write this tensor's elements (all zero) as retype_to */
    enum al_dtype retype_to;
};

/* Writes DIR/config.json and the weights. DIR must exist. Returns 0, or -1 with the
 * reason recorded (al_error_message). */
int tiny_model_write(const struct tiny_model_spec *spec, const char *dir);
/* The same, with edits applied to the weights (config.json stays faithful to the spec). */
int tiny_model_write_edited(const struct tiny_model_spec *spec, const struct tiny_model_edits *edits,
                            const char *dir);

/* config.json text for a spec (caller frees), e.g. to write a variant by hand. */
char *tiny_model_config_json(const struct tiny_model_spec *spec);

/* How many tensors (weights and biases) the spec's folder holds. */
int tiny_model_tensor_count(const struct tiny_model_spec *spec);

/* The values tensor `name` was drawn with, in fp32 before rounding to spec->dtype: a
 * malloc'd array of *count floats, or NULL when the spec has no such tensor. */
float *tiny_model_tensor_values(const struct tiny_model_spec *spec, const char *name, int64_t *count);

#endif
