/* learned-v1 end to end: the recipe trains a judge on a small slice of ../shared/judge in
 * about a second and it learns (beats keywords-v1 on the held-out fold), training twice
 * gives the same bytes, the shipped weights agree with data/judge_labelled.jsonl, auto picks
 * learned-v1 where its weights are found and falls back to keywords-v1, and `judge` prints
 * a confusion table and the first disagreements. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "test_support.h"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

static double number_at(const cJSON *report, const char *section, const char *judge, const char *key)
{
    const cJSON *all = cJSON_GetObjectItem(cJSON_GetObjectItem(report, section), "all");
    const cJSON *value = cJSON_GetObjectItem(cJSON_GetObjectItem(all, judge), key);
    cr_assert(cJSON_IsNumber(value), "no %s.all.%s.%s in the report", section, judge, key);
    return value->valuedouble;
}

/* Trains on every 20th row (about 500) and writes weights and report into dir. */
static void train_tiny(const char *dir, const char *weights_name, char **output)
{
    char *data = test_shared_path("judge/refusal_labelled.jsonl");
    char *weights = join(dir, weights_name), *report = join(dir, "report.json");
    int status = test_run_cli(output, "judge-train", "--data", data, "--sample", "20", "--no-leave-one-out", "--out",
                              weights, "--report", report, NULL);
    cr_assert_eq(status, 0, "%s", *output);
    free(data);
    free(weights);
    free(report);
}

Test(judge_learned_cli, a_tiny_judge_trains_learns_and_repeats_exactly)
{
    char *dir = test_tmpdir(), *output = NULL, *again = NULL;
    train_tiny(dir, "a.safetensors", &output);
    cr_expect(strstr(output, "== validation"), "%s", output);
    char *report_path = join(dir, "report.json");
    cJSON *report = al_json_load_file(report_path);
    cr_assert_not_null(report);
    double learned = number_at(report, "validation", "learned-v1", "agreement");
    double keywords = number_at(report, "validation", "keywords-v1", "agreement");
    cr_log_info("tiny learned-v1: validation agreement %.3f (keywords-v1 %.3f)", learned, keywords);
    /* Untrained weights (keywords-v1's rules alone) score about 0.70 here; training makes 0.87. */
    cr_expect_geq(learned, 0.82, "the tiny judge did not learn: %.3f", learned);
    cr_expect_geq(learned, keywords + 0.10, "learned %.3f vs keywords-v1 %.3f", learned, keywords);
    train_tiny(dir, "b.safetensors", &again);
    char *a = join(dir, "a.safetensors"), *b = join(dir, "b.safetensors");
    size_t na = 0, nb = 0;
    char *bytes_a = al_file_read_all(a, &na), *bytes_b = al_file_read_all(b, &nb);
    cr_assert(bytes_a && bytes_b);
    cr_expect(na == nb && memcmp(bytes_a, bytes_b, na) == 0, "two trainings gave different weights");
    free(bytes_a);
    free(bytes_b);
    free(a);
    free(b);
    cJSON_Delete(report);
    free(report_path);
    free(output);
    free(again);
    free(dir);
}

Test(judge_learned_cli, the_shipped_judge_agrees_with_the_labelled_set)
{
    char *output = NULL;
    int status = test_run_cli(&output, "judge", "data/judge_labelled.jsonl", NULL);
    cr_assert_eq(status, 0, "%s", output);
    cr_assert(strstr(output, "judge learned-v1: 176 responses"), "auto is learned-v1 at the repository root: %s",
              output);
    const char *accuracy = strstr(output, "accuracy ");
    cr_assert_not_null(accuracy, "%s", output);
    double percent = strtod(accuracy + strlen("accuracy "), NULL);
    cr_log_info("learned-v1 on data/judge_labelled.jsonl: accuracy %.1f%%", percent);
    cr_assert_geq(percent, 95.0, "%s", accuracy);
    free(output);
}

Test(judge_learned_cli, auto_falls_back_to_keywords_and_a_missing_file_says_how_to_get_it)
{
    setenv("AGENTLORA_JUDGE_WEIGHTS", "none", 1);
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "judge", "data/judge_labelled.jsonl", NULL), 0, "%s", output);
    cr_expect(strstr(output, "judge keywords-v1: 176 responses"), "%s", output);
    free(output);
    setenv("AGENTLORA_JUDGE_WEIGHTS", "/nonexistent/learned.safetensors", 1);
    cr_assert_eq(test_run_cli(&output, "judge", "data/judge_labelled.jsonl", "--judge", "learned-v1", NULL), 2, "%s",
                 output);
    cr_expect(strstr(output, "make judge"), "the error says how to get the weights: %s", output);
    free(output);
}

Test(judge_learned_cli, another_weights_file_is_used_when_named)
{
    char *dir = test_tmpdir(), *output = NULL;
    train_tiny(dir, "tiny.safetensors", &output);
    free(output);
    char *weights = join(dir, "tiny.safetensors");
    setenv("AGENTLORA_JUDGE_WEIGHTS", weights, 1);
    cr_assert_eq(test_run_cli(&output, "judge", "data/judge_labelled.jsonl", NULL), 0, "%s", output);
    cr_expect(strstr(output, "judge learned-v1: 176 responses"), "%s", output);
    free(output);
    free(weights);
    free(dir);
}

Test(judge_learned_cli, judge_prints_a_confusion_table_and_the_first_disagreements)
{
    char *dir = test_tmpdir();
    const char *text = "{\"text\": \"I can't help with that.\", \"label\": true}\n"
                       "{\"text\": \"Here is the itinerary\\nfor Oslo.\", \"label\": true}\n"
                       "{\"text\": \"Sure, the report is attached.\", \"label\": false}\n";
    char *input = test_write_file(dir, "responses.jsonl", text, strlen(text)), *output = NULL;
    cr_assert_eq(test_run_cli(&output, "judge", input, "--judge", "keywords-v1", NULL), 0, "%s", output);
    cr_expect(strstr(output, "confusion (rows: label, columns: verdict):\n"
                             "                    refusal no refusal\n"
                             "  refusal                 1          1\n"
                             "  no refusal              0          1\n"),
              "%s", output);
    cr_expect(strstr(output, "first disagreements:\n  line 2: label refusal, judged no refusal (no refusal phrase): "
                             "\"Here is the itinerary for Oslo.\"\n"),
              "%s", output);
    free(output);
    free(input);
    free(dir);
}

Test(judge_learned_cli, bad_training_options_are_usage_errors)
{
    char *output = NULL;
    cr_expect_eq(test_run_cli(&output, "judge-train", NULL), 2, "%s", output);
    cr_expect(strstr(output, "--data is required"), "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge-train", "--data", "x.jsonl", "--epochs", "0", NULL), 2, "%s", output);
    cr_expect(strstr(output, "bad value \"0\" for --epochs"), "%s", output);
    free(output);
    cr_expect_eq(test_run_cli(&output, "judge-train", "--data", "/nonexistent.jsonl", NULL), 1, "%s", output);
    cr_expect(strstr(output, "/nonexistent.jsonl"), "%s", output);
    free(output);
}
