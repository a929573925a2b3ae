/* Qwen3: which parts of its reasoning turns are output (the loss mask), the
 * enable_thinking switch, and the other formats refusing reasoning they cannot show.
 * Exact texts against transformers are in test_chat_template_golden.c. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/scoring.h"

/* Two questions; the first answer's reasoning is before the last query, the second's after. */
static const char REASONING_CHAT[] =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"},"
    " {\"role\": \"assistant\", \"reasoning_content\": \"Add.\", \"content\": \"4\"},"
    " {\"role\": \"user\", \"content\": \"3+3?\"},"
    " {\"role\": \"assistant\", \"content\": \"<think>\\nAdd again.\\n</think>\\n\\n6\"}]}";

static void parse(struct al_conversation *conv, const char *json)
{
    cr_assert_eq(al_conversation_from_text(conv, json, strlen(json), "test", 1), 0, "%s", al_error_message());
}

static void assert_span(const struct al_rendered_chat *rendered, int i, const char *expected)
{
    const struct al_chat_span *span = &rendered->spans[i];
    char *text = strndup(rendered->text + span->begin, span->end - span->begin);
    cr_assert_str_eq(text, expected, "span %d", i);
    free(text);
}

Test(chat_template_qwen3, the_think_block_of_the_last_turn_is_output_and_earlier_reasoning_is_gone)
{
    struct al_conversation conv;
    parse(&conv, REASONING_CHAT);
    struct al_rendered_chat rendered;
    cr_assert_eq(al_chat_render(AL_CHAT_QWEN3, &conv, NULL, &rendered), 0, "%s", al_error_message());
    cr_assert_str_eq(rendered.text, "<|im_start|>user\n2+2?<|im_end|>\n"
                                    "<|im_start|>assistant\n4<|im_end|>\n"
                                    "<|im_start|>user\n3+3?<|im_end|>\n"
                                    "<|im_start|>assistant\n<think>\nAdd again.\n</think>\n\n6<|im_end|>\n");
    cr_assert_eq(rendered.n_spans, 2);
    assert_span(&rendered, 0, "4<|im_end|>");
    assert_span(&rendered, 1, "<think>\nAdd again.\n</think>\n\n6<|im_end|>");
    cr_assert_eq(rendered.spans[1].message_index, 3);
    al_rendered_chat_free(&rendered);
    al_conversation_free(&conv);
}

Test(chat_template_qwen3, disabled_thinking_opens_the_prompt_with_an_empty_think_block)
{
    struct al_conversation conv;
    parse(&conv, REASONING_CHAT);
    struct al_chat_options options = {.disable_thinking = true};
    struct al_rendered_chat prompt;
    cr_assert_eq(al_chat_render_prompt(AL_CHAT_QWEN3, &conv, &options, &prompt), 0, "%s", al_error_message());
    const char *ending = "3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
    size_t n = strlen(ending);
    cr_assert(prompt.length > n && strcmp(prompt.text + prompt.length - n, ending) == 0, "%s", prompt.text);
    cr_assert_eq(prompt.n_spans, 1, "only the earlier answer; the prompt's think block is not output");
    al_rendered_chat_free(&prompt);

    options.disable_thinking = false;
    cr_assert_eq(al_chat_render_prompt(AL_CHAT_QWEN3, &conv, &options, &prompt), 0, "%s", al_error_message());
    cr_assert(strcmp(prompt.text + prompt.length - strlen("assistant\n"), "assistant\n") == 0, "%s", prompt.text);
    al_rendered_chat_free(&prompt);
    al_conversation_free(&conv);
}

Test(chat_template_qwen3, formats_without_reasoning_refuse_it_and_name_qwen3)
{
    struct al_conversation conv;
    parse(&conv, REASONING_CHAT);
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_QWEN3, &conv), 0, "%s", al_error_message());
    static const enum al_chat_format others[] = {AL_CHAT_LLAMA31,      AL_CHAT_LLAMA32,    AL_CHAT_CHATML_QWEN25,
                                                 AL_CHAT_SMOLLM2,      AL_CHAT_MISTRAL_NEMO, AL_CHAT_MISTRAL_V3,
                                                 AL_CHAT_CHATML_TOOLS};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        cr_assert_eq(al_chat_format_check_fits(others[i], &conv), -1, "%s", al_chat_format_name(others[i]));
        const char *message = al_error_message();
        cr_assert(strstr(message, al_chat_format_name(others[i])) &&
                      strstr(message, "reasoning_content of message 2") && strstr(message, "qwen3"),
                  "%s", message);
    }
    al_conversation_free(&conv);

    /* Thinking left in the content is shown verbatim by the others, and an empty
     * reasoning_content loses nothing. */
    parse(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                 " \"reasoning_content\": \"\", \"content\": \"<think>y</think>z\"}]}");
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_CHATML_QWEN25, &conv), 0, "%s", al_error_message());
    al_conversation_free(&conv);
}

Test(chat_template_qwen3, tool_calls_are_read_after_the_thinking_only)
{
    struct al_parsed_calls calls;
    const char *text = "<think>\nMaybe <tool_call>\n{\"name\": \"wrong\", \"arguments\": {}}\n</tool_call>?\n"
                       "</think>\n\n<tool_call>\n{\"name\": \"right\", \"arguments\": {\"a\": 1}}\n</tool_call>"
                       "<|im_end|>";
    cr_assert_eq(al_parse_tool_calls(AL_CHAT_QWEN3, text, &calls), 0);
    cr_assert_eq(calls.n_calls, 1);
    cr_assert_str_eq(calls.calls[0].name, "right");
    al_parsed_calls_free(&calls);

    cr_assert_eq(al_parse_tool_calls(AL_CHAT_QWEN3, "<think>\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}", &calls),
                 0);
    cr_assert_eq(calls.n_calls, 0, "cut off while thinking: no call made yet");
    al_parsed_calls_free(&calls);

    cr_assert_eq(al_parse_tool_calls(AL_CHAT_QWEN3, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
                                     &calls),
                 0);
    cr_assert_eq(calls.n_calls, 1, "no thinking at all: the calls are read as for ChatML");
    al_parsed_calls_free(&calls);
}
