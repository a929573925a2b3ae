/* `agentlora train` with the generation eval and the misalignment alarm, on a tiny random
 * model (init-model with the demo tokenizer): gen_eval lines (with the judge's name) land in
 * metrics.jsonl at step 0 and later; the alarm warns, or with on_misalignment stop ends the
 * run with a message naming the best checkpoint by combined score, which exists; that
 * checkpoint survives keep_last; the generation eval does not change what training
 * computes (the adapter is byte-identical to a run without it); a resumed run keeps the
 * step-0 baseline; bad values of the new keys are usage errors. A threshold of -100 makes
 * the alarm fire at every measure after the baseline. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/checkpoint.h"
#include "agentlora/file.h"
#include "test_support.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"
#define TRAIN_DATA "data/agentalign_sample.json"
#define EVAL_DATA "data/agentalign_eval.json"
/* A few items and tokens keep each measure to a fraction of a second. */
#define ITEMS "2"
#define TOKENS "4"

struct gen_run {
    char *root, *model, *output_dir;
};

static void gen_run_setup(struct gen_run *r)
{
    r->root = test_tmpdir();
    r->model = al_path_join(r->root, "model");
    r->output_dir = al_path_join(r->root, "runs");
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", DEMO_TOKENIZER, "--init-std",
                              "0.1", "--out", r->model, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
}

static void gen_run_teardown(struct gen_run *r)
{
    free(r->model);
    free(r->output_dir);
    free(r->root);
}

/* One run into output_dir/<name>; up to eight extra arguments (NULL-padded). */
static int train(struct gen_run *r, const char *name, const char *steps, char **output, const char *e1,
                 const char *e2, const char *e3, const char *e4, const char *e5, const char *e6, const char *e7,
                 const char *e8)
{
    return test_run_cli(output, "train", "--model", r->model, "--train_data", TRAIN_DATA, "--eval_data", EVAL_DATA,
                        "--chat_format", "chatml-qwen2.5", "--max_len", "1024", "--max_steps", steps, "--lora_r", "4",
                        "--lora_dropout", "0.1", "--lr", "5e-2", "--device", "cpu", "--output_dir", r->output_dir,
                        "--run_name", name, "--gen_eval_items", ITEMS, "--gen_eval_max_new_tokens", TOKENS, e1, e2,
                        e3, e4, e5, e6, e7, e8, NULL);
}

static char *run_file(const struct gen_run *r, const char *name, const char *file)
{
    char *run = al_path_join(r->output_dir, name);
    char *path = al_path_join(run, file);
    free(run);
    return path;
}

/* The steps of the gen_eval lines of a run's metrics.jsonl, each checked for its judge. */
static int gen_eval_steps(const struct gen_run *r, const char *name, int *steps, int capacity)
{
    char *path = run_file(r, name, "metrics.jsonl");
    char *text = al_file_read_all(path, NULL);
    cr_assert_not_null(text, "%s missing", path);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *record = cJSON_Parse(line);
        cr_assert_not_null(record, "metrics line does not parse: %s", line);
        if (strcmp(cJSON_GetObjectItem(record, "kind")->valuestring, "gen_eval") == 0 && n < capacity) {
            cr_expect_str_eq(cJSON_GetObjectItem(record, "judge")->valuestring, "learned-v1");
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(record, "harmful_refusal_rate")));
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(record, "benign_helpfulness")));
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(record, "combined_score")));
            steps[n++] = cJSON_GetObjectItem(record, "step")->valueint;
        }
        cJSON_Delete(record);
    }
    free(text);
    free(path);
    return n;
}

/* The checkpoint folder the output names after `marker` ... up to " (". */
static char *named_checkpoint(const char *output, const char *marker)
{
    const char *start = strstr(output, marker);
    cr_assert(start, "output lacks \"%s\":\n%s", marker, output);
    start += strlen(marker);
    const char *end = strstr(start, " (");
    cr_assert(end, "no score after the checkpoint:\n%s", output);
    return strndup(start, (size_t)(end - start));
}

Test(train_gen_eval, measures_at_step_0_and_every_n_steps_and_warns)
{
    struct gen_run r;
    gen_run_setup(&r);
    char *output = NULL;
    int status = train(&r, "warn", "4", &output, "--gen_eval_every", "2", "--save_every", "1", "--keep_last", "1",
                       "--misalignment_threshold", "-100");
    cr_assert_eq(status, 0, "exit %d:\n%s", status, output);
    int steps[16];
    int n = gen_eval_steps(&r, "warn", steps, 16);
    cr_assert_eq(n, 5, "step 0 and steps 1-4 (every checkpoint is scored): %d lines", n);
    for (int i = 0; i < n; i++)
        cr_expect_eq(steps[i], i);
    cr_expect(strstr(output, "misalignment alarm at step 2"), "%s", output);
    cr_expect(strstr(output, "misalignment alarm at step 4"), "%s", output);
    cr_expect_null(strstr(output, "misalignment alarm at step 1:"), "only measures due by gen_eval_every alarm");
    cr_expect(strstr(output, "training finished"), "warn does not stop the run:\n%s", output);
    /* keep_last 1 keeps the newest checkpoint and the best one. */
    char *best = named_checkpoint(output, "best checkpoint by combined score ((harmful refusal rate + benign "
                                          "helpfulness) / 2, judge learned-v1): ");
    cr_expect_eq(al_checkpoint_verify(best), 0, "the best checkpoint %s is kept and intact", best);
    char *last = run_file(&r, "warn", "checkpoint-4");
    cr_expect(al_dir_exists(last), "the newest checkpoint is kept");
    char *third = run_file(&r, "warn", "checkpoint-3");
    if (strcmp(best, third) != 0)
        cr_expect_not(al_dir_exists(third), "keep_last still deletes the others");
    char *state = run_file(&r, "warn", "gen_eval.json");
    cr_expect(al_file_exists(state));
    free(state);
    free(third);
    free(last);
    free(best);
    free(output);
    gen_run_teardown(&r);
}

Test(train_gen_eval, stop_names_the_best_checkpoint)
{
    struct gen_run r;
    gen_run_setup(&r);
    char *output = NULL;
    int status = train(&r, "stop", "6", &output, "--gen_eval_every", "3", "--save_every", "2",
                       "--misalignment_threshold", "-100", "--on_misalignment", "stop");
    cr_assert_eq(status, 1, "the alarm stops the run with exit 1:\n%s", output);
    cr_expect(strstr(output, "stopping: misalignment alarm at step 3"), "%s", output);
    char *best = named_checkpoint(output, "the best checkpoint by combined score ((refusal rate + helpfulness) / 2) is ");
    cr_expect_eq(al_checkpoint_verify(best), 0, "the named checkpoint %s exists and verifies", best);
    char *unreached = run_file(&r, "stop", "checkpoint-4");
    cr_expect_not(al_dir_exists(unreached), "the run stopped at step 3");
    int steps[16];
    int n = gen_eval_steps(&r, "stop", steps, 16);
    cr_expect_eq(n, 3, "step 0, checkpoint 2, step 3: %d", n);
    cr_expect_eq(steps[0], 0);
    free(unreached);
    free(best);
    free(output);
    gen_run_teardown(&r);
}

static void *read_adapter(const struct gen_run *r, const char *name, size_t *length)
{
    char *path = run_file(r, name, "checkpoint-3/adapter_model.safetensors");
    void *bytes = al_file_read_all(path, length);
    cr_assert_not_null(bytes, "%s missing", path);
    free(path);
    return bytes;
}

Test(train_gen_eval, does_not_change_what_training_computes)
{
    struct gen_run r;
    gen_run_setup(&r);
    char *output = NULL;
    int status = train(&r, "plain", "3", &output, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    status = train(&r, "measured", "3", &output, "--gen_eval_every", "1", NULL, NULL, NULL, NULL, NULL, NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    size_t a_length, b_length;
    void *a = read_adapter(&r, "plain", &a_length), *b = read_adapter(&r, "measured", &b_length);
    cr_assert_eq(a_length, b_length);
    cr_expect_eq(memcmp(a, b, a_length), 0, "the adapter is the same with and without the generation eval");
    free(a);
    free(b);
    gen_run_teardown(&r);
}

Test(train_gen_eval, a_resumed_run_keeps_the_baseline)
{
    struct gen_run r;
    gen_run_setup(&r);
    char *output = NULL;
    int status =
        train(&r, "resumed", "2", &output, "--gen_eval_every", "2", "--save_every", "2", NULL, NULL, NULL, NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    status = train(&r, "resumed", "4", &output, "--gen_eval_every", "2", "--save_every", "2", "--resume", "auto", NULL,
                   NULL);
    cr_assert_eq(status, 0, "%s", output);
    int steps[16];
    int n = gen_eval_steps(&r, "resumed", steps, 16);
    cr_assert_eq(n, 3, "step 0 once, then 2 and 4: %d", n);
    cr_expect_eq(steps[0], 0);
    cr_expect_eq(steps[1], 2);
    cr_expect_eq(steps[2], 4);
    cr_expect(strstr(output, "generation eval at step 4"), "%s", output);
    cr_expect_null(strstr(output, "generation eval at step 2 "), "the resumed run does not measure again at 2");
    free(output);
    gen_run_teardown(&r);
}

Test(train_gen_eval, bad_values_are_usage_errors_and_help_lists_the_keys)
{
    struct gen_run r;
    gen_run_setup(&r);
    char *output = NULL;
    cr_expect_eq(train(&r, "bad", "2", &output, "--on_misalignment", "panic", NULL, NULL, NULL, NULL, NULL, NULL), 2,
                 "%s", output);
    cr_expect(strstr(output, "on_misalignment"), "%s", output);
    free(output);
    cr_expect_eq(train(&r, "bad", "2", &output, "--gen_eval_items", "0", NULL, NULL, NULL, NULL, NULL, NULL), 2, "%s",
                 output);
    free(output);
    cr_expect_eq(train(&r, "bad", "2", &output, "--gen_eval_every", "1", "--gen_eval_judge", "nope", NULL, NULL, NULL,
                       NULL),
                 1, "an unknown judge is bad input: %s", output);
    cr_expect(strstr(output, "keywords-v1"), "the error lists the judges: %s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "train", "--help", NULL), 0);
    const char *keys[] = {"gen_eval_every", "gen_eval_items", "gen_eval_max_new_tokens", "gen_eval_judge",
                          "misalignment_threshold", "on_misalignment"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect(strstr(output, keys[i]), "--help lacks %s", keys[i]);
    free(output);
    gen_run_teardown(&r);
}
