/* A record that makes the gradient non-finite: the warning names it (record number, id,
 * data file) and the batch position, the stop says which --skip_batches to resume with,
 * and the resumed run equals a run given the same skip_batches from the start. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"
#include "train_testing.h"

/* The poisoned record: the 4th of the file. */
#define POISONED_INDEX 3
#define POISONED_MARK "4 (id benign-023)"
#define RECORDS 6

/* NaN in the embedding row of the DEL character's token: only records holding that
 * character get a non-finite loss and gradient (the lm_head is untied). */
static void poison_del_token(const char *model)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load(model);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, "\x7f", 1, 0, &tokens), 0, "%s", al_error_message());
    cr_assert_eq(tokens.count, 1, "DEL is one token");
    int32_t id = tokens.ids[0];
    al_tokens_free(&tokens);
    al_tokenizer_free(tokenizer);
    char *config_path = al_path_join(model, "config.json");
    cJSON *config = al_json_load_file(config_path);
    cr_assert_not_null(config, "%s", al_error_message());
    int64_t hidden = (int64_t)cJSON_GetObjectItem(config, "hidden_size")->valuedouble;
    cJSON_Delete(config);
    free(config_path);
    char *weights = al_path_join(model, "model.safetensors");
    cr_assert_eq(test_poison_f32(weights, "model.embed_tokens.weight", (int64_t)id * hidden, hidden), 0, "%s",
                 al_error_message());
    free(weights);
}

/* The first RECORDS records of the sample, one of them with DEL characters in its request. */
static char *write_data(const char *dir)
{
    char *text = al_file_read_all("data/agentalign_sample.json", NULL);
    cJSON *all = cJSON_Parse(text);
    cr_assert(cJSON_IsArray(all));
    cJSON *some = cJSON_CreateArray();
    for (int i = 0; i < RECORDS; i++)
        cJSON_AddItemToArray(some, cJSON_Duplicate(cJSON_GetArrayItem(all, i), 1));
    cJSON *user = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(some, POISONED_INDEX), "messages"), 0);
    char *content = al_strdup_printf("%s \x7f\x7f ", cJSON_GetObjectItem(user, "content")->valuestring);
    cJSON_ReplaceItemInObject(user, "content", cJSON_CreateString(content));
    char *printed = cJSON_Print(some);
    char *path = test_write_file(dir, "data.json", printed, strlen(printed));
    free(printed);
    free(content);
    cJSON_Delete(some);
    cJSON_Delete(all);
    free(text);
    return path;
}

struct run {
    char *root, *model, *data, *out;
};

static int train(const struct run *r, const char *name, char **output, const char *max_nonfinite, const char *extra1,
                 const char *extra2, const char *extra3, const char *extra4)
{
    const char *args[] = {"train", "--model", r->model, "--train_data", r->data, "--eval_fraction", "0",
                          "--chat_format", "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "0",
                          "--epochs", "1", "--save_every", "1", "--keep_last", "2", "--lora_r", "4", "--lr", "5e-3",
                          "--device", "cpu", "--output_dir", r->out, "--run_name", name, "--max_nonfinite_steps",
                          max_nonfinite, extra1, extra2, extra3, extra4, NULL};
    return test_run_cli_prepared(output, NULL, NULL, args);
}

/* The final adapter of a run (the checkpoint `latest` names). */
static char *final_adapter(const struct run *r, const char *name, size_t *size)
{
    char *latest_path = al_strdup_printf("%s/%s/latest", r->out, name);
    char *latest = al_file_read_all(latest_path, NULL);
    cr_assert_not_null(latest, "%s", al_error_message());
    latest[strcspn(latest, "\n")] = '\0';
    char *path = al_strdup_printf("%s/%s/%s/adapter_model.safetensors", r->out, name, latest);
    char *bytes = al_file_read_all(path, size);
    cr_assert_not_null(bytes, "%s", al_error_message());
    free(path);
    free(latest);
    free(latest_path);
    return bytes;
}

Test(train_skip_batches, a_bad_record_is_named_and_a_resume_can_skip_its_batch_exactly, .timeout = 180)
{
    struct run r;
    r.root = test_tmpdir();
    r.model = al_path_join(r.root, "model");
    r.out = al_path_join(r.root, "out");
    cr_assert_eq(test_write_trainable_model(r.model), 0, "%s", al_error_message());
    poison_del_token(r.model);
    r.data = write_data(r.root);

    char *output = NULL;
    cr_assert_eq(train(&r, "bad", &output, "1", NULL, NULL, NULL, NULL), 1, "%s", output);
    cr_assert(strstr(output, "non-finite gradient") && strstr(output, POISONED_MARK) && strstr(output, r.data),
              "the warning names the record and the data file:\n%s", output);
    const char *hint = strstr(output, "--skip_batches ");
    cr_assert_not_null(hint, "the stop says how to skip:\n%s", output);
    char skip[64];
    cr_assert_eq(sscanf(hint, "--skip_batches %63[0-9:,]", skip), 1, "%s", output);
    free(output);

    /* A bad value is a usage error. */
    cr_assert_eq(train(&r, "bad", &output, "3", "--resume", "auto", "--skip_batches", "4"), 2, "%s", output);
    free(output);

    cr_assert_eq(train(&r, "bad", &output, "3", "--resume", "auto", "--skip_batches", skip), 0, "%s", output);
    char skipping[128];
    snprintf(skipping, sizeof skipping, "skipping the batch at %s [", skip);
    cr_assert(strstr(output, skipping) && strstr(output, POISONED_MARK), "%s", output);
    free(output);
    cr_assert_eq(train(&r, "clean", &output, "3", "--skip_batches", skip, NULL, NULL), 0, "%s", output);
    free(output);

    size_t resumed_size = 0, straight_size = 0;
    char *resumed = final_adapter(&r, "bad", &resumed_size), *straight = final_adapter(&r, "clean", &straight_size);
    cr_assert(resumed_size == straight_size && memcmp(resumed, straight, resumed_size) == 0,
              "the resumed run must equal a run that skipped the batch from the start");
    free(resumed);
    free(straight);
    free(r.data);
    free(r.out);
    free(r.model);
    free(r.root);
}
