/* The PEFT adapter format: adapter_config.json + adapter_model.safetensors. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "model/lora_internal.h"

#define KEY_CAPACITY 160

/* ---- reading adapter_config.json ---- */

static int read_number(const cJSON *json, const char *key, double fallback, double *out, const char *path)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, key);
    if (!item || cJSON_IsNull(item)) {
        if (fallback != fallback) /* NaN fallback: the key is required */
            return al_fail("%s: missing field '%s'", path, key);
        *out = fallback;
        return 0;
    }
    if (!cJSON_IsNumber(item))
        return al_fail("%s: field '%s' must be a number", path, key);
    *out = item->valuedouble;
    return 0;
}

static bool is_true(const cJSON *json, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, key));
}

/* A PEFT setting we cannot honour must be absent, null, false or empty. */
static int require_unset(const cJSON *json, const char *key, const char *path)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, key);
    if (!item || cJSON_IsNull(item) || cJSON_IsFalse(item))
        return 0;
    if ((cJSON_IsObject(item) || cJSON_IsArray(item)) && cJSON_GetArraySize(item) == 0)
        return 0;
    char *value = cJSON_PrintUnformatted(item);
    al_fail("%s: unsupported PEFT setting %s = %s", path, key, value ? value : "?");
    free(value);
    return -1;
}

static int parse_target_modules(const cJSON *json, unsigned *mask, const char *path)
{
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(json, "target_modules");
    if (cJSON_IsString(targets)) {
        if (strcmp(targets->valuestring, "all-linear") == 0) {
            *mask = AL_LORA_ALL_TARGETS;
            return 0;
        }
        return al_fail("%s: target_modules as a pattern ('%s') is not supported; list the modules", path,
                       targets->valuestring);
    }
    if (!cJSON_IsArray(targets))
        return al_fail("%s: target_modules must be a list of module names", path);
    *mask = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, targets)
    {
        enum al_lora_target target;
        if (!cJSON_IsString(item))
            return al_fail("%s: target_modules must hold strings", path);
        if (al_lora_target_parse(item->valuestring, &target) != 0) {
            al_error_context("%s", path);
            return -1;
        }
        *mask |= 1u << target;
    }
    return 0;
}

static int parse_adapter_config(const cJSON *json, struct al_lora_config *config, const char *path)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(json, "peft_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA") != 0)
        return al_fail("%s: peft_type must be \"LORA\"", path);
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(json, "bias");
    if (bias && !(cJSON_IsString(bias) && strcmp(bias->valuestring, "none") == 0))
        return al_fail("%s: only bias \"none\" is supported", path);
    static const char *const unsupported[] = {"rank_pattern", "alpha_pattern", "fan_in_fan_out", "use_dora",
                                              "layers_to_transform", "modules_to_save"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (require_unset(json, unsupported[i], path) != 0)
            return -1;
    double rank, alpha, dropout;
    if (read_number(json, "r", 0.0 / 0.0, &rank, path) != 0 || read_number(json, "lora_alpha", 0.0 / 0.0, &alpha, path) != 0 ||
        read_number(json, "lora_dropout", 0.0, &dropout, path) != 0)
        return -1;
    if (rank != (int)rank || rank < 1)
        return al_fail("%s: r must be a positive integer", path);
    config->rank = (int)rank;
    config->alpha = (float)alpha;
    config->dropout = (float)dropout;
    config->use_rslora = is_true(json, "use_rslora");
    if (parse_target_modules(json, &config->target_mask, path) != 0)
        return -1;
    if (al_lora_config_validate(config) != 0) {
        al_error_context("%s", path);
        return -1;
    }
    return 0;
}

/* ---- reading the tensors ---- */

/* Copies one adapter tensor into host[offset..] after checking its shape. */
static int take_tensor(const struct al_safetensors *file, const char *key, int64_t rows, int64_t cols, float *dest,
                       bool *used, const char *path)
{
    const struct al_tensor_view *view = al_safetensors_find(file, key);
    if (!view)
        return al_fail("%s: missing tensor %s", path, key);
    if (!al_dtype_is_float(view->dtype))
        return al_fail("%s: tensor %s has dtype %s, expected F32, F16 or BF16", path, key, al_dtype_name(view->dtype));
    if (view->ndim != 2 || view->shape[0] != rows || view->shape[1] != cols)
        return al_fail("%s: tensor %s has the wrong shape, expected [%lld, %lld] for this model and rank", path, key,
                       (long long)rows, (long long)cols);
    al_convert(dest, AL_DTYPE_F32, view->data, view->dtype, view->count);
    for (int i = 0; i < al_safetensors_count(file); i++)
        if (al_safetensors_tensor(file, i) == view)
            used[i] = true;
    return 0;
}

static int read_adapter_tensors(struct al_lora *lora, const struct al_safetensors *file, float *host,
                                const char *path)
{
    int count = al_safetensors_count(file);
    bool *used = calloc((size_t)count + 1, sizeof *used);
    if (!used)
        return al_fail("out of memory");
    char key[KEY_CAPACITY];
    int rc = 0;
    for (int layer = 0; layer < lora->num_layers && rc == 0; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT && rc == 0; t++) {
            const struct al_lora_slot *slot = &lora->slots[layer][t];
            if (!slot->present)
                continue;
            al_lora_key(key, sizeof key, layer, (enum al_lora_target)t, false);
            rc = take_tensor(file, key, lora->config.rank, slot->in, host + slot->a_offset, used, path);
            if (rc == 0) {
                al_lora_key(key, sizeof key, layer, (enum al_lora_target)t, true);
                rc = take_tensor(file, key, slot->out, lora->config.rank, host + slot->b_offset, used, path);
            }
        }
    }
    for (int i = 0; i < count && rc == 0; i++)
        if (!used[i])
            rc = al_fail("%s: unexpected tensor %s (not a LoRA weight of this model's targets)", path,
                         al_safetensors_tensor(file, i)->name);
    free(used);
    return rc;
}

struct al_lora *al_lora_load_peft(const struct al_model_config *model, struct al_backend *backend,
                                  const char *adapter_dir)
{
    char *config_path = al_path_join(adapter_dir, "adapter_config.json");
    char *weights_path = al_path_join(adapter_dir, "adapter_model.safetensors");
    struct al_lora *lora = NULL;
    struct al_safetensors *file = NULL;
    float *host = NULL;
    cJSON *json = NULL;
    if (!config_path || !weights_path) {
        al_fail("out of memory");
        goto done;
    }
    json = al_json_load_file(config_path);
    struct al_lora_config config = {0};
    if (!json || parse_adapter_config(json, &config, config_path) != 0)
        goto done;
    file = al_safetensors_open(weights_path);
    if (!file)
        goto done;
    lora = al_lora_allocate_internal(model, backend, &config);
    if (!lora)
        goto done;
    host = calloc((size_t)lora->num_params, sizeof(float));
    if (!host || read_adapter_tensors(lora, file, host, weights_path) != 0 || al_lora_upload_params(lora, host) != 0) {
        if (!host)
            al_fail("out of memory");
        al_lora_free(lora);
        lora = NULL;
    }
done:
    free(host);
    al_safetensors_close(file);
    cJSON_Delete(json);
    free(config_path);
    free(weights_path);
    return lora;
}

/* ---- writing ---- */

static cJSON *adapter_config_json(const struct al_lora *lora, const char *base_model_name)
{
    cJSON *json = cJSON_CreateObject();
    cJSON *targets = cJSON_CreateArray();
    for (int t = 0; t < AL_LORA_TARGET_COUNT; t++)
        if (lora->config.target_mask & (1u << t))
            cJSON_AddItemToArray(targets, cJSON_CreateString(al_lora_target_name((enum al_lora_target)t)));
    cJSON_AddItemToObject(json, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(json, "auto_mapping");
    if (base_model_name)
        cJSON_AddStringToObject(json, "base_model_name_or_path", base_model_name);
    else
        cJSON_AddNullToObject(json, "base_model_name_or_path");
    cJSON_AddStringToObject(json, "bias", "none");
    cJSON_AddFalseToObject(json, "fan_in_fan_out");
    cJSON_AddTrueToObject(json, "inference_mode");
    cJSON_AddTrueToObject(json, "init_lora_weights");
    cJSON_AddNullToObject(json, "layers_pattern");
    cJSON_AddNullToObject(json, "layers_to_transform");
    cJSON_AddNumberToObject(json, "lora_alpha", lora->config.alpha);
    cJSON_AddNumberToObject(json, "lora_dropout", lora->config.dropout);
    cJSON_AddNullToObject(json, "modules_to_save");
    cJSON_AddStringToObject(json, "peft_type", "LORA");
    cJSON_AddNumberToObject(json, "r", lora->config.rank);
    cJSON_AddItemToObject(json, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(json, "revision");
    cJSON_AddItemToObject(json, "target_modules", targets);
    cJSON_AddStringToObject(json, "task_type", "CAUSAL_LM");
    cJSON_AddFalseToObject(json, "use_dora");
    cJSON_AddBoolToObject(json, "use_rslora", lora->config.use_rslora);
    return json;
}

static int write_adapter_tensors(const struct al_lora *lora, const float *host, const char *path)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    if (!writer)
        return -1;
    char key[KEY_CAPACITY];
    int rc = 0;
    for (int layer = 0; layer < lora->num_layers && rc == 0; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT && rc == 0; t++) {
            const struct al_lora_slot *slot = &lora->slots[layer][t];
            if (!slot->present)
                continue;
            int64_t a_shape[2] = {lora->config.rank, slot->in};
            int64_t b_shape[2] = {slot->out, lora->config.rank};
            al_lora_key(key, sizeof key, layer, (enum al_lora_target)t, false);
            rc = al_safetensors_writer_add(writer, key, AL_DTYPE_F32, 2, a_shape, host + slot->a_offset);
            al_lora_key(key, sizeof key, layer, (enum al_lora_target)t, true);
            if (rc == 0)
                rc = al_safetensors_writer_add(writer, key, AL_DTYPE_F32, 2, b_shape, host + slot->b_offset);
        }
    }
    if (rc == 0)
        rc = al_safetensors_writer_write(writer, path);
    al_safetensors_writer_free(writer);
    return rc;
}

int al_lora_save_peft(const struct al_lora *lora, const char *adapter_dir, const char *base_model_name)
{
    if (al_mkdirs(adapter_dir) != 0)
        return -1;
    float *host = malloc((size_t)lora->num_params * sizeof(float) + 1);
    char *config_path = al_path_join(adapter_dir, "adapter_config.json");
    char *weights_path = al_path_join(adapter_dir, "adapter_model.safetensors");
    cJSON *json = adapter_config_json(lora, base_model_name);
    char *text = json ? cJSON_Print(json) : NULL;
    int rc = -1;
    if (!host || !config_path || !weights_path || !text)
        al_fail("out of memory");
    else if (al_lora_download_params(lora, host) == 0 && write_adapter_tensors(lora, host, weights_path) == 0)
        rc = al_file_write_atomic(config_path, text, strlen(text));
    free(text);
    cJSON_Delete(json);
    free(config_path);
    free(weights_path);
    free(host);
    return rc;
}
