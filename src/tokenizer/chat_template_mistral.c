/* Mistral's [INST] formats with tools.
 *
 * Mistral Nemo (HF template of Mistral-Nemo-Instruct-2407, both revisions): no spaces
 * after control tokens; [AVAILABLE_TOOLS] just before the last user message; the system
 * message is glued to the last user message only when that message ends the
 * conversation; tool calls and results are JSON objects carrying 9-character ids.
 *
 * mistral-v3 (mistral-common's tokenizer v3, Mistral-7B-Instruct-v0.3): the same
 * layout with a space after each control token (the text form of SentencePiece's
 * leading "▁"), system messages merged and always put into the last user message, and
 * tool-call arguments and tool results re-serialised as JSON values when they parse. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "chat_template_internal.h"

#define MISTRAL_TOOL_CALL_ID_LENGTH 9 /* both formats reject other ids */

static const char BOS[] = "<s>";
static const char EOS[] = "</s>";

static int check_call_id(const char *id, int index)
{
    if (!id || chat_utf8_length(id) != MISTRAL_TOOL_CALL_ID_LENGTH)
        return al_fail("message %d: Tool call IDs should be alphanumeric strings with length 9! (got \"%s\")",
                       index + 1, id ? id : "");
    return 0;
}

/* ---- Mistral Nemo ------------------------------------------------------------------ */

/* Roles must alternate user/assistant once tool calls and tool results are set aside. */
static int check_nemo_alternation(const struct al_conversation *conv, int first)
{
    int position = 0;
    for (int i = first; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        if (message->role == AL_ROLE_TOOL || message->n_tool_calls > 0)
            continue;
        if ((message->role == AL_ROLE_USER) != (position % 2 == 0))
            return al_fail("message %d: After the optional system message, conversation roles must alternate "
                           "user/assistant/user/assistant/... (Mistral Nemo template)",
                           i + 1);
        position++;
    }
    return 0;
}

/* String fields are pasted between quotes unescaped, other fields go through tojson;
 * a "return" entry is skipped. */
static int append_nemo_tool(struct chat_builder *b, const cJSON *tool)
{
    const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
    if (!cJSON_IsObject(function))
        return al_fail("tool schema without a \"function\" object (Mistral Nemo template)");
    chat_append(b, "{\"type\": \"function\", \"function\": {");
    bool first = true;
    const cJSON *field;
    cJSON_ArrayForEach(field, function) {
        if (strcmp(field->string, "return") == 0)
            continue;
        if (!first)
            chat_append(b, ", ");
        first = false;
        chat_append(b, "\"");
        chat_append(b, field->string);
        if (cJSON_IsString(field)) {
            chat_append(b, "\": \"");
            chat_append(b, field->valuestring);
            chat_append(b, "\"");
        } else {
            chat_append(b, "\": ");
            chat_append_json(b, field, -1);
        }
    }
    chat_append(b, "}}");
    return 0;
}

static int append_nemo_available_tools(struct chat_builder *b, const cJSON *tools)
{
    chat_append(b, "[AVAILABLE_TOOLS][");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        if (append_nemo_tool(b, tool) != 0)
            return -1;
        chat_append(b, tool->next ? ", " : "]");
    }
    chat_append(b, "[/AVAILABLE_TOOLS]");
    return 0;
}

/* `tool_call.function|tojson` minus its closing brace, then the id. */
static int append_nemo_tool_calls(struct chat_builder *b, const struct al_message *message, int index)
{
    chat_begin_assistant(b, index);
    chat_append(b, "[TOOL_CALLS][");
    for (int c = 0; c < message->n_tool_calls; c++) {
        const struct al_tool_call *call = &message->tool_calls[c];
        chat_append(b, "{\"name\": ");
        chat_append_json_string(b, call->name);
        chat_append(b, ", \"arguments\": ");
        chat_append_arguments_tojson(b, call);
        if (check_call_id(call->id, index) != 0)
            return -1;
        chat_append(b, ", \"id\": \"");
        chat_append(b, call->id);
        chat_append(b, "\"}");
        chat_append(b, c + 1 < message->n_tool_calls ? ", " : "]");
    }
    chat_append(b, EOS);
    chat_end_assistant(b);
    return 0;
}

static int append_nemo_tool_result(struct chat_builder *b, const struct al_message *message, int index)
{
    chat_append(b, "[TOOL_RESULTS]{\"content\": ");
    chat_append(b, message->content);
    chat_append(b, ", ");
    if (check_call_id(message->tool_call_id, index) != 0)
        return -1;
    chat_append(b, "\"call_id\": \"");
    chat_append(b, message->tool_call_id);
    chat_append(b, "\"}[/TOOL_RESULTS]");
    return 0;
}

int chat_render_mistral_nemo(struct chat_builder *b, const struct al_conversation *conv,
                             const struct al_chat_options *options)
{
    (void)options; /* no assistant header: a generation prompt ends with [/INST] */
    int first = 0;
    const char *system_message = NULL;
    if (conv->messages[0].role == AL_ROLE_SYSTEM)
        system_message = conv->messages[first++].content;
    if (check_nemo_alternation(conv, first) != 0)
        return -1;
    /* The template tests `message == user_messages[-1]`: every user message equal to the
     * last one (same content) gets the tools. */
    const char *last_user_content = NULL;
    for (int i = first; i < conv->n_messages; i++)
        if (conv->messages[i].role == AL_ROLE_USER)
            last_user_content = conv->messages[i].content;

    chat_append(b, BOS);
    for (int i = first; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        bool last = i == conv->n_messages - 1;
        if (message->role == AL_ROLE_USER) {
            if (conv->tools && strcmp(message->content, last_user_content) == 0 &&
                append_nemo_available_tools(b, conv->tools) != 0)
                return -1;
            chat_append(b, "[INST]");
            if (last && system_message) {
                chat_append(b, system_message);
                chat_append(b, "\n\n");
            }
            chat_append(b, message->content);
            chat_append(b, "[/INST]");
        } else if (message->n_tool_calls > 0) {
            if (append_nemo_tool_calls(b, message, i) != 0)
                return -1;
        } else if (message->role == AL_ROLE_ASSISTANT) {
            chat_begin_assistant(b, i);
            chat_append(b, message->content);
            chat_append(b, EOS);
            chat_end_assistant(b);
        } else if (message->role == AL_ROLE_TOOL) {
            if (append_nemo_tool_result(b, message, i) != 0)
                return -1;
        } else {
            return al_fail("message %d: Only user and assistant roles are supported, with the exception of an "
                           "initial optional system message! (Mistral Nemo template)",
                           i + 1);
        }
    }
    return 0;
}

/* ---- mistral-common v3 ------------------------------------------------------------- */

/* What mistral-common does with a string it may treat as JSON: parse it when it parses. */
static void append_json_or_string(struct chat_builder *b, const char *text)
{
    const char *end = NULL;
    cJSON *parsed = cJSON_ParseWithOpts(text, &end, 1);
    if (parsed && al_json_mark_float_literals(parsed, text, strlen(text)) == 0)
        chat_append_json(b, parsed, -1);
    else
        chat_append_json_string(b, text);
    cJSON_Delete(parsed);
}

/* Tools as mistral-common's Tool model dumps them: type, then function name, description
 * and parameters (other keys, such as AgentAlign's "category", are not part of it). */
static void append_v3_tool(struct chat_builder *b, const cJSON *tool)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tool, "type");
    const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
    const cJSON *description = cJSON_GetObjectItemCaseSensitive(function, "description");
    const cJSON *parameters = cJSON_GetObjectItemCaseSensitive(function, "parameters");
    chat_append(b, "{\"type\": ");
    chat_append_json_string(b, cJSON_IsString(type) ? type->valuestring : "function");
    chat_append(b, ", \"function\": {\"name\": ");
    chat_append_json_string(b, cJSON_IsString(name) ? name->valuestring : "");
    chat_append(b, ", \"description\": ");
    chat_append_json_string(b, cJSON_IsString(description) ? description->valuestring : "");
    chat_append(b, ", \"parameters\": ");
    if (parameters)
        chat_append_json(b, parameters, -1);
    else
        chat_append(b, "{}");
    chat_append(b, "}}");
}

static void append_v3_available_tools(struct chat_builder *b, const cJSON *tools)
{
    chat_append(b, "[AVAILABLE_TOOLS] [");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        append_v3_tool(b, tool);
        if (tool->next)
            chat_append(b, ", ");
    }
    chat_append(b, "][/AVAILABLE_TOOLS]");
}

/* All system messages, joined by a blank line; NULL when there are none. */
static char *merged_system_message(const struct al_conversation *conv)
{
    struct chat_builder merged = {0};
    bool any = false;
    for (int i = 0; i < conv->n_messages; i++) {
        if (conv->messages[i].role != AL_ROLE_SYSTEM)
            continue;
        if (any)
            chat_append(&merged, "\n\n");
        chat_append(&merged, conv->messages[i].content);
        any = true;
    }
    if (!any || merged.out_of_memory) {
        free(merged.text);
        return NULL;
    }
    return merged.text;
}

/* mistral-common merges runs of user or of assistant messages; we render only
 * conversations that need no merging, and say so otherwise. */
static int check_v3_order(const struct al_conversation *conv)
{
    enum al_role previous = AL_ROLE_SYSTEM;
    bool seen = false;
    for (int i = 0; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        if (message->role == AL_ROLE_SYSTEM)
            continue;
        if (!seen && message->role != AL_ROLE_USER)
            return al_fail("message %d: Conversation must start with a user message, got %s (mistral-v3)", i + 1,
                           al_role_name(message->role));
        if (seen && previous == AL_ROLE_USER && message->role == AL_ROLE_TOOL)
            return al_fail("message %d: Unexpected role 'tool' after role 'user' (mistral-v3)", i + 1);
        if (seen && previous == message->role && message->role != AL_ROLE_TOOL)
            return al_fail("message %d: consecutive %s messages would be merged by mistral-common; "
                           "not supported (mistral-v3)",
                           i + 1, al_role_name(message->role));
        if (message->role == AL_ROLE_ASSISTANT && message->content[0] && message->n_tool_calls > 0)
            return al_fail("message %d: Assistant message cannot have both content and tool calls. (mistral-v3)",
                           i + 1);
        if (message->role == AL_ROLE_ASSISTANT && !message->content[0] && message->n_tool_calls == 0)
            return al_fail("message %d: Assistant message must have content or tool calls (mistral-v3)", i + 1);
        previous = message->role;
        seen = true;
    }
    return 0;
}

static int append_v3_tool_calls(struct chat_builder *b, const struct al_message *message, int index)
{
    chat_append(b, "[TOOL_CALLS] [");
    for (int c = 0; c < message->n_tool_calls; c++) {
        const struct al_tool_call *call = &message->tool_calls[c];
        if (check_call_id(call->id, index) != 0)
            return -1;
        chat_append(b, "{\"name\": ");
        chat_append_json_string(b, call->name);
        chat_append(b, ", \"arguments\": ");
        chat_append_json(b, call->arguments, -1);
        chat_append(b, ", \"id\": \"");
        chat_append(b, call->id);
        chat_append(b, "\"}");
        if (c + 1 < message->n_tool_calls)
            chat_append(b, ", ");
    }
    chat_append(b, "]");
    return 0;
}

static int append_v3_tool_result(struct chat_builder *b, const struct al_message *message, int index)
{
    if (check_call_id(message->tool_call_id, index) != 0)
        return -1;
    chat_append(b, "[TOOL_RESULTS] {\"content\": ");
    append_json_or_string(b, message->content);
    chat_append(b, ", \"call_id\": \"");
    chat_append(b, message->tool_call_id);
    chat_append(b, "\"}[/TOOL_RESULTS]");
    return 0;
}

/* Spacing follows mistral-common's text form: a space after [/INST] or [/TOOL_RESULTS]
 * when assistant text follows (it belongs to the assistant's first token), none before
 * [TOOL_CALLS] or between consecutive tool results. */
static int render_v3_messages(struct chat_builder *b, const struct al_conversation *conv, const char *system,
                              int last_user, int last_message)
{
    bool add_space = false;
    bool previous_was_tool = false;
    for (int i = 0; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        switch (message->role) {
        case AL_ROLE_SYSTEM: break;
        case AL_ROLE_USER:
            if (i == last_user && conv->tools && cJSON_GetArraySize(conv->tools) > 0)
                append_v3_available_tools(b, conv->tools);
            chat_append(b, "[INST] ");
            if (i == last_user && system) {
                chat_append(b, system);
                chat_append(b, "\n\n");
            }
            chat_append(b, message->content);
            chat_append(b, "[/INST]");
            add_space = i < last_message;
            previous_was_tool = false;
            break;
        case AL_ROLE_ASSISTANT:
            chat_begin_assistant(b, i);
            if (message->content[0]) {
                if (add_space)
                    chat_append(b, " ");
                chat_append(b, message->content);
            } else if (append_v3_tool_calls(b, message, i) != 0) {
                return -1;
            }
            chat_append(b, EOS);
            chat_end_assistant(b);
            add_space = false;
            previous_was_tool = false;
            break;
        case AL_ROLE_TOOL:
            if (add_space && !previous_was_tool)
                chat_append(b, " ");
            if (append_v3_tool_result(b, message, i) != 0)
                return -1;
            previous_was_tool = true;
            add_space = true;
            break;
        }
    }
    return 0;
}

int chat_render_mistral_v3(struct chat_builder *b, const struct al_conversation *conv,
                           const struct al_chat_options *options)
{
    (void)options; /* no assistant header: a generation prompt ends with [/INST] */
    if (check_v3_order(conv) != 0)
        return -1;
    int last_user = -1, last_message = -1;
    for (int i = 0; i < conv->n_messages; i++) {
        if (conv->messages[i].role == AL_ROLE_USER)
            last_user = i;
        if (conv->messages[i].role != AL_ROLE_SYSTEM)
            last_message = i;
    }
    char *system = merged_system_message(conv);
    chat_append(b, BOS);
    int status = render_v3_messages(b, conv, system, last_user, last_message);
    free(system);
    return status;
}
