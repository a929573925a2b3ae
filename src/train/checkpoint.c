/* Saving checkpoints crash-safely, finding the one to resume from, and pruning old ones.
 * The layout and the order of operations are described in checkpoint.h. */
#include "agentlora/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/lora.h"
#include "train/checkpoint_internal.h"

#define TEMP_SUFFIX ".tmp"
#define OLD_SUFFIX ".old"
#define DELETING_SUFFIX ".deleting"
/* nftw keeps at most this many directory descriptors open while it walks. */
#define REMOVE_TREE_OPEN_DIRS 16

char *al_run_dir(const struct al_train_config *config)
{
    char *dir = al_path_join(config->output_dir, config->run_name);
    return dir ? dir : al_fail_null("out of memory");
}

/* ---- removing folders ---- */

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
    (void)info, (void)type, (void)walk;
    return remove(path) == 0 ? 0 : -1;
}

int al_remove_tree(const char *path)
{
    if (!al_dir_exists(path) && !al_file_exists(path))
        return 0;
    if (nftw(path, remove_entry, REMOVE_TREE_OPEN_DIRS, FTW_DEPTH | FTW_PHYS) != 0)
        return al_fail_errno("%s: cannot remove", path);
    return 0;
}

void al_remove_tree_after_failure(const char *path)
{
    char reason[AL_ERROR_MESSAGE_MAX];
    snprintf(reason, sizeof reason, "%s", al_error_message());
    if (al_remove_tree(path) != 0)
        al_log_warn("%s", al_error_message());
    al_fail("%s", reason);
}

/* ---- listing ---- */

/* checkpoint-<digits> exactly: temporary and half-deleted folders never match. */
static bool parse_checkpoint_name(const char *name, int64_t *step)
{
    size_t prefix = strlen(CHECKPOINT_PREFIX);
    if (strncmp(name, CHECKPOINT_PREFIX, prefix) != 0 || name[prefix] == '\0')
        return false;
    for (const char *p = name + prefix; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    *step = strtoll(name + prefix, NULL, 10);
    return errno == 0;
}

static int compare_steps(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static char *checkpoint_path(const char *run_dir, int64_t step, const char *suffix)
{
    char *path = al_strdup_printf("%s/" CHECKPOINT_PREFIX "%" PRId64 "%s", run_dir, step, suffix);
    return path ? path : al_fail_null("out of memory");
}

int al_checkpoint_list(const char *run_dir, int64_t **steps, int *count)
{
    *steps = NULL;
    *count = 0;
    DIR *dir = opendir(run_dir);
    if (!dir)
        return errno == ENOENT ? 0 : al_fail_errno("%s: cannot list", run_dir);
    int capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        int64_t step;
        if (!parse_checkpoint_name(entry->d_name, &step))
            continue;
        char *path = al_path_join(run_dir, entry->d_name);
        bool is_dir = path && al_dir_exists(path);
        free(path);
        if (!is_dir)
            continue;
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            int64_t *grown = realloc(*steps, (size_t)capacity * sizeof **steps);
            if (!grown) {
                closedir(dir);
                free(*steps);
                *steps = NULL;
                return al_fail("out of memory");
            }
            *steps = grown;
        }
        (*steps)[(*count)++] = step;
    }
    closedir(dir);
    if (*count > 0)
        qsort(*steps, (size_t)*count, sizeof **steps, compare_steps);
    return 0;
}

/* ---- the `latest` pointer ---- */

/* The folder name `latest` holds, or NULL (no error) when there is no usable pointer. */
static char *read_latest(const char *run_dir)
{
    char *path = al_path_join(run_dir, CHECKPOINT_LATEST);
    char *text = path && al_file_exists(path) ? al_file_read_all(path, NULL) : NULL;
    free(path);
    if (!text)
        return NULL;
    text[strcspn(text, "\r\n")] = '\0';
    int64_t step;
    if (!parse_checkpoint_name(text, &step)) {
        al_log_warn("%s/latest holds '%s', not a checkpoint name; ignoring it", run_dir, text);
        free(text);
        return NULL;
    }
    return text;
}

static int write_latest(const char *run_dir, int64_t step)
{
    char *path = al_path_join(run_dir, CHECKPOINT_LATEST);
    char *text = al_strdup_printf(CHECKPOINT_PREFIX "%" PRId64 "\n", step);
    int rc = path && text ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(path);
    free(text);
    return rc;
}

/* ---- saving ---- */

static int write_contents(const char *dir, const struct al_checkpoint_save_args *args)
{
    const char *base_model = args->config->model[0] ? args->config->model : NULL;
    if (al_mkdirs(dir) != 0 || al_lora_save_peft(args->lora, dir, base_model) != 0 ||
        al_checkpoint_write_optimizer(dir, args->lora, args->optimizer) != 0 ||
        al_checkpoint_write_state(dir, args) != 0 || al_checkpoint_write_manifest(dir, args->state->step) != 0)
        return -1;
    return al_fsync_dir(dir);
}

/* Renames the finished temporary folder into place. A folder of the same step (left by a
 * run that crashed after saving it but before moving `latest`) is moved aside first. */
static int publish(const char *run_dir, const char *temp, const char *final, int64_t step)
{
    char *old = checkpoint_path(run_dir, step, OLD_SUFFIX);
    if (!old)
        return -1;
    int rc = 0;
    bool replaced = al_dir_exists(final);
    if (replaced)
        rc = al_remove_tree(old);
    if (rc == 0 && replaced && rename(final, old) != 0)
        rc = al_fail_errno("%s: cannot move aside", final);
    if (rc == 0 && rename(temp, final) != 0)
        rc = al_fail_errno("%s: cannot rename to %s", temp, final);
    if (rc == 0)
        rc = al_fsync_dir(run_dir);
    if (rc == 0)
        rc = write_latest(run_dir, step);
    if (rc == 0 && replaced)
        rc = al_remove_tree(old);
    free(old);
    return rc;
}

int al_checkpoint_save(const struct al_checkpoint_save_args *args, char **saved_path)
{
    return al_checkpoint_save_protecting(args, NULL, 0, saved_path);
}

int al_checkpoint_save_protecting(const struct al_checkpoint_save_args *args, const int64_t *protected_steps,
                                  int n_protected, char **saved_path)
{
    if (saved_path)
        *saved_path = NULL;
    int64_t step = args->state->step;
    if (step < 0)
        return al_fail("checkpoint: negative step %" PRId64, step);
    if (al_mkdirs(args->run_dir) != 0)
        return -1;
    char *temp = checkpoint_path(args->run_dir, step, TEMP_SUFFIX);
    char *final = checkpoint_path(args->run_dir, step, "");
    int rc = temp && final ? 0 : -1;
    if (rc == 0)
        rc = al_remove_tree(temp);
    /* A checkpoint that could not be written completely (a full disk, the file size
     * limit) is removed at once, to give the space back. */
    if (rc == 0 && (rc = write_contents(temp, args)) != 0)
        al_remove_tree_after_failure(temp);
    if (rc == 0)
        rc = publish(args->run_dir, temp, final, step);
    if (rc == 0)
        rc = al_checkpoint_prune_protecting(args->run_dir, args->config->keep_last, protected_steps, n_protected);
    if (rc != 0) {
        al_error_context("saving checkpoint %s", final ? final : "?");
    } else if (saved_path) {
        *saved_path = final;
        final = NULL;
    }
    free(temp);
    free(final);
    return rc;
}

/* ---- pruning ---- */

/* ".tmp.<digits>" at the end of a name: what al_file_write_atomic writes first
 * (latest.tmp.<pid>, metrics.jsonl.tmp.<pid>, ...). */
static bool is_atomic_write_temp(const char *name)
{
    const char *mark = strstr(name, ".tmp.");
    while (mark && strstr(mark + 1, ".tmp."))
        mark = strstr(mark + 1, ".tmp.");
    if (!mark || mark[5] == '\0')
        return false;
    for (const char *p = mark + 5; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* checkpoint-<step>.tmp / .old / .deleting: a save or deletion that did not finish. */
static bool is_checkpoint_leftover(const char *name)
{
    if (strncmp(name, CHECKPOINT_PREFIX, strlen(CHECKPOINT_PREFIX)) != 0)
        return false;
    const char *dot = strchr(name, '.');
    return dot && (strcmp(dot, TEMP_SUFFIX) == 0 || strcmp(dot, OLD_SUFFIX) == 0 || strcmp(dot, DELETING_SUFFIX) == 0);
}

/* A checkpoint moved aside by publish() whose replacement never arrived is the only copy
 * of that step: it goes back under its name instead of being deleted. */
static bool restore_moved_aside(const char *run_dir, const char *name, const char *path)
{
    const char *dot = strchr(name, '.');
    if (strcmp(dot, OLD_SUFFIX) != 0)
        return false;
    char *final = al_strdup_printf("%s/%.*s", run_dir, (int)(dot - name), name);
    bool restored = final && !al_dir_exists(final) && rename(path, final) == 0;
    if (restored)
        al_log_info("%s: restored %s, moved aside by a save that did not finish", run_dir, final);
    free(final);
    return restored;
}

/* Removes one leftover; a failure is a warning, not an error: the leftover's name is
 * never mistaken for a checkpoint, and the next start tries again. */
static void remove_leftover(const char *run_dir, const char *name, int *removed)
{
    char *path = al_path_join(run_dir, name);
    if (!path || restore_moved_aside(run_dir, name, path)) {
        free(path);
        return;
    }
    if (al_remove_tree(path) == 0)
        (*removed)++;
    else
        al_log_warn("%s (left in place)", al_error_message());
    free(path);
}

int al_checkpoint_clean_leftovers(const char *run_dir)
{
    DIR *dir = opendir(run_dir);
    if (!dir)
        return errno == ENOENT ? 0 : al_fail_errno("%s: cannot list", run_dir);
    int removed = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        if (is_checkpoint_leftover(entry->d_name) || is_atomic_write_temp(entry->d_name))
            remove_leftover(run_dir, entry->d_name, &removed);
    closedir(dir);
    al_error_clear();
    return removed;
}

/* Renamed first, so that a crash halfway through the deletion leaves a folder whose name
 * is never mistaken for a checkpoint. */
static int delete_checkpoint(const char *run_dir, int64_t step)
{
    char *path = checkpoint_path(run_dir, step, "");
    char *doomed = checkpoint_path(run_dir, step, DELETING_SUFFIX);
    int rc = path && doomed ? 0 : -1;
    if (rc == 0 && rename(path, doomed) != 0)
        rc = al_fail_errno("%s: cannot rename for deletion", path);
    if (rc == 0)
        rc = al_remove_tree(doomed);
    free(path);
    free(doomed);
    return rc;
}

static bool is_protected(int64_t step, const int64_t *protected_steps, int n_protected)
{
    for (int i = 0; i < n_protected; i++)
        if (protected_steps[i] == step)
            return true;
    return false;
}

int al_checkpoint_prune(const char *run_dir, int64_t keep)
{
    return al_checkpoint_prune_protecting(run_dir, keep, NULL, 0);
}

int al_checkpoint_prune_protecting(const char *run_dir, int64_t keep, const int64_t *protected_steps,
                                   int n_protected)
{
    if (al_checkpoint_clean_leftovers(run_dir) < 0)
        return -1;
    if (keep <= 0)
        return 0;
    int64_t *steps = NULL, latest_step = -1;
    int count = 0;
    if (al_checkpoint_list(run_dir, &steps, &count) != 0)
        return -1;
    char *latest = read_latest(run_dir);
    if (latest)
        parse_checkpoint_name(latest, &latest_step);
    free(latest);
    int64_t excess = count - keep;
    for (int i = 0; i < count; i++)
        if (steps[i] != latest_step && is_protected(steps[i], protected_steps, n_protected))
            excess--; /* kept on top of the newest keep */
    for (int i = 0; i < count && excess > 0; i++) {
        if (steps[i] == latest_step || is_protected(steps[i], protected_steps, n_protected))
            continue;
        /* The new checkpoint is safe already: an old one that cannot go costs only space. */
        if (delete_checkpoint(run_dir, steps[i]) != 0)
            al_log_warn("keep_last %" PRId64 ": %s; it stays, and the run goes on", keep, al_error_message());
        excess--;
    }
    al_error_clear();
    free(steps);
    return 0;
}

/* ---- choosing the checkpoint to resume from ---- */

static char *verified(const char *run_dir, const char *name)
{
    char *path = al_path_join(run_dir, name);
    if (path && al_checkpoint_verify(path) == 0)
        return path;
    free(path);
    return NULL;
}

/* The newest checkpoint that verifies, walking down from the newest. */
static int newest_intact(const char *run_dir, char **path, int *broken)
{
    int64_t *steps = NULL;
    int count = 0;
    *broken = 0;
    if (al_checkpoint_list(run_dir, &steps, &count) != 0)
        return -1;
    for (int i = count - 1; i >= 0 && !*path; i--) {
        char name[64];
        snprintf(name, sizeof name, CHECKPOINT_PREFIX "%" PRId64, steps[i]);
        *path = verified(run_dir, name);
        if (!*path) {
            al_log_warn("skipping %s/%s: %s", run_dir, name, al_error_message());
            (*broken)++;
        }
    }
    free(steps);
    return 0;
}

int al_checkpoint_find_resume(const char *run_dir, char **path)
{
    *path = NULL;
    char *latest = read_latest(run_dir);
    if (latest) {
        *path = verified(run_dir, latest);
        if (*path) {
            free(latest);
            return 0;
        }
        al_log_warn("%s/latest names %s, which cannot be used (%s); looking for the newest intact checkpoint",
                    run_dir, latest, al_error_message());
    }
    int broken = 0;
    int rc = newest_intact(run_dir, path, &broken);
    if (rc == 0 && !*path && (latest || broken > 0))
        rc = al_fail("%s: no intact checkpoint to resume from (%d damaged or incomplete)", run_dir, broken);
    if (rc == 0 && *path && !latest)
        al_log_warn("%s: no latest pointer; resuming from %s, the newest intact checkpoint", run_dir, *path);
    free(latest);
    if (rc == 0)
        al_error_clear();
    return rc;
}
