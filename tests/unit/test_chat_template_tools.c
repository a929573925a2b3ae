/* chatml-tools (ChatML with tool tags and no vendor system prompt), the check that a
 * format can show what a conversation holds, and "auto" on a SmolLM2 template. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

static const char TOOL_TURN[] =
    "{\"id\": \"conv-9\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}],"
    " \"messages\": [{\"role\": \"user\", \"content\": \"Call f\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abcdefghi\", \"type\": \"function\","
    "   \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]},"
    " {\"role\": \"tool\", \"name\": \"f\", \"tool_call_id\": \"abcdefghi\", \"content\": \"2\"},"
    " {\"role\": \"assistant\", \"content\": \"Done.\"}]}";

static const char PLAIN_CHAT[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"},"
                                 " {\"role\": \"assistant\", \"content\": \"Hello.\"}]}";

static char *render(const char *json, enum al_chat_format format)
{
    struct al_conversation conv;
    cr_assert_eq(al_conversation_from_text(&conv, json, strlen(json), "test", 1), 0, "%s", al_error_message());
    struct al_rendered_chat rendered;
    cr_assert_eq(al_chat_render(format, &conv, NULL, &rendered), 0, "%s", al_error_message());
    char *text = strdup(rendered.text);
    al_rendered_chat_free(&rendered);
    al_conversation_free(&conv);
    return text;
}

Test(chat_template_tools, renders_tools_calls_and_results_without_a_vendor_system_prompt)
{
    cr_assert_eq(al_chat_format_from_name("chatml-tools", &(enum al_chat_format){0}), 0, "%s", al_error_message());
    char *text = render(TOOL_TURN, AL_CHAT_CHATML_TOOLS);
    static const char expected[] =
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\", \"parameters\": "
        "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nCall f<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n2\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\nDone.<|im_end|>\n";
    cr_assert_str_eq(text, expected);
    cr_assert_null(strstr(text, "Qwen"));
    free(text);
    /* no tools and no system message: no system turn at all */
    text = render(PLAIN_CHAT, AL_CHAT_CHATML_TOOLS);
    cr_assert_str_eq(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n");
    free(text);
}

Test(chat_template_tools, a_format_that_drops_tools_is_an_error_naming_it_and_the_formats_that_can)
{
    struct al_conversation tools, plain;
    cr_assert_eq(al_conversation_from_text(&tools, TOOL_TURN, strlen(TOOL_TURN), "test", 1), 0);
    cr_assert_eq(al_conversation_from_text(&plain, PLAIN_CHAT, strlen(PLAIN_CHAT), "test", 2), 0);
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_SMOLLM2, &tools), -1);
    const char *message = al_error_message();
    cr_assert(strstr(message, "chat format smollm2 cannot represent its tools list") && strstr(message, "chatml-tools") &&
                  strstr(message, "chatml-qwen2.5"),
              "%s", message);
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_SMOLLM2, &plain), 0);
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_CHATML_TOOLS, &tools), 0);
    cr_assert_eq(al_chat_format_check_fits(AL_CHAT_CHATML_QWEN25, &tools), 0);
    al_conversation_free(&tools);
    al_conversation_free(&plain);
}

Test(chat_template_tools, auto_chooses_chatml_tools_for_a_smollm2_template)
{
    char *dir = test_tmpdir();
    char *source = test_shared_path("templates/SmolLM2-Instruct.tokenizer_config.json");
    char *copy = al_path_join(dir, "tokenizer_config.json");
    cr_assert_eq(test_copy_file(source, copy), 0);
    enum al_chat_format format = AL_CHAT_LLAMA31;
    cr_assert_eq(al_chat_format_for_model(dir, "auto", &format), 0, "%s", al_error_message());
    cr_assert_eq(format, AL_CHAT_CHATML_TOOLS, "auto gave %s", al_chat_format_name(format));
    cr_assert_eq(al_chat_format_for_model(dir, "smollm2", &format), 0);
    cr_assert_eq(format, AL_CHAT_SMOLLM2, "naming the format still gives the model's own template");
    free(copy);
    free(source);
    free(dir);
}
