/* `agentlora train` and its run folder: one process at a time (a lock that dies with its
 * holder), a fresh run never silently replacing checkpoints (--overwrite), no folder left
 * by a failed start, debris of killed processes cleaned, an old checkpoint that cannot
 * be deleted only a warning, and the file size limit reported as a write error. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"
#include "train_testing.h"

/* The unprivileged account a root test process runs the CLI as where it needs file
 * permissions to hold (root may delete anything). */
#define NOBODY 65534
#define POLL_MS 20
#define HOLDER_WAIT_MS 60000

struct run {
    char *root, *model, *out;
};

static void run_setup(struct run *r)
{
    r->root = test_tmpdir();
    r->model = al_path_join(r->root, "model");
    r->out = al_path_join(r->root, "out");
    cr_assert_eq(test_write_trainable_model(r->model), 0, "%s", al_error_message());
}

static void run_teardown(struct run *r)
{
    free(r->model);
    free(r->out);
    free(r->root);
}

static char *run_path(const struct run *r, const char *name, const char *relative)
{
    char *path = al_strdup_printf("%s/%s%s%s", r->out, name, relative[0] ? "/" : "", relative);
    cr_assert_not_null(path);
    return path;
}

/* The arguments of a short training run into out/<name>, extra ones (NULL-terminated)
 * after them; later options override earlier ones. */
static void train_args(const struct run *r, const char *name, const char *const *extra, const char **args)
{
    static const char *const base[] = {"train", "--train_data", "data/agentalign_sample.json", "--chat_format",
                                       "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "2",
                                       "--warmup_ratio", "0", "--save_every", "1", "--keep_last", "3", "--lora_r", "4", "--lr", "5e-3",
                                       "--device", "cpu"};
    int n = 0;
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        args[n++] = base[i];
    args[n++] = "--model";
    args[n++] = r->model;
    args[n++] = "--output_dir";
    args[n++] = r->out;
    args[n++] = "--run_name";
    args[n++] = name;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
}

static int train_prepared(const struct run *r, const char *name, char **output, void (*prepare)(void *),
                          void *context, const char *const *extra)
{
    const char *args[96];
    train_args(r, name, extra, args);
    return test_run_cli_prepared(output, prepare, context, args);
}

static int train(const struct run *r, const char *name, char **output, const char *const *extra)
{
    return train_prepared(r, name, output, NULL, NULL, extra);
}

#define EXTRA(...) ((const char *const[]){__VA_ARGS__, NULL})

static void sleep_ms(int ms)
{
    struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* ---- the lock ---- */

/* Starts a long training run in the background (output discarded). */
static pid_t start_holder(const struct run *r, const char *name)
{
    const char *args[96];
    train_args(r, name, EXTRA("--max_steps", "100000", "--resume", "auto"), args);
    const char *cli = getenv("AL_CLI") && *getenv("AL_CLI") ? getenv("AL_CLI") : "./agentlora";
    const char *argv[97] = {cli};
    for (int i = 0; args[i]; i++)
        argv[i + 1] = args[i];
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    cr_assert_gt(pid, 0);
    return pid;
}

/* Waits until the holder's folder has `relative` (the lock file naming it, a checkpoint). */
static void wait_for(const struct run *r, const char *name, const char *relative, const char *needle, pid_t holder)
{
    char *path = run_path(r, name, relative);
    for (int waited = 0; waited < HOLDER_WAIT_MS; waited += POLL_MS) {
        char *text = al_file_exists(path) ? al_file_read_all(path, NULL) : NULL;
        bool found = text && (!needle || strstr(text, needle));
        free(text);
        if (found) {
            free(path);
            return;
        }
        cr_assert_eq(waitpid(holder, NULL, WNOHANG), 0, "the holder ended before writing %s", path);
        sleep_ms(POLL_MS);
    }
    cr_assert_fail("%s never appeared", path);
}

Test(train_run_folder, a_second_run_is_refused_and_a_killed_holder_does_not_block_resume, .timeout = 180)
{
    struct run r;
    run_setup(&r);
    pid_t holder = start_holder(&r, "busy");
    char pid_line[64];
    snprintf(pid_line, sizeof pid_line, "pid %ld\n", (long)holder);
    wait_for(&r, "busy", "run.lock", pid_line, holder);

    /* Refused at once, fresh or resuming, naming the holder. */
    char *output = NULL;
    char holder_pid[64];
    snprintf(holder_pid, sizeof holder_pid, "pid %ld", (long)holder);
    time_t before = time(NULL);
    cr_assert_eq(train(&r, "busy", &output, EXTRA("--resume", "auto")), 1, "%s", output);
    cr_assert(strstr(output, "in use by another training run") && strstr(output, holder_pid) &&
                  strstr(output, "host ") && strstr(output, "started 20"),
              "%s", output);
    free(output);
    cr_assert_eq(train(&r, "busy", &output, NULL), 1, "%s", output);
    cr_assert(strstr(output, holder_pid), "%s", output);
    free(output);
    cr_assert_lt(time(NULL) - before, 30, "the refusals must come before any loading");

    /* SIGKILL leaves the lock file (naming a dead pid) but not the lock. */
    wait_for(&r, "busy", "latest", NULL, holder);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    /* max_steps 1: the checkpoint is at step 1 or later, so this resume ends at once. */
    cr_assert_eq(train(&r, "busy", &output, EXTRA("--resume", "auto", "--max_steps", "1")), 0, "%s", output);
    cr_assert(strstr(output, "resuming from"), "%s", output);
    free(output);
    run_teardown(&r);
}

/* ---- fresh runs, --overwrite ---- */

static char *read_adapter(const struct run *r, const char *name, size_t *size)
{
    char *path = run_path(r, name, "checkpoint-2/adapter_model.safetensors");
    char *bytes = al_file_read_all(path, size);
    cr_assert_not_null(bytes, "%s", al_error_message());
    free(path);
    return bytes;
}

Test(train_run_folder, a_fresh_run_never_silently_replaces_checkpoints, .timeout = 180)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "done", &output, NULL), 0, "%s", output);
    free(output);
    size_t size_before = 0, size_after = 0;
    char *before = read_adapter(&r, "done", &size_before);

    cr_assert_eq(train(&r, "done", &output, EXTRA("--lr", "1e-3")), 1, "%s", output);
    cr_assert(strstr(output, "already holds checkpoints") && strstr(output, "checkpoint-2") &&
                  strstr(output, "--resume auto") && strstr(output, "--run_name") && strstr(output, "--overwrite"),
              "%s", output);
    free(output);
    char *after = read_adapter(&r, "done", &size_after);
    cr_assert(size_after == size_before && memcmp(before, after, size_before) == 0, "checkpoint-2 was touched");
    free(after);

    cr_assert_eq(train(&r, "done", &output, EXTRA("--overwrite", "--resume", "auto")), 2, "%s", output);
    free(output);
    cr_assert_eq(train(&r, "done", &output, EXTRA("--lr", "1e-3", "--overwrite")), 0, "%s", output);
    cr_assert(strstr(output, "--overwrite: deleted") && strstr(output, "checkpoint-2") && strstr(output, "latest") &&
                  strstr(output, "metrics.jsonl"),
              "%s", output);
    free(output);
    after = read_adapter(&r, "done", &size_after);
    cr_assert(size_after != size_before || memcmp(before, after, size_before) != 0, "the run was not replaced");
    free(after);
    free(before);
    run_teardown(&r);
}

Test(train_run_folder, a_failed_start_leaves_no_new_run_folder, .timeout = 60)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    char *missing = al_path_join(r.root, "no-such-model");
    cr_assert_eq(train(&r, "bad-model", &output, EXTRA("--model", missing)), 1, "%s", output);
    free(output);
    cr_assert_eq(train(&r, "bad-data", &output, EXTRA("--train_data", missing)), 1, "%s", output);
    free(output);
    cr_assert_eq(train(&r, "bad-config", &output, EXTRA("--lr", "-1")), 2, "%s", output);
    free(output);
    static const char *const names[] = {"bad-model", "bad-data", "bad-config"};
    for (int i = 0; i < 3; i++) {
        char *folder = run_path(&r, names[i], "");
        cr_assert(!al_dir_exists(folder), "%s was left behind", folder);
        free(folder);
    }
    free(missing);
    run_teardown(&r);
}

/* ---- debris ---- */

/* A leftover file or folder (with a file inside) in out/<name>. */
static void make_debris(const struct run *r, const char *name, const char *relative, bool folder)
{
    char *dir = run_path(r, name, folder ? relative : "");
    cr_assert_eq(al_mkdirs(dir), 0);
    free(test_write_file(dir, folder ? "adapter_model.safetensors" : relative, "checkpoint-1\n", 13));
    free(dir);
}

static void expect_gone(const struct run *r, const char *name, const char *relative)
{
    char *path = run_path(r, name, relative);
    cr_assert(!al_file_exists(path) && !al_dir_exists(path), "%s is still there", path);
    free(path);
}

Test(train_run_folder, debris_of_killed_runs_is_cleaned_at_the_next_start, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "debris", &output, NULL), 0, "%s", output);
    free(output);
    make_debris(&r, "debris", "latest.tmp.99999", false);
    make_debris(&r, "debris", "metrics.jsonl.tmp.4242", false);
    make_debris(&r, "debris", "checkpoint-1.deleting", true);
    make_debris(&r, "debris", "checkpoint-7.tmp", true);
    /* A save killed between moving checkpoint-2 aside and renaming its replacement in:
     * checkpoint-2.old is the only copy, and `latest` names checkpoint-2. */
    char *final = run_path(&r, "debris", "checkpoint-2"), *aside = run_path(&r, "debris", "checkpoint-2.old");
    cr_assert_eq(rename(final, aside), 0);
    /* A resume that saves nothing (its steps are done): only the start can clean. */
    cr_assert_eq(train(&r, "debris", &output, EXTRA("--resume", "auto", "--save_every", "0")), 0, "%s", output);
    cr_assert(strstr(output, "resuming from") && strstr(output, "checkpoint-2 (step 2)"), "%s", output);
    free(output);
    static const char *const debris[] = {"latest.tmp.99999", "metrics.jsonl.tmp.4242", "checkpoint-1.deleting",
                                         "checkpoint-7.tmp", "checkpoint-2.old"};
    for (int i = 0; i < 5; i++)
        expect_gone(&r, "debris", debris[i]);
    cr_assert(al_dir_exists(final), "checkpoint-2 was restored");
    free(final);
    free(aside);
    run_teardown(&r);
}

/* ---- a checkpoint that cannot be deleted ---- */

/* Root may delete anything: the CLI then runs as nobody, in folders nobody owns. */
static void drop_root(void *context)
{
    (void)context;
    if (geteuid() != 0)
        return;
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        _exit(126);
}

static void give_to_nobody(const struct run *r)
{
    if (geteuid() != 0)
        return;
    cr_assert_eq(chmod(r->root, 0755), 0);
    cr_assert_eq(chown(r->out, NOBODY, NOBODY), 0);
}

Test(train_run_folder, an_old_checkpoint_that_cannot_be_deleted_is_a_warning, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    cr_assert_eq(al_mkdirs(r.out), 0);
    give_to_nobody(&r);
    char *output = NULL;
    cr_assert_eq(train_prepared(&r, "stuck", &output, drop_root, NULL, EXTRA("--max_steps", "1", "--keep_last", "1")),
                 0, "%s", output);
    free(output);
    /* A folder inside checkpoint-1 that the run may not empty. */
    char *checkpoint = run_path(&r, "stuck", "checkpoint-1"), *pinned = run_path(&r, "stuck", "checkpoint-1/pinned");
    cr_assert_eq(al_mkdirs(pinned), 0);
    free(test_write_file(pinned, "file", "x", 1));
    cr_assert_eq(chmod(pinned, 0555), 0);
    cr_assert_eq(train_prepared(&r, "stuck", &output, drop_root, NULL,
                                EXTRA("--max_steps", "3", "--keep_last", "1", "--resume", "auto")),
                 0, "%s", output);
    cr_assert(strstr(output, "keep_last 1") && strstr(output, "it stays, and the run goes on"), "%s", output);
    free(output);
    char *latest = run_path(&r, "stuck", "latest");
    char *pointer = al_file_read_all(latest, NULL);
    cr_assert(pointer && strcmp(pointer, "checkpoint-3\n") == 0, "latest: %s", pointer);
    chmod(pinned, 0755);
    free(pointer);
    free(latest);
    free(pinned);
    free(checkpoint);
    run_teardown(&r);
}

/* ---- the file size limit ---- */

/* Small enough that a checkpoint's files cross it, large enough for the first lines of
 * metrics.jsonl. */
#define FILE_SIZE_LIMIT 4096

static void limit_file_size(void *context)
{
    (void)context;
    struct rlimit limit = {FILE_SIZE_LIMIT, FILE_SIZE_LIMIT};
    signal(SIGXFSZ, SIG_DFL); /* as a shell would leave it */
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
        _exit(126);
}

Test(train_run_folder, the_file_size_limit_is_a_write_error_not_a_silent_death, .timeout = 60)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    int status = train_prepared(&r, "limited", &output, limit_file_size, NULL, NULL);
    cr_assert_eq(status, 1, "exit %d (-1: killed by a signal)\n%s", status, output);
    cr_assert(strstr(output, "write failed") && strstr(output, "File too large") && strstr(output, "ulimit -f"),
              "%s", output);
    free(output);
    expect_gone(&r, "limited", "checkpoint-1.tmp"); /* the space is given back at once */
    run_teardown(&r);
}
