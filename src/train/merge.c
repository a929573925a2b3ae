/* Merging an adapter into the base weights and writing a Hugging Face model folder. */
#include "agentlora/merge.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/model_files.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"

/* Files of a model folder that describe it rather than hold weights; copied as they are. */
static const char *const companion_files[] = {
    "config.json",         "generation_config.json", "tokenizer.json",     "tokenizer.model",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt",          "chat_template.jinja",    "chat_template.json",
};

int al_merge_lora_weight(void *weight, enum al_dtype dtype, int64_t out, int64_t in, const float *A, const float *B,
                         int rank, float scale)
{
    if (!al_dtype_is_float(dtype))
        return al_fail("merge: weight dtype %s is not F32, F16 or BF16", al_dtype_name(dtype));
    if (out <= 0 || in <= 0 || rank <= 0 || out > INT_MAX || in > INT_MAX)
        return al_fail("merge: bad shape [%" PRId64 ", %" PRId64 "] with rank %d", out, in, rank);
    float *w32 = dtype == AL_DTYPE_F32 ? weight : malloc((size_t)(out * in) * sizeof(float));
    if (!w32)
        return al_fail("merge: out of memory for a [%" PRId64 ", %" PRId64 "] weight", out, in);
    if (dtype != AL_DTYPE_F32)
        al_convert(w32, AL_DTYPE_F32, weight, dtype, out * in);
    /* W[out, in] += scale * B[out, rank] A[rank, in] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, rank, scale, B, rank, A, (int)in, 1.0f,
                w32, (int)in);
    if (dtype != AL_DTYPE_F32) {
        al_convert(weight, dtype, w32, AL_DTYPE_F32, out * in);
        free(w32);
    }
    return 0;
}

/* ---- which tensor gets which adapter slot ---- */

static const struct al_tensor_view *target_view(const struct al_layer_tensors *layer, enum al_lora_target target)
{
    switch (target) {
    case AL_LORA_Q: return layer->q_proj;
    case AL_LORA_K: return layer->k_proj;
    case AL_LORA_V: return layer->v_proj;
    case AL_LORA_O: return layer->o_proj;
    case AL_LORA_GATE: return layer->gate_proj;
    case AL_LORA_UP: return layer->up_proj;
    case AL_LORA_DOWN: return layer->down_proj;
    default: return NULL;
    }
}

/* The adapter slot that applies to a tensor, or NULL. */
static const struct al_lora_slot *slot_for(const struct al_model_files *files, const struct al_lora *lora,
                                           const struct al_tensor_view *view)
{
    for (int layer = 0; layer < lora->num_layers; layer++)
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++)
            if (lora->slots[layer][t].present && target_view(&files->layers[layer], (enum al_lora_target)t) == view)
                return &lora->slots[layer][t];
    return NULL;
}

/* ---- shards ---- */

struct merge_job {
    struct al_model_files files;
    struct al_lora *lora;
    float *lora_host; /* all A/B values, [lora->num_params] */
    float scale;
    int tensor_count;
    int *shard_of;    /* per tensor */
    int shard_count;
    const char *out_dir;
};

/* Greedy packing in the store's order: a new shard when the next tensor would overflow. */
static int plan_shards(struct merge_job *job, uint64_t max_shard_bytes)
{
    job->shard_of = calloc((size_t)job->tensor_count + 1, sizeof *job->shard_of);
    if (!job->shard_of)
        return al_fail("out of memory");
    uint64_t used = 0;
    int shard = 0;
    for (int i = 0; i < job->tensor_count; i++) {
        uint64_t size = al_tensor_store_tensor(job->files.store, i)->nbytes;
        if (used > 0 && used + size > max_shard_bytes) {
            shard++;
            used = 0;
        }
        job->shard_of[i] = shard;
        used += size;
    }
    job->shard_count = job->tensor_count > 0 ? shard + 1 : 0;
    return 0;
}

static char *shard_name(const struct merge_job *job, int shard)
{
    if (job->shard_count == 1)
        return strdup("model.safetensors");
    return al_strdup_printf("model-%05d-of-%05d.safetensors", shard + 1, job->shard_count);
}

/* Adds one tensor to a shard, merged when the adapter targets it. */
static int add_tensor(struct merge_job *job, struct al_safetensors_writer *writer, const struct al_tensor_view *view)
{
    const struct al_lora_slot *slot = slot_for(&job->files, job->lora, view);
    if (!slot)
        return al_safetensors_writer_add(writer, view->name, view->dtype, view->ndim, view->shape, view->data);
    void *merged = malloc(view->nbytes);
    if (!merged)
        return al_fail("out of memory merging %s", view->name);
    memcpy(merged, view->data, view->nbytes);
    int rc = al_merge_lora_weight(merged, view->dtype, view->shape[0], view->shape[1],
                                  job->lora_host + slot->a_offset, job->lora_host + slot->b_offset,
                                  job->lora->config.rank, job->scale);
    if (rc == 0)
        rc = al_safetensors_writer_add(writer, view->name, view->dtype, view->ndim, view->shape, merged);
    else
        al_error_context("merging %s", view->name);
    free(merged);
    return rc;
}

static int write_shard(struct merge_job *job, int shard, cJSON *weight_map)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    char *name = shard_name(job, shard);
    char *path = name ? al_path_join(job->out_dir, name) : NULL;
    int rc = writer && path ? 0 : al_fail("out of memory");
    for (int i = 0; i < job->tensor_count && rc == 0; i++) {
        if (job->shard_of[i] != shard)
            continue;
        const struct al_tensor_view *view = al_tensor_store_tensor(job->files.store, i);
        rc = add_tensor(job, writer, view);
        if (rc == 0 && weight_map && !cJSON_AddStringToObject(weight_map, view->name, name))
            rc = al_fail("out of memory");
    }
    if (rc == 0)
        rc = al_safetensors_writer_write(writer, path);
    al_safetensors_writer_free(writer);
    free(path);
    free(name);
    return rc;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* model.safetensors.index.json with the weight map sorted by name, as transformers writes it. */
static int write_index(const struct merge_job *job, cJSON *weight_map)
{
    int count = cJSON_GetArraySize(weight_map);
    cJSON **entries = calloc((size_t)count + 1, sizeof *entries);
    cJSON *index = cJSON_CreateObject(), *metadata = cJSON_AddObjectToObject(index, "metadata");
    cJSON *sorted = cJSON_AddObjectToObject(index, "weight_map");
    if (!entries || !sorted || !metadata) {
        free(entries);
        cJSON_Delete(index);
        return al_fail("out of memory");
    }
    uint64_t total = 0;
    for (int i = 0; i < job->tensor_count; i++)
        total += al_tensor_store_tensor(job->files.store, i)->nbytes;
    cJSON_AddNumberToObject(metadata, "total_size", (double)total);
    int n = 0;
    for (cJSON *item = weight_map->child; item; item = item->next)
        entries[n++] = item;
    qsort(entries, (size_t)n, sizeof *entries, compare_keys);
    for (int i = 0; i < n; i++)
        cJSON_AddStringToObject(sorted, entries[i]->string, entries[i]->valuestring);
    char *text = cJSON_Print(index);
    char *path = al_path_join(job->out_dir, "model.safetensors.index.json");
    int rc = text && path ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(path);
    free(text);
    free(entries);
    cJSON_Delete(index);
    return rc;
}

static int copy_companions(const char *model_dir, const char *out_dir)
{
    for (size_t i = 0; i < sizeof companion_files / sizeof companion_files[0]; i++) {
        char *from = al_path_join(model_dir, companion_files[i]);
        char *to = al_path_join(out_dir, companion_files[i]);
        int rc = from && to ? 0 : al_fail("out of memory");
        if (rc == 0 && al_file_exists(from)) {
            size_t length = 0;
            char *data = al_file_read_all(from, &length);
            rc = data ? al_file_write_atomic(to, data, length) : -1;
            free(data);
        }
        free(from);
        free(to);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int same_folder(const char *a, const char *b)
{
    char *real_a = realpath(a, NULL), *real_b = realpath(b, NULL);
    int same = real_a && real_b && strcmp(real_a, real_b) == 0;
    free(real_a);
    free(real_b);
    return same;
}

/* Reads the adapter through the same validation as training (shapes against the model). */
static int load_adapter(struct merge_job *job, const char *adapter_dir)
{
    struct al_backend *cpu = al_backend_cpu_create();
    if (!cpu)
        return -1;
    job->lora = al_lora_load_peft(&job->files.config, cpu, adapter_dir);
    int rc = job->lora ? 0 : -1;
    if (rc == 0) {
        job->lora_host = malloc((size_t)job->lora->num_params * sizeof(float) + 1);
        rc = job->lora_host ? al_lora_download_params(job->lora, job->lora_host) : al_fail("out of memory");
        job->scale = al_lora_scale(&job->lora->config);
    }
    if (rc != 0) {
        al_lora_free(job->lora);
        job->lora = NULL;
        al_backend_destroy(cpu);
    }
    return rc;
}

static void release_job(struct merge_job *job)
{
    if (job->lora) {
        struct al_backend *cpu = job->lora->backend;
        al_lora_free(job->lora);
        al_backend_destroy(cpu);
    }
    free(job->lora_host);
    free(job->shard_of);
    al_model_files_close(&job->files);
}

/* Whether a folder holds any entry besides . and .. */
static bool folder_has_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    for (struct dirent *entry; !found && (entry = readdir(d));)
        found = strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
    closedir(d);
    return found;
}

int al_merge_check_target(const char *out_dir, bool overwrite)
{
    if (overwrite)
        return 0;
    if (al_dir_exists(out_dir) ? folder_has_entries(out_dir) : al_file_exists(out_dir))
        return al_fail("%s already exists and is not empty; choose a new folder, or pass --overwrite to replace "
                       "the merged model's files in it",
                       out_dir);
    return 0;
}

int al_merge_model(const char *model_dir, const char *adapter_dir, const char *out_dir, uint64_t max_shard_bytes)
{
    if (max_shard_bytes == 0)
        return al_fail("merge: the shard size limit must be positive");
    if (al_dir_exists(out_dir) && same_folder(model_dir, out_dir))
        return al_fail("merge: the output folder %s is the model folder; choose another", out_dir);
    struct merge_job job = {.out_dir = out_dir};
    if (al_model_files_open(&job.files, model_dir) != 0)
        return -1;
    int rc = load_adapter(&job, adapter_dir);
    if (rc == 0) {
        job.tensor_count = al_tensor_store_count(job.files.store);
        rc = plan_shards(&job, max_shard_bytes);
    }
    if (rc == 0)
        rc = al_mkdirs(out_dir);
    cJSON *weight_map = rc == 0 && job.shard_count > 1 ? cJSON_CreateObject() : NULL;
    for (int shard = 0; shard < job.shard_count && rc == 0; shard++)
        rc = write_shard(&job, shard, weight_map);
    if (rc == 0 && weight_map)
        rc = write_index(&job, weight_map);
    if (rc == 0)
        rc = copy_companions(model_dir, out_dir);
    if (rc != 0)
        al_error_context("merging %s into %s", adapter_dir, model_dir);
    cJSON_Delete(weight_map);
    release_job(&job);
    return rc;
}
