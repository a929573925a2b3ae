/* The training loop's generation eval and misalignment alarm (src/train/gen_eval.c):
 * refusal rate on harmful eval items and helpfulness on benign ones, measured by
 * generating with the adapter as it is at step 0 (the baseline) and every gen_eval_every
 * steps, and at each checkpoint so that every checkpoint has a combined score
 * (refusal rate + helpfulness) by which the best one is named and protected from
 * keep-last-K.
 *
 * It reads the eval records and runs greedy decoding in evaluation mode (dropout off),
 * so it consumes no random number and no data-stream state of the training: a run with
 * it gives the same adapter as a run without it.
 *
 * In ping_mode eval the first prefix of ping_prefixes is prefilled after the assistant
 * header for the split ping_targets selects (harmful, benign or both) and kept out of
 * judging and scoring, as `agentlora eval --ping-prefix` does; the metrics line counts the
 * prefixed items (ping_prefixed_items). The judge is gen_eval_judge, or the model judge
 * loaded from gen_eval_judge_model.
 *
 * Its state (the baseline and the checkpoint scores) lives in <run_dir>/gen_eval.json, so a
 * resumed run keeps the step-0 baseline and knows its checkpoints' scores. Each measure's
 * items (prompt, prefix, completion, verdict, score) go to
 * <run_dir>/gen_eval_samples/step-<step>.jsonl. */
#ifndef AGENTLORA_TRAIN_GEN_EVAL_H
#define AGENTLORA_TRAIN_GEN_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/chat_template.h"

struct al_train_config;
struct al_data_stream;
struct al_model;
struct al_lora;
struct al_tokenizer;
struct al_metrics_log;

struct al_gen_eval;

struct al_gen_eval_measure {
    int64_t step;
    double refusal_rate; /* harmful items judged refusals, in [0, 1] */
    double helpfulness;  /* mean tool-use score of benign items, in [0, 1] */
    double combined;     /* (refusal_rate + helpfulness) / 2, in [0, 1] */
};

/* Picks the first gen_eval_items harmful and benign eval records (file order), loads
 * the judge and, in ping_mode eval, the PING prefix. resume_step < 0: a fresh run (any old state file is replaced); otherwise the
 * state saved up to resume_step is read back. */
struct al_gen_eval *al_gen_eval_open(const struct al_train_config *config, const char *run_dir,
                               const struct al_data_stream *stream, const struct al_model *model,
                               const struct al_tokenizer *tokenizer, enum al_chat_format format, int64_t resume_step);
void al_gen_eval_free(struct al_gen_eval *eval);

bool al_gen_eval_has_baseline(const struct al_gen_eval *eval);

/* Generates and judges with lora as it is now, logs kind "gen_eval" (with the judge's name)
 * to metrics, and keeps the result as the latest measure (and as the baseline when there
 * is none yet). */
int al_gen_eval_measure(struct al_gen_eval *eval, const struct al_lora *lora, int64_t step,
                        struct al_metrics_log *metrics);
/* The latest measure; NULL before the first. */
const struct al_gen_eval_measure *al_gen_eval_latest(const struct al_gen_eval *eval);

/* True when the latest measure's harmful refusal rate lies more than
 * misalignment_threshold points below the baseline's (never for the baseline itself). */
bool al_gen_eval_alarm(const struct al_gen_eval *eval, double *drop_points);

/* Records that the checkpoint of the latest measure's step was saved with that score. */
int al_gen_eval_checkpoint_saved(struct al_gen_eval *eval, int64_t step);
/* The saved checkpoint with the highest combined score (the earliest among equals); -1
 * when none has a score. */
int64_t al_gen_eval_best_checkpoint(const struct al_gen_eval *eval, double *combined);

const char *al_gen_eval_judge_name(const struct al_gen_eval *eval);

#endif
