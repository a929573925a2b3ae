/* A Hugging Face model folder, validated: config.json plus every tensor the architecture
 * needs, with names, dtypes and shapes checked against the config. Loading for training,
 * `agentlora inspect` and `agentlora logits` all go through this one validation. */
#ifndef AGENTLORA_MODEL_FILES_H
#define AGENTLORA_MODEL_FILES_H

#include "agentlora/config.h"
#include "agentlora/safetensors.h"

struct al_layer_tensors {
    const struct al_tensor_view *input_layernorm;          /* [hidden] */
    const struct al_tensor_view *q_proj, *k_proj, *v_proj; /* [heads*head_dim, hidden], [kv*head_dim, hidden] x2 */
    const struct al_tensor_view *q_bias, *k_bias, *v_bias; /* Qwen2 only, else NULL */
    const struct al_tensor_view *q_norm, *k_norm;          /* [head_dim], Qwen3 only, else NULL */
    const struct al_tensor_view *o_proj;                   /* [hidden, heads*head_dim] */
    const struct al_tensor_view *post_attention_layernorm; /* [hidden] */
    const struct al_tensor_view *gate_proj, *up_proj;      /* [intermediate, hidden] */
    const struct al_tensor_view *down_proj;                /* [hidden, intermediate] */
};

struct al_model_files {
    struct al_model_config config;
    struct al_tensor_store *store;
    const struct al_tensor_view *embed_tokens; /* [vocab, hidden] */
    const struct al_tensor_view *final_norm;   /* [hidden] */
    const struct al_tensor_view *lm_head;      /* [vocab, hidden]; NULL when tied to embed_tokens */
    struct al_layer_tensors *layers;           /* num_hidden_layers entries */
    enum al_dtype dtype;                       /* the weights' dtype (all must agree) */
};

/* Opens DIR: config.json, then the tensor store; checks every expected tensor is present
 * with a float dtype (F32/F16/BF16) and the shape the config implies, and that no
 * unexpected tensor is present (rotary inv_freq buffers excepted). Errors name the file
 * and the tensor. */
int al_model_files_open(struct al_model_files *files, const char *model_dir);
void al_model_files_close(struct al_model_files *files);

/* One tensor by its Hugging Face name, before a folder is written (the GGUF converter):
 * fails, naming source, when the config has no such tensor or implies another shape.
 * The rules are the ones al_model_files_open applies. */
int al_model_tensor_check(const struct al_model_config *c, const char *name, int ndim, const int64_t *shape,
                          const char *source);

#endif
