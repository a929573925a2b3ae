/* Runs that cannot learn, caught before they waste the time: no step with a non-zero
 * learning rate (refused), warmup that covers every step and eval_every without eval
 * records (warned), and, afterwards, a run whose steps never changed the adapter. */
#ifndef AGENTLORA_TRAIN_LEARNABILITY_H
#define AGENTLORA_TRAIN_LEARNABILITY_H

#include <stdint.h>

#include "agentlora/schedule.h"

struct al_learnability {
    const struct al_schedule *schedule;
    int64_t updates_done; /* optimizer updates before this process (a resumed run) */
    int64_t steps_left;   /* steps this process will train */
    int64_t total_steps;
    int64_t eval_every;
    int eval_records;
};

/* -1 (with the reason and what to change) when no step left has a non-zero learning
 * rate; warnings on the log for the rest; 0 otherwise. */
int al_learnability_check(const struct al_learnability *plan);

/* A loud warning when none of `steps` changed the adapter. */
void al_learnability_warn_if_unchanged(int64_t updates_applied, int64_t steps);

#endif
