/* The training loop: a config in, a trained PEFT adapter (checkpoints, metrics,
 * TensorBoard events, a summary) out. */
#ifndef AGENTLORA_TRAINER_H
#define AGENTLORA_TRAINER_H

#include "agentlora/metrics.h"
#include "agentlora/train_config.h"

/* Runs (or resumes, per config->resume) a training run to its end. On success *summary
 * describes it; summary->adapter_path is malloc'd and the caller frees it with
 * al_trainer_summary_free. */
int al_train(const struct al_train_config *config, struct al_run_summary *summary);
void al_trainer_summary_free(struct al_run_summary *summary);

#endif
