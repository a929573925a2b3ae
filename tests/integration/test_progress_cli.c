/* Progress of the long commands, run as real processes whose stderr is a pipe (never a
 * terminal): eval, generate --data and judge print progress lines with --progress and none
 * without it, and the rest of their output stays what it was; every command that takes
 * --progress says so in its --help. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "test_support.h"

#define EVAL_DATA "data/agentalign_eval.json"
#define TEMPLATE "chatml-qwen2.5"

static char *make_model(const char *parent)
{
    char *out;
    char *dir = test_cli_tiny_model(parent, &out);
    cr_assert_not_null(dir, "init-model failed:\n%s", out);
    return dir;
}

/* Whether a line is a progress line of `label` ("eval: 3/6 items | ..."). */
static bool is_progress_line(const char *line, size_t length, const char *label)
{
    size_t label_length = strlen(label);
    return length > label_length + 2 && strncmp(line, label, label_length) == 0 && line[label_length] == ':' &&
           memmem(line, length, " items | ", 9) != NULL;
}

/* The output without its progress lines, and how many there were. */
static char *without_progress(const char *output, const char *label, int *removed)
{
    char *kept = calloc(strlen(output) + 1, 1);
    cr_assert_not_null(kept);
    *removed = 0;
    for (const char *line = output; *line;) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) + 1 : strlen(line);
        if (is_progress_line(line, length, label))
            ++*removed;
        else
            strncat(kept, line, length);
        line += length;
    }
    return kept;
}

/* Runs the command with and without --progress (the same output folder, so that paths in
 * the output agree): only the run with it has progress lines, which name the items done,
 * and apart from them the outputs are the same. */
static void check_progress(const char *label, const char *expected_start, const char *expected_end,
                           const char *const *arguments)
{
    const char *with[32], *without[32];
    int n = 0;
    for (; arguments[n]; n++)
        with[n] = without[n] = arguments[n];
    cr_assert_lt(n, 30);
    without[n] = NULL;
    with[n] = "--progress";
    with[n + 1] = NULL;
    char *quiet = NULL, *shown = NULL;
    int status = test_run_cli_prepared(&quiet, NULL, NULL, without);
    cr_assert_eq(status, 0, "%s without --progress: exit %d:\n%s", label, status, quiet);
    status = test_run_cli_prepared(&shown, NULL, NULL, with);
    cr_assert_eq(status, 0, "%s --progress: exit %d:\n%s", label, status, shown);
    int removed;
    char *rest = without_progress(quiet, label, &removed);
    cr_expect_eq(removed, 0, "%s printed progress to a pipe without --progress:\n%s", label, quiet);
    free(rest);
    rest = without_progress(shown, label, &removed);
    cr_expect_geq(removed, 2, "%s --progress printed %d progress lines:\n%s", label, removed, shown);
    cr_expect(strstr(shown, expected_start), "%s --progress lacks \"%s\":\n%s", label, expected_start, shown);
    cr_expect(strstr(shown, expected_end), "%s --progress lacks \"%s\":\n%s", label, expected_end, shown);
    cr_expect_str_eq(rest, quiet, "--progress changed the rest of the output of %s", label);
    free(rest);
    free(quiet);
    free(shown);
}

Test(progress_cli, eval_shows_progress_only_when_asked)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *reports = al_path_join(dir, "out");
    /* Two runs (without and with the prefix) of 3 records: one progress over 6 items. */
    const char *arguments[] = {"eval", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA, "--limit", "3",
                               "--max-new-tokens", "4", "--ping-prefix", "I can't help with that.", "--out", reports,
                               NULL};
    check_progress("eval", "eval: 0/6 items | eta ?\n", "eval: 6/6 items | ", arguments);
    free(reports);
    free(model);
    free(dir);
}

Test(progress_cli, generate_data_shows_progress_only_when_asked)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    const char *arguments[] = {"generate", "--model", model, "--template", TEMPLATE, "--data", EVAL_DATA,
                               "--records", "1-3", "--batch", "2", "--max-new-tokens", "4", NULL};
    check_progress("generate", "generate: 0/3 items | eta ?\n", "generate: 3/3 items | ", arguments);
    free(model);
    free(dir);
}

Test(progress_cli, judge_shows_progress_only_when_asked)
{
    const char *arguments[] = {"judge", "data/judge_labelled.jsonl", "--judge", "keywords-v1", NULL};
    check_progress("judge", "judge: 0/", " items | done in ", arguments);
}

Test(progress_cli, help_of_each_long_command_lists_the_flags)
{
    const char *commands[] = {"eval", "generate", "ping-search", "judge"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char *out = NULL;
        cr_assert_eq(test_run_cli(&out, commands[i], "--help", NULL), 0, "%s", out);
        cr_expect(strstr(out, "--progress ") && strstr(out, "--no-progress"), "%s --help lacks the flags:\n%s",
                  commands[i], out);
        free(out);
    }
}

Test(progress_cli, no_progress_wins_when_given_last)
{
    char *out = NULL;
    int status = test_run_cli(&out, "judge", "data/judge_labelled.jsonl", "--judge", "keywords-v1", "--progress",
                              "--no-progress", NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_expect_null(strstr(out, "judge: 0/"), "--no-progress after --progress still showed progress:\n%s", out);
    free(out);
}

/* Training prints its progress line whether stderr is a terminal or not, and so does the
 * generation eval inside it: a line when a measure starts and one when it ends, each
 * after the training line of that step. */
Test(progress_cli, generation_eval_in_training_shows_progress_like_training)
{
    char *dir = test_tmpdir();
    char *model = make_model(dir);
    char *runs = al_path_join(dir, "runs");
    char *out = NULL;
    int status = test_run_cli(&out, "train", "--model", model, "--train_data", "data/agentalign_sample.json",
                              "--eval_data", EVAL_DATA, "--chat_format", TEMPLATE, "--max_len", "1024", "--max_steps",
                              "2", "--warmup_ratio", "0", "--lora_r", "4", "--device", "cpu", "--output_dir", runs,
                              "--run_name", "progress", "--gen_eval_every", "2", "--gen_eval_items", "2",
                              "--gen_eval_max_new_tokens", "4", NULL);
    cr_assert_eq(status, 0, "train exit %d:\n%s", status, out);
    cr_expect(strstr(out, "\ngen_eval step 0: 0/4 items | eta ?\n"), "no start line at step 0:\n%s", out);
    cr_expect(strstr(out, "\ngen_eval step 0: 4/4 items | "), "no end line at step 0:\n%s", out);
    const char *step2 = strstr(out, "step 2/2 |");
    cr_expect(step2 && strstr(step2, "\ngen_eval step 2: 0/4 items"), "the step-2 measure follows its step:\n%s",
              out);
    free(out);
    free(runs);
    free(model);
    free(dir);
}
