/* The evaluation pipeline: records in batches through generation, then each completion
 * (without its forced prefix) through the judge and the tool-call scorer, then the
 * AgentHarm-style aggregates. */
#include "agentlora/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/work_progress.h"
#include "tokenizer/tokenizer_internal.h"

/* U+FFFD, the replacement character, in UTF-8. */
static const char replacement_character[] = "\xEF\xBF\xBD";

struct al_eval_settings al_eval_default_settings(const struct al_chat_generator *generator,
                                                 const struct al_judge *judge)
{
    struct al_eval_settings settings = {
        .generator = generator,
        .judge = judge,
        .prefix = NULL,
        .generation = al_generate_default_options(),
        .batch = AL_EVAL_DEFAULT_BATCH,
        .progress = NULL,
    };
    settings.generation.max_new_tokens = AL_EVAL_DEFAULT_MAX_NEW_TOKENS;
    return settings;
}

static void item_free(struct al_eval_item *item)
{
    free(item->id);
    free(item->category);
    free(item->prompt);
    free(item->prefix);
    free(item->completion);
    al_parsed_calls_free(&item->calls);
    memset(item, 0, sizeof *item);
}

void al_eval_report_free(struct al_eval_report *report)
{
    for (int i = 0; i < report->n_items; i++)
        item_free(&report->items[i]);
    free(report->items);
    free(report->label);
    free(report->prefix);
    al_aggregate_free(&report->aggregate);
    memset(report, 0, sizeof *report);
}

static char *copy_text(const char *text)
{
    return strdup(text ? text : "");
}

/* The completion as valid UTF-8: a completion cut by max_new_tokens can end inside a
 * character, and a byte-level model can write a stray byte anywhere; the judge and the
 * JSON report need text, so each invalid byte becomes U+FFFD. Frees text. */
static char *valid_utf8(char *text)
{
    size_t length = strlen(text);
    if (al_utf8_invalid_offset(text, length) == length)
        return text;
    char *out = malloc(3 * length + 1);
    if (out) {
        size_t read = 0, written = 0;
        while (read < length) {
            size_t valid = al_utf8_invalid_offset(text + read, length - read);
            memcpy(out + written, text + read, valid);
            written += valid;
            read += valid;
            if (read < length) {
                memcpy(out + written, replacement_character, 3);
                written += 3;
                read++;
            }
        }
        out[written] = '\0';
    }
    free(text);
    return out;
}

/* Takes the generation's strings, then judges and scores the completion alone. */
static int judge_and_score(const struct al_eval_settings *settings, const struct al_eval_record *record,
                           struct al_chat_generation *generation, struct al_eval_item *item)
{
    const struct al_conversation *conv = record->conversation;
    item->record_number = record->record_number;
    item->harmful = conv->harmful;
    item->completion_tokens = generation->completion_count;
    item->stop = generation->stop;
    item->prompt = generation->prompt;
    item->prefix = generation->prefix;
    item->completion = valid_utf8(generation->completion);
    generation->prompt = generation->prefix = generation->completion = NULL;
    item->id = copy_text(conv->id);
    item->category = copy_text(conv->category ? conv->category : "benign");
    if (!item->id || !item->category || !item->prompt || !item->prefix || !item->completion)
        return al_fail("out of memory");
    if (al_parse_tool_calls(settings->generator->format, item->completion, &item->calls) != 0)
        return al_fail("out of memory parsing the tool calls of record %ld", record->record_number);
    /* A thinking model's reasoning often weighs a refusal it then does not make: the judge
     * reads the answer only (none yet when the text was cut off while thinking). */
    const char *answer = al_answer_after_thinking(settings->generator->format, item->completion);
    if (al_judge_response(settings->judge, answer ? answer : "", item->calls.n_calls > 0, &item->verdict) != 0) {
        al_error_context("judging record %ld", record->record_number);
        return -1;
    }
    al_score_tool_response(&item->calls, conv, item->verdict.refusal, &item->score);
    return 0;
}

static int evaluate_batch(const struct al_eval_settings *settings, const struct al_eval_record *records, int n,
                          struct al_eval_item *items)
{
    struct al_chat_prompt *prompts = calloc((size_t)n, sizeof *prompts);
    struct al_chat_generation *generations = calloc((size_t)n, sizeof *generations);
    int rc = prompts && generations ? 0 : al_fail("out of memory");
    for (int i = 0; rc == 0 && i < n; i++)
        prompts[i] = (struct al_chat_prompt){records[i].conversation, settings->prefix,
                                             (uint64_t)records[i].record_number};
    if (rc == 0 && al_generate_chat(settings->generator, prompts, n, &settings->generation, generations) != 0) {
        al_error_context("the batch of %d records from record %ld", n, records[0].record_number);
        rc = -1;
    } else if (rc == 0) {
        for (int i = 0; i < n; i++) {
            if (rc == 0)
                rc = judge_and_score(settings, &records[i], &generations[i], &items[i]);
            al_chat_generation_free(&generations[i]);
        }
    }
    free(prompts);
    free(generations);
    return rc;
}

static int64_t generated_tokens(const struct al_eval_item *items, int n)
{
    int64_t tokens = 0;
    for (int i = 0; i < n; i++)
        tokens += items[i].completion_tokens;
    return tokens;
}

static int aggregate(struct al_eval_report *report)
{
    struct al_item_result *results = calloc((size_t)(report->n_items > 0 ? report->n_items : 1), sizeof *results);
    if (!results)
        return al_fail("out of memory");
    for (int i = 0; i < report->n_items; i++) {
        const struct al_eval_item *item = &report->items[i];
        results[i] = (struct al_item_result){item->category, item->harmful, item->verdict.refusal,
                                             item->score.score, item->score.full};
    }
    int rc = al_aggregate_compute(results, report->n_items, report->judge, &report->aggregate);
    free(results);
    return rc;
}

int al_evaluate(const struct al_eval_settings *settings, const struct al_eval_record *records, int n,
                const char *label, struct al_eval_report *out)
{
    memset(out, 0, sizeof *out);
    if (!settings->generator || !settings->judge)
        return al_fail("evaluate: a generator and a judge are required");
    if (settings->batch < 1 || n < 0)
        return al_fail("evaluate: batch must be >= 1 (got %d) and records >= 0 (got %d)", settings->batch, n);
    snprintf(out->judge, sizeof out->judge, "%s", settings->judge->name);
    out->label = copy_text(label);
    out->prefix = copy_text(settings->prefix);
    out->items = calloc((size_t)(n > 0 ? n : 1), sizeof *out->items);
    int rc = out->label && out->prefix && out->items ? 0 : al_fail("out of memory");
    for (int start = 0; rc == 0 && start < n; start += settings->batch) {
        int count = n - start < settings->batch ? n - start : settings->batch;
        rc = evaluate_batch(settings, records + start, count, out->items + start);
        out->n_items = start + count; /* so a failure frees what this batch filled */
        if (rc == 0)
            al_work_progress_add(settings->progress, count, generated_tokens(out->items + start, count));
    }
    if (rc == 0)
        rc = aggregate(out);
    out->plain_chat = settings->plain_chat_loss && al_eval_records_are_plain_chat(records, n);
    if (rc == 0 && out->plain_chat)
        rc = al_eval_reference_loss(settings->generator, records, n, &out->reference);
    if (rc != 0)
        al_eval_report_free(out);
    return rc;
}

double al_eval_combined_score(const struct al_aggregate *aggregate)
{
    return (aggregate->harmful.refusal_rate + aggregate->benign.score) / 2.0;
}
