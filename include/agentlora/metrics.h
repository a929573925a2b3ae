/* Training metrics, written beside the checkpoints of a run (<output_dir>/<run_name>/):
 *
 * - metrics.jsonl: one JSON object per line and per logged step or evaluation,
 *   {"kind": "train", "step": 12, "wall_time": 1732333333.25, "loss": 2.31, "lr": 0.0002, ...},
 *   flushed after every line so a killed run loses nothing already logged;
 * - TensorBoard event files (events.out.tfevents.<time>.<host>.<pid>): the same values as
 *   scalars tagged "<kind>/<name>" ("train/loss"), so `tensorboard --logdir <output_dir>`
 *   draws the curves.
 *
 * Resuming: records after the resumed step came from the part of a killed run that is
 * redone, so they are dropped from metrics.jsonl, and a SessionLog START event at the
 * resumed step tells TensorBoard to discard its own copies of them. */
#ifndef AGENTLORA_METRICS_H
#define AGENTLORA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "agentlora/work_progress.h" /* al_format_duration, al_status_line_open */

struct al_metric {
    const char *name;
    double value;
};

/* ---- metrics.jsonl + TensorBoard, as the training loop uses them ---- */

struct al_metrics_log;

/* resume_step < 0: a fresh run (any old metrics.jsonl is replaced); otherwise the run
 * continues after resume_step. */
struct al_metrics_log *al_metrics_open(const char *run_dir, int64_t resume_step);
/* kind: "train" or "eval" (any short word). Non-finite values are written as null in
 * JSON and skipped in TensorBoard. */
int al_metrics_write(struct al_metrics_log *log, const char *kind, int64_t step, const struct al_metric *metrics,
                     int count);
/* The same, with "judge": NAME in the metrics.jsonl record (NULL: none): numbers made
 * from a judge's verdicts (refusal rates) always say which judge made them. */
int al_metrics_write_judged(struct al_metrics_log *log, const char *kind, int64_t step, const char *judge,
                            const struct al_metric *metrics, int count);
void al_metrics_close(struct al_metrics_log *log);

/* Seconds since the epoch, with sub-second precision (the wall_time of records). */
double al_wall_time(void);

/* ---- what a person reads: the progress line and the end-of-run summary ---- */

struct al_progress {
    int64_t step;               /* optimizer steps completed */
    int64_t total_steps;
    int64_t session_first_step; /* the step this process started from (0, or the resumed step) */
    double session_seconds;     /* time this process has trained: the ETA extrapolates it */
    double loss, lr, grad_norm;
    double tokens_per_second;
};

/* One line, no newline:
 *   plain: "step 12/100 | loss 2.3456 | lr 1.20e-04 | grad 0.871 | 1234 tok/s | eta 7m35s"
 *   bar:   "[####----------------]  12% " followed by the same fields, for a terminal that
 *          redraws the line with '\r'.
 * The ETA is "?" until this process has completed a step. */
void al_progress_format(char *out, size_t size, const struct al_progress *progress, int with_bar);

struct al_run_summary {
    int64_t steps;
    int64_t total_steps;      /* the steps the run was planned for */
    int64_t session_steps;    /* steps this process trained (fewer than steps after a resume) */
    int64_t updates_applied;  /* of those, steps with a finite update at a non-zero learning rate */
    int64_t tokens;
    double seconds;
    double final_loss;        /* the last step's training loss */
    double best_loss;         /* the lowest evaluation loss; NAN when nothing was evaluated */
    int64_t best_step;        /* the step that evaluation was made at */
    int64_t skipped_steps;    /* non-finite gradients */
    int interrupted_by;       /* SIGINT or SIGTERM when the run stopped early on a signal, else 0 */
    const char *adapter_path; /* the final checkpoint (a PEFT adapter folder) */
    int rank;                 /* this process's rank in a data-parallel run (0 alone): rank 0 reports */
};

/* The lowest value of metric `name` among the records of `kind` in run_dir/metrics.jsonl,
 * and their step. 1: found; 0: no such record (or no file); -1: error. */
int al_metrics_lowest(const char *run_dir, const char *kind, const char *name, double *value, int64_t *step);

/* The multi-line end-of-run summary ("training finished", or "training interrupted" with
 * the step it stopped at); the caller frees. */
char *al_run_summary_format(const struct al_run_summary *summary);

/* ---- the TensorBoard event file on its own ----
 * TFRecord framing: uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
 * the data, uint32 masked CRC-32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
 * Each record is a tensorflow.Event protobuf (event.proto: wall_time = 1 double,
 * step = 2 int64, file_version = 3 string, summary = 5, session_log = 7), a Summary holding
 * repeated Value (= 1) of tag (= 1 string) and simple_value (= 2 float). */

struct al_tfevents;

/* Creates dir/events.out.tfevents.<time>.<host>.<pid> and writes the file_version event. */
struct al_tfevents *al_tfevents_open(const char *dir);
const char *al_tfevents_path(const struct al_tfevents *events);
/* One Event with a Summary of count simple values. */
int al_tfevents_write_scalars(struct al_tfevents *events, double wall_time, int64_t step, const char *const *tags,
                              const float *values, int count);
/* A SessionLog START at step: TensorBoard drops what it holds for later steps. */
int al_tfevents_write_restart(struct al_tfevents *events, double wall_time, int64_t step);
void al_tfevents_close(struct al_tfevents *events);

uint32_t al_tfrecord_masked_crc(const void *data, size_t size);

#endif
