/* A conversation: the unit the data readers produce and the chat templates render.
 * Records are AgentAlign-shaped: {id, category, sub_category, pattern, tools, messages},
 * or the generic {"messages": [...], "tools": [...]}. */
#ifndef AGENTLORA_CONVERSATION_H
#define AGENTLORA_CONVERSATION_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

enum al_role { AL_ROLE_SYSTEM = 0, AL_ROLE_USER, AL_ROLE_ASSISTANT, AL_ROLE_TOOL };

/* The shape a record came in. Alpaca and ShareGPT records are read as messages
 * (record_formats.c gives the mapping). */
enum al_record_format { AL_RECORD_MESSAGES = 0, AL_RECORD_ALPACA, AL_RECORD_SHAREGPT };
#define AL_RECORD_FORMAT_COUNT 3

struct al_tool_call {
    char *id;              /* may be NULL */
    char *name;
    struct cJSON *arguments;   /* always a parsed JSON value (object for well-formed calls) */
    bool arguments_was_string; /* the record gave arguments as a JSON string */
    char *arguments_text;      /* that string, byte for byte (templates that apply `tojson` to
                                  it render the original text); NULL for object arguments */
};

struct al_message {
    enum al_role role;
    char *content;         /* "" when empty or null */
    char *name;            /* tool name on tool turns, else NULL */
    char *tool_call_id;    /* tool turns, may be NULL */
    struct al_tool_call *tool_calls;
    int n_tool_calls;
    /* Assistant turns: the record's "reasoning_content" (the thinking before the answer,
     * which Qwen3's template puts in <think></think>); NULL when absent or null, so that
     * "" (given, and empty) stays distinguishable, as the template distinguishes them. */
    char *reasoning_content;
};

struct al_conversation {
    char *id;              /* may be NULL (generic JSONL) */
    char *category;        /* "benign" or a harm category; NULL for generic records */
    char *sub_category;
    bool harmful;          /* category present and != "benign" */
    char **pattern;        /* behaviour chain steps, e.g. "Search.web_search" */
    int n_pattern;
    struct cJSON *tools;   /* owned array of OpenAI-style tool schemas, or NULL */
    struct al_message *messages;
    int n_messages;
    enum al_record_format format; /* the shape of the record it was read from */
};

/* Which shape a record has, by its fields: "messages" (AgentAlign and generic records),
 * "conversations" (ShareGPT), "instruction"/"output" (Alpaca). */
enum al_record_format al_record_format_of(const struct cJSON *record);
const char *al_record_format_name(enum al_record_format format);

/* An Alpaca or ShareGPT record rewritten as {"messages", "tools"}, its other keys kept;
 * NULL with the reason (no file context) when the record is not well-formed for its format.
 * Alpaca: "system" -> system turn, "history" pairs -> earlier turns, instruction + "\n" +
 * input -> user, output -> assistant. ShareGPT: human/user -> user, gpt/assistant/chatgpt
 * -> assistant, system -> system, function_call (JSON {"name", "arguments"} or a list) ->
 * assistant tool calls, observation/tool -> tool result; "tools" as a list or its JSON text. */
struct cJSON *al_record_to_messages_form(const struct cJSON *record, enum al_record_format format);

/* Builds a conversation from one record (any shape above). Errors (recorded with al_fail) name the source
 * file and the 1-based record number: malformed record, unknown role, tool-call
 * arguments that are not JSON, a tool result without a matching call, an empty
 * conversation, reasoning_content on a message that is not the assistant's. Extra keys
 * are tolerated. */
int al_conversation_from_json(struct al_conversation *conv, const struct cJSON *record, const char *source,
                              long record_number);
void al_conversation_free(struct al_conversation *conv);

/* The same from one record's JSON text (a JSONL line, or one element of the array).
 * Prefer it when the text is at hand: numbers written as floats ("maximum": 2.0 in a tool
 * schema) keep that spelling, which chat templates reproduce (Python prints 2.0, not 2). */
int al_conversation_from_text(struct al_conversation *conv, const char *text, size_t length, const char *source,
                              long record_number);

/* Marks the numbers of a parsed document that its text wrote with a fraction or an
 * exponent (and integers too long for a double), by keeping the literal in the number item's valuestring (cJSON frees and
 * duplicates it like any valuestring; cJSON_IsNumber and valuedouble are unchanged).
 * `text` must be the text `root` was parsed from. Returns 0, or -1 when they disagree.
 * Code that later changes such a number's value must drop that valuestring. */
int al_json_mark_float_literals(struct cJSON *root, const char *text, size_t length);

/* What al_record_json_parse resolved on the way (it refuses everything else). */
struct al_record_json_notes {
    int duplicate_keys;         /* keys that appeared more than once in some object */
    char first_duplicate[64];   /* the first such key, for the warning */
};

/* One record's JSON text (or a tool call's string arguments) to a tree, the one way
 * records are parsed. Refused, with the byte offset in the text: a raw NUL byte or a
 * "\u0000" escape (a C string would end there and the record would silently train on a
 * cut text), invalid UTF-8, nesting deeper than cJSON's limit (said as such), anything
 * that is not exactly one JSON value. Float literals are marked (as above). A key given
 * twice in one object keeps its last value at its first place, as Python's json.loads
 * does; `notes` (may be NULL) counts such keys. Errors carry no file name: the caller
 * adds it with al_error_context. */
struct cJSON *al_record_json_parse(const char *text, size_t length, struct al_record_json_notes *notes);

const char *al_role_name(enum al_role role);

#endif
