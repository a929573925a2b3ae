/* Token-level generation: prefill every prompt in one decoder step, then choose a token
 * for each active sequence and feed it back, one step per token, until each sequence
 * writes a stop id, reaches max_new_tokens or fills the model's context
 * (max_position_embeddings). Finished sequences leave the batch; the others go on
 * without them. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"

const char *al_stop_reason_name(enum al_stop_reason reason)
{
    switch (reason) {
    case AL_STOP_END_OF_TURN: return "end of turn";
    case AL_STOP_MAX_TOKENS: return "max new tokens";
    case AL_STOP_CONTEXT_FULL: return "the end of the model's context";
    }
    return "?";
}

struct al_generate_options al_generate_default_options(void)
{
    return (struct al_generate_options){
        .max_new_tokens = AL_GENERATE_DEFAULT_MAX_NEW_TOKENS,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f, .seed = 0},
    };
}

static int push_unique(int32_t *ids, int count, int capacity, int32_t id, int vocab)
{
    if (id < 0 || id >= vocab || count >= capacity)
        return count;
    for (int i = 0; i < count; i++)
        if (ids[i] == id)
            return count;
    ids[count] = id;
    return count + 1;
}

int al_generate_stop_ids(const struct al_tokenizer *tokenizer, const struct al_model_config *config, int32_t *ids,
                         int capacity)
{
    int32_t found[AL_TOKENIZER_MAX_END_OF_TURN];
    int n_found = al_tokenizer_end_of_turn_ids(tokenizer, found, AL_TOKENIZER_MAX_END_OF_TURN);
    int count = 0;
    for (int i = 0; i < n_found; i++)
        count = push_unique(ids, count, capacity, found[i], config->vocab_size);
    for (int i = 0; i < config->num_eos_token_ids; i++)
        count = push_unique(ids, count, capacity, config->eos_token_ids[i], config->vocab_size);
    return count;
}

void al_token_generation_free(struct al_token_generation *generation)
{
    free(generation->ids);
    memset(generation, 0, sizeof *generation);
}

/* The state of one batch while it decodes. */
struct batch_run {
    const struct al_generate_options *options;
    int n;
    int vocab;
    struct al_decoder *decoder;
    struct al_token_sampler *samplers; /* [n] */
    struct al_token_generation *out;   /* [n] */
    bool *active;                      /* [n] */
    int *budget;                       /* [n]: new tokens sequence i may write */
    float *logits;                     /* [n, vocab]: row a belongs to the a-th active sequence */
    int32_t *seq, *ids;                /* [n]: one decode step */
};

static int check_request(const struct al_model_config *config, const struct al_token_prompt *prompts, int n,
                         const struct al_generate_options *options)
{
    if (n <= 0)
        return al_fail("generate: no prompts");
    if (options->max_new_tokens <= 0)
        return al_fail("generate: max_new_tokens must be positive, got %d", options->max_new_tokens);
    if (options->n_stop_ids < 0 || options->n_stop_ids > AL_GENERATE_MAX_STOP_IDS)
        return al_fail("generate: %d stop ids (at most %d)", options->n_stop_ids, AL_GENERATE_MAX_STOP_IDS);
    if (al_sampling_validate(&options->sampling) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (prompts[i].length <= 0)
            return al_fail("generate: prompt %d is empty", i);
        if (prompts[i].length >= config->max_position_embeddings)
            return al_fail("generate: prompt %d has %d tokens, leaving no room in the model's context of %d "
                           "(max_position_embeddings)",
                           i, prompts[i].length, config->max_position_embeddings);
        for (int t = 0; t < prompts[i].length; t++)
            if (prompts[i].ids[t] < 0 || prompts[i].ids[t] >= config->vocab_size)
                return al_fail("generate: prompt %d, token %d: id %d is outside the vocabulary [0, %d)", i, t,
                               prompts[i].ids[t], config->vocab_size);
    }
    return 0;
}

static void run_free(struct batch_run *run)
{
    for (int i = 0; run->samplers && i < run->n; i++)
        al_token_sampler_free(&run->samplers[i]);
    free(run->samplers);
    free(run->active);
    free(run->budget);
    free(run->logits);
    free(run->seq);
    free(run->ids);
    al_decoder_free(run->decoder);
}

static int run_open(struct batch_run *run, const struct al_model *model, const struct al_lora *lora,
                    const struct al_token_prompt *prompts, int n, const struct al_generate_options *options,
                    struct al_token_generation *out)
{
    const struct al_model_config *config = al_model_get_config(model);
    memset(run, 0, sizeof *run);
    run->options = options;
    run->n = n;
    run->vocab = config->vocab_size;
    run->out = out;
    run->samplers = calloc((size_t)n, sizeof *run->samplers);
    run->active = calloc((size_t)n, sizeof *run->active);
    run->budget = calloc((size_t)n, sizeof *run->budget);
    run->logits = malloc((size_t)n * (size_t)run->vocab * sizeof *run->logits);
    run->seq = malloc((size_t)n * sizeof *run->seq);
    run->ids = malloc((size_t)n * sizeof *run->ids);
    if (!run->samplers || !run->active || !run->budget || !run->logits || !run->seq || !run->ids)
        return al_fail("generate: out of memory for a batch of %d", n);
    int longest = 0; /* prompt and completion, the cache's capacity */
    for (int i = 0; i < n; i++) {
        int room = config->max_position_embeddings - prompts[i].length;
        run->budget[i] = options->max_new_tokens < room ? options->max_new_tokens : room;
        if (prompts[i].length + run->budget[i] > longest)
            longest = prompts[i].length + run->budget[i];
        out[i].ids = malloc((size_t)run->budget[i] * sizeof *out[i].ids);
        if (!out[i].ids)
            return al_fail("generate: out of memory");
        out[i].stop_id = -1;
        out[i].stop = AL_STOP_MAX_TOKENS;
        run->active[i] = true;
        if (al_token_sampler_init(&run->samplers[i], &options->sampling, run->vocab, prompts[i].stream) != 0)
            return -1;
    }
    run->decoder = al_decoder_create(model, lora, n, longest, options->max_step_tokens);
    return run->decoder ? 0 : -1;
}

/* All prompts in one step; logits of each prompt's last token land in row i. */
static int prefill(struct batch_run *run, const struct al_token_prompt *prompts)
{
    int64_t total = 0;
    for (int i = 0; i < run->n; i++)
        total += prompts[i].length;
    int32_t *seq = malloc((size_t)total * sizeof *seq), *ids = malloc((size_t)total * sizeof *ids);
    bool *want = malloc((size_t)total * sizeof *want);
    int rc = seq && ids && want ? 0 : al_fail("generate: out of memory for %lld prompt tokens", (long long)total);
    for (int i = 0, k = 0; rc == 0 && i < run->n; i++)
        for (int t = 0; t < prompts[i].length; t++, k++) {
            seq[k] = i;
            ids[k] = prompts[i].ids[t];
            want[k] = t == prompts[i].length - 1;
        }
    if (rc == 0)
        rc = al_decoder_step(run->decoder, seq, ids, total, want, run->logits);
    free(seq);
    free(ids);
    free(want);
    return rc;
}

static bool is_stop_id(const struct al_generate_options *options, int32_t id)
{
    for (int i = 0; i < options->n_stop_ids; i++)
        if (options->stop_ids[i] == id)
            return true;
    return false;
}

/* Chooses the next token of every active sequence (its logits are row `row` of the
 * previous step, rows in sequence order) and collects those that go on into the next
 * step. Returns how many go on, or -1. */
static int choose_tokens(struct batch_run *run)
{
    int row = 0, next = 0;
    for (int i = 0; i < run->n; i++) {
        if (!run->active[i])
            continue;
        int32_t token;
        if (al_token_sampler_next(&run->samplers[i], run->logits + (size_t)row++ * run->vocab, &token) != 0) {
            al_error_context("generate: sequence %d, new token %d", i, run->out[i].count);
            return -1;
        }
        struct al_token_generation *g = &run->out[i];
        if (is_stop_id(run->options, token)) {
            g->stop = AL_STOP_END_OF_TURN;
            g->stop_id = token;
            run->active[i] = false;
            continue;
        }
        g->ids[g->count++] = token;
        if (g->count == run->budget[i]) {
            if (g->count < run->options->max_new_tokens)
                g->stop = AL_STOP_CONTEXT_FULL;
            run->active[i] = false; /* its last token needs no forward pass */
            continue;
        }
        run->seq[next] = i;
        run->ids[next++] = token;
    }
    return next;
}

int al_generate_tokens(const struct al_model *model, const struct al_lora *lora, const struct al_token_prompt *prompts,
                       int n, const struct al_generate_options *options, struct al_token_generation *out)
{
    if (check_request(al_model_get_config(model), prompts, n, options) != 0)
        return -1;
    memset(out, 0, (size_t)n * sizeof *out);
    struct batch_run run;
    int rc = run_open(&run, model, lora, prompts, n, options, out);
    if (rc == 0)
        rc = prefill(&run, prompts);
    while (rc == 0) {
        int going_on = choose_tokens(&run);
        if (going_on <= 0) {
            rc = going_on;
            break;
        }
        rc = al_decoder_step(run.decoder, run.seq, run.ids, going_on, NULL, run.logits);
    }
    run_free(&run);
    if (rc != 0)
        for (int i = 0; i < n; i++)
            al_token_generation_free(&out[i]);
    return rc;
}
