/* agentlora data inspect: what the loss will see. Loads a data file exactly as training
 * does (reader, chat template, tokenizer, PING prefixes, packing limits), prints the
 * load summary, and shows chosen records with the trained tokens marked; --raw and --ids
 * print machine-readable renders for diffing against another implementation. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/example.h"
#include "agentlora/file.h"
#include "agentlora/packing.h"
#include "agentlora/ping.h"
#include "cli/cli.h"

/* Records shown by the human-readable view when --records is not given. */
#define DEFAULT_SHOWN_RECORDS 3
#define DEFAULT_MAX_LEN 4096

enum output_mode { SHOW_MARKED = 0, SHOW_RAW, SHOW_IDS };

struct inspect_options {
    const char *data_path, *model_dir, *template_name, *ping_path, *ping_mode, *ping_on, *records, *date;
    enum output_mode mode;
    bool strict, last_turn_only, color, arguments_as_strings;
    int max_len;
    uint64_t seed;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora data inspect FILE --model DIR [options]\n\n"
            "Loads FILE (AgentAlign JSON array or JSONL, generic {\"messages\", \"tools\"} JSONL, Alpaca or\n"
            "ShareGPT records) as training does and shows what the loss will see: a summary of records\n"
            "by label, category and record format, tokens, truncated and skipped records, and the chosen\n"
            "records rendered with the trained tokens marked (green on a terminal, otherwise between\n"
            "\u00ab and \u00bb).\n\n"
            "  --model DIR            model folder: tokenizer.json or tokenizer.model, tokenizer_config.json\n"
            "                         (or a GGUF file, converted once into <file>.hf beside it)\n"
            "  --template NAME        force the chat format: llama3.1, llama3.2, chatml-qwen2.5, smollm2,\n"
            "                         chatml-tools, qwen3, mistral-nemo, mistral-v3 (default: recognised from\n"
            "                         tokenizer_config.json)\n"
            "  --ping-prefixes F      PING prefixes (JSON list, or one per line)\n"
            "  --ping-mode M          train (default with --ping-prefixes) or none\n"
            "  --ping-on WHICH        harmful, benign or both (default both)\n"
            "  --seed N               seed of the per-record prefix choice (default 0)\n"
            "  --records LIST         record numbers to show, e.g. 1,4,7-9 (default: the first %d; with\n"
            "                         --raw or --ids: all)\n"
            "  --raw                  print only each record's exact rendered text, one JSON string per line\n"
            "  --ids                  print only each record's token ids, space-separated, one record per line\n"
            "  --last-turn-only       train only on the final assistant turn\n"
            "  --arguments-as-strings render tool-call arguments that records give as JSON strings as\n"
            "                         quoted strings (apply_chat_template on the raw record); default: as\n"
            "                         JSON objects, the form the models emit\n"
            "  --max-len N            row length for the truncation count (default %d)\n"
            "  --date TEXT            Llama 3 'Today Date' (default: the template's)\n"
            "  --strict               stop at the first malformed record (default: skip and count it)\n",
            DEFAULT_SHOWN_RECORDS, DEFAULT_MAX_LEN);
}

/* Is record_number selected? NULL list: the default selection. */
static bool selected(const char *list, long record_number, long shown_so_far, enum output_mode mode)
{
    if (!list)
        return mode != SHOW_MARKED || shown_so_far < DEFAULT_SHOWN_RECORDS;
    bool listed = false;
    al_cli_parse_record_list(list, record_number, &listed);
    return listed;
}

static int validate_record_list(const char *list)
{
    return al_cli_parse_record_list(list, 0, NULL) == 0
               ? 0
               : al_fail("--records: '%s' is not a list like 1,4,7-9", list);
}

static void print_marked(const struct al_example *ex, bool color)
{
    const char *open = color ? "\033[32m" : "\u00ab", *close = color ? "\033[0m" : "\u00bb";
    const char *text = ex->rendered.text;
    size_t n = ex->tokens.count;
    size_t i = 0;
    if (n == 0) {
        fputs(text, stdout);
        return;
    }
    fwrite(text, 1, ex->tokens.offsets[0], stdout);
    while (i < n) {
        size_t run_end = i;
        while (run_end < n && ex->loss_mask[run_end] == ex->loss_mask[i])
            run_end++;
        size_t from = ex->tokens.offsets[i];
        size_t to = run_end < n ? ex->tokens.offsets[run_end] : ex->rendered.length;
        if (ex->loss_mask[i])
            fputs(open, stdout);
        fwrite(text + from, 1, to - from, stdout);
        if (ex->loss_mask[i])
            fputs(close, stdout);
        i = run_end;
    }
    fputc('\n', stdout);
}

static void print_record(const struct inspect_options *opt, const struct al_example *ex,
                         const struct al_conversation *conv, long record_number, const char *prefix)
{
    if (opt->mode == SHOW_RAW) {
        cJSON *text = cJSON_CreateString(ex->rendered.text);
        char *line = cJSON_PrintUnformatted(text);
        puts(line ? line : "null");
        free(line);
        cJSON_Delete(text);
        return;
    }
    if (opt->mode == SHOW_IDS) {
        for (size_t i = 0; i < ex->tokens.count; i++)
            printf("%s%d", i ? " " : "", ex->tokens.ids[i]);
        putchar('\n');
        return;
    }
    printf("== record %ld: %s%s%s, id %s, %zu tokens, %lld trained%s%s\n", record_number,
           conv->harmful ? "harmful" : "benign", conv->category ? " / " : "", conv->category ? conv->category : "",
           conv->id ? conv->id : "-", ex->tokens.count, (long long)ex->n_trained, prefix ? ", PING prefix: " : "",
           prefix ? prefix : "");
    print_marked(ex, opt->color);
    putchar('\n');
}

/* Counts one document's tokens and truncation through the packer, as training would. */
static int count_tokens(struct al_packer *packer, const struct al_example *ex)
{
    struct al_document doc = {ex->tokens.ids, ex->loss_mask, (int)ex->tokens.count};
    int rc = al_packer_add(packer, &doc);
    if (rc == 1) {
        struct al_packed_batch batch;
        if (al_packer_take(packer, &batch) == 1)
            al_packed_batch_free(&batch);
        rc = al_packer_add(packer, &doc);
    }
    return rc < 0 ? -1 : 0;
}

struct inspect_state {
    struct al_tokenizer *tokenizer;
    struct al_example_options example;
    struct al_ping ping;
    bool have_ping;
    struct al_dataset dataset;
    struct al_packer *packer;
};

static int setup(struct inspect_state *s, const struct inspect_options *opt)
{
    if (opt->records && validate_record_list(opt->records) != 0)
        return -1;
    char *model_dir = al_cli_model_folder(opt->model_dir);
    if (!model_dir)
        return -1;
    s->tokenizer = al_tokenizer_load(model_dir);
    int rc = s->tokenizer ? al_chat_format_for_model(model_dir, opt->template_name, &s->example.format) : -1;
    free(model_dir);
    if (rc != 0)
        return -1;
    s->example.chat.mask = opt->last_turn_only ? AL_CHAT_MASK_LAST_ASSISTANT : AL_CHAT_MASK_ALL_ASSISTANT;
    s->example.chat.date_string = opt->date;
    s->example.chat.string_arguments_as_objects = !opt->arguments_as_strings;
    if (opt->ping_path) {
        if (al_ping_load(&s->ping, opt->ping_path) != 0 ||
            al_ping_mode_parse(opt->ping_mode ? opt->ping_mode : "train", &s->ping.mode) != 0 ||
            al_ping_targets_parse(opt->ping_on ? opt->ping_on : "both", &s->ping.targets) != 0)
            return -1;
        if (s->ping.mode == AL_PING_EVAL)
            return al_fail("--ping-mode eval prefills prefixes at generation time; data inspect shows training "
                           "data (use train or none)");
        s->ping.seed = opt->seed;
        s->have_ping = true;
    }
    struct al_reader_options reader = {.strict = opt->strict};
    if (al_dataset_load(&s->dataset, opt->data_path, &reader) != 0)
        return -1;
    struct al_pack_options pack = {.max_len = opt->max_len, .rows_per_batch = 1, .overlong = AL_OVERLONG_TRUNCATE};
    s->packer = al_packer_create(&pack);
    return s->packer ? 0 : -1;
}

static void teardown(struct inspect_state *s)
{
    al_packer_free(s->packer);
    al_dataset_free(&s->dataset);
    if (s->have_ping)
        al_ping_free(&s->ping);
    al_tokenizer_free(s->tokenizer);
}

/* One record: build its example (a bad one is skipped and counted unless --strict). */
static int inspect_record(struct inspect_state *s, const struct inspect_options *opt, int index, long *shown)
{
    const struct al_record_entry *entry = &s->dataset.records[index];
    struct al_conversation conv;
    if (al_dataset_get(&s->dataset, index, &conv) != 0)
        return -1;
    const char *prefix = s->have_ping ? al_ping_train_prefix(&s->ping, conv.id, entry->record_number, conv.harmful)
                                      : NULL;
    s->example.ping_prefix = prefix;
    struct al_example ex;
    int rc = al_example_build(&ex, s->tokenizer, &conv, &s->example, s->dataset.file.path, entry->record_number);
    if (rc != 0 && !opt->strict) {
        al_load_summary_add_skip(&s->dataset.summary, al_error_message());
        al_conversation_free(&conv);
        return 0;
    }
    if (rc == 0 && selected(opt->records, entry->record_number, *shown, opt->mode)) {
        print_record(opt, &ex, &conv, entry->record_number, prefix);
        (*shown)++;
    }
    if (rc == 0)
        rc = count_tokens(s->packer, &ex);
    if (rc == 0)
        al_example_free(&ex);
    al_conversation_free(&conv);
    return rc;
}

static int run_inspect(const struct inspect_options *opt)
{
    struct inspect_state s;
    memset(&s, 0, sizeof s);
    int rc = setup(&s, opt);
    long shown = 0;
    for (int i = 0; rc == 0 && i < s.dataset.n_records; i++)
        rc = inspect_record(&s, opt, i, &shown);
    if (rc == 0) {
        al_pack_stats_add_to_summary(al_packer_stats(s.packer), &s.dataset.summary);
        char *summary = al_load_summary_format(&s.dataset.summary);
        FILE *out = opt->mode == SHOW_MARKED ? stdout : stderr;
        fflush(stdout); /* records first, then the summary, even when both go to one pipe */
        fprintf(out, "%s (%s), chat format %s, max_len %d%s\n%s", opt->data_path,
                al_data_format_name(s.dataset.format), al_chat_format_name(s.example.format), opt->max_len,
                s.have_ping ? ", PING prefixes in train mode" : "", summary ? summary : "");
        free(summary);
    }
    teardown(&s);
    return rc;
}

static int parse_inspect(int argc, char **argv, struct inspect_options *opt)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"template", required_argument, NULL, 't'},
        {"ping-prefixes", required_argument, NULL, 'p'}, {"ping-mode", required_argument, NULL, 'M'},
        {"ping-on", required_argument, NULL, 'o'},     {"seed", required_argument, NULL, 's'},
        {"records", required_argument, NULL, 'r'},     {"raw", no_argument, NULL, 'R'},
        {"ids", no_argument, NULL, 'I'},               {"last-turn-only", no_argument, NULL, 'l'},
        {"max-len", required_argument, NULL, 'L'},     {"date", required_argument, NULL, 'd'},
        {"strict", no_argument, NULL, 'S'},            {"help", no_argument, NULL, 'h'},
        {"arguments-as-strings", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'm': opt->model_dir = optarg; break;
        case 't': opt->template_name = optarg; break;
        case 'p': opt->ping_path = optarg; break;
        case 'M': opt->ping_mode = optarg; break;
        case 'o': opt->ping_on = optarg; break;
        case 's': opt->seed = strtoull(optarg, NULL, 10); break;
        case 'r': opt->records = optarg; break;
        case 'R': opt->mode = SHOW_RAW; break;
        case 'I': opt->mode = SHOW_IDS; break;
        case 'l': opt->last_turn_only = true; break;
        case 'L': opt->max_len = atoi(optarg); break;
        case 'd': opt->date = optarg; break;
        case 'S': opt->strict = true; break;
        case 'A': opt->arguments_as_strings = true; break;
        case 'h': usage(stdout); return 1;
        default: return -1;
        }
    }
    if (optind + 1 != argc || !opt->model_dir || opt->max_len <= 0) {
        fprintf(stderr, "agentlora data inspect: %s\n\n",
                opt->max_len <= 0 ? "--max-len must be a positive number" : "one FILE and --model DIR are required");
        return -1;
    }
    opt->data_path = argv[optind];
    return 0;
}

static void data_usage(FILE *out)
{
    fprintf(out, "usage: agentlora data inspect FILE --model DIR [options]\n"
                 "       agentlora data convert FILE --out OUT.jsonl [options]\n\n"
                 "  inspect   show what the loss will see (agentlora data inspect --help)\n"
                 "  convert   write any accepted data file (AgentAlign, messages, Alpaca, ShareGPT) as\n"
                 "            messages JSON Lines (agentlora data convert --help)\n");
}

int al_cmd_data(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "convert") == 0)
        return al_cmd_data_convert(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "inspect") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            data_usage(stdout);
            return AL_EXIT_OK;
        }
        fprintf(stderr, "agentlora data: expected the subcommand 'inspect' or 'convert'\n\n");
        data_usage(stderr);
        return AL_EXIT_USAGE;
    }
    struct inspect_options opt = {.max_len = DEFAULT_MAX_LEN, .color = isatty(STDOUT_FILENO)};
    int parsed = parse_inspect(argc - 1, argv + 1, &opt);
    if (parsed != 0) {
        if (parsed < 0)
            usage(stderr);
        return parsed < 0 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    return run_inspect(&opt) == 0 ? AL_EXIT_OK : al_cli_report_error("data inspect");
}
