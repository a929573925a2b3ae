/* Shared by the checkpoint files of src/train: the file names of a checkpoint and the
 * steps that write and read them. */
#ifndef AGENTLORA_CHECKPOINT_INTERNAL_H
#define AGENTLORA_CHECKPOINT_INTERNAL_H

#include <stdint.h>

#include "agentlora/checkpoint.h"

#define CHECKPOINT_PREFIX "checkpoint-"
#define CHECKPOINT_MANIFEST "MANIFEST"
#define CHECKPOINT_OPTIMIZER "optimizer.safetensors"
#define CHECKPOINT_STATE "trainer_state.json"
#define CHECKPOINT_LATEST "latest"

/* Every file a complete checkpoint holds besides the MANIFEST, in the MANIFEST's order. */
extern const char *const al_checkpoint_files[];
extern const int al_checkpoint_file_count;

/* Writes dir/MANIFEST listing size and CRC-32C of each of al_checkpoint_files. */
int al_checkpoint_write_manifest(const char *dir, int64_t step);

/* dir/optimizer.safetensors and dir/trainer_state.json. */
int al_checkpoint_write_optimizer(const char *dir, const struct al_lora *lora, const struct al_optimizer *optimizer);
int al_checkpoint_write_state(const char *dir, const struct al_checkpoint_save_args *args);

/* rm -rf; a missing path is not an error. */
int al_remove_tree(const char *path);
/* rm -rf while an error is being reported: the error recorded before stays the one the
 * user sees; a failure to remove is only a warning. */
void al_remove_tree_after_failure(const char *path);

/* Room for the text of al_error_message(). */
#define AL_ERROR_MESSAGE_MAX 2048

#endif
