/* Runs that cannot learn are refused or warned about before they waste the time: the
 * default one-epoch run on five records (all in one batch of 4096 tokens: one step, at
 * warmup's learning rate 0), warmup that covers every step, eval_every with no eval
 * records, and a chat format that would drop the tool calls or the reasoning the records
 * hold. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"
#include "train_testing.h"

struct scratch {
    char *root, *model, *out, *five_records;
};

/* The first five records of the project's sample data, as a file of their own. */
static char *write_five_records(const char *dir)
{
    cJSON *all = al_json_load_file("data/agentalign_sample.json");
    cr_assert_not_null(all, "%s", al_error_message());
    while (cJSON_GetArraySize(all) > 5)
        cJSON_DeleteItemFromArray(all, 5);
    char *text = cJSON_PrintUnformatted(all);
    char *path = test_write_file(dir, "five.json", text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(all);
    return path;
}

static void scratch_setup(struct scratch *s)
{
    s->root = test_tmpdir();
    s->model = al_path_join(s->root, "model");
    s->out = al_path_join(s->root, "out");
    cr_assert_eq(test_write_trainable_model(s->model), 0, "%s", al_error_message());
    s->five_records = write_five_records(s->root);
}

static void scratch_teardown(struct scratch *s)
{
    free(s->model);
    free(s->out);
    free(s->five_records);
    free(s->root);
}

#define COMMON_ARGS(s)                                                                                            \
    "train", "--model", (s).model, "--chat_format", "chatml-qwen2.5", "--lora_r", "4",             \
        "--device", "cpu", "--output_dir", (s).out

Test(train_learnability, the_default_run_on_five_records_is_refused_not_trained_at_lr_0, .timeout = 60)
{
    struct scratch s;
    scratch_setup(&s);
    char *output = NULL;
    int status = test_run_cli(&output, COMMON_ARGS(s), "--train_data", s.five_records, "--run_name", "five",
                              "--max_len", "4096", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "cannot learn") && strstr(output, "learning rate 0") && strstr(output, "max_steps"),
              "%s", output);
    cr_assert_null(strstr(output, "training finished"), "%s", output);
    free(output);
    scratch_teardown(&s);
}

Test(train_learnability, warmup_over_every_step_and_eval_every_without_eval_records_are_warned, .timeout = 60)
{
    struct scratch s;
    scratch_setup(&s);
    char *output = NULL;
    int status = test_run_cli(&output, COMMON_ARGS(s), "--train_data", s.five_records, "--run_name", "warm",
                              "--max_len", TRAIN_TEST_MAX_LEN,                              "--max_steps", "2", "--warmup_steps", "2", "--eval_fraction", "0", "--eval_every",
                              "1", NULL);
    cr_assert_eq(status, 0, "%s", output);
    cr_assert(strstr(output, "warmup (2 steps) covers all 2 steps"), "%s", output);
    cr_assert(strstr(output, "eval_every 1, but there are no eval records"), "%s", output);
    cr_assert(strstr(output, "best loss     none (no evaluation ran"), "%s", output);
    free(output);
    scratch_teardown(&s);
}

/* smollm2's template leaves tools out: training tool records with it is refused, naming
 * the format, the record and the formats that can; chatml-tools trains them. */
Test(train_learnability, a_chat_format_that_drops_tool_calls_is_refused, .timeout = 60)
{
    struct scratch s;
    scratch_setup(&s);
    char *output = NULL;
    int status = test_run_cli(&output, "train", "--model", s.model, "--chat_format", "smollm2", "--train_data",
                              s.five_records, "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "2", "--device", "cpu",
                              "--output_dir", s.out, "--run_name", "smol", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "chat format smollm2 cannot represent") && strstr(output, "five.json record ") &&
                  strstr(output, "chatml-tools"),
              "%s", output);
    free(output);
    status = test_run_cli(&output, "train", "--model", s.model, "--chat_format", "chatml-tools", "--train_data",
                          s.five_records, "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "2", "--lora_r", "4",
                          "--device", "cpu", "--output_dir", s.out, "--run_name", "tools", NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    scratch_teardown(&s);
}

/* Only qwen3 has a place for an assistant's reasoning_content: another format refuses the
 * records, naming itself, the record and qwen3, which trains them. */
Test(train_learnability, a_chat_format_without_reasoning_is_refused, .timeout = 60)
{
    struct scratch s;
    scratch_setup(&s);
    static const char record[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"},"
                                 " {\"role\": \"assistant\", \"reasoning_content\": \"Two and two.\","
                                 " \"content\": \"4\"}]}\n";
    char *lines = al_strdup_printf("%s%s%s%s", record, record, record, record);
    char *data = test_write_file(s.root, "reasoning.jsonl", lines, strlen(lines));
    char *output = NULL;
    int status = test_run_cli(&output, COMMON_ARGS(s), "--train_data", data, "--max_len", TRAIN_TEST_MAX_LEN,
                              "--max_steps", "2", "--run_name", "qwen25", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "chat format chatml-qwen2.5 cannot represent the reasoning_content of message 2") &&
                  strstr(output, "reasoning.jsonl record ") && strstr(output, "qwen3"),
              "%s", output);
    free(output);
    status = test_run_cli(&output, "train", "--model", s.model, "--chat_format", "qwen3", "--train_data", data,
                          "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "2", "--lora_r", "4", "--warmup_ratio", "0",
                          "--device", "cpu", "--output_dir", s.out, "--run_name", "qwen3", NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    free(data);
    free(lines);
    scratch_teardown(&s);
}

/* An epoch is every training record used once: with all of them in one batch, each step
 * trains exactly the epoch's tokens (not records of the next epoch packed into the same
 * batch), and the header says how many epochs the steps make. */
Test(train_learnability, an_epoch_uses_each_record_once, .timeout = 60)
{
    struct scratch s;
    scratch_setup(&s);
    char *output = NULL;
    int status = test_run_cli(&output, COMMON_ARGS(s), "--train_data", s.five_records, "--run_name", "epochs",
                              "--max_len", "4096", "--epochs", "3", "--warmup_ratio", "0", NULL);
    cr_assert_eq(status, 0, "%s", output);
    cr_assert(strstr(output, "an epoch uses each training record once: 1 batch of") &&
                  strstr(output, "3 steps of 1 batch = 3.00 epochs"),
              "%s", output);
    const char *summary = strstr(output, "tokens: ");
    cr_assert_not_null(summary, "%s", output);
    long epoch_tokens = atol(summary + strlen("tokens: "));
    char *metrics_path = al_strdup_printf("%s/epochs/metrics.jsonl", s.out);
    char *metrics = al_file_read_all(metrics_path, NULL);
    cr_assert_not_null(metrics);
    int steps = 0;
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *record = cJSON_Parse(line);
        if (strcmp(cJSON_GetObjectItem(record, "kind")->valuestring, "train") == 0) {
            cr_expect_eq((long)cJSON_GetObjectItem(record, "tokens")->valuedouble, epoch_tokens,
                         "step %d trains more or less than one epoch", steps + 1);
            steps++;
        }
        cJSON_Delete(record);
    }
    cr_assert_eq(steps, 3);
    free(metrics);
    free(metrics_path);
    free(output);
    scratch_teardown(&s);
}
