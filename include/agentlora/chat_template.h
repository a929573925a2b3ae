/* Chat templates, rendered natively: a conversation becomes the exact text that
 * transformers' apply_chat_template(tokenize=False) produces with the model's original
 * Jinja template, plus the byte spans that are assistant output (for loss masks).
 *
 * Supported formats and their names (al_chat_format_from_name):
 *   "llama3.1" (alias "llama3")   Llama 3.1 Instruct: "26 Jul 2024" default date
 *   "llama3.2"                    Llama 3.2 Instruct: today's date by default
 *   "chatml-qwen2.5" ("qwen2.5")  Qwen2.5 Instruct: ChatML, tools in <tools></tools>
 *   "smollm2"                     SmolLM2 Instruct: ChatML, no tool support in the template
 *   "chatml-tools"                ChatML with Qwen2.5's tool tags and no vendor system prompt:
 *                                 not any model's own template, but what a ChatML model
 *                                 without tool support (SmolLM2) is trained with on tool data;
 *                                 "auto" picks it for a SmolLM2 template
 *   "qwen3"                       Qwen3 hybrid-thinking models (Qwen/Qwen3-0.6B's template):
 *                                 ChatML, Qwen2.5's tool tags, <think></think> reasoning,
 *                                 no default system prompt
 *   "mistral-nemo"                Mistral-Nemo-Instruct-2407 (both HF revisions)
 *   "mistral-v3"                  mistral-common's tokenizer v3 (Mistral-7B-Instruct-v0.3)
 *
 * What each template does with unusual input is reproduced, not corrected; the notable
 * cases (see also the notes next to each renderer):
 *  - Llama 3: assistant and user contents are trimmed; an assistant message with tool
 *    calls renders only its single call (content is dropped; parallel calls are an
 *    error, as in the template); tool results are rendered through `tojson`, so a
 *    string result appears JSON-quoted.
 *  - SmolLM2: tools and tool calls are not rendered at all (the template ignores them).
 *  - Mistral Nemo: the system message appears only when the conversation ends with a
 *    user message (it is glued to that last user turn); tool-call ids must be 9 chars;
 *    add_generation_prompt changes nothing (there is no assistant header).
 *  - Qwen3: an assistant's reasoning (reasoning_content, or the text before "</think>" in
 *    its content) is shown only for assistant turns after the last user query; earlier
 *    turns keep just their answer. The final assistant turn always has a <think> block,
 *    empty when it has no reasoning. String tool-call arguments are written as they are
 *    (not JSON-quoted, unlike Qwen2.5). No default system prompt. Every other format
 *    has no place for reasoning (al_chat_format_check_fits refuses it).
 *  - mistral-v3 follows mistral-common, not a Jinja template: argument strings and tool
 *    results that parse as JSON are re-serialised as JSON values.
 * Tool-call arguments given as a JSON string are rendered as the template's `tojson`
 * renders a string (quoted and escaped), arguments given as an object as an object.
 *
 * BOS: the rendered text already contains the BOS token where the template emits one
 * ("<|begin_of_text|>", "<s>"); the tokenizer must not add another.
 */
#ifndef AGENTLORA_CHAT_TEMPLATE_H
#define AGENTLORA_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

struct al_conversation;

enum al_chat_format {
    AL_CHAT_LLAMA31 = 0,
    AL_CHAT_LLAMA32,
    AL_CHAT_CHATML_QWEN25,
    AL_CHAT_SMOLLM2,
    AL_CHAT_MISTRAL_NEMO,
    AL_CHAT_MISTRAL_V3,
    AL_CHAT_CHATML_TOOLS,
    AL_CHAT_QWEN3,
};

/* The canonical name ("llama3.1", ...). */
const char *al_chat_format_name(enum al_chat_format format);

/* Chooses a format by name (canonical names and the aliases listed above). */
int al_chat_format_from_name(const char *name, enum al_chat_format *format);

/* Recognises one of the supported original templates from its Jinja source, by
 * distinctive strings that only that template contains. Unknown templates fail with a
 * message that says so (the renderer would not be exact for them). */
int al_chat_format_from_template(const char *template_source, enum al_chat_format *format);

/* Reads tokenizer_config.json and recognises its "chat_template" (a string, or the list
 * of {name, template} whose "default" entry is used). */
int al_chat_format_from_tokenizer_config(const char *path, enum al_chat_format *format);

/* The format for a model folder: forced_name when given (and not "auto"), else the one
 * recognised from the folder's tokenizer_config.json; the error then suggests forcing one. */
int al_chat_format_for_model(const char *model_dir, const char *forced_name, enum al_chat_format *format);

/* 0 when the format can show everything the conversation holds; -1 naming the format,
 * what it would drop (the tools list, a tool call, a tool result, an assistant's
 * reasoning_content) and the formats that can, for formats whose template silently
 * leaves such content out (smollm2 for tools; every format but qwen3 for reasoning). The
 * renderer itself stays exact to the template; callers that train or evaluate on the
 * text check this first. */
int al_chat_format_check_fits(enum al_chat_format format, const struct al_conversation *conv);

/* Which assistant messages count as output in the span list. */
enum al_chat_mask {
    AL_CHAT_MASK_ALL_ASSISTANT = 0, /* every assistant message */
    AL_CHAT_MASK_LAST_ASSISTANT,    /* assistant messages after the last user message: the final
                                       (possibly multi-step, tool-using) assistant turn */
};

struct al_chat_options {
    bool add_generation_prompt; /* append the assistant header ("<|im_start|>assistant\n" ...) */
    /* Llama 3 "Today Date:" text, e.g. "26 Jul 2024". NULL: the template's default, which is
     * "26 Jul 2024" for 3.1 and today's date (strftime "%d %b %Y", as transformers) for 3.2;
     * set it for reproducible renders. */
    const char *date_string;
    /* Llama 3: put tool schemas in the system message instead of the first user message
     * (the template's tools_in_user_message=false). */
    bool llama_tools_in_system;
    /* Qwen3: the template's enable_thinking=false, which opens the generation prompt with
     * an empty "<think>\n\n</think>\n\n" so the model answers without thinking. Needs
     * add_generation_prompt; changes nothing in the rest of the text. */
    bool disable_thinking;
    enum al_chat_mask mask;
    /* Render tool-call arguments that the record gave as a JSON string as if they had been
     * parsed into an object first (what callers who json.loads() them before
     * apply_chat_template get, and the form Qwen2.5 and Llama 3 emit). Default false:
     * exactly what apply_chat_template does with the record as it is. No effect on
     * mistral-v3, which always parses them. */
    bool string_arguments_as_objects;
    /* Text appended after the generation header (needs add_generation_prompt), e.g. a PING
     * prefix that the model then continues. It is not part of any assistant span. Qwen3:
     * the prefix starts the answer, so it implies disable_thinking (the prompt is then the
     * start of the training text in which that answer begins with the prefix). */
    const char *assistant_prefix;
};

/* [begin, end) byte offsets into the rendered text. */
struct al_chat_span {
    size_t begin;
    size_t end;
    int message_index; /* the assistant message it came from */
};

struct al_rendered_chat {
    char *text; /* NUL-terminated */
    size_t length;
    /* Assistant output, in order: each assistant message's content and/or tool calls
     * (for Qwen3 with its <think> block when the template shows one) together with its
     * end-of-turn token (<|eot_id|>, <|im_end|>, </s>), never the
     * assistant header nor any user, system or tool text. */
    struct al_chat_span *spans;
    int n_spans;
};

/* Renders the whole conversation. */
int al_chat_render(enum al_chat_format format, const struct al_conversation *conv,
                   const struct al_chat_options *options, struct al_rendered_chat *out);

/* Renders a generation prompt: the conversation up to its last user message (without
 * the final assistant turn: every assistant and tool message after it), then the
 * assistant header and, when set, options->assistant_prefix, so that the model writes
 * the first assistant response of that turn. add_generation_prompt is implied. To
 * continue an agent turn after a tool result instead, call al_chat_render with
 * add_generation_prompt on the conversation that ends with that result. */
int al_chat_render_prompt(enum al_chat_format format, const struct al_conversation *conv,
                          const struct al_chat_options *options, struct al_rendered_chat *out);

void al_rendered_chat_free(struct al_rendered_chat *rendered);

#endif
