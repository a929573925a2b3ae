/* `agentlora convert --gguf`: a Llama GGUF written out as a Hugging Face model folder
 * that this engine and transformers both load. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/dtype.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"
#include "agentlora/model_files.h"
#include "agentlora/random_model.h"
#include "agentlora/safetensors.h"
#include "agentlora/tokenizer.h"

/* What a conversion writes, so that a folder that fails the last check can be removed. */
static const char *const WRITTEN_FILES[] = {"tokenizer.json", "tokenizer_config.json", "model.safetensors",
                                            "config.json"};

static int check_empty_target(const char *out_dir)
{
    static const char *const model_files[] = {"config.json", "model.safetensors", "model.safetensors.index.json"};
    for (size_t k = 0; k < sizeof model_files / sizeof model_files[0]; k++) {
        char *path = al_path_join(out_dir, model_files[k]);
        if (!path)
            return al_fail("out of memory");
        bool exists = al_file_exists(path);
        free(path);
        if (exists)
            return al_fail("%s already holds %s; choose an empty or new folder", out_dir, model_files[k]);
    }
    return al_mkdirs(out_dir);
}

/* One tensor, dequantised and un-permuted, stored as dtype. */
static int add_tensor(struct al_safetensors_writer *writer, const struct al_gguf_tensor *t,
                      const struct al_model_config *config, enum al_dtype dtype)
{
    char name[256];
    if (al_gguf_hf_tensor_name(t->name, name, sizeof name) < 0) {
        al_error_context("%s", t->file);
        return -1;
    }
    float *values = malloc((size_t)t->count * sizeof *values);
    void *stored = dtype == AL_DTYPE_F32 ? NULL : malloc((size_t)t->count * al_dtype_size(dtype));
    int rc;
    if (!values || (dtype != AL_DTYPE_F32 && !stored))
        rc = al_fail("%s: tensor %s: out of memory", t->file, t->name);
    else if ((rc = al_gguf_load_hf_tensor(t, config, values)) == 0) {
        if (stored)
            al_convert(stored, dtype, values, AL_DTYPE_F32, t->count);
        rc = al_safetensors_writer_add(writer, name, dtype, t->ndim, t->shape, stored ? stored : values);
    }
    free(values);
    free(stored);
    return rc;
}

static int write_weights(const struct al_gguf *g, const struct al_model_config *config, enum al_dtype dtype,
                         const char *out_dir)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    if (!writer)
        return al_fail("out of memory");
    int rc = al_safetensors_writer_set_metadata(writer, "converted_from", "gguf");
    for (int k = 0; rc == 0 && k < al_gguf_tensor_count(g); k++)
        rc = add_tensor(writer, al_gguf_tensor(g, k), config, dtype);
    char *path = al_path_join(out_dir, "model.safetensors");
    if (rc == 0)
        rc = path ? al_safetensors_writer_write(writer, path) : al_fail("out of memory");
    free(path);
    al_safetensors_writer_free(writer);
    return rc;
}

static int write_config(const struct al_model_config *config, enum al_dtype dtype, const char *out_dir)
{
    char *text = al_random_model_config_json(config, dtype);
    char *path = al_path_join(out_dir, "config.json");
    int rc = text && path ? al_file_write_atomic(path, text, strlen(text)) : al_fail("out of memory");
    free(text);
    free(path);
    return rc;
}

/* Before anything is written: every tensor must be one the config implies, with its
 * shape, and of a type that can be dequantised (a dim of 63 in a tensor info would
 * otherwise be written out and refused only by the loader). */
static int check_tensors(const struct al_gguf *g, const struct al_model_config *config)
{
    for (int k = 0; k < al_gguf_tensor_count(g); k++) {
        const struct al_gguf_tensor *t = al_gguf_tensor(g, k);
        char name[256];
        if (al_gguf_hf_tensor_name(t->name, name, sizeof name) < 0) {
            al_error_context("%s", t->file);
            return -1;
        }
        if (!al_ggml_type_supported(t->type))
            return al_fail("%s: tensor %s has type %s, which cannot be converted", t->file, t->name,
                           al_ggml_type_name(t->type));
        if (al_model_tensor_check(config, name, t->ndim, t->shape, t->file) != 0) {
            al_error_context("tensor %s", t->name);
            return -1;
        }
    }
    return 0;
}

/* The last check: the folder must load as a model and a tokenizer (which also checks
 * the tokenizer's ids against the model's vocab_size), as train, eval and generate will
 * load it. */
static int check_written_folder(const char *out_dir)
{
    struct al_model_files files;
    if (al_model_files_open(&files, out_dir) != 0)
        return -1;
    al_model_files_close(&files);
    struct al_tokenizer *tokenizer = al_tokenizer_load(out_dir);
    al_tokenizer_free(tokenizer);
    return tokenizer ? 0 : -1;
}

/* Removes what the conversion wrote (the folder too when it made it), so that a failed
 * conversion leaves no folder the loader would refuse. */
static void remove_written(const char *out_dir, bool folder_was_there)
{
    for (size_t k = 0; k < sizeof WRITTEN_FILES / sizeof WRITTEN_FILES[0]; k++) {
        char *path = al_path_join(out_dir, WRITTEN_FILES[k]);
        if (path)
            unlink(path);
        free(path);
    }
    if (!folder_was_there)
        rmdir(out_dir);
}

static int write_folder(const struct al_gguf *g, const struct al_model_config *config, enum al_dtype dtype,
                        const char *out_dir)
{
    bool folder_was_there = al_dir_exists(out_dir);
    if (check_empty_target(out_dir) != 0)
        return -1;
    /* The tokenizer first: it is the likeliest to be refused, and cheap. */
    int rc = al_gguf_write_tokenizer(g, out_dir);
    if (rc == 0)
        rc = write_weights(g, config, dtype, out_dir);
    if (rc == 0)
        rc = write_config(config, dtype, out_dir);
    if (rc == 0)
        rc = al_fsync_dir(out_dir);
    if (rc == 0 && check_written_folder(out_dir) != 0) {
        al_error_context("%s: the converted folder does not load, so it was removed", al_gguf_path(g));
        rc = -1;
    }
    if (rc != 0)
        remove_written(out_dir, folder_was_there);
    return rc;
}

int al_gguf_convert(const char *gguf_path, const char *out_dir, enum al_dtype dtype)
{
    if (!al_dtype_is_float(dtype))
        return al_fail("converted weights are stored as F32, F16 or BF16, not %s", al_dtype_name(dtype));
    struct al_gguf *g = al_gguf_open(gguf_path);
    if (!g)
        return -1;
    struct al_model_config config;
    int rc = al_gguf_model_config(g, &config);
    if (rc == 0)
        config.torch_dtype = dtype;
    if (rc == 0)
        rc = check_tensors(g, &config);
    if (rc == 0)
        rc = write_folder(g, &config, dtype, out_dir);
    al_gguf_close(g);
    return rc;
}
