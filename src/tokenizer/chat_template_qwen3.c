/* Qwen3 (the hybrid thinking models; Qwen/Qwen3-0.6B's template).
 *
 * ChatML with Qwen2.5's tool rendering minus its default system prompt, plus reasoning:
 * an assistant turn's thinking (its reasoning_content, or else whatever its content holds
 * before "</think>") is written as "<think>\n...\n</think>\n\n" in front of the answer, but
 * only for the turns after the last user query, the ones the model is still producing;
 * earlier turns keep just their answer, since the model never sees its old thoughts. The
 * final turn always opens with a <think> block, empty when there was no reasoning.
 *
 * The think block belongs to the assistant span: in thinking mode the model writes
 * "<think>" itself right after the assistant header. */
#include <string.h>

#include "chat_template_internal.h"

static const char THINK_OPEN[] = "<think>";
static const char THINK_CLOSE[] = "</think>";
static const char TOOL_RESPONSE_OPEN[] = "<tool_response>";
static const char TOOL_RESPONSE_CLOSE[] = "</tool_response>";

/* A piece of a message's text; the template cuts contents without copying them. */
struct slice {
    const char *begin;
    size_t length;
};

static struct slice whole(const char *text)
{
    return (struct slice){text, strlen(text)};
}

/* Python's str.lstrip('\n') and str.rstrip('\n'): newlines only, not other whitespace. */
static struct slice lstrip_newlines(struct slice s)
{
    while (s.length > 0 && s.begin[0] == '\n') {
        s.begin++;
        s.length--;
    }
    return s;
}

static struct slice rstrip_newlines(struct slice s)
{
    while (s.length > 0 && s.begin[s.length - 1] == '\n')
        s.length--;
    return s;
}

/* Where the last occurrence of needle in s starts, or NULL. */
static const char *find_last(struct slice s, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t at = s.length >= n ? s.length - n + 1 : 0; at-- > 0;)
        if (memcmp(s.begin + at, needle, n) == 0)
            return s.begin + at;
    return NULL;
}

static bool starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), n = strlen(suffix);
    return length >= n && strcmp(text + length - n, suffix) == 0;
}

/* The template's last_query_index: the last user message that is a real query, not tool
 * results someone passed as a user turn; the last message when there is none. Each
 * assistant turn asks again, which costs nothing next to rendering a conversation. */
static int last_query_index(const struct al_conversation *conv)
{
    for (int i = conv->n_messages - 1; i >= 0; i--) {
        const struct al_message *message = &conv->messages[i];
        bool wrapped_results =
            starts_with(message->content, TOOL_RESPONSE_OPEN) && ends_with(message->content, TOOL_RESPONSE_CLOSE);
        if (message->role == AL_ROLE_USER && !wrapped_results)
            return i;
    }
    return conv->n_messages - 1;
}

/* An assistant message as the template sees it: its answer and its reasoning. */
struct assistant_text {
    struct slice answer;
    struct slice reasoning; /* empty when there is none */
};

/* Without reasoning_content, a content with "</think>" carries its own thinking: the
 * answer is what follows the last "</think>", the reasoning what precedes the first one,
 * after the last "<think>" before it. */
static struct assistant_text split_assistant_text(const struct al_message *message)
{
    struct assistant_text text = {whole(message->content), {"", 0}};
    if (message->reasoning_content) {
        text.reasoning = whole(message->reasoning_content);
        return text;
    }
    const char *first_close = strstr(message->content, THINK_CLOSE);
    if (!first_close)
        return text;
    const char *last_close = find_last(text.answer, THINK_CLOSE);
    text.answer = lstrip_newlines(whole(last_close + strlen(THINK_CLOSE)));
    struct slice before = rstrip_newlines((struct slice){message->content, (size_t)(first_close - message->content)});
    const char *open = find_last(before, THINK_OPEN);
    if (open) {
        const char *after_open = open + strlen(THINK_OPEN);
        before = (struct slice){after_open, (size_t)(before.begin + before.length - after_open)};
    }
    text.reasoning = lstrip_newlines(before);
    return text;
}

static void append_slice(struct chat_builder *b, struct slice s)
{
    chat_append_n(b, s.begin, s.length);
}

static void append_think_block(struct chat_builder *b, struct slice reasoning)
{
    chat_append(b, "<think>\n");
    append_slice(b, rstrip_newlines(lstrip_newlines(reasoning)));
    chat_append(b, "\n</think>\n\n");
}

/* Qwen3 writes string arguments as they are, where Qwen2.5 applies `tojson` to them. */
static void append_arguments(struct chat_builder *b, const struct al_tool_call *call)
{
    if (call->arguments_was_string && call->arguments_text && !b->string_arguments_as_objects)
        chat_append(b, call->arguments_text);
    else
        chat_append_json(b, call->arguments, -1);
}

/* Each call on its own line: the template puts "\n" before every call but a first one
 * that follows no answer. */
static void append_tool_calls(struct chat_builder *b, const struct al_message *message, bool after_answer)
{
    for (int c = 0; c < message->n_tool_calls; c++) {
        const struct al_tool_call *call = &message->tool_calls[c];
        if (c > 0 || after_answer)
            chat_append(b, "\n");
        chat_append(b, "<tool_call>\n{\"name\": \"");
        chat_append(b, call->name);
        chat_append(b, "\", \"arguments\": ");
        append_arguments(b, call);
        chat_append(b, "}\n</tool_call>");
    }
}

static void append_assistant(struct chat_builder *b, const struct al_conversation *conv, int index)
{
    const struct al_message *message = &conv->messages[index];
    struct assistant_text text = split_assistant_text(message);
    bool is_last = index == conv->n_messages - 1;
    bool shows_thinking = index > last_query_index(conv) && (is_last || text.reasoning.length > 0);
    chat_append(b, "<|im_start|>assistant\n");
    chat_begin_assistant(b, index);
    if (shows_thinking) {
        append_think_block(b, text.reasoning);
        append_slice(b, lstrip_newlines(text.answer));
    } else {
        append_slice(b, text.answer);
    }
    append_tool_calls(b, message, text.answer.length > 0);
    chat_append(b, "<|im_end|>");
    chat_end_assistant(b);
    chat_append(b, "\n");
}

int chat_render_qwen3(struct chat_builder *b, const struct al_conversation *conv,
                      const struct al_chat_options *options)
{
    chat_chatml_append_system_turn(b, conv);
    chat_chatml_append_messages_with(b, conv, append_assistant);
    if (options->add_generation_prompt) {
        chat_append(b, "<|im_start|>assistant\n");
        if (options->disable_thinking)
            chat_append(b, "<think>\n\n</think>\n\n");
    }
    return 0;
}
