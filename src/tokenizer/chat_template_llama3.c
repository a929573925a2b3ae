/* Llama 3.1 and 3.2 Instruct, as their Hugging Face chat templates render them.
 *
 * The two templates share everything we render except the default date: 3.1 writes
 * "26 Jul 2024", 3.2 asks strftime_now("%d %b %Y") (today). 3.1's builtin tools
 * (brave_search, wolfram_alpha, <|python_tag|>, <|eom_id|>) are only used when a caller
 * passes builtin_tools, which conversations never carry, so they are not rendered. */
#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "agentlora/error.h"
#include "chat_template_internal.h"

#define LLAMA31_DEFAULT_DATE "26 Jul 2024"
#define LLAMA3_DATE_FORMAT "%d %b %Y"

static const char BOS[] = "<|begin_of_text|>";
static const char END_OF_TURN[] = "<|eot_id|>";
static const char CALL_FORMAT[] =
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}."
    "Do not use variables.\n\n";

static void append_header(struct chat_builder *b, const char *role)
{
    chat_append(b, "<|start_header_id|>");
    chat_append(b, role);
    chat_append(b, "<|end_header_id|>\n\n");
}

/* Each schema as tojson(indent=4), followed by a blank line. */
static void append_tool_schemas(struct chat_builder *b, const cJSON *tools)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        chat_append_json(b, tool, 4);
        chat_append(b, "\n\n");
    }
}

static void append_system_turn(struct chat_builder *b, const struct al_conversation *conv, const char *date,
                               const char *system_message, bool tools_in_system)
{
    append_header(b, "system");
    if (conv->tools)
        chat_append(b, "Environment: ipython\n");
    chat_append(b, "Cutting Knowledge Date: December 2023\n");
    chat_append(b, "Today Date: ");
    chat_append(b, date);
    chat_append(b, "\n\n");
    if (conv->tools && tools_in_system) {
        chat_append(b, "You have access to the following functions. To call a function, please respond with JSON "
                       "for a function call.");
        chat_append(b, CALL_FORMAT);
        append_tool_schemas(b, conv->tools);
    }
    chat_append_trimmed(b, system_message);
    chat_append(b, END_OF_TURN);
}

/* The template slots the schemas into the first message after the system message,
 * whatever its role, under a user header. */
static void append_tools_user_turn(struct chat_builder *b, const struct al_conversation *conv,
                                   const struct al_message *first)
{
    append_header(b, "user");
    chat_append(b, "Given the following functions, please respond with a JSON for a function call ");
    chat_append(b, "with its proper arguments that best answers the given prompt.\n\n");
    chat_append(b, CALL_FORMAT);
    append_tool_schemas(b, conv->tools);
    chat_append_trimmed(b, first->content);
    chat_append(b, END_OF_TURN);
}

/* The template renders only a single call, and none of the message's text. */
static int append_tool_call_turn(struct chat_builder *b, const struct al_message *message, int index)
{
    if (message->n_tool_calls != 1)
        return al_fail("message %d: This model only supports single tool-calls at once! (Llama 3 template)",
                       index + 1);
    const struct al_tool_call *call = &message->tool_calls[0];
    append_header(b, "assistant");
    chat_begin_assistant(b, index);
    chat_append(b, "{\"name\": \"");
    chat_append(b, call->name);
    chat_append(b, "\", \"parameters\": ");
    chat_append_arguments_tojson(b, call);
    chat_append(b, "}");
    chat_append(b, END_OF_TURN);
    chat_end_assistant(b);
    return 0;
}

/* `message.content is mapping or message.content is iterable` holds for every string, so
 * tool results always go through tojson: a plain string result appears JSON-quoted. */
static void append_tool_result_turn(struct chat_builder *b, const struct al_message *message)
{
    append_header(b, "ipython");
    chat_append_json_string(b, message->content);
    chat_append(b, END_OF_TURN);
}

static void append_text_turn(struct chat_builder *b, const struct al_message *message, int index)
{
    append_header(b, al_role_name(message->role));
    bool assistant = message->role == AL_ROLE_ASSISTANT;
    if (assistant)
        chat_begin_assistant(b, index);
    chat_append_trimmed(b, message->content);
    chat_append(b, END_OF_TURN);
    if (assistant)
        chat_end_assistant(b);
}

static void format_today(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm local;
    localtime_r(&now, &local);
    strftime(out, size, LLAMA3_DATE_FORMAT, &local);
}

int chat_render_llama3(struct chat_builder *b, enum al_chat_format format, const struct al_conversation *conv,
                       const struct al_chat_options *options)
{
    char today[32];
    const char *date = options->date_string;
    if (!date && format == AL_CHAT_LLAMA31)
        date = LLAMA31_DEFAULT_DATE;
    if (!date) {
        format_today(today, sizeof today);
        date = today;
    }

    int next = 0;
    const char *system_message = "";
    if (conv->messages[0].role == AL_ROLE_SYSTEM)
        system_message = conv->messages[next++].content;

    chat_append(b, BOS);
    bool tools_in_system = options->llama_tools_in_system;
    append_system_turn(b, conv, date, system_message, tools_in_system);
    if (conv->tools && !tools_in_system) {
        if (next >= conv->n_messages)
            return al_fail("Cannot put tools in the first user message when there's no first user message! "
                           "(Llama 3 template)");
        append_tools_user_turn(b, conv, &conv->messages[next++]);
    }

    for (int i = next; i < conv->n_messages; i++) {
        const struct al_message *message = &conv->messages[i];
        if (message->role == AL_ROLE_TOOL)
            append_tool_result_turn(b, message);
        else if (message->n_tool_calls > 0) {
            if (append_tool_call_turn(b, message, i) != 0)
                return -1;
        } else
            append_text_turn(b, message, i);
    }
    if (options->add_generation_prompt)
        append_header(b, "assistant");
    return 0;
}
