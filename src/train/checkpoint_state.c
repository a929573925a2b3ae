/* The two files of a checkpoint that are not the PEFT adapter: optimizer.safetensors
 * (fp32 masters and AdamW moments) and trainer_state.json; loading a whole checkpoint
 * back and restoring it onto an adapter and an optimizer. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/optimizer.h"
#include "agentlora/safetensors.h"
#include "train/checkpoint_internal.h"

#define STATE_FORMAT "agentlora-trainer-state"
#define STATE_VERSION 1

static const char *const optimizer_tensors[3] = {"params", "exp_avg", "exp_avg_sq"};

/* ---- optimizer.safetensors ---- */

int al_checkpoint_write_optimizer(const char *dir, const struct al_lora *lora, const struct al_optimizer *optimizer)
{
    if (lora->num_params != optimizer->num_params)
        return al_fail("checkpoint: adapter has %" PRId64 " parameters, optimizer %" PRId64, lora->num_params,
                       optimizer->num_params);
    size_t bytes = (size_t)lora->num_params * sizeof(float);
    float *host[3] = {malloc(bytes), malloc(bytes), malloc(bytes)};
    char *path = al_path_join(dir, CHECKPOINT_OPTIMIZER);
    char updates[32];
    snprintf(updates, sizeof updates, "%" PRId64, optimizer->updates);
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    int rc = -1;
    if (!host[0] || !host[1] || !host[2] || !path || !writer)
        al_fail("out of memory");
    else if (al_lora_download_params(lora, host[0]) == 0 &&
             al_optimizer_download_state(optimizer, host[1], host[2]) == 0) {
        int64_t shape[1] = {lora->num_params};
        rc = al_safetensors_writer_set_metadata(writer, "optimizer_updates", updates);
        for (int i = 0; i < 3 && rc == 0; i++)
            rc = al_safetensors_writer_add(writer, optimizer_tensors[i], AL_DTYPE_F32, 1, shape, host[i]);
        if (rc == 0)
            rc = al_safetensors_writer_write(writer, path);
    }
    al_safetensors_writer_free(writer);
    free(path);
    for (int i = 0; i < 3; i++)
        free(host[i]);
    return rc;
}

static int read_optimizer(struct al_checkpoint *checkpoint, const char *dir)
{
    char *path = al_path_join(dir, CHECKPOINT_OPTIMIZER);
    struct al_safetensors *file = path ? al_safetensors_open(path) : NULL;
    int rc = file ? 0 : -1;
    float **targets[3] = {&checkpoint->params, &checkpoint->m, &checkpoint->v};
    for (int i = 0; i < 3 && rc == 0; i++) {
        const struct al_tensor_view *view = al_safetensors_find(file, optimizer_tensors[i]);
        if (!view || view->dtype != AL_DTYPE_F32 || view->ndim != 1 || view->shape[0] != checkpoint->num_params) {
            rc = al_fail("%s: tensor %s missing or not F32 [%" PRId64 "]", path, optimizer_tensors[i],
                         checkpoint->num_params);
            break;
        }
        *targets[i] = malloc(view->nbytes + 1);
        if (!*targets[i])
            rc = al_fail("out of memory");
        else
            memcpy(*targets[i], view->data, view->nbytes);
    }
    al_safetensors_close(file);
    free(path);
    return rc;
}

/* ---- trainer_state.json ---- */

static cJSON *int64_string(int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    return cJSON_CreateString(text);
}

static cJSON *uint64_string(uint64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, value);
    return cJSON_CreateString(text);
}

static cJSON *rngs_json(const struct al_trainer_state *state)
{
    cJSON *rngs = cJSON_CreateObject();
    for (int i = 0; rngs && i < state->num_rngs; i++) {
        cJSON *rng = cJSON_CreateObject();
        cJSON_AddItemToObject(rng, "state", uint64_string(state->rngs[i].rng.state));
        cJSON_AddItemToObject(rng, "increment", uint64_string(state->rngs[i].rng.increment));
        cJSON_AddItemToObject(rngs, state->rngs[i].name, rng);
    }
    return rngs;
}

static cJSON *schedule_json(const struct al_schedule *schedule, int64_t position)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "kind", al_schedule_kind_name(schedule->kind));
    cJSON_AddItemToObject(json, "peak_lr", al_json_exact_number(schedule->peak_lr));
    cJSON_AddItemToObject(json, "warmup_steps", int64_string(schedule->warmup_steps));
    cJSON_AddItemToObject(json, "total_steps", int64_string(schedule->total_steps));
    cJSON_AddItemToObject(json, "position", int64_string(position));
    return json;
}

static cJSON *optimizer_json(const struct al_optimizer *optimizer)
{
    cJSON *json = cJSON_CreateObject();
    cJSON_AddItemToObject(json, "updates", int64_string(optimizer->updates));
    cJSON_AddItemToObject(json, "nonfinite_total", int64_string(optimizer->nonfinite_total));
    cJSON_AddItemToObject(json, "nonfinite_consecutive", int64_string(optimizer->nonfinite_consecutive));
    cJSON_AddItemToObject(json, "num_params", int64_string(optimizer->num_params));
    return json;
}

static cJSON *state_json(const struct al_checkpoint_save_args *args)
{
    const struct al_trainer_state *state = args->state;
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "format", STATE_FORMAT);
    cJSON_AddNumberToObject(json, "version", STATE_VERSION);
    cJSON_AddItemToObject(json, "step", int64_string(state->step));
    cJSON_AddItemToObject(json, "tokens_seen", int64_string(state->tokens_seen));
    cJSON_AddItemToObject(json, "elapsed_seconds", al_json_exact_number(state->elapsed_seconds));
    cJSON_AddItemToObject(json, "ranks", int64_string(state->ranks > 0 ? state->ranks : 1));
    cJSON_AddItemToObject(json, "optimizer", optimizer_json(args->optimizer));
    cJSON_AddItemToObject(json, "schedule", schedule_json(args->schedule, args->optimizer->updates));
    cJSON_AddItemToObject(json, "rng", rngs_json(state));
    cJSON_AddItemToObject(json, "data_cursor",
                          state->data_cursor ? cJSON_Duplicate(state->data_cursor, true) : cJSON_CreateNull());
    if (state->loss_history) {
        cJSON *history = cJSON_AddArrayToObject(json, "loss_history");
        for (int64_t i = 0; history && i < state->loss_history_count; i++)
            cJSON_AddItemToArray(history, al_json_exact_number(state->loss_history[i]));
    }
    cJSON_AddItemToObject(json, "config", al_train_config_to_json(args->config));
    return json;
}

static int check_rng_names(const struct al_trainer_state *state)
{
    if (state->num_rngs < 0 || state->num_rngs > AL_CHECKPOINT_MAX_RNGS)
        return al_fail("checkpoint: %d RNG states (at most %d)", state->num_rngs, AL_CHECKPOINT_MAX_RNGS);
    for (int i = 0; i < state->num_rngs; i++) {
        if (state->rngs[i].name[0] == '\0' || !memchr(state->rngs[i].name, '\0', AL_CHECKPOINT_RNG_NAME_MAX))
            return al_fail("checkpoint: RNG %d has no name or an overlong one", i);
        for (int j = 0; j < i; j++)
            if (strcmp(state->rngs[i].name, state->rngs[j].name) == 0)
                return al_fail("checkpoint: two RNG states named '%s'", state->rngs[i].name);
    }
    if (state->loss_history_count < 0 || state->loss_history_count > INT32_MAX)
        return al_fail("checkpoint: bad loss history length %" PRId64, state->loss_history_count);
    return 0;
}

int al_checkpoint_write_state(const char *dir, const struct al_checkpoint_save_args *args)
{
    if (check_rng_names(args->state) != 0)
        return -1;
    cJSON *json = state_json(args);
    char *text = json ? cJSON_Print(json) : NULL;
    char *path = al_path_join(dir, CHECKPOINT_STATE);
    int rc = text && path ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(path);
    free(text);
    cJSON_Delete(json);
    return rc;
}

/* ---- reading trainer_state.json ---- */

static const cJSON *member(const cJSON *object, const char *key, const char *path)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return item ? item : al_fail_null("%s: missing '%s'", path, key);
}

static int read_int64(const cJSON *object, const char *key, int64_t *out, const char *path)
{
    const cJSON *item = member(object, key, path);
    if (!item)
        return -1;
    char *end = NULL;
    errno = 0;
    long long value = cJSON_IsString(item) ? strtoll(item->valuestring, &end, 10) : 0;
    if (!cJSON_IsString(item) || end == item->valuestring || *end != '\0' || errno == ERANGE)
        return al_fail("%s: '%s' must be an integer written as a string", path, key);
    *out = value;
    return 0;
}

static int read_uint64(const cJSON *object, const char *key, uint64_t *out, const char *path)
{
    const cJSON *item = member(object, key, path);
    if (!item)
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long value = cJSON_IsString(item) ? strtoull(item->valuestring, &end, 10) : 0;
    if (!cJSON_IsString(item) || end == item->valuestring || *end != '\0' || errno == ERANGE ||
        item->valuestring[0] == '-')
        return al_fail("%s: '%s' must be an unsigned integer written as a string", path, key);
    *out = value;
    return 0;
}

static int read_double(const cJSON *object, const char *key, double *out, const char *path)
{
    const cJSON *item = member(object, key, path);
    if (!item)
        return -1;
    if (!cJSON_IsNumber(item))
        return al_fail("%s: '%s' must be a number", path, key);
    *out = item->valuedouble;
    return 0;
}

static int read_rngs(struct al_trainer_state *state, const cJSON *rngs, const char *path)
{
    if (!cJSON_IsObject(rngs))
        return al_fail("%s: 'rng' must be an object", path);
    const cJSON *item;
    cJSON_ArrayForEach(item, rngs)
    {
        if (state->num_rngs == AL_CHECKPOINT_MAX_RNGS || strlen(item->string) >= AL_CHECKPOINT_RNG_NAME_MAX)
            return al_fail("%s: too many RNG states or an overlong name ('%s')", path, item->string);
        struct al_named_rng *named = &state->rngs[state->num_rngs++];
        strcpy(named->name, item->string);
        if (read_uint64(item, "state", &named->rng.state, path) != 0 ||
            read_uint64(item, "increment", &named->rng.increment, path) != 0)
            return -1;
    }
    return 0;
}

static int read_schedule(struct al_checkpoint *checkpoint, const cJSON *json, const char *path)
{
    const cJSON *kind = member(json, "kind", path);
    if (!kind)
        return -1;
    enum al_schedule_kind parsed;
    if (!cJSON_IsString(kind) || al_schedule_kind_parse(kind->valuestring, &parsed) != 0)
        return al_fail("%s: bad schedule kind", path);
    double peak = 0;
    int64_t warmup = 0, total = 0;
    if (read_double(json, "peak_lr", &peak, path) != 0 || read_int64(json, "warmup_steps", &warmup, path) != 0 ||
        read_int64(json, "total_steps", &total, path) != 0)
        return -1;
    return al_schedule_init(&checkpoint->schedule, parsed, peak, total, warmup);
}

static int read_loss_history(struct al_trainer_state *state, const cJSON *history, const char *path)
{
    if (!history)
        return 0;
    if (!cJSON_IsArray(history))
        return al_fail("%s: 'loss_history' must be a list of numbers", path);
    int count = cJSON_GetArraySize(history);
    state->loss_history = malloc(((size_t)count + 1) * sizeof(double));
    if (!state->loss_history)
        return al_fail("out of memory");
    const cJSON *item;
    int i = 0;
    cJSON_ArrayForEach(item, history)
    {
        /* cJSON writes a NaN or infinite loss (a skipped step) as null. */
        if (!cJSON_IsNumber(item) && !cJSON_IsNull(item))
            return al_fail("%s: 'loss_history' entry %d is not a number", path, i);
        state->loss_history[i++] = cJSON_IsNull(item) ? NAN : item->valuedouble;
    }
    state->loss_history_count = count;
    return 0;
}

static int read_state(struct al_checkpoint *checkpoint, const cJSON *json, const char *path)
{
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(json, "format");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(json, "version");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, STATE_FORMAT) != 0 || !cJSON_IsNumber(version) ||
        version->valueint != STATE_VERSION)
        return al_fail("%s: not an agentlora trainer state (version %d)", path, STATE_VERSION);
    struct al_trainer_state *state = &checkpoint->state;
    const cJSON *optimizer = member(json, "optimizer", path), *schedule = member(json, "schedule", path);
    const cJSON *rngs = member(json, "rng", path), *config = member(json, "config", path);
    const cJSON *cursor = member(json, "data_cursor", path);
    if (!optimizer || !schedule || !rngs || !config || !cursor)
        return -1;
    if (read_int64(json, "step", &state->step, path) != 0 ||
        read_int64(json, "tokens_seen", &state->tokens_seen, path) != 0 ||
        read_double(json, "elapsed_seconds", &state->elapsed_seconds, path) != 0 ||
        read_int64(optimizer, "updates", &checkpoint->optimizer_updates, path) != 0 ||
        read_int64(optimizer, "nonfinite_total", &checkpoint->nonfinite_total, path) != 0 ||
        read_int64(optimizer, "nonfinite_consecutive", &checkpoint->nonfinite_consecutive, path) != 0 ||
        read_int64(optimizer, "num_params", &checkpoint->num_params, path) != 0 ||
        read_schedule(checkpoint, schedule, path) != 0 || read_rngs(state, rngs, path) != 0 ||
        read_loss_history(state, cJSON_GetObjectItemCaseSensitive(json, "loss_history"), path) != 0)
        return -1;
    if (checkpoint->num_params <= 0)
        return al_fail("%s: num_params must be positive", path);
    /* Checkpoints from before data parallelism have no "ranks": one process wrote them. */
    state->ranks = 1;
    if (cJSON_GetObjectItemCaseSensitive(json, "ranks") && read_int64(json, "ranks", &state->ranks, path) != 0)
        return -1;
    if (state->ranks < 1)
        return al_fail("%s: 'ranks' must be at least 1", path);
    al_train_config_defaults(&checkpoint->config);
    if (al_train_config_apply_json(&checkpoint->config, config, path) != 0)
        return -1;
    if (!cJSON_IsNull(cursor) && !(state->data_cursor = cJSON_Duplicate(cursor, true)))
        return al_fail("out of memory");
    return 0;
}

int al_checkpoint_load(struct al_checkpoint *checkpoint, const char *dir)
{
    memset(checkpoint, 0, sizeof *checkpoint);
    if (al_checkpoint_verify(dir) != 0)
        return -1;
    char *path = al_path_join(dir, CHECKPOINT_STATE);
    cJSON *json = path ? al_json_load_file(path) : NULL;
    checkpoint->path = strdup(dir);
    int rc = json && checkpoint->path ? read_state(checkpoint, json, path) : -1;
    if (rc == 0)
        rc = read_optimizer(checkpoint, dir);
    cJSON_Delete(json);
    free(path);
    if (rc != 0) {
        al_error_context("loading checkpoint %s", dir);
        al_checkpoint_release(checkpoint);
    }
    return rc;
}

void al_checkpoint_release(struct al_checkpoint *checkpoint)
{
    free(checkpoint->path);
    cJSON_Delete(checkpoint->state.data_cursor);
    free(checkpoint->state.loss_history);
    free(checkpoint->params);
    free(checkpoint->m);
    free(checkpoint->v);
    memset(checkpoint, 0, sizeof *checkpoint);
}

int al_checkpoint_restore(const struct al_checkpoint *checkpoint, struct al_lora *lora,
                          struct al_optimizer *optimizer)
{
    if (lora->num_params != checkpoint->num_params || optimizer->num_params != checkpoint->num_params)
        return al_fail("checkpoint %s holds %" PRId64 " parameters but the adapter has %" PRId64
                       " (different rank, targets or model?)",
                       checkpoint->path, checkpoint->num_params, lora->num_params);
    if (al_lora_upload_params(lora, checkpoint->params) != 0 ||
        al_optimizer_upload_state(optimizer, checkpoint->m, checkpoint->v, checkpoint->optimizer_updates,
                                  checkpoint->nonfinite_total, checkpoint->nonfinite_consecutive) != 0) {
        al_error_context("restoring checkpoint %s", checkpoint->path);
        return -1;
    }
    return 0;
}
