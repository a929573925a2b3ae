/* The native renderers against transformers' apply_chat_template on the original
 * templates (tests/golden/chat/expected_*.json, made by make_chat_golden.py), and the
 * mistral-v3 renderer against mistral-common's own reference samples. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

#define GOLDEN_DIR "tests/golden/chat/"
#define GOLDEN_DATE_STRING "05 Mar 2025" /* what make_chat_golden.py passes */

/* Parses a JSON file and keeps its float literals ("2.0"), as the data readers do. */
static cJSON *load_json_keeping_floats(const char *path)
{
    size_t length = 0;
    char *text = al_file_read_all(path, &length);
    cr_assert_not_null(text, "%s: %s", path, al_error_message());
    cJSON *root = cJSON_ParseWithLength(text, length);
    cr_assert_not_null(root, "%s does not parse", path);
    cr_assert_eq(al_json_mark_float_literals(root, text, length), 0);
    free(text);
    return root;
}

static cJSON *load_synthetic_tools(void)
{
    char *path = test_shared_path("agentalign/synthetic_tools.json");
    cJSON *tools = load_json_keeping_floats(path);
    free(path);
    return tools;
}

/* Replaces "synthetic_tools": [names] by "tools": [the schemas of those names]. */
static void resolve_synthetic_tools(cJSON *record, const cJSON *synthetic)
{
    cJSON *names = cJSON_DetachItemFromObjectCaseSensitive(record, "synthetic_tools");
    if (!names)
        return;
    cJSON *tools = cJSON_CreateArray();
    const cJSON *name;
    cJSON_ArrayForEach(name, names) {
        const cJSON *found = NULL, *tool;
        cJSON_ArrayForEach(tool, synthetic) {
            const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
            if (strcmp(cJSON_GetObjectItemCaseSensitive(function, "name")->valuestring, name->valuestring) == 0)
                found = tool;
        }
        cr_assert_not_null(found, "no synthetic tool named %s", name->valuestring);
        cJSON_AddItemToArray(tools, cJSON_Duplicate(found, 1));
    }
    cJSON_AddItemToObject(record, "tools", tools);
    cJSON_Delete(names);
}

/* Reports the first difference with some context, so a failure says where it is. */
static void assert_same_text(const char *got, const char *expected, const char *what)
{
    size_t i = 0;
    while (got[i] && got[i] == expected[i])
        i++;
    if (got[i] == expected[i])
        return;
    size_t from = i > 40 ? i - 40 : 0;
    cr_assert_fail("%s: texts differ at byte %zu\n  got:      ...%.80s\n  expected: ...%.80s", what, i, got + from,
                   expected + from);
}

static bool case_flag(const cJSON *test_case, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(test_case, key));
}

static void check_format_against_golden(const char *format_name, bool arguments_as_objects)
{
    enum al_chat_format format;
    cr_assert_eq(al_chat_format_from_name(format_name, &format), 0);
    cJSON *cases = load_json_keeping_floats(GOLDEN_DIR "conversations.json");
    char *expected_path = al_strdup_printf(GOLDEN_DIR "expected_%s.json", format_name);
    cJSON *expected = al_json_load_file(expected_path);
    cr_assert_not_null(expected, "%s", al_error_message());
    const cJSON *expected_cases =
        cJSON_GetObjectItemCaseSensitive(expected, arguments_as_objects ? "cases_arguments_as_objects" : "cases");
    cr_assert_not_null(expected_cases);
    cJSON *synthetic = load_synthetic_tools();

    int checked = 0, record_number = 0;
    const cJSON *test_case;
    cJSON_ArrayForEach(test_case, cases) {
        record_number++;
        const char *name = cJSON_GetObjectItemCaseSensitive(test_case, "name")->valuestring;
        cJSON *record = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(test_case, "record"), 1);
        resolve_synthetic_tools(record, synthetic);
        struct al_conversation conv;
        cr_assert_eq(al_conversation_from_json(&conv, record, "conversations.json", record_number), 0, "%s: %s",
                     name, al_error_message());

        struct al_chat_options options = {
            .add_generation_prompt = case_flag(test_case, "add_generation_prompt"),
            .llama_tools_in_system = case_flag(test_case, "llama_tools_in_system"),
            .disable_thinking = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(test_case, "enable_thinking")),
            .date_string = GOLDEN_DATE_STRING,
            .string_arguments_as_objects = arguments_as_objects,
        };
        struct al_rendered_chat rendered;
        int status = al_chat_render(format, &conv, &options, &rendered);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(expected_cases, name);
        cr_assert_not_null(want, "%s: no expected render for %s", format_name, name);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(want, "text");
        if (cJSON_IsString(text)) {
            cr_assert_eq(status, 0, "%s/%s: %s", format_name, name, al_error_message());
            char what[160];
            snprintf(what, sizeof what, "%s/%s", format_name, name);
            assert_same_text(rendered.text, text->valuestring, what);
            cr_assert_eq(rendered.length, strlen(text->valuestring));
            al_rendered_chat_free(&rendered);
        } else {
            /* The template raises an exception here; so must we. */
            cr_assert_neq(status, 0, "%s/%s: the template fails (%s) but the renderer did not", format_name, name,
                          cJSON_GetObjectItemCaseSensitive(want, "error")->valuestring);
            cr_assert_str_neq(al_error_message(), "");
        }
        checked++;
        al_conversation_free(&conv);
        cJSON_Delete(record);
    }
    cr_assert_eq(checked, cJSON_GetArraySize(expected_cases), "every expected case was checked");
    cJSON_Delete(synthetic);
    cJSON_Delete(expected);
    cJSON_Delete(cases);
    free(expected_path);
}

Test(chat_template_golden, llama31) { check_format_against_golden("llama3.1", false); }
Test(chat_template_golden, llama32) { check_format_against_golden("llama3.2", false); }
Test(chat_template_golden, qwen25) { check_format_against_golden("chatml-qwen2.5", false); }
Test(chat_template_golden, smollm2) { check_format_against_golden("smollm2", false); }
Test(chat_template_golden, mistral_nemo) { check_format_against_golden("mistral-nemo", false); }
Test(chat_template_golden, qwen3) { check_format_against_golden("qwen3", false); }

/* The same conversations with string arguments parsed before rendering. */
Test(chat_template_golden, llama31_arguments_as_objects) { check_format_against_golden("llama3.1", true); }
Test(chat_template_golden, llama32_arguments_as_objects) { check_format_against_golden("llama3.2", true); }
Test(chat_template_golden, qwen25_arguments_as_objects) { check_format_against_golden("chatml-qwen2.5", true); }
Test(chat_template_golden, smollm2_arguments_as_objects) { check_format_against_golden("smollm2", true); }
Test(chat_template_golden, mistral_nemo_arguments_as_objects) { check_format_against_golden("mistral-nemo", true); }
Test(chat_template_golden, qwen3_arguments_as_objects) { check_format_against_golden("qwen3", true); }

/* ---- mistral-common v3 samples ----------------------------------------------------- */

/* text_v3.txt is the prompt as SentencePiece pieces: "▁" stands for a space and
 * "<0xNN>" for a byte. Decoding it gives the text the renderer must produce. */
static char *decode_pieces(const char *pieces)
{
    static const char space_piece[] = "\xe2\x96\x81"; /* U+2581 */
    char *text = malloc(strlen(pieces) + 1);
    cr_assert_not_null(text);
    size_t n = 0;
    for (const char *p = pieces; *p;) {
        unsigned int byte;
        if (strncmp(p, space_piece, 3) == 0) {
            text[n++] = ' ';
            p += 3;
        } else if (strncmp(p, "<0x", 3) == 0 && sscanf(p, "<0x%2X>", &byte) == 1 && p[5] == '>') {
            text[n++] = (char)byte;
            p += 6;
        } else {
            text[n++] = *p++;
        }
    }
    text[n] = '\0';
    return text;
}

static void check_mistral_common_sample(const char *sample)
{
    char *dir = test_shared_path("templates/mistral-common-samples");
    char *sample_path = al_strdup_printf("%s/%s/sample.json", dir, sample);
    char *text_path = al_strdup_printf("%s/%s/text_v3.txt", dir, sample);
    size_t length;
    char *record_text = al_file_read_all(sample_path, &length);
    char *pieces = al_file_read_all(text_path, NULL);
    cr_assert(record_text && pieces, "%s", al_error_message());
    char *expected = decode_pieces(pieces);

    struct al_conversation conv;
    cr_assert_eq(al_conversation_from_text(&conv, record_text, length, sample_path, 1), 0, "%s",
                 al_error_message());
    struct al_rendered_chat rendered;
    cr_assert_eq(al_chat_render(AL_CHAT_MISTRAL_V3, &conv, NULL, &rendered), 0, "%s", al_error_message());
    assert_same_text(rendered.text, expected, sample);

    al_rendered_chat_free(&rendered);
    al_conversation_free(&conv);
    free(expected);
    free(pieces);
    free(record_text);
    free(text_path);
    free(sample_path);
    free(dir);
}

Test(chat_template_mistral_common, no_tools) { check_mistral_common_sample("no_tools"); }
Test(chat_template_mistral_common, get_weather_full) { check_mistral_common_sample("get_weather_full"); }
Test(chat_template_mistral_common, get_weather_no_history) { check_mistral_common_sample("get_weather_no_history"); }
Test(chat_template_mistral_common, get_weather_no_system_prompt)
{
    check_mistral_common_sample("get_weather_no_system_prompt");
}
Test(chat_template_mistral_common, parallel_calls) { check_mistral_common_sample("parallel_calls"); }
Test(chat_template_mistral_common, several_calls) { check_mistral_common_sample("several_calls"); }
