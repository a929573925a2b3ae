/* The run folder's lock, its debris and the fresh-run rule (see run_folder.h). */
#include "agentlora/run_folder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/checkpoint.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "train/checkpoint_internal.h"

/* How much of the holder's lock file a refusal quotes. */
#define HOLDER_TEXT_MAX 512
/* How many names a message lists before it only counts. */
#define NAMES_LISTED 8

/* ---- the lock ---- */

static void write_holder(int fd)
{
    char host[256] = "?";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    char started[32] = "?";
    time_t now = time(NULL);
    struct tm utc;
    if (gmtime_r(&now, &utc))
        strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", &utc);
    char text[HOLDER_TEXT_MAX];
    int length = snprintf(text, sizeof text, "pid %ld\nhost %s\nstarted %s\n", (long)getpid(), host, started);
    /* The details only make a refusal friendlier; the flock is what excludes. */
    if (ftruncate(fd, 0) == 0 && length > 0 && pwrite(fd, text, (size_t)length, 0) == length)
        fsync(fd);
}

/* "pid 12, host h, started t" from the holder's lock file. */
static void describe_holder(int fd, char *out, size_t capacity)
{
    char text[HOLDER_TEXT_MAX];
    ssize_t got = pread(fd, text, sizeof text - 1, 0);
    size_t used = 0;
    out[0] = '\0';
    for (ssize_t i = 0; got > 0 && i < got && used + 3 < capacity; i++) {
        if (text[i] == '\n') {
            if (i + 1 < got)
                used += (size_t)snprintf(out + used, capacity - used, ", ");
        } else if (text[i] >= ' ') {
            out[used++] = text[i];
            out[used] = '\0';
        }
    }
    if (out[0] == '\0')
        snprintf(out, capacity, "it has not written its pid yet");
}

/* Some network and FUSE file systems have no flock: a run there goes on, with a warning. */
static bool locks_unsupported(int error)
{
    return error == ENOLCK || error == EOPNOTSUPP || error == ENOSYS;
}

static int take_lock(struct al_run_folder *folder)
{
    char *path = al_path_join(folder->path, AL_RUN_LOCK_FILE);
    if (!path)
        return al_fail("out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        al_fail_errno("%s: cannot open the run's lock file", path);
        free(path);
        return -1;
    }
    free(path);
    int lock_errno = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
    if (lock_errno != 0 && locks_unsupported(lock_errno)) {
        al_log_warn("%s: this file system cannot lock files (%s); nothing keeps a second run out of this folder",
                    folder->path, strerror(lock_errno));
    } else if (lock_errno != 0) {
        char holder[HOLDER_TEXT_MAX];
        describe_holder(fd, holder, sizeof holder);
        close(fd);
        if (lock_errno != EWOULDBLOCK)
            return al_fail("%s: cannot lock the run folder: %s", folder->path, strerror(lock_errno));
        return al_fail("%s is in use by another training run (%s); wait for it to end, stop it, or choose another "
                       "run_name",
                       folder->path, holder);
    }
    write_holder(fd);
    folder->lock_fd = fd;
    return 0;
}

/* ---- creating the folder ---- */

static int make_folder(struct al_run_folder *folder, const struct al_train_config *config)
{
    if (al_mkdirs(config->output_dir) != 0)
        return -1;
    if (mkdir(folder->path, 0755) == 0) {
        folder->created = true;
        return 0;
    }
    if (errno != EEXIST)
        return al_fail_errno("%s: cannot create the run folder", folder->path);
    return al_dir_exists(folder->path) ? 0 : al_fail("%s: exists and is not a folder", folder->path);
}

/* ---- what a previous run left ---- */

/* The entries a training run writes into its folder (checkpoint.c, metrics.c,
 * tensorboard.c, gen_eval.c); --overwrite deletes these and nothing else. */
static bool belongs_to_a_run(const char *name)
{
    static const char *const exact[] = {CHECKPOINT_LATEST, "metrics.jsonl", "gen_eval.json", "gen_eval_samples"};
    static const char *const prefixes[] = {CHECKPOINT_PREFIX, "events.out.tfevents."};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(name, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* "checkpoint-4, checkpoint-8 (latest checkpoint-8)" for a refusal. */
static void describe_checkpoints(const char *run_dir, const int64_t *steps, int count, char *out, size_t capacity)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < count && i < NAMES_LISTED && used < capacity; i++)
        used += (size_t)snprintf(out + used, capacity - used, "%s" CHECKPOINT_PREFIX "%" PRId64, i ? ", " : "",
                                 steps[i]);
    if (count > NAMES_LISTED && used < capacity)
        used += (size_t)snprintf(out + used, capacity - used, " and %d more", count - NAMES_LISTED);
    char *latest_path = al_path_join(run_dir, CHECKPOINT_LATEST);
    char *latest = latest_path && al_file_exists(latest_path) ? al_file_read_all(latest_path, NULL) : NULL;
    if (latest && used < capacity) {
        latest[strcspn(latest, "\r\n")] = '\0';
        snprintf(out + used, capacity - used, "%s`latest` names %s", count ? "; " : "", latest);
    }
    al_error_clear();
    free(latest);
    free(latest_path);
}

/* Deletes what belonged to the previous run and says what it was. */
static int overwrite_previous_run(const char *run_dir)
{
    DIR *dir = opendir(run_dir);
    if (!dir)
        return al_fail_errno("%s: cannot list", run_dir);
    char names[1024] = "";
    size_t used = 0;
    int deleted = 0, rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        if (!belongs_to_a_run(entry->d_name))
            continue;
        char *path = al_path_join(run_dir, entry->d_name);
        rc = path ? al_remove_tree(path) : al_fail("out of memory");
        free(path);
        if (rc == 0 && deleted++ < NAMES_LISTED && used < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", deleted > 1 ? ", " : "",
                                     entry->d_name);
    }
    closedir(dir);
    if (deleted > NAMES_LISTED && used < sizeof names)
        snprintf(names + used, sizeof names - used, " and %d more", deleted - NAMES_LISTED);
    if (deleted > 0)
        al_log_warn("--overwrite: deleted the previous run in %s: %s", run_dir, names);
    if (rc != 0)
        al_error_context("--overwrite");
    return rc;
}

/* A fresh run must not silently replace the checkpoints of an earlier one. */
static int check_fresh_start(const char *run_dir, const struct al_train_config *config)
{
    if (config->resume[0] != '\0')
        return 0;
    if (config->overwrite)
        return overwrite_previous_run(run_dir);
    int64_t *steps = NULL;
    int count = 0;
    if (al_checkpoint_list(run_dir, &steps, &count) != 0)
        return -1;
    char *latest = al_path_join(run_dir, CHECKPOINT_LATEST);
    bool has_latest = latest && al_file_exists(latest);
    free(latest);
    int rc = 0;
    if (count > 0 || has_latest) {
        char found[1024];
        describe_checkpoints(run_dir, steps, count, found, sizeof found);
        rc = al_fail("%s already holds checkpoints of a run (%s); continue it with --resume auto, start a new run "
                     "with another --run_name, or replace it with --overwrite",
                     run_dir, found);
    }
    free(steps);
    return rc;
}

static void clean_debris(const char *run_dir)
{
    int removed = al_checkpoint_clean_leftovers(run_dir);
    if (removed > 0)
        al_log_info("%s: removed %d leftover(s) of an interrupted run (temporary or half-deleted files)", run_dir,
                    removed);
    al_error_clear();
}

/* ---- the folder's life ---- */

int al_run_folder_open(struct al_run_folder *folder, const struct al_train_config *config)
{
    memset(folder, 0, sizeof *folder);
    folder->lock_fd = -1;
    if (!(folder->path = al_run_dir(config)))
        return -1;
    if (make_folder(folder, config) != 0 || take_lock(folder) != 0) {
        /* Refused: the folder may have been created here a moment before its holder
         * locked it, so it is theirs now and stays. */
        folder->created = false;
        al_run_folder_close(folder, false);
        return -1;
    }
    clean_debris(folder->path);
    if (check_fresh_start(folder->path, config) != 0) {
        al_run_folder_close(folder, true);
        return -1;
    }
    return 0;
}

void al_run_folder_close(struct al_run_folder *folder, bool start_failed)
{
    if (start_failed && folder->created && folder->lock_fd >= 0)
        al_remove_tree_after_failure(folder->path);
    if (folder->lock_fd >= 0)
        close(folder->lock_fd); /* releases the flock */
    free(folder->path);
    memset(folder, 0, sizeof *folder);
    folder->lock_fd = -1;
}
