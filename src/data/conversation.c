/* Conversations from JSON records: AgentAlign rows and generic {"messages", "tools"}.
 *
 * The reader is strict about what it must understand (roles, tool calls, the link
 * between a tool result and its call) and tolerant of everything else (extra keys,
 * null content), because the real AgentAlign file mixes rows from several sources. */
#include "agentlora/conversation.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"

/* Where we are while reading, so every error names the file, record and message. */
struct reading {
    const char *source;
    long record_number;
    int message_index; /* 0-based; -1 outside the messages array */
    enum al_record_format format;
};

static int fail_at(const struct reading *at, const char *what)
{
    /* Message numbers of an Alpaca or ShareGPT record count the messages it was read as. */
    char shape[64] = "";
    if (at->format != AL_RECORD_MESSAGES)
        snprintf(shape, sizeof shape, " (%s, read as messages)", al_record_format_name(at->format));
    if (at->message_index >= 0)
        return al_fail("%s: record %ld%s: message %d: %s", at->source, at->record_number, shape,
                       at->message_index + 1, what);
    return al_fail("%s: record %ld%s: %s", at->source, at->record_number, shape, what);
}

static int fail_out_of_memory(const struct reading *at)
{
    return fail_at(at, "out of memory");
}

const char *al_role_name(enum al_role role)
{
    switch (role) {
    case AL_ROLE_SYSTEM: return "system";
    case AL_ROLE_USER: return "user";
    case AL_ROLE_ASSISTANT: return "assistant";
    case AL_ROLE_TOOL: return "tool";
    }
    return "unknown";
}

static int parse_role(const char *name, enum al_role *role)
{
    static const enum al_role roles[] = {AL_ROLE_SYSTEM, AL_ROLE_USER, AL_ROLE_ASSISTANT, AL_ROLE_TOOL};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp(name, al_role_name(roles[i])) == 0) {
            *role = roles[i];
            return 0;
        }
    }
    return -1;
}

/* Copies an optional string field. Absent or null leaves *out NULL; numbers are accepted
 * for ids (some exporters write numeric ids); anything else is malformed. */
static int copy_optional_string(char **out, const cJSON *object, const char *key, const struct reading *at)
{
    *out = NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!item || cJSON_IsNull(item))
        return 0;
    char number[64];
    const char *text = NULL;
    if (cJSON_IsString(item)) {
        text = item->valuestring;
    } else if (cJSON_IsNumber(item)) {
        snprintf(number, sizeof number, item->valuedouble == floor(item->valuedouble) ? "%.0f" : "%.17g",
                 item->valuedouble);
        text = number;
    } else {
        char what[160];
        snprintf(what, sizeof what, "\"%s\" must be a string", key);
        return fail_at(at, what);
    }
    *out = strdup(text);
    return *out ? 0 : fail_out_of_memory(at);
}

static int read_pattern(struct al_conversation *conv, const cJSON *record, const struct reading *at)
{
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(record, "pattern");
    if (!pattern || cJSON_IsNull(pattern))
        return 0;
    /* Intermediate AgentAlign files wrap the steps: {"steps": [...], "explanation": ...}. */
    const cJSON *steps = cJSON_IsObject(pattern) ? cJSON_GetObjectItemCaseSensitive(pattern, "steps") : pattern;
    if (!cJSON_IsArray(steps))
        return fail_at(at, "\"pattern\" must be a list of strings or an object with a \"steps\" list");
    int n = cJSON_GetArraySize(steps);
    conv->pattern = calloc(n > 0 ? (size_t)n : 1, sizeof *conv->pattern);
    if (!conv->pattern)
        return fail_out_of_memory(at);
    const cJSON *step;
    cJSON_ArrayForEach(step, steps) {
        if (!cJSON_IsString(step))
            return fail_at(at, "\"pattern\" steps must be strings");
        conv->pattern[conv->n_pattern] = strdup(step->valuestring);
        if (!conv->pattern[conv->n_pattern])
            return fail_out_of_memory(at);
        conv->n_pattern++;
    }
    return 0;
}

static int read_tools(struct al_conversation *conv, const cJSON *record, const struct reading *at)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(record, "tools");
    if (!tools || cJSON_IsNull(tools))
        return 0;
    if (!cJSON_IsArray(tools))
        return fail_at(at, "\"tools\" must be a list of tool schemas");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        if (!cJSON_IsObject(tool))
            return fail_at(at, "every entry of \"tools\" must be an object");
    }
    conv->tools = cJSON_Duplicate(tools, 1);
    return conv->tools ? 0 : fail_out_of_memory(at);
}

/* Arguments arrive as a JSON string (OpenAI style, AgentAlign) or as an object. Either
 * way we keep a parsed value and remember the original form, because templates that
 * apply `tojson` to the arguments render the two forms differently. */
static int read_arguments(struct al_tool_call *call, const cJSON *arguments, const struct reading *at)
{
    if (!arguments)
        return fail_at(at, "tool call has no \"arguments\"");
    if (cJSON_IsString(arguments)) {
        call->arguments = al_record_json_parse(arguments->valuestring, strlen(arguments->valuestring), NULL);
        if (!call->arguments) {
            char what[400];
            snprintf(what, sizeof what, "tool call \"%s\": arguments are not valid JSON (%.160s): %.120s",
                     call->name, al_error_message(), arguments->valuestring);
            return fail_at(at, what);
        }
        call->arguments_was_string = true;
        call->arguments_text = strdup(arguments->valuestring);
        return call->arguments_text ? 0 : fail_out_of_memory(at);
    }
    call->arguments = cJSON_Duplicate(arguments, 1);
    return call->arguments ? 0 : fail_out_of_memory(at);
}

static int read_tool_call(struct al_tool_call *call, const cJSON *item, const struct reading *at)
{
    if (!cJSON_IsObject(item))
        return fail_at(at, "every tool call must be an object");
    if (copy_optional_string(&call->id, item, "id", at) != 0)
        return -1;
    /* The OpenAI shape nests name and arguments under "function"; some exporters flatten it. */
    const cJSON *function = cJSON_GetObjectItemCaseSensitive(item, "function");
    if (!function)
        function = item;
    if (!cJSON_IsObject(function))
        return fail_at(at, "tool call \"function\" must be an object");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
    if (!cJSON_IsString(name))
        return fail_at(at, "tool call has no function name");
    call->name = strdup(name->valuestring);
    if (!call->name)
        return fail_out_of_memory(at);
    return read_arguments(call, cJSON_GetObjectItemCaseSensitive(function, "arguments"), at);
}

static int read_tool_calls(struct al_message *message, const cJSON *object, const struct reading *at)
{
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(object, "tool_calls");
    if (!calls || cJSON_IsNull(calls))
        return 0;
    if (!cJSON_IsArray(calls))
        return fail_at(at, "\"tool_calls\" must be a list");
    if (message->role != AL_ROLE_ASSISTANT && cJSON_GetArraySize(calls) > 0)
        return fail_at(at, "only assistant messages may carry tool calls");
    int n = cJSON_GetArraySize(calls);
    if (n == 0)
        return 0;
    message->tool_calls = calloc((size_t)n, sizeof *message->tool_calls);
    if (!message->tool_calls)
        return fail_out_of_memory(at);
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        /* Count first so that a half-read call is still freed. */
        struct al_tool_call *slot = &message->tool_calls[message->n_tool_calls++];
        if (read_tool_call(slot, call, at) != 0)
            return -1;
    }
    return 0;
}

static int read_content(struct al_message *message, const cJSON *object, const struct reading *at)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(object, "content");
    const char *text = "";
    if (content && !cJSON_IsNull(content)) {
        if (!cJSON_IsString(content))
            return fail_at(at, "\"content\" must be a string or null");
        text = content->valuestring;
    }
    message->content = strdup(text);
    return message->content ? 0 : fail_out_of_memory(at);
}

/* Only assistants reason; like a tool call, reasoning elsewhere is refused rather than
 * dropped, since no template would render it. */
static int read_reasoning(struct al_message *message, const cJSON *object, const struct reading *at)
{
    const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(object, "reasoning_content");
    if (!reasoning || cJSON_IsNull(reasoning))
        return 0;
    if (!cJSON_IsString(reasoning))
        return fail_at(at, "\"reasoning_content\" must be a string or null");
    if (message->role != AL_ROLE_ASSISTANT)
        return fail_at(at, "only assistant messages may carry reasoning_content");
    message->reasoning_content = strdup(reasoning->valuestring);
    return message->reasoning_content ? 0 : fail_out_of_memory(at);
}

static int read_message(struct al_message *message, const cJSON *object, const struct reading *at)
{
    if (!cJSON_IsObject(object))
        return fail_at(at, "message must be an object");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(object, "role");
    if (!cJSON_IsString(role))
        return fail_at(at, "message has no \"role\"");
    if (parse_role(role->valuestring, &message->role) != 0) {
        char what[160];
        snprintf(what, sizeof what, "unknown role \"%.64s\"", role->valuestring);
        return fail_at(at, what);
    }
    if (read_content(message, object, at) != 0)
        return -1;
    if (message->role == AL_ROLE_TOOL) {
        if (copy_optional_string(&message->name, object, "name", at) != 0 ||
            copy_optional_string(&message->tool_call_id, object, "tool_call_id", at) != 0)
            return -1;
    }
    if (read_reasoning(message, object, at) != 0)
        return -1;
    return read_tool_calls(message, object, at);
}

/* A tool result must answer a call made earlier in the conversation; when both sides
 * carry ids, the result's id must be one of the earlier calls'. */
static int check_tool_result(const struct al_conversation *conv, int index, const struct reading *at)
{
    const struct al_message *result = &conv->messages[index];
    bool any_call = false, any_call_id = false;
    for (int i = 0; i < index; i++) {
        const struct al_message *earlier = &conv->messages[i];
        for (int c = 0; c < earlier->n_tool_calls; c++) {
            const char *id = earlier->tool_calls[c].id;
            any_call = true;
            any_call_id = any_call_id || id;
            if (result->tool_call_id && id && strcmp(id, result->tool_call_id) == 0)
                return 0;
        }
    }
    char what[200];
    if (!any_call)
        snprintf(what, sizeof what, "tool result comes before any tool call");
    else if (result->tool_call_id && any_call_id)
        snprintf(what, sizeof what, "tool result's tool_call_id \"%.64s\" matches no earlier tool call",
                 result->tool_call_id);
    else
        return 0;
    return fail_at(at, what);
}

/* Names the keys the record does have, so a file in an unknown shape is recognised as such
 * at its first record rather than as thousands of broken ones. */
static int fail_missing_messages(const cJSON *record, const struct reading *at)
{
    char keys[160] = "";
    size_t used = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, record) {
        if (used < sizeof keys)
            used += (size_t)snprintf(keys + used, sizeof keys - used, "%s\"%.40s\"", used ? ", " : "", item->string);
    }
    char what[400];
    snprintf(what, sizeof what,
             "record has no \"messages\" and is not in another known format (Alpaca: \"instruction\", "
             "\"input\", \"output\"; ShareGPT: \"conversations\" of {\"from\", \"value\"}); its keys: %s",
             used ? keys : "none");
    return fail_at(at, what);
}

static int read_messages(struct al_conversation *conv, const cJSON *record, struct reading *at)
{
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(record, "messages");
    if (!messages)
        return fail_missing_messages(record, at);
    if (!cJSON_IsArray(messages))
        return fail_at(at, "\"messages\" must be a list");
    int n = cJSON_GetArraySize(messages);
    if (n == 0)
        return fail_at(at, "empty conversation");
    conv->messages = calloc((size_t)n, sizeof *conv->messages);
    if (!conv->messages)
        return fail_out_of_memory(at);
    const cJSON *object;
    cJSON_ArrayForEach(object, messages) {
        at->message_index = conv->n_messages;
        struct al_message *message = &conv->messages[conv->n_messages++];
        if (read_message(message, object, at) != 0)
            return -1;
        if (message->role == AL_ROLE_TOOL && check_tool_result(conv, conv->n_messages - 1, at) != 0)
            return -1;
    }
    at->message_index = -1;
    return 0;
}

/* The category decides the label (anything but "benign" is harmful), so a value that is
 * not a name cannot be guessed at: "" or 3 would silently read as harmful. */
static int read_category(struct al_conversation *conv, const cJSON *record, const struct reading *at)
{
    const cJSON *category = cJSON_GetObjectItemCaseSensitive(record, "category");
    if (!category || cJSON_IsNull(category))
        return 0;
    if (!cJSON_IsString(category) || category->valuestring[0] == '\0')
        return fail_at(at, "\"category\" must be a non-empty string (it decides harmful or benign)");
    conv->category = strdup(category->valuestring);
    return conv->category ? 0 : fail_out_of_memory(at);
}

static int read_labels(struct al_conversation *conv, const cJSON *record, const struct reading *at)
{
    if (copy_optional_string(&conv->id, record, "id", at) != 0 || read_category(conv, record, at) != 0 ||
        copy_optional_string(&conv->sub_category, record, "sub_category", at) != 0)
        return -1;
    conv->harmful = conv->category && strcmp(conv->category, "benign") != 0;
    return 0;
}

int al_conversation_from_json(struct al_conversation *conv, const cJSON *record, const char *source,
                              long record_number)
{
    memset(conv, 0, sizeof *conv);
    struct reading at = {source ? source : "<input>", record_number, -1, AL_RECORD_MESSAGES};
    if (!cJSON_IsObject(record))
        return fail_at(&at, "malformed record: expected a JSON object");
    at.format = al_record_format_of(record);
    cJSON *converted = NULL;
    if (at.format != AL_RECORD_MESSAGES) {
        converted = al_record_to_messages_form(record, at.format);
        if (!converted) {
            al_error_context("%s: record %ld", at.source, at.record_number);
            return -1;
        }
        record = converted;
    }
    int rc = read_labels(conv, record, &at) != 0 || read_pattern(conv, record, &at) != 0 ||
                     read_tools(conv, record, &at) != 0 || read_messages(conv, record, &at) != 0
                 ? -1
                 : 0;
    cJSON_Delete(converted);
    if (rc != 0)
        al_conversation_free(conv);
    else
        conv->format = at.format;
    return rc;
}

static void free_message(struct al_message *message)
{
    free(message->content);
    free(message->name);
    free(message->tool_call_id);
    free(message->reasoning_content);
    for (int c = 0; c < message->n_tool_calls; c++) {
        free(message->tool_calls[c].id);
        free(message->tool_calls[c].name);
        cJSON_Delete(message->tool_calls[c].arguments);
        free(message->tool_calls[c].arguments_text);
    }
    free(message->tool_calls);
}

void al_conversation_free(struct al_conversation *conv)
{
    if (!conv)
        return;
    free(conv->id);
    free(conv->category);
    free(conv->sub_category);
    for (int i = 0; i < conv->n_pattern; i++)
        free(conv->pattern[i]);
    free(conv->pattern);
    cJSON_Delete(conv->tools);
    for (int i = 0; i < conv->n_messages; i++)
        free_message(&conv->messages[i]);
    free(conv->messages);
    memset(conv, 0, sizeof *conv);
}

/* ---- float literals ---------------------------------------------------------------- */

/* Walks the text's number literals in document order, which is the order in which a
 * depth-first walk of the parsed tree meets its number items. */
/* Longer integers may not survive the trip through a double, so they keep their text too. */
#define MAX_EXACT_INTEGER_DIGITS 15

struct literal_cursor {
    const char *p;
    const char *end;
};

static bool next_number_literal(struct literal_cursor *cursor, const char **start, size_t *length)
{
    const char *p = cursor->p;
    while (p < cursor->end) {
        if (*p == '"') { /* skip a string, escapes included */
            for (p++; p < cursor->end && *p != '"'; p++)
                if (*p == '\\')
                    p++;
            p++;
            continue;
        }
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *begin = p;
            while (p < cursor->end && strchr("+-0123456789.eE", *p))
                p++;
            *start = begin;
            *length = (size_t)(p - begin);
            cursor->p = p;
            return true;
        }
        p++;
    }
    cursor->p = p;
    return false;
}

static int mark_numbers(cJSON *item, struct literal_cursor *cursor)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            const char *literal;
            size_t length;
            if (!next_number_literal(cursor, &literal, &length))
                return -1;
            bool written_as_float =
                memchr(literal, '.', length) || memchr(literal, 'e', length) || memchr(literal, 'E', length);
            if (written_as_float || length > MAX_EXACT_INTEGER_DIGITS) {
                free(item->valuestring);
                item->valuestring = strndup(literal, length);
                if (!item->valuestring)
                    return -1;
            }
        }
        if (item->child && mark_numbers(item->child, cursor) != 0)
            return -1;
    }
    return 0;
}

int al_json_mark_float_literals(cJSON *root, const char *text, size_t length)
{
    struct literal_cursor cursor = {text, text + length};
    return mark_numbers(root, &cursor);
}

int al_conversation_from_text(struct al_conversation *conv, const char *text, size_t length, const char *source,
                              long record_number)
{
    memset(conv, 0, sizeof *conv);
    cJSON *record = al_record_json_parse(text, length, NULL);
    if (!record) {
        al_error_context("%s: record %ld: malformed record", source ? source : "<input>", record_number);
        return -1;
    }
    int status = al_conversation_from_json(conv, record, source, record_number);
    cJSON_Delete(record);
    return status;
}
