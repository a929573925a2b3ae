/* Conversations from AgentAlign and generic records: what is read, and how bad records
 * are reported (file and record number in every message). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"

/* Parses `json` and builds a conversation from it, as record 7 of "data.json". */
static int from_text(struct al_conversation *conv, const char *json)
{
    return al_conversation_from_text(conv, json, strlen(json), "data.json", 7);
}

static void assert_rejected(const char *json, const char *expected_fragment)
{
    struct al_conversation conv;
    al_error_clear();
    cr_assert_neq(from_text(&conv, json), 0, "accepted: %s", json);
    const char *message = al_error_message();
    cr_assert(strstr(message, "data.json: record 7") != NULL, "no file/record in: %s", message);
    cr_assert(strstr(message, expected_fragment) != NULL, "\"%s\" not in: %s", expected_fragment, message);
    cr_assert_eq(conv.n_messages, 0, "a failed read leaves an empty conversation");
}

static const char AGENTALIGN_BENIGN[] =
    "{\"id\": \"benign-12\", \"category\": \"benign\", \"pattern\": [\"Search.web_search\", \"Communication.send_email\"],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"search_google\", \"parameters\": {}},"
    " \"category\": \"Search\"}],"
    " \"messages\": ["
    "  {\"role\": \"user\", \"content\": \"find it\"},"
    "  {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"abc123XYZ\", \"type\": \"function\","
    "    \"function\": {\"name\": \"search_google\", \"arguments\": \"{\\\"query\\\": \\\"x\\\", \\\"n\\\": 2.0}\"}}]},"
    "  {\"role\": \"tool\", \"name\": \"search_google\", \"content\": \"[]\", \"tool_call_id\": \"abc123XYZ\"},"
    "  {\"role\": \"assistant\", \"content\": \"nothing found\", \"extra\": 1}"
    " ], \"source\": \"ignored extra key\"}";

Test(conversation, reads_agentalign_benign_record)
{
    struct al_conversation conv;
    cr_assert_eq(from_text(&conv, AGENTALIGN_BENIGN), 0, "%s", al_error_message());
    cr_assert_str_eq(conv.id, "benign-12");
    cr_assert_str_eq(conv.category, "benign");
    cr_assert_null(conv.sub_category);
    cr_assert(!conv.harmful);
    cr_assert_eq(conv.n_pattern, 2);
    cr_assert_str_eq(conv.pattern[1], "Communication.send_email");
    cr_assert_eq(cJSON_GetArraySize(conv.tools), 1);
    cr_assert_eq(conv.n_messages, 4);

    const struct al_message *call = &conv.messages[1];
    cr_assert_eq(call->role, AL_ROLE_ASSISTANT);
    cr_assert_str_eq(call->content, "", "null content reads as empty");
    cr_assert_eq(call->n_tool_calls, 1);
    cr_assert_str_eq(call->tool_calls[0].id, "abc123XYZ");
    cr_assert_str_eq(call->tool_calls[0].name, "search_google");
    cr_assert(call->tool_calls[0].arguments_was_string);
    cr_assert_str_eq(call->tool_calls[0].arguments_text, "{\"query\": \"x\", \"n\": 2.0}");
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(call->tool_calls[0].arguments, "query");
    cr_assert_str_eq(query->valuestring, "x");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(call->tool_calls[0].arguments, "n");
    cr_assert(cJSON_IsNumber(n) && n->valuedouble == 2.0);
    cr_assert_str_eq(n->valuestring, "2.0", "the float literal is kept");

    const struct al_message *result = &conv.messages[2];
    cr_assert_eq(result->role, AL_ROLE_TOOL);
    cr_assert_str_eq(result->name, "search_google");
    cr_assert_str_eq(result->tool_call_id, "abc123XYZ");
    cr_assert_str_eq(result->content, "[]");
    cr_assert_str_eq(conv.messages[3].content, "nothing found");
    al_conversation_free(&conv);
    cr_assert_null(conv.messages, "free leaves a zeroed struct");
}

Test(conversation, harmful_label_and_pattern_object)
{
    struct al_conversation conv;
    const char *json = "{\"id\": \"h1\", \"category\": \"cyber_crime\", \"sub_category\": \"ddos_attack\","
                       " \"pattern\": {\"steps\": [\"Search.web_search\"], \"explanation\": \"...\"},"
                       " \"messages\": [{\"role\": \"user\", \"content\": \"attack\"},"
                       " {\"role\": \"assistant\", \"content\": \"No.\"}]}";
    cr_assert_eq(from_text(&conv, json), 0, "%s", al_error_message());
    cr_assert(conv.harmful);
    cr_assert_str_eq(conv.sub_category, "ddos_attack");
    cr_assert_eq(conv.n_pattern, 1);
    cr_assert_str_eq(conv.pattern[0], "Search.web_search");
    cr_assert_null(conv.tools);
    al_conversation_free(&conv);
}

Test(conversation, generic_record_with_object_arguments)
{
    struct al_conversation conv;
    const char *json = "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"},"
                       " {\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\","
                       " \"arguments\": {\"a\": [1, 2]}}}]}, {\"role\": \"tool\", \"content\": \"ok\"}]}";
    cr_assert_eq(from_text(&conv, json), 0, "%s", al_error_message());
    cr_assert_null(conv.id);
    cr_assert_null(conv.category);
    cr_assert(!conv.harmful, "generic records carry no harm label");
    cr_assert_eq(conv.messages[0].role, AL_ROLE_SYSTEM);
    const struct al_tool_call *call = &conv.messages[2].tool_calls[0];
    cr_assert_null(call->id);
    cr_assert(!call->arguments_was_string);
    cr_assert_null(call->arguments_text);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(call->arguments, "a")), 2);
    cr_assert_null(conv.messages[3].tool_call_id, "a tool result without an id answers the earlier call");
    al_conversation_free(&conv);
}

Test(conversation, from_json_matches_from_text)
{
    cJSON *record = cJSON_Parse(AGENTALIGN_BENIGN);
    struct al_conversation conv;
    cr_assert_eq(al_conversation_from_json(&conv, record, "data.json", 7), 0, "%s", al_error_message());
    cr_assert_eq(conv.n_messages, 4);
    cr_assert_str_eq(conv.messages[1].tool_calls[0].name, "search_google");
    al_conversation_free(&conv);
    cJSON_Delete(record);
}

Test(conversation, role_names)
{
    cr_assert_str_eq(al_role_name(AL_ROLE_SYSTEM), "system");
    cr_assert_str_eq(al_role_name(AL_ROLE_USER), "user");
    cr_assert_str_eq(al_role_name(AL_ROLE_ASSISTANT), "assistant");
    cr_assert_str_eq(al_role_name(AL_ROLE_TOOL), "tool");
}

Test(conversation, rejects_bad_records)
{
    assert_rejected("[1, 2]", "malformed record");
    assert_rejected("{\"messages\": [", "malformed record");
    assert_rejected("{\"id\": \"x\"}", "no \"messages\"");
    assert_rejected("{\"messages\": {}}", "must be a list");
    assert_rejected("{\"messages\": []}", "empty conversation");
    assert_rejected("{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", "unknown role \"wizard\"");
    assert_rejected("{\"messages\": [{\"content\": \"hi\"}]}", "no \"role\"");
    assert_rejected("{\"messages\": [\"hi\"]}", "must be an object");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "\"content\" must be a string");
    assert_rejected("{\"pattern\": 3, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "\"pattern\"");
    assert_rejected("{\"tools\": {}, \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "\"tools\"");
}

Test(conversation, rejects_bad_tool_calls)
{
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                    " \"tool_calls\": [{\"id\": \"1\", \"function\": {\"name\": \"f\", \"arguments\": \"{oops\"}}]}]}",
                    "arguments are not valid JSON");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                    " \"tool_calls\": [{\"function\": {\"arguments\": \"{}\"}}]}]}",
                    "no function name");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                    " \"tool_calls\": [{\"function\": {\"name\": \"f\"}}]}]}",
                    "no \"arguments\"");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": "
                    "[{\"function\": {\"name\": \"f\", \"arguments\": {}}}]}]}",
                    "only assistant messages");
}

Test(conversation, reasoning_content_of_assistant_messages)
{
    struct al_conversation conv;
    cr_assert_eq(from_text(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                                  " {\"role\": \"assistant\", \"reasoning_content\": \"think\", \"content\": \"a\"},"
                                  " {\"role\": \"assistant\", \"reasoning_content\": \"\", \"content\": \"b\"},"
                                  " {\"role\": \"assistant\", \"reasoning_content\": null, \"content\": \"c\"}]}"),
                 0, "%s", al_error_message());
    cr_assert_null(conv.messages[0].reasoning_content);
    cr_assert_str_eq(conv.messages[1].reasoning_content, "think");
    cr_assert_str_eq(conv.messages[2].reasoning_content, "", "given but empty is kept apart from absent");
    cr_assert_null(conv.messages[3].reasoning_content);
    al_conversation_free(&conv);
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"reasoning_content\": \"r\"}]}",
                    "only assistant messages may carry reasoning_content");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                    " {\"role\": \"assistant\", \"content\": \"a\", \"reasoning_content\": 3}]}",
                    "\"reasoning_content\" must be a string");
}

Test(conversation, rejects_unmatched_tool_results)
{
    /* message 3 names a call id that was never made */
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                    " \"tool_calls\": [{\"id\": \"aaaaaaaaa\", \"function\": {\"name\": \"f\", \"arguments\": {}}}]},"
                    " {\"role\": \"tool\", \"tool_call_id\": \"bbbbbbbbb\", \"content\": \"r\"}]}",
                    "message 3: tool result's tool_call_id \"bbbbbbbbb\" matches no earlier tool call");
    assert_rejected("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                    " {\"role\": \"tool\", \"content\": \"r\"}]}",
                    "message 2: tool result comes before any tool call");
}

Test(conversation, marks_float_literals_only)
{
    const char *text = "{\"a\": 1, \"b\": 2.0, \"c\": [1e3, -4, \"5.5\"], \"d\": {\"e\": 0.25}, "
                       "\"f\": 123456789012345678901}";
    cJSON *root = cJSON_Parse(text);
    cr_assert_eq(al_json_mark_float_literals(root, text, strlen(text)), 0);
    cr_assert_null(cJSON_GetObjectItem(root, "a")->valuestring, "integers stay unmarked");
    cr_assert_str_eq(cJSON_GetObjectItem(root, "b")->valuestring, "2.0");
    cJSON *c = cJSON_GetObjectItem(root, "c");
    cr_assert_str_eq(cJSON_GetArrayItem(c, 0)->valuestring, "1e3");
    cr_assert_null(cJSON_GetArrayItem(c, 1)->valuestring);
    cr_assert_str_eq(cJSON_GetArrayItem(c, 2)->valuestring, "5.5", "strings keep their own text");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "d"), "e")->valuestring, "0.25");
    cr_assert_str_eq(cJSON_GetObjectItem(root, "f")->valuestring, "123456789012345678901",
                     "long integers keep their digits");
    cJSON *copy = cJSON_Duplicate(root, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(copy, "b")->valuestring, "2.0", "duplicates keep the literal");
    cJSON_Delete(copy);
    cJSON_Delete(root);
}

Test(conversation, tool_result_ids_are_checked_only_when_calls_have_ids)
{
    struct al_conversation conv;
    cr_assert_eq(from_text(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\","
                                  " \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {}}}]},"
                                  " {\"role\": \"tool\", \"tool_call_id\": \"anything1\", \"content\": \"r\"}]}"),
                 0, "%s", al_error_message());
    cr_assert_str_eq(conv.messages[2].tool_call_id, "anything1");
    al_conversation_free(&conv);
}
