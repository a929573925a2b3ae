/* Shared pieces of the native chat-template renderers: a text builder that records
 * assistant spans, Jinja-compatible string helpers, and one render function per family. */
#ifndef AGENTLORA_CHAT_TEMPLATE_INTERNAL_H
#define AGENTLORA_CHAT_TEMPLATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"

struct cJSON;

/* Growing text with the spans of assistant output. Allocation failures are remembered
 * and reported once at the end, so renderers can append without checking each call. */
struct chat_builder {
    char *text;
    size_t length;
    size_t capacity;
    struct al_chat_span *spans;
    int n_spans;
    int span_capacity;
    bool out_of_memory;
    bool span_open;
    bool string_arguments_as_objects; /* al_chat_options.string_arguments_as_objects */
};

void chat_append(struct chat_builder *b, const char *text);
void chat_append_n(struct chat_builder *b, const char *text, size_t n);
/* Opens a span at the current end of the text for assistant message `message_index`. */
void chat_begin_assistant(struct chat_builder *b, int message_index);
void chat_end_assistant(struct chat_builder *b);

/* Python's json.dumps(value, ensure_ascii=False) as transformers' `tojson` filter calls it:
 * indent < 0 gives separators ", " and ": " on one line; indent >= 0 gives "," and ": "
 * with newlines. Keys keep their order. */
void chat_append_json(struct chat_builder *b, const struct cJSON *value, int indent);
/* A string as a JSON string literal (the same escaping). */
void chat_append_json_string(struct chat_builder *b, const char *text);

/* Jinja's `trim` (Python str.strip()): the [begin, begin + length) slice of text without
 * leading and trailing Unicode whitespace. */
void chat_trim(const char *text, const char **begin, size_t *length);
void chat_append_trimmed(struct chat_builder *b, const char *text);

/* Tool-call arguments as a template's `tojson` sees them: the original string when the
 * record gave a string (rendered as a JSON string literal), else the parsed value. */
void chat_append_arguments_tojson(struct chat_builder *b, const struct al_tool_call *call);

/* Python's len() of a UTF-8 string: the number of code points. */
size_t chat_utf8_length(const char *text);

/* Per-family renderers. They see the whole conversation; options are never NULL. */
int chat_render_llama3(struct chat_builder *b, enum al_chat_format format, const struct al_conversation *conv,
                       const struct al_chat_options *options);
int chat_render_chatml(struct chat_builder *b, enum al_chat_format format, const struct al_conversation *conv,
                       const struct al_chat_options *options);
int chat_render_mistral_nemo(struct chat_builder *b, const struct al_conversation *conv,
                             const struct al_chat_options *options);
int chat_render_mistral_v3(struct chat_builder *b, const struct al_conversation *conv,
                           const struct al_chat_options *options);
int chat_render_chatml_tools(struct chat_builder *b, const struct al_conversation *conv,
                             const struct al_chat_options *options);
int chat_render_qwen3(struct chat_builder *b, const struct al_conversation *conv,
                      const struct al_chat_options *options);

/* Pieces of the Qwen2.5 ChatML renderer that chatml-tools shares: the tools section of the
 * system turn (intro, one JSON line per tool, outro ending the turn; with_heading_gap false
 * leaves out the blank lines that follow a system text), and every message after the
 * system turn. */
void chat_chatml_append_tools(struct chat_builder *b, const struct al_conversation *conv, bool with_heading_gap);
void chat_chatml_append_messages(struct chat_builder *b, const struct al_conversation *conv);

/* Qwen3's ChatML differs from Qwen2.5's only in its assistant turns (and in having no
 * default system prompt): the same message loop with another writer for those, and
 * chatml-tools' system turn (the record's system message and/or the tools section, no
 * vendor prompt, nothing when there is neither). */
typedef void (*chat_assistant_writer)(struct chat_builder *b, const struct al_conversation *conv, int index);
void chat_chatml_append_messages_with(struct chat_builder *b, const struct al_conversation *conv,
                                      chat_assistant_writer append_assistant);
void chat_chatml_append_system_turn(struct chat_builder *b, const struct al_conversation *conv);

/* The format "auto" gives a model whose template is SmolLM2's (chatml-tools, said once
 * on the log). */
enum al_chat_format chat_format_for_smollm2_models(const char *model_dir);

#endif
