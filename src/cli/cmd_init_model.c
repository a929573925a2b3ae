/* agentlora init-model: writes a randomly initialised model folder (config.json, weights,
 * and optionally a tokenizer) that loads like a downloaded checkpoint; for demos, tests
 * and benchmarks that must not depend on a download. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/random_model.h"
#include "agentlora/tokenizer.h"
#include "cli/cli.h"

#define COMMAND "init-model"
#define DEFAULT_PRESET "tiny"
#define DEFAULT_SEED 0
/* config.c accepts no larger dimension; a larger --vocab is surely a typo. */
#define MAX_VOCAB (1 << 24)

/* The files of a tokenizer folder that travel with the model, when present. */
static const char *const tokenizer_files[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                              "special_tokens_map.json"};
#define N_TOKENIZER_FILES (sizeof tokenizer_files / sizeof tokenizer_files[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora init-model --out DIR [--preset NAME] [--tokenizer DIR] [--vocab N]\n"
            "                            [--dtype f32|f16|bf16] [--seed N] [--init-std X] [--shard-bytes N]\n\n"
            "Writes a randomly initialised Hugging Face model folder: config.json and model.safetensors\n"
            "(or shards with model.safetensors.index.json). Weights are drawn as transformers initialises\n"
            "a new model: linear and embedding weights from N(0, %g^2), biases 0, RMSNorm weights 1.\n"
            "The same options give byte-identical files.\n\n"
            "  --out DIR          output folder, created when missing; it must not already hold a model\n"
            "  --preset NAME      model shape (default %s), one of:\n                    ",
            (double)AL_RANDOM_MODEL_INIT_STD, DEFAULT_PRESET);
    for (int i = 0; al_model_preset_name(i); i++)
        fprintf(out, "%s %s", i ? "," : "", al_model_preset_name(i));
    fprintf(out,
            "\n"
            "                     tiny is a small Llama (hidden 64, 2 layers, vocab 2048); the others\n"
            "                     have the shapes of the published models\n"
            "  --tokenizer DIR    copy tokenizer.json, tokenizer.model, tokenizer_config.json and\n"
            "                     special_tokens_map.json (those present) from DIR, and take vocab_size and\n"
            "                     the bos/eos ids from that tokenizer\n"
            "  --vocab N          vocab_size; with --tokenizer it must be at least the tokenizer's size\n"
            "                     (default: the tokenizer's size, else the preset's)\n"
            "  --dtype TYPE       f32, f16 or bf16 (default bf16)\n"
            "  --seed N           random seed (default %d)\n"
            "  --init-std X       std of the normal weights (default: transformers' 0.02); the demo uses a\n"
            "                     larger one so a LoRA on a random frozen model can move the logits\n"
            "  --shard-bytes N    largest shard in bytes (default %llu); larger models are sharded\n\n"
            "exit status: 0 written, 1 bad input or failure (the reason is printed), 2 usage error\n",
            DEFAULT_SEED, (unsigned long long)AL_RANDOM_MODEL_DEFAULT_SHARD_BYTES);
}

struct init_options {
    const char *out_dir, *preset, *tokenizer_dir;
    long long vocab; /* 0: not given */
    enum al_dtype dtype;
    uint64_t seed;
    uint64_t shard_bytes;
    float init_std;
};

static int usage_error(const char *fmt, const char *value)
{
    return al_cli_usage_error(COMMAND, usage, fmt, value);
}

/* A whole decimal number in [min, max]; -1 when the text is not one. */
static int parse_unsigned(const char *text, unsigned long long min, unsigned long long max, unsigned long long *out)
{
    if (!text || !*text || *text == '-' || *text == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

static int parse_dtype(const char *text, enum al_dtype *out)
{
    static const struct {
        const char *name;
        enum al_dtype dtype;
    } dtypes[] = {{"f32", AL_DTYPE_F32}, {"f16", AL_DTYPE_F16}, {"bf16", AL_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strcmp(text, dtypes[i].name) == 0) {
            *out = dtypes[i].dtype;
            return 0;
        }
    }
    return -1;
}

/* Parses the command line; returns AL_EXIT_OK to go on, or the exit status to stop with
 * (*done set). */
static int parse_options(int argc, char **argv, struct init_options *opt, int *done)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'},   {"preset", required_argument, NULL, 'p'},
        {"tokenizer", required_argument, NULL, 't'}, {"vocab", required_argument, NULL, 'v'},
        {"dtype", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
        {"shard-bytes", required_argument, NULL, 'b'}, {"help", no_argument, NULL, 'h'},
        {"init-std", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct init_options){.preset = DEFAULT_PRESET, .dtype = AL_DTYPE_BF16, .seed = DEFAULT_SEED,
                                 .shard_bytes = AL_RANDOM_MODEL_DEFAULT_SHARD_BYTES,
                                 .init_std = AL_RANDOM_MODEL_INIT_STD};
    *done = 1;
    unsigned long long value;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'o': opt->out_dir = optarg; break;
        case 'p': opt->preset = optarg; break;
        case 't': opt->tokenizer_dir = optarg; break;
        case 'v':
            if (parse_unsigned(optarg, 1, MAX_VOCAB, &value) != 0)
                return usage_error("--vocab must be a whole number from 1 to 16777216, got '%s'", optarg);
            opt->vocab = (long long)value;
            break;
        case 'd':
            if (parse_dtype(optarg, &opt->dtype) != 0)
                return usage_error("--dtype must be f32, f16 or bf16, got '%s'", optarg);
            break;
        case 's':
            if (parse_unsigned(optarg, 0, UINT64_MAX, &value) != 0)
                return usage_error("--seed must be a whole number, got '%s'", optarg);
            opt->seed = value;
            break;
        case 'b':
            if (parse_unsigned(optarg, 1, UINT64_MAX, &value) != 0)
                return usage_error("--shard-bytes must be a positive whole number, got '%s'", optarg);
            opt->shard_bytes = value;
            break;
        case 'i': {
            char *end;
            double std = strtod(optarg, &end);
            if (end == optarg || *end || !(std > 0 && std < 100))
                return usage_error("--init-std must be a positive number, got '%s'", optarg);
            opt->init_std = (float)std;
            break;
        }
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!opt->out_dir)
        return usage_error("%s", "--out is required");
    struct al_model_config unused;
    if (al_model_preset(opt->preset, &unused) != 0)
        return usage_error("--preset: %s", al_error_message());
    *done = 0;
    return AL_EXIT_OK;
}

/* vocab_size and the bos/eos ids from the tokenizer in dir. */
static int apply_tokenizer(struct al_model_config *config, const struct init_options *opt)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load(opt->tokenizer_dir);
    if (!tokenizer) {
        al_error_context("--tokenizer %s", opt->tokenizer_dir);
        return -1;
    }
    int32_t size = al_tokenizer_vocab_size(tokenizer);
    int32_t bos = al_tokenizer_bos_id(tokenizer), eos = al_tokenizer_eos_id(tokenizer);
    al_tokenizer_free(tokenizer);
    if (opt->vocab && opt->vocab < size)
        return al_fail("--vocab %lld is smaller than the vocabulary of the tokenizer in %s (%d ids)", opt->vocab,
                       opt->tokenizer_dir, size);
    config->vocab_size = opt->vocab ? (int)opt->vocab : size;
    config->bos_token_id = bos;
    config->num_eos_token_ids = eos >= 0 ? 1 : 0;
    config->eos_token_ids[0] = eos;
    return 0;
}

/* A --vocab smaller than the preset's leaves its bos/eos ids pointing past the
 * embeddings; without a tokenizer to say otherwise, the model then has none. */
static void drop_ids_outside_vocab(struct al_model_config *config)
{
    if (config->bos_token_id >= config->vocab_size) {
        printf("note: bos_token_id %d is outside --vocab %d; the model gets none\n", config->bos_token_id,
               config->vocab_size);
        config->bos_token_id = -1;
    }
    int kept = 0;
    for (int i = 0; i < config->num_eos_token_ids; i++) {
        if (config->eos_token_ids[i] < config->vocab_size)
            config->eos_token_ids[kept++] = config->eos_token_ids[i];
        else
            printf("note: eos_token_id %d is outside --vocab %d; dropped\n", config->eos_token_ids[i],
                   config->vocab_size);
    }
    config->num_eos_token_ids = kept;
}

static int copy_file(const char *from, const char *to)
{
    size_t length = 0;
    char *data = al_file_read_all(from, &length);
    if (!data)
        return -1;
    int rc = al_file_write_atomic(to, data, length);
    free(data);
    return rc;
}

/* Copies the tokenizer files DIR has; prints the names copied. */
static int copy_tokenizer_files(const char *from_dir, const char *to_dir)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < N_TOKENIZER_FILES; i++) {
        char *from = al_path_join(from_dir, tokenizer_files[i]);
        char *to = al_path_join(to_dir, tokenizer_files[i]);
        if (!from || !to)
            rc = al_fail("out of memory");
        else if (al_file_exists(from) && (rc = copy_file(from, to)) == 0)
            printf("  %s (from %s)\n", tokenizer_files[i], from_dir);
        free(from);
        free(to);
    }
    return rc;
}

static void print_weight_files(const char *out_dir)
{
    char *index = al_path_join(out_dir, "model.safetensors.index.json");
    if (index && al_file_exists(index))
        printf("  model.safetensors.index.json and its shards\n");
    else
        printf("  model.safetensors\n");
    free(index);
}

static int run_init_model(const struct init_options *opt)
{
    struct al_model_config config;
    if (al_model_preset(opt->preset, &config) != 0)
        return -1;
    if (opt->tokenizer_dir) {
        if (apply_tokenizer(&config, opt) != 0)
            return -1;
    } else if (opt->vocab) {
        config.vocab_size = (int)opt->vocab;
        drop_ids_outside_vocab(&config);
    }
    config.torch_dtype = opt->dtype;
    if (al_random_model_write_std(&config, opt->dtype, opt->seed, opt->init_std, opt->out_dir, opt->shard_bytes) != 0)
        return -1;
    printf("wrote a random %s model (%s, %lld parameters, %s, seed %llu, vocab %d) to %s:\n", opt->preset,
           config.architecture, (long long)al_model_config_parameter_count(&config), al_dtype_name(opt->dtype),
           (unsigned long long)opt->seed, config.vocab_size, opt->out_dir);
    printf("  config.json\n");
    print_weight_files(opt->out_dir);
    if (opt->tokenizer_dir && copy_tokenizer_files(opt->tokenizer_dir, opt->out_dir) != 0) {
        al_error_context("copying the tokenizer from %s", opt->tokenizer_dir);
        return -1;
    }
    return 0;
}

int al_cmd_init_model(int argc, char **argv)
{
    struct init_options opt;
    int done;
    int status = parse_options(argc, argv, &opt, &done);
    if (done)
        return status;
    return run_init_model(&opt) == 0 ? AL_EXIT_OK : al_cli_report_error(COMMAND);
}
