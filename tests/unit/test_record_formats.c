/* Alpaca and ShareGPT records, read as the messages form: the turns each becomes, the
 * keys kept, tool calls and tool schemas of ShareGPT tool data, and errors that name the
 * format, the record and the turn. A converted record renders exactly like the same
 * conversation written in the messages form. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"

static void read_ok(struct al_conversation *conv, const char *text)
{
    cr_assert_eq(al_conversation_from_text(conv, text, strlen(text), "f.jsonl", 7), 0, "%s", al_error_message());
}

static void read_fails(const char *text, const char *const *fragments)
{
    struct al_conversation conv;
    cr_assert_neq(al_conversation_from_text(&conv, text, strlen(text), "f.jsonl", 7), 0, "accepted: %s", text);
    for (; *fragments; fragments++)
        cr_assert(strstr(al_error_message(), *fragments), "error lacks \"%s\": %s", *fragments, al_error_message());
}

static void expect_message(const struct al_conversation *conv, int i, enum al_role role, const char *content)
{
    cr_assert(i < conv->n_messages, "only %d messages", conv->n_messages);
    cr_assert_eq(conv->messages[i].role, role, "message %d: role %s", i + 1, al_role_name(conv->messages[i].role));
    cr_assert_str_eq(conv->messages[i].content, content, "message %d", i + 1);
}

Test(record_formats, alpaca_joins_instruction_and_input_and_keeps_labels)
{
    struct al_conversation conv;
    read_ok(&conv, "{\"id\": \"a1\", \"category\": \"benign\", \"system\": \"Be kind.\", \"instruction\": \"Translate\","
                   " \"input\": \"Good morning\", \"output\": \"Bonjour\","
                   " \"history\": [[\"Hi\", \"Hello\"]]}");
    cr_assert_eq(conv.format, AL_RECORD_ALPACA);
    cr_assert_eq(conv.n_messages, 5);
    expect_message(&conv, 0, AL_ROLE_SYSTEM, "Be kind.");
    expect_message(&conv, 1, AL_ROLE_USER, "Hi");
    expect_message(&conv, 2, AL_ROLE_ASSISTANT, "Hello");
    expect_message(&conv, 3, AL_ROLE_USER, "Translate\nGood morning");
    expect_message(&conv, 4, AL_ROLE_ASSISTANT, "Bonjour");
    cr_assert_str_eq(conv.id, "a1");
    cr_assert_str_eq(conv.category, "benign");
    al_conversation_free(&conv);

    read_ok(&conv, "{\"instruction\": \"Name a colour.\", \"input\": \"\", \"output\": \"Blue.\"}");
    cr_assert_eq(conv.n_messages, 2, "no system turn, no empty input line");
    expect_message(&conv, 0, AL_ROLE_USER, "Name a colour.");
    al_conversation_free(&conv);
}

Test(record_formats, sharegpt_speakers_function_calls_and_tools)
{
    struct al_conversation conv;
    read_ok(&conv,
            "{\"system\": \"Use tools.\", \"tools\": \"[{\\\"name\\\": \\\"weather\\\", \\\"description\\\": \\\"w\\\","
            " \\\"parameters\\\": {\\\"type\\\": \\\"object\\\", \\\"properties\\\": {\\\"city\\\": {\\\"type\\\":"
            " \\\"string\\\"}}}}]\", \"conversations\": ["
            "{\"from\": \"human\", \"value\": \"Weather in Paris?\"},"
            "{\"from\": \"function_call\", \"value\": \"{\\\"name\\\": \\\"weather\\\", \\\"arguments\\\": {\\\"city\\\":"
            " \\\"Paris\\\"}}\"},"
            "{\"from\": \"observation\", \"value\": \"21 C\"},"
            "{\"from\": \"gpt\", \"value\": \"It is 21 C.\"}]}");
    cr_assert_eq(conv.format, AL_RECORD_SHAREGPT);
    cr_assert_eq(conv.n_messages, 5);
    expect_message(&conv, 0, AL_ROLE_SYSTEM, "Use tools.");
    expect_message(&conv, 1, AL_ROLE_USER, "Weather in Paris?");
    expect_message(&conv, 2, AL_ROLE_ASSISTANT, "");
    cr_assert_eq(conv.messages[2].n_tool_calls, 1);
    cr_assert_str_eq(conv.messages[2].tool_calls[0].name, "weather");
    cr_assert_str_eq(cJSON_GetObjectItem(conv.messages[2].tool_calls[0].arguments, "city")->valuestring, "Paris");
    expect_message(&conv, 3, AL_ROLE_TOOL, "21 C");
    expect_message(&conv, 4, AL_ROLE_ASSISTANT, "It is 21 C.");
    cJSON *function = cJSON_GetObjectItem(cJSON_GetArrayItem(conv.tools, 0), "function");
    cr_assert_not_null(function, "the schema is wrapped in the OpenAI shape");
    cr_assert_str_eq(cJSON_GetObjectItem(function, "name")->valuestring, "weather");
    al_conversation_free(&conv);
}

Test(record_formats, errors_name_the_format_the_record_and_the_turn)
{
    read_fails("{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"bot\", \"value\": \"b\"}]}",
               (const char *const[]){"f.jsonl: record 7", "ShareGPT", "turn 2", "\"bot\"", "known: human", NULL});
    read_fails("{\"conversations\": [{\"from\": \"function_call\", \"value\": \"not json\"}]}",
               (const char *const[]){"record 7", "ShareGPT", "function_call", "not JSON", NULL});
    read_fails("{\"instruction\": \"x\", \"output\": [\"a\", \"b\"]}",
               (const char *const[]){"record 7", "Alpaca", "\"output\" must be a string", NULL});
    read_fails("{\"instruction\": \"x\"}", (const char *const[]){"Alpaca", "no \"output\"", NULL});
    read_fails("{\"prompt\": \"x\", \"completion\": \"y\"}",
               (const char *const[]){"record 7", "no \"messages\"", "Alpaca", "ShareGPT", "\"prompt\", \"completion\"",
                                     NULL});
    /* A problem the messages reader finds in a converted record says which shape it came in. */
    read_fails("{\"conversations\": [{\"from\": \"observation\", \"value\": \"21 C\"}]}",
               (const char *const[]){"record 7 (ShareGPT, read as messages): message 1",
                                     "tool result comes before any tool call", NULL});
}

static char *render(const char *text)
{
    struct al_conversation conv;
    read_ok(&conv, text);
    struct al_rendered_chat rendered;
    struct al_chat_options options = {0};
    cr_assert_eq(al_chat_render(AL_CHAT_CHATML_TOOLS, &conv, &options, &rendered), 0, "%s", al_error_message());
    char *copy = strdup(rendered.text);
    al_rendered_chat_free(&rendered);
    al_conversation_free(&conv);
    return copy;
}

Test(record_formats, a_converted_record_renders_like_its_messages_form)
{
    char *alpaca = render("{\"system\": \"S\", \"instruction\": \"I\", \"input\": \"N\", \"output\": \"O\"}");
    char *messages = render("{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\":"
                            " \"I\\nN\"}, {\"role\": \"assistant\", \"content\": \"O\"}]}");
    cr_assert_str_eq(alpaca, messages);
    char *sharegpt = render("{\"system\": \"S\", \"conversations\": [{\"from\": \"human\", \"value\": \"I\\nN\"},"
                            " {\"from\": \"gpt\", \"value\": \"O\"}]}");
    cr_assert_str_eq(sharegpt, messages);
    free(alpaca);
    free(messages);
    free(sharegpt);
}
