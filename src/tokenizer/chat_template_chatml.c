/* ChatML as Qwen2.5 Instruct and SmolLM2 Instruct render it.
 *
 * Qwen2.5: a default system prompt; tools are described in the system turn inside
 * <tools></tools>; calls are written in <tool_call> tags after the assistant's text; tool
 * results become <tool_response> blocks inside a user turn, consecutive results sharing
 * one turn. SmolLM2: plain ChatML with its own default system prompt; its template knows
 * nothing of tools, so schemas and calls are not rendered (tool turns keep role "tool"). */
#include <cjson/cJSON.h>
#include <string.h>

#include "chat_template_internal.h"

static const char QWEN_DEFAULT_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
static const char SMOLLM2_DEFAULT_SYSTEM[] = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
static const char QWEN_TOOLS_INTRO[] =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char QWEN_TOOLS_OUTRO[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";
static const char END_OF_TURN[] = "<|im_end|>";

static void append_header(struct chat_builder *b, const char *role)
{
    chat_append(b, "<|im_start|>");
    chat_append(b, role);
    chat_append(b, "\n");
}

/* A whole turn; assistant turns mark their content and <|im_end|> as output. */
static void append_turn(struct chat_builder *b, const struct al_message *message, int index)
{
    append_header(b, al_role_name(message->role));
    bool assistant = message->role == AL_ROLE_ASSISTANT;
    if (assistant)
        chat_begin_assistant(b, index);
    chat_append(b, message->content);
    chat_append(b, END_OF_TURN);
    if (assistant)
        chat_end_assistant(b);
    chat_append(b, "\n");
}

/* `if tools` in Jinja: a missing or empty list renders no tools section. */
static bool qwen_has_tools(const struct al_conversation *conv)
{
    return conv->tools && cJSON_GetArraySize(conv->tools) > 0;
}

void chat_chatml_append_tools(struct chat_builder *b, const struct al_conversation *conv, bool with_heading_gap)
{
    chat_append(b, with_heading_gap ? QWEN_TOOLS_INTRO : QWEN_TOOLS_INTRO + 2);
    const cJSON *tool;
    cJSON_ArrayForEach(tool, conv->tools) {
        chat_append(b, "\n");
        chat_append_json(b, tool, -1);
    }
    chat_append(b, QWEN_TOOLS_OUTRO);
}

static void append_qwen_system(struct chat_builder *b, const struct al_conversation *conv)
{
    const struct al_message *first = &conv->messages[0];
    const char *system = first->role == AL_ROLE_SYSTEM ? first->content : QWEN_DEFAULT_SYSTEM;
    append_header(b, "system");
    chat_append(b, system);
    if (!qwen_has_tools(conv)) {
        chat_append(b, END_OF_TURN);
        chat_append(b, "\n");
        return;
    }
    chat_chatml_append_tools(b, conv, true);
}

/* The header is "<|im_start|>assistant"; the template then writes "\n" before the text
 * and before each call, so with the first "\n" counted as header the output is the same. */
static void append_qwen_tool_calls(struct chat_builder *b, const struct al_message *message, int index)
{
    append_header(b, "assistant");
    chat_begin_assistant(b, index);
    bool first_line = true;
    if (message->content[0]) {
        chat_append(b, message->content);
        first_line = false;
    }
    for (int c = 0; c < message->n_tool_calls; c++) {
        const struct al_tool_call *call = &message->tool_calls[c];
        chat_append(b, first_line ? "<tool_call>\n{\"name\": \"" : "\n<tool_call>\n{\"name\": \"");
        first_line = false;
        chat_append(b, call->name);
        chat_append(b, "\", \"arguments\": ");
        chat_append_arguments_tojson(b, call);
        chat_append(b, "}\n</tool_call>");
    }
    chat_append(b, END_OF_TURN);
    chat_end_assistant(b);
    chat_append(b, "\n");
}

static void append_tool_result(struct chat_builder *b, const struct al_conversation *conv, int index)
{
    bool opens_turn = index == 0 || conv->messages[index - 1].role != AL_ROLE_TOOL;
    bool closes_turn = index == conv->n_messages - 1 || conv->messages[index + 1].role != AL_ROLE_TOOL;
    if (opens_turn)
        chat_append(b, "<|im_start|>user");
    chat_append(b, "\n<tool_response>\n");
    chat_append(b, conv->messages[index].content);
    chat_append(b, "\n</tool_response>");
    if (closes_turn) {
        chat_append(b, END_OF_TURN);
        chat_append(b, "\n");
    }
}

static void render_qwen(struct chat_builder *b, const struct al_conversation *conv)
{
    append_qwen_system(b, conv);
    chat_chatml_append_messages(b, conv);
}

static void append_qwen25_assistant(struct chat_builder *b, const struct al_conversation *conv, int index)
{
    const struct al_message *message = &conv->messages[index];
    if (message->n_tool_calls > 0)
        append_qwen_tool_calls(b, message, index);
    else
        append_turn(b, message, index);
}

void chat_chatml_append_messages_with(struct chat_builder *b, const struct al_conversation *conv,
                                      chat_assistant_writer append_assistant)
{
    for (int i = 0; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        switch (message->role) {
        case AL_ROLE_SYSTEM:
            if (i > 0) /* the first system message is already in the system turn */
                append_turn(b, message, i);
            break;
        case AL_ROLE_USER: append_turn(b, message, i); break;
        case AL_ROLE_ASSISTANT: append_assistant(b, conv, i); break;
        case AL_ROLE_TOOL: append_tool_result(b, conv, i); break;
        }
    }
}

void chat_chatml_append_messages(struct chat_builder *b, const struct al_conversation *conv)
{
    chat_chatml_append_messages_with(b, conv, append_qwen25_assistant);
}

static void render_smollm2(struct chat_builder *b, const struct al_conversation *conv)
{
    if (conv->messages[0].role != AL_ROLE_SYSTEM) {
        append_header(b, "system");
        chat_append(b, SMOLLM2_DEFAULT_SYSTEM);
        chat_append(b, END_OF_TURN);
        chat_append(b, "\n");
    }
    for (int i = 0; i < conv->n_messages; i++)
        append_turn(b, &conv->messages[i], i);
}

int chat_render_chatml(struct chat_builder *b, enum al_chat_format format, const struct al_conversation *conv,
                       const struct al_chat_options *options)
{
    if (format == AL_CHAT_SMOLLM2)
        render_smollm2(b, conv);
    else
        render_qwen(b, conv);
    if (options->add_generation_prompt)
        append_header(b, "assistant");
    return 0;
}
