/* One transformer block, forward and backward, over the op interface:
 *
 *   a = rmsnorm(x);  q, k, v = linear(a) (+ LoRA);  [Qwen3: q, k = rmsnorm per head]
 *   rope(q, k);  o = attention(q, k, v) (causal, documents, the layer's sliding window)
 *   mid = x + linear_o(o);  m = rmsnorm(mid);  h = silu(linear_gate(m)) * linear_up(m)
 *   out = mid + linear_down(h)
 *
 * Backward walks the same steps in reverse; only LoRA parameters receive gradients.
 * Decoding (generation) runs the same block with the attention over a key/value cache
 * instead of over the batch. */
#include "agentlora/rng.h"
#include "model/model_internal.h"

/* Per-(layer, target) dropout stream, so every adapted linear draws its own mask. */
static uint64_t linear_dropout_seed(uint64_t step_seed, int layer, int target)
{
    return al_hash64(step_seed ^ al_hash64(((uint64_t)layer << 8) | (uint64_t)target));
}

/* The LoRA arguments of (layer, target), or NULL when that linear is not adapted. */
static const struct al_lora_args *lora_args(struct al_lora_args *args, const struct al_lora *lora,
                                            const struct block_acts *acts, int layer, int target, float dropout,
                                            uint64_t step_seed)
{
    if (!lora || !lora->slots[layer][target].present)
        return NULL;
    const struct al_lora_slot *slot = &lora->slots[layer][target];
    args->A = lora->params + slot->a_offset;
    args->B = lora->params + slot->b_offset;
    args->dA = lora->grads + slot->a_offset;
    args->dB = lora->grads + slot->b_offset;
    args->xa = acts->xa[target];
    args->rank = lora->config.rank;
    args->scale = al_lora_scale(&lora->config);
    args->dropout = dropout;
    args->dropout_seed = linear_dropout_seed(step_seed, layer, target);
    return args;
}

/* Qwen3's q_norm / k_norm: RMSNorm of each head's head_dim values (rows of n * heads),
 * from the raw projection into the tensor RoPE then rotates. */
static int head_norm_forward(const struct al_model *model, void *normed, float *rstd, const void *raw,
                             const void *weight, int64_t n, int heads)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    return be->ops->rmsnorm_forward(be, normed, rstd, raw, weight, n * heads, c->head_dim, c->rms_norm_eps);
}

/* The block up to attention: a = rmsnorm(x), q, k, v = linear(a) (+ LoRA), the per-head
 * q/k norms where the architecture has them, rope(q, k) at ws->positions. */
static int attention_inputs(const struct al_model *model, const struct al_lora *lora, struct al_workspace *ws,
                            int layer, struct block_acts *acts, int64_t n, float dropout, uint64_t seed)
{
    const struct al_model_config *c = &model->config;
    const struct block_weights *w = &model->blocks[layer];
    const struct al_backend_ops *op = model->backend->ops;
    struct al_backend *be = model->backend;
    int hidden = c->hidden_size, hd = c->head_dim;
    int hq = c->num_attention_heads, hkv = c->num_key_value_heads;
    struct al_lora_args la;
    /* With q/k norms the projections land in q_raw / k_raw and the norms write q / k. */
    void *q_proj = c->qk_norm ? acts->q_raw : acts->q, *k_proj = c->qk_norm ? acts->k_raw : acts->k;

    if (op->rmsnorm_forward(be, acts->attn_in, acts->rstd_attn, ws->residual[layer], w->input_norm, n, hidden,
                            c->rms_norm_eps) ||
        op->linear_forward(be, q_proj, acts->attn_in, w->q, w->q_bias,
                           lora_args(&la, lora, acts, layer, AL_LORA_Q, dropout, seed), n, hidden, hq * hd) ||
        op->linear_forward(be, k_proj, acts->attn_in, w->k, w->k_bias,
                           lora_args(&la, lora, acts, layer, AL_LORA_K, dropout, seed), n, hidden, hkv * hd) ||
        op->linear_forward(be, acts->v, acts->attn_in, w->v, w->v_bias,
                           lora_args(&la, lora, acts, layer, AL_LORA_V, dropout, seed), n, hidden, hkv * hd))
        return -1;
    if (c->qk_norm && (head_norm_forward(model, acts->q, acts->rstd_q, acts->q_raw, w->q_norm, n, hq) ||
                       head_norm_forward(model, acts->k, acts->rstd_k, acts->k_raw, w->k_norm, n, hkv)))
        return -1;
    if (op->rope_forward(be, acts->q, ws->positions, model->inv_freq, n, hq, hd) ||
        op->rope_forward(be, acts->k, ws->positions, model->inv_freq, n, hkv, hd))
        return -1;
    return 0;
}

/* The block after attention (acts->attn_out): mid = x + linear_o(o), then the MLP into
 * residual[layer + 1]. */
static int attention_output_and_mlp(const struct al_model *model, const struct al_lora *lora,
                                    struct al_workspace *ws, int layer, struct block_acts *acts, int64_t n,
                                    float dropout, uint64_t seed)
{
    const struct al_model_config *c = &model->config;
    const struct block_weights *w = &model->blocks[layer];
    const struct al_backend_ops *op = model->backend->ops;
    struct al_backend *be = model->backend;
    const void *x = ws->residual[layer];
    void *out = ws->residual[layer + 1];
    int hidden = c->hidden_size, inter = c->intermediate_size, hd = c->head_dim;
    int hq = c->num_attention_heads;
    struct al_lora_args la;

    /* The o projection's output goes to `out` as scratch; mid = x + that. */
    if (op->linear_forward(be, out, acts->attn_out, w->o, NULL,
                           lora_args(&la, lora, acts, layer, AL_LORA_O, dropout, seed), n, hq * hd, hidden) ||
        op->add(be, acts->mid, x, out, n * hidden) ||
        op->rmsnorm_forward(be, acts->mlp_in, acts->rstd_mlp, acts->mid, w->post_norm, n, hidden, c->rms_norm_eps) ||
        op->linear_forward(be, acts->gate, acts->mlp_in, w->gate, NULL,
                           lora_args(&la, lora, acts, layer, AL_LORA_GATE, dropout, seed), n, hidden, inter) ||
        op->linear_forward(be, acts->up, acts->mlp_in, w->up, NULL,
                           lora_args(&la, lora, acts, layer, AL_LORA_UP, dropout, seed), n, hidden, inter) ||
        op->swiglu_forward(be, acts->hidden, acts->gate, acts->up, n, inter) ||
        op->linear_forward(be, out, acts->hidden, w->down, NULL,
                           lora_args(&la, lora, acts, layer, AL_LORA_DOWN, dropout, seed), n, inter, hidden) ||
        op->add(be, out, acts->mid, out, n * hidden))
        return -1;
    return 0;
}

int al_block_forward(const struct al_model *model, const struct al_lora *lora, struct al_workspace *ws, int layer,
                     struct block_acts *acts, int64_t n, float dropout, uint64_t seed)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    if (attention_inputs(model, lora, ws, layer, acts, n, dropout, seed) != 0 ||
        be->ops->attention_forward(be, acts->attn_out, acts->lse, acts->q, acts->k, acts->v, ws->doc_start,
                                   al_model_config_layer_window(c, layer), n, c->num_attention_heads,
                                   c->num_key_value_heads, c->head_dim) != 0)
        return -1;
    return attention_output_and_mlp(model, lora, ws, layer, acts, n, dropout, seed);
}

int al_block_decode_forward(const struct al_model *model, const struct al_lora *lora, struct al_workspace *ws,
                            int layer, struct block_acts *acts, int64_t n, const struct al_kv_cache_layer *cache,
                            const int32_t *seq)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    int hq = c->num_attention_heads, hkv = c->num_key_value_heads, hd = c->head_dim;
    /* Inference: LoRA dropout off, so the seed is never read. */
    if (attention_inputs(model, lora, ws, layer, acts, n, 0.0f, 0) != 0 ||
        be->ops->kv_cache_write(be, cache, acts->k, acts->v, seq, ws->positions, n, hkv, hd) != 0 ||
        be->ops->decode_attention(be, acts->attn_out, acts->q, cache, seq, ws->positions,
                                  al_model_config_layer_window(c, layer), n, hq, hkv, hd) != 0)
        return -1;
    return attention_output_and_mlp(model, lora, ws, layer, acts, n, 0.0f, 0);
}

int al_block_backward(const struct al_model *model, struct al_lora *lora, struct al_workspace *ws, int layer,
                      struct block_acts *acts, int64_t n, float dropout, uint64_t seed)
{
    const struct al_model_config *c = &model->config;
    const struct block_weights *w = &model->blocks[layer];
    const struct al_backend_ops *op = model->backend->ops;
    struct al_backend *be = model->backend;
    int hidden = c->hidden_size, inter = c->intermediate_size, hd = c->head_dim;
    int hq = c->num_attention_heads, hkv = c->num_key_value_heads;
    void *d_out = ws->d_residual; /* d(block output); becomes d(mid), then d(block input) */
    struct al_lora_args la;

    /* MLP: out = mid + down(silu(gate(m)) * up(m)), m = rmsnorm(mid). */
    if (op->linear_backward(be, ws->d_hidden, 0, d_out, acts->hidden, w->down,
                            lora_args(&la, lora, acts, layer, AL_LORA_DOWN, dropout, seed), n, inter, hidden) ||
        op->swiglu_backward(be, ws->d_gate, ws->d_up, ws->d_hidden, acts->gate, acts->up, n, inter) ||
        op->linear_backward(be, ws->d_norm, 0, ws->d_gate, acts->mlp_in, w->gate,
                            lora_args(&la, lora, acts, layer, AL_LORA_GATE, dropout, seed), n, hidden, inter) ||
        op->linear_backward(be, ws->d_norm, 1, ws->d_up, acts->mlp_in, w->up,
                            lora_args(&la, lora, acts, layer, AL_LORA_UP, dropout, seed), n, hidden, inter) ||
        op->rmsnorm_backward(be, ws->d_scratch, NULL, ws->d_norm, acts->mid, w->post_norm, acts->rstd_mlp, n,
                             hidden) ||
        op->add(be, d_out, d_out, ws->d_scratch, n * hidden))
        return -1;

    /* Attention: mid = x + o(attention(rope(q(a)), rope(k(a)), v(a))), a = rmsnorm(x). */
    if (op->linear_backward(be, ws->d_attn_out, 0, d_out, acts->attn_out, w->o,
                            lora_args(&la, lora, acts, layer, AL_LORA_O, dropout, seed), n, hq * hd, hidden) ||
        op->attention_backward(be, ws->d_q, ws->d_k, ws->d_v, ws->d_attn_out, acts->q, acts->k, acts->v,
                               acts->attn_out, acts->lse, ws->doc_start, al_model_config_layer_window(c, layer), n,
                               hq, hkv, hd) ||
        op->rope_backward(be, ws->d_q, ws->positions, model->inv_freq, n, hq, hd) ||
        op->rope_backward(be, ws->d_k, ws->positions, model->inv_freq, n, hkv, hd))
        return -1;
    /* Through the q/k norms (their weights are frozen): d_attn_out is free once attention's
     * backward has read it, and serves as d(q_raw), then as d(k_raw). */
    const void *dq_proj = ws->d_q, *dk_proj = ws->d_k;
    if (c->qk_norm) {
        dq_proj = dk_proj = ws->d_attn_out;
        if (op->rmsnorm_backward(be, ws->d_attn_out, NULL, ws->d_q, acts->q_raw, w->q_norm, acts->rstd_q, n * hq,
                                 hd))
            return -1;
    }
    if (op->linear_backward(be, ws->d_norm, 0, dq_proj, acts->attn_in, w->q,
                            lora_args(&la, lora, acts, layer, AL_LORA_Q, dropout, seed), n, hidden, hq * hd))
        return -1;
    if (c->qk_norm && op->rmsnorm_backward(be, ws->d_attn_out, NULL, ws->d_k, acts->k_raw, w->k_norm, acts->rstd_k,
                                           n * hkv, hd))
        return -1;
    if (op->linear_backward(be, ws->d_norm, 1, dk_proj, acts->attn_in, w->k,
                            lora_args(&la, lora, acts, layer, AL_LORA_K, dropout, seed), n, hidden, hkv * hd) ||
        op->linear_backward(be, ws->d_norm, 1, ws->d_v, acts->attn_in, w->v,
                            lora_args(&la, lora, acts, layer, AL_LORA_V, dropout, seed), n, hidden, hkv * hd) ||
        op->rmsnorm_backward(be, ws->d_scratch, NULL, ws->d_norm, ws->residual[layer], w->input_norm,
                             acts->rstd_attn, n, hidden) ||
        op->add(be, d_out, d_out, ws->d_scratch, n * hidden))
        return -1;
    return 0;
}
