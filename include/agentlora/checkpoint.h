/* Training checkpoints: everything needed to continue a run bit for bit.
 *
 * Layout of a run folder (<output_dir>/<run_name>/):
 *   checkpoint-<step>/              one per saved step
 *     adapter_config.json           \ a PEFT adapter: the folder loads in PEFT as is
 *     adapter_model.safetensors     /
 *     optimizer.safetensors         fp32 "params", "exp_avg" (m), "exp_avg_sq" (v), each [num_params]
 *     trainer_state.json            step, counters, RNG states, data cursor, schedule, config
 *     MANIFEST                      size and CRC-32C of every other file; written last
 *   latest                          "checkpoint-<step>": the newest complete checkpoint
 *   run.lock                        held (flock) by the run using the folder (run_folder.h)
 *
 * Crash safety: a checkpoint is written under checkpoint-<step>.tmp, every file fsynced
 * (al_file_write_atomic), the folder fsynced and renamed, the run folder fsynced, and only
 * then `latest` replaced atomically. A folder whose name is not exactly checkpoint-<digits>
 * (a leftover .tmp) is never read. Loading checks the MANIFEST's own checksum, then every
 * file's size and checksum, and refuses a checkpoint that fails any check.
 *
 * 64-bit integers (RNG states, counters) are stored in JSON as decimal strings: a JSON
 * number is a double and would lose their low bits. */
#ifndef AGENTLORA_CHECKPOINT_H
#define AGENTLORA_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "agentlora/rng.h"
#include "agentlora/schedule.h"
#include "agentlora/train_config.h"

struct cJSON;
struct al_lora;
struct al_optimizer;

#define AL_CHECKPOINT_MAX_RNGS 8
#define AL_CHECKPOINT_RNG_NAME_MAX 32

struct al_named_rng {
    char name[AL_CHECKPOINT_RNG_NAME_MAX];
    struct al_rng rng;
};

/* The loop's own state. Pointers are borrowed when saving; after al_checkpoint_load they
 * belong to the struct al_checkpoint that holds them. */
struct al_trainer_state {
    int64_t step;                 /* training steps completed: the checkpoint's number */
    int64_t tokens_seen;
    double elapsed_seconds;
    struct al_named_rng rngs[AL_CHECKPOINT_MAX_RNGS];
    int num_rngs;
    struct cJSON *data_cursor;    /* opaque JSON object from the data pipeline (may be NULL) */
    double *loss_history;         /* one training loss per step, or NULL */
    int64_t loss_history_count;
    int64_t ranks;                /* processes that trained it together (data parallel); 1 alone */
};

struct al_checkpoint_save_args {
    const char *run_dir;                     /* <output_dir>/<run_name> */
    const struct al_train_config *config;    /* saved whole; keep_last and model are read from it */
    const struct al_trainer_state *state;
    const struct al_schedule *schedule;
    const struct al_lora *lora;
    const struct al_optimizer *optimizer;
};

/* A checkpoint read back into host memory. */
struct al_checkpoint {
    char *path;
    struct al_trainer_state state;
    struct al_train_config config;
    struct al_schedule schedule;
    int64_t optimizer_updates;
    int64_t nonfinite_total;
    int64_t nonfinite_consecutive;
    int64_t num_params;
    float *params, *m, *v; /* [num_params] each */
};

/* <output_dir>/<run_name>; the caller frees. */
char *al_run_dir(const struct al_train_config *config);

/* Writes checkpoint-<state->step>, moves `latest` to it, then keeps the newest
 * config->keep_last checkpoints. *saved_path (optional) receives its folder (caller frees). */
int al_checkpoint_save(const struct al_checkpoint_save_args *args, char **saved_path);
/* The same, and keep-last-K never deletes the checkpoints of the protected steps (the best
 * one so far, say); protected_steps may be NULL when n_protected is 0. */
int al_checkpoint_save_protecting(const struct al_checkpoint_save_args *args, const int64_t *protected_steps,
                                  int n_protected, char **saved_path);

/* Checks the MANIFEST and every file it lists; the error says what is wrong. */
int al_checkpoint_verify(const char *checkpoint_dir);

/* Verifies, then reads the trainer state, config and optimizer tensors. */
int al_checkpoint_load(struct al_checkpoint *checkpoint, const char *checkpoint_dir);
void al_checkpoint_release(struct al_checkpoint *checkpoint);

/* Uploads the parameters and moments and restores the optimizer's counters. */
int al_checkpoint_restore(const struct al_checkpoint *checkpoint, struct al_lora *lora,
                          struct al_optimizer *optimizer);

/* `resume auto`: the checkpoint `latest` names when it verifies; otherwise (with a
 * warning) the newest checkpoint that does. *path is NULL when the run has no checkpoint
 * at all (a fresh start); -1 when there are checkpoints but none is intact. */
int al_checkpoint_find_resume(const char *run_dir, char **path);

/* Removes what killed processes leave in a run folder: checkpoint-<step>.tmp,
 * .deleting and .old folders (an .old one whose checkpoint-<step> is missing is renamed
 * back instead: it is that step's only copy) and the temporary files of atomic writes
 * (<name>.tmp.<pid>, e.g. latest.tmp.<pid>). What cannot be removed is left with a
 * warning. Only for a run folder no live process writes to (hold its lock). Returns how
 * many entries were removed, -1 when the folder cannot be listed. */
int al_checkpoint_clean_leftovers(const char *run_dir);

/* Deletes all but the newest keep checkpoints (never the one `latest` names) and any
 * leftovers (al_checkpoint_clean_leftovers). A checkpoint that cannot be deleted is a
 * warning, not an error: it stays, and the newer ones are safe. */
int al_checkpoint_prune(const char *run_dir, int64_t keep);
/* The same, also never deleting the checkpoints of the protected steps (they do not count
 * against keep: the newest keep others are kept too). */
int al_checkpoint_prune_protecting(const char *run_dir, int64_t keep, const int64_t *protected_steps,
                                   int n_protected);

/* The steps of the complete-looking checkpoint folders of a run (names
 * checkpoint-<digits>), ascending; *steps is malloc'd (NULL when none). */
int al_checkpoint_list(const char *run_dir, int64_t **steps, int *count);

/* CRC-32C (Castagnoli), as TFRecord and the MANIFEST use it. update() continues a running
 * checksum: al_crc32c_update(al_crc32c(a), b) == al_crc32c(a followed by b). */
uint32_t al_crc32c(const void *data, size_t size);
uint32_t al_crc32c_update(uint32_t crc, const void *data, size_t size);

#endif
