/* agentlora judge: runs a refusal judge over a JSONL file of responses, one verdict a line
 * on stdout and the totals (with agreement, where lines carry labels) on stderr. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge.h"
#include "agentlora/judge_learned.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: agentlora judge FILE.jsonl [--judge NAME] [--judge-model DIR [--template NAME] [--device NAME]]\n"
                 "                       [--progress | --no-progress]\n\n"
                 "Judges each line's response: {\"text\": ...} or {\"messages\": [...]} (the last assistant\n"
                 "message; its tool_calls count as a tool call). Writes one line per input line to stdout,\n"
                 "{\"refusal\": true|false, \"judge\": NAME, \"reason\": ...}, and the totals to stderr; lines\n"
                 "with a boolean \"label\" (the expected refusal) add accuracy, precision, recall and the\n"
                 "misjudged line numbers, a confusion table and the first few disagreements. Blank lines\n"
                 "are skipped.\n\n"
                 "  --judge NAME           %s (default: %s when its weights file %s is found\n"
                 "                         (or $%s names one), else %s), %s, %s,\n"
                 "                         or model (needs --judge-model)\n"
                 "  --judge-model DIR      a chat model folder that judges instead: it answers whether each\n"
                 "                         response refuses, read from its Yes/No next-token logits after one\n"
                 "                         prefill (judge name \"%s<folder name>\"); implies --judge model\n"
                 "  --template NAME        the judge model's chat format (default: recognised from its\n"
                 "                         tokenizer_config.json)\n"
                 "  --device NAME          where the judge model runs: cpu (default), cuda, or auto\n"
                 AL_CLI_PROGRESS_HELP,
            AL_JUDGE_AUTO_NAME, AL_JUDGE_LEARNED_NAME, AL_JUDGE_LEARNED_FILE, AL_JUDGE_LEARNED_ENV,
            AL_JUDGE_KEYWORDS_NAME, AL_JUDGE_LEARNED_NAME, AL_JUDGE_KEYWORDS_NAME, AL_JUDGE_MODEL_NAME_PREFIX);
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

/* How many disagreements are printed in full after the totals. */
#define SHOWN_DISAGREEMENTS 5
#define EXCERPT_BYTES 100

static void print_confusion(const struct al_judge_tally *t)
{
    fprintf(stderr, "confusion (rows: label, columns: verdict):\n");
    fprintf(stderr, "  %-14s %10s %10s\n", "", "refusal", "no refusal");
    fprintf(stderr, "  %-14s %10ld %10ld\n", "refusal", t->true_positive, t->false_negative);
    fprintf(stderr, "  %-14s %10ld %10ld\n", "no refusal", t->false_positive, t->true_negative);
}

/* The opening of a response on one line, cut at a character start. */
static void print_excerpt(const char *text)
{
    size_t n = strlen(text);
    bool cut = n > EXCERPT_BYTES;
    if (cut) {
        n = EXCERPT_BYTES;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    fputc('"', stderr);
    for (size_t i = 0; i < n; i++)
        fputc(text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i], stderr);
    fprintf(stderr, "%s\"", cut ? "..." : "");
}

struct judged {
    struct al_judge_input *inputs;
    struct al_verdict *verdicts;
    long *line_numbers;
    int count, capacity;
};

static void print_disagreements(const struct judged *j)
{
    int shown = 0;
    for (int i = 0; i < j->count && shown < SHOWN_DISAGREEMENTS; i++) {
        const struct al_judge_input *input = &j->inputs[i];
        if (!input->has_label || input->label == j->verdicts[i].refusal)
            continue;
        if (shown++ == 0)
            fprintf(stderr, "first disagreements:\n");
        fprintf(stderr, "  line %ld: label %s, judged %s (%s): ", j->line_numbers[i],
                input->label ? "refusal" : "no refusal", j->verdicts[i].refusal ? "refusal" : "no refusal",
                j->verdicts[i].reason);
        print_excerpt(input->has_tool_call && !*input->text ? "(a tool call)" : input->text);
        fputc('\n', stderr);
    }
}

static void print_totals(const char *judge_name, const struct al_judge_tally *tally, const struct judged *j)
{
    fprintf(stderr, "judge %s: %ld responses, %ld refusals (%.1f%%)\n", judge_name, tally->count, tally->refusals,
            tally->count ? 100.0 * (double)tally->refusals / (double)tally->count : 0.0);
    if (tally->labelled == 0)
        return;
    fprintf(stderr, "labelled %ld: accuracy %.1f%%, precision %.1f%%, recall %.1f%% (tp %ld, fp %ld, tn %ld, fn %ld)\n",
            tally->labelled, 100.0 * al_judge_tally_accuracy(tally), 100.0 * al_judge_tally_precision(tally),
            100.0 * al_judge_tally_recall(tally), tally->true_positive, tally->false_positive, tally->true_negative,
            tally->false_negative);
    print_confusion(tally);
    fprintf(stderr, "misjudged lines:");
    if (tally->n_misjudged == 0)
        fprintf(stderr, " none");
    for (long i = 0; i < tally->n_misjudged; i++)
        fprintf(stderr, "%s %ld", i ? "," : "", tally->misjudged_lines[i]);
    fprintf(stderr, "\n");
    print_disagreements(j);
}

static bool is_blank(const char *line)
{
    for (; *line; line++)
        if (*line != ' ' && *line != '\t' && *line != '\r' && *line != '\n')
            return false;
    return true;
}

static int keep_line(struct judged *j, const char *line, const char *path, long line_number)
{
    if (j->count == j->capacity) {
        int capacity = j->capacity ? 2 * j->capacity : 256;
        struct al_judge_input *inputs = realloc(j->inputs, (size_t)capacity * sizeof *inputs);
        if (inputs)
            j->inputs = inputs;
        long *lines = inputs ? realloc(j->line_numbers, (size_t)capacity * sizeof *lines) : NULL;
        if (!lines)
            return al_fail("out of memory reading %s", path);
        j->line_numbers = lines;
        j->capacity = capacity;
    }
    if (al_judge_input_from_line(&j->inputs[j->count], line, path, line_number) != 0)
        return -1;
    j->line_numbers[j->count++] = line_number;
    return 0;
}

static int read_lines(struct judged *j, const char *path)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return al_fail_errno("cannot open %s", path);
    char *line = NULL;
    size_t capacity = 0;
    long line_number = 0;
    int status = 0;
    while (status == 0 && getline(&line, &capacity, file) != -1) {
        line_number++;
        if (!is_blank(line))
            status = keep_line(j, line, path, line_number);
    }
    free(line);
    fclose(file);
    return status;
}

/* Lines judged together: enough for the parallel judges to share out, few enough that the
 * progress line moves while a model judge works through a large file. */
#define JUDGE_CHUNK 64

/* Judges every line, a chunk at a time (the learned judge and keywords-v1 run in parallel
 * within a chunk). */
static int judge_lines(const struct al_judge *judge, struct judged *j, enum al_work_progress_mode mode)
{
    const char **texts = malloc((size_t)(j->count ? j->count : 1) * sizeof *texts);
    bool *tool_calls = malloc((size_t)(j->count ? j->count : 1) * sizeof *tool_calls);
    j->verdicts = calloc((size_t)(j->count ? j->count : 1), sizeof *j->verdicts);
    int status = texts && tool_calls && j->verdicts ? 0 : al_fail("out of memory");
    for (int i = 0; i < j->count && status == 0; i++) {
        texts[i] = j->inputs[i].text;
        tool_calls[i] = j->inputs[i].has_tool_call;
    }
    struct al_work_progress progress = {0};
    if (status == 0)
        al_work_progress_start(&progress, "judge", j->count, &(struct al_work_progress_options){.mode = mode});
    for (int start = 0; status == 0 && start < j->count; start += JUDGE_CHUNK) {
        int n = j->count - start < JUDGE_CHUNK ? j->count - start : JUDGE_CHUNK;
        status = al_judge_responses(judge, n, texts + start, tool_calls + start, j->verdicts + start);
        if (status != 0)
            al_error_context("lines %ld..%ld", j->line_numbers[start], j->line_numbers[start + n - 1]);
        al_work_progress_add(&progress, n, 0);
    }
    if (status == 0)
        al_work_progress_finish(&progress);
    free(texts);
    free(tool_calls);
    return status;
}

static int judge_file(const struct al_judge *judge, const char *path, enum al_work_progress_mode mode)
{
    struct judged j = {0};
    struct al_judge_tally tally = {0};
    int status = read_lines(&j, path);
    if (status == 0)
        status = judge_lines(judge, &j, mode);
    for (int i = 0; i < j.count && status == 0; i++) {
        status = print_verdict(&j.verdicts[i]);
        if (status == 0)
            status = al_judge_tally_add(&tally, &j.inputs[i], &j.verdicts[i], j.line_numbers[i]);
    }
    fflush(stdout);
    if (status == 0)
        print_totals(judge->name, &tally, &j);
    for (int i = 0; i < j.count; i++)
        al_judge_input_free(&j.inputs[i]);
    free(j.inputs);
    free(j.verdicts);
    free(j.line_numbers);
    al_judge_tally_free(&tally);
    return status;
}

int al_cmd_judge(int argc, char **argv)
{
    static const struct option options[] = {
        {"judge", required_argument, NULL, 'j'},      {"judge-model", required_argument, NULL, 'm'},
        {"template", required_argument, NULL, 't'},   {"device", required_argument, NULL, 'd'},
        AL_CLI_PROGRESS_OPTIONS,
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    struct al_cli_judge_choice opt = {AL_JUDGE_DEFAULT_NAME, false, NULL, NULL};
    const char *device = "cpu";
    enum al_work_progress_mode progress = AL_WORK_PROGRESS_AUTO;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (al_cli_progress_option(c, &progress))
            continue;
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
    int status = judge && judge_file(judge, argv[optind], progress) == 0 ? AL_EXIT_OK : al_cli_report_error("judge");
    al_judge_model_close(opened);
    return status;
}
