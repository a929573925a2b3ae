/* `agentlora train` end to end on a tiny model: determinism, SIGKILL at random moments
 * followed by --resume auto giving bit-identical losses and adapter, resume refusing a
 * changed fixed key, the non-finite guard, and adapters that load back. */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"
#include "test_support.h"
#include "train_testing.h"
#include "tiny_model.h"

#define STEPS "8"

struct run {
    char *root;       /* scratch folder */
    char *model;      /* root/model */
};

static void run_setup(struct run *r)
{
    r->root = test_tmpdir();
    r->model = al_path_join(r->root, "model");
    cr_assert_eq(test_write_trainable_model(r->model), 0, "%s", al_error_message());
}

static void run_teardown(struct run *r)
{
    free(r->model);
    free(r->root);
}

/* argv for one training run into root/out/<name>, extra arguments appended. */
static int train(struct run *r, const char *name, char **output, const char *extra1, const char *extra2)
{
    char *out = al_path_join(r->root, "out");
    int status = test_run_cli(output, "train", "--model", r->model, "--train_data", "data/agentalign_sample.json",
                              "--chat_format", "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", STEPS,
                              "--save_every", "1", "--keep_last", "2", "--lora_r", "4", "--lora_dropout", "0.1",
                              "--lr", "5e-3", "--gradient_accumulation", "2", "--ping_mode", "train", "--ping_prefixes",
                              "data/ping_prefixes.json", "--ping_targets", "both", "--device", "cpu", "--output_dir",
                              out, "--run_name", name, extra1, extra2, NULL);
    free(out);
    return status;
}

static char *run_path(struct run *r, const char *name, const char *relative)
{
    char *path = al_strdup_printf("%s/out/%s/%s", r->root, name, relative);
    cr_assert_not_null(path);
    return path;
}

/* The final checkpoint's adapter bytes and the loss history of its trainer state. */
struct outcome {
    char *adapter;
    size_t adapter_size;
    char *losses; /* the JSON text of loss_history */
};

static void read_outcome(struct run *r, const char *name, struct outcome *o)
{
    char *adapter = run_path(r, name, "checkpoint-" STEPS "/adapter_model.safetensors");
    char *state_path = run_path(r, name, "checkpoint-" STEPS "/trainer_state.json");
    o->adapter = al_file_read_all(adapter, &o->adapter_size);
    cr_assert_not_null(o->adapter, "%s", al_error_message());
    cJSON *state = al_json_load_file(state_path);
    cr_assert_not_null(state, "%s", al_error_message());
    cJSON *history = cJSON_GetObjectItem(state, "loss_history");
    cr_assert(cJSON_IsArray(history), "trainer_state.json has a loss_history");
    cr_assert_eq(cJSON_GetArraySize(history), atoi(STEPS));
    o->losses = cJSON_PrintUnformatted(history);
    cJSON_Delete(state);
    free(adapter);
    free(state_path);
}

static void free_outcome(struct outcome *o)
{
    free(o->adapter);
    free(o->losses);
}

static void expect_same(const struct outcome *a, const struct outcome *b)
{
    cr_assert_str_eq(a->losses, b->losses, "loss histories differ");
    cr_assert_eq(a->adapter_size, b->adapter_size);
    cr_assert_eq(memcmp(a->adapter, b->adapter, a->adapter_size), 0, "adapters differ");
}

Test(train_cli, same_config_gives_bit_identical_runs, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "a", &output, NULL, NULL), 0, "%s", output);
    cr_assert(strstr(output, "training finished") && strstr(output, "checkpoint-" STEPS), "%s", output);
    free(output);
    cr_assert_eq(train(&r, "b", &output, NULL, NULL), 0, "%s", output);
    free(output);
    struct outcome a, b;
    read_outcome(&r, "a", &a);
    read_outcome(&r, "b", &b);
    expect_same(&a, &b);
    /* the losses fall on this tiny model at this learning rate */
    cJSON *losses = cJSON_Parse(a.losses);
    double first = cJSON_GetArrayItem(losses, 0)->valuedouble, last = cJSON_GetArrayItem(losses, 7)->valuedouble;
    cr_assert_lt(last, first, "loss should decrease: %s", a.losses);
    cJSON_Delete(losses);
    /* keep_last 2, metrics and TensorBoard beside the checkpoints */
    char *old = run_path(&r, "a", "checkpoint-5"), *metrics = run_path(&r, "a", "metrics.jsonl");
    cr_assert(!al_dir_exists(old), "keep_last 2 deletes older checkpoints");
    size_t size = 0;
    char *text = al_file_read_all(metrics, &size);
    cr_assert(text && strstr(text, "\"kind\":\"train\"") && strstr(text, "\"kind\":\"eval\""), "%s", text);
    free(text);
    free(old);
    free(metrics);
    free_outcome(&a);
    free_outcome(&b);
    run_teardown(&r);
}

/* Starts a training run and kills it with SIGKILL after delay_ms. Returns 1 when it
 * was killed, 0 when it finished first. */
static int train_and_kill(struct run *r, const char *name, int delay_ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        char *out = al_path_join(r->root, "out");
        const char *cli = getenv("AL_CLI") ? getenv("AL_CLI") : "./agentlora";
        execl(cli, cli, "train", "--model", r->model, "--train_data", "data/agentalign_sample.json", "--chat_format",
              "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", STEPS, "--save_every", "1",
              "--keep_last", "2", "--lora_r", "4", "--lora_dropout", "0.1", "--lr", "5e-3", "--gradient_accumulation",
              "2", "--ping_mode", "train", "--ping_prefixes", "data/ping_prefixes.json", "--ping_targets", "both",
              "--device", "cpu", "--output_dir", out, "--run_name", name, "--resume", "auto", (char *)NULL);
        _exit(127);
    }
    struct timespec pause = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
        return 0;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 1 : 0;
}

Test(train_cli, sigkill_at_random_moments_then_resume_is_bit_identical, .timeout = 300)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "straight", &output, NULL, NULL), 0, "%s", output);
    free(output);

    /* Kill the run again and again at random moments (between steps, during forward or
     * backward, while a checkpoint is being written), resuming each time. */
    struct al_rng rng;
    al_rng_seed(&rng, (uint64_t)time(NULL), 11);
    int kills = 0;
    for (int attempt = 0; attempt < 12; attempt++)
        kills += train_and_kill(&r, "killed", 150 + (int)al_rng_below(&rng, 900));
    cr_assert_eq(train(&r, "killed", &output, "--resume", "auto"), 0, "%s", output);
    free(output);
    cr_assert_gt(kills, 0, "the run was never killed: the test proves nothing");

    struct outcome straight, killed;
    read_outcome(&r, "straight", &straight);
    read_outcome(&r, "killed", &killed);
    expect_same(&straight, &killed);
    free_outcome(&straight);
    free_outcome(&killed);
    run_teardown(&r);
}

Test(train_cli, resume_refuses_a_changed_fixed_key, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "fixed", &output, NULL, NULL), 0, "%s", output);
    free(output);
    /* the same run resumed with lora_r 8 instead of 4 */
    char *out = al_path_join(r.root, "out");
    int status = test_run_cli(&output, "train", "--model", r.model, "--train_data", "data/agentalign_sample.json",
                              "--chat_format", "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", STEPS,
                              "--lora_r", "8", "--lora_dropout", "0.1", "--lr", "5e-3", "--gradient_accumulation", "2",
                              "--ping_mode", "train", "--ping_prefixes", "data/ping_prefixes.json", "--ping_targets",
                              "both", "--device", "cpu", "--output_dir", out, "--run_name", "fixed", "--resume", "auto",
                              NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "lora_r") && strstr(output, "resume"), "%s", output);
    free(output);
    free(out);
    run_teardown(&r);
}

Test(train_cli, nonfinite_gradients_stop_the_run_and_keep_the_last_good_checkpoint, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "nan", &output, "--max_nonfinite_steps", "3"), 0, "%s", output);
    free(output);
    /* Poison the model in place (same path, so resume accepts it): a NaN in the final norm. */
    char *weights = al_path_join(r.model, "model.safetensors");
    cr_assert_eq(test_poison_f32(weights, "model.norm.weight", 0, 1), 0, "%s", al_error_message());
    char *latest_before = run_path(&r, "nan", "latest");
    char *pointer_before = al_file_read_all(latest_before, NULL);
    char *out = al_path_join(r.root, "out");
    int status = test_run_cli(&output, "train", "--model", r.model, "--train_data", "data/agentalign_sample.json",
                              "--chat_format", "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "12",
                              "--save_every", "1", "--keep_last", "2", "--lora_r", "4", "--lora_dropout", "0.1", "--lr",
                              "5e-3", "--gradient_accumulation", "2", "--ping_mode", "train", "--ping_prefixes",
                              "data/ping_prefixes.json", "--ping_targets", "both", "--device", "cpu", "--output_dir",
                              out, "--run_name", "nan", "--resume", "auto", "--max_nonfinite_steps", "3", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "non-finite") && strstr(output, "checkpoint-" STEPS), "%s", output);
    char *pointer_after = al_file_read_all(latest_before, NULL);
    cr_assert_str_eq(pointer_after, pointer_before, "the latest checkpoint must stay the last good one");
    char *good = run_path(&r, "nan", "checkpoint-" STEPS);
    cr_assert(al_dir_exists(good));
    free(good);
    free(pointer_after);
    free(pointer_before);
    free(latest_before);
    free(out);
    free(output);
    free(weights);
    run_teardown(&r);
}

/* The first loss recorded in a run's final trainer state. */
static double first_loss(struct run *r, const char *name)
{
    char *state_path = run_path(r, name, "checkpoint-" STEPS "/trainer_state.json");
    cJSON *state = al_json_load_file(state_path);
    cr_assert_not_null(state, "%s", al_error_message());
    double loss = cJSON_GetArrayItem(cJSON_GetObjectItem(state, "loss_history"), 0)->valuedouble;
    cJSON_Delete(state);
    free(state_path);
    return loss;
}

Test(train_cli, training_continues_from_a_peft_adapter, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "first", &output, NULL, NULL), 0, "%s", output);
    free(output);
    char *adapter = run_path(&r, "first", "checkpoint-" STEPS);
    cr_assert_eq(train(&r, "second", &output, "--init_adapter", adapter), 0, "%s", output);
    free(output);
    /* the second run starts where the first ended: its first loss is far below the
     * first run's first loss (same data order, same seed) */
    double fresh = first_loss(&r, "first"), continued = first_loss(&r, "second");
    cr_assert_lt(continued, fresh - 0.05, "continued %.4f vs fresh %.4f", continued, fresh);
    free(adapter);
    run_teardown(&r);
}

/* Top-5 line block of `agentlora logits` output, for comparing two runs. */
static double top_logit(const char *output)
{
    const char *line = strstr(output, "last position:\n");
    cr_assert_not_null(line, "%s", output);
    int id;
    double value;
    cr_assert_eq(sscanf(line + strlen("last position:\n"), "%d %lf", &id, &value), 2, "%s", output);
    return value;
}

Test(train_cli, merged_model_gives_the_adapter_logits, .timeout = 120)
{
    struct run r;
    run_setup(&r);
    char *output = NULL;
    cr_assert_eq(train(&r, "merge", &output, NULL, NULL), 0, "%s", output);
    free(output);
    char *adapter = run_path(&r, "merge", "checkpoint-" STEPS);
    char *merged = al_path_join(r.root, "merged");
    cr_assert_eq(test_run_cli(&output, "merge", "--model", r.model, "--adapter", adapter, "--out", merged, NULL), 0,
                 "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "inspect", merged, NULL), 0, "%s", output);
    free(output);
    char *with_adapter = NULL, *with_merge = NULL, *base = NULL;
    const char *ids = "5 17 99 3 42 64 8 120";
    cr_assert_eq(test_run_cli(&with_adapter, "logits", "--model", r.model, "--adapter", adapter, "--ids", ids, NULL), 0);
    cr_assert_eq(test_run_cli(&with_merge, "logits", "--model", merged, "--ids", ids, NULL), 0);
    cr_assert_eq(test_run_cli(&base, "logits", "--model", r.model, "--ids", ids, NULL), 0);
    double a = top_logit(with_adapter), m = top_logit(with_merge), b = top_logit(base);
    cr_assert_lt(fabs(a - m), 1e-4 * fabs(a) + 1e-5, "adapter %.6f vs merged %.6f", a, m);
    cr_assert_gt(fabs(a - b), 1e-4, "the trained adapter changes the logits (%.6f vs base %.6f)", a, b);
    cr_assert_eq(test_run_cli(&output, "merge", "--model", r.model, "--out", merged, NULL), 2);
    free(output);
    /* the folder now holds a model: merging into it again is refused unless --overwrite */
    cr_assert_eq(test_run_cli(&output, "merge", "--model", r.model, "--adapter", adapter, "--out", merged, NULL), 1,
                 "%s", output);
    cr_assert(strstr(output, "already exists") && strstr(output, "--overwrite"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "merge", "--model", r.model, "--adapter", adapter, "--out", merged,
                              "--overwrite", NULL),
                 0, "%s", output);
    free(output);
    free(with_adapter);
    free(with_merge);
    free(base);
    free(merged);
    free(adapter);
    run_teardown(&r);
}
