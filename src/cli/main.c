/* agentlora: the command-line entry point. Each subcommand lives in its own file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_blas_core.h"
#include "agentlora/version.h"
#include "cli/cli.h"

static const struct al_command commands[] = {
    {"train", "train a LoRA adapter (agentlora train --help lists every key)", al_cmd_train},
    {"merge", "merge an adapter into its base model", al_cmd_merge},
    {"inspect", "validate a model folder and print its architecture", al_cmd_inspect},
    {"logits", "print (and save) a model's logits for given token ids", al_cmd_logits},
    {"data", "inspect a data file as the model will be trained on it", al_cmd_data},
    {"judge", "judge responses for refusal (checks the judge against labelled lines)", al_cmd_judge},
    {"judge-train", "train the learned refusal judge from labelled responses (make judge)", al_cmd_judge_train},
    {"eval", "generate, judge and score a model (and adapters, with or without a PING prefix) on data", al_cmd_eval},
    {"ping-search", "score and rank PING prefixes, and let the model propose better ones", al_cmd_ping_search},
    {"generate", "generate a model's reply to a prompt or to data records", al_cmd_generate},
    {"init-model", "write a randomly initialised model folder (optionally with a tokenizer)", al_cmd_init_model},
    {"convert", "convert a Llama GGUF file into a Hugging Face model folder", al_cmd_convert},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: agentlora <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'agentlora <command> --help' describes a command's options; 'agentlora --version' prints the release.\n"
                 "exit status: 0 success, 1 bad input or runtime failure, 2 usage error\n");
}

/* The release, and whether this binary can train on a GPU. */
static void print_version(void)
{
#ifdef AL_HAVE_CUDA
    const char *cuda = "built with the CUDA backend";
#else
    const char *cuda = "CPU backend only (built without nvcc)";
#endif
    printf("agentlora %s (%s)\n", AL_VERSION, cuda);
}

int main(int argc, char **argv)
{
    al_cpu_blas_use_best_kernels(argv);
    /* A write past the file size limit (ulimit -f) would kill the process without a word;
     * ignored, the write fails with EFBIG and is reported like any other write error. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        print_usage(stderr);
        return AL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        print_version();
        return AL_EXIT_OK;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return AL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "agentlora: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return AL_EXIT_USAGE;
}
