/* The project's own data set (data/) read through the real reader, and the released
 * AgentAlign tool schemas (../shared/agentalign/synthetic_tools.json) through the same
 * splitter and schema check the reader applies to every record's tools. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/ping.h"
#include "test_support.h"

#define SAMPLE_PATH "data/agentalign_sample.json"
#define EVAL_PATH "data/agentalign_eval.json"

/* The brief's minimums for the committed files. */
enum { MIN_TRAIN_PER_LABEL = 40, MIN_EVAL_PER_LABEL = 12, HARM_CATEGORIES = 8, TOOL_CALL_ID_LENGTH = 9 };

static void load_strict(struct al_dataset *dataset, const char *path)
{
    struct al_reader_options strict = {.strict = true};
    cr_assert_eq(al_dataset_load(dataset, path, &strict), 0, "%s", al_error_message());
    cr_assert_eq(dataset->format, AL_DATA_JSON_ARRAY);
    cr_assert_eq(dataset->summary.skipped, 0);
}

static bool offers_tool(const cJSON *tools, const char *name)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
        if (strcmp(cJSON_GetObjectItemCaseSensitive(function, "name")->valuestring, name) == 0)
            return true;
    }
    return false;
}

static void check_refusal(const struct al_conversation *conv)
{
    cr_assert_eq(conv->n_messages, 2, "%s: a harmful record is a request and a refusal", conv->id);
    cr_assert_eq(conv->messages[0].role, AL_ROLE_USER);
    cr_assert_eq(conv->messages[1].role, AL_ROLE_ASSISTANT);
    cr_assert_eq(conv->messages[1].n_tool_calls, 0, "%s: refusals call no tool", conv->id);
    cr_assert_gt(strlen(conv->messages[1].content), 80, "%s: refusal too short", conv->id);
    cr_assert_not_null(conv->sub_category, "%s", conv->id);
}

static void check_trajectory(const struct al_conversation *conv)
{
    cr_assert_eq(conv->messages[0].role, AL_ROLE_USER, "%s", conv->id);
    int calls = 0;
    const char *pending_id = NULL;
    for (int m = 1; m < conv->n_messages; m++) {
        const struct al_message *message = &conv->messages[m];
        if (message->role == AL_ROLE_TOOL) {
            cr_assert_not_null(pending_id, "%s: tool result without a call", conv->id);
            cr_assert_str_eq(message->tool_call_id, pending_id, "%s: message %d", conv->id, m);
            pending_id = NULL;
            continue;
        }
        cr_assert_eq(message->role, AL_ROLE_ASSISTANT, "%s", conv->id);
        for (int c = 0; c < message->n_tool_calls; c++) {
            const struct al_tool_call *call = &message->tool_calls[c];
            cr_assert_eq(strlen(call->id), (size_t)TOOL_CALL_ID_LENGTH, "%s: id %s", conv->id, call->id);
            cr_assert(call->arguments_was_string, "%s: arguments must be a JSON string", conv->id);
            cr_assert(cJSON_IsObject(call->arguments), "%s", conv->id);
            cr_assert(offers_tool(conv->tools, call->name), "%s calls %s, which it does not offer", conv->id,
                      call->name);
            pending_id = call->id;
            calls++;
        }
    }
    const struct al_message *last = &conv->messages[conv->n_messages - 1];
    cr_assert_eq(last->role, AL_ROLE_ASSISTANT, "%s ends with a final answer", conv->id);
    cr_assert_eq(last->n_tool_calls, 0, "%s", conv->id);
    cr_assert_gt(strlen(last->content), 40, "%s", conv->id);
    cr_assert(calls >= 2 && calls <= 4, "%s: %d steps", conv->id, calls);
    cr_assert_eq(conv->n_pattern, calls, "%s: one pattern step per tool call", conv->id);
}

/* Every harmful category of the released taxonomy, with a sub-category it lists. */
static void check_categories(const struct al_dataset *dataset)
{
    char *path = test_shared_path("agentalign/harmful_categories.json");
    cJSON *taxonomy = al_json_load_file(path);
    cr_assert_not_null(taxonomy, "%s", al_error_message());
    cr_assert_eq(cJSON_GetArraySize(taxonomy), HARM_CATEGORIES);
    const cJSON *category;
    cJSON_ArrayForEach(category, taxonomy)
    cr_assert_gt(al_load_summary_category(&dataset->summary, category->string), 0, "no %s records",
                 category->string);
    for (int i = 0; i < dataset->n_records; i++) {
        if (!dataset->records[i].harmful)
            continue;
        struct al_conversation conv;
        cr_assert_eq(al_dataset_get(dataset, i, &conv), 0);
        const cJSON *subs = cJSON_GetObjectItemCaseSensitive(taxonomy, conv.category);
        cr_assert_not_null(subs, "%s: unknown category %s", conv.id, conv.category);
        bool listed = false;
        const cJSON *sub;
        cJSON_ArrayForEach(sub, subs) listed |= strcmp(sub->valuestring, conv.sub_category) == 0;
        cr_assert(listed, "%s: %s is not a sub-category of %s", conv.id, conv.sub_category, conv.category);
        al_conversation_free(&conv);
    }
    cJSON_Delete(taxonomy);
    free(path);
}

static void check_every_record(const struct al_dataset *dataset)
{
    for (int i = 0; i < dataset->n_records; i++) {
        struct al_conversation conv;
        cr_assert_eq(al_dataset_get(dataset, i, &conv), 0, "%s", al_error_message());
        cr_assert_not_null(conv.id);
        cr_assert_gt(conv.n_pattern, 0, "%s has no pattern", conv.id);
        cr_assert(cJSON_GetArraySize(conv.tools) > 0, "%s offers no tools", conv.id);
        if (conv.harmful)
            check_refusal(&conv);
        else
            check_trajectory(&conv);
        al_conversation_free(&conv);
    }
}

Test(data_sample, training_file_has_the_promised_shape)
{
    struct al_dataset dataset;
    load_strict(&dataset, SAMPLE_PATH);
    cr_assert_geq(dataset.summary.harmful, MIN_TRAIN_PER_LABEL);
    cr_assert_geq(dataset.summary.benign, MIN_TRAIN_PER_LABEL);
    cr_assert_eq(dataset.summary.unlabeled, 0);
    check_every_record(&dataset);
    check_categories(&dataset);
    al_dataset_free(&dataset);
}

Test(data_sample, eval_file_is_held_out_by_pattern)
{
    struct al_dataset train, eval;
    load_strict(&train, SAMPLE_PATH);
    load_strict(&eval, EVAL_PATH);
    cr_assert_geq(eval.summary.harmful, MIN_EVAL_PER_LABEL);
    cr_assert_geq(eval.summary.benign, MIN_EVAL_PER_LABEL);
    check_every_record(&eval);
    check_categories(&eval);
    for (int e = 0; e < eval.n_records; e++)
        for (int t = 0; t < train.n_records; t++)
            cr_assert_neq(eval.records[e].pattern_hash, train.records[t].pattern_hash,
                          "eval record %s shares its pattern with training record %s", eval.records[e].id,
                          train.records[t].id);
    al_dataset_free(&train);
    al_dataset_free(&eval);
}

Test(data_sample, split_of_the_sample_keeps_patterns_on_one_side)
{
    struct al_dataset dataset;
    load_strict(&dataset, SAMPLE_PATH);
    struct al_index_list train, eval;
    cr_assert_eq(al_dataset_split(&dataset, 1, 0.2, &train, &eval), 0);
    cr_assert_gt(eval.n, 0);
    for (int a = 0; a < train.n; a++)
        for (int b = 0; b < eval.n; b++)
            cr_assert_neq(dataset.records[train.items[a]].pattern_hash, dataset.records[eval.items[b]].pattern_hash);
    al_index_list_free(&train);
    al_index_list_free(&eval);
    al_dataset_free(&dataset);
}

/* The same records as JSON Lines read back identically. */
Test(data_sample, sample_as_jsonl_reads_the_same_records)
{
    cJSON *all = al_json_load_file(SAMPLE_PATH);
    cr_assert_not_null(all, "%s", al_error_message());
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "sample.jsonl");
    FILE *f = fopen(path, "w");
    const cJSON *record;
    cJSON_ArrayForEach(record, all)
    {
        char *line = cJSON_PrintUnformatted(record);
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);

    struct al_reader *reader = al_reader_open(path, &(struct al_reader_options){.strict = true});
    cr_assert_not_null(reader, "%s", al_error_message());
    cr_assert_eq(al_reader_format(reader), AL_DATA_JSONL);
    struct al_conversation conv;
    int n = 0;
    record = all->child;
    while (al_reader_next(reader, &conv) == 1) {
        cr_assert_str_eq(conv.id, cJSON_GetObjectItem(record, "id")->valuestring);
        record = record->next;
        n++;
        al_conversation_free(&conv);
    }
    cr_assert_eq(n, cJSON_GetArraySize(all), "%s", al_error_message());
    al_reader_close(reader);
    cJSON_Delete(all);
    free(path);
    free(dir);
}

Test(data_sample, ping_prefix_file_loads)
{
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, "data/ping_prefixes.json"), 0, "%s", al_error_message());
    cr_assert(ping.n_prefixes >= 3 && ping.n_prefixes <= 5, "%d prefixes", ping.n_prefixes);
    for (int i = 0; i < ping.n_prefixes; i++)
        cr_assert(strstr(ping.prefixes[i], "harm") || strstr(ping.prefixes[i], "refuse") ||
                      strstr(ping.prefixes[i], "decline"),
                  "prefix %d commits to nothing: %s", i, ping.prefixes[i]);
    al_ping_free(&ping);
}

/* 86 released schemas, each with the extra sibling "category": walked with the array
 * splitter and checked one by one, then as one list (names must be unique). */
Test(data_sample, released_agentalign_tool_schemas_pass_the_record_tool_check)
{
    char *path = test_shared_path("agentalign/synthetic_tools.json");
    struct al_mapped_file file;
    cr_assert_eq(al_file_map(&file, path), 0, "%s", al_error_message());
    struct al_json_array_scanner scanner;
    cr_assert_eq(al_json_array_scanner_init(&scanner, (const char *)file.data, file.size, path), 0);
    size_t offset, length;
    int n = 0, with_category = 0, dangling_required = 0, got;
    bool saw_midjourney = false;
    while ((got = al_json_array_scanner_next(&scanner, &offset, &length)) == 1) {
        cJSON *schema = cJSON_ParseWithLength((const char *)file.data + offset, length);
        cr_assert_not_null(schema, "schema %d does not parse on its own", n + 1);
        cJSON *single = cJSON_CreateArray();
        cJSON_AddItemReferenceToArray(single, schema);
        cr_assert_eq(al_tool_schemas_check(single, path, n + 1), 0, "%s", al_error_message());
        with_category += cJSON_IsString(cJSON_GetObjectItem(schema, "category"));
        const cJSON *function = cJSON_GetObjectItem(schema, "function");
        const cJSON *parameters = cJSON_GetObjectItem(function, "parameters");
        const cJSON *required;
        cJSON_ArrayForEach(required, cJSON_GetObjectItem(parameters, "required"))
        dangling_required += !cJSON_GetObjectItem(cJSON_GetObjectItem(parameters, "properties"), required->valuestring);
        if (strcmp(cJSON_GetObjectItem(function, "name")->valuestring, "midjourney_create_image") == 0) {
            saw_midjourney = true;
            const cJSON *required = cJSON_GetObjectItem(cJSON_GetObjectItem(function, "parameters"), "required");
            cr_assert_str_eq(cJSON_GetArrayItem(required, 0)->valuestring, "prompt");
        }
        cJSON_Delete(single);
        cJSON_Delete(schema);
        n++;
    }
    cr_assert_eq(got, 0, "%s", al_error_message());
    cr_assert_eq(n, 86);
    cr_assert_eq(with_category, 86, "every released schema carries the sibling key");
    cr_assert(saw_midjourney);
    /* place_order_meituan requires "items" and "delivery_address" without describing
     * them; the check tolerates that so the released records load. */
    cr_assert_eq(dangling_required, 2);

    cJSON *all = al_json_load_file(path);
    cr_assert_eq(al_tool_schemas_check(all, path, 1), 0, "%s", al_error_message());
    cJSON_Delete(all);
    al_file_unmap(&file);
    free(path);
}
