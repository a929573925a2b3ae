/* AdamW over the LoRA parameter block, with global-norm gradient clipping and a guard
 * against non-finite gradients.
 *
 * One step (al_optimizer_step):
 *   1. norm = sqrt(sum of squares of every gradient), on the backend;
 *   2. a non-finite norm (NaN or Inf anywhere in the gradients) skips the update: the
 *      parameters and moments are left untouched, the skip is counted, and the report says
 *      how many steps in a row were skipped so the loop can stop after a configured number;
 *   3. clip scale = min(1, max_grad_norm / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_
 *      (no clipping when max_grad_norm <= 0);
 *   4. backend adamw over the whole block with the gradient multiplied by the clip scale.
 * The gradients are not zeroed here: the loop zeroes them before the next accumulation. */
#ifndef AGENTLORA_OPTIMIZER_H
#define AGENTLORA_OPTIMIZER_H

#include <stdbool.h>
#include <stdint.h>

struct al_backend;
struct al_lora;

struct al_adamw_config {
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    float max_grad_norm; /* <= 0 disables clipping */
};

/* The defaults of torch.optim.AdamW and the usual LoRA clip: 0.9, 0.999, 1e-8, 0, 1.0. */
struct al_adamw_config al_adamw_defaults(void);

struct al_optimizer {
    struct al_adamw_config config;
    struct al_backend *backend;
    int64_t num_params;
    float *m;                       /* backend F32 [num_params]: first moments */
    float *v;                       /* backend F32 [num_params]: second moments */
    float *norm_scratch;            /* backend F32 [1]: sum_squares accumulates into it */
    int64_t updates;                /* updates applied so far (AdamW's t of the last one) */
    int64_t nonfinite_total;        /* steps skipped for a non-finite gradient, ever */
    int64_t nonfinite_consecutive;  /* ... in a row, up to now */
};

struct al_step_report {
    double grad_norm;      /* before clipping; NaN or Inf when the step was skipped */
    float clip_scale;      /* the factor applied to the gradients (1 = no clipping) */
    bool skipped;          /* non-finite gradient: nothing was updated */
    int64_t consecutive_nonfinite;
    float lr;
};

/* Zeroed moments on the backend for num_params parameters. */
struct al_optimizer *al_optimizer_create(struct al_backend *backend, int64_t num_params,
                                         const struct al_adamw_config *config);
void al_optimizer_free(struct al_optimizer *optimizer);

/* The global L2 norm of lora->grads. */
int al_optimizer_grad_norm(struct al_optimizer *optimizer, const struct al_lora *lora, double *norm);

/* One guarded, clipped AdamW update of lora->params with learning rate lr. */
int al_optimizer_step(struct al_optimizer *optimizer, struct al_lora *lora, float lr,
                      struct al_step_report *report);

/* Host copies of the moments (for checkpoints): m and v hold num_params floats each. */
int al_optimizer_download_state(const struct al_optimizer *optimizer, float *m, float *v);
/* Restores the moments and the counters saved with them. */
int al_optimizer_upload_state(struct al_optimizer *optimizer, const float *m, const float *v, int64_t updates,
                              int64_t nonfinite_total, int64_t nonfinite_consecutive);

#endif
