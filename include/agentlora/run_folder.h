/* The run folder <output_dir>/<run_name> of a training run, made safe to use:
 *
 *   - one process at a time: the run holds an flock on <run folder>/run.lock for its whole
 *     life, and writes its pid, host and start time into that file. A second `train` on
 *     the same folder is refused at once with those details. The lock dies with its
 *     process (SIGKILL included), so a killed run never blocks `--resume auto`. On a
 *     file system without flock the run goes on with a warning.
 *   - debris of killed processes (checkpoint-<step>.tmp / .deleting / .old,
 *     latest.tmp.<pid>, ...) is cleaned when the next run takes the lock.
 *   - a fresh run (resume empty) into a folder that holds checkpoints is refused, naming
 *     --resume auto and another run_name, unless overwrite is set: then what belonged to
 *     the previous run is deleted, and the log says what.
 *   - a start that fails leaves no folder behind that it created itself. */
#ifndef AGENTLORA_RUN_FOLDER_H
#define AGENTLORA_RUN_FOLDER_H

#include <stdbool.h>

#include "agentlora/train_config.h"

#define AL_RUN_LOCK_FILE "run.lock"

struct al_run_folder {
    char *path;     /* <output_dir>/<run_name> */
    int lock_fd;    /* the open run.lock holding the flock; -1 when not held */
    bool created;   /* this process made the folder: a failed start removes it again */
};

/* Creates the folder when missing, takes the lock, cleans debris and applies the
 * fresh-run rule above. On failure nothing is held and no folder this call created is
 * left behind. */
int al_run_folder_open(struct al_run_folder *folder, const struct al_train_config *config);

/* Releases the lock and frees the path. With start_failed, a folder that this process
 * created is removed first (with whatever the failed start wrote into it). */
void al_run_folder_close(struct al_run_folder *folder, bool start_failed);

#endif
