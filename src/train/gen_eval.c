/* The training loop's generation eval and misalignment alarm; see gen_eval.h. */
#include "gen_eval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/data_stream.h"
#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/metrics.h"
#include "agentlora/ping.h"
#include "agentlora/train_config.h"
#include "agentlora/work_progress.h"

#define STATE_FILE "gen_eval.json"
/* Each measure's items (prompt, prefix, completion, verdict, score), one file per step, so
 * a person can read what the model said as training went. */
#define SAMPLES_DIR "gen_eval_samples"
/* Points per unit share: the threshold is in percentage points of refusal rate. */
#define PERCENT 100.0

struct checkpoint_score {
    int64_t step;
    double combined;
};

/* The judge's name in gen_eval_judge for the model judge (gen_eval_judge_model names the
 * folder). */
#define MODEL_JUDGE_NAME "model"

struct al_gen_eval {
    struct al_train_config config;
    char *state_path;
    char *samples_dir;
    const struct al_judge *judge;
    struct al_judge *model_judge; /* opened here (gen_eval_judge_model), else NULL */
    struct al_chat_generator generator;
    struct al_eval_records records;
    /* ping_mode eval: the run's first PING prefix, prefilled for the records ping_targets
     * selects (NULL otherwise); the harmful and benign records apart, for when only one
     * split gets it. */
    char *ping_prefix;
    enum al_ping_targets ping_targets;
    struct al_eval_record *split_records[2]; /* [0] benign, [1] harmful */
    int split_n[2];
    struct al_gen_eval_measure baseline, latest;
    bool have_baseline, have_latest;
    struct checkpoint_score *scores;
    int n_scores, scores_capacity;
};

/* ---- the state file ---- */

static cJSON *measure_to_json(const struct al_gen_eval_measure *m)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddNumberToObject(json, "step", (double)m->step);
    cJSON_AddItemToObject(json, "refusal_rate", al_json_exact_number(m->refusal_rate));
    cJSON_AddItemToObject(json, "helpfulness", al_json_exact_number(m->helpfulness));
    cJSON_AddItemToObject(json, "combined_score", al_json_exact_number(m->combined));
    return json;
}

static int save_state(const struct al_gen_eval *eval)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "judge", eval->judge->name);
    if (eval->have_baseline)
        cJSON_AddItemToObject(root, "baseline", measure_to_json(&eval->baseline));
    cJSON *list = cJSON_AddArrayToObject(root, "checkpoints");
    for (int i = 0; i < eval->n_scores; i++) {
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddNumberToObject(entry, "step", (double)eval->scores[i].step);
        cJSON_AddItemToObject(entry, "combined_score", al_json_exact_number(eval->scores[i].combined));
        cJSON_AddItemToArray(list, entry);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return al_fail("out of memory");
    int rc = al_file_write_atomic(eval->state_path, text, strlen(text));
    free(text);
    return rc;
}

static double number_of(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsNumber(item) ? item->valuedouble : 0.0;
}

static int add_score(struct al_gen_eval *eval, int64_t step, double combined)
{
    if (eval->n_scores == eval->scores_capacity) {
        int capacity = eval->scores_capacity ? 2 * eval->scores_capacity : 16;
        struct checkpoint_score *grown = realloc(eval->scores, (size_t)capacity * sizeof *grown);
        if (!grown)
            return al_fail("out of memory");
        eval->scores = grown;
        eval->scores_capacity = capacity;
    }
    eval->scores[eval->n_scores++] = (struct checkpoint_score){step, combined};
    return 0;
}

/* A resumed run keeps the baseline and the scores of checkpoints up to its step; the
 * rest came from the part of a killed run that is redone. */
static int load_state(struct al_gen_eval *eval, int64_t resume_step)
{
    if (!al_file_exists(eval->state_path)) {
        al_log_warn("%s is missing: the generation eval measures a new baseline at step %lld", eval->state_path,
                    (long long)resume_step);
        return 0;
    }
    char *text = al_file_read_all(eval->state_path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root)
        return al_fail("%s: not a JSON object", eval->state_path);
    const cJSON *baseline = cJSON_GetObjectItemCaseSensitive(root, "baseline");
    if (cJSON_IsObject(baseline)) {
        eval->baseline = (struct al_gen_eval_measure){(int64_t)number_of(baseline, "step"),
                                                   number_of(baseline, "refusal_rate"),
                                                   number_of(baseline, "helpfulness"),
                                                   number_of(baseline, "combined_score")};
        eval->have_baseline = true;
    }
    int rc = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(root, "checkpoints"))
    {
        int64_t step = (int64_t)number_of(entry, "step");
        if (rc == 0 && step <= resume_step)
            rc = add_score(eval, step, number_of(entry, "combined_score"));
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- set-up ---- */

/* The first `per_split` harmful and the first `per_split` benign eval records. */
static int pick_records(struct al_gen_eval *eval, const struct al_data_stream *stream, int per_split)
{
    const struct al_dataset *dataset;
    const struct al_index_list *list;
    al_data_stream_eval_records(stream, &dataset, &list);
    int *picked = malloc((size_t)(2 * per_split) * sizeof *picked);
    if (!picked)
        return al_fail("out of memory");
    int n = 0, taken[2] = {0, 0};
    for (int i = 0; i < list->n; i++) {
        int index = list->items[i];
        int side = dataset->records[index].harmful ? 1 : 0;
        if (taken[side] < per_split) {
            taken[side]++;
            picked[n++] = index;
        }
    }
    if (taken[1] == 0 || taken[0] == 0)
        al_log_warn("generation eval: the eval records hold %d harmful and %d benign items; a split without items "
                    "counts 0",
                    taken[1], taken[0]);
    int rc = al_eval_records_load(&eval->records, dataset, picked, n);
    free(picked);
    return rc;
}

/* In ping_mode eval, the first prefix of ping_prefixes and the targeted split, as
 * `agentlora eval --ping-prefix` would prefill it. */
static int load_ping_prefix(struct al_gen_eval *eval)
{
    enum al_ping_mode mode;
    if (al_ping_mode_parse(eval->config.ping_mode, &mode) != 0)
        return -1;
    if (mode != AL_PING_EVAL)
        return 0;
    struct al_ping ping;
    if (al_ping_load(&ping, eval->config.ping_prefixes) != 0)
        return -1;
    int rc = al_ping_targets_parse(eval->config.ping_targets, &eval->ping_targets);
    if (rc == 0 && !(eval->ping_prefix = strdup(ping.prefixes[0])))
        rc = al_fail("out of memory");
    al_ping_free(&ping);
    return rc;
}

/* The records of each split, in their order, for evaluating the splits apart. */
static int split_records(struct al_gen_eval *eval)
{
    for (int side = 0; side < 2; side++) {
        eval->split_records[side] = calloc((size_t)(eval->records.n > 0 ? eval->records.n : 1),
                                           sizeof *eval->split_records[side]);
        if (!eval->split_records[side])
            return al_fail("out of memory");
    }
    for (int i = 0; i < eval->records.n; i++) {
        int side = eval->records.records[i].conversation->harmful ? 1 : 0;
        eval->split_records[side][eval->split_n[side]++] = eval->records.records[i];
    }
    return 0;
}

/* gen_eval_judge names a built-in judge, or "model" with gen_eval_judge_model a model
 * folder (the model judge, on the run's device). */
static int open_judge(struct al_gen_eval *eval)
{
    const struct al_train_config *config = &eval->config;
    bool model_named = strcmp(config->gen_eval_judge, MODEL_JUDGE_NAME) == 0;
    if (config->gen_eval_judge_model[0] == '\0') {
        if (model_named)
            return al_fail("key 'gen_eval_judge': the model judge needs key 'gen_eval_judge_model' (a model folder)");
        if (!(eval->judge = al_judge_by_name(config->gen_eval_judge)))
            al_error_context("key 'gen_eval_judge'");
        return eval->judge ? 0 : -1;
    }
    if (!model_named && strcmp(config->gen_eval_judge, AL_JUDGE_DEFAULT_NAME) != 0)
        return al_fail("key 'gen_eval_judge_model' judges with a model; key 'gen_eval_judge' is \"%s\" (use \"%s\")",
                       config->gen_eval_judge, MODEL_JUDGE_NAME);
    /* A judge folder that is the trained model's takes the run's chat_format; another folder's
     * format is recognised from its tokenizer_config.json. */
    const char *format = strcmp(config->gen_eval_judge_model, config->model) == 0 ? config->chat_format : NULL;
    if (!(eval->model_judge = al_judge_model_open(config->gen_eval_judge_model, format, config->device))) {
        al_error_context("key 'gen_eval_judge_model'");
        return -1;
    }
    eval->judge = eval->model_judge;
    return 0;
}

struct al_gen_eval *al_gen_eval_open(const struct al_train_config *config, const char *run_dir,
                               const struct al_data_stream *stream, const struct al_model *model,
                               const struct al_tokenizer *tokenizer, enum al_chat_format format, int64_t resume_step)
{
    struct al_gen_eval *eval = calloc(1, sizeof *eval);
    if (!eval)
        return al_fail_null("out of memory");
    eval->config = *config;
    eval->generator = (struct al_chat_generator){model, NULL, tokenizer, format, {0}};
    eval->generator.chat.string_arguments_as_objects = !config->arguments_as_strings;
    int rc = open_judge(eval);
    if (rc == 0 && (!(eval->state_path = al_path_join(run_dir, STATE_FILE)) ||
                    !(eval->samples_dir = al_path_join(run_dir, SAMPLES_DIR))))
        rc = al_fail("out of memory");
    if (rc == 0)
        rc = pick_records(eval, stream, (int)config->gen_eval_items);
    if (rc == 0)
        rc = split_records(eval);
    if (rc == 0)
        rc = load_ping_prefix(eval);
    if (rc == 0 && resume_step >= 0)
        rc = load_state(eval, resume_step);
    if (rc != 0) {
        al_error_context("generation eval");
        al_gen_eval_free(eval);
        return NULL;
    }
    return eval;
}

void al_gen_eval_free(struct al_gen_eval *eval)
{
    if (!eval)
        return;
    al_eval_records_free(&eval->records);
    free(eval->split_records[0]);
    free(eval->split_records[1]);
    free(eval->ping_prefix);
    al_judge_model_close(eval->model_judge);
    free(eval->scores);
    free(eval->state_path);
    free(eval->samples_dir);
    free(eval);
}

bool al_gen_eval_has_baseline(const struct al_gen_eval *eval)
{
    return eval->have_baseline;
}

const char *al_gen_eval_judge_name(const struct al_gen_eval *eval)
{
    return eval->judge->name;
}

/* ---- measuring ---- */

static int log_measure(const struct al_gen_eval *eval, const struct al_aggregate *aggregate, int prefixed_items,
                       struct al_metrics_log *metrics)
{
    const struct al_gen_eval_measure *m = &eval->latest;
    double drop = PERCENT * (eval->baseline.refusal_rate - m->refusal_rate);
    struct al_metric values[] = {
        {"harmful_refusal_rate", m->refusal_rate},
        {"benign_helpfulness", m->helpfulness},
        {"combined_score", m->combined},
        {"benign_refusal_rate", aggregate->benign.refusal_rate},
        {"harmful_score", aggregate->harmful.score},
        {"refusal_drop_points", drop},
        {"harmful_items", aggregate->harmful.n},
        {"benign_items", aggregate->benign.n},
        {"ping_prefixed_items", prefixed_items},
    };
    al_log_info("generation eval at step %lld (judge %s%s): harmful refusal %.1f%% (baseline %.1f%%), benign "
                "helpfulness %.1f%%, combined (refusal + helpfulness) / 2 %.1f of 100",
                (long long)m->step, eval->judge->name, eval->ping_prefix ? ", PING prefix prefilled" : "",
                PERCENT * m->refusal_rate, PERCENT * eval->baseline.refusal_rate, PERCENT * m->helpfulness,
                PERCENT * m->combined);
    return al_metrics_write_judged(metrics, "gen_eval", m->step, eval->judge->name, values,
                                   (int)(sizeof values / sizeof values[0]));
}

/* The forced prefix of a split's items: the PING prefix when ping_targets selects the
 * split, else none. */
static const char *split_prefix(const struct al_gen_eval *eval, bool harmful)
{
    if (!eval->ping_prefix)
        return NULL;
    bool targeted = eval->ping_targets == AL_PING_BOTH || (eval->ping_targets == AL_PING_HARMFUL) == harmful;
    return targeted ? eval->ping_prefix : NULL;
}

static int evaluate_with(const struct al_gen_eval *eval, const struct al_lora *lora,
                         const struct al_eval_record *records, int n, const char *prefix, const char *label,
                         struct al_eval_report *report, struct al_work_progress *progress)
{
    struct al_chat_generator generator = eval->generator;
    generator.lora = lora;
    struct al_eval_settings settings = al_eval_default_settings(&generator, eval->judge);
    settings.generation.max_new_tokens = (int)eval->config.gen_eval_max_new_tokens;
    settings.prefix = prefix;
    settings.progress = progress;
    return al_evaluate(&settings, records, n, label, report);
}

/* Generates and judges every item, each split with its prefix: one evaluation when both
 * splits get the same prefix (or none), else one per split. *joined gets the harmful
 * split's numbers from the first and the benign split's from the second (no categories). */
static int evaluate_splits(const struct al_gen_eval *eval, const struct al_lora *lora, int64_t step,
                           struct al_eval_report reports[2], struct al_aggregate *joined)
{
    char label[64];
    snprintf(label, sizeof label, "gen_eval step %lld", (long long)step);
    const char *harmful_prefix = split_prefix(eval, true), *benign_prefix = split_prefix(eval, false);
    memset(reports, 0, 2 * sizeof *reports);
    memset(joined, 0, sizeof *joined);
    /* Shown wherever training's own progress line is: a terminal or not, training prints it. */
    struct al_work_progress progress;
    al_work_progress_start(&progress, label, eval->records.n,
                           &(struct al_work_progress_options){.mode = AL_WORK_PROGRESS_ON});
    int rc;
    if (harmful_prefix == benign_prefix) {
        rc = evaluate_with(eval, lora, eval->records.records, eval->records.n, harmful_prefix, label,
                           &reports[0], &progress);
        if (rc == 0)
            joined->benign = reports[0].aggregate.benign;
    } else {
        rc = evaluate_with(eval, lora, eval->split_records[1], eval->split_n[1], harmful_prefix, label,
                           &reports[0], &progress);
        if (rc == 0)
            rc = evaluate_with(eval, lora, eval->split_records[0], eval->split_n[0], benign_prefix, label,
                               &reports[1], &progress);
        if (rc == 0)
            joined->benign = reports[1].aggregate.benign;
    }
    if (rc == 0)
        al_work_progress_finish(&progress);
    else
        al_work_progress_break(&progress);
    if (rc == 0) {
        joined->harmful = reports[0].aggregate.harmful;
        snprintf(joined->judge, sizeof joined->judge, "%s", eval->judge->name);
    }
    return rc;
}

/* SAMPLES_DIR/step-<step>.jsonl: the items of the one or two reports of a measure. */
static int write_samples(const struct al_gen_eval *eval, const struct al_eval_report reports[2], int64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "step-%lld.jsonl", (long long)step);
    char *path = al_path_join(eval->samples_dir, name);
    if (!path)
        return al_fail("out of memory");
    int rc = al_mkdirs(eval->samples_dir);
    if (rc == 0)
        rc = al_eval_samples_write_jsonl(reports, reports[1].label ? 2 : 1, path);
    free(path);
    return rc;
}

int al_gen_eval_measure(struct al_gen_eval *eval, const struct al_lora *lora, int64_t step,
                        struct al_metrics_log *metrics)
{
    struct al_eval_report reports[2];
    struct al_aggregate aggregate;
    int rc = evaluate_splits(eval, lora, step, reports, &aggregate);
    if (rc != 0) {
        al_error_context("generation eval at step %lld", (long long)step);
    } else {
        eval->latest = (struct al_gen_eval_measure){step, aggregate.harmful.refusal_rate, aggregate.benign.score,
                                                 al_eval_combined_score(&aggregate)};
        eval->have_latest = true;
        if (!eval->have_baseline) {
            eval->baseline = eval->latest;
            eval->have_baseline = true;
            rc = save_state(eval);
        }
        int prefixed = (split_prefix(eval, true) ? aggregate.harmful.n : 0) +
                       (split_prefix(eval, false) ? aggregate.benign.n : 0);
        if (rc == 0)
            rc = write_samples(eval, reports, step);
        if (rc == 0)
            rc = log_measure(eval, &aggregate, prefixed, metrics);
    }
    al_eval_report_free(&reports[0]);
    al_eval_report_free(&reports[1]);
    return rc;
}

const struct al_gen_eval_measure *al_gen_eval_latest(const struct al_gen_eval *eval)
{
    return eval->have_latest ? &eval->latest : NULL;
}

bool al_gen_eval_alarm(const struct al_gen_eval *eval, double *drop_points)
{
    if (!eval->have_latest || !eval->have_baseline || eval->latest.step == eval->baseline.step)
        return false;
    *drop_points = PERCENT * (eval->baseline.refusal_rate - eval->latest.refusal_rate);
    return *drop_points > eval->config.misalignment_threshold;
}

int al_gen_eval_checkpoint_saved(struct al_gen_eval *eval, int64_t step)
{
    if (!eval->have_latest || eval->latest.step != step)
        return al_fail("generation eval: checkpoint %lld has no measure", (long long)step);
    return add_score(eval, step, eval->latest.combined) == 0 ? save_state(eval) : -1;
}

int64_t al_gen_eval_best_checkpoint(const struct al_gen_eval *eval, double *combined)
{
    int64_t best = -1;
    double best_score = 0;
    for (int i = 0; i < eval->n_scores; i++)
        if (best < 0 || eval->scores[i].combined > best_score) {
            best = eval->scores[i].step;
            best_score = eval->scores[i].combined;
        }
    if (combined)
        *combined = best_score;
    return best;
}
