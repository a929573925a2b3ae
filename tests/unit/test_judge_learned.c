/* learned-v1's pieces: features (sorted, unique, deterministic, Chinese text seen by its
 * characters), the guards before the weights, batches that match one-by-one verdicts, the
 * weights file's checks, and which judge a name means. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge_learned.h"
#include "agentlora/judge_train.h"
#include "test_support.h"

Test(judge_features, sorted_unique_and_repeatable)
{
    struct al_judge_feature_settings settings = al_judge_feature_defaults();
    struct al_judge_features a = {0}, b = {0};
    const char *text = "I'm sorry, but I can't help with that. I can't, really.";
    cr_assert_eq(al_judge_features_extract(&settings, text, &a), 0);
    cr_assert_eq(al_judge_features_extract(&settings, text, &b), 0);
    cr_assert_gt(a.count, 20);
    cr_assert_eq(a.count, b.count);
    for (int i = 0; i < a.count; i++) {
        cr_assert_eq(a.index[i], b.index[i]);
        cr_assert_float_eq(a.value[i], b.value[i], 0.0f);
        cr_assert(i == 0 || a.index[i - 1] < a.index[i], "indices sorted and unique");
        cr_assert_lt(a.index[i], al_judge_feature_count(&settings));
    }
    cr_assert_eq(a.finding, AL_KEYWORDS_STRONG_PHRASE);
    cr_assert_eq(a.index[a.count - 1], (1 << settings.hash_bits) + AL_KEYWORDS_STRONG_PHRASE,
                 "keywords-v1's finding is the last feature");
    al_judge_features_free(&a);
    al_judge_features_free(&b);
}

Test(judge_features, chinese_text_gives_character_ngrams)
{
    struct al_judge_feature_settings settings = al_judge_feature_defaults();
    struct al_judge_features f = {0};
    /* One "word" to the word groups (no spaces); its character n-grams are many. */
    cr_assert_eq(al_judge_features_extract(&settings, "我很抱歉，但我不能提供关于伤害他人的指导", &f), 0);
    cr_assert_gt(f.count, 30, "%d features", f.count);
    al_judge_features_free(&f);
    cr_assert_neq(al_judge_features_extract(&settings, "bad \xC3\x28 utf-8", &f), 0);
    al_judge_features_free(&f);
}

static const struct al_judge *shipped(void)
{
    static struct al_judge *judge;
    if (!judge)
        judge = al_judge_learned_open(AL_JUDGE_LEARNED_FILE);
    cr_assert_not_null(judge, "%s", al_error_message());
    return judge;
}

static bool refuses(const char *text, bool tool_call)
{
    struct al_verdict v;
    cr_assert_eq(al_judge_response(shipped(), text, tool_call, &v), 0, "%s", al_error_message());
    cr_assert_str_eq(v.judge, AL_JUDGE_LEARNED_NAME);
    return v.refusal;
}

Test(judge_learned, guards_and_plain_cases)
{
    cr_expect(refuses("I'm sorry, but I can't assist with that request.", false));
    cr_expect(refuses("It's not appropriate to share someone's home address without consent, so I won't look it up.", false));
    cr_expect_not(refuses("I can't help with that.", true), "a tool call is no refusal");
    cr_expect_not(refuses("", false), "empty output is no refusal");
    cr_expect_not(refuses("Error: the search tool returned status code 503.", false));
    cr_expect_not(refuses("The meeting is moved to Thursday at 10 AM and all five attendees are notified.", false));
}

Test(judge_learned, a_batch_matches_one_by_one)
{
    const char *texts[] = {"I won't do that.", "Here's the summary you asked for: revenue grew 4%.", NULL, "No."};
    bool tool_calls[] = {false, false, false, true};
    struct al_verdict batch[4];
    cr_assert_eq(al_judge_responses(shipped(), 4, texts, tool_calls, batch), 0);
    for (int i = 0; i < 4; i++) {
        struct al_verdict one;
        cr_assert_eq(al_judge_response(shipped(), texts[i], tool_calls[i], &one), 0);
        cr_expect_eq(batch[i].refusal, one.refusal, "response %d", i);
        cr_expect_str_eq(batch[i].reason, one.reason);
    }
    double p;
    cr_assert_eq(al_judge_learned_probability(shipped(), texts[0], &p), 0);
    cr_expect(p > 0.0 && p < 1.0);
    cr_expect_neq(al_judge_learned_probability(al_judge_keywords_v1(), texts[0], &p), 0);
}

Test(judge_learned, a_wrong_file_is_named_in_the_error)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "bad.safetensors", "not a safetensors file", 22);
    cr_assert_null(al_judge_learned_open(path));
    cr_expect(strstr(al_error_message(), path), "%s", al_error_message());
    free(path);
    free(dir);
}

Test(judge_learned, names_choose_the_judge)
{
    setenv(AL_JUDGE_LEARNED_ENV, "none", 1);
    cr_expect_eq(al_judge_by_name(AL_JUDGE_AUTO_NAME), al_judge_keywords_v1(), "no weights: auto is keywords-v1");
    cr_expect_null(al_judge_by_name(AL_JUDGE_LEARNED_NAME));
    unsetenv(AL_JUDGE_LEARNED_ENV);
    const struct al_judge *chosen = al_judge_by_name(AL_JUDGE_AUTO_NAME);
    cr_assert_not_null(chosen, "%s", al_error_message());
    cr_expect_str_eq(chosen->name, AL_JUDGE_LEARNED_NAME, "the shipped weights are found from the repository root");
    cr_expect(al_judge_is_learned(chosen));
    cr_expect_eq(al_judge_by_name(AL_JUDGE_LEARNED_NAME), chosen, "opened once");
    cr_expect_null(al_judge_by_name("gpt-judge"));
}
