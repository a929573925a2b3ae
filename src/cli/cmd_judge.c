/* agentlora judge: runs a refusal judge over a JSONL file of responses, one verdict a line
 * on stdout and the totals (with agreement, where lines carry labels) on stderr. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: agentlora judge FILE.jsonl [--judge NAME] [--judge-model DIR [--template NAME] [--device NAME]]\n\n"
                 "Judges each line's response: {\"text\": ...} or {\"messages\": [...]} (the last assistant\n"
                 "message; its tool_calls count as a tool call). Writes one line per input line to stdout,\n"
                 "{\"refusal\": true|false, \"judge\": NAME, \"reason\": ...}, and the totals to stderr; lines\n"
                 "with a boolean \"label\" (the expected refusal) add accuracy, precision, recall and the\n"
                 "misjudged line numbers. Blank lines are skipped.\n\n"
                 "  --judge NAME           %s (default), or model (needs --judge-model)\n"
                 "  --judge-model DIR      a chat model folder that judges instead: it answers whether each\n"
                 "                         response refuses, read from its Yes/No next-token logits after one\n"
                 "                         prefill (judge name \"%s<folder name>\"); implies --judge model\n"
                 "  --template NAME        the judge model's chat format (default: recognised from its\n"
                 "                         tokenizer_config.json)\n"
                 "  --device NAME          where the judge model runs: cpu (default), cuda, or auto\n",
            AL_JUDGE_DEFAULT_NAME, AL_JUDGE_MODEL_NAME_PREFIX);
}

static int print_verdict(const struct al_verdict *verdict)
{
    cJSON *object = cJSON_CreateObject();
    if (!object || !cJSON_AddBoolToObject(object, "refusal", verdict->refusal) ||
        !cJSON_AddStringToObject(object, "judge", verdict->judge) ||
        !cJSON_AddStringToObject(object, "reason", verdict->reason)) {
        cJSON_Delete(object);
        return al_fail("out of memory writing a verdict");
    }
    char *line = cJSON_PrintUnformatted(object);
    cJSON_Delete(object);
    if (!line)
        return al_fail("out of memory writing a verdict");
    puts(line);
    free(line);
    return 0;
}

static void print_totals(const char *judge_name, const struct al_judge_tally *tally)
{
    fprintf(stderr, "judge %s: %ld responses, %ld refusals (%.1f%%)\n", judge_name, tally->count, tally->refusals,
            tally->count ? 100.0 * (double)tally->refusals / (double)tally->count : 0.0);
    if (tally->labelled == 0)
        return;
    fprintf(stderr, "labelled %ld: accuracy %.1f%%, precision %.1f%%, recall %.1f%% (tp %ld, fp %ld, tn %ld, fn %ld)\n",
            tally->labelled, 100.0 * al_judge_tally_accuracy(tally), 100.0 * al_judge_tally_precision(tally),
            100.0 * al_judge_tally_recall(tally), tally->true_positive, tally->false_positive, tally->true_negative,
            tally->false_negative);
    fprintf(stderr, "misjudged lines:");
    if (tally->n_misjudged == 0)
        fprintf(stderr, " none");
    for (long i = 0; i < tally->n_misjudged; i++)
        fprintf(stderr, "%s %ld", i ? "," : "", tally->misjudged_lines[i]);
    fprintf(stderr, "\n");
}

static bool is_blank(const char *line)
{
    for (; *line; line++)
        if (*line != ' ' && *line != '\t' && *line != '\r' && *line != '\n')
            return false;
    return true;
}

static int judge_one_line(const struct al_judge *judge, const char *line, const char *path, long line_number,
                          struct al_judge_tally *tally)
{
    struct al_judge_input input;
    struct al_verdict verdict;
    if (al_judge_input_from_line(&input, line, path, line_number) != 0)
        return -1;
    int status = al_judge_response(judge, input.text, input.has_tool_call, &verdict);
    if (status != 0)
        al_error_context("%s: line %ld", path, line_number);
    if (status == 0)
        status = print_verdict(&verdict);
    if (status == 0)
        status = al_judge_tally_add(tally, &input, &verdict, line_number);
    al_judge_input_free(&input);
    return status;
}

static int judge_file(const struct al_judge *judge, const char *path)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return al_fail_errno("cannot open %s", path);
    struct al_judge_tally tally = {0};
    char *line = NULL;
    size_t capacity = 0;
    long line_number = 0;
    int status = 0;
    while (status == 0 && getline(&line, &capacity, file) != -1) {
        line_number++;
        if (!is_blank(line))
            status = judge_one_line(judge, line, path, line_number, &tally);
    }
    free(line);
    fclose(file);
    fflush(stdout);
    if (status == 0)
        print_totals(judge->name, &tally);
    al_judge_tally_free(&tally);
    return status;
}

int al_cmd_judge(int argc, char **argv)
{
    static const struct option options[] = {
        {"judge", required_argument, NULL, 'j'},      {"judge-model", required_argument, NULL, 'm'},
        {"template", required_argument, NULL, 't'},   {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    struct al_cli_judge_choice opt = {AL_JUDGE_DEFAULT_NAME, false, NULL, NULL};
    const char *device = "cpu";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'j': opt.name = optarg; opt.name_given = true; break;
        case 'm': opt.model_dir = optarg; break;
        case 't': opt.template_name = optarg; break;
        case 'd': device = optarg; break;
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "agentlora judge: exactly one input file is required\n\n");
        usage(stderr);
        return AL_EXIT_USAGE;
    }
    const char *problem = al_cli_judge_problem(&opt);
    if (problem)
        return al_cli_usage_error("judge", usage, "%s", problem);
    if (!opt.model_dir && strcmp(device, "cpu") != 0)
        return al_cli_usage_error("judge", usage, "%s", "--device applies to --judge-model only");
    struct al_judge *opened;
    const struct al_judge *judge = al_cli_judge_open(&opt, device, &opened);
    if (!judge && !opt.model_dir) {
        fprintf(stderr, "agentlora judge: %s\n\n", al_error_message());
        usage(stderr);
        return AL_EXIT_USAGE;
    }
    int status = judge && judge_file(judge, argv[optind]) == 0 ? AL_EXIT_OK : al_cli_report_error("judge");
    al_judge_model_close(opened);
    return status;
}
