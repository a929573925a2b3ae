/* agentlora merge: a base model plus a LoRA adapter, written as one Hugging Face model. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "agentlora/merge.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: agentlora merge --model DIR --adapter DIR --out DIR [--shard-bytes N] [--overwrite]\n\n"
                 "Writes DIR (--out) as a Hugging Face model folder whose adapted weights are W + s * B A,\n"
                 "in the base model's dtype: config.json and tokenizer files copied, weights in\n"
                 "model.safetensors or, above --shard-bytes (default %llu), shards with\n"
                 "model.safetensors.index.json. An existing, non-empty DIR is refused (exit 1) unless\n"
                 "--overwrite is given, which replaces the files the merge writes.\n",
            (unsigned long long)AL_MERGE_DEFAULT_SHARD_BYTES);
}

int al_cmd_merge(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'}, {"adapter", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},   {"shard-bytes", required_argument, NULL, 's'},
        {"overwrite", no_argument, NULL, 'w'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *adapter = NULL, *out = NULL;
    unsigned long long shard_bytes = AL_MERGE_DEFAULT_SHARD_BYTES;
    bool overwrite = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 'o': out = optarg; break;
        case 's': shard_bytes = strtoull(optarg, NULL, 10); break;
        case 'w': overwrite = true; break;
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (!model || !adapter || !out || optind != argc || shard_bytes == 0) {
        fprintf(stderr, "agentlora merge: --model, --adapter and --out are required\n\n");
        usage(stderr);
        return AL_EXIT_USAGE;
    }
    if (al_merge_check_target(out, overwrite) != 0 || al_merge_model(model, adapter, out, shard_bytes) != 0)
        return al_cli_report_error("merge");
    printf("merged %s + %s into %s\n", model, adapter, out);
    return AL_EXIT_OK;
}
