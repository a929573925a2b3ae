/* `agentlora ping-search` on a tiny random model (init-model with the demo tokenizer):
 * every candidate is scored and ranked, rounds ask the model for proposals, the best
 * prefixes are written as a JSON list that `agentlora eval --ping-prefixes` accepts, and
 * bad usage exits 2, bad input 1. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "test_support.h"

#define EVAL_DATA "data/agentalign_eval.json"
#define CANDIDATES "data/ping_prefixes.json"

static char *make_model(const char *parent)
{
    char *dir = al_path_join(parent, "model");
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", "data/demo-tokenizer",
                              "--init-std", "0.1", "--out", dir, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
    return dir;
}

Test(ping_search_cli, scores_ranks_and_writes_the_best_prefixes)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *best = al_path_join(dir, "best.json");
    char *out = NULL;
    int status = test_run_cli(&out, "ping-search", "--model", model, "--template", "chatml-qwen2.5", "--harmful",
                              EVAL_DATA, "--benign", EVAL_DATA, "--candidates", CANDIDATES, "--limit", "2",
                              "--max-new-tokens", "4", "--rounds", "2", "--propose", "3", "--out", best, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    cr_expect(strstr(out, "round 1: the model proposed "), "%s", out);
    cr_expect(strstr(out, "round 2: the model proposed "), "%s", out);
    cr_expect(strstr(out, "judged by learned-v1 without the prefix"), "%s", out);
    cr_expect(strstr(out, "rank   score  refusal  helpful round  prefix\n   1 "), "%s", out);
    cr_expect(strstr(out, "wrote the best 3 prefixes to "), "%s", out);

    size_t length;
    char *text = al_file_read_all(best, &length);
    cr_assert_not_null(text);
    cJSON *list = cJSON_Parse(text);
    cr_assert(cJSON_IsArray(list), "%s", text);
    cr_assert_eq(cJSON_GetArraySize(list), 3);
    /* The file lists the top three of the printed ranking, in order. */
    for (int i = 0; i < 3; i++) {
        char row[64];
        snprintf(row, sizeof row, "\n%4d ", i + 1);
        const char *line = strstr(out, row);
        cr_assert(line, "no rank %d row", i + 1);
        const char *end = strchr(line + 1, '\n');
        const char *prefix = cJSON_GetArrayItem(list, i)->valuestring;
        const char *found = strstr(line, prefix);
        cr_expect(found && found < end, "rank %d is \"%s\"", i + 1, prefix);
    }
    cJSON_Delete(list);
    free(text);
    free(out);

    /* eval takes the file as it is. */
    char *reports = al_path_join(dir, "eval");
    status = test_run_cli(&out, "eval", "--model", model, "--template", "chatml-qwen2.5", "--data", EVAL_DATA,
                          "--limit", "2", "--max-new-tokens", "2", "--ping-prefixes", best, "--out", reports, NULL);
    cr_expect_eq(status, 0, "eval with the written prefixes: %s", out);
    cr_expect(strstr(out, "prefix 3"), "three prefixed runs: %s", out);
    free(out);
    free(reports);
    free(best);
    free(model);
    free(dir);
}

Test(ping_search_cli, usage_and_input_errors)
{
    char *dir = test_tmpdir();
    char *out = NULL;
    cr_assert_eq(test_run_cli(&out, "ping-search", "--help", NULL), 0);
    const char *options[] = {"--model", "--adapter", "--harmful", "--benign", "--candidates", "--rounds", "--propose",
                             "--out", "--limit", "--template", "--max-new-tokens", "--judge", "--seed"};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        cr_expect(strstr(out, options[i]), "--help lacks %s", options[i]);
    free(out);
    cr_expect_eq(test_run_cli(&out, "ping-search", "--model", dir, "--harmful", EVAL_DATA, NULL), 2, "%s", out);
    free(out);
    cr_expect_eq(test_run_cli(&out, "ping-search", "--model", dir, "--harmful", EVAL_DATA, "--benign", EVAL_DATA,
                              "--candidates", CANDIDATES, "--rounds", "-1", NULL),
                 2, "%s", out);
    free(out);
    char *model = make_model(dir);
    cr_expect_eq(test_run_cli(&out, "ping-search", "--model", model, "--template", "chatml-qwen2.5", "--harmful",
                              EVAL_DATA, "--benign", EVAL_DATA, "--candidates", "no/such/file.json", NULL),
                 1, "%s", out);
    free(out);
    free(model);
    free(dir);
}
