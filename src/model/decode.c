/* Incremental decoding: the model run a few tokens at a time over per-layer key/value
 * caches. A step embeds its tokens, runs every block with its attention over the cache
 * (al_block_decode_forward: the same block as training, with the attention swapped), and
 * computes logits only for the rows the caller wants. Activations come from an ordinary
 * workspace sized for one step; steps longer than that are split into chunks, which the
 * cache makes exact: a chunk's queries see everything earlier chunks wrote. */
#include <stdlib.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "model/model_internal.h"

/* Logits are produced this many floats at a time at most (as model_run.c does), bounding
 * the scratch whatever the vocabulary. */
#define LOGITS_CHUNK_ELEMENTS (1 << 22)

struct al_decoder {
    const struct al_model *model;
    const struct al_lora *lora;
    int sequences;
    int max_len;
    int max_step_tokens;
    struct al_workspace *ws;          /* one step's activations (one shared set) */
    struct al_kv_cache_layer *caches; /* [layers] */
    int32_t *seq;                     /* backend [max_step_tokens]: each token's sequence */
    void *logits_scratch;             /* backend [logit_rows, vocab] */
    int logit_rows;
    int *lengths;                     /* host [sequences]: tokens held */
    int *pending;                     /* host [sequences]: tokens a step is about to add */
    int32_t *host_positions;          /* host [max_step_tokens] */
};

static int check_backend(const struct al_backend *be)
{
    if (!be->ops->kv_cache_write || !be->ops->decode_attention)
        return al_fail("the %s backend does not implement KV-cache decoding (kv_cache_write, decode_attention) "
                       "yet; generate on the CPU (--device cpu)",
                       be->name);
    return 0;
}

static int allocate_caches(struct al_decoder *d)
{
    const struct al_model_config *c = &d->model->config;
    struct al_backend *be = d->model->backend;
    int layers = c->num_hidden_layers;
    d->caches = calloc((size_t)layers, sizeof *d->caches);
    if (!d->caches)
        return al_fail("out of memory");
    size_t bytes = al_backend_act_bytes(be, (int64_t)d->sequences * d->max_len * c->num_key_value_heads * c->head_dim);
    for (int layer = 0; layer < layers; layer++) {
        struct al_kv_cache_layer *cache = &d->caches[layer];
        cache->sequences = d->sequences;
        cache->capacity = d->max_len;
        if (!(cache->k = be->ops->alloc(be, bytes)) || !(cache->v = be->ops->alloc(be, bytes))) {
            al_error_context("key/value cache of layer %d (%zu bytes each for k and v)", layer, bytes);
            return -1;
        }
    }
    return 0;
}

static int allocate_step_buffers(struct al_decoder *d)
{
    const struct al_model_config *c = &d->model->config;
    struct al_backend *be = d->model->backend;
    int64_t rows = LOGITS_CHUNK_ELEMENTS / c->vocab_size;
    d->logit_rows = (int)(rows < 1 ? 1 : rows > d->max_step_tokens ? d->max_step_tokens : rows);
    d->ws = al_workspace_create(d->model, d->lora, d->max_step_tokens, true);
    if (!d->ws)
        return -1;
    d->seq = be->ops->alloc(be, (size_t)d->max_step_tokens * sizeof(int32_t));
    d->logits_scratch = d->seq ? be->ops->alloc(be, al_backend_act_bytes(be, (int64_t)d->logit_rows * c->vocab_size))
                               : NULL;
    d->lengths = calloc((size_t)d->sequences, sizeof *d->lengths);
    d->pending = calloc((size_t)d->sequences, sizeof *d->pending);
    d->host_positions = malloc((size_t)d->max_step_tokens * sizeof *d->host_positions);
    if (!d->seq || !d->logits_scratch)
        return -1;
    if (!d->lengths || !d->pending || !d->host_positions)
        return al_fail("out of memory");
    return 0;
}

struct al_decoder *al_decoder_create(const struct al_model *model, const struct al_lora *lora, int sequences,
                                     int max_len, int max_step_tokens)
{
    if (sequences <= 0 || max_len <= 0 || max_step_tokens < 0)
        return al_fail_null("decoder: need positive sequences (%d) and max_len (%d), and a step size >= 0 (%d)",
                            sequences, max_len, max_step_tokens);
    if (check_backend(model->backend) != 0)
        return NULL;
    if (lora && lora->num_layers != model->config.num_hidden_layers)
        return al_fail_null("decoder: the adapter has %d layers, the model %d", lora->num_layers,
                            model->config.num_hidden_layers);
    struct al_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return al_fail_null("out of memory");
    d->model = model;
    d->lora = lora;
    d->sequences = sequences;
    d->max_len = max_len;
    d->max_step_tokens = max_step_tokens ? max_step_tokens : AL_DECODER_DEFAULT_STEP_TOKENS;
    if (allocate_caches(d) != 0 || allocate_step_buffers(d) != 0) {
        al_error_context("decoder for %d sequences of %d tokens", sequences, max_len);
        al_decoder_free(d);
        return NULL;
    }
    return d;
}

void al_decoder_free(struct al_decoder *d)
{
    if (!d)
        return;
    struct al_backend *be = d->model->backend;
    for (int layer = 0; d->caches && layer < d->model->config.num_hidden_layers; layer++) {
        be->ops->free(be, d->caches[layer].k);
        be->ops->free(be, d->caches[layer].v);
    }
    free(d->caches);
    al_workspace_free(d->ws);
    be->ops->free(be, d->seq);
    be->ops->free(be, d->logits_scratch);
    free(d->lengths);
    free(d->pending);
    free(d->host_positions);
    free(d);
}

void al_decoder_reset(struct al_decoder *d)
{
    /* Stale cache slots need no clearing: a query never reads past its own position, and
     * every slot up to it is rewritten by the new sequence first. */
    for (int s = 0; s < d->sequences; s++)
        d->lengths[s] = 0;
}

int al_decoder_length(const struct al_decoder *d, int sequence)
{
    return sequence >= 0 && sequence < d->sequences ? d->lengths[sequence] : 0;
}

/* Checks every token before anything changes: ids in the vocabulary, sequences in range,
 * and room in each sequence for all its new tokens. */
static int validate_step(struct al_decoder *d, const int32_t *seq, const int32_t *ids, int64_t n)
{
    const struct al_model_config *c = &d->model->config;
    if (n < 0)
        return al_fail("decoder step: negative token count %lld", (long long)n);
    for (int s = 0; s < d->sequences; s++)
        d->pending[s] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= d->sequences)
            return al_fail("decoder step: token %lld names sequence %d, outside [0, %d)", (long long)i, seq[i],
                           d->sequences);
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return al_fail("decoder step: token %lld: id %d is outside the vocabulary [0, %d)", (long long)i, ids[i],
                           c->vocab_size);
        if (d->lengths[seq[i]] + ++d->pending[seq[i]] > d->max_len)
            return al_fail("decoder step: sequence %d would exceed its %d positions", seq[i], d->max_len);
    }
    return 0;
}

/* Embedding, every block over the caches, the final norm, for m tokens already uploaded. */
static int run_trunk(struct al_decoder *d, int64_t m)
{
    const struct al_model *model = d->model;
    const struct al_model_config *c = &model->config;
    struct al_backend *be = model->backend;
    struct al_workspace *ws = d->ws;
    if (be->ops->embedding_forward(be, ws->residual[0], ws->ids, model->embed, m, c->hidden_size) != 0)
        return -1;
    for (int layer = 0; layer < c->num_hidden_layers; layer++)
        if (al_block_decode_forward(model, d->lora, ws, layer, &ws->acts[0], m, &d->caches[layer], d->seq) != 0) {
            al_error_context("decoding layer %d", layer);
            return -1;
        }
    return be->ops->rmsnorm_forward(be, ws->final_out, ws->final_rstd, ws->residual[c->num_hidden_layers],
                                    model->final_norm, m, c->hidden_size, c->rms_norm_eps);
}

/* Logits of `count` consecutive rows of the step's final norm output, starting at `row`,
 * into host rows. */
static int logits_for_rows(struct al_decoder *d, int64_t row, int64_t count, float *host)
{
    const struct al_model_config *c = &d->model->config;
    struct al_backend *be = d->model->backend;
    size_t row_bytes = al_backend_act_bytes(be, c->hidden_size);
    for (int64_t done = 0; done < count;) {
        int64_t rows = count - done < d->logit_rows ? count - done : d->logit_rows;
        const void *x = (const char *)d->ws->final_out + (size_t)(row + done) * row_bytes;
        if (be->ops->linear_forward(be, d->logits_scratch, x, d->model->lm_head, NULL, NULL, rows, c->hidden_size,
                                    c->vocab_size) != 0 ||
            be->ops->download_f32(be, host + done * c->vocab_size, d->logits_scratch, be->act_dtype,
                                  rows * c->vocab_size) != 0)
            return -1;
        done += rows;
    }
    return 0;
}

/* One chunk of at most max_step_tokens tokens; *out_row counts logit rows written. */
static int run_chunk(struct al_decoder *d, const int32_t *seq, const int32_t *ids, int64_t m, const bool *want,
                     float *logits, int64_t *out_row)
{
    struct al_backend *be = d->model->backend;
    int vocab = d->model->config.vocab_size;
    for (int64_t i = 0; i < m; i++)
        d->host_positions[i] = d->lengths[seq[i]]++;
    size_t bytes = (size_t)m * sizeof(int32_t);
    if (be->ops->copy_to_backend(be, d->ws->ids, ids, bytes) != 0 ||
        be->ops->copy_to_backend(be, d->ws->positions, d->host_positions, bytes) != 0 ||
        be->ops->copy_to_backend(be, d->seq, seq, bytes) != 0 || run_trunk(d, m) != 0)
        return -1;
    if (!logits)
        return 0;
    /* Consecutive wanted rows go through the lm_head together. */
    for (int64_t i = 0; i < m;) {
        if (want && !want[i]) {
            i++;
            continue;
        }
        int64_t run = 1;
        while (i + run < m && (!want || want[i + run]))
            run++;
        if (logits_for_rows(d, i, run, logits + *out_row * vocab) != 0)
            return -1;
        *out_row += run;
        i += run;
    }
    return 0;
}

int al_decoder_step(struct al_decoder *d, const int32_t *seq, const int32_t *ids, int64_t n, const bool *want_logits,
                    float *logits)
{
    if (validate_step(d, seq, ids, n) != 0)
        return -1;
    int64_t out_row = 0;
    for (int64_t start = 0; start < n; start += d->max_step_tokens) {
        int64_t m = n - start < d->max_step_tokens ? n - start : d->max_step_tokens;
        if (run_chunk(d, seq + start, ids + start, m, want_logits ? want_logits + start : NULL, logits, &out_row) != 0)
            return -1;
    }
    return 0;
}
