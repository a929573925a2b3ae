/* A tiny model folder that `agentlora train` can run on in about a second: a small random
 * Llama whose vocabulary is the project's demo tokenizer (data/demo-tokenizer). */
#ifndef AGENTLORA_TRAIN_TESTING_H
#define AGENTLORA_TRAIN_TESTING_H

/* Writes the model into dir (created); returns 0 or -1 with al_error_message(). */
int test_write_trainable_model(const char *dir);

/* The arguments every training test shares, for argv arrays: model, data, sizes. */
#define TRAIN_TEST_MAX_LEN "1024"

#endif
