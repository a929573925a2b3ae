/* LoRA parameters: layout in one block, PEFT initialisation, host transfers. */
#include "agentlora/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/rng.h"
#include "backend/backend.h"
#include "model/lora_internal.h"

static const char *const target_names[AL_LORA_TARGET_COUNT] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};

/* The stream of the PCG32 used for initialisation, so other consumers of the same seed
 * (data shuffling, dropout) draw independent numbers. */
#define LORA_INIT_STREAM 0x10a

const char *al_lora_target_name(enum al_lora_target target)
{
    return (unsigned)target < AL_LORA_TARGET_COUNT ? target_names[target] : "?";
}

const char *al_lora_target_parent(enum al_lora_target target)
{
    return target <= AL_LORA_O ? "self_attn" : "mlp";
}

int al_lora_target_parse(const char *name, enum al_lora_target *target)
{
    for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
        if (strcmp(name, target_names[t]) == 0) {
            *target = (enum al_lora_target)t;
            return 0;
        }
    }
    return al_fail("unknown LoRA target module '%s' (expected q_proj, k_proj, v_proj, o_proj, gate_proj, "
                   "up_proj or down_proj)",
                   name);
}

int al_lora_targets_parse(const char *list, unsigned *mask)
{
    if (strcmp(list, "all") == 0) {
        *mask = AL_LORA_ALL_TARGETS;
        return 0;
    }
    char *copy = strdup(list);
    if (!copy)
        return al_fail("out of memory");
    unsigned result = 0;
    int rc = 0;
    for (char *save = NULL, *item = strtok_r(copy, ", ", &save); item; item = strtok_r(NULL, ", ", &save)) {
        enum al_lora_target target = AL_LORA_Q;
        if (al_lora_target_parse(item, &target) != 0) {
            rc = -1;
            break;
        }
        result |= 1u << target;
    }
    free(copy);
    if (rc == 0 && result == 0)
        rc = al_fail("no LoRA target modules given");
    if (rc == 0)
        *mask = result;
    return rc;
}

float al_lora_scale(const struct al_lora_config *config)
{
    return config->use_rslora ? config->alpha / sqrtf((float)config->rank) : config->alpha / (float)config->rank;
}

int al_lora_config_validate(const struct al_lora_config *config)
{
    if (config->rank <= 0)
        return al_fail("LoRA rank must be positive, got %d", config->rank);
    if (!(config->alpha > 0))
        return al_fail("LoRA alpha must be positive, got %g", config->alpha);
    if (!(config->dropout >= 0 && config->dropout < 1))
        return al_fail("LoRA dropout must be in [0, 1), got %g", config->dropout);
    if ((config->target_mask & AL_LORA_ALL_TARGETS) == 0)
        return al_fail("LoRA needs at least one target module");
    return 0;
}

void al_lora_target_shape(const struct al_model_config *model, enum al_lora_target target, int *in, int *out)
{
    int hidden = model->hidden_size;
    int q_width = model->num_attention_heads * model->head_dim;
    int kv_width = model->num_key_value_heads * model->head_dim;
    int inter = model->intermediate_size;
    switch (target) {
    case AL_LORA_Q: *in = hidden, *out = q_width; break;
    case AL_LORA_K:
    case AL_LORA_V: *in = hidden, *out = kv_width; break;
    case AL_LORA_O: *in = q_width, *out = hidden; break;
    case AL_LORA_GATE:
    case AL_LORA_UP: *in = hidden, *out = inter; break;
    default: *in = inter, *out = hidden; break;
    }
}

void al_lora_key(char *out, int out_size, int layer, enum al_lora_target target, bool is_b)
{
    snprintf(out, (size_t)out_size, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer,
             al_lora_target_parent(target), al_lora_target_name(target), is_b ? 'B' : 'A');
}

/* Lays out every slot and allocates the parameter and gradient blocks (zeroed). */
static struct al_lora *allocate(const struct al_model_config *model, struct al_backend *backend,
                                const struct al_lora_config *config)
{
    if (al_lora_config_validate(config) != 0)
        return NULL;
    struct al_lora *lora = calloc(1, sizeof *lora);
    if (!lora)
        return al_fail_null("out of memory");
    lora->config = *config;
    lora->backend = backend;
    lora->num_layers = model->num_hidden_layers;
    lora->slots = calloc((size_t)model->num_hidden_layers, sizeof *lora->slots);
    if (!lora->slots) {
        free(lora);
        return al_fail_null("out of memory");
    }
    int64_t offset = 0;
    for (int layer = 0; layer < lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            struct al_lora_slot *slot = &lora->slots[layer][t];
            if (!(config->target_mask & (1u << t)))
                continue;
            slot->present = true;
            al_lora_target_shape(model, (enum al_lora_target)t, &slot->in, &slot->out);
            slot->a_offset = offset;
            offset += (int64_t)config->rank * slot->in;
            slot->b_offset = offset;
            offset += (int64_t)slot->out * config->rank;
        }
    }
    lora->num_params = offset;
    size_t bytes = (size_t)offset * sizeof(float);
    lora->params = backend->ops->alloc(backend, bytes);
    lora->grads = lora->params ? backend->ops->alloc(backend, bytes) : NULL;
    if (!lora->grads) {
        al_lora_free(lora);
        return NULL;
    }
    return lora;
}

struct al_lora *al_lora_create(const struct al_model_config *model, struct al_backend *backend,
                               const struct al_lora_config *config, uint64_t seed)
{
    struct al_lora *lora = allocate(model, backend, config);
    if (!lora)
        return NULL;
    float *host = calloc((size_t)lora->num_params, sizeof(float));
    if (!host) {
        al_lora_free(lora);
        return al_fail_null("out of memory");
    }
    struct al_rng rng;
    al_rng_seed(&rng, seed, LORA_INIT_STREAM);
    for (int layer = 0; layer < lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            const struct al_lora_slot *slot = &lora->slots[layer][t];
            if (!slot->present)
                continue;
            /* kaiming_uniform_(a=sqrt(5)): gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in) = 1/sqrt(fan_in). */
            float bound = 1.0f / sqrtf((float)slot->in);
            int64_t count = (int64_t)config->rank * slot->in;
            for (int64_t i = 0; i < count; i++)
                host[slot->a_offset + i] = al_rng_uniform_range(&rng, -bound, bound);
        }
    }
    int rc = al_lora_upload_params(lora, host);
    free(host);
    if (rc != 0) {
        al_lora_free(lora);
        return NULL;
    }
    return lora;
}

void al_lora_free(struct al_lora *lora)
{
    if (!lora)
        return;
    if (lora->backend) {
        if (lora->params)
            lora->backend->ops->free(lora->backend, lora->params);
        if (lora->grads)
            lora->backend->ops->free(lora->backend, lora->grads);
    }
    free(lora->slots);
    free(lora);
}

int al_lora_zero_grads(struct al_lora *lora)
{
    return lora->backend->ops->zero(lora->backend, lora->grads, (size_t)lora->num_params * sizeof(float));
}

int al_lora_download_params(const struct al_lora *lora, float *host)
{
    return lora->backend->ops->copy_to_host(lora->backend, host, lora->params,
                                            (size_t)lora->num_params * sizeof(float));
}

int al_lora_download_grads(const struct al_lora *lora, float *host)
{
    return lora->backend->ops->copy_to_host(lora->backend, host, lora->grads,
                                            (size_t)lora->num_params * sizeof(float));
}

int al_lora_upload_params(struct al_lora *lora, const float *host)
{
    return lora->backend->ops->copy_to_backend(lora->backend, lora->params, host,
                                               (size_t)lora->num_params * sizeof(float));
}

struct al_lora *al_lora_allocate_internal(const struct al_model_config *model, struct al_backend *backend,
                                          const struct al_lora_config *config)
{
    return allocate(model, backend, config);
}
