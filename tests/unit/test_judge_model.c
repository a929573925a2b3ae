/* The model judge on a tiny random model: its verdict is the comparison of the yes/no
 * logits that the model's own full forward (al_model_logits) gives after the judge's
 * prompt; a tool call (or an empty response) is no refusal without any forward; the judge's
 * name carries the model folder; a missing folder and a vocabulary without a single-token
 * "Yes" are clear errors.
 *
 * The demo tokenizer has "no" and " no" but no single-token "Yes", so the fixture adds
 * "Yes" and "No" as added tokens (ids 2048 and 2049) to a copy of it. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/judge.h"
#include "agentlora/model.h"
#include "agentlora/random_model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "judge_testing.h"
#include "test_support.h"

#define FORMAT "chatml-qwen2.5"
#define ASSISTANT_HEADER "<|im_start|>assistant\n"
/* A larger std than Hugging Face's 0.02 spreads the random model's logits, so yes and no
 * differ visibly. */
#define MODEL_INIT_STD 0.1f
/* The decoder's prefill matches the full forward to 1e-5 relative on the CPU; a little
 * more room for the logits' magnitude. */
#define LOGIT_TOLERANCE 1e-4


/* A tiny random model folder named `name` under a fresh directory (caller frees). */
static char *write_model(const char *name, bool add_answers)
{
    char *root = test_tmpdir();
    char *dir = al_path_join(root, name);
    free(root);
    test_write_demo_tokenizer(dir, add_answers);
    struct al_tokenizer *tokenizer = al_tokenizer_load(dir);
    cr_assert_not_null(tokenizer, "%s", al_error_message());
    struct al_model_config config;
    cr_assert_eq(al_model_preset("tiny", &config), 0);
    config.vocab_size = al_tokenizer_vocab_size(tokenizer);
    config.bos_token_id = -1;
    config.eos_token_ids[0] = al_tokenizer_eos_id(tokenizer);
    config.num_eos_token_ids = 1;
    al_tokenizer_free(tokenizer);
    cr_assert_eq(al_random_model_write_std(&config, AL_DTYPE_F32, 5, MODEL_INIT_STD, dir, 0), 0, "%s",
                 al_error_message());
    return dir;
}

/* The id a text encodes to, or -1 when it is not exactly one token. */
static int32_t single_id(const struct al_tokenizer *tokenizer, const char *text)
{
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, text, strlen(text), 0, &tokens), 0);
    int32_t id = tokens.count == 1 ? tokens.ids[0] : -1;
    al_tokens_free(&tokens);
    return id;
}

/* Next-token logits after `prompt` from the full forward, no cache. */
static float *full_forward_logits(struct al_model *model, const struct al_tokenizer *tokenizer, const char *prompt)
{
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, prompt, strlen(prompt), AL_TOKENIZE_PARSE_SPECIAL, &tokens), 0);
    int64_t n = (int64_t)tokens.count;
    int32_t *targets = malloc((size_t)n * sizeof *targets), *positions = malloc((size_t)n * sizeof *positions);
    int32_t *doc_start = calloc((size_t)n, sizeof *doc_start);
    for (int64_t i = 0; i < n; i++) {
        targets[i] = -1;
        positions[i] = (int32_t)i;
    }
    int vocab = al_model_get_config(model)->vocab_size;
    float *all = malloc((size_t)n * (size_t)vocab * sizeof *all);
    struct al_batch batch = {n, tokens.ids, targets, positions, doc_start};
    struct al_workspace *workspace = al_workspace_create(model, NULL, n, false);
    cr_assert_not_null(workspace, "%s", al_error_message());
    cr_assert_eq(al_model_logits(model, NULL, workspace, &batch, all), 0, "%s", al_error_message());
    float *last = malloc((size_t)vocab * sizeof *last);
    memcpy(last, all + (size_t)(n - 1) * (size_t)vocab, (size_t)vocab * sizeof *last);
    al_workspace_free(workspace);
    free(all);
    free(doc_start);
    free(positions);
    free(targets);
    al_tokens_free(&tokens);
    return last;
}

static int32_t best_id(const float *logits, const int32_t *ids, int n)
{
    int32_t best = -1;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && (best < 0 || logits[ids[i]] > logits[best]))
            best = ids[i];
    return best;
}

static bool close_to(double a, double b)
{
    return fabs(a - b) <= LOGIT_TOLERANCE * fmax(1.0, fabs(b));
}

Test(judge_model, verdict_equals_the_full_forward_yes_no_comparison)
{
    char *dir = write_model("judge-tiny", true);
    struct al_judge *judge = al_judge_model_open(dir, FORMAT, "cpu");
    cr_assert_not_null(judge, "%s", al_error_message());
    struct al_backend *backend = al_backend_cpu_create();
    struct al_model *model = al_model_load(dir, backend);
    struct al_tokenizer *tokenizer = al_tokenizer_load(dir);
    cr_assert(model && tokenizer, "%s", al_error_message());
    const char *const spell_yes[] = {"Yes", " Yes", "yes", " yes", "YES", " YES"};
    const char *const spell_no[] = {"No", " No", "no", " no", "NO", " NO"};
    int32_t yes_ids[6], no_ids[6];
    for (int i = 0; i < 6; i++) {
        yes_ids[i] = single_id(tokenizer, spell_yes[i]);
        no_ids[i] = single_id(tokenizer, spell_no[i]);
    }
    cr_assert_eq(yes_ids[0], TEST_YES_ID, "the fixture's added \"Yes\"");
    cr_assert_eq(no_ids[0], 2049, "the fixture's added \"No\"");

    const char *responses[] = {
        "I can't help with that.",
        "Sure! Here is the weather in Paris: sunny, 21 degrees.",
        "Stalking is illegal. I won't help with that.",
        "Caf\xC3\xA9 opening hours are 8 to 6.",
    };
    int refusals = 0, compared = 0;
    for (int r = 0; r < 4; r++) {
        char *prompt = al_judge_model_prompt(judge, responses[r]);
        cr_assert_not_null(prompt, "%s", al_error_message());
        cr_assert_not_null(strstr(prompt, responses[r]), "the response is quoted: %s", prompt);
        size_t length = strlen(prompt);
        cr_assert(length > strlen(ASSISTANT_HEADER) &&
                      strcmp(prompt + length - strlen(ASSISTANT_HEADER), ASSISTANT_HEADER) == 0,
                  "the prompt ends at the assistant header: %s", prompt);
        float *logits = full_forward_logits(model, tokenizer, prompt);
        int32_t ref_yes = best_id(logits, yes_ids, 6), ref_no = best_id(logits, no_ids, 6);

        struct al_judge_model_scores scores;
        cr_assert_eq(al_judge_model_score(judge, responses[r], &scores), 0, "%s", al_error_message());
        cr_expect_eq(scores.yes_id, ref_yes);
        cr_expect_eq(scores.no_id, ref_no);
        cr_expect(close_to(scores.yes_logit, logits[ref_yes]), "yes %g vs full forward %g", scores.yes_logit,
                  logits[ref_yes]);
        cr_expect(close_to(scores.no_logit, logits[ref_no]), "no %g vs full forward %g", scores.no_logit,
                  logits[ref_no]);
        double p_yes = 1.0 / (1.0 + exp((double)logits[ref_no] - (double)logits[ref_yes]));
        cr_expect(fabs(scores.p_yes - p_yes) < 1e-4, "p(yes) %g vs %g", scores.p_yes, p_yes);

        struct al_verdict verdict;
        cr_assert_eq(al_judge_response(judge, responses[r], false, &verdict), 0, "%s", al_error_message());
        bool expected = logits[ref_yes] > logits[ref_no];
        /* A margin inside the rounding of decoder vs full forward could flip either way. */
        if (!close_to(logits[ref_yes], logits[ref_no]) && ++compared)
            cr_expect_eq(verdict.refusal, expected, "response %d: yes %g, no %g", r, logits[ref_yes],
                         logits[ref_no]);
        cr_expect_not_null(strstr(verdict.reason, "logit yes"), "%s", verdict.reason);
        char yes_text[32];
        snprintf(yes_text, sizeof yes_text, "%.4f", scores.yes_logit);
        cr_expect_not_null(strstr(verdict.reason, yes_text), "the reason carries the logits: %s", verdict.reason);
        refusals += verdict.refusal;
        free(logits);
        free(prompt);
    }
    cr_assert_gt(compared, 0, "some margin must lie outside rounding for the verdict check to mean anything");
    cr_log_info("random judge: %d of 4 judged refusals, %d verdicts compared", refusals, compared);
    al_tokenizer_free(tokenizer);
    al_model_free(model);
    al_backend_destroy(backend);
    al_judge_model_close(judge);
    free(dir);
}

/* Invalid UTF-8 makes the tokenizer (and so any forward) fail, so a verdict for it
 * proves that no forward ran. */
Test(judge_model, a_tool_call_is_no_refusal_without_a_forward)
{
    char *dir = write_model("judge-tiny", true);
    struct al_judge *judge = al_judge_model_open(dir, FORMAT, NULL);
    cr_assert_not_null(judge, "%s", al_error_message());
    const char *unreadable = "I can't \xFF help with that.";
    struct al_judge_model_scores scores;
    cr_assert_neq(al_judge_model_score(judge, unreadable, &scores), 0, "the forward path rejects this text");
    struct al_verdict verdict;
    cr_assert_eq(al_judge_response(judge, unreadable, true, &verdict), 0, "%s", al_error_message());
    cr_expect_not(verdict.refusal);
    cr_expect_not_null(strstr(verdict.reason, "tool call"), "%s", verdict.reason);
    cr_assert_eq(al_judge_response(judge, "  \n", false, &verdict), 0, "%s", al_error_message());
    cr_expect_not(verdict.refusal, "an empty response is not a refusal");
    cr_assert_neq(al_judge_response(judge, unreadable, false, &verdict), 0, "without a tool call the model is asked");
    al_judge_model_close(judge);
    free(dir);
}

Test(judge_model, the_name_carries_the_model_folder)
{
    char *dir = write_model("judge-tiny", true);
    size_t length = strlen(dir);
    char *with_slash = malloc(length + 2);
    memcpy(with_slash, dir, length);
    memcpy(with_slash + length, "/", 2);
    struct al_judge *judge = al_judge_model_open(with_slash, FORMAT, "cpu");
    cr_assert_not_null(judge, "%s", al_error_message());
    cr_expect_str_eq(judge->name, "model:judge-tiny");
    struct al_verdict verdict;
    cr_assert_eq(al_judge_response(judge, "No way.", false, &verdict), 0, "%s", al_error_message());
    cr_expect_str_eq(verdict.judge, "model:judge-tiny");
    cr_assert_eq(al_judge_response(judge, "", true, &verdict), 0);
    cr_expect_str_eq(verdict.judge, "model:judge-tiny", "every verdict names the model, shortcuts included");
    al_judge_model_close(judge);
    free(with_slash);
    free(dir);
}

Test(judge_model, a_long_response_is_cut_to_the_quoted_maximum)
{
    char *dir = write_model("judge-tiny", true);
    struct al_judge *judge = al_judge_model_open(dir, FORMAT, "cpu");
    cr_assert_not_null(judge, "%s", al_error_message());
    size_t n = 3 * AL_JUDGE_MODEL_MAX_RESPONSE_BYTES;
    char *long_text = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        long_text[i] = i % 2 ? 'b' : 'a';
    long_text[n] = '\0';
    char *prompt = al_judge_model_prompt(judge, long_text);
    cr_assert_not_null(prompt, "%s", al_error_message());
    cr_expect_lt(strlen(prompt), AL_JUDGE_MODEL_MAX_RESPONSE_BYTES + 1000);
    long_text[AL_JUDGE_MODEL_MAX_RESPONSE_BYTES] = '\0';
    cr_expect_not_null(strstr(prompt, long_text), "the opening is quoted");
    free(prompt);
    free(long_text);
    al_judge_model_close(judge);
    free(dir);
}

Test(judge_model, a_missing_folder_is_a_clear_error)
{
    char *root = test_tmpdir();
    char *dir = al_path_join(root, "no-such-model");
    cr_assert_null(al_judge_model_open(dir, FORMAT, "cpu"));
    cr_expect_not_null(strstr(al_error_message(), "no-such-model"), "%s", al_error_message());
    cr_assert_null(al_judge_model_open(NULL, FORMAT, "cpu"));
    free(dir);
    free(root);
}

Test(judge_model, a_vocabulary_without_yes_is_a_clear_error)
{
    char *dir = write_model("judge-no-yes", false);
    cr_assert_null(al_judge_model_open(dir, FORMAT, "cpu"));
    const char *message = al_error_message();
    cr_expect_not_null(strstr(message, "no single token for \"Yes\""), "%s", message);
    cr_expect_not_null(strstr(message, "judge-no-yes"), "%s", message);
    free(dir);
}

Test(judge_model, only_a_model_judge_gives_scores)
{
    struct al_judge_model_scores scores;
    cr_assert_neq(al_judge_model_score(al_judge_keywords_v1(), "No.", &scores), 0);
    cr_expect_not_null(strstr(al_error_message(), "not a model judge"), "%s", al_error_message());
}
