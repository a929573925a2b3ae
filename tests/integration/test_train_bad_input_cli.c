/* `agentlora train` refuses, at the start and by name, runs that used to go wrong
 * silently or late: a tokenizer with ids past the model's vocab_size, nothing to learn
 * (every target truncated away), an absurd learning rate; and its load summary adds up
 * when a record is dropped. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"
#include "train_testing.h"

#define RECORD(ID, CATEGORY, CONTENT)                                                                              \
    "{\"id\": \"" ID "\", \"category\": \"" CATEGORY "\", \"messages\": [{\"role\": \"user\", \"content\": \""     \
    CONTENT "\"}, {\"role\": \"assistant\", \"content\": \"A reply that is long enough to train on.\"}]}\n"

#define GOOD_DATA RECORD("a", "benign", "Plan a trip.") RECORD("b", "privacy", "Find her address.") \
    RECORD("c", "benign", "Sum 2 and 3.")

struct run {
    char *root, *model, *out;
};

static void setup(struct run *r)
{
    r->root = test_tmpdir();
    r->model = al_path_join(r->root, "model");
    r->out = al_path_join(r->root, "out");
    cr_assert_eq(test_write_trainable_model(r->model), 0, "%s", al_error_message());
}

static void teardown(struct run *r)
{
    free(r->root);
    free(r->model);
    free(r->out);
}

static char *write_data(struct run *r, const char *text)
{
    char *path = test_write_file(r->root, "data.jsonl", text, strlen(text));
    cr_assert_not_null(path);
    return path;
}

static int train_as(struct run *r, const char *format, const char *data, char **output, const char *max_len,
                    const char *lr)
{
    return test_run_cli(output, "train", "--model", r->model, "--train_data", data, "--chat_format", format,
                        "--max_len", max_len, "--max_steps", "1", "--warmup_ratio", "0", "--save_every", "0",
                        "--lora_r", "2", "--lr", lr, "--eval_fraction", "0", "--device", "cpu", "--output_dir", r->out,
                        "--run_name", "run", NULL);
}

static int train(struct run *r, const char *data, char **output, const char *max_len, const char *lr)
{
    return train_as(r, "chatml-qwen2.5", data, output, max_len, lr);
}

static bool run_has_checkpoint(struct run *r)
{
    char *checkpoint = al_strdup_printf("%s/run/checkpoint-1", r->out);
    bool exists = al_dir_exists(checkpoint);
    free(checkpoint);
    return exists;
}

/* Gives the model folder's tokenizer one added token past the model's vocabulary. */
static void add_token_past_the_vocabulary(struct run *r)
{
    char *path = al_path_join(r->model, "tokenizer.json");
    cJSON *json = al_json_load_file(path);
    cr_assert_not_null(json, "%s", al_error_message());
    cJSON *token = cJSON_CreateObject();
    cJSON_AddNumberToObject(token, "id", 2048);
    cJSON_AddStringToObject(token, "content", "<|beyond|>");
    cJSON_AddBoolToObject(token, "single_word", false);
    cJSON_AddBoolToObject(token, "lstrip", false);
    cJSON_AddBoolToObject(token, "rstrip", false);
    cJSON_AddBoolToObject(token, "normalized", false);
    cJSON_AddBoolToObject(token, "special", true);
    cJSON_AddItemToArray(cJSON_GetObjectItem(json, "added_tokens"), token);
    char *text = cJSON_Print(json);
    cr_assert_eq(al_file_write_atomic(path, text, strlen(text)), 0, "%s", al_error_message());
    free(text);
    cJSON_Delete(json);
    free(path);
}

Test(train_bad_input_cli, a_tokenizer_id_past_vocab_size_is_refused_at_load, .timeout = 60)
{
    struct run r;
    setup(&r);
    add_token_past_the_vocabulary(&r);
    al_error_clear();
    struct al_tokenizer *tokenizer = al_tokenizer_load(r.model);
    cr_assert_null(tokenizer, "the tokenizer loaded");
    const char *message = al_error_message();
    cr_assert(strstr(message, "tokenizer.json") && strstr(message, "config.json"), "%s", message);
    cr_assert(strstr(message, "ids up to 2048") && strstr(message, "vocab_size 2048"), "%s", message);
    char *data = write_data(&r, GOOD_DATA);
    char *output = NULL;
    cr_assert_eq(train(&r, data, &output, "256", "1e-3"), 1, "%s", output);
    cr_assert(strstr(output, "tokenizer.json") && strstr(output, "vocab_size 2048"), "%s", output);
    cr_assert(!run_has_checkpoint(&r), "a checkpoint was written");
    free(output);
    free(data);
    teardown(&r);
}

Test(train_bad_input_cli, zero_target_tokens_fail_at_start_naming_max_len, .timeout = 60)
{
    struct run r;
    setup(&r);
    char *data = write_data(&r, GOOD_DATA);
    char *output = NULL;
    /* 8 tokens hold the chat header, never the assistant's reply. */
    cr_assert_eq(train(&r, data, &output, "8", "1e-3"), 1, "%s", output);
    cr_assert(strstr(output, "nothing to learn"), "%s", output);
    cr_assert(strstr(output, "max_len 8"), "%s", output);
    cr_assert(strstr(output, "3 of 3 records (100%) were truncated"), "%s", output);
    cr_assert(!run_has_checkpoint(&r), "an adapter trained on nothing was saved");
    free(output);
    free(data);
    teardown(&r);
}

Test(train_bad_input_cli, an_absurd_learning_rate_is_refused_before_loading, .timeout = 60)
{
    struct run r;
    setup(&r);
    char *data = write_data(&r, GOOD_DATA);
    char *output = NULL;
    cr_assert_eq(train(&r, data, &output, "256", "1e39"), 2, "a usage error: %s", output);
    cr_assert(strstr(output, "'lr'") && strstr(output, "(0, 1]"), "%s", output);
    free(output);
    free(data);
    teardown(&r);
}

/* One record of four has invalid UTF-8: it is skipped once, named by data file and
 * record, and records + skipped is four. */
Test(train_bad_input_cli, the_summary_adds_up_when_a_record_is_dropped, .timeout = 60)
{
    struct run r;
    setup(&r);
    char *data = write_data(&r, GOOD_DATA RECORD("d", "benign", "caf\xe9"));
    char *output = NULL;
    cr_assert_eq(train(&r, data, &output, "256", "1e-3"), 0, "%s", output);
    cr_assert(strstr(output, "records: 3 (harmful 1, benign 2)"), "%s", output);
    cr_assert(strstr(output, "skipped: 1\n"), "%s", output);
    char *reason = al_strdup_printf("%s: record 4 (line 4): invalid UTF-8", data);
    cr_assert(strstr(output, reason), "the reason should name the data file and record: %s", output);
    cr_assert(!strstr(output, "tokenizer.json: text is not valid UTF-8"), "%s", output);
    free(reason);
    free(output);
    free(data);
    teardown(&r);
}

/* A record the reader accepts but the chat format cannot render (mistral-v3 wants the
 * user first) is skipped at rendering: it leaves the accepted counts, is skipped once,
 * and the training record count leaves it out. */
Test(train_bad_input_cli, a_record_dropped_at_rendering_is_counted_once, .timeout = 60)
{
    struct run r;
    setup(&r);
    char *data = write_data(&r, GOOD_DATA "{\"id\": \"d\", \"category\": \"benign\", \"messages\": [{\"role\": "
                                          "\"assistant\", \"content\": \"First.\"}, {\"role\": \"user\", \"content\": "
                                          "\"Then.\"}, {\"role\": \"assistant\", \"content\": \"A reply.\"}]}\n");
    char *output = NULL;
    cr_assert_eq(train_as(&r, "mistral-v3", data, &output, "256", "1e-3"), 0, "%s", output);
    cr_assert(strstr(output, ", 3 training records"), "%s", output);
    cr_assert(strstr(output, "records: 3 (harmful 1, benign 2)"), "%s", output);
    cr_assert(strstr(output, "skipped: 1\n"), "%s", output);
    char *reason = al_strdup_printf("%s: record 4", data);
    cr_assert(strstr(output, reason), "%s", output);
    free(reason);
    free(output);
    free(data);
    teardown(&r);
}
