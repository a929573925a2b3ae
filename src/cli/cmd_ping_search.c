/* agentlora ping-search: score PING prefix candidates ((harmful refusal rate + benign
 * helpfulness) / 2, judged without the prefix), rank them, optionally let the loaded model
 * propose new candidates round after round from a meta prompt showing the top 3, print
 * the ranking and write the best prefixes as a JSON list that train and eval accept. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/ping.h"
#include "agentlora/ping_search.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "cli/cli.h"

#define COMMAND "ping-search"
#define MAX_BATCH 256
#define MAX_ROUNDS 1000
#define MAX_PROPOSE 100
#define DEFAULT_PROPOSE 4
/* Sampling of proposals: varied enough to explore, close enough to the model's best. */
#define DEFAULT_TEMPERATURE 0.8f
#define DEFAULT_TOP_P 0.95f
/* Tokens allowed per proposed line in the model's reply. */
#define TOKENS_PER_PROPOSAL 48
#define DEFAULT_OUT_PARENT "checkpoints"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora ping-search --model DIR --harmful F --benign F --candidates F [options]\n\n"
            "Scores every candidate prefix: the model answers the harmful and the benign records with the\n"
            "prefix forced at the start of its reply; the completion without the prefix is judged and\n"
            "scored; a candidate's score is the mean of the harmful refusal rate and the benign helpfulness\n"
            "((refusal + helpfulness) / 2, printed in percent, as every combined score). With --rounds R the model then proposes --propose K new\n"
            "candidates per round from a meta prompt showing the top %d with their scores (sampled), and\n"
            "each is scored in turn. Prints the ranking and writes the best %d prefixes as a JSON list\n"
            "(the format of train's ping_prefixes and eval's --ping-prefixes).\n\n"
            "  --model DIR            model folder (config.json, *.safetensors, tokenizer files), or a\n"
            "                         GGUF file, converted once into <file>.hf beside it\n"
            "  --adapter DIR          PEFT LoRA adapter applied on top of the model\n"
            "  --harmful F            data file; its harmful records are used\n"
            "  --benign F             data file; its benign records are used (may be the same file)\n"
            "  --candidates F         starting prefixes: a JSON list of strings, or one per line\n"
            "  --rounds R             proposal rounds (default 0: only score the candidates)\n"
            "  --propose K            new candidates asked for per round (default %d)\n"
            "  --out F                the best prefixes, as a JSON list\n"
            "                         (default " DEFAULT_OUT_PARENT "/ping-search-<YYYYmmdd-HHMMSS>.json)\n"
            "  --limit N              at most N harmful and N benign records\n"
            "  --template NAME        chat format: llama3.1, llama3.2, chatml-qwen2.5, smollm2, chatml-tools,\n"
            "                         qwen3, mistral-nemo, mistral-v3 (default: recognised from the model's\n"
            "                         tokenizer_config.json)\n"
            "  --max-new-tokens N     longest scored response (default %d)\n"
            "  --batch N              records decoded together (default %d)\n"
            "  --judge NAME           refusal judge (default %s)\n"
            "  --temperature T        sampling temperature of proposals (default %.1f)\n"
            "  --top-p P              nucleus of proposals (default %.2f)\n"
            "  --seed S               seed of proposals (default 0)\n"
            "  --device NAME          cpu (default), cuda, or auto\n"
            AL_CLI_THINKING_HELP AL_CLI_PROGRESS_HELP "                         (an item is one record scored with one candidate)\n\n"
            "exit status: 0 success, 1 bad input or runtime failure, 2 usage error\n",
            AL_PING_SEARCH_TOP, AL_PING_SEARCH_TOP, DEFAULT_PROPOSE, AL_EVAL_DEFAULT_MAX_NEW_TOKENS,
            AL_EVAL_DEFAULT_BATCH, AL_JUDGE_DEFAULT_NAME, DEFAULT_TEMPERATURE, DEFAULT_TOP_P);
}

struct search_options {
    const char *model_dir, *adapter_dir, *harmful_path, *benign_path, *candidates_path, *out_path;
    const char *template_name, *judge_name, *device;
    int rounds, propose, limit, max_new_tokens, batch;
    float temperature, top_p;
    unsigned long long seed;
    enum al_work_progress_mode progress;
    bool no_thinking;
};

static int usage_error(const char *fmt, const char *value)
{
    return al_cli_usage_error(COMMAND, usage, fmt, value);
}

static int parse_options(int argc, char **argv, struct search_options *opt, int *done)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"adapter", required_argument, NULL, 'a'},
        {"harmful", required_argument, NULL, 'H'},     {"benign", required_argument, NULL, 'B'},
        {"candidates", required_argument, NULL, 'c'},  {"rounds", required_argument, NULL, 'R'},
        {"propose", required_argument, NULL, 'K'},     {"out", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'l'},       {"template", required_argument, NULL, 't'},
        {"max-new-tokens", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
        {"judge", required_argument, NULL, 'j'},       {"temperature", required_argument, NULL, 'T'},
        {"top-p", required_argument, NULL, 'P'},       {"seed", required_argument, NULL, 's'},
        {"device", required_argument, NULL, 'd'},      {"help", no_argument, NULL, 'h'},
        AL_CLI_PROGRESS_OPTIONS, AL_CLI_THINKING_OPTION,                       {NULL, 0, NULL, 0},
    };
    *opt = (struct search_options){.device = "cpu", .judge_name = AL_JUDGE_DEFAULT_NAME, .propose = DEFAULT_PROPOSE,
                                   .max_new_tokens = AL_EVAL_DEFAULT_MAX_NEW_TOKENS, .batch = AL_EVAL_DEFAULT_BATCH,
                                   .temperature = DEFAULT_TEMPERATURE, .top_p = DEFAULT_TOP_P};
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
        case 'H': opt->harmful_path = optarg; break;
        case 'B': opt->benign_path = optarg; break;
        case 'c': opt->candidates_path = optarg; break;
        case 'o': opt->out_path = optarg; break;
        case 't': opt->template_name = optarg; break;
        case 'j': opt->judge_name = optarg; break;
        case 'd': opt->device = optarg; break;
        case 'R':
            if (al_cli_parse_int(optarg, 0, MAX_ROUNDS, &opt->rounds) != 0)
                return usage_error("--rounds must be a whole number from 0 to 1000, got '%s'", optarg);
            break;
        case 'K':
            if (al_cli_parse_int(optarg, 1, MAX_PROPOSE, &opt->propose) != 0)
                return usage_error("--propose must be a whole number from 1 to 100, got '%s'", optarg);
            break;
        case 'l':
            if (al_cli_parse_int(optarg, 1, 1000000000, &opt->limit) != 0)
                return usage_error("--limit must be a whole number >= 1, got '%s'", optarg);
            break;
        case 'n':
            if (al_cli_parse_int(optarg, 1, 1000000, &opt->max_new_tokens) != 0)
                return usage_error("--max-new-tokens must be a whole number from 1 to 1000000, got '%s'", optarg);
            break;
        case 'b':
            if (al_cli_parse_int(optarg, 1, MAX_BATCH, &opt->batch) != 0)
                return usage_error("--batch must be a whole number from 1 to 256, got '%s'", optarg);
            break;
        case 'T':
            if (al_cli_parse_float(optarg, 0.0f, 1e6f, &opt->temperature) != 0)
                return usage_error("--temperature must be a number >= 0, got '%s'", optarg);
            break;
        case 'P':
            if (al_cli_parse_float(optarg, 0.0f, 1.0f, &opt->top_p) != 0)
                return usage_error("--top-p must be a number in [0, 1], got '%s'", optarg);
            break;
        case 's': {
            char *end;
            errno = 0;
            opt->seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno || *optarg == '-')
                return usage_error("--seed must be a whole number, got '%s'", optarg);
            break;
        }
        case 'h': usage(stdout); return AL_EXIT_OK;
        default: usage(stderr); return AL_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!opt->model_dir || !opt->harmful_path || !opt->benign_path || !opt->candidates_path)
        return usage_error("%s", "--model, --harmful, --benign and --candidates are required");
    *done = 0;
    return AL_EXIT_OK;
}

/* ---- the session ---- */

struct labelled_records {
    struct al_dataset dataset;
    bool loaded;
    struct al_eval_records records;
};

struct session {
    struct al_cli_model m;
    const struct al_judge *judge;
    struct labelled_records harmful, benign;
};

/* The records of path with the wanted label, at most limit (0: all). */
static int load_labelled(struct labelled_records *out, const char *path, bool harmful, int limit)
{
    struct al_reader_options reader = {.strict = false};
    if (al_dataset_load(&out->dataset, path, &reader) != 0)
        return -1;
    out->loaded = true;
    int *indices = malloc((size_t)out->dataset.n_records * sizeof *indices);
    if (!indices)
        return al_fail("out of memory");
    int n = 0;
    for (int i = 0; i < out->dataset.n_records && (limit == 0 || n < limit); i++)
        if (out->dataset.records[i].harmful == harmful)
            indices[n++] = i;
    int rc = n > 0 ? al_eval_records_load(&out->records, &out->dataset, indices, n)
                   : al_fail("%s has no %s records", path, harmful ? "harmful" : "benign");
    free(indices);
    return rc;
}

static void free_labelled(struct labelled_records *records)
{
    al_eval_records_free(&records->records);
    if (records->loaded)
        al_dataset_free(&records->dataset);
}

static int session_open(struct session *s, const struct search_options *opt)
{
    memset(s, 0, sizeof *s);
    if (!(s->judge = al_judge_by_name(opt->judge_name)))
        return -1;
    if (load_labelled(&s->harmful, opt->harmful_path, true, opt->limit) != 0 ||
        load_labelled(&s->benign, opt->benign_path, false, opt->limit) != 0)
        return -1;
    if (al_cli_model_open(&s->m, opt->model_dir, opt->adapter_dir, opt->template_name, opt->device) != 0)
        return -1;
    return opt->no_thinking ? al_cli_model_disable_thinking(&s->m) : 0;
}

static void session_close(struct session *s)
{
    free_labelled(&s->harmful);
    free_labelled(&s->benign);
    al_cli_model_close(&s->m);
}

/* ---- the pool of candidates ---- */

struct pool {
    struct al_ping_candidate *items;
    int n, capacity;
};

/* Takes text (malloc'd), scores it and adds it to the pool. */
static int pool_add(struct pool *pool, const struct al_ping_search_settings *settings, char *text, int round)
{
    if (pool->n == pool->capacity) {
        int capacity = pool->capacity ? 2 * pool->capacity : 16;
        struct al_ping_candidate *grown = realloc(pool->items, (size_t)capacity * sizeof *grown);
        if (!grown) {
            free(text);
            return al_fail("out of memory");
        }
        pool->items = grown;
        pool->capacity = capacity;
    }
    struct al_ping_candidate *candidate = &pool->items[pool->n];
    *candidate = (struct al_ping_candidate){.text = text, .round = round};
    if (al_ping_score_candidate(settings, candidate) != 0) {
        free(text);
        return -1;
    }
    pool->n++;
    al_work_progress_break(settings->progress);
    printf("round %d: %5.1f  %s\n", round, 100.0 * candidate->score, text);
    fflush(stdout);
    return 0;
}

static int score_initial(struct pool *pool, const struct al_ping_search_settings *settings,
                         const struct al_ping *prefixes)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < prefixes->n_prefixes; i++) {
        bool repeated = false;
        for (int j = 0; j < pool->n; j++)
            repeated |= strcmp(pool->items[j].text, prefixes->prefixes[i]) == 0;
        if (repeated)
            continue;
        char *text = strdup(prefixes->prefixes[i]);
        rc = text ? pool_add(pool, settings, text, 0) : al_fail("out of memory");
    }
    return rc;
}

/* The model's reply to the meta prompt, sampled. */
static char *propose_reply(const struct session *s, const struct search_options *opt, const struct pool *pool,
                           int round)
{
    int top = pool->n < AL_PING_SEARCH_TOP ? pool->n : AL_PING_SEARCH_TOP;
    char *meta = al_ping_meta_prompt(pool->items, top, opt->propose);
    if (!meta)
        return NULL;
    cJSON *record = cJSON_CreateObject();
    cJSON *message = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(record, "messages"), message);
    cJSON_AddStringToObject(message, "role", "user");
    cJSON_AddStringToObject(message, "content", meta);
    free(meta);
    struct al_conversation conv;
    int rc = al_conversation_from_json(&conv, record, "meta prompt", round);
    cJSON_Delete(record);
    if (rc != 0)
        return NULL;
    struct al_generate_options options = al_generate_default_options();
    options.max_new_tokens = TOKENS_PER_PROPOSAL * opt->propose;
    options.sampling = (struct al_sampling){opt->temperature, opt->top_p, opt->seed};
    struct al_chat_prompt prompt = {&conv, NULL, (uint64_t)round};
    struct al_chat_generation generation;
    char *reply = NULL;
    if (al_generate_chat(&s->m.generator, &prompt, 1, &options, &generation) == 0) {
        reply = generation.completion;
        generation.completion = NULL;
        al_chat_generation_free(&generation);
    }
    al_conversation_free(&conv);
    return reply;
}

static int run_round(struct pool *pool, const struct session *s, const struct search_options *opt,
                     const struct al_ping_search_settings *settings, int round)
{
    char *reply = propose_reply(s, opt, pool, round);
    if (!reply) {
        al_error_context("round %d: proposing candidates", round);
        return -1;
    }
    char **proposals = NULL;
    int n = al_ping_parse_proposals(reply, pool->items, pool->n, opt->propose, &proposals);
    free(reply);
    if (n < 0)
        return -1;
    al_work_progress_break(settings->progress);
    printf("round %d: the model proposed %d new candidate%s\n", round, n, n == 1 ? "" : "s");
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = pool_add(pool, settings, proposals[i], round);
        else
            free(proposals[i]);
    }
    free(proposals);
    al_ping_rank(pool->items, pool->n);
    return rc;
}

static char *default_out_path(void)
{
    time_t now = time(NULL);
    struct tm utc;
    char name[64];
    gmtime_r(&now, &utc);
    strftime(name, sizeof name, "ping-search-%Y%m%d-%H%M%S.json", &utc);
    if (al_mkdirs(DEFAULT_OUT_PARENT) != 0)
        return NULL;
    return al_path_join(DEFAULT_OUT_PARENT, name);
}

/* Records scored for all candidates still to come, when every round proposes as many as
 * it is asked for (a round that proposes fewer makes the total smaller). */
static int64_t planned_items(const struct session *s, const struct search_options *opt, int candidates,
                             int rounds_left)
{
    int64_t per_candidate = s->harmful.records.n + s->benign.records.n;
    return per_candidate * ((int64_t)candidates + (int64_t)rounds_left * opt->propose);
}

/* Scores the candidates file, then runs the rounds, with one progress over all of it. */
static int score_all(struct pool *pool, struct session *s, const struct search_options *opt,
                     struct al_ping_search_settings *settings)
{
    struct al_ping prefixes;
    if (al_ping_load(&prefixes, opt->candidates_path) != 0)
        return -1;
    struct al_work_progress progress;
    al_work_progress_start(&progress, COMMAND, planned_items(s, opt, prefixes.n_prefixes, opt->rounds),
                           &(struct al_work_progress_options){.mode = opt->progress});
    settings->progress = &progress;
    int rc = score_initial(pool, settings, &prefixes);
    al_ping_free(&prefixes);
    if (rc == 0)
        al_ping_rank(pool->items, pool->n);
    /* Repeated candidates and short rounds are known once they are done. */
    al_work_progress_set_total(&progress, planned_items(s, opt, pool->n, opt->rounds));
    for (int round = 1; rc == 0 && round <= opt->rounds; round++) {
        rc = run_round(pool, s, opt, settings, round);
        al_work_progress_set_total(&progress, planned_items(s, opt, pool->n, opt->rounds - round));
    }
    if (rc == 0)
        al_work_progress_finish(&progress);
    settings->progress = NULL;
    return rc;
}

static int search(struct session *s, const struct search_options *opt)
{
    struct al_ping_search_settings settings = {&s->m.generator, s->judge, &s->harmful.records, &s->benign.records,
                                               opt->max_new_tokens, opt->batch, NULL};
    struct pool pool = {0};
    int rc = score_all(&pool, s, opt, &settings);
    if (rc == 0) {
        putchar('\n');
        al_ping_print_ranking(pool.items, pool.n, s->judge->name, stdout);
        char *path = opt->out_path ? strdup(opt->out_path) : default_out_path();
        int best = pool.n < AL_PING_SEARCH_TOP ? pool.n : AL_PING_SEARCH_TOP;
        rc = path ? al_ping_write_prefixes(path, pool.items, best) : -1;
        if (rc == 0)
            printf("wrote the best %d prefix%s to %s\n", best, best == 1 ? "" : "es", path);
        free(path);
    }
    al_ping_candidates_free(pool.items, pool.n);
    return rc;
}

int al_cmd_ping_search(int argc, char **argv)
{
    struct search_options opt;
    int done;
    int status = parse_options(argc, argv, &opt, &done);
    if (done)
        return status;
    struct session s;
    int rc = session_open(&s, &opt);
    if (rc == 0)
        rc = search(&s, &opt);
    session_close(&s);
    return rc == 0 ? AL_EXIT_OK : al_cli_report_error(COMMAND);
}
