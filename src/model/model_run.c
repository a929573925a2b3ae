/* Running the whole model: batch upload, forward through every block, the fused
 * lm_head + cross-entropy, backward, and logits. */
#include <stdlib.h>

#include "agentlora/error.h"
#include "model/model_internal.h"

/* Logits are produced this many tokens at a time, bounding the scratch to
 * LOGITS_CHUNK_ELEMENTS floats whatever the vocabulary. */
#define LOGITS_CHUNK_ELEMENTS (1 << 22)

int al_batch_validate(const struct al_batch *batch, const struct al_model_config *config)
{
    if (batch->num_tokens <= 0)
        return al_fail("empty batch");
    for (int64_t i = 0; i < batch->num_tokens; i++) {
        int32_t id = batch->input_ids[i], target = batch->targets[i], start = batch->doc_start[i];
        if (id < 0 || id >= config->vocab_size)
            return al_fail("token %lld: id %d is outside the vocabulary [0, %d)", (long long)i, id,
                           config->vocab_size);
        if (target < -1 || target >= config->vocab_size)
            return al_fail("token %lld: target %d is outside the vocabulary [0, %d)", (long long)i, target,
                           config->vocab_size);
        if (batch->positions[i] < 0)
            return al_fail("token %lld: negative position %d", (long long)i, batch->positions[i]);
        bool opens_document = start == i;
        bool continues_document = i > 0 && start == batch->doc_start[i - 1];
        if (!opens_document && !continues_document)
            return al_fail("token %lld: document start %d is neither the token itself nor its predecessor's "
                           "document start",
                           (long long)i, start);
    }
    return 0;
}

int64_t al_batch_count_targets(const struct al_batch *batch)
{
    int64_t count = 0;
    for (int64_t i = 0; i < batch->num_tokens; i++)
        count += batch->targets[i] >= 0;
    return count;
}

static int upload_batch(struct al_workspace *ws, const struct al_model *model, const struct al_batch *batch)
{
    if (batch->num_tokens > ws->max_tokens)
        return al_fail("batch of %lld tokens exceeds the workspace's %lld", (long long)batch->num_tokens,
                       (long long)ws->max_tokens);
    if (al_batch_validate(batch, &model->config) != 0)
        return -1;
    struct al_backend *be = model->backend;
    size_t bytes = (size_t)batch->num_tokens * sizeof(int32_t);
    if (be->ops->copy_to_backend(be, ws->ids, batch->input_ids, bytes) ||
        be->ops->copy_to_backend(be, ws->targets, batch->targets, bytes) ||
        be->ops->copy_to_backend(be, ws->positions, batch->positions, bytes) ||
        be->ops->copy_to_backend(be, ws->doc_start, batch->doc_start, bytes))
        return -1;
    return 0;
}

static int check_lora_fits(const struct al_workspace *ws, const struct al_lora *lora)
{
    if (!lora)
        return 0;
    if (lora->config.rank != ws->lora_rank || (lora->config.target_mask & ~ws->lora_mask))
        return al_fail("the workspace was created for a different LoRA configuration");
    return 0;
}

/* The activation set block `layer` uses: its own, or the shared one when checkpointing. */
static struct block_acts *acts_for(struct al_workspace *ws, int layer)
{
    return &ws->acts[ws->checkpointing ? 0 : layer];
}

/* Embedding, every block, the final norm. */
static int forward_trunk(struct al_model *model, const struct al_lora *lora, struct al_workspace *ws, int64_t n,
                         float dropout, uint64_t seed)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    if (be->ops->embedding_forward(be, ws->residual[0], ws->ids, model->embed, n, c->hidden_size) != 0)
        return -1;
    for (int layer = 0; layer < c->num_hidden_layers; layer++)
        if (al_block_forward(model, lora, ws, layer, acts_for(ws, layer), n, dropout, seed) != 0)
            return -1;
    return be->ops->rmsnorm_forward(be, ws->final_out, ws->final_rstd, ws->residual[c->num_hidden_layers],
                                    model->final_norm, n, c->hidden_size, c->rms_norm_eps);
}

static int read_loss(struct al_backend *be, struct al_workspace *ws, double *loss_sum)
{
    float host = 0;
    if (be->ops->synchronize(be) || be->ops->copy_to_host(be, &host, ws->loss_sum, sizeof host))
        return -1;
    *loss_sum = host;
    return 0;
}

static int run(struct al_model *model, struct al_lora *lora, struct al_workspace *ws, const struct al_batch *batch,
               bool backward, float grad_scale, uint64_t seed, double *loss_sum)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    int64_t n = batch->num_tokens;
    float dropout = backward && lora ? lora->config.dropout : 0.0f;
    if (check_lora_fits(ws, lora) || upload_batch(ws, model, batch) || forward_trunk(model, lora, ws, n, dropout, seed))
        return -1;
    if (be->ops->zero(be, ws->loss_sum, sizeof(float)) ||
        be->ops->lm_head_cross_entropy(be, ws->loss_sum, backward ? ws->d_norm : NULL, ws->final_out, model->lm_head,
                                       ws->targets, n, c->hidden_size, c->vocab_size, grad_scale))
        return -1;
    if (backward && lora) {
        if (be->ops->rmsnorm_backward(be, ws->d_residual, NULL, ws->d_norm, ws->residual[c->num_hidden_layers],
                                      model->final_norm, ws->final_rstd, n, c->hidden_size))
            return -1;
        for (int layer = c->num_hidden_layers - 1; layer >= 0; layer--) {
            struct block_acts *acts = acts_for(ws, layer);
            /* With checkpointing the shared set holds the last block's activations: recompute. */
            if (ws->checkpointing && layer != c->num_hidden_layers - 1 &&
                al_block_forward(model, lora, ws, layer, acts, n, dropout, seed) != 0)
                return -1;
            if (al_block_backward(model, lora, ws, layer, acts, n, dropout, seed) != 0)
                return -1;
        }
    }
    return read_loss(be, ws, loss_sum);
}

int al_model_forward_backward(struct al_model *model, struct al_lora *lora, struct al_workspace *ws,
                              const struct al_batch *batch, float grad_scale, uint64_t dropout_seed,
                              double *loss_sum)
{
    return run(model, lora, ws, batch, true, grad_scale, dropout_seed, loss_sum);
}

int al_model_loss(struct al_model *model, const struct al_lora *lora, struct al_workspace *ws,
                  const struct al_batch *batch, double *loss_sum)
{
    /* Forward only: lora is not written (no backward, dropout off). */
    return run(model, (struct al_lora *)lora, ws, batch, false, 0.0f, 0, loss_sum);
}

int al_model_logits(struct al_model *model, const struct al_lora *lora, struct al_workspace *ws,
                    const struct al_batch *batch, float *logits)
{
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    int64_t n = batch->num_tokens;
    if (check_lora_fits(ws, lora) || upload_batch(ws, model, batch) || forward_trunk(model, lora, ws, n, 0.0f, 0))
        return -1;
    int64_t chunk = LOGITS_CHUNK_ELEMENTS / c->vocab_size;
    if (chunk < 1)
        chunk = 1;
    if (chunk > n)
        chunk = n;
    void *scratch = be->ops->alloc(be, al_backend_act_bytes(be, chunk * c->vocab_size));
    if (!scratch)
        return -1;
    int rc = 0;
    size_t row_bytes = al_backend_act_bytes(be, c->hidden_size);
    for (int64_t start = 0; start < n && rc == 0; start += chunk) {
        int64_t count = n - start < chunk ? n - start : chunk;
        const void *rows = (const char *)ws->final_out + (size_t)start * row_bytes;
        rc = be->ops->linear_forward(be, scratch, rows, model->lm_head, NULL, NULL, count, c->hidden_size,
                                     c->vocab_size);
        if (rc == 0)
            rc = be->ops->download_f32(be, logits + start * c->vocab_size, scratch, be->act_dtype,
                                       count * c->vocab_size);
    }
    be->ops->free(be, scratch);
    return rc;
}
