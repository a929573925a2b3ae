/* The training loop. Every random choice is a function of (seed, step): the data order
 * of (seed, epoch), LoRA dropout masks of (seed, step, micro-batch), so a run resumed
 * from a checkpoint (step, data cursor, parameters, AdamW moments) reproduces the
 * uninterrupted run bit for bit on the CPU backend.
 *
 * Data parallel (mpirun -np N): every rank reads the same stream and takes its share of
 * each step's micro-batches (data_parallel.h), so the data cursor, the schedule and the
 * random choices are the same on every rank, and so are the summed gradient and the
 * update. Rank 0 alone writes: the run folder, checkpoints, metrics, the progress line and
 * the evaluations; at the end of each step it tells the others whether the run goes on. */
#include "agentlora/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/checkpoint.h"
#include "agentlora/data_stream.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/model.h"
#include "agentlora/optimizer.h"
#include "agentlora/rng.h"
#include "agentlora/run_folder.h"
#include "agentlora/tokenizer.h"
#include "agentlora/work_progress.h"
#include "backend/backend.h"
#include "gen_eval.h"
#include "train/batch_skip.h"
#include "train/data_parallel.h"
#include "train/ranks.h"
#include "interrupt.h"
#include "learnability.h"
#include "train_config_hints.h"

struct trainer {
    struct al_train_config config;
    struct al_ranks ranks;
    bool lead;             /* rank 0 (or the only process): the one that writes */
    bool stop_agreed;      /* a failure every rank knows of: end normally, do not abort the others */
    int64_t micro_count;   /* micro-batches of one step over all ranks */
    struct al_data_parallel dp;
    struct al_run_folder folder; /* locked for the whole run */
    const char *run_dir;         /* folder.path */
    struct al_backend *backend;
    struct al_model *model;
    struct al_tokenizer *tokenizer;
    struct al_ping ping;
    bool have_ping;
    struct al_checkpoint resume_from;
    bool resuming;
    struct al_data_stream *stream;
    struct al_lora *lora;
    struct al_optimizer *optimizer;
    struct al_schedule schedule;
    struct al_workspace *workspace;
    struct al_metrics_log *metrics;
    struct al_trainer_state state;
    int64_t loss_capacity;
    int64_t total_steps;
    int64_t first_step; /* where this process started */
    double started_at;
    char *last_checkpoint;
    int64_t last_checkpoint_step;
    struct al_gen_eval *gen_eval; /* NULL when gen_eval_every is 0 */
    struct al_batch_skips skips;
    /* Where each micro-batch of the current step started, and where the next begins
     * ([gradient_accumulation + 1]), with each one's loss: names the batches of a step. */
    struct al_data_cursor *micro_starts;
    double *micro_losses; /* [micro_count], every rank's, in data order */
    char skip_hint[1024]; /* the batch positions of the current run of non-finite steps */
    /* Throughput since the previous logged step: the progress line and the metrics. */
    double last_log_time;
    int64_t tokens_since_log;
    int64_t updates_applied; /* steps of this process that changed the adapter */
    int interrupted_by;      /* SIGINT or SIGTERM when a stop was asked for, else 0 */
};

/* ---- set-up ---- */

static int choose_chat_format(const struct trainer *t, enum al_chat_format *format)
{
    return al_chat_format_for_model(t->config.model, t->config.chat_format, format);
}

static int load_ping(struct trainer *t)
{
    enum al_ping_mode mode;
    if (al_ping_mode_parse(t->config.ping_mode, &mode) != 0)
        return -1;
    if (mode == AL_PING_NONE)
        return 0;
    if (t->config.ping_prefixes[0] == '\0')
        return al_fail("ping_mode %s needs ping_prefixes (a file of prefixes)", t->config.ping_mode);
    if (al_ping_load(&t->ping, t->config.ping_prefixes) != 0 ||
        al_ping_targets_parse(t->config.ping_targets, &t->ping.targets) != 0)
        return -1;
    t->ping.mode = mode;
    t->ping.seed = (uint64_t)t->config.seed;
    t->have_ping = true;
    return 0;
}

/* The checkpoint to resume from (*path NULL for a fresh run). */
static int find_resume_point(const struct trainer *t, char **path)
{
    *path = NULL;
    if (t->config.resume[0] == '\0')
        return 0;
    if (strcmp(t->config.resume, "auto") != 0)
        return (*path = strdup(t->config.resume)) ? 0 : al_fail("out of memory");
    if (al_checkpoint_find_resume(t->run_dir, path) != 0)
        return -1;
    if (!*path)
        al_log_info("resume auto: %s has no checkpoint yet, starting a fresh run", t->run_dir);
    return 0;
}

/* Loads the checkpoint at path (NULL: a fresh run; the caller keeps path), and checks the
 * config against it. */
static int load_resume_point(struct trainer *t, char *path)
{
    if (!path)
        return 0;
    int rc = al_checkpoint_load(&t->resume_from, path);
    if (rc == 0) {
        const char *names[64];
        int differences = al_train_config_fixed_differences(&t->resume_from.config, &t->config, names, 64);
        if (differences > 0) {
            char list[1024] = "";
            for (int i = 0; i < differences && i < 64; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
            rc = al_fail("cannot resume from %s: these keys differ from the checkpoint's and may not change on "
                         "resume: %s",
                         path, list);
            al_checkpoint_release(&t->resume_from);
        } else {
            t->resuming = true;
            al_log_info("resuming from %s (step %lld)", path, (long long)t->resume_from.state.step);
        }
    }
    return rc;
}

static int open_stream(struct trainer *t)
{
    enum al_chat_format format;
    if (choose_chat_format(t, &format) != 0)
        return -1;
    struct al_data_stream_options options = {
        .train_path = t->config.train_data,
        .eval_path = t->config.eval_data,
        .eval_fraction = t->config.eval_fraction,
        .ratio = t->config.harmful_benign_ratio,
        .seed = (uint64_t)t->config.seed,
        .strict = t->config.strict_data,
        .ping = t->have_ping ? &t->ping : NULL,
        .pack = {.max_len = (int)t->config.max_len, .rows_per_batch = (int)t->config.micro_batch_rows,
                 .overlong = AL_OVERLONG_TRUNCATE},
    };
    options.example.format = format;
    options.example.chat.mask = t->config.last_turn_only ? AL_CHAT_MASK_LAST_ASSISTANT : AL_CHAT_MASK_ALL_ASSISTANT;
    options.example.chat.string_arguments_as_objects = !t->config.arguments_as_strings;
    struct al_data_cursor cursor = {0, 0};
    if (t->resuming && t->resume_from.state.data_cursor &&
        al_data_cursor_from_json(&cursor, t->resume_from.state.data_cursor, t->resume_from.path) != 0)
        return -1;
    t->stream = al_data_stream_open(&options, t->tokenizer, &cursor);
    return t->stream ? 0 : -1;
}

static int64_t planned_steps(const struct trainer *t)
{
    if (t->config.max_steps > 0)
        return t->config.max_steps;
    double batches = t->config.epochs * (double)al_data_stream_batches_per_epoch(t->stream);
    int64_t steps = (int64_t)ceil(batches / (double)t->micro_count);
    return steps > 0 ? steps : 1;
}

static int create_adapter(struct trainer *t)
{
    const struct al_model_config *model = al_model_get_config(t->model);
    if (t->config.init_adapter[0]) {
        t->lora = al_lora_load_peft(model, t->backend, t->config.init_adapter);
    } else {
        struct al_lora_config lora;
        if (al_train_config_lora(&t->config, &lora) != 0)
            return -1;
        t->lora = al_lora_create(model, t->backend, &lora, (uint64_t)t->config.seed);
    }
    if (!t->lora)
        return -1;
    struct al_adamw_config adamw = al_train_config_adamw(&t->config);
    t->optimizer = al_optimizer_create(t->backend, t->lora->num_params, &adamw);
    if (!t->optimizer)
        return -1;
    return t->resuming ? al_checkpoint_restore(&t->resume_from, t->lora, t->optimizer) : 0;
}

static int restore_progress(struct trainer *t)
{
    if (!t->resuming)
        return 0;
    const struct al_trainer_state *saved = &t->resume_from.state;
    t->state.step = saved->step;
    t->state.tokens_seen = saved->tokens_seen;
    t->state.elapsed_seconds = saved->elapsed_seconds;
    t->loss_capacity = saved->loss_history_count + 16;
    t->state.loss_history = malloc((size_t)t->loss_capacity * sizeof(double));
    if (!t->state.loss_history)
        return al_fail("out of memory");
    if (saved->loss_history_count)
        memcpy(t->state.loss_history, saved->loss_history, (size_t)saved->loss_history_count * sizeof(double));
    t->state.loss_history_count = saved->loss_history_count;
    t->last_checkpoint = strdup(t->resume_from.path);
    t->last_checkpoint_step = saved->step;
    return 0;
}

/* The generation eval reads the stream's eval records; it needs the chat format too. */
static int open_gen_eval(struct trainer *t)
{
    enum al_chat_format format;
    if (t->config.gen_eval_every == 0)
        return 0;
    if (choose_chat_format(t, &format) != 0)
        return -1;
    t->gen_eval = al_gen_eval_open(&t->config, t->run_dir, t->stream, t->model, t->tokenizer, format,
                                t->resuming ? t->state.step : -1);
    return t->gen_eval ? 0 : -1;
}

/* Refuses a run in which no step has a non-zero learning rate; warns about warmup that
 * covers every step and about eval_every without eval records. */
static int check_learnable(const struct trainer *t)
{
    int train_records, eval_records;
    al_data_stream_counts(t->stream, &train_records, &eval_records);
    struct al_learnability plan = {
        .schedule = &t->schedule,
        .updates_done = t->optimizer->updates,
        .steps_left = t->total_steps - t->state.step,
        .total_steps = t->total_steps,
        .eval_every = t->config.eval_every,
        .eval_records = eval_records,
    };
    return al_learnability_check(&plan);
}

/* The ranks of a data-parallel run (one process alone). The others log only warnings and
 * errors, each line naming its rank. */
static int open_ranks(struct trainer *t)
{
    if (al_ranks_open(&t->ranks, t->config.collective_timeout) != 0)
        return -1;
    t->lead = t->ranks.rank == 0;
    t->micro_count = t->config.gradient_accumulation * t->ranks.size;
    t->state.ranks = t->ranks.size;
    if (!t->lead) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rank %d: ", t->ranks.rank);
        al_log_set_prefix(prefix);
        if (al_log_get_level() < AL_LOG_WARN)
            al_log_set_level(AL_LOG_WARN);
    }
    return 0;
}

/* Rank 0 takes the run folder and finds the checkpoint to resume from, and tells the other
 * ranks which (or that it failed): they never touch the folder. */
struct start_point {
    int32_t ok;
    char checkpoint[AL_CONFIG_PATH_MAX + 64]; /* empty: a fresh run */
};

static int choose_start(struct trainer *t, char **resume_path)
{
    struct start_point start = {0, ""};
    *resume_path = NULL;
    if (t->lead) {
        int rc = al_run_folder_open(&t->folder, &t->config);
        if (rc == 0) {
            t->run_dir = t->folder.path;
            rc = find_resume_point(t, resume_path);
        }
        start.ok = rc == 0;
        if (*resume_path && strlen(*resume_path) >= sizeof start.checkpoint)
            start.ok = 0, rc = al_fail("the checkpoint path %s is too long", *resume_path);
        if (start.ok && *resume_path)
            snprintf(start.checkpoint, sizeof start.checkpoint, "%s", *resume_path);
        if (al_ranks_broadcast(&t->ranks, 0, &start, sizeof start, "where the run starts") != 0 || rc != 0) {
            t->stop_agreed = rc != 0;
            return -1;
        }
        return 0;
    }
    t->folder.lock_fd = -1;
    if (al_ranks_broadcast(&t->ranks, 0, &start, sizeof start, "where the run starts") != 0)
        return -1;
    if (!start.ok) {
        t->stop_agreed = true;
        return al_fail("rank %d: rank 0 could not open the run folder or its checkpoint (its message says why)",
                       t->ranks.rank);
    }
    if (start.checkpoint[0] && !(*resume_path = strdup(start.checkpoint)))
        return al_fail("out of memory");
    return 0;
}

/* The device a rank trains on: its own GPU, by its local rank, for CUDA. */
static struct al_backend *create_backend(const struct trainer *t)
{
    return al_backend_create_for_rank(t->config.device, t->ranks.local_rank);
}

/* Ranks on a device with its own collectives join its group (rank 0's id, over MPI). */
static int join_device_group(struct trainer *t)
{
    const struct al_backend_ops *ops = t->backend->ops;
    if (!al_ranks_many(&t->ranks) || !ops->group_join)
        return 0;
    unsigned char id[AL_BACKEND_GROUP_ID_BYTES] = {0};
    int32_t made = !t->lead || ops->group_id(t->backend, id) == 0;
    if (al_ranks_broadcast(&t->ranks, 0, &made, sizeof made, "whether the device group has an id") != 0)
        return -1;
    if (!made)
        return t->lead ? -1 : al_fail("rank %d: rank 0 could not make the device group (its message says why)",
                                      t->ranks.rank);
    if (al_ranks_broadcast(&t->ranks, 0, id, sizeof id, "the device group's id") != 0)
        return -1;
    return ops->group_join(t->backend, id, t->ranks.rank, t->ranks.size);
}

/* The CPU backend is the bit-exact reference: its micro-batch gradients are summed in a
 * fixed order, so that N ranks give one process's bits. Elsewhere they accumulate in place. */
static int open_data_parallel(struct trainer *t)
{
    if (join_device_group(t) != 0)
        return -1;
    bool in_order = strcmp(t->backend->name, "cpu") == 0;
    return al_data_parallel_init(&t->dp, &t->ranks, t->lora, t->config.gradient_accumulation, in_order);
}

static int set_up(struct trainer *t)
{
    t->last_checkpoint_step = -1;
    t->folder.lock_fd = -1;
    if (al_train_config_refuse_hub_id("model", t->config.model) != 0 || open_ranks(t) != 0)
        return -1;
    char *resume_path = NULL;
    if (choose_start(t, &resume_path) != 0)
        return -1;
    size_t micros = (size_t)t->micro_count;
    int rc = al_batch_skips_parse(t->config.skip_batches, &t->skips);
    t->micro_starts = calloc(micros + 1, sizeof *t->micro_starts);
    t->micro_losses = calloc(micros, sizeof *t->micro_losses);
    if (rc == 0 && (!t->micro_starts || !t->micro_losses))
        rc = al_fail("out of memory");
    if (rc == 0)
        rc = load_resume_point(t, resume_path);
    free(resume_path);
    if (rc != 0 || load_ping(t) != 0)
        return -1;
    if (!(t->backend = create_backend(t)) || !(t->model = al_model_load(t->config.model, t->backend)) ||
        !(t->tokenizer = al_tokenizer_load(t->config.model)))
        return -1;
    if (open_stream(t) != 0 || create_adapter(t) != 0 || restore_progress(t) != 0)
        return -1;
    t->total_steps = planned_steps(t);
    if (al_train_config_schedule(&t->config, t->total_steps, &t->schedule) != 0 || check_learnable(t) != 0)
        return -1;
    int64_t max_tokens = t->config.micro_batch_rows * t->config.max_len;
    t->workspace = al_workspace_create(t->model, t->lora, max_tokens, t->config.gradient_checkpointing);
    if (!t->workspace || open_data_parallel(t) != 0)
        return -1;
    if (!t->lead)
        return 0;
    t->metrics = al_metrics_open(t->run_dir, t->resuming ? t->state.step : -1);
    if (!t->metrics)
        return -1;
    return open_gen_eval(t);
}

/* Every rank says whether its set-up worked; all start, or none does, naming the rank
 * that could not. */
static int agree_on_start(struct trainer *t, int rc)
{
    if (!al_ranks_many(&t->ranks) || t->stop_agreed || !t->ranks.mpi)
        return rc;
    int32_t ok = rc == 0, first_failed = -1;
    int32_t *all = t->lead ? calloc((size_t)t->ranks.size, sizeof *all) : NULL;
    if (t->lead && !all)
        return al_fail("out of memory");
    int exchanged = al_ranks_gather(&t->ranks, 0, &ok, all, sizeof ok, "whether the rank could start");
    for (int r = 0; exchanged == 0 && t->lead && r < t->ranks.size && first_failed < 0; r++)
        if (!all[r])
            first_failed = r;
    free(all);
    if (exchanged != 0 ||
        al_ranks_broadcast(&t->ranks, 0, &first_failed, sizeof first_failed, "whether every rank could start") != 0)
        return -1;
    if (first_failed < 0)
        return 0;
    t->stop_agreed = true;
    if (rc != 0)
        return rc;
    return al_fail("rank %d: rank %d could not start (its message says why), so no rank trains", t->ranks.rank,
                   first_failed);
}

static void tear_down(struct trainer *t)
{
    al_data_parallel_free(&t->dp);
    al_gen_eval_free(t->gen_eval);
    al_metrics_close(t->metrics);
    al_workspace_free(t->workspace);
    al_optimizer_free(t->optimizer);
    al_lora_free(t->lora);
    al_data_stream_free(t->stream);
    if (t->resuming)
        al_checkpoint_release(&t->resume_from);
    if (t->have_ping)
        al_ping_free(&t->ping);
    al_tokenizer_free(t->tokenizer);
    al_model_free(t->model);
    al_backend_destroy(t->backend);
    cJSON_Delete(t->state.data_cursor);
    free(t->state.loss_history);
    free(t->last_checkpoint);
    al_batch_skips_free(&t->skips);
    free(t->micro_starts);
    free(t->micro_losses);
    al_ranks_close(&t->ranks);
}

/* ---- one step ---- */

static struct al_batch batch_view(const struct al_packed_batch *packed)
{
    return (struct al_batch){packed->n, packed->input_ids, packed->targets, packed->positions, packed->doc_start};
}

/* Dropout masks of micro-batch k of a step: a function of (seed, step, k) only. */
static uint64_t dropout_seed(const struct trainer *t, int64_t step, int64_t micro)
{
    return al_hash64((uint64_t)t->config.seed ^ al_hash64(((uint64_t)step << 16) | (uint64_t)micro));
}

struct step_outcome {
    double loss;
    int64_t tokens, targets;
    struct al_step_report report;
};

/* This rank's micro-batches first .. first + count - 1 of the step (mine[0 .. count-1]),
 * each gradient where the data-parallel sum wants it; grad_scale is over the whole step. */
static int forward_backward_mine(struct trainer *t, struct al_packed_batch *mine, int64_t first, int64_t count,
                                 float grad_scale)
{
    for (int64_t j = 0; j < count; j++) {
        int64_t k = first + j;
        struct al_batch batch = batch_view(&mine[j]);
        double part = 0;
        if (al_data_parallel_begin(&t->dp, k) != 0)
            return -1;
        int rc = al_model_forward_backward(t->model, t->lora, t->workspace, &batch, grad_scale,
                                           dropout_seed(t, t->state.step, k), &part);
        if (al_data_parallel_end(&t->dp, k) != 0 || rc != 0)
            return -1;
        t->micro_losses[k] = part;
    }
    return 0;
}

/* The step's gradient on every rank, and its loss: the micro-batch losses summed in data
 * order (every rank has them all), over the step's target tokens. */
static int forward_backward_all(struct trainer *t, struct al_packed_batch *mine, struct step_outcome *out)
{
    int64_t per_rank = t->config.gradient_accumulation, first = (int64_t)t->ranks.rank * per_rank;
    float grad_scale = out->targets > 0 ? 1.0f / (float)out->targets : 0.0f;
    if (forward_backward_mine(t, mine, first, per_rank, grad_scale) != 0 ||
        al_data_parallel_finish(&t->dp, t->state.step + 1) != 0 ||
        al_data_parallel_share(&t->dp, t->micro_losses, t->state.step + 1) != 0)
        return -1;
    double loss_sum = 0;
    for (int64_t k = 0; k < t->micro_count; k++)
        loss_sum += t->micro_losses[k];
    out->loss = out->targets > 0 ? loss_sum / (double)out->targets : 0.0;
    return 0;
}

/* The next micro-batch and the data position it starts at, past any that skip_batches
 * names. */
static int next_batch(struct trainer *t, struct al_packed_batch *batch, struct al_data_cursor *start)
{
    for (;;) {
        *start = al_data_stream_cursor(t->stream);
        if (al_data_stream_next(t->stream, batch) != 1)
            return -1;
        if (!al_batch_skips_take(&t->skips, t->stream, *start))
            return 0;
        char *name = al_batch_describe(t->stream, t->config.train_data, *start, al_data_stream_cursor(t->stream));
        al_log_info("skipping the batch at %s, as skip_batches asks", name ? name : "?");
        free(name);
        al_packed_batch_free(batch);
    }
}

/* Every rank reads all of the step's micro-batches, to keep the data position, the token
 * counts and the skip_batches choices of one process, and keeps its own share. */
static int train_step(struct trainer *t, struct step_outcome *out)
{
    int64_t count = t->micro_count, per_rank = t->config.gradient_accumulation;
    int64_t first = (int64_t)t->ranks.rank * per_rank;
    struct al_packed_batch *mine = calloc((size_t)per_rank, sizeof *mine);
    if (!mine)
        return al_fail("out of memory");
    int rc = 0;
    int64_t taken = 0;
    for (int64_t k = 0; k < count && rc == 0; k++) {
        struct al_packed_batch batch;
        if ((rc = next_batch(t, &batch, &t->micro_starts[k])) != 0)
            break;
        out->tokens += batch.n;
        out->targets += batch.n_targets;
        if (k >= first && k < first + per_rank)
            mine[taken++] = batch;
        else
            al_packed_batch_free(&batch);
    }
    t->micro_starts[count] = al_data_stream_cursor(t->stream);
    if (rc == 0)
        rc = forward_backward_all(t, mine, out);
    if (rc == 0) {
        float lr = (float)al_schedule_lr(&t->schedule, t->optimizer->updates);
        rc = al_optimizer_step(t->optimizer, t->lora, lr, &out->report);
    }
    for (int64_t k = 0; k < taken; k++)
        al_packed_batch_free(&mine[k]);
    free(mine);
    return rc;
}

/* ---- records of progress ---- */

static int remember_loss(struct trainer *t, double loss)
{
    if (t->state.loss_history_count == t->loss_capacity) {
        int64_t capacity = t->loss_capacity ? t->loss_capacity * 2 : 256;
        double *grown = realloc(t->state.loss_history, (size_t)capacity * sizeof(double));
        if (!grown)
            return al_fail("out of memory");
        t->state.loss_history = grown;
        t->loss_capacity = capacity;
    }
    t->state.loss_history[t->state.loss_history_count++] = loss;
    return 0;
}

static double session_seconds(const struct trainer *t)
{
    return al_wall_time() - t->started_at;
}

static void print_progress(const struct trainer *t, const struct step_outcome *out, double tokens_per_second)
{
    struct al_progress progress = {
        .step = t->state.step,
        .total_steps = t->total_steps,
        .session_first_step = t->first_step,
        .session_seconds = session_seconds(t),
        .loss = out->loss,
        .lr = out->report.lr,
        .grad_norm = out->report.grad_norm,
        .tokens_per_second = tokens_per_second,
    };
    char line[512];
    bool terminal = isatty(STDERR_FILENO);
    al_progress_format(line, sizeof line, &progress, terminal);
    fprintf(stderr, terminal ? "\r%s\033[K" : "%s\n", line);
    /* Left open on a terminal, so that a log line or the generation eval's progress ends it
     * before writing rather than landing at its end. */
    if (terminal)
        al_status_line_open(stderr);
    if (terminal && t->state.step == t->total_steps)
        al_status_line_end();
}

/* Tokens trained since the previous logged step over the seconds since then: one number
 * for the progress line, metrics.jsonl and TensorBoard. */
static double throughput_since_last_log(struct trainer *t)
{
    double now = al_wall_time(), seconds = now - t->last_log_time;
    double rate = seconds > 0 ? (double)t->tokens_since_log / seconds : 0;
    t->last_log_time = now;
    t->tokens_since_log = 0;
    return rate;
}

static int log_step(struct trainer *t, const struct step_outcome *out)
{
    t->tokens_since_log += out->tokens;
    if (t->state.step % t->config.log_every != 0 && t->state.step != t->total_steps)
        return 0;
    double tokens_per_second = throughput_since_last_log(t);
    struct al_metric metrics[] = {
        {"loss", out->loss},
        {"lr", out->report.lr},
        {"grad_norm", out->report.grad_norm},
        {"tokens", (double)out->tokens},
        {"target_tokens", (double)out->targets},
        {"tokens_per_second", tokens_per_second},
        {"skipped_nonfinite", out->report.skipped ? 1.0 : 0.0},
    };
    print_progress(t, out, tokens_per_second);
    return al_metrics_write(t->metrics, "train", t->state.step, metrics, (int)(sizeof metrics / sizeof metrics[0]));
}

/* A split's loss, or "none" when the eval records have no such split (plain chat data). */
static void format_split_loss(char *out, size_t size, double loss)
{
    if (isnan(loss))
        snprintf(out, size, "none");
    else
        snprintf(out, size, "%.4f", loss);
}

/* Teacher-forced loss on the eval records, harmful and benign separately. */
static int evaluate(struct trainer *t)
{
    double sums[2] = {0, 0};
    int64_t targets[2] = {0, 0};
    for (int harmful = 0; harmful < 2; harmful++) {
        const struct al_packed_batch *batches;
        int count;
        if (al_data_stream_eval_batches(t->stream, harmful, &batches, &count) != 0)
            return -1;
        for (int i = 0; i < count; i++) {
            struct al_batch batch = batch_view(&batches[i]);
            double sum = 0;
            if (al_model_loss(t->model, t->lora, t->workspace, &batch, &sum) != 0)
                return -1;
            sums[harmful] += sum;
            targets[harmful] += batches[i].n_targets;
        }
    }
    if (targets[0] + targets[1] == 0)
        return 0;
    struct al_metric metrics[] = {
        {"loss", (sums[0] + sums[1]) / (double)(targets[0] + targets[1])},
        {"loss_harmful", targets[1] ? sums[1] / (double)targets[1] : NAN},
        {"loss_benign", targets[0] ? sums[0] / (double)targets[0] : NAN},
    };
    char harmful[32], benign[32];
    format_split_loss(harmful, sizeof harmful, metrics[1].value);
    format_split_loss(benign, sizeof benign, metrics[2].value);
    al_log_info("eval at step %lld: loss %.4f (harmful %s, benign %s)", (long long)t->state.step, metrics[0].value,
                harmful, benign);
    return al_metrics_write(t->metrics, "eval", t->state.step, metrics, 3);
}

static int save_checkpoint(struct trainer *t)
{
    struct al_data_cursor cursor = al_data_stream_cursor(t->stream);
    cJSON_Delete(t->state.data_cursor);
    t->state.data_cursor = al_data_cursor_to_json(&cursor);
    t->state.elapsed_seconds = (t->resuming ? t->resume_from.state.elapsed_seconds : 0) + session_seconds(t);
    struct al_checkpoint_save_args args = {t->run_dir, &t->config, &t->state, &t->schedule, t->lora, t->optimizer};
    /* The best checkpoint by the generation eval's combined score survives keep-last-K. */
    int64_t best = t->gen_eval ? al_gen_eval_best_checkpoint(t->gen_eval, NULL) : -1;
    char *path = NULL;
    if (!t->state.data_cursor || al_checkpoint_save_protecting(&args, &best, best >= 0 ? 1 : 0, &path) != 0)
        return -1;
    free(t->last_checkpoint);
    t->last_checkpoint = path;
    t->last_checkpoint_step = t->state.step;
    /* Every checkpoint of a run with the generation eval gets a score. */
    if (t->gen_eval) {
        const struct al_gen_eval_measure *latest = al_gen_eval_latest(t->gen_eval);
        if ((!latest || latest->step != t->state.step) && al_gen_eval_measure(t->gen_eval, t->lora, t->state.step,
                                                                           t->metrics) != 0)
            return -1;
        return al_gen_eval_checkpoint_saved(t->gen_eval, t->state.step);
    }
    return 0;
}

static char *checkpoint_folder(const struct trainer *t, int64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
    return al_path_join(t->run_dir, name);
}

/* Names the best checkpoint by combined score (refusal rate + helpfulness) in the log. */
static void report_best_checkpoint(const struct trainer *t)
{
    double combined;
    int64_t best = al_gen_eval_best_checkpoint(t->gen_eval, &combined);
    if (best < 0)
        return;
    char *path = checkpoint_folder(t, best);
    al_log_info("best checkpoint by combined score ((harmful refusal rate + benign helpfulness) / 2, judge %s): "
                "%s (%.1f of 100)",
                al_gen_eval_judge_name(t->gen_eval), path ? path : "?", 100.0 * combined);
    free(path);
}

/* The generation eval when due, and the misalignment alarm after it. */
static int check_alignment(struct trainer *t, bool step_skipped)
{
    if (!t->gen_eval || t->state.step % t->config.gen_eval_every != 0)
        return 0;
    if (al_gen_eval_measure(t->gen_eval, t->lora, t->state.step, t->metrics) != 0)
        return -1;
    double drop;
    if (!al_gen_eval_alarm(t->gen_eval, &drop))
        return 0;
    const struct al_gen_eval_measure *latest = al_gen_eval_latest(t->gen_eval);
    al_log_warn("misalignment alarm at step %lld: the harmful refusal rate (judge %s) is %.1f%%, %.1f points below "
                "the step-0 baseline (threshold %g points)",
                (long long)t->state.step, al_gen_eval_judge_name(t->gen_eval), 100.0 * latest->refusal_rate, drop,
                t->config.misalignment_threshold);
    if (strcmp(t->config.on_misalignment, "stop") != 0)
        return 0;
    /* Keep this step too (resumable, and scored), unless its update was not finite. */
    if (!step_skipped && t->last_checkpoint_step != t->state.step && save_checkpoint(t) != 0)
        return -1;
    double combined;
    int64_t best = al_gen_eval_best_checkpoint(t->gen_eval, &combined);
    char *path = best >= 0 ? checkpoint_folder(t, best) : NULL;
    int rc = al_fail("stopping: misalignment alarm at step %lld (harmful refusal rate %.1f points below the "
                     "step-0 baseline, judge %s); the best checkpoint by combined score ((refusal rate + "
                     "helpfulness) / 2) is %s (%.1f of 100)",
                     (long long)t->state.step, drop, al_gen_eval_judge_name(t->gen_eval),
                     path ? path : "(none saved)", 100.0 * combined);
    free(path);
    return rc;
}

/* ---- the loop ---- */

static int stop_for_nonfinite(const struct trainer *t, const struct step_outcome *out)
{
    return al_fail("stopping: %lld steps in a row had a non-finite gradient (max_nonfinite_steps %lld); the last "
                   "good checkpoint is %s. The warnings above name the records of those steps' batches; if the data "
                   "is at fault, resume without them: agentlora train ... --resume auto --skip_batches %s",
                   (long long)out->report.consecutive_nonfinite, (long long)t->config.max_nonfinite_steps,
                   t->last_checkpoint ? t->last_checkpoint : "(none yet)", t->skip_hint);
}

/* Names the batches of a step whose gradient was not finite, and adds the suspects
 * (those whose own loss was not finite; all of them when none was) to the skip hint. */
static void warn_nonfinite(struct trainer *t, const struct step_outcome *out)
{
    int64_t count = t->micro_count;
    bool any_loss_nonfinite = false;
    for (int64_t k = 0; k < count; k++)
        any_loss_nonfinite |= !isfinite(t->micro_losses[k]);
    if (out->report.consecutive_nonfinite <= 1)
        t->skip_hint[0] = '\0';
    char batches[4096] = "";
    for (int64_t k = 0; k < count; k++) {
        char *name = al_batch_describe(t->stream, t->config.train_data, t->micro_starts[k], t->micro_starts[k + 1]);
        size_t used = strlen(batches);
        snprintf(batches + used, sizeof batches - used, "%s%s with loss %g", k ? "; " : "", name ? name : "?",
                 t->micro_losses[k]);
        free(name);
        if (any_loss_nonfinite && isfinite(t->micro_losses[k]))
            continue;
        struct al_data_cursor start = al_data_stream_normalise_cursor(t->stream, t->micro_starts[k]);
        used = strlen(t->skip_hint);
        snprintf(t->skip_hint + used, sizeof t->skip_hint - used, "%s%lld:%lld", used ? "," : "",
                 (long long)start.epoch, (long long)start.position);
    }
    al_log_warn("step %lld: non-finite gradient (norm %g), update skipped; its batch%s at data position%s %s",
                (long long)t->state.step + 1, out->report.grad_norm, count > 1 ? "es" : "", count > 1 ? "s" : "",
                batches);
}

static bool changed_the_adapter(const struct step_outcome *out)
{
    return !out->report.skipped && out->report.lr > 0 && out->report.grad_norm > 0;
}

/* A stop asked for by SIGINT/SIGTERM: keep this step as a checkpoint (unless its update
 * was not finite: then the last good one stays the resume point) and say where it is. */
static int stop_for_interrupt(struct trainer *t, bool step_skipped, int signal)
{
    t->interrupted_by = signal;
    if (!step_skipped && t->last_checkpoint_step != t->state.step && save_checkpoint(t) != 0)
        return -1;
    al_log_warn("interrupted by %s after step %lld of %lld: the checkpoint is %s; the same command with --resume "
                "auto continues from it",
                t->interrupted_by == SIGTERM ? "SIGTERM" : "SIGINT", (long long)t->state.step,
                (long long)t->total_steps, t->last_checkpoint ? t->last_checkpoint : "(none saved)");
    return 0;
}

/* What rank 0 decided at the end of a step, for every rank. */
enum step_end { STEP_GO_ON = 0, STEP_STOP = 1, STEP_FAILED = 2 };
struct step_verdict {
    int32_t end;    /* enum step_end */
    int32_t signal; /* STEP_STOP: the signal that asked for it */
};

/* A stop signal at any rank stops them all: each says whether it got one. */
static int any_rank_interrupted(struct trainer *t, int64_t step, int *signal)
{
    int32_t mine = al_interrupt_requested(), first = 0;
    *signal = mine;
    if (!al_ranks_many(&t->ranks))
        return 0;
    int32_t *all = t->lead ? calloc((size_t)t->ranks.size, sizeof *all) : NULL;
    if (t->lead && !all)
        return al_fail("out of memory");
    char what[64];
    snprintf(what, sizeof what, "whether a stop was asked for after step %lld", (long long)step);
    int rc = al_ranks_gather(&t->ranks, 0, &mine, all, sizeof mine, what);
    for (int r = 0; rc == 0 && t->lead && r < t->ranks.size && !first; r++)
        first = all[r];
    free(all);
    if (t->lead)
        *signal = first;
    return rc;
}

/* Rank 0's work after a step: the log, evaluations, the alarm, checkpoints, a stop. */
static struct step_verdict lead_end_of_step(struct trainer *t, const struct step_outcome *out, int signal)
{
    struct step_verdict failed = {STEP_FAILED, 0}, go_on = {STEP_GO_ON, 0};
    if (log_step(t, out) != 0)
        return failed;
    bool last = t->state.step == t->total_steps;
    if (t->config.eval_every > 0 && t->state.step % t->config.eval_every == 0 && !last && evaluate(t) != 0)
        return failed;
    if (check_alignment(t, out->report.skipped) != 0)
        return failed;
    /* Never checkpoint inside a run of non-finite steps: keep-last-K could otherwise
     * delete the last checkpoint written before the trouble began. */
    bool due = t->config.save_every > 0 && t->state.step % t->config.save_every == 0;
    if ((due || last) && !out->report.skipped && save_checkpoint(t) != 0)
        return failed;
    if (signal && !last) {
        if (stop_for_interrupt(t, out->report.skipped, signal) != 0)
            return failed;
        return (struct step_verdict){STEP_STOP, signal};
    }
    return go_on;
}

/* Rank 0's verdict to the others; what a rank other than 0 does with it. */
static int share_verdict(struct trainer *t, struct step_verdict *verdict)
{
    char what[64];
    snprintf(what, sizeof what, "rank 0's end of step %lld", (long long)t->state.step);
    if (al_ranks_broadcast(&t->ranks, 0, verdict, sizeof *verdict, what) != 0)
        return -1;
    t->stop_agreed = verdict->end == STEP_FAILED;
    if (verdict->end == STEP_FAILED && !t->lead)
        return al_fail("rank %d: rank 0 stopped the run after step %lld (its message says why)", t->ranks.rank,
                       (long long)t->state.step);
    if (verdict->end == STEP_STOP)
        t->interrupted_by = verdict->signal;
    return verdict->end == STEP_FAILED ? -1 : 0;
}

/* After the last step: the final checkpoint, the best one named, the final evaluation. */
static int lead_end_of_run(struct trainer *t)
{
    if (t->last_checkpoint_step != t->state.step && t->optimizer->nonfinite_consecutive == 0 &&
        save_checkpoint(t) != 0)
        return -1;
    if (t->gen_eval)
        report_best_checkpoint(t);
    al_batch_skips_report_unused(&t->skips);
    if (t->state.step > t->first_step)
        al_learnability_warn_if_unchanged(t->updates_applied, t->state.step - t->first_step);
    return evaluate(t);
}

static int run_loop(struct trainer *t)
{
    t->first_step = t->state.step;
    t->started_at = al_wall_time();
    t->last_log_time = t->started_at;
    /* The baseline: the adapter before any update of this run. */
    if (t->gen_eval && !al_gen_eval_has_baseline(t->gen_eval) &&
        al_gen_eval_measure(t->gen_eval, t->lora, t->state.step, t->metrics) != 0)
        return -1;
    while (t->state.step < t->total_steps) {
        struct step_outcome out = {0};
        if (train_step(t, &out) != 0)
            return -1;
        /* Every rank has the same summed gradient, so each makes the same decision here. */
        if (out.report.skipped) {
            if (t->lead)
                warn_nonfinite(t, &out);
            if (out.report.consecutive_nonfinite >= t->config.max_nonfinite_steps) {
                t->stop_agreed = true;
                return stop_for_nonfinite(t, &out);
            }
        }
        t->state.step++;
        t->state.tokens_seen += out.tokens;
        t->updates_applied += changed_the_adapter(&out);
        int signal;
        if (remember_loss(t, out.loss) != 0 || any_rank_interrupted(t, t->state.step, &signal) != 0)
            return -1;
        struct step_verdict verdict = {STEP_GO_ON, 0};
        if (t->lead)
            verdict = lead_end_of_step(t, &out, signal);
        if (al_ranks_many(&t->ranks) ? share_verdict(t, &verdict) != 0 : verdict.end == STEP_FAILED)
            return -1;
        if (verdict.end == STEP_STOP)
            return 0;
    }
    return t->lead ? lead_end_of_run(t) : 0;
}

/* The loop with the stop handlers in place, and the previous ones back afterwards. */
static int run_interruptible(struct trainer *t)
{
    struct al_interrupt_guard guard;
    if (al_interrupt_install(&guard) != 0)
        return -1;
    int rc = run_loop(t);
    al_interrupt_restore(&guard);
    return rc;
}

/* The lowest evaluation loss of the run and its step (metrics.jsonl holds every
 * evaluation, the resumed run's earlier ones included); NAN when there was none. */
static int best_eval_loss(const struct trainer *t, struct al_run_summary *summary)
{
    summary->best_loss = NAN;
    summary->best_step = -1;
    return al_metrics_lowest(t->run_dir, "eval", "loss", &summary->best_loss, &summary->best_step) < 0 ? -1 : 0;
}

/* A resume with another rank count: the same optimisation when the step's batch count is
 * unchanged; said either way. */
static void describe_resumed_batch(const struct trainer *t)
{
    if (!t->resuming)
        return;
    const struct al_checkpoint *from = &t->resume_from;
    int64_t before = from->state.ranks * from->config.gradient_accumulation;
    if (before != t->micro_count)
        al_log_warn("the checkpoint's steps had %lld batches (%lld rank%s x gradient_accumulation %lld); these have "
                    "%lld: the run goes on with the new batch, not as the original run would have",
                    (long long)before, (long long)from->state.ranks, from->state.ranks == 1 ? "" : "s",
                    (long long)from->config.gradient_accumulation, (long long)t->micro_count);
    else if (from->state.ranks != t->ranks.size)
        al_log_info("resuming a run of %lld rank%s with %d: the step's %lld batches are unchanged, so the run goes "
                    "on exactly as it would have",
                    (long long)from->state.ranks, from->state.ranks == 1 ? "" : "s", t->ranks.size,
                    (long long)t->micro_count);
}

static void describe_start(const struct trainer *t)
{
    int train_records, eval_records;
    al_data_stream_counts(t->stream, &train_records, &eval_records);
    char *summary = al_load_summary_format(al_data_stream_summary(t->stream));
    int64_t batches = al_data_stream_batches_per_epoch(t->stream);
    al_log_info("run %s: %s on %s, %d training records, %d eval records; an epoch uses each training record once: "
                "%lld batch%s of up to %lld row%s of %lld tokens",
                t->run_dir, t->config.model, t->backend->name, train_records, eval_records, (long long)batches,
                batches == 1 ? "" : "es", (long long)t->config.micro_batch_rows,
                t->config.micro_batch_rows == 1 ? "" : "s", (long long)t->config.max_len);
    if (summary)
        al_log_info("%s", summary);
    free(summary);
    double epochs = (double)t->total_steps * (double)t->micro_count / (double)batches;
    al_log_info("LoRA r=%d alpha=%g on %lld parameters; %lld steps of %lld batch%s = %.2f epochs%s",
                t->lora->config.rank, t->lora->config.alpha, (long long)t->lora->num_params,
                (long long)t->total_steps, (long long)t->micro_count, t->micro_count == 1 ? "" : "es", epochs,
                t->resuming ? " (resumed)" : "");
    if (al_ranks_many(&t->ranks))
        al_log_info("data parallel: %d ranks, each with %lld of a step's %lld batches (%s); rank 0 writes",
                    t->ranks.size, (long long)t->config.gradient_accumulation, (long long)t->micro_count,
                    t->dp.in_order ? "gradients summed in data order over MPI: one process's bits"
                                   : "gradients all-reduced by the device's collectives");
    describe_resumed_batch(t);
}

/* A failure the other ranks do not know of (this rank's own error, or a peer that stopped
 * answering): they may be waiting for this rank, so the whole run ends now. The last
 * checkpoint stays as rank 0 last wrote it (written atomically). */
static void abort_the_ranks(const struct trainer *t)
{
    if (!t->lead)
        al_log(AL_LOG_ERROR, "%s; ending every rank of the run (`latest` in rank 0's run folder names the last good "
               "checkpoint)", al_error_message());
    else if (t->last_checkpoint)
        al_log(AL_LOG_ERROR, "%s; ending every rank of the run (the last good checkpoint is %s)", al_error_message(),
               t->last_checkpoint);
    else
        al_log(AL_LOG_ERROR, "%s; ending every rank of the run (no checkpoint of it was written yet)",
               al_error_message());
    al_ranks_abort(&t->ranks, 1);
}

int al_train(const struct al_train_config *config, struct al_run_summary *summary)
{
    struct trainer t;
    memset(&t, 0, sizeof t);
    t.config = *config;
    int rc = agree_on_start(&t, set_up(&t));
    bool start_failed = rc != 0;
    if (rc == 0) {
        if (t.lead)
            describe_start(&t);
        rc = run_interruptible(&t);
    }
    if (rc == 0) {
        memset(summary, 0, sizeof *summary);
        summary->best_loss = NAN;
        summary->best_step = -1;
        if (t.lead)
            rc = best_eval_loss(&t, summary);
    }
    if (rc != 0 && al_ranks_many(&t.ranks) && !t.stop_agreed)
        abort_the_ranks(&t);
    if (rc == 0) {
        summary->steps = t.state.step;
        summary->tokens = t.state.tokens_seen;
        summary->seconds = t.state.elapsed_seconds;
        summary->final_loss = t.state.loss_history_count ? t.state.loss_history[t.state.loss_history_count - 1] : NAN;
        summary->total_steps = t.total_steps;
        summary->updates_applied = t.updates_applied;
        summary->session_steps = t.state.step - t.first_step;
        summary->interrupted_by = t.interrupted_by;
        summary->skipped_steps = t.optimizer->nonfinite_total;
        summary->adapter_path = t.last_checkpoint ? strdup(t.last_checkpoint) : NULL;
        summary->rank = t.ranks.rank;
    }
    tear_down(&t);
    al_run_folder_close(&t.folder, start_failed);
    return rc;
}

void al_trainer_summary_free(struct al_run_summary *summary)
{
    free((char *)summary->adapter_path);
    summary->adapter_path = NULL;
}
