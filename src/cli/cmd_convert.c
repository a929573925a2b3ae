/* agentlora convert --gguf FILE --out DIR: a llama.cpp GGUF model as a Hugging Face
 * model folder. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/gguf.h"
#include "cli/cli.h"

#define COMMAND "convert"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora convert --gguf FILE --out DIR [--dtype f32|f16|bf16]\n\n"
            "Converts a Llama GGUF (llama.cpp's format) into a Hugging Face model folder: config.json,\n"
            "model.safetensors, tokenizer.json and tokenizer_config.json. Tensors of types F32, F16,\n"
            "BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K are dequantised; llama.cpp's reordering of the\n"
            "query and key rows is undone. The tokenizer must be byte-level BPE (\"gpt2\").\n"
            "Tensor shapes and tokens are checked before anything is written, and the folder is\n"
            "loaded back before \"wrote\" is printed; a folder that does not load is removed.\n\n"
            "  --gguf FILE    the GGUF file\n"
            "  --out DIR      output folder, created when missing; it must not already hold a model\n"
            "  --dtype TYPE   f32, f16 or bf16 (default f32: dequantised values are kept exactly)\n\n"
            "exit status: 0 written, 1 bad input or failure (the reason is printed), 2 usage error\n");
}

static int usage_error(const char *message, const char *value)
{
    fprintf(stderr, "agentlora " COMMAND ": ");
    fprintf(stderr, message, value);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return AL_EXIT_USAGE;
}

static int parse_dtype(const char *text, enum al_dtype *out)
{
    if (strcmp(text, "f32") == 0)
        *out = AL_DTYPE_F32;
    else if (strcmp(text, "f16") == 0)
        *out = AL_DTYPE_F16;
    else if (strcmp(text, "bf16") == 0)
        *out = AL_DTYPE_BF16;
    else
        return -1;
    return 0;
}

int al_cmd_convert(int argc, char **argv)
{
    static const struct option options[] = {
        {"gguf", required_argument, NULL, 'g'}, {"out", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *gguf = NULL, *out_dir = NULL;
    enum al_dtype dtype = AL_DTYPE_F32;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'g': gguf = optarg; break;
        case 'o': out_dir = optarg; break;
        case 'd':
            if (parse_dtype(optarg, &dtype) != 0)
                return usage_error("--dtype must be f32, f16 or bf16, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!gguf || !out_dir)
        return usage_error("%s", !gguf ? "--gguf FILE is required" : "--out DIR is required");
    if (al_gguf_convert(gguf, out_dir, dtype) != 0)
        return al_cli_report_error(COMMAND);
    printf("wrote %s (from %s)\n", out_dir, gguf);
    return AL_EXIT_OK;
}
