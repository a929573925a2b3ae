/* Choosing the next token from a row of logits: greedy, or temperature sampling within
 * the top-p nucleus, drawing from the sequence's own seeded generator (generate.h has the
 * exact semantics, edge cases included). */
#include <math.h>
#include <stdlib.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"

struct al_weighted_token {
    float weight; /* exp((logit - max) / temperature), in [0, 1] */
    int32_t id;
};

int al_sampling_validate(const struct al_sampling *sampling)
{
    if (!(sampling->temperature >= 0.0f) || !isfinite(sampling->temperature))
        return al_fail("temperature must be a finite number >= 0, got %g", (double)sampling->temperature);
    if (!(sampling->top_p >= 0.0f && sampling->top_p <= 1.0f))
        return al_fail("top_p must be in [0, 1], got %g", (double)sampling->top_p);
    return 0;
}

int al_token_sampler_init(struct al_token_sampler *sampler, const struct al_sampling *sampling, int vocab,
                          uint64_t stream)
{
    sampler->scratch = NULL;
    if (al_sampling_validate(sampling) != 0)
        return -1;
    if (vocab <= 0)
        return al_fail("sampler: vocabulary size must be positive, got %d", vocab);
    sampler->sampling = *sampling;
    sampler->vocab = vocab;
    al_rng_seed(&sampler->rng, sampling->seed, stream);
    sampler->scratch = malloc((size_t)vocab * sizeof *sampler->scratch);
    if (!sampler->scratch)
        return al_fail("sampler: out of memory for a vocabulary of %d", vocab);
    return 0;
}

void al_token_sampler_free(struct al_token_sampler *sampler)
{
    free(sampler->scratch);
    sampler->scratch = NULL;
}

/* The most likely token, the lowest id among equals; checks the row on the way. */
static int argmax(const float *logits, int vocab, int32_t *token)
{
    int32_t best = -1;
    for (int32_t id = 0; id < vocab; id++) {
        if (isnan(logits[id]) || logits[id] == INFINITY)
            return al_fail("logit of token %d is %g", id, (double)logits[id]);
        if (logits[id] != -INFINITY && (best < 0 || logits[id] > logits[best]))
            best = id;
    }
    if (best < 0)
        return al_fail("every token's logit is -inf");
    *token = best;
    return 0;
}

/* Higher weight first; equal weights by id, so the order never depends on qsort. */
static int by_weight_descending(const void *a, const void *b)
{
    const struct al_weighted_token *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Fills the scratch with the tempered weights (in id order) and returns their sum. */
static double tempered_weights(struct al_token_sampler *sampler, const float *logits, float max_logit)
{
    double total = 0.0;
    for (int32_t id = 0; id < sampler->vocab; id++) {
        float weight = expf((logits[id] - max_logit) / sampler->sampling.temperature);
        sampler->scratch[id] = (struct al_weighted_token){weight, id};
        total += weight;
    }
    return total;
}

/* Sorts the scratch and returns how many leading tokens form the nucleus; *mass gets
 * their total weight. */
static int nucleus(struct al_token_sampler *sampler, double total, double *mass)
{
    qsort(sampler->scratch, (size_t)sampler->vocab, sizeof *sampler->scratch, by_weight_descending);
    double needed = (double)sampler->sampling.top_p * total, sum = 0.0;
    int kept = 0;
    do {
        sum += sampler->scratch[kept++].weight;
    } while (kept < sampler->vocab && sum < needed);
    *mass = sum;
    return kept;
}

int al_token_sampler_next(struct al_token_sampler *sampler, const float *logits, int32_t *token)
{
    int32_t best = 0;
    if (argmax(logits, sampler->vocab, &best) != 0)
        return -1;
    if (sampler->sampling.temperature == 0.0f) {
        *token = best;
        return 0;
    }
    /* One draw per sampled token, even when the nucleus is a single token. */
    double u = (double)al_rng_uniform(&sampler->rng);
    double total = tempered_weights(sampler, logits, logits[best]);
    int kept = sampler->vocab;
    double mass = total;
    if (sampler->sampling.top_p < 1.0f)
        kept = nucleus(sampler, total, &mass);
    double target = u * mass, sum = 0.0;
    for (int i = 0; i < kept; i++) {
        sum += sampler->scratch[i].weight;
        if (target < sum && sampler->scratch[i].weight > 0.0f) {
            *token = sampler->scratch[i].id;
            return 0;
        }
    }
    /* Rounding left the target at the very end: the last token with any weight. */
    for (int i = kept - 1; i >= 0; i--)
        if (sampler->scratch[i].weight > 0.0f) {
            *token = sampler->scratch[i].id;
            return 0;
        }
    *token = best;
    return 0;
}
