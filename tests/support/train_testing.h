/* A tiny model folder that `agentlora train` can run on in about a second: a small random
 * Llama whose vocabulary is the project's demo tokenizer (data/demo-tokenizer). */
#ifndef AGENTLORA_TRAIN_TESTING_H
#define AGENTLORA_TRAIN_TESTING_H

#include <stdint.h>

/* Writes the model into dir (created); returns 0 or -1 with al_error_message(). */
int test_write_trainable_model(const char *dir);

/* Overwrites elements [first, first + count) of an F32 tensor of a safetensors file with
 * NaN, in place (same path, so a resumed run accepts the model). */
int test_poison_f32(const char *path, const char *tensor, int64_t first, int64_t count);

/* The arguments every training test shares, for argv arrays: model, data, sizes. */
#define TRAIN_TEST_MAX_LEN "1024"

#endif
