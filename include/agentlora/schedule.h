/* Learning-rate schedules with linear warmup: constant, linear decay and cosine decay.
 *
 * The formulas are exactly those of Hugging Face transformers (optimization.py), so a run
 * here and a run with the Trainer see the same learning rates. With s the number of
 * optimizer updates already applied (0 for the first update: the schedule is queried
 * before the step, as LambdaLR is read before scheduler.step()), W warmup steps and T
 * total steps, lr(s) = peak * f(s) where
 *
 *   warmup (s < W):  f = s / max(1, W)                       (all three kinds)
 *   constant:        f = 1
 *   linear:          f = max(0, (T - s) / max(1, T - W))
 *   cosine:          p = (s - W) / max(1, T - W);  f = max(0, 0.5 * (1 + cos(pi * p)))
 *
 * so with warmup the very first update has lr 0, as in transformers. Past T the cosine
 * rises again (also as in transformers); a run never gets there.
 * Warmup steps from a ratio: ceil(T * ratio), as TrainingArguments.get_warmup_steps. */
#ifndef AGENTLORA_SCHEDULE_H
#define AGENTLORA_SCHEDULE_H

#include <stdint.h>

enum al_schedule_kind {
    AL_SCHEDULE_CONSTANT = 0,
    AL_SCHEDULE_LINEAR,
    AL_SCHEDULE_COSINE,
};

struct al_schedule {
    enum al_schedule_kind kind;
    double peak_lr;
    int64_t warmup_steps;
    int64_t total_steps;
};

/* "constant" | "linear" | "cosine"; -1 with an error listing them otherwise. */
int al_schedule_kind_parse(const char *name, enum al_schedule_kind *kind);
const char *al_schedule_kind_name(enum al_schedule_kind kind);

/* warmup_steps when it is positive, else ceil(total_steps * warmup_ratio). */
int64_t al_schedule_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio);

/* Fills a schedule after checking peak_lr > 0, total_steps > 0, 0 <= warmup_steps. */
int al_schedule_init(struct al_schedule *schedule, enum al_schedule_kind kind, double peak_lr,
                     int64_t total_steps, int64_t warmup_steps);

/* The learning rate for the update that follows `updates_done` applied updates. */
double al_schedule_lr(const struct al_schedule *schedule, int64_t updates_done);

#endif
