/* agentlora inspect MODEL_DIR: validates a model folder exactly as training would load it
 * (al_model_files_open) and describes what it found. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/model_files.h"
#include "cli/cli.h"

#define COMMAND "inspect"

static void print_usage(FILE *out)
{
    fprintf(out, "usage: agentlora inspect MODEL_DIR\n\n"
                 "Validates a Hugging Face model folder (config.json, model.safetensors or shards with\n"
                 "model.safetensors.index.json) the way training loads it, then prints its architecture,\n"
                 "sizes, weights dtype, files, parameter count and the tensor shapes of layer 0.\n\n"
                 "exit status: 0 valid, 1 the folder has a problem (the first one is printed), 2 usage error\n");
}

/* "1.24 B": the count at a glance; the exact number is printed beside it. */
static void format_count(char *out, size_t size, int64_t count)
{
    static const struct {
        double scale;
        const char *unit;
    } units[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if ((double)count >= units[i].scale) {
            snprintf(out, size, "%.2f %s", (double)count / units[i].scale, units[i].unit);
            return;
        }
    }
    snprintf(out, size, "%lld", (long long)count);
}

static void format_shape(char *out, size_t size, const struct al_tensor_view *t)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (used < size)
        snprintf(out + used, size - used, "]");
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void print_rope(const struct al_model_config *c)
{
    printf("rope theta:          %g\n", c->rope_theta);
    if (c->rope_llama3)
        printf("rope scaling:        llama3 (factor %g, low_freq_factor %g, high_freq_factor %g, "
               "original_max_position_embeddings %d)\n",
               c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_original_max_position);
    else
        printf("rope scaling:        none\n");
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Each file once, sorted by name (shard numbers then read in order), with how many
 * tensors it holds. */
static void print_files(const struct al_tensor_store *store)
{
    int count = al_tensor_store_count(store);
    const char **files = malloc(sizeof *files * (size_t)(count ? count : 1));
    if (!files)
        return;
    for (int i = 0; i < count; i++)
        files[i] = al_tensor_store_tensor(store, i)->file;
    qsort(files, (size_t)count, sizeof *files, compare_strings);
    printf("files:\n");
    for (int i = 0; i < count;) {
        int run = 1;
        while (i + run < count && strcmp(files[i + run], files[i]) == 0)
            run++;
        printf("  %-40s %d tensor%s\n", base_name(files[i]), run, run == 1 ? "" : "s");
        i += run;
    }
    free(files);
}

static void print_layer0(const struct al_layer_tensors *layer)
{
    const struct al_tensor_view *views[] = {
        layer->input_layernorm, layer->q_proj,    layer->k_proj,
        layer->v_proj,          layer->q_bias,    layer->k_bias,
        layer->v_bias,          layer->q_norm,    layer->k_norm,
        layer->o_proj,          layer->post_attention_layernorm,
        layer->gate_proj,       layer->up_proj,   layer->down_proj,
    };
    printf("layer 0 tensors:\n");
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        if (!views[i])
            continue;
        char shape[128];
        format_shape(shape, sizeof shape, views[i]);
        printf("  %-48s %s\n", views[i]->name, shape);
    }
}

/* Each layer's attention, full (causal) or within a sliding window; consecutive layers
 * alike share one line. */
static void print_layer_attention(const struct al_model_config *c)
{
    printf("attention per layer:\n");
    for (int first = 0; first < c->num_hidden_layers;) {
        int window = al_model_config_layer_window(c, first), last = first;
        while (last + 1 < c->num_hidden_layers && al_model_config_layer_window(c, last + 1) == window)
            last++;
        char layers[48];
        if (first == last)
            snprintf(layers, sizeof layers, "layer %d:", first);
        else
            snprintf(layers, sizeof layers, "layers %d-%d:", first, last);
        if (window > 0)
            printf("  %-18s sliding window of %d tokens\n", layers, window);
        else
            printf("  %-18s full (causal)\n", layers);
        first = last + 1;
    }
}

static void print_description(const struct al_model_files *files, const char *model_dir)
{
    const struct al_model_config *c = &files->config;
    printf("model folder:        %s\n", model_dir);
    printf("architecture:        %s\n", c->architecture);
    printf("layers:              %d\n", c->num_hidden_layers);
    printf("hidden size:         %d\n", c->hidden_size);
    printf("heads:               %d (kv heads %d, head_dim %d)\n", c->num_attention_heads, c->num_key_value_heads,
           c->head_dim);
    printf("intermediate size:   %d\n", c->intermediate_size);
    printf("vocab size:          %d\n", c->vocab_size);
    printf("max positions:       %d\n", c->max_position_embeddings);
    print_rope(c);
    printf("rms norm eps:        %g\n", c->rms_norm_eps);
    printf("embeddings:          %s\n", c->tie_word_embeddings ? "tied (lm_head = embed_tokens)" : "untied (own lm_head)");
    printf("qkv bias:            %s\n", c->attention_qkv_bias ? "yes" : "no");
    printf("q/k norm:            %s\n", c->qk_norm ? "yes (RMSNorm per head before RoPE)" : "no");
    print_layer_attention(c);
    printf("weights dtype:       %s\n", al_dtype_name(files->dtype));
    print_files(files->store);
    int64_t parameters = al_model_config_parameter_count(c);
    char rounded[32];
    format_count(rounded, sizeof rounded, parameters);
    printf("parameters:          %s (%lld)\n", rounded, (long long)parameters);
    print_layer0(&files->layers[0]);
}

int al_cmd_inspect(int argc, char **argv)
{
    const char *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return AL_EXIT_OK;
        }
        if (argv[i][0] == '-' || model_dir) {
            fprintf(stderr, "agentlora " COMMAND ": unexpected argument '%s'\n\n", argv[i]);
            print_usage(stderr);
            return AL_EXIT_USAGE;
        }
        model_dir = argv[i];
    }
    if (!model_dir) {
        fprintf(stderr, "agentlora " COMMAND ": missing MODEL_DIR\n\n");
        print_usage(stderr);
        return AL_EXIT_USAGE;
    }
    struct al_model_files files;
    if (al_model_files_open(&files, model_dir) != 0)
        return al_cli_report_error(COMMAND);
    print_description(&files, model_dir);
    al_model_files_close(&files);
    return AL_EXIT_OK;
}
