/* LoRA adapters: configuration, parameters on a backend, PEFT initialisation, and the
 * PEFT on-disk format (adapter_config.json + adapter_model.safetensors).
 *
 * All parameters live in one contiguous F32 block on the backend (and their gradients in
 * another) so the optimizer and gradient clipping run over a single array. Order: for
 * each layer, for each targeted module in the order q, k, v, o, gate, up, down: A then B. */
#ifndef AGENTLORA_LORA_H
#define AGENTLORA_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/config.h"

struct al_backend;

enum al_lora_target {
    AL_LORA_Q = 0,
    AL_LORA_K,
    AL_LORA_V,
    AL_LORA_O,
    AL_LORA_GATE,
    AL_LORA_UP,
    AL_LORA_DOWN,
    AL_LORA_TARGET_COUNT
};

#define AL_LORA_ALL_TARGETS ((1u << AL_LORA_TARGET_COUNT) - 1u)

struct al_lora_config {
    int rank;
    float alpha;
    float dropout;
    bool use_rslora;
    unsigned target_mask; /* bit t set: target t is adapted */
};

/* Where one adapted linear's A [rank, in] and B [out, rank] sit in the parameter block. */
struct al_lora_slot {
    bool present;
    int in, out;
    int64_t a_offset, b_offset; /* element offsets into params / grads */
};

struct al_lora {
    struct al_lora_config config;
    struct al_backend *backend;
    int num_layers;
    int64_t num_params;
    float *params; /* backend memory */
    float *grads;  /* backend memory, accumulated by backward */
    struct al_lora_slot (*slots)[AL_LORA_TARGET_COUNT]; /* [num_layers] */
};

/* "q_proj", "k_proj", ..., "down_proj". */
const char *al_lora_target_name(enum al_lora_target target);
/* "self_attn" or "mlp": the Hugging Face module holding the target. */
const char *al_lora_target_parent(enum al_lora_target target);
/* Parses a module name ("q_proj") into a target; -1 with an error when unknown. */
int al_lora_target_parse(const char *name, enum al_lora_target *target);
/* Parses "q_proj,k_proj,..." or "all" into a mask. */
int al_lora_targets_parse(const char *list, unsigned *mask);

/* alpha / rank, or alpha / sqrt(rank) with rsLoRA (as PEFT). */
float al_lora_scale(const struct al_lora_config *config);
/* Checks rank > 0, alpha > 0, 0 <= dropout < 1, a non-empty target mask. */
int al_lora_config_validate(const struct al_lora_config *config);

/* The in/out features of a target's linear under a model config. */
void al_lora_target_shape(const struct al_model_config *model, enum al_lora_target target, int *in, int *out);

/* New parameters initialised as PEFT does: A kaiming-uniform with a = sqrt(5), i.e.
 * uniform in +-1/sqrt(in), drawn from a PCG32 seeded with seed; B = 0. */
struct al_lora *al_lora_create(const struct al_model_config *model, struct al_backend *backend,
                               const struct al_lora_config *config, uint64_t seed);
void al_lora_free(struct al_lora *lora);

int al_lora_zero_grads(struct al_lora *lora);
/* Copies all parameters (or gradients) to/from a host array of num_params floats. */
int al_lora_download_params(const struct al_lora *lora, float *host);
int al_lora_download_grads(const struct al_lora *lora, float *host);
int al_lora_upload_params(struct al_lora *lora, const float *host);

/* The PEFT tensor key of a slot's A or B:
 * base_model.model.model.layers.{i}.{self_attn|mlp}.{q_proj|...}.lora_{A|B}.weight */
void al_lora_key(char *out, int out_size, int layer, enum al_lora_target target, bool is_b);

/* Loads a PEFT LoRA adapter folder; the adapter must match the model (shapes, layers).
 * Unsupported PEFT features (rank_pattern, alpha_pattern, fan_in_fan_out, DoRA, biases,
 * modules we cannot adapt) are errors naming the field. */
struct al_lora *al_lora_load_peft(const struct al_model_config *model, struct al_backend *backend,
                                  const char *adapter_dir);
/* Writes adapter_config.json and adapter_model.safetensors (F32) into dir (created). */
int al_lora_save_peft(const struct al_lora *lora, const char *adapter_dir, const char *base_model_name);

#endif
