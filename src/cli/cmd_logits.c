/* agentlora logits: run a model (and optionally an adapter) on token ids and print the
 * last position's top logits; the way to check parity with another implementation. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "cli/cli.h"

#define TOP_K 5

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora logits --model DIR --ids \"1 2 3\" [--adapter DIR] [--out FILE.safetensors]\n"
            "                        [--device cpu|cuda|auto]\n\n"
            "Runs the model on one sequence of token ids and prints the top-%d logits at the last position.\n\n"
            "  --model DIR      Hugging Face model folder (config.json, *.safetensors)\n"
            "  --ids LIST       token ids separated by spaces or commas\n"
            "  --adapter DIR    PEFT LoRA adapter folder applied on top of the model\n"
            "  --out FILE       also write every position's logits (F32 [tokens, vocab], key \"logits\")\n"
            "                   and the ids (I32, key \"input_ids\") to a safetensors file\n"
            "  --device NAME    cpu (default), cuda, or auto\n",
            TOP_K);
}

/* Parses "1 2 3" or "1,2,3" into a new array. */
static int parse_ids(const char *text, int32_t **ids, int64_t *count)
{
    int64_t capacity = 16, n = 0;
    int32_t *out = malloc((size_t)capacity * sizeof *out);
    const char *p = text;
    while (out) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || errno || value < 0 || value > INT32_MAX) {
            free(out);
            return al_fail("--ids: '%.20s' is not a token id", p);
        }
        if (n == capacity) {
            int32_t *grown = realloc(out, (size_t)(capacity *= 2) * sizeof *out);
            if (!grown)
                break;
            out = grown;
        }
        out[n++] = (int32_t)value;
        p = end;
    }
    if (!out)
        return al_fail("out of memory");
    if (n == 0) {
        free(out);
        return al_fail("--ids: no token ids given");
    }
    *ids = out;
    *count = n;
    return 0;
}

static void print_top(const float *row, int vocab)
{
    int best[TOP_K];
    int found = 0;
    for (int k = 0; k < TOP_K && k < vocab; k++) {
        int arg = -1;
        for (int v = 0; v < vocab; v++) {
            bool taken = false;
            for (int j = 0; j < found; j++)
                taken |= best[j] == v;
            if (!taken && (arg < 0 || row[v] > row[arg]))
                arg = v;
        }
        best[found++] = arg;
    }
    printf("top-%d logits at the last position:\n", found);
    for (int k = 0; k < found; k++)
        printf("  %8d  %.6f\n", best[k], row[best[k]]);
}

static int write_logits(const char *path, const float *logits, const int32_t *ids, int64_t n, int vocab)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    if (!writer)
        return -1;
    int64_t logits_shape[2] = {n, vocab};
    int64_t ids_shape[1] = {n};
    int rc = al_safetensors_writer_add(writer, "logits", AL_DTYPE_F32, 2, logits_shape, logits);
    if (rc == 0)
        rc = al_safetensors_writer_add(writer, "input_ids", AL_DTYPE_I32, 1, ids_shape, ids);
    if (rc == 0)
        rc = al_safetensors_writer_write(writer, path);
    al_safetensors_writer_free(writer);
    return rc;
}

struct logits_options {
    const char *model_dir, *adapter_dir, *ids_text, *out_path, *device;
};

static int run_logits(const struct logits_options *opt)
{
    int32_t *ids = NULL;
    int64_t n = 0;
    if (parse_ids(opt->ids_text, &ids, &n) != 0)
        return -1;
    int rc = -1;
    struct al_backend *backend = al_backend_create(opt->device);
    struct al_model *model = backend ? al_model_load(opt->model_dir, backend) : NULL;
    struct al_lora *lora = NULL;
    struct al_workspace *ws = NULL;
    int32_t *aux = malloc((size_t)n * 3 * sizeof *aux);
    float *logits = NULL;
    if (!model || !aux)
        goto done;
    const struct al_model_config *config = al_model_get_config(model);
    if (opt->adapter_dir && !(lora = al_lora_load_peft(config, backend, opt->adapter_dir)))
        goto done;
    ws = al_workspace_create(model, lora, n, false);
    logits = malloc((size_t)n * (size_t)config->vocab_size * sizeof *logits);
    if (!ws || !logits)
        goto done;
    int32_t *targets = aux, *positions = aux + n, *doc_start = aux + 2 * n;
    for (int64_t i = 0; i < n; i++) {
        targets[i] = -1;
        positions[i] = (int32_t)i;
        doc_start[i] = 0;
    }
    struct al_batch batch = {n, ids, targets, positions, doc_start};
    if (al_model_logits(model, lora, ws, &batch, logits) != 0)
        goto done;
    print_top(logits + (n - 1) * config->vocab_size, config->vocab_size);
    if (opt->out_path && write_logits(opt->out_path, logits, ids, n, config->vocab_size) != 0)
        goto done;
    if (opt->out_path)
        printf("wrote logits [%lld, %d] to %s\n", (long long)n, config->vocab_size, opt->out_path);
    rc = 0;
done:
    if (!model && !backend)
        al_error_context("--device %s", opt->device);
    free(logits);
    free(aux);
    free(ids);
    al_workspace_free(ws);
    al_lora_free(lora);
    al_model_free(model);
    al_backend_destroy(backend);
    return rc;
}

int al_cmd_logits(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'}, {"adapter", required_argument, NULL, 'a'},
        {"ids", required_argument, NULL, 'i'},   {"out", required_argument, NULL, 'o'},
        {"device", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct logits_options opt = {.device = "cpu"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'm': opt.model_dir = optarg; break;
        case 'a': opt.adapter_dir = optarg; break;
        case 'i': opt.ids_text = optarg; break;
        case 'o': opt.out_path = optarg; break;
        case 'd': opt.device = optarg; break;
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (!opt.model_dir || !opt.ids_text || optind != argc) {
        fprintf(stderr, "agentlora logits: --model and --ids are required\n\n");
        usage(stderr);
        return AL_EXIT_USAGE;
    }
    return run_logits(&opt) == 0 ? AL_EXIT_OK : al_cli_report_error("logits");
}
