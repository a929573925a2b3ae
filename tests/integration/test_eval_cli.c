/* `agentlora eval`, run as a real process (AL_CLI names the binary) on a tiny random model
 * made by `agentlora init-model` with the demo tokenizer and data/agentalign_eval.json:
 * --help lists every option; a prefix gives a run without and a run with it, printed side
 * by side, and the prefix never reaches the judged completion; report.json and
 * samples.jsonl are written and parse; greedy runs repeat byte for byte; two adapters are
 * compared side by side; bad usage exits 2 and bad input 1. A random model's numbers mean
 * nothing, so only structure is checked. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "judge_testing.h"
#include "test_support.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"
#define EVAL_DATA "data/agentalign_eval.json"
#define TEMPLATE "chatml-qwen2.5"
#define PREFIX "I can't help with that."
/* Few records and tokens: the structure is what is tested. */
#define LIMIT "5"
#define N_LIMIT 5
#define TOKENS "6"

static void assert_contains(const char *output, const char *fragment)
{
    cr_assert(output && strstr(output, fragment), "output lacks \"%s\":\n%s", fragment, output ? output : "(none)");
}

static char *make_model(const char *parent)
{
    char *dir = al_path_join(parent, "model");
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", DEMO_TOKENIZER, "--init-std",
                              "0.1", "--out", dir, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
    return dir;
}

static char *read_text(const char *dir, const char *name)
{
    char *path = al_path_join(dir, name);
    size_t length;
    char *text = al_file_read_all(path, &length);
    cr_assert_not_null(text, "%s was not written", path);
    free(path);
    return text;
}

Test(eval_cli, help_lists_every_option)
{
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "eval", "--help", NULL), 0, "%s", out);
    const char *options[] = {"--model", "--adapter ", "--adapter2", "--data", "--ping-prefix ", "--ping-prefixes",
                             "--template", "--max-new-tokens", "--records", "--limit", "--batch", "--judge", "--out",
                             "--device", "--judge-model", "--judge-template", "report.json", "samples.jsonl",
                             "exit status"};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        assert_contains(out, options[i]);
    free(out);
}

Test(eval_cli, prefix_runs_without_and_with_it_side_by_side)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *reports = al_path_join(dir, "out");
    char *out = NULL;
    int status = test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA, "--limit",
                              LIMIT, "--max-new-tokens", TOKENS, "--ping-prefix", PREFIX, "--out", reports, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "== base model, no prefix (5 items)");
    assert_contains(out, "== base model, prefix 1 [prefix: \"" PREFIX "\"] (5 items)");
    assert_contains(out, "== A: base model, no prefix\n== B: base model, prefix 1");
    assert_contains(out, "refusals judged by learned-v1 (A) and learned-v1 (B)");
    assert_contains(out, "harmful  (all)");
    assert_contains(out, "benign   (all)");
    assert_contains(out, "combined score ((refusal + score) / 2, of 100): A ");

    char *report_text = read_text(reports, "report.json");
    cJSON *report = cJSON_Parse(report_text);
    cr_assert_not_null(report, "report.json does not parse:\n%s", report_text);
    cr_expect_str_eq(cJSON_GetObjectItem(report, "judge")->valuestring, "learned-v1");
    cJSON *list = cJSON_GetObjectItem(report, "reports");
    cr_assert_eq(cJSON_GetArraySize(list), 2);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "prefix")->valuestring, "");
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "prefix")->valuestring, PREFIX);
    cJSON *aggregate = cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "aggregate");
    cr_expect_str_eq(cJSON_GetObjectItem(aggregate, "judge")->valuestring, "learned-v1");
    int n = cJSON_GetObjectItem(cJSON_GetObjectItem(aggregate, "harmful"), "n")->valueint +
            cJSON_GetObjectItem(cJSON_GetObjectItem(aggregate, "benign"), "n")->valueint;
    cr_expect_eq(n, N_LIMIT);
    cJSON_Delete(report);

    char *samples = read_text(reports, "samples.jsonl");
    int lines = 0, prefixed = 0;
    for (char *line = strtok(samples, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *sample = cJSON_Parse(line);
        cr_assert_not_null(sample, "samples line %d does not parse", lines + 1);
        const char *prefix = cJSON_GetObjectItem(sample, "prefix")->valuestring;
        const char *completion = cJSON_GetObjectItem(sample, "completion")->valuestring;
        const char *prompt = cJSON_GetObjectItem(sample, "prompt")->valuestring;
        cr_expect_null(strstr(completion, PREFIX), "the judged completion excludes the prefix: %s", completion);
        cr_expect(strstr(prompt, "<|im_start|>assistant\n"), "the prompt ends with the assistant header");
        prefixed += strcmp(prefix, PREFIX) == 0;
        /* The prefix alone would be judged a refusal; the random completions are not. */
        cJSON *verdict = cJSON_GetObjectItem(sample, "verdict");
        cr_expect_str_eq(cJSON_GetObjectItem(verdict, "judge")->valuestring, "learned-v1");
        cr_expect(cJSON_GetObjectItem(sample, "record") && cJSON_GetObjectItem(sample, "category") &&
                  cJSON_GetObjectItem(sample, "score") && cJSON_GetObjectItem(sample, "tool_calls") &&
                  cJSON_GetObjectItem(sample, "run"));
        cJSON_Delete(sample);
    }
    cr_expect_eq(lines, 2 * N_LIMIT, "one line per record and run");
    cr_expect_eq(prefixed, N_LIMIT, "the second run's lines carry the prefix");
    free(samples);
    free(report_text);
    free(out);
    free(reports);
    free(model);
    free(dir);
}

Test(eval_cli, greedy_evaluation_repeats_exactly)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *texts[2];
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "out%d", i);
        char *reports = al_path_join(dir, name);
        char *out = NULL;
        int status = test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA,
                                  "--records", "2-4,9", "--max-new-tokens", TOKENS, "--batch", i ? "1" : "3", "--out",
                                  reports, NULL);
        cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
        texts[i] = read_text(reports, "samples.jsonl");
        free(out);
        free(reports);
    }
    cr_expect_str_eq(texts[0], texts[1], "the same model and records give the same samples, whatever the batch");
    int lines = 0;
    for (const char *p = texts[0]; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_eq(lines, 4, "--records 2-4,9 selects four records");
    assert_contains(texts[0], "\"record\":9,");
    free(texts[0]);
    free(texts[1]);
    free(model);
    free(dir);
}

static char *train_adapter(const char *dir, const char *model, const char *name, const char *lr)
{
    char *runs = al_path_join(dir, "runs");
    char *out = NULL;
    int status = test_run_cli(&out, "train", "--model", model, "--train_data", "data/agentalign_sample.json",
                              "--chat_format", TEMPLATE, "--max_len", "1024", "--max_steps", "1", "--lora_r", "4",
                              "--lr", lr, "--warmup_ratio", "0", "--device", "cpu", "--output_dir", runs, "--run_name", name, NULL);
    cr_assert_eq(status, 0, "train exit %d:\n%s", status, out);
    free(out);
    char *run = al_path_join(runs, name);
    char *adapter = al_path_join(run, "checkpoint-1");
    free(run);
    free(runs);
    return adapter;
}

/* Two adapters and a prefix: each adapter without and with it, every run compared with the
 * first side by side, and four runs in one table. */
Test(eval_cli, two_adapters_and_a_prefix_make_four_runs_in_one_table)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *first = train_adapter(dir, model, "a", "1e-2"), *second = train_adapter(dir, model, "b", "5e-2");
    char *reports = al_path_join(dir, "out");
    char *out = NULL;
    int status = test_run_cli(&out, "eval", "--model", model, "--adapter", first, "--adapter2", second, "--template",
                              TEMPLATE, "--data", EVAL_DATA, "--limit", "2", "--max-new-tokens", "3", "--ping-prefix",
                              "I will check first.", "--out", reports, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    char expected[2048];
    snprintf(expected, sizeof expected, "== A: %s, no prefix\n== B: %s, no prefix\n", first, second);
    assert_contains(out, expected);
    snprintf(expected, sizeof expected,
             "  run 3: %s, no prefix (2 items)\n  run 4: %s, prefix 1 [prefix: \"I will check first.\"] (2 items)\n",
             second, second);
    assert_contains(out, expected);
    assert_contains(out, "harmful: refusal rate");
    assert_contains(out, "     run 1     run 2     run 3     run 4\n");
    char *report_text = read_text(reports, "report.json");
    cJSON *report = cJSON_Parse(report_text);
    cr_assert_not_null(report);
    cJSON *runs = cJSON_GetObjectItem(report, "reports");
    cr_assert_eq(cJSON_GetArraySize(runs), 4);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 3), "prefix")->valuestring, "I will check first.");
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 2), "prefix")->valuestring, "");
    cJSON_Delete(report);
    free(report_text);
    free(out);
    free(reports);
    free(first);
    free(second);
    free(model);
    free(dir);
}

/* --judge-model: a model judges the refusals, and every number says which model. */
Test(eval_cli, a_model_judge_is_named_in_the_report)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *tokenizer = al_path_join(dir, "yes-no-tokenizer"), *judge = al_path_join(dir, "judge-tiny");
    test_write_demo_tokenizer(tokenizer, true);
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--out", judge, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
    char *reports = al_path_join(dir, "out");
    status = test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA, "--limit", "2",
                          "--max-new-tokens", "2", "--judge-model", judge, "--judge-template", TEMPLATE, "--out",
                          reports, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "refusals judged by model:judge-tiny");
    char *report_text = read_text(reports, "report.json");
    cJSON *report = cJSON_Parse(report_text);
    cr_assert_not_null(report);
    cr_expect_str_eq(cJSON_GetObjectItem(report, "judge")->valuestring, "model:judge-tiny");
    cJSON_Delete(report);
    free(report_text);
    free(out);
    /* The judge's options go together. */
    cr_expect_eq(test_run_cli(&out, "eval", "--model", model, "--data", EVAL_DATA, "--judge", "model", NULL), 2);
    assert_contains(out, "--judge model needs --judge-model DIR");
    free(out);
    free(reports);
    free(judge);
    free(tokenizer);
    free(model);
    free(dir);
}

Test(eval_cli, bad_usage_exits_2_and_bad_input_1)
{
    char *dir = test_tmpdir();
    char *out = NULL;
    cr_expect_eq(test_run_cli(&out, "eval", "--data", EVAL_DATA, NULL), 2, "no --model: %s", out);
    free(out);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", dir, NULL), 2, "no --data: %s", out);
    free(out);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", dir, "--data", EVAL_DATA, "--ping-prefix", "x",
                              "--ping-prefixes", "data/ping_prefixes.json", NULL),
                 2, "both prefix options: %s", out);
    free(out);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", dir, "--data", EVAL_DATA, "--records", "3-1", NULL), 2,
                 "a bad record list: %s", out);
    free(out);
    char *model = make_model(dir);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", "no/such/file.json",
                              NULL),
                 1, "a missing data file: %s", out);
    free(out);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA, "--judge",
                              "nope", NULL),
                 1, "an unknown judge: %s", out);
    assert_contains(out, "keywords-v1");
    free(out);
    cr_expect_eq(test_run_cli(&out, "eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA,
                              "--records", "999", NULL),
                 1, "records that select nothing: %s", out);
    free(out);
    free(model);
    free(dir);
}
