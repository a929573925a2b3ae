/* A model's hyper-parameters, read from a Hugging Face config.json. */
#ifndef AGENTLORA_CONFIG_H
#define AGENTLORA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/dtype.h"

struct cJSON;

enum al_arch {
    AL_ARCH_LLAMA = 0,   /* LlamaForCausalLM (Llama 2/3.x, SmolLM2) */
    AL_ARCH_QWEN2,       /* Qwen2ForCausalLM: biases on q, k and v */
    AL_ARCH_MISTRAL,     /* MistralForCausalLM */
    AL_ARCH_QWEN3,       /* Qwen3ForCausalLM: RMSNorm of q and k per head, no biases */
};

#define AL_MAX_EOS_IDS 8
/* No real model comes near this; a larger num_hidden_layers is a corrupt file. */
#define AL_MAX_LAYERS 4096

struct al_model_config {
    enum al_arch arch;
    char architecture[64];   /* as written in "architectures" */
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;            /* from the file, or hidden_size / num_attention_heads */
    int vocab_size;
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    bool rope_llama3;        /* rope_scaling.rope_type == "llama3" */
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int rope_original_max_position;
    bool tie_word_embeddings;
    bool attention_qkv_bias; /* Qwen2 */
    bool qk_norm;            /* Qwen3: q_norm and k_norm (RMSNorm over head_dim) before RoPE */
    /* The sliding window of the layers that attend within one (a token sees itself and the
     * window - 1 tokens before it), 0 when no layer does; which layers do is
     * layer_sliding[] (transformers' layer_types). Read through al_model_config_layer_window. */
    int sliding_window;
    bool layer_sliding[AL_MAX_LAYERS];
    int bos_token_id;        /* -1 when absent */
    int eos_token_ids[AL_MAX_EOS_IDS];
    int num_eos_token_ids;
    enum al_dtype torch_dtype; /* the dtype the checkpoint declares (F32 when absent) */
};

/* Reads DIR/config.json. Errors name the file, the field and the offending value. */
int al_model_config_load(struct al_model_config *config, const char *model_dir);
/* The same from parsed JSON; source names the origin in error messages. */
int al_model_config_parse(struct al_model_config *config, const struct cJSON *json, const char *source);

const char *al_arch_name(enum al_arch arch);

/* The sliding window of one layer's attention, 0 for full (causal) attention. */
int al_model_config_layer_window(const struct al_model_config *config, int layer);

/* Parameters of the base model (embeddings, every block, final norm, lm_head unless tied). */
int64_t al_model_config_parameter_count(const struct al_model_config *config);

#endif
