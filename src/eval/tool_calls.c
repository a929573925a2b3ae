/* Tool calls in generated text, in each chat format's own syntax. The model writes them;
 * nothing guarantees they are well formed, so a call that opens and does not parse is kept
 * as a malformed attempt (it scores as a call with invalid arguments), never an error. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/scoring.h"

static const char *const LLAMA_PYTHON_TAG = "<|python_tag|>";
static const char *const CHATML_OPEN = "<tool_call>";
static const char *const CHATML_CLOSE = "</tool_call>";
static const char *const MISTRAL_TOOL_CALLS = "[TOOL_CALLS]";

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static struct al_parsed_call *new_call(struct al_parsed_calls *out)
{
    struct al_parsed_call *grown = realloc(out->calls, (size_t)(out->n_calls + 1) * sizeof *grown);
    if (!grown)
        return al_fail_null("tool-call parsing: out of memory");
    out->calls = grown;
    struct al_parsed_call *call = &out->calls[out->n_calls++];
    memset(call, 0, sizeof *call);
    return call;
}

static int add_malformed(struct al_parsed_calls *out)
{
    struct al_parsed_call *call = new_call(out);
    if (!call)
        return -1;
    call->malformed = true;
    return 0;
}

/* Arguments as an object, or as a JSON string holding one (OpenAI's wire format). Absent
 * arguments are an empty object: a call to a tool without parameters. */
static cJSON *read_arguments(const cJSON *object)
{
    const cJSON *arguments = cJSON_GetObjectItemCaseSensitive(object, "arguments");
    if (!arguments)
        arguments = cJSON_GetObjectItemCaseSensitive(object, "parameters");
    if (!arguments)
        return cJSON_CreateObject();
    if (cJSON_IsString(arguments))
        return cJSON_Parse(arguments->valuestring);
    return cJSON_Duplicate(arguments, 1);
}

/* One {"name": ..., "arguments"|"parameters": ...} object (or OpenAI's {"function": {...}}). */
static int add_call(struct al_parsed_calls *out, const cJSON *object)
{
    const cJSON *function = cJSON_GetObjectItemCaseSensitive(object, "function");
    if (cJSON_IsObject(function))
        object = function;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(object, "name");
    if (!cJSON_IsObject(object) || !cJSON_IsString(name))
        return add_malformed(out);
    struct al_parsed_call *call = new_call(out);
    if (!call)
        return -1;
    call->name = strdup(name->valuestring);
    if (!call->name)
        return al_fail("tool-call parsing: out of memory");
    call->arguments = read_arguments(object);
    return 0;
}

/* A parsed value: one call object, or a list of them. */
static int add_calls_from_value(struct al_parsed_calls *out, const cJSON *value)
{
    if (!cJSON_IsArray(value))
        return add_call(out, value);
    if (cJSON_GetArraySize(value) == 0)
        return add_malformed(out);
    const cJSON *item;
    cJSON_ArrayForEach(item, value)
    {
        if (add_call(out, item) != 0)
            return -1;
    }
    return 0;
}

/* Parses JSON values from text[0..length) one after another, separated by blanks or ';'
 * (Llama 3.1 writes parallel calls that way). Text that is not JSON ends the run as one
 * malformed call, so a truncated or garbled call is still counted as an attempt. */
static int add_calls_from_json_run(struct al_parsed_calls *out, const char *text, size_t length)
{
    const char *end = text + length;
    bool any = false;
    for (;;) {
        while (text < end && (is_blank(*text) || *text == ';'))
            text++;
        if (text == end)
            return any ? 0 : add_malformed(out);
        const char *parse_end = NULL;
        cJSON *value = cJSON_ParseWithLengthOpts(text, (size_t)(end - text), &parse_end, 0);
        if (!value)
            return add_malformed(out);
        int status = add_calls_from_value(out, value);
        cJSON_Delete(value);
        if (status != 0)
            return -1;
        any = true;
        text = parse_end;
    }
}

static size_t trimmed_length(const char *text, size_t length)
{
    while (length > 0 && is_blank(text[length - 1]))
        length--;
    return length;
}

static size_t strip_suffix(const char *text, size_t length, const char *suffix)
{
    size_t n = strlen(suffix);
    length = trimmed_length(text, length);
    return length >= n && memcmp(text + length - n, suffix, n) == 0 ? trimmed_length(text, length - n) : length;
}

/* Llama 3: the assistant's whole text is the call, optionally after <|python_tag|>. */
static int parse_llama3(const char *text, struct al_parsed_calls *out)
{
    while (is_blank(*text))
        text++;
    bool tagged = strncmp(text, LLAMA_PYTHON_TAG, strlen(LLAMA_PYTHON_TAG)) == 0;
    if (tagged)
        text += strlen(LLAMA_PYTHON_TAG);
    while (is_blank(*text))
        text++;
    size_t length = strip_suffix(text, strlen(text), "<|eot_id|>");
    length = strip_suffix(text, length, "<|eom_id|>");
    if (*text == '{' || *text == '[')
        return add_calls_from_json_run(out, text, length);
    return tagged ? add_malformed(out) : 0; /* plain text: an answer, not a call */
}

/* ChatML: every <tool_call>...</tool_call> block; an unclosed last block runs to the end. */
static int parse_chatml(const char *text, struct al_parsed_calls *out)
{
    for (const char *open = strstr(text, CHATML_OPEN); open; open = strstr(open, CHATML_OPEN)) {
        const char *body = open + strlen(CHATML_OPEN);
        const char *close = strstr(body, CHATML_CLOSE);
        size_t length = close ? (size_t)(close - body) : strlen(body);
        if (add_calls_from_json_run(out, body, strip_suffix(body, length, "<|im_end|>")) != 0)
            return -1;
        open = close ? close + strlen(CHATML_CLOSE) : body + length;
    }
    return 0;
}

const char *al_answer_after_thinking(enum al_chat_format format, const char *text)
{
    if (format != AL_CHAT_QWEN3 || !text)
        return text;
    if (strstr(text, "<think>") && !strstr(text, "</think>"))
        return NULL;
    for (const char *close = strstr(text, "</think>"); close; close = strstr(close + 1, "</think>"))
        text = close + strlen("</think>");
    return text;
}

/* Qwen3: the calls follow the thinking, which may well mention "<tool_call>" while the
 * model plans; only the answer after it counts, and a text cut off while still thinking
 * has none. */
static int parse_qwen3(const char *text, struct al_parsed_calls *out)
{
    const char *answer = al_answer_after_thinking(AL_CHAT_QWEN3, text);
    return answer ? parse_chatml(answer, out) : 0;
}

/* Mistral: [TOOL_CALLS] then a JSON list; whatever follows the list (</s>) is ignored. */
static int parse_mistral(const char *text, struct al_parsed_calls *out)
{
    for (const char *marker = strstr(text, MISTRAL_TOOL_CALLS); marker; marker = strstr(marker, MISTRAL_TOOL_CALLS)) {
        const char *body = marker + strlen(MISTRAL_TOOL_CALLS);
        while (is_blank(*body))
            body++;
        const char *parse_end = NULL;
        cJSON *value = cJSON_ParseWithOpts(body, &parse_end, 0);
        bool parsed = value != NULL;
        int status = parsed ? add_calls_from_value(out, value) : add_malformed(out);
        cJSON_Delete(value);
        if (status != 0)
            return -1;
        marker = parsed ? parse_end : body;
    }
    return 0;
}

int al_parse_tool_calls(enum al_chat_format format, const char *text, struct al_parsed_calls *out)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return 0;
    int status;
    switch (format) {
    case AL_CHAT_LLAMA31:
    case AL_CHAT_LLAMA32: status = parse_llama3(text, out); break;
    case AL_CHAT_CHATML_QWEN25:
    case AL_CHAT_SMOLLM2:
    case AL_CHAT_CHATML_TOOLS: status = parse_chatml(text, out); break;
    case AL_CHAT_QWEN3: status = parse_qwen3(text, out); break;
    case AL_CHAT_MISTRAL_NEMO:
    case AL_CHAT_MISTRAL_V3: status = parse_mistral(text, out); break;
    default: status = al_fail("tool-call parsing: unknown chat format %d", (int)format); break;
    }
    if (status != 0)
        al_parsed_calls_free(out);
    return status;
}

void al_parsed_calls_free(struct al_parsed_calls *calls)
{
    for (int i = 0; i < calls->n_calls; i++) {
        free(calls->calls[i].name);
        cJSON_Delete(calls->calls[i].arguments);
    }
    free(calls->calls);
    memset(calls, 0, sizeof *calls);
}
