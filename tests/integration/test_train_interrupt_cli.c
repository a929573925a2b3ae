/* Ctrl-C during `agentlora train`: the first SIGINT finishes the step in progress, writes a
 * checkpoint, names it and exits with 130; --resume auto from it gives the uninterrupted
 * run's losses and adapter bit for bit. A second SIGINT ends the process at once. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"
#include "train_testing.h"

#define STEPS "8"

/* The argv of one run into root/out/<name>: no periodic checkpoint, so the only one before
 * the end is the interrupt's. */
#define TRAIN_ARGS(model, out, name)                                                                              \
    "train", "--model", model, "--train_data", "data/agentalign_sample.json", "--chat_format", "chatml-qwen2.5",  \
        "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", STEPS, "--save_every", "0", "--lora_r", "4", "--lr",      \
        "5e-3", "--gradient_accumulation", "2", "--device", "cpu", "--output_dir", out, "--run_name", name,       \
        "--resume", "auto"

struct scratch {
    char *root, *model, *out;
};

static void scratch_setup(struct scratch *s)
{
    s->root = test_tmpdir();
    s->model = al_path_join(s->root, "model");
    s->out = al_path_join(s->root, "out");
    cr_assert_eq(test_write_trainable_model(s->model), 0, "%s", al_error_message());
}

static void scratch_teardown(struct scratch *s)
{
    free(s->model);
    free(s->out);
    free(s->root);
}

static char *run_file(const struct scratch *s, const char *name, const char *relative)
{
    char *path = al_strdup_printf("%s/%s/%s", s->out, name, relative);
    cr_assert_not_null(path);
    return path;
}

/* Starts `agentlora train` with its output in log_path; returns the child's pid. */
static pid_t start_training(const struct scratch *s, const char *name, const char *log_path)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(log, 1);
        dup2(log, 2);
        const char *cli = getenv("AL_CLI") ? getenv("AL_CLI") : "./agentlora";
        execl(cli, cli, TRAIN_ARGS(s->model, s->out, name), (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits (up to a minute) until metrics.jsonl holds a training record of `step`. */
static void wait_for_step(const struct scratch *s, const char *name, int step)
{
    char *metrics = run_file(s, name, "metrics.jsonl");
    char needle[64];
    snprintf(needle, sizeof needle, "\"kind\":\"train\",\"step\":%d,", step);
    struct timespec pause = {0, 2 * 1000000L};
    for (int i = 0; i < 30000; i++) {
        char *text = al_file_exists(metrics) ? al_file_read_all(metrics, NULL) : NULL;
        bool seen = text && strstr(text, needle);
        free(text);
        if (seen)
            break;
        nanosleep(&pause, NULL);
    }
    free(metrics);
}

static int wait_for(pid_t pid)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

struct outcome {
    char *adapter, *losses;
    size_t adapter_size;
};

static void read_outcome(const struct scratch *s, const char *name, struct outcome *o)
{
    char *adapter = run_file(s, name, "checkpoint-" STEPS "/adapter_model.safetensors");
    char *state_path = run_file(s, name, "checkpoint-" STEPS "/trainer_state.json");
    o->adapter = al_file_read_all(adapter, &o->adapter_size);
    cr_assert_not_null(o->adapter, "%s", al_error_message());
    cJSON *state = al_json_load_file(state_path);
    cr_assert_not_null(state, "%s", al_error_message());
    o->losses = cJSON_PrintUnformatted(cJSON_GetObjectItem(state, "loss_history"));
    cJSON_Delete(state);
    free(adapter);
    free(state_path);
}

Test(train_interrupt, sigint_saves_a_checkpoint_and_resume_is_bit_identical, .timeout = 240)
{
    struct scratch s;
    scratch_setup(&s);
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, TRAIN_ARGS(s.model, s.out, "straight"), NULL), 0, "%s", output);
    free(output);

    char *log_path = al_path_join(s.root, "interrupted.log");
    pid_t pid = start_training(&s, "interrupted", log_path);
    wait_for_step(&s, "interrupted", 1);
    kill(pid, SIGINT);
    int status = wait_for(pid);
    char *log = al_file_read_all(log_path, NULL);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit status %d, signal %d; output:\n%s",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0, log);
    cr_assert(strstr(log, "interrupted by SIGINT after step ") && strstr(log, "training interrupted (SIGINT)"),
              "%s", log);
    /* the checkpoint it names exists, and is before the end */
    const char *named = strstr(log, "the checkpoint is ");
    cr_assert_not_null(named, "%s", log);
    char folder[4096];
    cr_assert_eq(sscanf(named + strlen("the checkpoint is "), "%4095[^;]", folder), 1);
    cr_assert(al_dir_exists(folder), "%s does not exist", folder);
    cr_assert_null(strstr(folder, "checkpoint-" STEPS), "the run was not interrupted before its end: %s", log);

    cr_assert_eq(test_run_cli(&output, TRAIN_ARGS(s.model, s.out, "interrupted"), NULL), 0, "%s", output);
    cr_assert(strstr(output, "resuming from"), "%s", output);
    free(output);
    struct outcome straight, resumed;
    read_outcome(&s, "straight", &straight);
    read_outcome(&s, "interrupted", &resumed);
    cr_assert_str_eq(resumed.losses, straight.losses, "loss histories differ");
    cr_assert_eq(resumed.adapter_size, straight.adapter_size);
    cr_assert_eq(memcmp(resumed.adapter, straight.adapter, straight.adapter_size), 0, "adapters differ");
    free(straight.adapter);
    free(straight.losses);
    free(resumed.adapter);
    free(resumed.losses);
    free(log);
    free(log_path);
    scratch_teardown(&s);
}

Test(train_interrupt, a_second_sigint_stops_at_once, .timeout = 120)
{
    struct scratch s;
    scratch_setup(&s);
    char *log_path = al_path_join(s.root, "twice.log");
    pid_t pid = start_training(&s, "twice", log_path);
    wait_for_step(&s, "twice", 1);
    kill(pid, SIGINT);
    struct timespec pause = {0, 30 * 1000000L};
    nanosleep(&pause, NULL);
    kill(pid, SIGINT);
    int status = wait_for(pid);
    char *log = al_file_read_all(log_path, NULL);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "the second SIGINT should end the process: %s",
              log);
    cr_assert(strstr(log, "second interrupt"), "%s", log);
    free(log);
    free(log_path);
    scratch_teardown(&s);
}
