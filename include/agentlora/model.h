/* The Llama-family transformer with LoRA, written once over the backend op interface:
 * loading, forward, backward (LoRA gradients only; the base model is frozen), logits. */
#ifndef AGENTLORA_MODEL_H
#define AGENTLORA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/config.h"
#include "agentlora/lora.h"

struct al_backend;
struct al_model;
struct al_workspace;

/* Host arrays describing n tokens: the rows of a batch flattened into one axis.
 * targets[i] is the token to predict at position i, or -1 for none; positions restart at
 * 0 for each document; doc_start[i] is the index of the first token of i's document. */
struct al_batch {
    int64_t num_tokens;
    const int32_t *input_ids;
    const int32_t *targets;
    const int32_t *positions;
    const int32_t *doc_start;
};

/* Validates the folder (al_model_files_open) and uploads the weights to the backend in
 * its weight dtype. The backend must outlive the model. */
struct al_model *al_model_load(const char *model_dir, struct al_backend *backend);
void al_model_free(struct al_model *model);
const struct al_model_config *al_model_get_config(const struct al_model *model);
struct al_backend *al_model_get_backend(const struct al_model *model);

/* Activation memory for batches of up to max_tokens tokens. With gradient checkpointing
 * only each block's input is kept and the block is recomputed during backward. */
struct al_workspace *al_workspace_create(const struct al_model *model, const struct al_lora *lora,
                                         int64_t max_tokens, bool gradient_checkpointing);
void al_workspace_free(struct al_workspace *workspace);

/* Checks ids against the vocabulary, positions and document starts for consistency. */
int al_batch_validate(const struct al_batch *batch, const struct al_model_config *config);
/* Number of tokens with a target. */
int64_t al_batch_count_targets(const struct al_batch *batch);

/* Forward and backward in training mode (LoRA dropout on, masks drawn from
 * dropout_seed). Sets *loss_sum to the sum of -log p(target) over the batch's targets and
 * ACCUMULATES grad_scale * d(loss_sum)/d(param) into lora->grads. For exact gradient
 * accumulation pass grad_scale = 1 / (targets in the whole accumulated batch).
 * lora may be NULL (then only the loss is computed). */
int al_model_forward_backward(struct al_model *model, struct al_lora *lora, struct al_workspace *workspace,
                              const struct al_batch *batch, float grad_scale, uint64_t dropout_seed,
                              double *loss_sum);

/* Forward only, evaluation mode (no dropout): the loss sum over targets. */
int al_model_loss(struct al_model *model, const struct al_lora *lora, struct al_workspace *workspace,
                  const struct al_batch *batch, double *loss_sum);

/* Forward only, evaluation mode: logits for every token into host memory
 * [num_tokens, vocab_size]. */
int al_model_logits(struct al_model *model, const struct al_lora *lora, struct al_workspace *workspace,
                    const struct al_batch *batch, float *logits);

/* RoPE inverse frequencies [head_dim / 2] for a config, llama3 scaling applied as
 * Hugging Face computes it. */
void al_rope_inverse_frequencies(const struct al_model_config *config, float *inv_freq);

#endif
