/* "chatml-tools": ChatML with Qwen2.5's tool rendering (tools in <tools></tools> in the
 * system turn, calls in <tool_call> tags, results in <tool_response> blocks) and no
 * vendor system prompt: the system turn holds the record's own system message, the tools
 * section, both, or is left out when there is neither. For ChatML models whose own
 * template has no place for tools (SmolLM2), so that tool data trains without a system
 * prompt that names another vendor's model.
 *
 * Also here: which formats can show what a conversation holds (al_chat_format_check_fits:
 * tools, and Qwen3's reasoning) and the "auto" choice for SmolLM2 templates. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "agentlora/error.h"
#include "agentlora/log.h"
#include "chat_template_internal.h"

void chat_chatml_append_system_turn(struct chat_builder *b, const struct al_conversation *conv)
{
    bool has_system = conv->messages[0].role == AL_ROLE_SYSTEM;
    bool has_tools = conv->tools && cJSON_GetArraySize(conv->tools) > 0;
    if (!has_system && !has_tools)
        return;
    chat_append(b, "<|im_start|>system\n");
    if (has_system)
        chat_append(b, conv->messages[0].content);
    if (has_tools) {
        chat_chatml_append_tools(b, conv, has_system);
        return; /* the tools section ends the turn */
    }
    chat_append(b, "<|im_end|>\n");
}

int chat_render_chatml_tools(struct chat_builder *b, const struct al_conversation *conv,
                             const struct al_chat_options *options)
{
    chat_chatml_append_system_turn(b, conv);
    chat_chatml_append_messages(b, conv);
    if (options->add_generation_prompt)
        chat_append(b, "<|im_start|>assistant\n");
    return 0;
}

/* ---- what a format can show ---- */

static bool format_drops_tools(enum al_chat_format format)
{
    return format == AL_CHAT_SMOLLM2;
}

/* The first thing a tool-less format would drop, described for a message; false when
 * there is none. */
static bool first_tool_content(const struct al_conversation *conv, char *what, size_t size)
{
    if (conv->tools && cJSON_GetArraySize(conv->tools) > 0) {
        snprintf(what, size, "its tools list (%d tools)", cJSON_GetArraySize(conv->tools));
        return true;
    }
    for (int i = 0; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        if (message->n_tool_calls > 0) {
            snprintf(what, size, "the tool call of message %d (%s)", i + 1, message->tool_calls[0].name);
            return true;
        }
        if (message->role == AL_ROLE_TOOL) {
            snprintf(what, size, "the tool result of message %d", i + 1);
            return true;
        }
    }
    return false;
}

static int check_tools_fit(enum al_chat_format format, const struct al_conversation *conv)
{
    char what[128];
    if (!format_drops_tools(format) || !first_tool_content(conv, what, sizeof what))
        return 0;
    return al_fail("chat format %s cannot represent %s: its template leaves tools, tool calls and tool results "
                   "out of the text; formats that can: chatml-tools (ChatML, no system prompt added), "
                   "chatml-qwen2.5, qwen3, llama3.1, llama3.2, mistral-nemo, mistral-v3",
                   al_chat_format_name(format), what);
}

/* Only Qwen3's template has a place for an assistant's thinking; the others would train
 * on the answer as if the reasoning had never been there. An empty reasoning_content
 * loses nothing. */
static int check_reasoning_fits(enum al_chat_format format, const struct al_conversation *conv)
{
    if (format == AL_CHAT_QWEN3)
        return 0;
    for (int i = 0; i < conv->n_messages; i++) {
        const char *reasoning = conv->messages[i].reasoning_content;
        if (reasoning && reasoning[0])
            return al_fail("chat format %s cannot represent the reasoning_content of message %d: its template "
                           "has no place for an assistant's reasoning; the format that can: qwen3",
                           al_chat_format_name(format), i + 1);
    }
    return 0;
}

int al_chat_format_check_fits(enum al_chat_format format, const struct al_conversation *conv)
{
    if (check_tools_fit(format, conv) != 0)
        return -1;
    return check_reasoning_fits(format, conv);
}

enum al_chat_format chat_format_for_smollm2_models(const char *model_dir)
{
    al_log_info("%s has SmolLM2's chat template, which has no place for tools: rendering with chatml-tools "
                "(the same ChatML tokens, Qwen2.5's tool tags, no system prompt added); chat_format smollm2 "
                "selects the model's own template",
                model_dir);
    return AL_CHAT_CHATML_TOOLS;
}
