/* agentlora generate: try a model (and adapter) by hand. Generates a reply to a prompt
 * typed on the command line, or to records of a data file (each record's conversation
 * up to its first assistant response), optionally with a forced prefix after the
 * assistant header (PING's eval mode), and prints prefix and completion separately. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/generate.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "cli/cli.h"

#define COMMAND "generate"
/* Records generated when --records is not given: enough to see the model's manner
 * without waiting on a whole file. */
#define DEFAULT_RECORDS "1-3"
/* Records decoded together. */
#define DEFAULT_BATCH 4
#define MAX_BATCH 256
#define MAX_NEW_TOKENS_LIMIT 1000000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora generate --model DIR (--prompt TEXT | --data FILE [--records LIST]) [options]\n\n"
            "Generates the assistant's reply with a KV cache and prints it. The prompt is rendered with the\n"
            "model's chat template and ends with the assistant header; --prefix text is placed after the\n"
            "header (PING's eval mode) and the model continues it. The completion is printed without the\n"
            "prefix and without the end-of-turn token.\n\n"
            "  --model DIR            model folder (config.json, *.safetensors, tokenizer files), or a\n"
            "                         GGUF file, converted once into <file>.hf beside it\n"
            "  --adapter DIR          PEFT LoRA adapter folder applied on top of the model\n"
            "  --prompt TEXT          one user message to answer\n"
            "  --data FILE            AgentAlign JSON array or JSONL, {\"messages\", \"tools\"}, Alpaca or ShareGPT\n"
            "                         JSONL; each record's conversation up to its first assistant response is\n"
            "                         the prompt\n"
            "  --records LIST         record numbers of --data, e.g. 1,4,7-9 (default %s)\n"
            "  --template NAME        chat format: llama3.1, llama3.2, chatml-qwen2.5, smollm2, chatml-tools,\n"
            "                         qwen3, mistral-nemo, mistral-v3 (default: recognised from the model's\n"
            "                         tokenizer_config.json)\n"
            "  --prefix TEXT          forced start of the assistant response\n"
            "  --max-new-tokens N     stop after N new tokens (default %d)\n"
            "  --temperature T        0 (default) is greedy; > 0 samples from softmax(logits / T)\n"
            "  --top-p P              with T > 0: sample from the most likely tokens whose probabilities sum\n"
            "                         to at least P; 1 (default) keeps all, 0 keeps only the most likely\n"
            "  --seed S               sampling seed (default 0); the same seed gives the same text\n"
            "  --batch N              prompts decoded together (default %d)\n"
            "  --show-prompt          also print the whole rendered prompt\n"
            "  --device NAME          cpu (default), cuda, or auto\n"
            AL_CLI_THINKING_HELP AL_CLI_PROGRESS_HELP "                         (progress counts the records of --data; --prompt shows none)\n\n"
            "exit status: 0 success, 1 bad input or runtime failure, 2 usage error\n",
            DEFAULT_RECORDS, AL_GENERATE_DEFAULT_MAX_NEW_TOKENS, DEFAULT_BATCH);
}

struct generate_options {
    const char *model_dir, *adapter_dir, *prompt, *data_path, *records, *template_name, *prefix, *device;
    struct al_generate_options generation;
    int batch;
    bool show_prompt;
    enum al_work_progress_mode progress;
    bool no_thinking;
};

static int usage_error(const char *fmt, const char *value)
{
    return al_cli_usage_error(COMMAND, usage, fmt, value);
}

static bool record_selected(const char *list, long record_number)
{
    bool selected = false;
    al_cli_parse_record_list(list, record_number, &selected);
    return selected;
}

/* Parses the command line; returns AL_EXIT_OK to go on, or the exit status to stop with
 * (*done set). */
static int parse_options(int argc, char **argv, struct generate_options *opt, int *done)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},      {"adapter", required_argument, NULL, 'a'},
        {"prompt", required_argument, NULL, 'p'},     {"data", required_argument, NULL, 'D'},
        {"records", required_argument, NULL, 'r'},    {"template", required_argument, NULL, 't'},
        {"prefix", required_argument, NULL, 'x'},     {"max-new-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 'T'}, {"top-p", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},       {"batch", required_argument, NULL, 'b'},
        {"show-prompt", no_argument, NULL, 'S'},      {"device", required_argument, NULL, 'd'},
        AL_CLI_PROGRESS_OPTIONS, AL_CLI_THINKING_OPTION,
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    *opt = (struct generate_options){.device = "cpu", .generation = al_generate_default_options(),
                                     .batch = DEFAULT_BATCH};
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
        case 'p': opt->prompt = optarg; break;
        case 'D': opt->data_path = optarg; break;
        case 'r': opt->records = optarg; break;
        case 't': opt->template_name = optarg; break;
        case 'x': opt->prefix = optarg; break;
        case 'd': opt->device = optarg; break;
        case 'S': opt->show_prompt = true; break;
        case 'n':
            if (al_cli_parse_int(optarg, 1, MAX_NEW_TOKENS_LIMIT, &opt->generation.max_new_tokens) != 0)
                return usage_error("--max-new-tokens must be a whole number from 1 to 1000000, got '%s'", optarg);
            break;
        case 'T':
            if (al_cli_parse_float(optarg, 0.0f, 1e6f, &opt->generation.sampling.temperature) != 0)
                return usage_error("--temperature must be a number >= 0, got '%s'", optarg);
            break;
        case 'P':
            if (al_cli_parse_float(optarg, 0.0f, 1.0f, &opt->generation.sampling.top_p) != 0)
                return usage_error("--top-p must be a number in [0, 1], got '%s'", optarg);
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno || *optarg == '-')
                return usage_error("--seed must be a whole number, got '%s'", optarg);
            opt->generation.sampling.seed = seed;
            break;
        }
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
    if (!opt->prompt == !opt->data_path)
        return usage_error("%s", "give exactly one of --prompt and --data");
    if (opt->records && !opt->data_path)
        return usage_error("%s", "--records needs --data");
    if (opt->records && al_cli_parse_record_list(opt->records, 0, NULL) != 0)
        return usage_error("--records must be a list like 1,4,7-9, got '%s'", opt->records);
    *done = 0;
    return AL_EXIT_OK;
}

/* What every batch shares: the backend, model, adapter, tokenizer and chat format. */
struct session {
    struct al_cli_model m;
};

static int session_open(struct session *s, const struct generate_options *opt)
{
    memset(s, 0, sizeof *s);
    if (al_cli_model_open(&s->m, opt->model_dir, opt->adapter_dir, opt->template_name, opt->device) != 0)
        return -1;
    return opt->no_thinking ? al_cli_model_disable_thinking(&s->m) : 0;
}

static void session_close(struct session *s)
{
    al_cli_model_close(&s->m);
}

static void print_generation(const struct generate_options *opt, const struct al_chat_generation *g)
{
    if (opt->show_prompt)
        printf("rendered prompt:\n%s\n", g->prompt);
    if (*g->prefix)
        printf("prefix: %s\n", g->prefix);
    printf("completion: %s\n", g->completion);
    printf("(%d prompt tokens, %d new tokens, stopped at %s)\n\n", g->prompt_tokens, g->completion_count,
           al_stop_reason_name(g->stop));
}

/* The prompt typed on the command line as a one-message conversation. */
static int run_prompt(struct session *s, const struct generate_options *opt)
{
    cJSON *record = cJSON_CreateObject();
    cJSON *messages = cJSON_AddArrayToObject(record, "messages");
    cJSON *message = cJSON_CreateObject();
    cJSON_AddItemToArray(messages, message);
    cJSON_AddStringToObject(message, "role", "user");
    cJSON_AddStringToObject(message, "content", opt->prompt);
    struct al_conversation conv;
    int rc = al_conversation_from_json(&conv, record, "--prompt", 1);
    cJSON_Delete(record);
    if (rc != 0)
        return -1;
    struct al_chat_prompt prompt = {&conv, opt->prefix, 0};
    struct al_chat_generation g;
    rc = al_generate_chat(&s->m.generator, &prompt, 1, &opt->generation, &g);
    if (rc == 0) {
        printf("== prompt: %s\n", opt->prompt);
        print_generation(opt, &g);
        al_chat_generation_free(&g);
    }
    al_conversation_free(&conv);
    return rc;
}

/* A batch of data records, parsed, generated and printed. */
struct record_batch {
    struct al_conversation conv[MAX_BATCH];
    long record_number[MAX_BATCH];
    int n;
};

static void record_batch_clear(struct record_batch *b)
{
    for (int i = 0; i < b->n; i++)
        al_conversation_free(&b->conv[i]);
    b->n = 0;
}

static int64_t generated_tokens(const struct al_chat_generation *results, int n)
{
    int64_t tokens = 0;
    for (int i = 0; i < n; i++)
        tokens += results[i].completion_count;
    return tokens;
}

static int generate_records(struct session *s, const struct generate_options *opt, struct record_batch *b,
                            struct al_work_progress *progress)
{
    struct al_chat_prompt prompts[MAX_BATCH];
    struct al_chat_generation results[MAX_BATCH];
    for (int i = 0; i < b->n; i++)
        prompts[i] = (struct al_chat_prompt){&b->conv[i], opt->prefix, (uint64_t)b->record_number[i]};
    if (al_generate_chat(&s->m.generator, prompts, b->n, &opt->generation, results) != 0) {
        al_error_context("records %ld..%ld of %s", b->record_number[0], b->record_number[b->n - 1], opt->data_path);
        return -1;
    }
    al_work_progress_add(progress, b->n, generated_tokens(results, b->n));
    al_work_progress_break(progress);
    for (int i = 0; i < b->n; i++) {
        const struct al_conversation *conv = &b->conv[i];
        printf("== record %ld: id %s, %s%s%s\n", b->record_number[i], conv->id ? conv->id : "-",
               conv->harmful ? "harmful" : "benign", conv->harmful ? " / " : "", conv->harmful ? conv->category : "");
        print_generation(opt, &results[i]);
        al_chat_generation_free(&results[i]);
    }
    fflush(stdout);
    return 0;
}

static long count_selected(const struct al_dataset *dataset, const char *list)
{
    long n = 0;
    for (int i = 0; i < dataset->n_records; i++)
        n += record_selected(list, dataset->records[i].record_number);
    return n;
}

static int run_data(struct session *s, const struct generate_options *opt)
{
    const char *list = opt->records ? opt->records : DEFAULT_RECORDS;
    struct al_dataset dataset;
    struct al_reader_options reader = {.strict = false};
    if (al_dataset_load(&dataset, opt->data_path, &reader) != 0)
        return -1;
    struct record_batch *batch = calloc(1, sizeof *batch);
    int rc = batch ? 0 : al_fail("out of memory");
    struct al_work_progress progress = {0};
    long selected = count_selected(&dataset, list);
    if (rc == 0 && selected > 0)
        al_work_progress_start(&progress, COMMAND, selected, &(struct al_work_progress_options){.mode = opt->progress});
    long generated = 0;
    for (int i = 0; rc == 0 && i < dataset.n_records; i++) {
        long number = dataset.records[i].record_number;
        if (!record_selected(list, number))
            continue;
        if ((rc = al_dataset_get(&dataset, i, &batch->conv[batch->n])) != 0)
            break;
        batch->record_number[batch->n++] = number;
        generated++;
        if (batch->n == opt->batch) {
            rc = generate_records(s, opt, batch, &progress);
            record_batch_clear(batch);
        }
    }
    if (rc == 0 && batch->n > 0)
        rc = generate_records(s, opt, batch, &progress);
    if (rc == 0)
        al_work_progress_finish(&progress);
    if (batch)
        record_batch_clear(batch);
    if (rc == 0 && generated == 0)
        rc = al_fail("--records %s selects none of the %d records of %s", list, dataset.n_records, opt->data_path);
    free(batch);
    al_dataset_free(&dataset);
    return rc;
}

int al_cmd_generate(int argc, char **argv)
{
    struct generate_options opt;
    int done;
    int status = parse_options(argc, argv, &opt, &done);
    if (done)
        return status;
    struct session s;
    int rc = session_open(&s, &opt);
    if (rc == 0)
        rc = opt.prompt ? run_prompt(&s, &opt) : run_data(&s, &opt);
    session_close(&s);
    return rc == 0 ? AL_EXIT_OK : al_cli_report_error(COMMAND);
}
