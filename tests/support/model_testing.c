#include "model_testing.h"

#include <stdlib.h>
#include <string.h>

#include "agentlora/random_model.h"
#include "agentlora/rng.h"
#include "backend/backend.h"
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

#define DEMO_TOKENIZER "data/demo-tokenizer"

int test_chat_model_open(struct test_chat_model *m, uint64_t seed, float init_std)
{
    memset(m, 0, sizeof *m);
    struct al_model_config config;
    if (!(m->tokenizer = al_tokenizer_load(DEMO_TOKENIZER)) || al_model_preset("tiny", &config) != 0)
        return -1;
    config.vocab_size = al_tokenizer_vocab_size(m->tokenizer);
    config.bos_token_id = -1;
    config.eos_token_ids[0] = al_tokenizer_eos_id(m->tokenizer);
    config.num_eos_token_ids = 1;
    m->dir = test_tmpdir();
    if (al_random_model_write_std(&config, AL_DTYPE_F32, seed, init_std, m->dir, 0) != 0)
        return -1;
    m->backend = al_backend_cpu_create();
    m->model = m->backend ? al_model_load(m->dir, m->backend) : NULL;
    return m->model ? 0 : -1;
}

void test_chat_model_close(struct test_chat_model *m)
{
    al_model_free(m->model);
    if (m->backend)
        al_backend_destroy(m->backend);
    al_tokenizer_free(m->tokenizer);
    free(m->dir);
    memset(m, 0, sizeof *m);
}
