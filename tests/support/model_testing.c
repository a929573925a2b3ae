#include "model_testing.h"

#include <stdlib.h>

#include "agentlora/rng.h"
#include "test_support.h"

void test_batch_make(struct test_batch *tb, const int *doc_lengths, int num_docs, int vocab, uint64_t seed,
                     int mask_every)
{
    int64_t n = 0;
    for (int d = 0; d < num_docs; d++)
        n += doc_lengths[d];
    tb->ids = malloc((size_t)n * sizeof(int32_t));
    tb->targets = malloc((size_t)n * sizeof(int32_t));
    tb->positions = malloc((size_t)n * sizeof(int32_t));
    tb->doc_start = malloc((size_t)n * sizeof(int32_t));
    struct al_rng rng;
    al_rng_seed(&rng, seed, 3);
    for (int64_t i = 0; i < n; i++)
        tb->ids[i] = (int32_t)al_rng_below(&rng, (uint32_t)vocab);
    int64_t start = 0;
    for (int d = 0; d < num_docs; d++) {
        for (int t = 0; t < doc_lengths[d]; t++) {
            int64_t i = start + t;
            tb->positions[i] = t;
            tb->doc_start[i] = (int32_t)start;
            bool last = t == doc_lengths[d] - 1;
            bool masked = mask_every > 0 && i % mask_every == 0;
            tb->targets[i] = last || masked ? -1 : tb->ids[i + 1];
        }
        start += doc_lengths[d];
    }
    tb->batch = (struct al_batch){n, tb->ids, tb->targets, tb->positions, tb->doc_start};
}

void test_batch_free(struct test_batch *tb)
{
    free(tb->ids);
    free(tb->targets);
    free(tb->positions);
    free(tb->doc_start);
}

int test_lora_randomize(struct al_lora *lora, uint64_t seed, float scale)
{
    float *host = malloc((size_t)lora->num_params * sizeof(float));
    if (!host)
        return -1;
    test_fill_random(host, lora->num_params, seed, scale);
    int rc = al_lora_upload_params(lora, host);
    free(host);
    return rc;
}
