/* `agentlora generate`, run as a real process (AL_CLI names the binary) on a tiny random
 * model made by `agentlora init-model` with the demo tokenizer: a prompt and data
 * records are answered, the prefix is printed apart from the completion, sampling
 * repeats with a seed, and bad usage and bad input give exit codes 2 and 1. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "test_support.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"
#define SAMPLE_DATA "data/agentalign_sample.json"
#define TEMPLATE "chatml-qwen2.5"

static void assert_contains(const char *output, const char *fragment)
{
    cr_assert(output && strstr(output, fragment), "output lacks \"%s\":\n%s", fragment, output ? output : "(none)");
}

/* A tiny random model with the demo tokenizer, as the brief's demo makes one. */
static char *make_model(void)
{
    char *parent = test_tmpdir();
    char *dir = al_path_join(parent, "model");
    free(parent);
    char *out = NULL;
    int status = test_run_cli(&out, "init-model", "--preset", "tiny", "--tokenizer", DEMO_TOKENIZER, "--init-std",
                              "0.1", "--out", dir, NULL);
    cr_assert_eq(status, 0, "init-model exit %d:\n%s", status, out);
    free(out);
    return dir;
}

/* The text after "completion: " up to the end of its line. */
static char *completion_line(const char *output)
{
    const char *start = strstr(output, "completion: ");
    cr_assert(start, "no completion in:\n%s", output);
    start += strlen("completion: ");
    const char *end = strstr(start, "\n(");
    cr_assert(end, "no summary line after the completion:\n%s", output);
    return strndup(start, (size_t)(end - start));
}

Test(generate_cli, answers_a_prompt_with_the_prefix_apart)
{
    char *model = make_model();
    char *out = NULL;
    int status = test_run_cli(&out, "generate", "--model", model, "--template", TEMPLATE, "--prompt",
                              "Find flights to Oslo.", "--prefix", "I will help safely.", "--max-new-tokens", "6",
                              "--show-prompt", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "== prompt: Find flights to Oslo.");
    assert_contains(out, "<|im_start|>user\nFind flights to Oslo.<|im_end|>\n<|im_start|>assistant\n");
    assert_contains(out, "prefix: I will help safely.\ncompletion: ");
    assert_contains(out, "6 new tokens, stopped at max new tokens");
    char *completion = completion_line(out);
    cr_expect_null(strstr(completion, "I will help safely."), "the completion excludes the prefix: %s", completion);
    free(completion);
    free(out);
    free(model);
}

Test(generate_cli, sampling_repeats_with_the_same_seed)
{
    char *model = make_model();
    char *runs[3];
    const char *seeds[3] = {"5", "5", "6"};
    for (int i = 0; i < 3; i++) {
        char *out = NULL;
        int status = test_run_cli(&out, "generate", "--model", model, "--template", TEMPLATE, "--prompt", "Hello",
                                  "--max-new-tokens", "12", "--temperature", "1.2", "--top-p", "0.95", "--seed",
                                  seeds[i], NULL);
        cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
        runs[i] = completion_line(out);
        free(out);
    }
    cr_expect_str_eq(runs[0], runs[1], "the same seed gives the same text");
    cr_expect_str_neq(runs[0], runs[2], "another seed gives another text");
    for (int i = 0; i < 3; i++)
        free(runs[i]);
    free(model);
}

Test(generate_cli, answers_chosen_records_of_a_data_file)
{
    char *model = make_model();
    char *out = NULL;
    int status = test_run_cli(&out, "generate", "--model", model, "--template", TEMPLATE, "--data", SAMPLE_DATA,
                              "--records", "2,4-5", "--max-new-tokens", "4", "--batch", "2", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "== record 2: id ");
    assert_contains(out, "== record 4: id ");
    assert_contains(out, "== record 5: id ");
    cr_expect_null(strstr(out, "== record 1:"), "%s", out);
    cr_expect_null(strstr(out, "== record 3:"), "%s", out);
    free(out);

    status = test_run_cli(&out, "generate", "--model", model, "--template", TEMPLATE, "--data", SAMPLE_DATA,
                          "--records", "100000", NULL);
    cr_expect_eq(status, 1, "no record selected is an error:\n%s", out);
    assert_contains(out, "selects none");
    free(out);
    free(model);
}

Test(generate_cli, help_and_usage_errors)
{
    char *out = NULL;
    cr_expect_eq(test_run_cli(&out, "generate", "--help", NULL), 0);
    assert_contains(out, "usage: agentlora generate");
    free(out);

    const char *bad[][8] = {
        {"generate", "--prompt", "hi", NULL},                                         /* no --model */
        {"generate", "--model", "m", NULL},                                           /* no prompt */
        {"generate", "--model", "m", "--prompt", "hi", "--data", "f", NULL},          /* both */
        {"generate", "--model", "m", "--prompt", "hi", "--top-p", "1.5", NULL},       /* top-p */
        {"generate", "--model", "m", "--prompt", "hi", "--temperature", "-1", NULL},  /* temperature */
        {"generate", "--model", "m", "--prompt", "hi", "--max-new-tokens", "0", NULL},
        {"generate", "--model", "m", "--data", "f", "--records", "3-1", NULL},
        {"generate", "--model", "m", "--prompt", "hi", "--records", "1", NULL},       /* records without data */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int status = test_run_cli(&out, bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], bad[i][5], bad[i][6],
                                  bad[i][7], NULL);
        cr_expect_eq(status, 2, "case %zu: exit %d:\n%s", i, status, out);
        free(out);
    }
}

Test(generate_cli, bad_input_exits_with_1)
{
    char *missing = test_tmpdir();
    char *out = NULL;
    int status = test_run_cli(&out, "generate", "--model", missing, "--prompt", "hi", "--template", TEMPLATE, NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "agentlora generate: ");
    free(out);

    char *model = make_model();
    status = test_run_cli(&out, "generate", "--model", model, "--prompt", "hi", NULL);
    cr_expect_eq(status, 1, "the demo tokenizer names no chat template:\n%s", out);
    assert_contains(out, "--template");
    free(out);
    status = test_run_cli(&out, "generate", "--model", model, "--prompt", "hi", "--template", "no-such", NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    free(out);
    /* Without CUDA in the build, or on a GPU until the CUDA backend decodes: a clear failure. */
    status = test_run_cli(&out, "generate", "--model", model, "--prompt", "hi", "--template", TEMPLATE, "--device",
                          "cuda", NULL);
    cr_expect_eq(status, 1, "exit %d:\n%s", status, out);
    free(out);
    free(model);
    free(missing);
}

/* --no-thinking is Qwen3's enable_thinking=false: the prompt ends with an empty think
 * block after the assistant header; any other format refuses the flag by name. */
Test(generate_cli, no_thinking_closes_the_think_block_and_needs_qwen3)
{
    char *model = make_model();
    char *out = NULL;
    int status = test_run_cli(&out, "generate", "--model", model, "--template", "qwen3", "--prompt", "Hi",
                              "--no-thinking", "--max-new-tokens", "2", "--show-prompt", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    assert_contains(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    free(out);
    status = test_run_cli(&out, "generate", "--model", model, "--template", "qwen3", "--prompt", "Hi",
                          "--max-new-tokens", "2", "--show-prompt", NULL);
    cr_assert_eq(status, 0, "exit %d:\n%s", status, out);
    cr_assert_null(strstr(out, "</think>"), "thinking stays open without the flag:\n%s", out);
    free(out);
    status = test_run_cli(&out, "generate", "--model", model, "--template", TEMPLATE, "--prompt", "Hi",
                          "--no-thinking", NULL);
    cr_assert_eq(status, 1, "exit %d:\n%s", status, out);
    assert_contains(out, "--no-thinking applies to the qwen3 chat format only");
    free(out);
    free(model);
}
