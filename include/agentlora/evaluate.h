/* The evaluation pipeline: generate a response for each record, judge it for refusal,
 * score its first tool call, and aggregate AgentHarm-style for the harmful and the
 * benign split and for each category.
 *
 * A forced PING prefix (eval mode) is prefilled after the assistant header and kept OUT of
 * judging and scoring: the judge and the tool-call parser see only what the model wrote
 * after it, so a prefix such as "I can't help with that, but" never counts as the model's
 * refusal by itself.
 *
 *     struct al_eval_settings settings = al_eval_default_settings(&generator, judge);
 *     settings.prefix = "I will act safely.";
 *     struct al_eval_report report;
 *     if (al_evaluate(&settings, records, n, "with prefix", &report) == 0) {
 *         al_eval_report_print(&report, stdout);
 *         al_eval_report_free(&report);
 *     }
 */
#ifndef AGENTLORA_EVALUATE_H
#define AGENTLORA_EVALUATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agentlora/generate.h"
#include "agentlora/judge.h"
#include "agentlora/scoring.h"

struct cJSON;
struct al_conversation;
struct al_work_progress;

/* Records decoded together when the caller does not choose. */
#define AL_EVAL_DEFAULT_BATCH 8
/* Response length for evaluation: long enough for a refusal sentence or one tool call. */
#define AL_EVAL_DEFAULT_MAX_NEW_TOKENS 128

/* One record to evaluate: the conversation (borrowed) and its 1-based number in its file,
 * which names it in reports and picks its sampling stream. */
struct al_eval_record {
    const struct al_conversation *conversation;
    long record_number;
};

struct al_eval_settings {
    const struct al_chat_generator *generator; /* model, adapter, tokenizer, chat format */
    const struct al_judge *judge;
    const char *prefix; /* forced start of every response; NULL or "" for none */
    struct al_generate_options generation;
    int batch; /* records decoded together, >= 1 */
    /* Plain chat data (al_eval_records_are_plain_chat): report it as such, with the
     * reference answers' loss (one more forward pass per record). Off by default, so
     * the generation eval inside training and ping-search do only what they use. */
    bool plain_chat_loss;
    /* Ticked after each batch with its records and generated tokens; NULL: none. The
     * caller starts and finishes it (one progress can span several evaluations). */
    struct al_work_progress *progress;
};

/* Greedy, AL_EVAL_DEFAULT_MAX_NEW_TOKENS, AL_EVAL_DEFAULT_BATCH, no prefix, no progress. */
struct al_eval_settings al_eval_default_settings(const struct al_chat_generator *generator,
                                                 const struct al_judge *judge);

/* What one record gave. Strings are owned. */
struct al_eval_item {
    long record_number;
    char *id;       /* "" when the record has none */
    bool harmful;
    char *category; /* the record's category, "benign" when it has none */
    char *prompt;   /* the rendered prompt, up to the assistant header */
    char *prefix;   /* the forced prefix, "" when none */
    char *completion; /* what the model wrote after the prefix: the judged text (bytes that are
                         not valid UTF-8, such as a character cut by max_new_tokens, become U+FFFD) */
    int completion_tokens;
    enum al_stop_reason stop;
    struct al_verdict verdict; /* verdict.judge names the judge */
    struct al_parsed_calls calls;
    struct al_call_score score;
};

/* The teacher-forced loss of the records' own assistant answers (mean over their tokens). */
struct al_reference_loss {
    double loss;
    double perplexity; /* exp(loss) */
    int64_t tokens;    /* answer tokens measured (records longer than the context are left out) */
};

struct al_eval_report {
    char *label;  /* what was evaluated, e.g. "base" or "adapter + prefix" */
    char *prefix; /* "" when none */
    char judge[64];
    struct al_eval_item *items;
    int n_items;
    struct al_aggregate aggregate;
    /* Plain chat: no record has tools or a reference tool call, so there is no tool-call
     * score; the reports give the reference answers' loss and perplexity instead. */
    bool plain_chat;
    struct al_reference_loss reference;
};

/* Generates, judges and scores every record; items come out in the order given. label
 * (may be NULL) names the report. On failure nothing is left allocated in out. */
int al_evaluate(const struct al_eval_settings *settings, const struct al_eval_record *records, int n,
                const char *label, struct al_eval_report *out);
void al_eval_report_free(struct al_eval_report *report);

/* True when no record has tools or a reference tool call (and there is at least one). */
bool al_eval_records_are_plain_chat(const struct al_eval_record *records, int n);
/* The reference answers' loss under the generator's model and adapter, every assistant
 * turn rendered and masked as training does (src/eval/reference_loss.c). */
int al_eval_reference_loss(const struct al_chat_generator *generator, const struct al_eval_record *records, int n,
                           struct al_reference_loss *out);

/* The combined score of a report: the mean of the harmful refusal rate and the benign mean
 * score, (refusal + score) / 2, in [0, 1] like both (a split without items contributes 0).
 * Stored as this fraction (report.json, metrics.jsonl "combined_score"), printed as
 * percent: every table and log line shows it on the same 0-100 scale. */
double al_eval_combined_score(const struct al_aggregate *aggregate);

/* ---- records from a data file (src/eval/evaluate_records.c) ---- */

struct al_dataset;

/* Parsed conversations and the al_eval_record list over them. */
struct al_eval_records {
    struct al_conversation *conversations;
    struct al_eval_record *records;
    int n;
};

/* Parses the dataset records with the given indices (into dataset->records), in that order. */
int al_eval_records_load(struct al_eval_records *out, const struct al_dataset *dataset, const int *indices, int n);
void al_eval_records_free(struct al_eval_records *records);

/* ---- output (src/eval/evaluate_report.c) ---- */

/* One item as a JSON object: record, id, label ("harmful" | "benign"), category, prompt,
 * prefix, completion, completion_tokens, stop, verdict {refusal, judge, reason},
 * tool_calls [{name, arguments, malformed}], score {has_call, has_reference, name_match,
 * arguments_valid, argument_share, refusal, score, full, problem}. NULL on no memory. */
struct cJSON *al_eval_item_to_json(const struct al_eval_item *item);
/* {"label", "prefix", "judge", "items": n, "aggregate": {...}, "combined_score"}. */
struct cJSON *al_eval_report_to_json(const struct al_eval_report *report);
/* {"judge", "reports": [report, ...]}: every report of one evaluation run. */
int al_eval_reports_write_json(const struct al_eval_report *reports, int n, const char *path);
/* One line per item of every report, each with "run" (the report's label) added. */
int al_eval_samples_write_jsonl(const struct al_eval_report *reports, int n, const char *path);

/* The report's label, judge and aggregate table. */
void al_eval_report_print(const struct al_eval_report *report, FILE *out);
/* Two reports side by side: one row per split and category, each column pair (a, b) and
 * the difference b - a, rates in percent. */
void al_eval_reports_print_side_by_side(const struct al_eval_report *a, const struct al_eval_report *b, FILE *out);
/* Every report in one table, one column per report (numbered, with a legend): harmful
 * refusal rate; for benign items the share that made a tool call, called the reference's
 * tool, did so with valid arguments, the score, the full score and the over-refusal rate;
 * and the combined score, all in percent. */
void al_eval_reports_print_summary(const struct al_eval_report *reports, int n, FILE *out);

#endif
