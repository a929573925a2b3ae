/* Training examples: the trained tokens are exactly the assistant output, and a PING
 * prefix either opens the first response or is refused where the template drops it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/example.h"
#include "test_support.h"

struct loaded {
    struct al_tokenizer *tokenizer;
    struct al_dataset dataset;
};

static void load(struct loaded *l, const char *tokenizer_dir)
{
    char *dir = test_shared_path(tokenizer_dir);
    l->tokenizer = al_tokenizer_load(dir);
    cr_assert_not_null(l->tokenizer, "%s", al_error_message());
    struct al_reader_options options = {.strict = true};
    cr_assert_eq(al_dataset_load(&l->dataset, "data/agentalign_sample.json", &options), 0, "%s", al_error_message());
    free(dir);
}

static void unload(struct loaded *l)
{
    al_dataset_free(&l->dataset);
    al_tokenizer_free(l->tokenizer);
}

/* The record whose number is given, as a conversation. */
static void record(struct loaded *l, long number, struct al_conversation *conv)
{
    for (int i = 0; i < l->dataset.n_records; i++)
        if (l->dataset.records[i].record_number == number) {
            cr_assert_eq(al_dataset_get(&l->dataset, i, conv), 0, "%s", al_error_message());
            return;
        }
    cr_assert_fail("record %ld not found", number);
}

Test(example, trained_tokens_decode_to_the_assistant_spans)
{
    struct loaded l;
    load(&l, "tokenizers/qwen2.5");
    struct al_conversation conv;
    record(&l, 60, &conv); /* benign: three assistant turns around two tool results */
    struct al_example_options options = {.format = AL_CHAT_CHATML_QWEN25};
    options.chat.string_arguments_as_objects = true;
    struct al_example ex;
    cr_assert_eq(al_example_build(&ex, l.tokenizer, &conv, &options, "sample", 60), 0, "%s", al_error_message());
    cr_assert_gt(ex.n_trained, 0);
    cr_assert_lt(ex.n_trained, (int64_t)ex.tokens.count);

    /* concatenate the spans' text and the decoded trained tokens: they must be equal */
    size_t expected_length = 0;
    for (int s = 0; s < ex.rendered.n_spans; s++)
        expected_length += ex.rendered.spans[s].end - ex.rendered.spans[s].begin;
    char *expected = malloc(expected_length + 1);
    size_t used = 0;
    for (int s = 0; s < ex.rendered.n_spans; s++) {
        size_t n = ex.rendered.spans[s].end - ex.rendered.spans[s].begin;
        memcpy(expected + used, ex.rendered.text + ex.rendered.spans[s].begin, n);
        used += n;
    }
    expected[used] = '\0';
    int32_t *trained = malloc(ex.tokens.count * sizeof(int32_t));
    size_t n_trained = 0;
    for (size_t i = 0; i < ex.tokens.count; i++)
        if (ex.loss_mask[i])
            trained[n_trained++] = ex.tokens.ids[i];
    char *decoded = al_tokenizer_decode(l.tokenizer, trained, n_trained, false, NULL);
    cr_assert_str_eq(decoded, expected);
    cr_assert_eq(ex.rendered.n_spans, 3);
    cr_assert(strstr(decoded, "<|im_end|>") != NULL, "the end-of-turn token is trained on");
    cr_assert_null(strstr(decoded, "<|im_start|>"), "headers are never trained on");
    free(decoded);
    free(trained);
    free(expected);
    al_example_free(&ex);
    al_conversation_free(&conv);
    unload(&l);
}

Test(example, ping_prefix_opens_the_first_response_and_is_trained)
{
    struct loaded l;
    load(&l, "tokenizers/qwen2.5");
    struct al_conversation conv;
    record(&l, 1, &conv); /* harmful: a single refusal */
    const char *prefix = "I help with safe, lawful work and refuse harmful requests.";
    struct al_example_options options = {.format = AL_CHAT_CHATML_QWEN25, .ping_prefix = prefix};
    struct al_example with, without;
    cr_assert_eq(al_example_build(&with, l.tokenizer, &conv, &options, "sample", 1), 0, "%s", al_error_message());
    options.ping_prefix = NULL;
    cr_assert_eq(al_example_build(&without, l.tokenizer, &conv, &options, "sample", 1), 0, "%s", al_error_message());
    const char *opening = strstr(with.rendered.text, "<|im_start|>assistant\n");
    cr_assert_not_null(opening);
    cr_assert_eq(strncmp(opening + strlen("<|im_start|>assistant\n"), prefix, strlen(prefix)), 0);
    cr_assert_gt(with.n_trained, without.n_trained, "the prefix is part of the trained tokens");
    /* the original conversation is left as it was */
    cr_assert_null(strstr(conv.messages[1].content, prefix));
    al_example_free(&with);
    al_example_free(&without);
    al_conversation_free(&conv);
    unload(&l);
}

Test(example, llama3_refuses_a_prefix_it_would_drop_before_a_tool_call)
{
    struct loaded l;
    load(&l, "tokenizers/llama-3.2");
    struct al_conversation conv;
    record(&l, 60, &conv); /* its first assistant message is a tool call */
    struct al_example_options options = {.format = AL_CHAT_LLAMA32, .ping_prefix = "Safety first."};
    options.chat.date_string = "26 Jul 2024";
    struct al_example ex;
    cr_assert_eq(al_example_build(&ex, l.tokenizer, &conv, &options, "sample", 60), -1);
    cr_assert(strstr(al_error_message(), "record 60") && strstr(al_error_message(), "PING prefix"), "%s",
              al_error_message());
    al_conversation_free(&conv);
    unload(&l);
}
