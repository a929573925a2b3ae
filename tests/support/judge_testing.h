/* Test models that can be a model-as-judge: the demo vocabulary has "no" and " no" but no
 * single-token "Yes", so the judge tests add "Yes" and "No" to a copy of it. */
#ifndef AGENTLORA_JUDGE_TESTING_H
#define AGENTLORA_JUDGE_TESTING_H

#include <stdbool.h>

/* The ids the added "Yes" and "No" get: right after the demo vocabulary's 2048. */
#define TEST_YES_ID 2048
#define TEST_NO_ID 2049

/* Writes dir/tokenizer.json (the demo tokenizer's, with "Yes" and "No" added as plain
 * added tokens when with_yes_no) and dir/tokenizer_config.json, creating dir. */
void test_write_demo_tokenizer(const char *dir, bool with_yes_no);

#endif
