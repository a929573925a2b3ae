/* agentlora eval: generate, judge and score a model (and adapters) on data records, write
 * report.json and samples.jsonl, and print the tables. Each adapter (the base model, and a
 * second adapter when given) is evaluated without a prefix and then with each PING prefix;
 * every run is compared with the first side by side, and all are summed up in one table. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentlora/chat_template.h"
#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/ping.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "cli/cli.h"

#define COMMAND "eval"
#define MAX_BATCH 256
#define MAX_NEW_TOKENS_LIMIT 1000000
/* Where reports go when --out is not given: one folder per run, named by the time. */
#define DEFAULT_OUT_PARENT "checkpoints"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora eval --model DIR --data FILE [options]\n\n"
            "Generates a response to each record (its conversation up to the first assistant response),\n"
            "judges it for refusal, scores its first tool call against the record's reference call, and\n"
            "reports AgentHarm-style numbers for the harmful and the benign split and for each category.\n"
            "A PING prefix is prefilled after the assistant header and is NOT judged or scored: only what\n"
            "the model wrote after it is. With a prefix the model is evaluated without it and with it;\n"
            "with --adapter2 both adapters are, each without and with every prefix. Each run is printed,\n"
            "then compared with the first side by side, and with more than two runs all of them are\n"
            "summed up in one table. Plain chat data (no record has tools or a tool call, e.g. an Alpaca\n"
            "or ShareGPT file) has no tool-call score: its reports give the refusal rates and the\n"
            "teacher-forced loss and perplexity of the records' own assistant answers instead.\n\n"
            "  --model DIR            model folder (config.json, *.safetensors, tokenizer files), or a\n"
            "                         GGUF file, converted once into <file>.hf beside it\n"
            "  --adapter DIR          PEFT LoRA adapter applied on top of the model (run A)\n"
            "  --adapter2 DIR         a second adapter, evaluated after run A's (without --adapter, run A\n"
            "                         is the base model) and compared with it\n"
            "  --data FILE            AgentAlign JSON array or JSONL, {\"messages\", \"tools\"} JSONL, Alpaca or\n"
            "                         ShareGPT JSONL\n"
            "  --ping-prefix TEXT     evaluate without and with this forced response prefix\n"
            "  --ping-prefixes F      the same for each prefix of F (a JSON list of strings, or one per line)\n"
            "  --template NAME        chat format: llama3.1, llama3.2, chatml-qwen2.5, smollm2, chatml-tools,\n"
            "                         qwen3, mistral-nemo, mistral-v3 (default: recognised from the model's\n"
            "                         tokenizer_config.json)\n"
            "  --max-new-tokens N     longest response in tokens (default %d)\n"
            "  --records LIST         only these record numbers, e.g. 1,4,7-9\n"
            "  --limit N              only the first N records (after --records)\n"
            "  --batch N              records decoded together (default %d)\n"
            "  --judge NAME           refusal judge: %s (default), or model (needs --judge-model)\n"
            "  --judge-model DIR      a chat model folder that judges refusals instead (its Yes/No answer;\n"
            "                         judge name \"model:<folder name>\"); runs on --device\n"
            "  --judge-template NAME  the judge model's chat format (default: recognised from its folder)\n"
            "  --out DIR              where report.json and samples.jsonl go\n"
            "                         (default " DEFAULT_OUT_PARENT "/eval-<YYYYmmdd-HHMMSS>)\n"
            "  --device NAME          cpu (default), cuda, or auto\n"
            AL_CLI_THINKING_HELP AL_CLI_PROGRESS_HELP "\n"
            "Generation is greedy, so the same inputs give the same report.\n"
            "report.json: {\"judge\", \"reports\": [{label, prefix, judge, items, aggregate, plain_chat,\n"
            "combined_score (null for plain chat), reference_answers {loss, perplexity, tokens} (plain chat)}]}\n"
            "samples.jsonl: one line per record and run: run, record, id, label, category, prompt, prefix,\n"
            "completion, verdict {refusal, judge, reason}, tool_calls, score.\n\n"
            "exit status: 0 success, 1 bad input or runtime failure, 2 usage error\n",
            AL_EVAL_DEFAULT_MAX_NEW_TOKENS, AL_EVAL_DEFAULT_BATCH, AL_JUDGE_DEFAULT_NAME);
}

struct eval_options {
    const char *model_dir, *adapter_dir, *adapter2_dir, *data_path, *prefix, *prefixes_path, *template_name;
    const char *records, *out_dir, *device;
    struct al_cli_judge_choice judge;
    int max_new_tokens, limit, batch;
    enum al_work_progress_mode progress;
    bool no_thinking;
};

static int usage_error(const char *fmt, const char *value)
{
    return al_cli_usage_error(COMMAND, usage, fmt, value);
}

static int parse_options(int argc, char **argv, struct eval_options *opt, int *done)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},          {"adapter", required_argument, NULL, 'a'},
        {"adapter2", required_argument, NULL, 'A'},       {"data", required_argument, NULL, 'D'},
        {"ping-prefix", required_argument, NULL, 'x'},    {"ping-prefixes", required_argument, NULL, 'X'},
        {"template", required_argument, NULL, 't'},       {"max-new-tokens", required_argument, NULL, 'n'},
        {"records", required_argument, NULL, 'r'},        {"limit", required_argument, NULL, 'l'},
        {"batch", required_argument, NULL, 'b'},          {"judge", required_argument, NULL, 'j'},
        {"out", required_argument, NULL, 'o'},            {"device", required_argument, NULL, 'd'},
        {"judge-model", required_argument, NULL, 'J'},    {"judge-template", required_argument, NULL, 'T'},
        AL_CLI_PROGRESS_OPTIONS, AL_CLI_THINKING_OPTION,
        {"help", no_argument, NULL, 'h'},                 {NULL, 0, NULL, 0},
    };
    *opt = (struct eval_options){.device = "cpu", .judge = {.name = AL_JUDGE_DEFAULT_NAME},
                                 .max_new_tokens = AL_EVAL_DEFAULT_MAX_NEW_TOKENS, .batch = AL_EVAL_DEFAULT_BATCH};
    *done = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (al_cli_progress_option(c, &opt->progress))
            continue;
        if (c == AL_CLI_OPT_NO_THINKING) {
            opt->no_thinking = true;
            continue;
        }
        switch (c) {
        case 'm': opt->model_dir = optarg; break;
        case 'a': opt->adapter_dir = optarg; break;
        case 'A': opt->adapter2_dir = optarg; break;
        case 'D': opt->data_path = optarg; break;
        case 'x': opt->prefix = optarg; break;
        case 'X': opt->prefixes_path = optarg; break;
        case 't': opt->template_name = optarg; break;
        case 'r': opt->records = optarg; break;
        case 'j': opt->judge.name = optarg; opt->judge.name_given = true; break;
        case 'J': opt->judge.model_dir = optarg; break;
        case 'T': opt->judge.template_name = optarg; break;
        case 'o': opt->out_dir = optarg; break;
        case 'd': opt->device = optarg; break;
        case 'n':
            if (al_cli_parse_int(optarg, 1, MAX_NEW_TOKENS_LIMIT, &opt->max_new_tokens) != 0)
                return usage_error("--max-new-tokens must be a whole number from 1 to 1000000, got '%s'", optarg);
            break;
        case 'l':
            if (al_cli_parse_int(optarg, 1, 1000000000, &opt->limit) != 0)
                return usage_error("--limit must be a whole number >= 1, got '%s'", optarg);
            break;
        case 'b':
            if (al_cli_parse_int(optarg, 1, MAX_BATCH, &opt->batch) != 0)
                return usage_error("--batch must be a whole number from 1 to 256, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!opt->model_dir)
        return usage_error("%s", "--model is required");
    if (!opt->data_path)
        return usage_error("%s", "--data is required");
    if (opt->prefix && opt->prefixes_path)
        return usage_error("%s", "give at most one of --ping-prefix and --ping-prefixes");
    if (opt->prefix && !*opt->prefix)
        return usage_error("%s", "--ping-prefix must not be empty");
    const char *judge_problem = al_cli_judge_problem(&opt->judge);
    if (judge_problem)
        return usage_error("%s", judge_problem);
    if (opt->records && al_cli_parse_record_list(opt->records, 0, NULL) != 0)
        return usage_error("--records must be a list like 1,4,7-9, got '%s'", opt->records);
    *done = 0;
    return AL_EXIT_OK;
}

/* ---- the session: model, adapters, tokenizer, records ---- */

struct session {
    struct al_cli_model m;
    struct al_lora *lora2;
    const struct al_judge *judge;
    struct al_judge *model_judge; /* the judge, when it is a model (closed with the session) */
    struct al_dataset dataset;
    bool have_dataset;
    struct al_eval_records records;
    struct al_ping prefixes;
    bool have_prefixes;
};

static struct al_lora *load_adapter(const struct session *s, const char *dir)
{
    return dir ? al_lora_load_peft(al_model_get_config(s->m.model), s->m.backend, dir) : NULL;
}

/* Indices of the selected records: --records first, then the first --limit of them. */
static int select_records(struct session *s, const struct eval_options *opt)
{
    int *indices = malloc((size_t)s->dataset.n_records * sizeof *indices);
    if (!indices)
        return al_fail("out of memory");
    int n = 0;
    for (int i = 0; i < s->dataset.n_records && (opt->limit == 0 || n < opt->limit); i++) {
        bool selected = !opt->records;
        if (opt->records)
            al_cli_parse_record_list(opt->records, s->dataset.records[i].record_number, &selected);
        if (selected)
            indices[n++] = i;
    }
    int rc = n > 0 ? al_eval_records_load(&s->records, &s->dataset, indices, n)
                   : al_fail("--records %s selects none of the %d records of %s", opt->records, s->dataset.n_records,
                             opt->data_path);
    free(indices);
    return rc;
}

static int session_open(struct session *s, const struct eval_options *opt)
{
    memset(s, 0, sizeof *s);
    if (!(s->judge = al_cli_judge_open(&opt->judge, opt->device, &s->model_judge)))
        return -1;
    if (opt->prefixes_path) {
        if (al_ping_load(&s->prefixes, opt->prefixes_path) != 0)
            return -1;
        s->have_prefixes = true;
    }
    struct al_reader_options reader = {.strict = false};
    if (al_dataset_load(&s->dataset, opt->data_path, &reader) != 0)
        return -1;
    s->have_dataset = true;
    if (select_records(s, opt) != 0)
        return -1;
    if (al_cli_model_open(&s->m, opt->model_dir, opt->adapter_dir, opt->template_name, opt->device) != 0)
        return -1;
    if (opt->no_thinking && al_cli_model_disable_thinking(&s->m) != 0)
        return -1;
    if (opt->adapter2_dir && !(s->lora2 = load_adapter(s, opt->adapter2_dir)))
        return -1;
    return 0;
}

static void session_close(struct session *s)
{
    al_eval_records_free(&s->records);
    if (s->have_dataset)
        al_dataset_free(&s->dataset);
    if (s->have_prefixes)
        al_ping_free(&s->prefixes);
    al_lora_free(s->lora2);
    al_cli_model_close(&s->m);
    al_judge_model_close(s->model_judge);
}

/* ---- the runs ---- */

/* One evaluation to make: which adapter, which prefix, and its name in the reports. */
struct run_plan {
    const struct al_lora *lora;
    const char *prefix;
    char label[256];
};

static const char *adapter_name(const char *dir)
{
    return dir ? dir : "base model";
}

/* For run A's adapter (or the base model), and then for --adapter2's: a run without a
 * prefix and one with each prefix. */
static int plan_runs(const struct session *s, const struct eval_options *opt, struct run_plan **plans, int *n)
{
    int prefixes = opt->prefix ? 1 : s->have_prefixes ? s->prefixes.n_prefixes : 0;
    int adapters = opt->adapter2_dir ? 2 : 1;
    int count = adapters * (1 + prefixes);
    *plans = calloc((size_t)count, sizeof **plans);
    if (!*plans)
        return al_fail("out of memory");
    *n = count;
    struct run_plan *p = *plans;
    for (int a = 0; a < adapters; a++) {
        const struct al_lora *lora = a == 0 ? s->m.lora : s->lora2;
        const char *name = a == 0 ? adapter_name(opt->adapter_dir) : opt->adapter2_dir;
        for (int i = 0; i <= prefixes; i++, p++) {
            const char *prefix = i == 0 ? NULL : opt->prefix ? opt->prefix : s->prefixes.prefixes[i - 1];
            *p = (struct run_plan){lora, prefix, ""};
            if (i == 0)
                snprintf(p->label, sizeof p->label, "%s, no prefix", name);
            else
                snprintf(p->label, sizeof p->label, "%s, prefix %d", name, i);
        }
    }
    return 0;
}

static char *default_out_dir(void)
{
    time_t now = time(NULL);
    struct tm utc;
    char name[64];
    gmtime_r(&now, &utc);
    strftime(name, sizeof name, "eval-%Y%m%d-%H%M%S", &utc);
    return al_path_join(DEFAULT_OUT_PARENT, name);
}

static int write_outputs(const char *dir, const struct al_eval_report *reports, int n)
{
    if (al_mkdirs(dir) != 0)
        return -1;
    char *report_path = al_path_join(dir, "report.json");
    char *samples_path = al_path_join(dir, "samples.jsonl");
    int rc = report_path && samples_path ? 0 : al_fail("out of memory");
    if (rc == 0)
        rc = al_eval_reports_write_json(reports, n, report_path);
    if (rc == 0)
        rc = al_eval_samples_write_jsonl(reports, n, samples_path);
    if (rc == 0)
        printf("wrote %s and %s\n", report_path, samples_path);
    free(report_path);
    free(samples_path);
    return rc;
}

static int run_all(struct session *s, const struct eval_options *opt)
{
    struct run_plan *plans = NULL;
    int n = 0;
    if (plan_runs(s, opt, &plans, &n) != 0)
        return -1;
    struct al_eval_report *reports = calloc((size_t)n, sizeof *reports);
    int rc = reports ? 0 : al_fail("out of memory");
    /* One progress over every run: its ETA is the whole command's. */
    struct al_work_progress progress = {0};
    if (rc == 0)
        al_work_progress_start(&progress, COMMAND, (int64_t)n * s->records.n,
                               &(struct al_work_progress_options){.mode = opt->progress});
    int done = 0;
    for (; rc == 0 && done < n; done++) {
        struct al_chat_generator generator = s->m.generator;
        generator.lora = plans[done].lora;
        struct al_eval_settings settings = al_eval_default_settings(&generator, s->judge);
        settings.prefix = plans[done].prefix;
        settings.generation.max_new_tokens = opt->max_new_tokens;
        settings.batch = opt->batch;
        settings.plain_chat_loss = true;
        settings.progress = &progress;
        if ((rc = al_evaluate(&settings, s->records.records, s->records.n, plans[done].label, &reports[done])) != 0)
            break;
        if (done + 1 == n)
            al_work_progress_finish(&progress);
        al_work_progress_break(&progress);
        al_eval_report_print(&reports[done], stdout);
        putchar('\n');
        fflush(stdout);
    }
    for (int i = 1; rc == 0 && i < n; i++) {
        al_eval_reports_print_side_by_side(&reports[0], &reports[i], stdout);
        putchar('\n');
    }
    if (rc == 0 && n > 2) {
        al_eval_reports_print_summary(reports, n, stdout);
        putchar('\n');
    }
    if (rc == 0) {
        char *dir = opt->out_dir ? strdup(opt->out_dir) : default_out_dir();
        rc = dir ? write_outputs(dir, reports, n) : al_fail("out of memory");
        free(dir);
    }
    for (int i = 0; i < done && reports; i++)
        al_eval_report_free(&reports[i]);
    free(reports);
    free(plans);
    return rc;
}

int al_cmd_eval(int argc, char **argv)
{
    struct eval_options opt;
    int done;
    int status = parse_options(argc, argv, &opt, &done);
    if (done)
        return status;
    struct session s;
    int rc = session_open(&s, &opt);
    if (rc == 0)
        rc = run_all(&s, &opt);
    session_close(&s);
    return rc == 0 ? AL_EXIT_OK : al_cli_report_error(COMMAND);
}
