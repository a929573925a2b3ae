/* Records in the shapes other fine-tuning tools write, read as the messages form.
 *
 * Alpaca ({"instruction", "input", "output"}, optionally "system" and "history") and
 * ShareGPT ({"conversations": [{"from", "value"}]}, optionally "system" and "tools") are
 * the two formats most instruction data on the Hub comes in. Each is recognised by its
 * fields and rewritten into {"messages": [...], "tools": [...]} with every other key
 * (id, category, ...) kept, so that the one messages reader (conversation.c) checks
 * roles, tool calls and their results for all three alike. The mapping follows the
 * conventions of the tools that made these formats popular (LLaMA-Factory's converters):
 * an Alpaca "input" joins the instruction on a new line; ShareGPT's "function_call"
 * and "observation" turns are an assistant tool call and its result. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"

/* The keys that make a record one of the formats; every other key is carried over. */
static const char *const alpaca_keys[] = {"instruction", "input", "output", "system", "history", NULL};
static const char *const sharegpt_keys[] = {"conversations", "system", "tools", NULL};

const char *al_record_format_name(enum al_record_format format)
{
    switch (format) {
    case AL_RECORD_MESSAGES: return "messages";
    case AL_RECORD_ALPACA: return "Alpaca";
    case AL_RECORD_SHAREGPT: return "ShareGPT";
    }
    return "unknown";
}

enum al_record_format al_record_format_of(const cJSON *record)
{
    if (cJSON_GetObjectItemCaseSensitive(record, "messages"))
        return AL_RECORD_MESSAGES;
    if (cJSON_GetObjectItemCaseSensitive(record, "conversations"))
        return AL_RECORD_SHAREGPT;
    if (cJSON_GetObjectItemCaseSensitive(record, "instruction") || cJSON_GetObjectItemCaseSensitive(record, "output"))
        return AL_RECORD_ALPACA;
    return AL_RECORD_MESSAGES; /* its reader says what is missing */
}

/* ---- building the messages form ---- */

static bool is_one_of(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (strcmp(key, *keys) == 0)
            return true;
    return false;
}

/* A new record holding copies of the keys that are not the format's own. */
static cJSON *copy_other_keys(const cJSON *record, const char *const *format_keys)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *item;
    cJSON_ArrayForEach(item, record) {
        if (!out || is_one_of(item->string, format_keys))
            continue;
        cJSON *copy = cJSON_Duplicate(item, 1);
        if (!copy || !cJSON_AddItemToObject(out, item->string, copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(out);
            out = NULL;
        }
    }
    return out;
}

static cJSON *add_message(cJSON *messages, const char *role, const char *content)
{
    cJSON *message = cJSON_CreateObject();
    if (!message || !cJSON_AddStringToObject(message, "role", role) ||
        !cJSON_AddStringToObject(message, "content", content) || !cJSON_AddItemToArray(messages, message)) {
        cJSON_Delete(message);
        return NULL;
    }
    return message;
}

/* An optional string field: absent or null gives "", anything but a string is an error. */
static int optional_text(const cJSON *record, const char *key, const char *format, const char **out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(record, key);
    *out = "";
    if (!item || cJSON_IsNull(item))
        return 0;
    if (!cJSON_IsString(item))
        return al_fail("%s record: \"%s\" must be a string", format, key);
    *out = item->valuestring;
    return 0;
}

static int add_system_prompt(cJSON *messages, const cJSON *record, const char *format)
{
    const char *system;
    if (optional_text(record, "system", format, &system) != 0)
        return -1;
    if (*system && !add_message(messages, "system", system))
        return al_fail("out of memory");
    return 0;
}

/* ---- Alpaca ---- */

/* "history": [[instruction, response], ...], the turns before this one. */
static int add_alpaca_history(cJSON *messages, const cJSON *record)
{
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(record, "history");
    if (!history || cJSON_IsNull(history))
        return 0;
    if (!cJSON_IsArray(history))
        return al_fail("Alpaca record: \"history\" must be a list of [instruction, response] pairs");
    int turn = 0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, history) {
        turn++;
        const cJSON *asked = cJSON_GetArrayItem(pair, 0), *answered = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(asked) ||
            !cJSON_IsString(answered))
            return al_fail("Alpaca record: \"history\" entry %d must be a pair of strings [instruction, response]",
                           turn);
        if (!add_message(messages, "user", asked->valuestring) ||
            !add_message(messages, "assistant", answered->valuestring))
            return al_fail("out of memory");
    }
    return 0;
}

static int add_alpaca_turn(cJSON *messages, const cJSON *record)
{
    const char *instruction, *input, *output;
    if (optional_text(record, "instruction", "Alpaca", &instruction) != 0 ||
        optional_text(record, "input", "Alpaca", &input) != 0 || optional_text(record, "output", "Alpaca", &output) != 0)
        return -1;
    if (!cJSON_GetObjectItemCaseSensitive(record, "output"))
        return al_fail("Alpaca record (instruction/input/output) has no \"output\"");
    if (!*instruction && !*input)
        return al_fail("Alpaca record has an empty \"instruction\" and no \"input\"");
    char *question = al_strdup_printf("%s%s%s", instruction, *instruction && *input ? "\n" : "", input);
    int rc = question && add_message(messages, "user", question) && add_message(messages, "assistant", output)
                 ? 0
                 : al_fail("out of memory");
    free(question);
    return rc;
}

static cJSON *alpaca_messages(const cJSON *record)
{
    cJSON *messages = cJSON_CreateArray();
    if (!messages)
        return al_fail_null("out of memory");
    if (add_system_prompt(messages, record, "Alpaca") != 0 || add_alpaca_history(messages, record) != 0 ||
        add_alpaca_turn(messages, record) != 0) {
        cJSON_Delete(messages);
        return NULL;
    }
    return messages;
}

/* ---- ShareGPT ---- */

static const char sharegpt_speakers[] =
    "human, user, gpt, assistant, chatgpt, system, function_call, observation, tool";

static const char *sharegpt_role(const char *from)
{
    static const struct {
        const char *from, *role;
    } roles[] = {
        {"human", "user"},     {"user", "user"},         {"gpt", "assistant"},     {"assistant", "assistant"},
        {"chatgpt", "assistant"}, {"system", "system"},  {"function_call", "assistant"},
        {"observation", "tool"},  {"tool", "tool"},
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(from, roles[i].from) == 0)
            return roles[i].role;
    return NULL;
}

/* One call {"name", "arguments"} of a function_call turn, in the OpenAI shape. */
static cJSON *tool_call_from(const cJSON *call, int turn)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(call, "name");
    const cJSON *arguments = cJSON_GetObjectItemCaseSensitive(call, "arguments");
    if (!cJSON_IsObject(call) || !cJSON_IsString(name))
        return al_fail_null("ShareGPT record: turn %d (function_call): each call must be an object with a \"name\"",
                            turn);
    cJSON *out = cJSON_CreateObject(), *function = cJSON_CreateObject();
    cJSON *arguments_copy = arguments ? cJSON_Duplicate(arguments, 1) : cJSON_CreateObject();
    if (!out || !function || !arguments_copy || !cJSON_AddStringToObject(out, "type", "function") ||
        !cJSON_AddItemToObject(out, "function", function)) {
        cJSON_Delete(out);
        cJSON_Delete(function);
        cJSON_Delete(arguments_copy);
        return al_fail_null("out of memory");
    }
    if (!cJSON_AddStringToObject(function, "name", name->valuestring) ||
        !cJSON_AddItemToObject(function, "arguments", arguments_copy)) {
        cJSON_Delete(arguments_copy);
        cJSON_Delete(out);
        return al_fail_null("out of memory");
    }
    return out;
}

/* A function_call turn's value is the JSON text of one call or of a list of calls. */
static int add_tool_calls(cJSON *message, const char *value, int turn)
{
    cJSON *parsed = al_record_json_parse(value, strlen(value), NULL);
    if (!parsed)
        return al_fail("ShareGPT record: turn %d (function_call): the value is not JSON (%s)", turn, al_error_message());
    cJSON *calls = cJSON_CreateArray();
    int rc = calls && cJSON_AddItemToObject(message, "tool_calls", calls) ? 0 : al_fail("out of memory");
    if (rc != 0)
        cJSON_Delete(calls);
    const cJSON *call = cJSON_IsArray(parsed) ? parsed->child : parsed;
    for (; rc == 0 && call; call = cJSON_IsArray(parsed) ? call->next : NULL) {
        cJSON *converted = tool_call_from(call, turn);
        rc = converted && cJSON_AddItemToArray(calls, converted) ? 0 : -1;
        if (rc != 0)
            cJSON_Delete(converted);
    }
    cJSON_Delete(parsed);
    return rc;
}

static int add_sharegpt_turn(cJSON *messages, const cJSON *turn_object, int turn)
{
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(turn_object, "from");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(turn_object, "value");
    if (!cJSON_IsObject(turn_object) || !cJSON_IsString(from))
        return al_fail("ShareGPT record: turn %d has no \"from\" (each turn is {\"from\", \"value\"})", turn);
    const char *role = sharegpt_role(from->valuestring);
    if (!role)
        return al_fail("ShareGPT record: turn %d: unknown speaker \"from\": \"%.64s\" (known: %s)", turn,
                       from->valuestring, sharegpt_speakers);
    if (!cJSON_IsString(value))
        return al_fail("ShareGPT record: turn %d: \"value\" must be a string", turn);
    bool is_call = strcmp(from->valuestring, "function_call") == 0;
    cJSON *message = add_message(messages, role, is_call ? "" : value->valuestring);
    if (!message)
        return al_fail("out of memory");
    return is_call ? add_tool_calls(message, value->valuestring, turn) : 0;
}

static cJSON *sharegpt_messages(const cJSON *record)
{
    const cJSON *turns = cJSON_GetObjectItemCaseSensitive(record, "conversations");
    if (!cJSON_IsArray(turns))
        return al_fail_null("ShareGPT record: \"conversations\" must be a list of {\"from\", \"value\"} turns");
    cJSON *messages = cJSON_CreateArray();
    if (!messages)
        return al_fail_null("out of memory");
    int rc = add_system_prompt(messages, record, "ShareGPT"), turn = 0;
    const cJSON *turn_object;
    cJSON_ArrayForEach(turn_object, turns) {
        if (rc == 0)
            rc = add_sharegpt_turn(messages, turn_object, ++turn);
    }
    if (rc != 0) {
        cJSON_Delete(messages);
        return NULL;
    }
    return messages;
}

/* ShareGPT files of tool data give "tools" as the JSON text of a list of function
 * schemas ({"name", "description", "parameters"}); the messages form holds the OpenAI
 * shape {"type": "function", "function": {...}}. */
static cJSON *sharegpt_tools(const cJSON *record)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(record, "tools");
    if (!tools || cJSON_IsNull(tools))
        return NULL;
    cJSON *list = cJSON_IsString(tools) ? al_record_json_parse(tools->valuestring, strlen(tools->valuestring), NULL)
                                        : cJSON_Duplicate(tools, 1);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return al_fail_null("ShareGPT record: \"tools\" must be a list of function schemas (or its JSON text)");
    }
    for (cJSON *tool = list->child; tool; tool = tool->next) {
        if (!cJSON_IsObject(tool) || cJSON_GetObjectItemCaseSensitive(tool, "function"))
            continue; /* already OpenAI-shaped, or refused with its place by the messages reader */
        cJSON *function = cJSON_Duplicate(tool, 1);
        cJSON *wrapped = cJSON_CreateObject();
        if (!function || !wrapped || !cJSON_AddStringToObject(wrapped, "type", "function") ||
            !cJSON_AddItemToObject(wrapped, "function", function) || !cJSON_ReplaceItemViaPointer(list, tool, wrapped)) {
            cJSON_Delete(function);
            cJSON_Delete(wrapped);
            cJSON_Delete(list);
            return al_fail_null("out of memory");
        }
        tool = wrapped;
    }
    return list;
}

/* Adds item under key, or frees it: the caller only checks the result. */
static bool attach(cJSON *object, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(object, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

static bool has_value(const cJSON *record, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(record, key);
    return item && !cJSON_IsNull(item);
}

cJSON *al_record_to_messages_form(const cJSON *record, enum al_record_format format)
{
    bool alpaca = format == AL_RECORD_ALPACA;
    cJSON *out = copy_other_keys(record, alpaca ? alpaca_keys : sharegpt_keys);
    if (!out)
        return al_fail_null("out of memory");
    bool ok = attach(out, "messages", alpaca ? alpaca_messages(record) : sharegpt_messages(record));
    if (ok && !alpaca && has_value(record, "tools"))
        ok = attach(out, "tools", sharegpt_tools(record));
    if (!ok) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}
