/* Chat-template selection, assistant spans, generation prompts and the errors the
 * templates raise. Exact texts against transformers are in test_chat_template_golden.c. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

static const enum al_chat_format ALL_FORMATS[] = {AL_CHAT_LLAMA31,      AL_CHAT_LLAMA32,    AL_CHAT_CHATML_QWEN25,
                                                  AL_CHAT_SMOLLM2,      AL_CHAT_MISTRAL_NEMO, AL_CHAT_MISTRAL_V3,
                                                  AL_CHAT_QWEN3};
#define N_FORMATS (sizeof ALL_FORMATS / sizeof ALL_FORMATS[0])

static void parse(struct al_conversation *conv, const char *json)
{
    cr_assert_eq(al_conversation_from_text(conv, json, strlen(json), "test", 1), 0, "%s", al_error_message());
}

static char *span_text(const struct al_rendered_chat *rendered, int i)
{
    const struct al_chat_span *span = &rendered->spans[i];
    cr_assert(span->begin <= span->end && span->end <= rendered->length);
    return strndup(rendered->text + span->begin, span->end - span->begin);
}

static void assert_span(const struct al_rendered_chat *rendered, int i, const char *expected)
{
    char *text = span_text(rendered, i);
    cr_assert_str_eq(text, expected, "span %d", i);
    free(text);
}

/* ---- choosing a format --------------------------------------------------------------- */

Test(chat_template_format, names_and_aliases)
{
    static const struct {
        const char *name;
        enum al_chat_format format;
    } names[] = {{"llama3", AL_CHAT_LLAMA31},         {"llama3.1", AL_CHAT_LLAMA31},
                 {"llama3.2", AL_CHAT_LLAMA32},       {"chatml-qwen2.5", AL_CHAT_CHATML_QWEN25},
                 {"qwen2.5", AL_CHAT_CHATML_QWEN25},  {"smollm2", AL_CHAT_SMOLLM2},
                 {"mistral-nemo", AL_CHAT_MISTRAL_NEMO}, {"mistral-v3", AL_CHAT_MISTRAL_V3},
                 {"qwen3", AL_CHAT_QWEN3}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        enum al_chat_format format = (enum al_chat_format)-1;
        cr_assert_eq(al_chat_format_from_name(names[i].name, &format), 0, "%s", names[i].name);
        cr_assert_eq(format, names[i].format, "%s", names[i].name);
    }
    for (size_t i = 0; i < N_FORMATS; i++) {
        enum al_chat_format again;
        cr_assert_eq(al_chat_format_from_name(al_chat_format_name(ALL_FORMATS[i]), &again), 0);
        cr_assert_eq(again, ALL_FORMATS[i], "canonical names round-trip");
    }
    enum al_chat_format format;
    cr_assert_neq(al_chat_format_from_name("llama2", &format), 0);
    cr_assert(strstr(al_error_message(), "unknown chat format \"llama2\"") != NULL, "%s", al_error_message());
}

static void assert_config_recognised(const char *relative, enum al_chat_format expected)
{
    char *path = test_shared_path(relative);
    enum al_chat_format format = (enum al_chat_format)-1;
    cr_assert_eq(al_chat_format_from_tokenizer_config(path, &format), 0, "%s: %s", relative, al_error_message());
    cr_assert_eq(format, expected, "%s recognised as %s", relative, al_chat_format_name(format));
    free(path);
}

static void assert_template_file_recognised(const char *relative, enum al_chat_format expected)
{
    char *path = test_shared_path(relative);
    char *source = al_file_read_all(path, NULL);
    cr_assert_not_null(source, "%s", al_error_message());
    enum al_chat_format format = (enum al_chat_format)-1;
    cr_assert_eq(al_chat_format_from_template(source, &format), 0, "%s: %s", relative, al_error_message());
    cr_assert_eq(format, expected, "%s recognised as %s", relative, al_chat_format_name(format));
    free(source);
    free(path);
}

Test(chat_template_format, recognises_the_original_templates)
{
    assert_config_recognised("templates/Llama-3.1-8B-Instruct.tokenizer_config.json", AL_CHAT_LLAMA31);
    assert_config_recognised("templates/Llama-3.2-Instruct.tokenizer_config.json", AL_CHAT_LLAMA32);
    assert_config_recognised("tokenizers/llama-3.2/tokenizer_config.json", AL_CHAT_LLAMA32);
    assert_config_recognised("templates/Qwen2.5-Instruct.tokenizer_config.json", AL_CHAT_CHATML_QWEN25);
    assert_config_recognised("tokenizers/qwen2.5/tokenizer_config.json", AL_CHAT_CHATML_QWEN25);
    assert_config_recognised("templates/SmolLM2-Instruct.tokenizer_config.json", AL_CHAT_SMOLLM2);
    assert_config_recognised("templates/Mistral-Nemo-Instruct-2407.tokenizer_config.json", AL_CHAT_MISTRAL_NEMO);
    assert_template_file_recognised("templates/meta-llama-Llama-3.1-8B-Instruct.jinja", AL_CHAT_LLAMA31);
    assert_template_file_recognised("templates/meta-llama-Llama-3.2-3B-Instruct.jinja", AL_CHAT_LLAMA32);
    assert_template_file_recognised("templates/Qwen-Qwen2.5-7B-Instruct.jinja", AL_CHAT_CHATML_QWEN25);
    assert_template_file_recognised("templates/Qwen-Qwen3-0.6B.jinja", AL_CHAT_QWEN3);
    assert_template_file_recognised("templates/mistralai-Mistral-Nemo-Instruct-2407.jinja", AL_CHAT_MISTRAL_NEMO);
    assert_template_file_recognised("templates/mistral-common.v3_spm.jinja", AL_CHAT_MISTRAL_V3);
}

Test(chat_template_format, refuses_unknown_templates)
{
    /* Llama 2's template and Llama 3.0's (no tool support) are not rendered natively. */
    const char *llama2 = "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
                         "message['content'] + ' [/INST]' }}{% endif %}{% endfor %}";
    const char *llama30 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
                          "trim + '<|eot_id|>' %}{{ content }}{% endfor %}";
    enum al_chat_format format;
    cr_assert_neq(al_chat_format_from_template(llama2, &format), 0);
    cr_assert(strstr(al_error_message(), "not recognised") != NULL);
    cr_assert_neq(al_chat_format_from_template(llama30, &format), 0);
    cr_assert_neq(al_chat_format_from_template("", &format), 0);
}

Test(chat_template_format, tokenizer_config_forms_and_errors)
{
    char *dir = test_tmpdir();
    char *qwen_path = test_shared_path("templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    char *qwen = al_file_read_all(qwen_path, NULL);
    cr_assert_not_null(qwen);

    /* The list form: [{"name": "default", "template": ...}, {"name": "tool_use", ...}]. */
    cJSON *config = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(config, "chat_template");
    cJSON *other = cJSON_CreateObject();
    cJSON_AddStringToObject(other, "name", "tool_use");
    cJSON_AddStringToObject(other, "template", "{{ nothing }}");
    cJSON_AddItemToArray(list, other);
    cJSON *named = cJSON_CreateObject();
    cJSON_AddStringToObject(named, "name", "default");
    cJSON_AddStringToObject(named, "template", qwen);
    cJSON_AddItemToArray(list, named);
    char *text = cJSON_PrintUnformatted(config);
    char *path = test_write_file(dir, "tokenizer_config.json", text, strlen(text));
    enum al_chat_format format;
    cr_assert_eq(al_chat_format_from_tokenizer_config(path, &format), 0, "%s", al_error_message());
    cr_assert_eq(format, AL_CHAT_CHATML_QWEN25);

    char *bare = test_write_file(dir, "bare.json", "{\"bos_token\": \"<s>\"}", 20);
    cr_assert_neq(al_chat_format_from_tokenizer_config(bare, &format), 0);
    cr_assert(strstr(al_error_message(), "bare.json") != NULL, "the error names the file: %s", al_error_message());
    cr_assert(strstr(al_error_message(), "chat_template") != NULL);

    char *broken = test_write_file(dir, "broken.json", "{\"chat_template\": ", 18);
    cr_assert_neq(al_chat_format_from_tokenizer_config(broken, &format), 0);

    free(broken);
    free(bare);
    free(path);
    cJSON_free(text);
    cJSON_Delete(config);
    free(qwen);
    free(qwen_path);
    free(dir);
}

/* ---- assistant spans ----------------------------------------------------------------- */

static const char AGENT_TURN[] =
    "{\"id\": \"conv-9\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}],"
    " \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"},"
    " {\"role\": \"user\", \"content\": \"Call f\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abcdefghi\", \"type\": \"function\","
    "   \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]},"
    " {\"role\": \"tool\", \"name\": \"f\", \"tool_call_id\": \"abcdefghi\", \"content\": \"2\"},"
    " {\"role\": \"assistant\", \"content\": \"Done.\"}]}";

struct expected_spans {
    enum al_chat_format format;
    const char *spans[3];
};

static const struct expected_spans AGENT_TURN_SPANS[] = {
    {AL_CHAT_LLAMA31, {"Hello.<|eot_id|>", "{\"name\": \"f\", \"parameters\": {\"a\": 1}}<|eot_id|>", "Done.<|eot_id|>"}},
    {AL_CHAT_LLAMA32, {"Hello.<|eot_id|>", "{\"name\": \"f\", \"parameters\": {\"a\": 1}}<|eot_id|>", "Done.<|eot_id|>"}},
    {AL_CHAT_CHATML_QWEN25,
     {"Hello.<|im_end|>", "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call><|im_end|>",
      "Done.<|im_end|>"}},
    {AL_CHAT_SMOLLM2, {"Hello.<|im_end|>", "<|im_end|>", "Done.<|im_end|>"}},
    /* The final turn's (empty) think block is output: in thinking mode the model writes it. */
    {AL_CHAT_QWEN3,
     {"Hello.<|im_end|>", "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call><|im_end|>",
      "<think>\n\n</think>\n\nDone.<|im_end|>"}},
    {AL_CHAT_MISTRAL_NEMO,
     {"Hello.</s>", "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"abcdefghi\"}]</s>",
      "Done.</s>"}},
    {AL_CHAT_MISTRAL_V3,
     {" Hello.</s>", "[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"abcdefghi\"}]</s>",
      " Done.</s>"}},
};

Test(chat_template_spans, cover_assistant_output_only)
{
    struct al_conversation conv;
    parse(&conv, AGENT_TURN);
    struct al_chat_options options = {.date_string = "01 Jan 2025"};
    for (size_t f = 0; f < sizeof AGENT_TURN_SPANS / sizeof AGENT_TURN_SPANS[0]; f++) {
        const struct expected_spans *want = &AGENT_TURN_SPANS[f];
        struct al_rendered_chat rendered;
        cr_assert_eq(al_chat_render(want->format, &conv, &options, &rendered), 0, "%s: %s",
                     al_chat_format_name(want->format), al_error_message());
        cr_assert_eq(rendered.n_spans, 3, "%s", al_chat_format_name(want->format));
        static const int message_of_span[] = {1, 3, 5};
        for (int i = 0; i < 3; i++) {
            assert_span(&rendered, i, want->spans[i]);
            cr_assert_eq(rendered.spans[i].message_index, message_of_span[i]);
            if (i > 0)
                cr_assert(rendered.spans[i].begin > rendered.spans[i - 1].end, "spans are ordered and apart");
        }
        cr_assert_eq(strlen(rendered.text), rendered.length);
        al_rendered_chat_free(&rendered);
    }
    al_conversation_free(&conv);
}

Test(chat_template_spans, last_assistant_turn_only)
{
    struct al_conversation conv;
    parse(&conv, AGENT_TURN);
    struct al_chat_options options = {.date_string = "01 Jan 2025", .mask = AL_CHAT_MASK_LAST_ASSISTANT};
    for (size_t f = 0; f < N_FORMATS; f++) {
        struct al_rendered_chat rendered;
        cr_assert_eq(al_chat_render(ALL_FORMATS[f], &conv, &options, &rendered), 0, "%s", al_error_message());
        /* After the last user message: the tool call (message 3) and the answer (message 5). */
        cr_assert_eq(rendered.n_spans, 2, "%s", al_chat_format_name(ALL_FORMATS[f]));
        cr_assert_eq(rendered.spans[0].message_index, 3);
        cr_assert_eq(rendered.spans[1].message_index, 5);
        al_rendered_chat_free(&rendered);
    }
    al_conversation_free(&conv);
}

/* ---- generation prompts -------------------------------------------------------------- */

/* A prompt with a forced prefix must be exactly the start of the training text in
 * which the assistant's answer begins with that prefix (for Qwen3 the prefix implies
 * thinking disabled, whose empty think block the final training turn opens with). */
Test(chat_template_prompt, prefix_prompt_is_a_prefix_of_the_training_text)
{
    struct al_conversation conv;
    parse(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Book a flight\"},"
                 " {\"role\": \"assistant\", \"content\": \"I will help safely. Here is the plan.\"}]}");
    struct al_chat_options options = {.date_string = "01 Jan 2025", .assistant_prefix = "I will help safely."};
    for (size_t f = 0; f < N_FORMATS; f++) {
        const char *name = al_chat_format_name(ALL_FORMATS[f]);
        struct al_rendered_chat full, prompt;
        cr_assert_eq(al_chat_render(ALL_FORMATS[f], &conv, &options, &full), 0, "%s", al_error_message());
        cr_assert_eq(al_chat_render_prompt(ALL_FORMATS[f], &conv, &options, &prompt), 0, "%s", al_error_message());
        cr_assert_lt(prompt.length, full.length, "%s", name);
        cr_assert(strncmp(full.text, prompt.text, prompt.length) == 0, "%s: prompt\n%s\nis not the start of\n%s",
                  name, prompt.text, full.text);
        const char *tail = prompt.text + prompt.length - strlen(options.assistant_prefix);
        cr_assert_str_eq(tail, options.assistant_prefix, "%s: the prompt ends with the prefix", name);
        cr_assert_eq(prompt.n_spans, 0, "%s: a prompt has no assistant output", name);
        al_rendered_chat_free(&full);
        al_rendered_chat_free(&prompt);
    }
    al_conversation_free(&conv);
}

Test(chat_template_prompt, drops_the_final_assistant_turn)
{
    struct al_conversation conv;
    parse(&conv, AGENT_TURN);
    struct al_chat_options options = {0};
    struct al_rendered_chat prompt;
    cr_assert_eq(al_chat_render_prompt(AL_CHAT_CHATML_QWEN25, &conv, &options, &prompt), 0, "%s",
                 al_error_message());
    /* The tool call, its result and the answer after the last user message are gone. */
    const char *ending = "<|im_start|>user\nCall f<|im_end|>\n<|im_start|>assistant\n";
    size_t n = strlen(ending);
    cr_assert(prompt.length > n && strcmp(prompt.text + prompt.length - n, ending) == 0, "%s", prompt.text);
    cr_assert_eq(prompt.n_spans, 1, "the earlier assistant answer stays in the prompt");
    cr_assert_eq(prompt.spans[0].message_index, 1);
    al_rendered_chat_free(&prompt);
    al_conversation_free(&conv);

    parse(&conv, "{\"messages\": [{\"role\": \"assistant\", \"content\": \"alone\"}]}");
    cr_assert_neq(al_chat_render_prompt(AL_CHAT_LLAMA31, &conv, &options, &prompt), 0);
    cr_assert(strstr(al_error_message(), "no user message") != NULL, "%s", al_error_message());
    al_conversation_free(&conv);
}

Test(chat_template_prompt, generation_headers)
{
    struct al_conversation conv;
    parse(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}");
    static const struct {
        enum al_chat_format format;
        const char *ending;
    } endings[] = {
        {AL_CHAT_LLAMA31, "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {AL_CHAT_CHATML_QWEN25, "Hi<|im_end|>\n<|im_start|>assistant\n"},
        {AL_CHAT_SMOLLM2, "Hi<|im_end|>\n<|im_start|>assistant\n"},
        {AL_CHAT_MISTRAL_NEMO, "<s>[INST]Hi[/INST]"},
        {AL_CHAT_MISTRAL_V3, "<s>[INST] Hi[/INST]"},
        {AL_CHAT_QWEN3, "Hi<|im_end|>\n<|im_start|>assistant\n"},
    };
    struct al_chat_options options = {.add_generation_prompt = true};
    for (size_t i = 0; i < sizeof endings / sizeof endings[0]; i++) {
        struct al_rendered_chat rendered;
        cr_assert_eq(al_chat_render(endings[i].format, &conv, &options, &rendered), 0, "%s", al_error_message());
        size_t n = strlen(endings[i].ending);
        cr_assert(rendered.length >= n && strcmp(rendered.text + rendered.length - n, endings[i].ending) == 0,
                  "%s: %s", al_chat_format_name(endings[i].format), rendered.text);
        al_rendered_chat_free(&rendered);
    }
    al_conversation_free(&conv);
}

/* ---- Llama 3 dates ------------------------------------------------------------------- */

static char *render_llama(enum al_chat_format format, const char *date)
{
    struct al_conversation conv;
    parse(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}");
    struct al_chat_options options = {.date_string = date};
    struct al_rendered_chat rendered;
    cr_assert_eq(al_chat_render(format, &conv, &options, &rendered), 0, "%s", al_error_message());
    al_conversation_free(&conv);
    return rendered.text; /* the spans array is empty here */
}

Test(chat_template_llama3, default_and_explicit_dates)
{
    char *llama31 = render_llama(AL_CHAT_LLAMA31, NULL);
    cr_assert(strstr(llama31, "Today Date: 26 Jul 2024\n\n") != NULL, "%s", llama31);
    char *chosen = render_llama(AL_CHAT_LLAMA32, "02 Feb 2022");
    cr_assert(strstr(chosen, "Today Date: 02 Feb 2022\n\n") != NULL, "%s", chosen);

    /* 3.2 uses today's date, as transformers' strftime_now("%d %b %Y"). */
    char before[32], after[32];
    time_t now = time(NULL);
    struct tm local;
    localtime_r(&now, &local);
    strftime(before, sizeof before, "%d %b %Y", &local);
    char *today = render_llama(AL_CHAT_LLAMA32, NULL);
    now = time(NULL);
    localtime_r(&now, &local);
    strftime(after, sizeof after, "%d %b %Y", &local);
    cr_assert(strstr(today, before) != NULL || strstr(today, after) != NULL, "%s", today);
    free(llama31);
    free(chosen);
    free(today);
}

/* ---- what the templates refuse ------------------------------------------------------- */

static void assert_render_fails(enum al_chat_format format, const char *json, const char *fragment)
{
    struct al_conversation conv;
    parse(&conv, json);
    struct al_rendered_chat rendered;
    al_error_clear();
    cr_assert_neq(al_chat_render(format, &conv, NULL, &rendered), 0, "%s rendered %s", al_chat_format_name(format),
                  json);
    cr_assert_null(rendered.text);
    cr_assert(strstr(al_error_message(), fragment) != NULL, "\"%s\" not in: %s", fragment, al_error_message());
    al_conversation_free(&conv);
}

Test(chat_template_errors, template_exceptions_are_errors)
{
    const char *parallel = "{\"id\": \"p-1\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                           " {\"role\": \"assistant\", \"tool_calls\": ["
                           "{\"id\": \"aaaaaaaaa\", \"function\": {\"name\": \"f\", \"arguments\": {}}},"
                           "{\"id\": \"bbbbbbbbb\", \"function\": {\"name\": \"g\", \"arguments\": {}}}]}]}";
    assert_render_fails(AL_CHAT_LLAMA31, parallel, "single tool-calls");
    assert_render_fails(AL_CHAT_LLAMA31, parallel, "conversation p-1"); /* the error names the conversation */

    const char *short_id = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                           " {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"short\", \"function\": "
                           "{\"name\": \"f\", \"arguments\": {}}}]}]}";
    assert_render_fails(AL_CHAT_MISTRAL_NEMO, short_id, "length 9");
    assert_render_fails(AL_CHAT_MISTRAL_V3, short_id, "length 9");

    const char *not_alternating = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                                  " {\"role\": \"user\", \"content\": \"y\"}]}";
    assert_render_fails(AL_CHAT_MISTRAL_NEMO, not_alternating, "must alternate");
    assert_render_fails(AL_CHAT_MISTRAL_V3, not_alternating, "consecutive user messages");

    const char *text_and_call = "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"},"
                                " {\"role\": \"assistant\", \"content\": \"let me\", \"tool_calls\": [{\"id\": "
                                "\"aaaaaaaaa\", \"function\": {\"name\": \"f\", \"arguments\": {}}}]}]}";
    assert_render_fails(AL_CHAT_MISTRAL_V3, text_and_call, "both content and tool calls");

    const char *starts_with_assistant = "{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}";
    assert_render_fails(AL_CHAT_MISTRAL_V3, starts_with_assistant, "must start with a user message");

    const char *tools_without_user = "{\"tools\": [], \"messages\": [{\"role\": \"system\", \"content\": \"x\"}]}";
    assert_render_fails(AL_CHAT_LLAMA32, tools_without_user, "no first user message");
}

Test(chat_template_errors, unknown_format_and_empty_conversation)
{
    struct al_conversation empty = {0};
    struct al_rendered_chat rendered;
    cr_assert_neq(al_chat_render(AL_CHAT_CHATML_QWEN25, &empty, NULL, &rendered), 0);
    struct al_conversation conv;
    parse(&conv, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
    cr_assert_neq(al_chat_render((enum al_chat_format)99, &conv, NULL, &rendered), 0);
    al_conversation_free(&conv);
}
