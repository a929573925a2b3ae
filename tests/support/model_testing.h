/* Helpers for tests that run whole models: batches, LoRA parameters, comparisons. */
#ifndef AGENTLORA_MODEL_TESTING_H
#define AGENTLORA_MODEL_TESTING_H

#include <stdint.h>

#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"

/* A packed batch of documents with the given lengths; ids drawn from a seed; every token
 * but each document's last has a target (the next id), except where mask_every > 0 and
 * i % mask_every == 0 (to exercise ignored targets). Arrays are owned by the struct. */
struct test_batch {
    struct al_batch batch;
    int32_t *ids, *targets, *positions, *doc_start;
};

void test_batch_make(struct test_batch *tb, const int *doc_lengths, int num_docs, int vocab, uint64_t seed,
                     int mask_every);
void test_batch_free(struct test_batch *tb);

/* Sets every LoRA parameter (A and B) to uniform random values in +-scale. */
int test_lora_randomize(struct al_lora *lora, uint64_t seed, float scale);

/* A tiny random Llama (preset "tiny") whose vocabulary and end-of-turn id are the demo
 * tokenizer's (data/demo-tokenizer), written to a new temporary folder and loaded on a CPU
 * backend: the model chat-level tests generate and score with. The same seed and std
 * always give the same weights. */
struct test_chat_model {
    char *dir;
    struct al_backend *backend;
    struct al_model *model;
    struct al_tokenizer *tokenizer;
};

/* 0, or -1 with al_error_message() (what is open is released by test_chat_model_close). */
int test_chat_model_open(struct test_chat_model *m, uint64_t seed, float init_std);
void test_chat_model_close(struct test_chat_model *m);

#endif
