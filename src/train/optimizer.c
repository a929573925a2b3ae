/* AdamW on the LoRA block with clipping and the non-finite guard (see optimizer.h). */
#include "agentlora/optimizer.h"

#include <math.h>
#include <stdlib.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "backend/backend.h"

/* torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing, so a zero
 * gradient never divides by zero. */
#define CLIP_NORM_EPSILON 1e-6f

struct al_adamw_config al_adamw_defaults(void)
{
    return (struct al_adamw_config){
        .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f, .max_grad_norm = 1.0f};
}

static int validate_config(const struct al_adamw_config *config)
{
    if (!(config->beta1 >= 0.0f && config->beta1 < 1.0f))
        return al_fail("adam_beta1 must be in [0, 1), got %g", config->beta1);
    if (!(config->beta2 >= 0.0f && config->beta2 < 1.0f))
        return al_fail("adam_beta2 must be in [0, 1), got %g", config->beta2);
    if (!(config->eps > 0.0f))
        return al_fail("adam_epsilon must be positive, got %g", config->eps);
    if (!(config->weight_decay >= 0.0f))
        return al_fail("weight_decay must not be negative, got %g", config->weight_decay);
    if (!isfinite(config->max_grad_norm))
        return al_fail("max_grad_norm must be finite, got %g", config->max_grad_norm);
    return 0;
}

struct al_optimizer *al_optimizer_create(struct al_backend *backend, int64_t num_params,
                                         const struct al_adamw_config *config)
{
    if (num_params <= 0)
        return al_fail_null("optimizer: no parameters to train (%lld)", (long long)num_params);
    if (validate_config(config) != 0)
        return NULL;
    struct al_optimizer *optimizer = calloc(1, sizeof *optimizer);
    if (!optimizer)
        return al_fail_null("out of memory");
    optimizer->config = *config;
    optimizer->backend = backend;
    optimizer->num_params = num_params;
    size_t bytes = (size_t)num_params * sizeof(float);
    optimizer->m = backend->ops->alloc(backend, bytes);
    optimizer->v = optimizer->m ? backend->ops->alloc(backend, bytes) : NULL;
    optimizer->norm_scratch = optimizer->v ? backend->ops->alloc(backend, sizeof(float)) : NULL;
    if (!optimizer->norm_scratch) {
        al_error_context("optimizer state for %lld parameters", (long long)num_params);
        al_optimizer_free(optimizer);
        return NULL;
    }
    return optimizer;
}

void al_optimizer_free(struct al_optimizer *optimizer)
{
    if (!optimizer)
        return;
    struct al_backend *backend = optimizer->backend;
    if (optimizer->m)
        backend->ops->free(backend, optimizer->m);
    if (optimizer->v)
        backend->ops->free(backend, optimizer->v);
    if (optimizer->norm_scratch)
        backend->ops->free(backend, optimizer->norm_scratch);
    free(optimizer);
}

static int check_matches(const struct al_optimizer *optimizer, const struct al_lora *lora)
{
    if (lora->num_params != optimizer->num_params)
        return al_fail("optimizer holds state for %lld parameters but the adapter has %lld",
                       (long long)optimizer->num_params, (long long)lora->num_params);
    if (lora->backend != optimizer->backend)
        return al_fail("optimizer and adapter live on different backends");
    return 0;
}

int al_optimizer_grad_norm(struct al_optimizer *optimizer, const struct al_lora *lora, double *norm)
{
    if (check_matches(optimizer, lora) != 0)
        return -1;
    struct al_backend *backend = optimizer->backend;
    float sum = 0.0f;
    if (backend->ops->zero(backend, optimizer->norm_scratch, sizeof(float)) != 0 ||
        backend->ops->sum_squares(backend, optimizer->norm_scratch, lora->grads, lora->num_params) != 0 ||
        backend->ops->copy_to_host(backend, &sum, optimizer->norm_scratch, sizeof(float)) != 0) {
        al_error_context("gradient norm");
        return -1;
    }
    *norm = sqrt((double)sum);
    return 0;
}

/* min(1, max_norm / (norm + 1e-6)) in float, as PyTorch computes it on a float tensor. */
static float clip_scale(float max_norm, double norm)
{
    if (max_norm <= 0.0f)
        return 1.0f;
    float coefficient = max_norm / ((float)norm + CLIP_NORM_EPSILON);
    return coefficient < 1.0f ? coefficient : 1.0f;
}

int al_optimizer_step(struct al_optimizer *optimizer, struct al_lora *lora, float lr,
                      struct al_step_report *report)
{
    struct al_step_report local = {0};
    if (!report)
        report = &local;
    *report = (struct al_step_report){.lr = lr, .clip_scale = 1.0f};
    if (!(lr >= 0.0f) || !isfinite(lr))
        return al_fail("optimizer: learning rate must be finite and non-negative, got %g", lr);
    if (al_optimizer_grad_norm(optimizer, lora, &report->grad_norm) != 0)
        return -1;
    if (!isfinite(report->grad_norm)) {
        optimizer->nonfinite_total++;
        optimizer->nonfinite_consecutive++;
        report->skipped = true;
        report->consecutive_nonfinite = optimizer->nonfinite_consecutive;
        return 0;
    }
    optimizer->nonfinite_consecutive = 0;
    report->clip_scale = clip_scale(optimizer->config.max_grad_norm, report->grad_norm);
    const struct al_adamw_config *c = &optimizer->config;
    struct al_backend *backend = optimizer->backend;
    if (backend->ops->adamw(backend, lora->params, lora->grads, optimizer->m, optimizer->v, lora->num_params, lr,
                            c->beta1, c->beta2, c->eps, c->weight_decay, report->clip_scale,
                            optimizer->updates + 1) != 0) {
        al_error_context("AdamW update %lld", (long long)(optimizer->updates + 1));
        return -1;
    }
    optimizer->updates++;
    return 0;
}

int al_optimizer_download_state(const struct al_optimizer *optimizer, float *m, float *v)
{
    struct al_backend *backend = optimizer->backend;
    size_t bytes = (size_t)optimizer->num_params * sizeof(float);
    if (backend->ops->copy_to_host(backend, m, optimizer->m, bytes) != 0 ||
        backend->ops->copy_to_host(backend, v, optimizer->v, bytes) != 0) {
        al_error_context("downloading optimizer state");
        return -1;
    }
    return 0;
}

int al_optimizer_upload_state(struct al_optimizer *optimizer, const float *m, const float *v, int64_t updates,
                              int64_t nonfinite_total, int64_t nonfinite_consecutive)
{
    if (updates < 0 || nonfinite_total < 0 || nonfinite_consecutive < 0)
        return al_fail("optimizer state: negative counters");
    struct al_backend *backend = optimizer->backend;
    size_t bytes = (size_t)optimizer->num_params * sizeof(float);
    if (backend->ops->copy_to_backend(backend, optimizer->m, m, bytes) != 0 ||
        backend->ops->copy_to_backend(backend, optimizer->v, v, bytes) != 0) {
        al_error_context("uploading optimizer state");
        return -1;
    }
    optimizer->updates = updates;
    optimizer->nonfinite_total = nonfinite_total;
    optimizer->nonfinite_consecutive = nonfinite_consecutive;
    return 0;
}
