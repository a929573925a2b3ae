/* `agentlora train` generation eval with PING prefixes in ping_mode eval, and with the
 * model judge, on a tiny random model: the items ping_targets selects are generated after
 * the run's first prefix (the per-step samples record it, the metrics count them), the
 * completions differ from a run without it, the prefix is never part of the judged
 * completion; gen_eval_judge model with gen_eval_judge_model names the model judge in the
 * metrics, and without a folder it is an error. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "judge_testing.h"
#include "test_support.h"

#define TRAIN_DATA "data/agentalign_sample.json"
#define EVAL_DATA "data/agentalign_eval.json"
#define PING_PREFIXES "data/ping_prefixes.json"
/* A few items and tokens keep each measure to a fraction of a second. */
#define ITEMS "2"
#define TOKENS "6"

struct ping_run {
    char *root, *model, *output_dir;
};

/* root/tokenizer: the demo tokenizer with "Yes" and "No" added (judge_testing.h). */
static char *write_yes_no_tokenizer(const char *root)
{
    char *dir = al_path_join(root, "tokenizer");
    test_write_demo_tokenizer(dir, true);
    return dir;
}

static void ping_run_setup(struct ping_run *r)
{
    r->root = test_tmpdir();
    r->model = al_path_join(r->root, "judge-tiny");
    r->output_dir = al_path_join(r->root, "runs");
    char *tokenizer = write_yes_no_tokenizer(r->root);
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", tokenizer, "--init-std", "0.1",
                              "--out", r->model, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
    free(tokenizer);
}

static void ping_run_teardown(struct ping_run *r)
{
    free(r->model);
    free(r->output_dir);
    free(r->root);
}

/* One one-step run into output_dir/<name>, measured at steps 0 and 1; up to six extra
 * arguments (NULL-padded). */
static int train(struct ping_run *r, const char *name, char **output, const char *e1, const char *e2, const char *e3,
                 const char *e4, const char *e5, const char *e6)
{
    return test_run_cli(output, "train", "--model", r->model, "--train_data", TRAIN_DATA, "--eval_data", EVAL_DATA,
                        "--chat_format", "chatml-qwen2.5", "--max_len", "1024", "--max_steps", "1", "--lora_r", "4",
                        "--lr", "5e-2", "--warmup_ratio", "0", "--device", "cpu", "--output_dir", r->output_dir, "--run_name", name,
                        "--gen_eval_every", "1", "--gen_eval_items", ITEMS, "--gen_eval_max_new_tokens", TOKENS, e1,
                        e2, e3, e4, e5, e6, NULL);
}

static char *run_file(const struct ping_run *r, const char *name, const char *file)
{
    char *run = al_path_join(r->output_dir, name);
    char *path = al_path_join(run, file);
    free(run);
    return path;
}

/* The step-0 gen_eval line of a run's metrics.jsonl (caller deletes). */
static cJSON *first_gen_eval_line(const struct ping_run *r, const char *name)
{
    char *path = run_file(r, name, "metrics.jsonl");
    char *text = al_file_read_all(path, NULL);
    cr_assert_not_null(text, "%s missing", path);
    cJSON *found = NULL;
    for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
        cJSON *record = cJSON_Parse(line);
        cr_assert_not_null(record, "%s", line);
        if (strcmp(cJSON_GetObjectItem(record, "kind")->valuestring, "gen_eval") == 0)
            found = record;
        else
            cJSON_Delete(record);
    }
    cr_assert_not_null(found, "no gen_eval line in %s", path);
    free(text);
    free(path);
    return found;
}

struct samples {
    int n;
    bool harmful[16];
    char *prefix[16], *completion[16];
};

/* gen_eval_samples/step-0.jsonl of a run. */
static void read_samples(const struct ping_run *r, const char *name, struct samples *s)
{
    char *path = run_file(r, name, "gen_eval_samples/step-0.jsonl");
    char *text = al_file_read_all(path, NULL);
    cr_assert_not_null(text, "%s missing", path);
    memset(s, 0, sizeof *s);
    for (char *line = strtok(text, "\n"); line && s->n < 16; line = strtok(NULL, "\n")) {
        cJSON *item = cJSON_Parse(line);
        cr_assert_not_null(item, "%s", line);
        s->harmful[s->n] = strcmp(cJSON_GetObjectItem(item, "label")->valuestring, "harmful") == 0;
        s->prefix[s->n] = strdup(cJSON_GetObjectItem(item, "prefix")->valuestring);
        s->completion[s->n] = strdup(cJSON_GetObjectItem(item, "completion")->valuestring);
        s->n++;
        cJSON_Delete(item);
    }
    free(text);
    free(path);
}

static void free_samples(struct samples *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->prefix[i]);
        free(s->completion[i]);
    }
}

/* The completion of the first item of the given split. */
static const char *completion_of(const struct samples *s, bool harmful)
{
    for (int i = 0; i < s->n; i++)
        if (s->harmful[i] == harmful)
            return s->completion[i];
    cr_assert_fail("no %s item", harmful ? "harmful" : "benign");
    return NULL;
}

static char *first_ping_prefix(void)
{
    char *text = al_file_read_all(PING_PREFIXES, NULL);
    cJSON *list = text ? cJSON_Parse(text) : NULL;
    cr_assert(cJSON_IsArray(list));
    char *first = strdup(cJSON_GetArrayItem(list, 0)->valuestring);
    cJSON_Delete(list);
    free(text);
    return first;
}

Test(train_gen_eval_ping, eval_mode_prefills_the_first_prefix_for_the_targeted_split)
{
    struct ping_run r;
    ping_run_setup(&r);
    char *output = NULL;
    int status = train(&r, "plain", &output, NULL, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, output);
    free(output);
    status = train(&r, "ping", &output, "--ping_mode", "eval", "--ping_prefixes", PING_PREFIXES, NULL, NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, output);
    free(output);
    status = train(&r, "both", &output, "--ping_mode", "eval", "--ping_prefixes", PING_PREFIXES, "--ping_targets",
                   "both");
    cr_assert_eq(status, 0, "exit %d:\n%s", status, output);
    free(output);

    char *prefix = first_ping_prefix();
    struct samples plain, ping, both;
    read_samples(&r, "plain", &plain);
    read_samples(&r, "ping", &ping);
    read_samples(&r, "both", &both);
    cr_assert_eq(ping.n, 4, "two harmful and two benign items: %d", ping.n);
    cr_assert_eq(plain.n, 4);
    cr_assert_eq(both.n, 4);
    for (int i = 0; i < ping.n; i++) {
        cr_expect_str_eq(ping.prefix[i], ping.harmful[i] ? prefix : "", "item %d: only harmful items get it", i);
        cr_expect_str_eq(both.prefix[i], prefix, "item %d: ping_targets both", i);
        cr_expect_str_eq(plain.prefix[i], "", "item %d: ping_mode none", i);
        cr_expect_null(strstr(ping.completion[i], prefix), "the judged completion excludes the prefix");
    }
    cr_expect_str_neq(completion_of(&ping, true), completion_of(&plain, true),
                      "a harmful item continues the prefix, so its completion differs");
    cr_expect_str_eq(completion_of(&ping, false), completion_of(&plain, false), "benign items are untouched");

    cJSON *line = first_gen_eval_line(&r, "ping");
    double harmful_items = cJSON_GetObjectItem(line, "harmful_items")->valuedouble;
    cr_expect_gt(harmful_items, 0);
    cr_expect_eq(cJSON_GetObjectItem(line, "ping_prefixed_items")->valuedouble, harmful_items);
    cJSON_Delete(line);
    line = first_gen_eval_line(&r, "plain");
    cr_expect_eq(cJSON_GetObjectItem(line, "ping_prefixed_items")->valuedouble, 0);
    cJSON_Delete(line);

    free_samples(&plain);
    free_samples(&ping);
    free_samples(&both);
    free(prefix);
    ping_run_teardown(&r);
}

Test(train_gen_eval_ping, the_model_judge_can_judge_the_generation_eval)
{
    struct ping_run r;
    ping_run_setup(&r);
    char *output = NULL;
    int status = train(&r, "judged", &output, "--gen_eval_judge", "model", "--gen_eval_judge_model", r.model, NULL,
                       NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, output);
    cr_expect_not_null(strstr(output, "judge model:judge-tiny"), "%s", output);
    free(output);
    cJSON *line = first_gen_eval_line(&r, "judged");
    cr_expect_str_eq(cJSON_GetObjectItem(line, "judge")->valuestring, "model:judge-tiny");
    cJSON_Delete(line);

    status = train(&r, "unjudged", &output, "--gen_eval_judge", "model", NULL, NULL, NULL, NULL);
    cr_expect_eq(status, 1, "%s", output);
    cr_expect_not_null(strstr(output, "gen_eval_judge_model"), "%s", output);
    free(output);
    ping_run_teardown(&r);
}
