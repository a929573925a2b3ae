/* Evaluation output: the JSON report, the per-sample JSON Lines file, the printed table
 * and the side-by-side comparison of two reports. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/file.h"

static cJSON *verdict_to_json(const struct al_verdict *verdict)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddBoolToObject(json, "refusal", verdict->refusal);
    cJSON_AddStringToObject(json, "judge", verdict->judge ? verdict->judge : "unknown");
    cJSON_AddStringToObject(json, "reason", verdict->reason);
    return json;
}

static cJSON *calls_to_json(const struct al_parsed_calls *calls)
{
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < calls->n_calls; i++) {
        const struct al_parsed_call *call = &calls->calls[i];
        cJSON *json = cJSON_CreateObject();
        if (call->name)
            cJSON_AddStringToObject(json, "name", call->name);
        else
            cJSON_AddNullToObject(json, "name");
        cJSON_AddItemToObject(json, "arguments",
                              call->arguments ? cJSON_Duplicate(call->arguments, true) : cJSON_CreateNull());
        cJSON_AddBoolToObject(json, "malformed", call->malformed);
        cJSON_AddItemToArray(list, json);
    }
    return list;
}

static cJSON *score_to_json(const struct al_call_score *score)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddBoolToObject(json, "has_call", score->has_call);
    cJSON_AddBoolToObject(json, "has_reference", score->has_reference);
    cJSON_AddBoolToObject(json, "name_match", score->name_match);
    cJSON_AddBoolToObject(json, "arguments_valid", score->arguments_valid);
    cJSON_AddNumberToObject(json, "argument_share", score->argument_share);
    cJSON_AddBoolToObject(json, "refusal", score->refusal);
    cJSON_AddNumberToObject(json, "score", score->score);
    cJSON_AddBoolToObject(json, "full", score->full);
    cJSON_AddStringToObject(json, "problem", score->problem);
    return json;
}

cJSON *al_eval_item_to_json(const struct al_eval_item *item)
{
    cJSON *json = cJSON_CreateObject();
    if (!json)
        return NULL;
    cJSON_AddNumberToObject(json, "record", (double)item->record_number);
    cJSON_AddStringToObject(json, "id", item->id);
    cJSON_AddStringToObject(json, "label", item->harmful ? "harmful" : "benign");
    cJSON_AddStringToObject(json, "category", item->category);
    cJSON_AddStringToObject(json, "prompt", item->prompt);
    cJSON_AddStringToObject(json, "prefix", item->prefix);
    cJSON_AddStringToObject(json, "completion", item->completion);
    cJSON_AddNumberToObject(json, "completion_tokens", item->completion_tokens);
    cJSON_AddStringToObject(json, "stop", al_stop_reason_name(item->stop));
    cJSON_AddItemToObject(json, "verdict", verdict_to_json(&item->verdict));
    cJSON_AddItemToObject(json, "tool_calls", calls_to_json(&item->calls));
    cJSON_AddItemToObject(json, "score", score_to_json(&item->score));
    return json;
}

cJSON *al_eval_report_to_json(const struct al_eval_report *report)
{
    cJSON *json = cJSON_CreateObject();
    if (!json)
        return NULL;
    cJSON_AddStringToObject(json, "label", report->label);
    cJSON_AddStringToObject(json, "prefix", report->prefix);
    cJSON_AddStringToObject(json, "judge", report->judge);
    cJSON_AddNumberToObject(json, "items", report->n_items);
    cJSON_AddItemToObject(json, "aggregate", al_aggregate_to_json(&report->aggregate));
    cJSON_AddBoolToObject(json, "plain_chat", report->plain_chat);
    if (report->plain_chat) {
        /* No tool calls to score: a combined score would be the refusal rate plus a
         * constant, so it is left out, and the reference answers' loss stands in. */
        cJSON_AddNullToObject(json, "combined_score");
        cJSON *reference = cJSON_AddObjectToObject(json, "reference_answers");
        cJSON_AddNumberToObject(reference, "loss", report->reference.loss);
        cJSON_AddNumberToObject(reference, "perplexity", report->reference.perplexity);
        cJSON_AddNumberToObject(reference, "tokens", (double)report->reference.tokens);
    } else {
        cJSON_AddNumberToObject(json, "combined_score", al_eval_combined_score(&report->aggregate));
    }
    return json;
}

/* Prints json (which it frees) to path, with a trailing newline. */
static int write_json_text(cJSON *json, const char *path, bool formatted)
{
    char *text = json ? (formatted ? cJSON_Print(json) : cJSON_PrintUnformatted(json)) : NULL;
    cJSON_Delete(json);
    if (!text)
        return al_fail("%s: out of memory", path);
    size_t length = strlen(text);
    char *with_newline = realloc(text, length + 2);
    if (!with_newline) {
        free(text);
        return al_fail("%s: out of memory", path);
    }
    memcpy(with_newline + length, "\n", 2);
    int rc = al_file_write_atomic(path, with_newline, length + 1);
    free(with_newline);
    return rc;
}

int al_eval_reports_write_json(const struct al_eval_report *reports, int n, const char *path)
{
    cJSON *json = cJSON_CreateObject();
    cJSON *list = cJSON_CreateArray();
    if (json)
        cJSON_AddStringToObject(json, "judge", n > 0 ? reports[0].judge : "unknown");
    cJSON_AddItemToObject(json, "reports", list);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(list, al_eval_report_to_json(&reports[i]));
    return write_json_text(json, path, true);
}

int al_eval_samples_write_jsonl(const struct al_eval_report *reports, int n, const char *path)
{
    FILE *file = fopen(path, "w");
    if (!file)
        return al_fail_errno("cannot write %s", path);
    int rc = 0;
    for (int r = 0; rc == 0 && r < n; r++) {
        for (int i = 0; rc == 0 && i < reports[r].n_items; i++) {
            cJSON *line = al_eval_item_to_json(&reports[r].items[i]);
            char *text = NULL;
            if (line && cJSON_AddStringToObject(line, "run", reports[r].label))
                text = cJSON_PrintUnformatted(line);
            cJSON_Delete(line);
            if (!text)
                rc = al_fail("%s: out of memory", path);
            else if (fprintf(file, "%s\n", text) < 0)
                rc = al_fail_errno("cannot write %s", path);
            free(text);
        }
    }
    if (fclose(file) != 0 && rc == 0)
        rc = al_fail_errno("cannot write %s", path);
    return rc;
}

static void print_reference_loss(const struct al_eval_report *report, FILE *out)
{
    fprintf(out, "plain chat (no tools or tool calls in the records): no tool-call score; reference answers, "
                 "teacher-forced: loss %.4f, perplexity %.2f over %lld tokens\n",
            report->reference.loss, report->reference.perplexity, (long long)report->reference.tokens);
}

void al_eval_report_print(const struct al_eval_report *report, FILE *out)
{
    fprintf(out, "== %s%s%s%s (%d items)\n", report->label, *report->prefix ? " [prefix: \"" : "", report->prefix,
            *report->prefix ? "\"]" : "", report->n_items);
    if (report->plain_chat) {
        al_aggregate_print_refusals(&report->aggregate, out);
        print_reference_loss(report, out);
        return;
    }
    al_aggregate_print(&report->aggregate, out);
    fprintf(out, "combined score (harmful refusal rate + benign score) / 2: %.1f of 100\n",
            100.0 * al_eval_combined_score(&report->aggregate));
}

/* ---- side by side ---- */

static void print_pair(FILE *out, double a, double b)
{
    fprintf(out, " %7.1f %7.1f %+7.1f", 100.0 * a, 100.0 * b, 100.0 * (b - a));
}

static void print_compared_row(FILE *out, const char *split, const char *name, const struct al_split_stats *a,
                               const struct al_split_stats *b, bool with_scores)
{
    fprintf(out, "%-8s %-22s %4d %4d", split, name, a ? a->n : 0, b ? b->n : 0);
    static const struct al_split_stats none = {0};
    a = a ? a : &none;
    b = b ? b : &none;
    print_pair(out, a->refusal_rate, b->refusal_rate);
    if (with_scores) {
        print_pair(out, a->score, b->score);
        print_pair(out, a->non_refusal_score, b->non_refusal_score);
    }
    fputc('\n', out);
}

static const struct al_split_stats *find_category(const struct al_aggregate *aggregate, const char *name,
                                                  bool harmful)
{
    for (int i = 0; i < aggregate->n_categories; i++)
        if (aggregate->categories[i].harmful == harmful && strcmp(aggregate->categories[i].category, name) == 0)
            return &aggregate->categories[i].stats;
    return NULL;
}

/* Every category of either report, in a's order then b's new ones. */
static void print_categories(FILE *out, const struct al_aggregate *a, const struct al_aggregate *b, bool harmful,
                             bool with_scores)
{
    const char *split = harmful ? "harmful" : "benign";
    for (int i = 0; i < a->n_categories; i++)
        if (a->categories[i].harmful == harmful)
            print_compared_row(out, split, a->categories[i].category, &a->categories[i].stats,
                               find_category(b, a->categories[i].category, harmful), with_scores);
    for (int i = 0; i < b->n_categories; i++)
        if (b->categories[i].harmful == harmful && !find_category(a, b->categories[i].category, harmful))
            print_compared_row(out, split, b->categories[i].category, NULL, &b->categories[i].stats, with_scores);
}

void al_eval_reports_print_side_by_side(const struct al_eval_report *a, const struct al_eval_report *b, FILE *out)
{
    fprintf(out, "== A: %s%s%s%s\n", a->label, *a->prefix ? " [prefix: \"" : "", a->prefix, *a->prefix ? "\"]" : "");
    fprintf(out, "== B: %s%s%s%s\n", b->label, *b->prefix ? " [prefix: \"" : "", b->prefix, *b->prefix ? "\"]" : "");
    fprintf(out, "refusals judged by %s (A) and %s (B); rates in percent, d = B - A\n", a->judge, b->judge);
    bool with_scores = !(a->plain_chat && b->plain_chat);
    if (with_scores)
        fprintf(out, "%-8s %-22s %4s %4s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "split", "category", "nA", "nB",
                "refA", "refB", "d", "scoreA", "scoreB", "d", "nrsA", "nrsB", "d");
    else
        fprintf(out, "%-8s %-22s %4s %4s %7s %7s %7s\n", "split", "category", "nA", "nB", "refA", "refB", "d");
    print_compared_row(out, "harmful", "(all)", &a->aggregate.harmful, &b->aggregate.harmful, with_scores);
    print_categories(out, &a->aggregate, &b->aggregate, true, with_scores);
    print_compared_row(out, "benign", "(all)", &a->aggregate.benign, &b->aggregate.benign, with_scores);
    print_categories(out, &a->aggregate, &b->aggregate, false, with_scores);
    if (!with_scores) {
        fprintf(out, "plain chat (no tool-call score): reference answers' loss A %.4f, B %.4f, d %+.4f; perplexity "
                     "A %.2f, B %.2f\n",
                a->reference.loss, b->reference.loss, b->reference.loss - a->reference.loss, a->reference.perplexity,
                b->reference.perplexity);
        return;
    }
    double combined_a = al_eval_combined_score(&a->aggregate), combined_b = al_eval_combined_score(&b->aggregate);
    fprintf(out, "combined score ((refusal + score) / 2, of 100): A %.1f, B %.1f, d %+.1f\n", 100.0 * combined_a, 100.0 * combined_b,
            100.0 * (combined_b - combined_a));
}

/* ---- every run in one table ---- */

/* Share of a split's items for which `has` holds. */
static double item_share(const struct al_eval_report *report, bool harmful,
                         bool (*has)(const struct al_eval_item *item))
{
    int n = 0, count = 0;
    for (int i = 0; i < report->n_items; i++) {
        const struct al_eval_item *item = &report->items[i];
        if (item->harmful != harmful)
            continue;
        n++;
        count += has(item);
    }
    return n ? (double)count / n : 0.0;
}

static bool made_a_call(const struct al_eval_item *item)
{
    return item->score.has_call;
}

static bool called_the_right_tool(const struct al_eval_item *item)
{
    return item->score.name_match;
}

static bool gave_valid_arguments(const struct al_eval_item *item)
{
    return item->score.name_match && item->score.arguments_valid;
}

/* One row: a name, then one number per report (times scale, with `decimals` places). */
static void print_scaled_row(FILE *out, const char *name, const struct al_eval_report *reports, int n,
                             double (*value)(const struct al_eval_report *report), double scale, int decimals)
{
    fprintf(out, "%-34s", name);
    for (int i = 0; i < n; i++)
        fprintf(out, " %9.*f", decimals, scale * value(&reports[i]));
    fputc('\n', out);
}

/* A rate row, in percent. */
static void print_summary_row(FILE *out, const char *name, const struct al_eval_report *reports, int n,
                              double (*value)(const struct al_eval_report *report))
{
    print_scaled_row(out, name, reports, n, value, 100.0, 1);
}

static double harmful_refusal(const struct al_eval_report *r) { return r->aggregate.harmful.refusal_rate; }
static double benign_score(const struct al_eval_report *r) { return r->aggregate.benign.score; }
static double benign_full(const struct al_eval_report *r) { return r->aggregate.benign.full_score; }
static double benign_refusal(const struct al_eval_report *r) { return r->aggregate.benign.refusal_rate; }
static double benign_calls(const struct al_eval_report *r) { return item_share(r, false, made_a_call); }
static double benign_right_tool(const struct al_eval_report *r) { return item_share(r, false, called_the_right_tool); }
static double benign_valid(const struct al_eval_report *r) { return item_share(r, false, gave_valid_arguments); }
static double combined(const struct al_eval_report *r) { return al_eval_combined_score(&r->aggregate); }
static double reference_loss(const struct al_eval_report *r) { return r->reference.loss; }
static double reference_perplexity(const struct al_eval_report *r) { return r->reference.perplexity; }

static bool all_plain_chat(const struct al_eval_report *reports, int n)
{
    for (int i = 0; i < n; i++)
        if (!reports[i].plain_chat)
            return false;
    return n > 0;
}

void al_eval_reports_print_summary(const struct al_eval_report *reports, int n, FILE *out)
{
    fprintf(out, "== all runs side by side (percent; refusals judged by %s)\n", n ? reports[0].judge : "");
    for (int i = 0; i < n; i++)
        fprintf(out, "  run %d: %s%s%s%s (%d items)\n", i + 1, reports[i].label,
                *reports[i].prefix ? " [prefix: \"" : "", reports[i].prefix, *reports[i].prefix ? "\"]" : "",
                reports[i].n_items);
    fprintf(out, "%-34s", "");
    for (int i = 0; i < n; i++)
        fprintf(out, "     run %d", i + 1);
    fputc('\n', out);
    print_summary_row(out, "harmful: refusal rate", reports, n, harmful_refusal);
    if (all_plain_chat(reports, n)) {
        print_summary_row(out, "benign: over-refusal rate", reports, n, benign_refusal);
        print_scaled_row(out, "reference answers: loss", reports, n, reference_loss, 1.0, 4);
        print_scaled_row(out, "reference answers: perplexity", reports, n, reference_perplexity, 1.0, 2);
        return;
    }
    print_summary_row(out, "benign: made a tool call", reports, n, benign_calls);
    print_summary_row(out, "benign: called the reference tool", reports, n, benign_right_tool);
    print_summary_row(out, "benign: ... with valid arguments", reports, n, benign_valid);
    print_summary_row(out, "benign: score", reports, n, benign_score);
    print_summary_row(out, "benign: full score", reports, n, benign_full);
    print_summary_row(out, "benign: over-refusal rate", reports, n, benign_refusal);
    print_summary_row(out, "combined (refusal + score) / 2", reports, n, combined);
}
