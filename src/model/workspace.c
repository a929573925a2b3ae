/* Activation and gradient memory for one batch size. Every buffer is recorded in a list
 * so one function frees them all. */
#include <stdlib.h>

#include "agentlora/error.h"
#include "model/model_internal.h"

struct allocation_list {
    void **items;
    int count, capacity;
};

struct workspace_builder {
    struct al_backend *backend;
    struct allocation_list *list;
    int failed;
};

/* Allocation lists hang off the workspace through this wrapper so the public struct
 * stays free of bookkeeping. */
struct workspace_with_list {
    struct al_workspace ws;
    struct allocation_list list;
};

static void *take(struct workspace_builder *b, size_t bytes)
{
    if (b->failed)
        return NULL;
    struct allocation_list *list = b->list;
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 64;
        void **grown = realloc(list->items, (size_t)capacity * sizeof *grown);
        if (!grown) {
            b->failed = al_fail("out of memory");
            return NULL;
        }
        list->items = grown;
        list->capacity = capacity;
    }
    void *ptr = b->backend->ops->alloc(b->backend, bytes ? bytes : 1);
    if (!ptr) {
        b->failed = -1;
        return NULL;
    }
    list->items[list->count++] = ptr;
    return ptr;
}

static void *take_act(struct workspace_builder *b, int64_t elements)
{
    return take(b, al_backend_act_bytes(b->backend, elements));
}

static float *take_f32(struct workspace_builder *b, int64_t elements)
{
    return take(b, (size_t)elements * sizeof(float));
}

static void build_block_acts(struct workspace_builder *b, struct block_acts *acts, const struct al_model_config *c,
                             int64_t n, int rank, unsigned lora_mask)
{
    int64_t q_width = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kv_width = (int64_t)c->num_key_value_heads * c->head_dim;
    acts->rstd_attn = take_f32(b, n);
    acts->rstd_mlp = take_f32(b, n);
    acts->lse = take_f32(b, n * c->num_attention_heads);
    acts->attn_in = take_act(b, n * c->hidden_size);
    acts->q = take_act(b, n * q_width);
    acts->k = take_act(b, n * kv_width);
    acts->v = take_act(b, n * kv_width);
    if (c->qk_norm) {
        acts->q_raw = take_act(b, n * q_width);
        acts->k_raw = take_act(b, n * kv_width);
        acts->rstd_q = take_f32(b, n * c->num_attention_heads);
        acts->rstd_k = take_f32(b, n * c->num_key_value_heads);
    }
    acts->attn_out = take_act(b, n * q_width);
    acts->mid = take_act(b, n * c->hidden_size);
    acts->mlp_in = take_act(b, n * c->hidden_size);
    acts->gate = take_act(b, n * c->intermediate_size);
    acts->up = take_act(b, n * c->intermediate_size);
    acts->hidden = take_act(b, n * c->intermediate_size);
    for (int t = 0; t < AL_LORA_TARGET_COUNT; t++)
        acts->xa[t] = (rank > 0 && (lora_mask & (1u << t))) ? take_f32(b, n * rank) : NULL;
}

static void build_gradients(struct workspace_builder *b, struct al_workspace *ws, const struct al_model_config *c,
                            int64_t n)
{
    int64_t q_width = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kv_width = (int64_t)c->num_key_value_heads * c->head_dim;
    ws->d_residual = take_act(b, n * c->hidden_size);
    ws->d_norm = take_act(b, n * c->hidden_size);
    ws->d_scratch = take_act(b, n * c->hidden_size);
    ws->d_attn_out = take_act(b, n * q_width);
    ws->d_q = take_act(b, n * q_width);
    ws->d_k = take_act(b, n * kv_width);
    ws->d_v = take_act(b, n * kv_width);
    ws->d_hidden = take_act(b, n * c->intermediate_size);
    ws->d_gate = take_act(b, n * c->intermediate_size);
    ws->d_up = take_act(b, n * c->intermediate_size);
}

struct al_workspace *al_workspace_create(const struct al_model *model, const struct al_lora *lora,
                                         int64_t max_tokens, bool gradient_checkpointing)
{
    if (max_tokens <= 0)
        return al_fail_null("workspace needs a positive token count, got %lld", (long long)max_tokens);
    const struct al_model_config *c = &model->config;
    struct workspace_with_list *holder = calloc(1, sizeof *holder);
    if (!holder)
        return al_fail_null("out of memory");
    struct al_workspace *ws = &holder->ws;
    ws->model = model;
    ws->max_tokens = max_tokens;
    ws->checkpointing = gradient_checkpointing;
    ws->lora_rank = lora ? lora->config.rank : 0;
    ws->lora_mask = lora ? lora->config.target_mask : 0;
    ws->num_act_sets = gradient_checkpointing ? 1 : c->num_hidden_layers;
    ws->residual = calloc((size_t)c->num_hidden_layers + 1, sizeof *ws->residual);
    ws->acts = calloc((size_t)ws->num_act_sets, sizeof *ws->acts);
    struct workspace_builder b = {model->backend, &holder->list, 0};
    if (!ws->residual || !ws->acts)
        b.failed = al_fail("out of memory");
    int64_t n = max_tokens;
    for (int l = 0; l <= c->num_hidden_layers && !b.failed; l++)
        ws->residual[l] = take_act(&b, n * c->hidden_size);
    for (int s = 0; s < ws->num_act_sets && !b.failed; s++)
        build_block_acts(&b, &ws->acts[s], c, n, ws->lora_rank, ws->lora_mask);
    ws->final_out = take_act(&b, n * c->hidden_size);
    ws->final_rstd = take_f32(&b, n);
    build_gradients(&b, ws, c, n);
    ws->ids = take(&b, (size_t)n * sizeof(int32_t));
    ws->targets = take(&b, (size_t)n * sizeof(int32_t));
    ws->positions = take(&b, (size_t)n * sizeof(int32_t));
    ws->doc_start = take(&b, (size_t)n * sizeof(int32_t));
    ws->loss_sum = take_f32(&b, 1);
    if (b.failed) {
        al_error_context("allocating activations for %lld tokens", (long long)max_tokens);
        al_workspace_free(ws);
        return NULL;
    }
    return ws;
}

void al_workspace_free(struct al_workspace *ws)
{
    if (!ws)
        return;
    struct workspace_with_list *holder = (struct workspace_with_list *)ws;
    struct al_backend *backend = ws->model->backend;
    for (int i = 0; i < holder->list.count; i++)
        backend->ops->free(backend, holder->list.items[i]);
    free(holder->list.items);
    free(ws->residual);
    free(ws->acts);
    free(holder);
}
