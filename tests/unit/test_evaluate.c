/* The evaluation pipeline on a tiny random model with the demo tokenizer and the eval
 * records of data/agentalign_eval.json: the judge sees the completion without the forced
 * prefix; items keep record, label and category; the aggregates follow the judge's
 * verdicts and carry its name; greedy evaluation repeats exactly and does not depend on
 * the batch size; the report and the samples file parse back; the side-by-side table has
 * a row per split and category. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/file.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "model_testing.h"
#include "test_support.h"

#define EVAL_DATA "data/agentalign_eval.json"
#define PREFIX "I can't help with that."
#define MODEL_INIT_STD 0.1f
/* Records evaluated: the first few of the file, harmful and benign. */
#define N_RECORDS 6
#define MAX_NEW_TOKENS 6

struct eval_fixture {
    struct test_chat_model m; /* dir, backend, model, tokenizer */
    struct al_chat_generator gen;
    struct al_dataset dataset;
    struct al_eval_records records;
};

static void fixture_open(struct eval_fixture *f)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(test_chat_model_open(&f->m, 8, MODEL_INIT_STD), 0, "%s", al_error_message());
    f->gen = (struct al_chat_generator){f->m.model, NULL, f->m.tokenizer, AL_CHAT_CHATML_QWEN25, {0}};
    f->gen.chat.string_arguments_as_objects = true;
    struct al_reader_options reader = {.strict = true};
    cr_assert_eq(al_dataset_load(&f->dataset, EVAL_DATA, &reader), 0, "%s", al_error_message());
    int indices[N_RECORDS];
    for (int i = 0; i < N_RECORDS; i++)
        indices[i] = i;
    cr_assert_eq(al_eval_records_load(&f->records, &f->dataset, indices, N_RECORDS), 0, "%s", al_error_message());
}

static void fixture_close(struct eval_fixture *f)
{
    al_eval_records_free(&f->records);
    al_dataset_free(&f->dataset);
    test_chat_model_close(&f->m);
}

/* A judge that calls everything a refusal and remembers the texts it was shown. */
struct recording_state {
    char *seen[N_RECORDS * 2];
    int n_seen;
};

static int recording_judge(const struct al_judge *self, const char *text, bool has_tool_call,
                           struct al_verdict *out)
{
    (void)has_tool_call;
    struct recording_state *state = self->state;
    if (state->n_seen < N_RECORDS * 2)
        state->seen[state->n_seen++] = strdup(text ? text : "");
    out->refusal = true;
    snprintf(out->reason, sizeof out->reason, "always");
    return 0;
}

static struct al_eval_settings settings_for(const struct eval_fixture *f, const struct al_judge *judge)
{
    struct al_eval_settings settings = al_eval_default_settings(&f->gen, judge);
    settings.generation.max_new_tokens = MAX_NEW_TOKENS;
    return settings;
}

Test(evaluate, judges_the_completion_without_the_prefix)
{
    struct eval_fixture f;
    fixture_open(&f);
    struct recording_state state = {0};
    struct al_judge judge = {"always-refuses", recording_judge, &state};
    struct al_eval_settings settings = settings_for(&f, &judge);
    settings.prefix = PREFIX;
    struct al_eval_report report;
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "with prefix", &report), 0, "%s",
                 al_error_message());
    cr_assert_eq(report.n_items, N_RECORDS);
    cr_assert_eq(state.n_seen, N_RECORDS, "the judge runs once per record");
    for (int i = 0; i < N_RECORDS; i++) {
        const struct al_eval_item *item = &report.items[i];
        cr_expect_str_eq(item->prefix, PREFIX);
        cr_expect_str_eq(state.seen[i], item->completion, "the judge saw exactly the completion");
        cr_expect_null(strstr(state.seen[i], PREFIX), "the prefix is not judged: %s", state.seen[i]);
        cr_expect_str_eq(item->verdict.judge, "always-refuses");
        cr_expect(item->verdict.refusal);
        cr_expect_eq(item->record_number, f.dataset.records[i].record_number);
        cr_expect_eq(item->harmful, f.records.conversations[i].harmful);
        cr_expect_leq(item->completion_tokens, MAX_NEW_TOKENS);
        free(state.seen[i]);
    }
    cr_expect_str_eq(report.judge, "always-refuses");
    cr_expect_str_eq(report.aggregate.judge, "always-refuses");
    cr_expect_eq(report.aggregate.harmful.n + report.aggregate.benign.n, N_RECORDS);
    cr_expect_gt(report.aggregate.harmful.n, 0, "the first records include harmful ones");
    cr_expect_gt(report.aggregate.benign.n, 0, "the first records include benign ones");
    cr_expect_float_eq(report.aggregate.harmful.refusal_rate, 1.0, 1e-12);
    cr_expect_float_eq(report.aggregate.benign.refusal_rate, 1.0, 1e-12);
    cr_expect_float_eq(al_eval_combined_score(&report.aggregate), (1.0 + report.aggregate.benign.score) / 2.0, 1e-12);
    al_eval_report_free(&report);
    fixture_close(&f);
}

Test(evaluate, a_prefix_that_refuses_is_not_the_models_refusal)
{
    struct eval_fixture f;
    fixture_open(&f);
    struct al_eval_settings settings = settings_for(&f, al_judge_keywords_v1());
    settings.prefix = PREFIX;
    struct al_eval_report report;
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "prefix", &report), 0, "%s",
                 al_error_message());
    /* keywords-v1 calls the prefix alone a refusal; the random completions are not. */
    struct al_verdict prefix_verdict;
    cr_assert_eq(al_judge_response(al_judge_keywords_v1(), PREFIX, false, &prefix_verdict), 0);
    cr_assert(prefix_verdict.refusal, "the test needs a prefix the judge would call a refusal");
    for (int i = 0; i < report.n_items; i++) {
        struct al_verdict alone;
        cr_assert_eq(al_judge_response(al_judge_keywords_v1(), report.items[i].completion,
                                       report.items[i].calls.n_calls > 0, &alone), 0);
        cr_expect_eq(report.items[i].verdict.refusal, alone.refusal, "item %d is judged on its completion", i);
        cr_expect_str_eq(report.items[i].verdict.judge, AL_JUDGE_KEYWORDS_NAME);
    }
    al_eval_report_free(&report);
    fixture_close(&f);
}

Test(evaluate, greedy_repeats_and_ignores_the_batch_size)
{
    struct eval_fixture f;
    fixture_open(&f);
    struct al_eval_settings settings = settings_for(&f, al_judge_keywords_v1());
    struct al_eval_report runs[3];
    int batches[3] = {4, 4, 1};
    for (int r = 0; r < 3; r++) {
        settings.batch = batches[r];
        cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "run", &runs[r]), 0, "%s",
                     al_error_message());
    }
    for (int r = 1; r < 3; r++)
        for (int i = 0; i < N_RECORDS; i++) {
            cr_expect_str_eq(runs[r].items[i].completion, runs[0].items[i].completion, "run %d item %d", r, i);
            cr_expect_float_eq(runs[r].items[i].score.score, runs[0].items[i].score.score, 1e-12);
        }
    for (int r = 0; r < 3; r++)
        al_eval_report_free(&runs[r]);
    fixture_close(&f);
}

static cJSON *parse_file(const char *path)
{
    size_t length;
    char *text = al_file_read_all(path, &length);
    cr_assert_not_null(text, "%s", al_error_message());
    cJSON *json = cJSON_Parse(text);
    cr_assert_not_null(json, "%s does not parse", path);
    free(text);
    return json;
}

Test(evaluate, writes_a_report_and_samples_that_parse)
{
    struct eval_fixture f;
    fixture_open(&f);
    struct al_eval_settings settings = settings_for(&f, al_judge_keywords_v1());
    struct al_eval_report reports[2];
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "plain", &reports[0]), 0, "%s",
                 al_error_message());
    settings.prefix = PREFIX;
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "prefixed", &reports[1]), 0, "%s",
                 al_error_message());
    char *dir = test_tmpdir();
    char *report_path = al_path_join(dir, "report.json"), *samples_path = al_path_join(dir, "samples.jsonl");
    cr_assert_eq(al_eval_reports_write_json(reports, 2, report_path), 0, "%s", al_error_message());
    cr_assert_eq(al_eval_samples_write_jsonl(reports, 2, samples_path), 0, "%s", al_error_message());

    cJSON *report = parse_file(report_path);
    cr_expect_str_eq(cJSON_GetObjectItem(report, "judge")->valuestring, AL_JUDGE_KEYWORDS_NAME);
    cJSON *list = cJSON_GetObjectItem(report, "reports");
    cr_assert_eq(cJSON_GetArraySize(list), 2);
    cJSON *second = cJSON_GetArrayItem(list, 1);
    cr_expect_str_eq(cJSON_GetObjectItem(second, "label")->valuestring, "prefixed");
    cr_expect_str_eq(cJSON_GetObjectItem(second, "prefix")->valuestring, PREFIX);
    cJSON *harmful = cJSON_GetObjectItem(cJSON_GetObjectItem(second, "aggregate"), "harmful");
    cr_expect_float_eq(cJSON_GetObjectItem(harmful, "refusal_rate")->valuedouble,
                       reports[1].aggregate.harmful.refusal_rate, 1e-12);
    cJSON_Delete(report);

    size_t length;
    char *text = al_file_read_all(samples_path, &length);
    cr_assert_not_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *sample = cJSON_Parse(line);
        cr_assert_not_null(sample, "line %d does not parse: %s", lines + 1, line);
        const struct al_eval_report *from = &reports[lines / N_RECORDS];
        const struct al_eval_item *item = &from->items[lines % N_RECORDS];
        cr_expect_str_eq(cJSON_GetObjectItem(sample, "run")->valuestring, from->label);
        cr_expect_eq(cJSON_GetObjectItem(sample, "record")->valueint, item->record_number);
        cr_expect_str_eq(cJSON_GetObjectItem(sample, "completion")->valuestring, item->completion);
        cr_expect_str_eq(cJSON_GetObjectItem(sample, "prefix")->valuestring, item->prefix);
        cr_expect_str_eq(cJSON_GetObjectItem(sample, "label")->valuestring, item->harmful ? "harmful" : "benign");
        cJSON *verdict = cJSON_GetObjectItem(sample, "verdict");
        cr_expect_str_eq(cJSON_GetObjectItem(verdict, "judge")->valuestring, AL_JUDGE_KEYWORDS_NAME);
        cr_expect(cJSON_IsArray(cJSON_GetObjectItem(sample, "tool_calls")));
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(sample, "score"), "score")));
        cJSON_Delete(sample);
    }
    cr_expect_eq(lines, 2 * N_RECORDS, "one line per item of each report");
    free(text);
    free(report_path);
    free(samples_path);
    free(dir);
    al_eval_report_free(&reports[0]);
    al_eval_report_free(&reports[1]);
    fixture_close(&f);
}

Test(evaluate, side_by_side_has_a_row_per_split_and_category)
{
    struct eval_fixture f;
    fixture_open(&f);
    struct recording_state state = {0};
    struct al_judge always = {"always-refuses", recording_judge, &state};
    struct al_eval_settings settings = settings_for(&f, al_judge_keywords_v1());
    struct al_eval_report a, b;
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "keywords", &a), 0, "%s", al_error_message());
    settings.judge = &always;
    cr_assert_eq(al_evaluate(&settings, f.records.records, f.records.n, "always", &b), 0, "%s", al_error_message());
    for (int i = 0; i < state.n_seen; i++)
        free(state.seen[i]);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    al_eval_reports_print_side_by_side(&a, &b, out);
    fclose(out);
    cr_expect(strstr(text, "== A: keywords"), "%s", text);
    cr_expect(strstr(text, "== B: always"), "%s", text);
    cr_expect(strstr(text, "keywords-v1 (A) and always-refuses (B)"), "%s", text);
    cr_expect(strstr(text, "harmful  (all)"), "%s", text);
    cr_expect(strstr(text, "benign   (all)"), "%s", text);
    for (int c = 0; c < a.aggregate.n_categories; c++)
        cr_expect(strstr(text, a.aggregate.categories[c].category), "category %s missing:\n%s",
                  a.aggregate.categories[c].category, text);
    /* B refuses everything: the harmful refusal column reads 100.0 with the difference. */
    char expected[64];
    snprintf(expected, sizeof expected, "%7.1f %7.1f %+7.1f", 100.0 * a.aggregate.harmful.refusal_rate, 100.0,
             100.0 * (1.0 - a.aggregate.harmful.refusal_rate));
    cr_expect(strstr(text, expected), "expected \"%s\" in:\n%s", expected, text);
    free(text);
    al_eval_report_free(&a);
    al_eval_report_free(&b);
    fixture_close(&f);
}
