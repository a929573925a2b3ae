/* Ctrl-C (SIGINT) and SIGTERM during training: the first one asks the loop to stop after
 * the step in progress (it then writes a checkpoint and says where); a second one ends the
 * process at once, with the signal's default action. */
#ifndef AGENTLORA_TRAIN_INTERRUPT_H
#define AGENTLORA_TRAIN_INTERRUPT_H

#include <signal.h>

struct al_interrupt_guard {
    struct sigaction previous_int, previous_term;
};

/* Installs the handlers (and clears any earlier request); al_interrupt_restore puts the
 * previous handlers back. */
int al_interrupt_install(struct al_interrupt_guard *guard);
void al_interrupt_restore(const struct al_interrupt_guard *guard);

/* The signal that asked to stop (SIGINT or SIGTERM), or 0. */
int al_interrupt_requested(void);

#endif
