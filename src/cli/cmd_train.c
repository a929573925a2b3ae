/* agentlora train: a LoRA training run from a JSON config and --key value overrides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/trainer.h"
#include "cli/cli.h"

static const char *const usage_line =
    "usage: agentlora train [--config run.json] [--key value ...]\n\n"
    "Trains a LoRA adapter. Every key below can be set in the JSON config and overridden on the\n"
    "command line (--key value or --key=value; '-' and '_' are interchangeable). Checkpoints,\n"
    "metrics.jsonl and TensorBoard events go to <output_dir>/<run_name>/; --resume auto continues a\n"
    "killed run exactly where its last checkpoint left it. One run at a time per folder (a second\n"
    "one is refused, naming the holder); a fresh run into a folder with checkpoints is refused\n"
    "unless --overwrite is given. A non-finite gradient warning names the batch (EPOCH:POSITION)\n"
    "and its records; --skip_batches leaves such batches out on resume. Ctrl-C (or SIGTERM)\n"
    "finishes the step in progress, writes a checkpoint, names it and exits with 130 (143 for\n"
    "SIGTERM); a second Ctrl-C stops at once.";

/* A GGUF model file trains through the folder it converts into, which is what the run
 * records (and what a resumed run, given the same file, resolves to again). */
static int use_model_folder(struct al_train_config *config)
{
    char *folder = al_cli_model_folder(config->model);
    if (!folder)
        return -1;
    int written = snprintf(config->model, sizeof config->model, "%s", folder);
    int rc = written >= 0 && (size_t)written < sizeof config->model
                 ? 0
                 : al_fail("the model folder path %s is longer than %zu bytes", folder, sizeof config->model - 1);
    free(folder);
    return rc;
}

int al_cmd_train(int argc, char **argv)
{
    struct al_train_config config;
    bool help = false;
    if (al_train_config_from_args(&config, argc - 1, argv + 1, &help) != 0) {
        fprintf(stderr, "agentlora train: %s\n(agentlora train --help lists every key)\n", al_error_message());
        return AL_EXIT_USAGE;
    }
    if (help) {
        char *text = al_train_config_help(usage_line);
        fputs(text ? text : usage_line, stdout);
        free(text);
        return AL_EXIT_OK;
    }
    if (config.model[0] == '\0' || config.train_data[0] == '\0') {
        fprintf(stderr, "agentlora train: the keys 'model' and 'train_data' are required\n");
        return AL_EXIT_USAGE;
    }
    if (use_model_folder(&config) != 0)
        return al_cli_report_error("train");
    struct al_run_summary summary;
    if (al_train(&config, &summary) != 0)
        return al_cli_report_error("train");
    /* The other ranks of a data-parallel run trained the same adapter: rank 0 reports it. */
    char *text = summary.rank == 0 ? al_run_summary_format(&summary) : NULL;
    fputs(text ? text : "", stdout);
    free(text);
    al_trainer_summary_free(&summary);
    /* Stopped by Ctrl-C or SIGTERM after writing a checkpoint: 128 + the signal, as a
     * shell reports a process the signal ended (130, 143), so scripts see it stopped early. */
    return summary.interrupted_by ? 128 + summary.interrupted_by : AL_EXIT_OK;
}
