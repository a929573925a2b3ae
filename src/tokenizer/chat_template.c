/* Choosing a chat format (by name or by recognising the model's own template) and the
 * public render entry points; the per-family renderers live in chat_template_*.c. */
#include "agentlora/chat_template.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "chat_template_internal.h"

struct format_name {
    const char *name;
    enum al_chat_format format;
};

/* The first entry for each format is its canonical name. */
static const struct format_name format_names[] = {
    {"llama3.1", AL_CHAT_LLAMA31},
    {"llama3", AL_CHAT_LLAMA31},
    {"llama3.2", AL_CHAT_LLAMA32},
    {"chatml-qwen2.5", AL_CHAT_CHATML_QWEN25},
    {"qwen2.5", AL_CHAT_CHATML_QWEN25},
    {"smollm2", AL_CHAT_SMOLLM2},
    {"mistral-nemo", AL_CHAT_MISTRAL_NEMO},
    {"mistral-v3", AL_CHAT_MISTRAL_V3},
    {"chatml-tools", AL_CHAT_CHATML_TOOLS},
    {"qwen3", AL_CHAT_QWEN3},
};

#define N_FORMAT_NAMES (sizeof format_names / sizeof format_names[0])

const char *al_chat_format_name(enum al_chat_format format)
{
    for (size_t i = 0; i < N_FORMAT_NAMES; i++)
        if (format_names[i].format == format)
            return format_names[i].name;
    return "unknown";
}

int al_chat_format_from_name(const char *name, enum al_chat_format *format)
{
    for (size_t i = 0; i < N_FORMAT_NAMES; i++) {
        if (strcmp(format_names[i].name, name) == 0) {
            *format = format_names[i].format;
            return 0;
        }
    }
    return al_fail("unknown chat format \"%s\" (known: llama3.1, llama3, llama3.2, chatml-qwen2.5, qwen2.5, "
                   "smollm2, mistral-nemo, mistral-v3, chatml-tools, qwen3)",
                   name);
}

/* A template is recognised when it contains every one of its signature strings (and,
 * for Llama 3.2, lacks 3.1's builtin tools). The strings are the parts of each template
 * whose output the renderer reproduces, so a template that differs in them is refused
 * rather than rendered wrongly. */
#define MAX_SIGNATURE_STRINGS 6

struct template_signature {
    enum al_chat_format format;
    const char *required[MAX_SIGNATURE_STRINGS];
    const char *forbidden;
};

static const struct template_signature signatures[] = {
    {AL_CHAT_LLAMA31,
     {"<|start_header_id|>", "Environment: ipython", "tools_in_user_message", "builtin_tools",
      "Cutting Knowledge Date: December 2023", "\"26 Jul 2024\""},
     NULL},
    {AL_CHAT_LLAMA32,
     {"<|start_header_id|>", "Environment: ipython", "tools_in_user_message", "strftime_now(\"%d %b %Y\")",
      "Cutting Knowledge Date: December 2023", NULL},
     "builtin_tools"},
    {AL_CHAT_CHATML_QWEN25,
     {"<|im_start|>", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "# Tools",
      "<tool_call>", "<tool_response>", NULL},
     NULL},
    /* Qwen3's hybrid-thinking template. The enable_thinking switch is required because
     * the renderer reproduces it: a Qwen3 template without it renders its generation
     * prompt differently and is better refused than rendered wrongly. */
    {AL_CHAT_QWEN3,
     {"<|im_start|>", "# Tools", "<tool_call>", "<tool_response>", "reasoning_content",
      "enable_thinking is defined and enable_thinking is false"},
     NULL},
    {AL_CHAT_SMOLLM2,
     {"<|im_start|>", "You are a helpful AI assistant named SmolLM, trained by Hugging Face", NULL},
     "tool"},
    {AL_CHAT_MISTRAL_NEMO,
     {"[AVAILABLE_TOOLS][", "[TOOL_CALLS][", "[TOOL_RESULTS]{\"content\": ", "\"call_id\": \"", "[INST]", NULL},
     NULL},
    {AL_CHAT_MISTRAL_V3,
     {"'[AVAILABLE_TOOLS] '", "'[TOOL_CALLS] ['", "'[TOOL_RESULTS] '", "'[INST] '", NULL},
     NULL},
};

static bool matches(const struct template_signature *signature, const char *source)
{
    for (int i = 0; i < MAX_SIGNATURE_STRINGS && signature->required[i]; i++)
        if (!strstr(source, signature->required[i]))
            return false;
    return !(signature->forbidden && strstr(source, signature->forbidden));
}

int al_chat_format_from_template(const char *template_source, enum al_chat_format *format)
{
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++) {
        if (matches(&signatures[i], template_source)) {
            *format = signatures[i].format;
            return 0;
        }
    }
    return al_fail("chat template not recognised (supported: Llama 3.1, Llama 3.2, Qwen2.5, Qwen3, "
                   "SmolLM2, Mistral Nemo, mistral-common v3); choose a format by name instead");
}

/* "chat_template" is a string, or a list of {"name", "template"} (use "default"). */
static const char *find_template_source(const cJSON *config)
{
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
    if (cJSON_IsString(entry))
        return entry->valuestring;
    if (!cJSON_IsArray(entry))
        return NULL;
    const cJSON *named;
    cJSON_ArrayForEach(named, entry) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(named, "name");
        const cJSON *source = cJSON_GetObjectItemCaseSensitive(named, "template");
        if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 && cJSON_IsString(source))
            return source->valuestring;
    }
    return NULL;
}

int al_chat_format_from_tokenizer_config(const char *path, enum al_chat_format *format)
{
    cJSON *config = al_json_load_file(path);
    if (!config)
        return -1;
    const char *source = find_template_source(config);
    int status = source ? al_chat_format_from_template(source, format)
                        : al_fail("no \"chat_template\" string (or \"default\" entry) in it");
    cJSON_Delete(config);
    if (status != 0)
        al_error_context("%s", path);
    return status;
}

/* ---- rendering ------------------------------------------------------------------- */

static int render_family(struct chat_builder *b, enum al_chat_format format, const struct al_conversation *conv,
                         const struct al_chat_options *options)
{
    switch (format) {
    case AL_CHAT_LLAMA31:
    case AL_CHAT_LLAMA32: return chat_render_llama3(b, format, conv, options);
    case AL_CHAT_CHATML_QWEN25:
    case AL_CHAT_SMOLLM2: return chat_render_chatml(b, format, conv, options);
    case AL_CHAT_MISTRAL_NEMO: return chat_render_mistral_nemo(b, conv, options);
    case AL_CHAT_MISTRAL_V3: return chat_render_mistral_v3(b, conv, options);
    case AL_CHAT_CHATML_TOOLS: return chat_render_chatml_tools(b, conv, options);
    case AL_CHAT_QWEN3: return chat_render_qwen3(b, conv, options);
    }
    return al_fail("unknown chat format %d", (int)format);
}

/* A forced prefix continues the assistant header. mistral-common encodes assistant text
 * with SentencePiece's leading space, which its text form writes as " ". */
static void append_assistant_prefix(struct chat_builder *b, enum al_chat_format format, const char *prefix)
{
    if (format == AL_CHAT_MISTRAL_V3)
        chat_append(b, " ");
    chat_append(b, prefix);
}

/* A forced prefix is where the answer starts, and a Qwen3 answer follows its think block:
 * with a prefix the generation prompt gets the empty block that thinking disabled writes,
 * so the prompt is the start of the training text of an answer without reasoning. */
static struct al_chat_options with_prefix_rules(enum al_chat_format format, const struct al_chat_options *options)
{
    struct al_chat_options adjusted = *options;
    if (format == AL_CHAT_QWEN3 && options->add_generation_prompt && options->assistant_prefix)
        adjusted.disable_thinking = true;
    return adjusted;
}

static void keep_final_turn_spans(struct chat_builder *b, const struct al_conversation *conv)
{
    int last_user = -1;
    for (int i = 0; i < conv->n_messages; i++)
        if (conv->messages[i].role == AL_ROLE_USER)
            last_user = i;
    int kept = 0;
    for (int i = 0; i < b->n_spans; i++)
        if (b->spans[i].message_index > last_user)
            b->spans[kept++] = b->spans[i];
    b->n_spans = kept;
}

int al_chat_render(enum al_chat_format format, const struct al_conversation *conv,
                   const struct al_chat_options *options, struct al_rendered_chat *out)
{
    memset(out, 0, sizeof *out);
    static const struct al_chat_options defaults = {0};
    if (!options)
        options = &defaults;
    if (!conv || conv->n_messages == 0)
        return al_fail("cannot render an empty conversation");
    struct chat_builder b = {.string_arguments_as_objects = options->string_arguments_as_objects};
    struct al_chat_options adjusted = with_prefix_rules(format, options);
    int status = render_family(&b, format, conv, &adjusted);
    if (status == 0 && options->add_generation_prompt && options->assistant_prefix)
        append_assistant_prefix(&b, format, options->assistant_prefix);
    if (status == 0 && !b.text)
        chat_append(&b, ""); /* an empty render still returns a string */
    if (status == 0 && b.out_of_memory)
        status = al_fail("out of memory while rendering");
    if (status != 0) {
        free(b.text);
        free(b.spans);
        if (conv->id)
            al_error_context("rendering conversation %s as %s", conv->id, al_chat_format_name(format));
        else
            al_error_context("rendering as %s", al_chat_format_name(format));
        return -1;
    }
    if (options->mask == AL_CHAT_MASK_LAST_ASSISTANT)
        keep_final_turn_spans(&b, conv);
    out->text = b.text;
    out->length = b.length;
    out->spans = b.spans;
    out->n_spans = b.n_spans;
    return 0;
}

int al_chat_render_prompt(enum al_chat_format format, const struct al_conversation *conv,
                          const struct al_chat_options *options, struct al_rendered_chat *out)
{
    memset(out, 0, sizeof *out);
    struct al_chat_options prompt_options = {0};
    if (options)
        prompt_options = *options;
    prompt_options.add_generation_prompt = true;
    /* A shallow view that ends with the last user message. */
    struct al_conversation prompt = *conv;
    while (prompt.n_messages > 0 && prompt.messages[prompt.n_messages - 1].role != AL_ROLE_USER)
        prompt.n_messages--;
    if (prompt.n_messages == 0)
        return al_fail("conversation %s has no user message to answer", conv->id ? conv->id : "");
    return al_chat_render(format, &prompt, &prompt_options, out);
}

void al_rendered_chat_free(struct al_rendered_chat *rendered)
{
    if (!rendered)
        return;
    free(rendered->text);
    free(rendered->spans);
    memset(rendered, 0, sizeof *rendered);
}

int al_chat_format_for_model(const char *model_dir, const char *forced_name, enum al_chat_format *format)
{
    if (forced_name && strcmp(forced_name, "auto") != 0)
        return al_chat_format_from_name(forced_name, format);
    char *config = al_path_join(model_dir, "tokenizer_config.json");
    int rc = config ? al_chat_format_from_tokenizer_config(config, format) : al_fail("out of memory");
    free(config);
    if (rc != 0)
        al_error_context("choose the chat format explicitly (--template, or chat_format in a training config)");
    if (rc == 0 && *format == AL_CHAT_SMOLLM2)
        *format = chat_format_for_smollm2_models(model_dir);
    return rc;
}
