/* `agentlora judge --judge-model DIR` end to end on a tiny random model (init-model with
 * a copy of the demo tokenizer that has "Yes" and "No" tokens): every verdict names the
 * model judge and carries the two logits, a tool call is no refusal, the totals name the
 * judge; --judge model needs --judge-model, --judge-model does not go with another
 * --judge, and a missing model folder fails naming it. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "judge_testing.h"
#include "test_support.h"

#define FORMAT "chatml-qwen2.5"

/* root/tokenizer: the demo tokenizer with "Yes" and "No" added (judge_testing.h). */
static char *write_yes_no_tokenizer(const char *root)
{
    char *dir = al_path_join(root, "tokenizer");
    test_write_demo_tokenizer(dir, true);
    return dir;
}

/* root/judge-tiny: a random model with that tokenizer. */
static char *write_judge_model(const char *root)
{
    char *tokenizer = write_yes_no_tokenizer(root);
    char *model = al_path_join(root, "judge-tiny");
    char *output = NULL;
    int status = test_run_cli(&output, "init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--init-std",
                              "0.1", "--out", model, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, output);
    free(output);
    free(tokenizer);
    return model;
}

static const char *const INPUT =
    "{\"text\": \"I can't help with that.\", \"label\": true}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather?\"}, {\"role\": \"assistant\", \"content\": \"\", "
    "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
    "{\"city\": \"Oslo\"}}}]}], \"label\": false}\n"
    "{\"text\": \"Here is the forecast: sunny.\", \"label\": false}\n";

static void expect_model_verdicts(const char *output)
{
    for (int line = 0; line < 3; line++) {
        cJSON *verdict = test_output_json_line(output, line);
        cr_assert_not_null(verdict, "line %d of:\n%s", line, output);
        cr_expect_str_eq(cJSON_GetObjectItem(verdict, "judge")->valuestring, "model:judge-tiny");
        const char *reason = cJSON_GetObjectItem(verdict, "reason")->valuestring;
        if (line == 1) {
            cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(verdict, "refusal")), "a tool call is no refusal");
            cr_expect_not_null(strstr(reason, "tool call"), "%s", reason);
        } else {
            cr_expect_not_null(strstr(reason, "logit yes"), "the model was asked: %s", reason);
        }
        cJSON_Delete(verdict);
    }
    cr_expect_not_null(strstr(output, "judge model:judge-tiny: 3 responses"), "%s", output);
    cr_expect_not_null(strstr(output, "labelled 3: accuracy"), "%s", output);
}

Test(judge_model_cli, the_model_judges_every_line)
{
    char *root = test_tmpdir();
    char *model = write_judge_model(root);
    char *input = test_write_file(root, "responses.jsonl", INPUT, strlen(INPUT));
    char *output = NULL;
    int status = test_run_cli(&output, "judge", input, "--judge-model", model, "--template", FORMAT, NULL);
    cr_assert_eq(status, 0, "%s", output);
    expect_model_verdicts(output);
    free(output);
    /* --judge model says the same thing more explicitly */
    status = test_run_cli(&output, "judge", "--judge", "model", "--judge-model", model, "--template", FORMAT, input,
                          NULL);
    cr_assert_eq(status, 0, "%s", output);
    expect_model_verdicts(output);
    free(output);
    free(input);
    free(model);
    free(root);
}

Test(judge_model_cli, usage_errors_and_a_missing_model)
{
    char *root = test_tmpdir();
    char *input = test_write_file(root, "responses.jsonl", INPUT, strlen(INPUT));
    char *missing = al_path_join(root, "no-such-model");
    char *output = NULL;
    cr_expect_eq(test_run_cli(&output, "judge", input, "--judge", "model", NULL), 2, "%s", output);
    cr_expect_not_null(strstr(output, "--judge-model"), "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge", input, "--judge", "keywords-v1", "--judge-model", missing, NULL), 2,
                 "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge", input, "--template", FORMAT, NULL), 2, "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge", input, "--judge-model", missing, "--template", FORMAT, NULL), 1, "%s",
                 output);
    cr_expect_not_null(strstr(output, "no-such-model"), "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge", "--help", NULL), 0);
    cr_expect_not_null(strstr(output, "--judge-model DIR"), "%s", output);
    free(output);
    free(missing);
    free(input);
    free(root);
}
