/* Chat-level generation with the demo tokenizer and a tiny random model: the prompt is
 * the conversation up to its first assistant response plus the assistant header; a
 * forced prefix is prefilled right after the header and is not part of the completion;
 * the completion is the decoded new tokens without the stop token; the default stop ids
 * are the template's end-of-turn tokens; a batch gives what each prompt gets alone. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"

#define SAMPLE_DATA "data/agentalign_sample.json"
#define ASSISTANT_HEADER "<|im_start|>assistant\n"
#define PREFIX "I will only help with safe and legal tasks."
/* A random model's weights with a larger std than Hugging Face's 0.02 (the demo's). */
#define MODEL_INIT_STD 0.1f

struct chat_fixture {
    struct test_chat_model m; /* dir, backend, model, tokenizer */
    struct al_chat_generator gen;
    struct al_conversation conv;
};

static const char *const CONVERSATION =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"What is the weather in Paris?\"},"
    " {\"role\": \"assistant\", \"content\": \"FIRST ANSWER\"},"
    " {\"role\": \"user\", \"content\": \"Thanks.\"},"
    " {\"role\": \"assistant\", \"content\": \"SECOND ANSWER\"}]}";

static void chat_open(struct chat_fixture *f)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(test_chat_model_open(&f->m, 8, MODEL_INIT_STD), 0, "%s", al_error_message());
    f->gen = (struct al_chat_generator){f->m.model, NULL, f->m.tokenizer, AL_CHAT_CHATML_QWEN25, {0}};
    cr_assert_eq(al_conversation_from_text(&f->conv, CONVERSATION, strlen(CONVERSATION), "test", 1), 0, "%s",
                 al_error_message());
}

static void chat_close(struct chat_fixture *f)
{
    al_conversation_free(&f->conv);
    test_chat_model_close(&f->m);
}

static struct al_generate_options greedy(int max_new_tokens)
{
    struct al_generate_options options = al_generate_default_options();
    options.max_new_tokens = max_new_tokens;
    return options;
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

static struct al_tokens encode(const struct al_tokenizer *tokenizer, const char *text)
{
    struct al_tokens tokens = {0};
    cr_assert_eq(al_tokenizer_encode(tokenizer, text, strlen(text), AL_TOKENIZE_PARSE_SPECIAL, &tokens), 0, "%s",
                 al_error_message());
    return tokens;
}

Test(generate_chat, the_prompt_stops_at_the_first_assistant_response)
{
    struct chat_fixture f;
    chat_open(&f);
    struct al_chat_prompt prompt = {&f.conv, NULL, 0};
    struct al_generate_options options = greedy(3);
    struct al_chat_generation g;
    cr_assert_eq(al_generate_chat(&f.gen, &prompt, 1, &options, &g), 0, "%s", al_error_message());
    cr_expect(ends_with(g.prompt, "What is the weather in Paris?<|im_end|>\n" ASSISTANT_HEADER), "%s", g.prompt);
    cr_expect_null(strstr(g.prompt, "FIRST ANSWER"), "%s", g.prompt);
    cr_expect_null(strstr(g.prompt, "Thanks."), "%s", g.prompt);
    cr_expect_str_eq(g.prefix, "");
    struct al_tokens tokens = encode(f.m.tokenizer, g.prompt);
    cr_expect_eq(g.prompt_tokens, (int)tokens.count);
    al_tokens_free(&tokens);
    al_chat_generation_free(&g);
    chat_close(&f);
}

/* The prefix follows the header, is prefilled (the completion continues it: exactly what
 * token generation writes after prompt + prefix), and the completion excludes it. */
Test(generate_chat, the_prefix_is_prefilled_after_the_header_and_kept_apart)
{
    struct chat_fixture f;
    chat_open(&f);
    struct al_chat_prompt prompt = {&f.conv, PREFIX, 0};
    struct al_generate_options options = greedy(8);
    struct al_chat_generation g;
    cr_assert_eq(al_generate_chat(&f.gen, &prompt, 1, &options, &g), 0, "%s", al_error_message());
    cr_expect(ends_with(g.prompt, ASSISTANT_HEADER), "%s", g.prompt);
    cr_expect_null(strstr(g.prompt, PREFIX), "the prompt is returned without the prefix");
    cr_expect_str_eq(g.prefix, PREFIX);
    cr_expect_eq(g.completion_count, 8);

    /* Token generation after the tokens of prompt + prefix writes the same ids. */
    size_t length = strlen(g.prompt) + strlen(PREFIX);
    char *whole = malloc(length + 1);
    strcpy(whole, g.prompt);
    strcat(whole, PREFIX);
    struct al_tokens tokens = encode(f.m.tokenizer, whole);
    cr_expect_eq(g.prompt_tokens, (int)tokens.count);
    struct al_token_prompt token_prompt = {tokens.ids, (int)tokens.count, 0};
    struct al_token_generation expected;
    cr_assert_eq(al_generate_tokens(f.m.model, NULL, &token_prompt, 1, &options, &expected), 0, "%s",
                 al_error_message());
    cr_expect_eq(expected.count, g.completion_count);
    cr_expect_eq(memcmp(expected.ids, g.completion_ids, sizeof(int32_t) * expected.count), 0);

    /* The completion is the new tokens only. */
    char *decoded = al_tokenizer_decode(f.m.tokenizer, g.completion_ids, (size_t)g.completion_count, false, NULL);
    cr_expect_str_eq(g.completion, decoded);
    free(decoded);
    al_token_generation_free(&expected);
    al_tokens_free(&tokens);
    free(whole);
    al_chat_generation_free(&g);
    chat_close(&f);
}

Test(generate_chat, default_stop_ids_are_the_end_of_turn_tokens)
{
    struct chat_fixture f;
    chat_open(&f);
    int32_t ids[AL_GENERATE_MAX_STOP_IDS];
    int n = al_generate_stop_ids(f.m.tokenizer, al_model_get_config(f.m.model), ids, AL_GENERATE_MAX_STOP_IDS);
    int32_t im_end = al_tokenizer_piece_to_id(f.m.tokenizer, "<|im_end|>");
    bool found = false;
    for (int i = 0; i < n; i++) {
        found |= ids[i] == im_end;
        for (int j = 0; j < i; j++)
            cr_expect_neq(ids[i], ids[j], "no repeats");
    }
    cr_expect(found, "<|im_end|> ends a ChatML turn");
    cr_expect_eq(ids[0], al_tokenizer_eos_id(f.m.tokenizer), "eos first");
    chat_close(&f);
}

/* A stop id ends the completion, whose text then excludes that token. */
Test(generate_chat, the_stop_token_is_not_in_the_completion)
{
    struct chat_fixture f;
    chat_open(&f);
    struct al_chat_prompt prompt = {&f.conv, PREFIX, 0};
    struct al_generate_options options = greedy(10);
    struct al_chat_generation free_run, stopped;
    cr_assert_eq(al_generate_chat(&f.gen, &prompt, 1, &options, &free_run), 0, "%s", al_error_message());
    cr_assert_eq(free_run.stop, AL_STOP_MAX_TOKENS);
    int32_t stop = free_run.completion_ids[4];
    int first = 0; /* the stop id's first occurrence, at most 4 */
    while (free_run.completion_ids[first] != stop)
        first++;
    options.stop_ids[0] = stop;
    options.n_stop_ids = 1;
    cr_assert_eq(al_generate_chat(&f.gen, &prompt, 1, &options, &stopped), 0, "%s", al_error_message());
    cr_expect_eq(stopped.stop, AL_STOP_END_OF_TURN);
    cr_expect_eq(stopped.stop_id, stop);
    cr_expect_eq(stopped.completion_count, first);
    char *expected = al_tokenizer_decode(f.m.tokenizer, free_run.completion_ids, (size_t)first, false, NULL);
    cr_expect_str_eq(stopped.completion, expected);
    free(expected);
    al_chat_generation_free(&free_run);
    al_chat_generation_free(&stopped);
    chat_close(&f);
}

/* Records of the sample data, with their tools, generated together and one by one. */
Test(generate_chat, a_batch_of_records_gives_what_each_gets_alone)
{
    struct chat_fixture f;
    chat_open(&f);
    struct al_dataset dataset;
    struct al_reader_options reader = {.strict = true};
    cr_assert_eq(al_dataset_load(&dataset, SAMPLE_DATA, &reader), 0, "%s", al_error_message());
    enum { N = 3 };
    struct al_conversation convs[N];
    struct al_chat_prompt prompts[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(al_dataset_get(&dataset, i, &convs[i]), 0, "%s", al_error_message());
        prompts[i] = (struct al_chat_prompt){&convs[i], i == 1 ? PREFIX : NULL, (uint64_t)i};
    }
    struct al_generate_options options = greedy(6);
    options.sampling = (struct al_sampling){0.9f, 0.9f, 12};
    struct al_chat_generation together[N], alone;
    cr_assert_eq(al_generate_chat(&f.gen, prompts, N, &options, together), 0, "%s", al_error_message());
    for (int i = 0; i < N; i++) {
        cr_assert_eq(al_generate_chat(&f.gen, &prompts[i], 1, &options, &alone), 0, "%s", al_error_message());
        cr_expect_str_eq(together[i].prompt, alone.prompt);
        cr_expect_str_eq(together[i].completion, alone.completion, "record %d", i);
        cr_expect(ends_with(alone.prompt, ASSISTANT_HEADER));
        /* The first assistant response is what the model is asked to write, never shown. */
        const char *answer = convs[i].messages[1].content;
        if (answer && strlen(answer) > 20)
            cr_expect_null(strstr(alone.prompt, answer), "record %d's answer leaked into its prompt", i);
        al_chat_generation_free(&alone);
        al_chat_generation_free(&together[i]);
        al_conversation_free(&convs[i]);
    }
    al_dataset_free(&dataset);
    chat_close(&f);
}
