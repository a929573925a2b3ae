/* agentlora judge-train: trains learned-v1 from labelled responses and prints how well it
 * agrees with people on data it was not fitted to, next to keywords-v1 on the same rows:
 *   1. validation: fitted on the train rows outside the validation fold (by prompt),
 *      scored on the fold, overall and per source;
 *   2. leave one source out: fitted without a source, scored on it (does it generalise?);
 *   3. the shipped model, fitted on every train row: scored on the test split and on the
 *      --check files (never used for fitting or for choosing settings).
 * The weights go to --out, the numbers to --report (JSON). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/judge_train.h"
#include "cli/cli.h"

#define MAX_FILES 8
#define DEFAULT_EXTRA_WEIGHT 20.0f
#define DEFAULT_MODEL_LABEL_WEIGHT 0.5f
#define DEFAULT_THRESHOLD 0.5f

struct train_options {
    const char *data[MAX_FILES], *extra[MAX_FILES], *check[MAX_FILES];
    int n_data, n_extra, n_check;
    const char *out, *report;
    float extra_weight, model_label_weight;
    float threshold; /* the probability from which a response is a refusal */
    int keywords_refusal_decides, complying_opening_decides; /* al_judge_model's rules, 0 or 1 */
    int sample;
    bool leave_one_out;
    struct al_judge_train_options fit;
};

static void usage(FILE *out)
{
    struct al_judge_train_options d = al_judge_train_defaults();
    fprintf(out,
            "usage: agentlora judge-train --data FILE.jsonl [--data ...] [--extra FILE.jsonl] [--check FILE.jsonl]\n"
            "                             [--out WEIGHTS.safetensors] [--report REPORT.json] [options]\n\n"
            "Trains the learned refusal judge (%s): logistic regression on hashed word and character\n"
            "n-grams of the normalised response and keywords-v1's finding. Prints its agreement with the\n"
            "labels, precision and recall next to keywords-v1's: on a validation fold of the train rows\n"
            "(by prompt), leaving each source out, and, for the model fitted on every train row, on the\n"
            "test split and the --check files. Deterministic: the same input gives the same weights.\n\n"
            "  --data FILE          labelled rows {\"text\", \"refusal\", \"source\", \"label_origin\", \"split\",\n"
            "                       \"prompt\"} (e.g. ../shared/judge/refusal_labelled.jsonl)\n"
            "  --extra FILE         more train rows (all \"train\"), weighted --extra-weight (default %g)\n"
            "  --check FILE         judged by the final model only, as `agentlora judge` reads it\n"
            "  --out PATH           where the weights go (default: not written)\n"
            "  --report PATH        the numbers as JSON\n"
            "  --model-label-weight W  weight of rows labelled by a model judge (default %g)\n"
            "  --sample K           keep every K-th row of each file (default 1: all)\n"
            "  --no-leave-one-out   skip the leave-one-source-out fits\n"
            "  --epochs N           passes over the data (default %d)\n"
            "  --seed N             order of the examples (default %llu)\n"
            "  --learning-rate X    AdaGrad's step (default %g)\n"
            "  --l2 X               L2 penalty (default %g)\n"
            "  --threshold P        p(refusal) from which a response is a refusal (default %g)\n"
            "  --no-balance         do not weigh the two classes to equal totals\n"
            "  --keywords-refusal-decides 0|1   keywords-v1's refusal rules decide before the weights\n"
            "                       (default 1)\n"
            "  --complying-opening-decides 0|1  a complying opening (\"Sure, here's\") is no refusal\n"
            "                       whatever the weights say (default 0)\n",
            AL_JUDGE_LEARNED_NAME, (double)DEFAULT_EXTRA_WEIGHT, (double)DEFAULT_MODEL_LABEL_WEIGHT, d.epochs,
            (unsigned long long)d.seed, d.learning_rate, d.l2, (double)DEFAULT_THRESHOLD);
}

static int add_file(const char **files, int *n, const char *path)
{
    if (*n == MAX_FILES)
        return -1;
    files[(*n)++] = path;
    return 0;
}

static int parse(int argc, char **argv, struct train_options *opt)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},          {"extra", required_argument, NULL, 'x'},
        {"check", required_argument, NULL, 'c'},         {"out", required_argument, NULL, 'o'},
        {"report", required_argument, NULL, 'r'},        {"extra-weight", required_argument, NULL, 'w'},
        {"model-label-weight", required_argument, NULL, 'm'}, {"sample", required_argument, NULL, 's'},
        {"no-leave-one-out", no_argument, NULL, 'n'},   {"epochs", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 'S'},          {"learning-rate", required_argument, NULL, 'l'},
        {"l2", required_argument, NULL, 'L'},            {"threshold", required_argument, NULL, 't'},
        {"no-balance", no_argument, NULL, 'B'},          {"keywords-refusal-decides", required_argument, NULL, 'K'},
        {"complying-opening-decides", required_argument, NULL, 'C'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (struct train_options){.extra_weight = DEFAULT_EXTRA_WEIGHT, .model_label_weight = DEFAULT_MODEL_LABEL_WEIGHT,
                                  .sample = 1, .leave_one_out = true, .threshold = DEFAULT_THRESHOLD,
                                  .keywords_refusal_decides = 1, .complying_opening_decides = 0, .fit = al_judge_train_defaults()};
    int c, which = 0, bad = 0, seed = (int)opt->fit.seed;
    float rate = (float)opt->fit.learning_rate, l2 = (float)opt->fit.l2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, &which)) != -1) {
        switch (c) {
        case 'd': bad = add_file(opt->data, &opt->n_data, optarg); break;
        case 'x': bad = add_file(opt->extra, &opt->n_extra, optarg); break;
        case 'c': bad = add_file(opt->check, &opt->n_check, optarg); break;
        case 'o': opt->out = optarg; break;
        case 'r': opt->report = optarg; break;
        case 'w': bad = al_cli_parse_float(optarg, 0, 1e6f, &opt->extra_weight); break;
        case 'm': bad = al_cli_parse_float(optarg, 0, 1e6f, &opt->model_label_weight); break;
        case 's': bad = al_cli_parse_int(optarg, 1, 1000000, &opt->sample); break;
        case 'n': opt->leave_one_out = false; break;
        case 'e': bad = al_cli_parse_int(optarg, 1, 10000, &opt->fit.epochs); break;
        case 'S': bad = al_cli_parse_int(optarg, 0, 2147483647L, &seed); break;
        case 'l': bad = al_cli_parse_float(optarg, 1e-9f, 100.0f, &rate); break;
        case 'L': bad = al_cli_parse_float(optarg, 0, 100.0f, &l2); break;
        case 't': bad = al_cli_parse_float(optarg, 0.01f, 0.99f, &opt->threshold); break;
        case 'B': opt->fit.balance_classes = false; break;
        case 'K': bad = al_cli_parse_int(optarg, 0, 1, &opt->keywords_refusal_decides); break;
        case 'C': bad = al_cli_parse_int(optarg, 0, 1, &opt->complying_opening_decides); break;
        case 'h': usage(stdout); return 1;
        default: return -1;
        }
        if (bad) {
            fprintf(stderr, "agentlora judge-train: bad value \"%s\" for --%s%s\n\n", optarg, options[which].name,
                    c == 'd' || c == 'x' || c == 'c' ? " (at most 8 files)" : "");
            return -1;
        }
    }
    opt->fit.seed = (uint64_t)seed;
    opt->fit.learning_rate = rate;
    opt->fit.l2 = l2;
    if (optind != argc || opt->n_data == 0) {
        fprintf(stderr, "agentlora judge-train: %s\n\n", opt->n_data == 0 ? "--data is required" : "unexpected argument");
        return -1;
    }
    return 0;
}

/* ---- scoring ---- */

/* Which examples a section scores or fits on. */
enum selection { TRAIN_OUTSIDE_FOLD, VALIDATION_FOLD, ALL_TRAIN, TEST_SPLIT };

static bool selected(const struct al_judge_example *e, enum selection which)
{
    switch (which) {
    case TRAIN_OUTSIDE_FOLD: return !e->test && !e->validation;
    case VALIDATION_FOLD: return e->validation;
    case ALL_TRAIN: return !e->test;
    case TEST_SPLIT: return e->test;
    }
    return false;
}

/* The two judges' tallies over a section, overall and per source. */
struct section {
    struct al_judge_tally learned, keywords;
};

static void print_header(void)
{
    printf("  %-16s %6s | %-9s %6s %6s %6s | %-11s %6s %6s %6s\n", "source", "rows", AL_JUDGE_LEARNED_NAME, "agree",
           "prec", "recall", AL_JUDGE_KEYWORDS_NAME, "agree", "prec", "recall");
}

static void print_row(const char *name, const struct section *s)
{
    printf("  %-16s %6ld | %-9s %6.3f %6.3f %6.3f | %-11s %6.3f %6.3f %6.3f\n", name, s->learned.labelled, "",
           al_judge_tally_accuracy(&s->learned), al_judge_tally_precision(&s->learned),
           al_judge_tally_recall(&s->learned), "", al_judge_tally_accuracy(&s->keywords),
           al_judge_tally_precision(&s->keywords), al_judge_tally_recall(&s->keywords));
}

static cJSON *section_json(const struct section *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rows", (double)s->learned.labelled);
    const struct al_judge_tally *t[2] = {&s->learned, &s->keywords};
    const char *names[2] = {AL_JUDGE_LEARNED_NAME, AL_JUDGE_KEYWORDS_NAME};
    for (int i = 0; i < 2; i++) {
        cJSON *j = cJSON_AddObjectToObject(o, names[i]);
        cJSON_AddNumberToObject(j, "agreement", al_judge_tally_accuracy(t[i]));
        cJSON_AddNumberToObject(j, "precision", al_judge_tally_precision(t[i]));
        cJSON_AddNumberToObject(j, "recall", al_judge_tally_recall(t[i]));
    }
    return o;
}

/* Scores the model on the selected examples (only_source >= 0: that source only), prints
 * the table and adds it to report under title. */
static void score_examples(const struct al_judge_examples *examples, const struct al_judge_model *model,
                           enum selection which, int only_source, const char *title, cJSON *report)
{
    int n = examples->n_sources;
    struct section *by_source = calloc((size_t)n + 1, sizeof *by_source), *all = &by_source[n];
    if (!by_source)
        return;
    for (int i = 0; i < examples->count; i++) {
        const struct al_judge_example *e = &examples->items[i];
        if (!selected(e, which) || (only_source >= 0 && e->source != only_source))
            continue;
        bool learned = al_judge_model_says_refusal(model, &e->features);
        bool keywords = al_judge_keywords_says_refusal(e->features.finding);
        al_judge_tally_count(&by_source[e->source].learned, learned, e->refusal);
        al_judge_tally_count(&by_source[e->source].keywords, keywords, e->refusal);
        al_judge_tally_count(&all->learned, learned, e->refusal);
        al_judge_tally_count(&all->keywords, keywords, e->refusal);
    }
    cJSON *json = cJSON_AddObjectToObject(report, title);
    print_row("all", all);
    cJSON_AddItemToObject(json, "all", section_json(all));
    for (int s = 0; s < n && only_source < 0; s++)
        if (by_source[s].learned.labelled > 0) {
            print_row(examples->sources[s], &by_source[s]);
            cJSON_AddItemToObject(json, examples->sources[s], section_json(&by_source[s]));
        }
    free(by_source);
}

static int fit_on(const struct al_judge_examples *examples, enum selection which, int without_source,
                  const struct train_options *opt, struct al_judge_model *model)
{
    bool *use = malloc((size_t)(examples->count ? examples->count : 1) * sizeof *use);
    if (!use)
        return al_fail("out of memory");
    for (int i = 0; i < examples->count; i++)
        use[i] = selected(&examples->items[i], which) && examples->items[i].source != without_source;
    struct al_judge_feature_settings settings = al_judge_feature_defaults();
    int rc = al_judge_fit(examples, use, &settings, &opt->fit, model);
    model->threshold = opt->threshold;
    model->keywords_refusal_decides = opt->keywords_refusal_decides;
    model->complying_opening_decides = opt->complying_opening_decides;
    free(use);
    return rc;
}

/* A --check file, judged as `agentlora judge` would: tool calls by the guard, the rest by
 * the model's features. */
static int score_check_file(const char *path, const struct al_judge_model *model, cJSON *report)
{
    size_t length;
    char *content = al_file_read_all(path, &length);
    if (!content)
        return -1;
    struct section s = {0};
    long line_number = 0;
    int rc = 0;
    for (char *line = strtok(content, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        line_number++;
        struct al_judge_input input;
        struct al_judge_features f = {0};
        struct al_verdict keywords;
        if ((rc = al_judge_input_from_line(&input, line, path, line_number)) != 0)
            break;
        if (input.has_label && (rc = al_judge_features_extract(&model->settings, input.text, &f)) == 0 &&
            (rc = al_judge_response(al_judge_keywords_v1(), input.text, input.has_tool_call, &keywords)) == 0) {
            al_judge_tally_count(&s.learned, !input.has_tool_call && al_judge_model_says_refusal(model, &f), input.label);
            al_judge_tally_count(&s.keywords, keywords.refusal, input.label);
        }
        al_judge_features_free(&f);
        al_judge_input_free(&input);
    }
    free(content);
    if (rc == 0) {
        print_row(path, &s);
        cJSON_AddItemToObject(report, path, section_json(&s));
    }
    return rc;
}

/* ---- the run ---- */

static int read_examples(const struct train_options *opt, struct al_judge_examples *examples)
{
    struct al_judge_feature_settings settings = al_judge_feature_defaults();
    for (int i = 0; i < opt->n_data; i++)
        if (al_judge_examples_read(examples, opt->data[i], &settings, 1.0f, opt->model_label_weight, opt->sample) != 0)
            return -1;
    for (int i = 0; i < opt->n_extra; i++)
        if (al_judge_examples_read(examples, opt->extra[i], &settings, opt->extra_weight, opt->model_label_weight,
                                   opt->sample) != 0)
            return -1;
    return 0;
}

static int validate(const struct al_judge_examples *examples, const struct train_options *opt, cJSON *report)
{
    struct al_judge_model model;
    if (fit_on(examples, TRAIN_OUTSIDE_FOLD, -1, opt, &model) != 0)
        return -1;
    printf("== validation: fitted on the train rows outside the validation fold, scored on the fold (by prompt)\n");
    print_header();
    score_examples(examples, &model, VALIDATION_FOLD, -1, "validation", report);
    al_judge_model_free(&model);
    if (!opt->leave_one_out)
        return 0;
    printf("== leave one source out: fitted on the other sources' train rows, scored on this one's\n");
    print_header();
    cJSON *loso = cJSON_AddObjectToObject(report, "leave_one_source_out");
    for (int s = 0; s < examples->n_sources; s++) {
        if (fit_on(examples, ALL_TRAIN, s, opt, &model) != 0)
            return -1;
        printf("  (without %s)\n", examples->sources[s]);
        score_examples(examples, &model, ALL_TRAIN, s, examples->sources[s], loso);
        al_judge_model_free(&model);
    }
    return 0;
}

static int final_model(const struct al_judge_examples *examples, const struct train_options *opt, cJSON *report)
{
    struct al_judge_model model;
    if (fit_on(examples, ALL_TRAIN, -1, opt, &model) != 0)
        return -1;
    printf("== the shipped model, fitted on every train row: the test split\n");
    print_header();
    score_examples(examples, &model, TEST_SPLIT, -1, "test", report);
    int rc = 0;
    if (opt->n_check > 0) {
        printf("== check files (never fitted on)\n");
        print_header();
    }
    cJSON *check = cJSON_AddObjectToObject(report, "check");
    for (int i = 0; i < opt->n_check && rc == 0; i++)
        rc = score_check_file(opt->check[i], &model, check);
    if (rc == 0 && opt->out) {
        rc = al_judge_model_write(&model, opt->out, AL_JUDGE_LEARNED_NAME);
        if (rc == 0)
            printf("weights: %s\n", opt->out);
    }
    al_judge_model_free(&model);
    return rc;
}

static void add_settings(cJSON *report, const struct train_options *opt, const struct al_judge_examples *examples)
{
    struct al_judge_feature_settings f = al_judge_feature_defaults();
    cJSON_AddStringToObject(report, "judge", AL_JUDGE_LEARNED_NAME);
    cJSON *features = cJSON_AddObjectToObject(report, "features");
    cJSON_AddNumberToObject(features, "hash_bits", f.hash_bits);
    cJSON_AddNumberToObject(features, "head_bytes", f.head_bytes);
    cJSON_AddNumberToObject(features, "whole_text_scale", f.whole_text_scale);
    cJSON_AddStringToObject(features, "groups", "head word 1-2-grams, head char 3-5-grams (in words), "
                                                "whole-text word 1-2-grams, keywords-v1 finding");
    cJSON *training = cJSON_AddObjectToObject(report, "training");
    cJSON_AddNumberToObject(training, "rows", examples->count);
    cJSON_AddNumberToObject(training, "seed", (double)opt->fit.seed);
    cJSON_AddNumberToObject(training, "epochs", opt->fit.epochs);
    cJSON_AddNumberToObject(training, "learning_rate", opt->fit.learning_rate);
    cJSON_AddNumberToObject(training, "l2", opt->fit.l2);
    cJSON_AddBoolToObject(training, "balance_classes", opt->fit.balance_classes);
    cJSON_AddNumberToObject(training, "extra_weight", opt->extra_weight);
    cJSON_AddNumberToObject(training, "model_label_weight", opt->model_label_weight);
    cJSON_AddNumberToObject(training, "sample", opt->sample);
    cJSON_AddNumberToObject(training, "threshold", opt->threshold);
    cJSON_AddBoolToObject(training, "keywords_refusal_decides", opt->keywords_refusal_decides);
    cJSON_AddBoolToObject(training, "complying_opening_decides", opt->complying_opening_decides);
}

static int write_report(cJSON *report, const char *path)
{
    char *text = cJSON_Print(report);
    if (!text)
        return al_fail("out of memory writing %s", path);
    size_t length = strlen(text);
    text[length] = '\n';
    int rc = al_file_write_atomic(path, text, length + 1);
    free(text);
    return rc;
}

int al_cmd_judge_train(int argc, char **argv)
{
    struct train_options opt;
    int parsed = parse(argc, argv, &opt);
    if (parsed != 0) {
        if (parsed < 0)
            usage(stderr);
        return parsed < 0 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    struct al_judge_examples examples = {0};
    cJSON *report = cJSON_CreateObject();
    int rc = report ? read_examples(&opt, &examples) : al_fail("out of memory");
    if (rc == 0) {
        long test = 0, fold = 0;
        for (int i = 0; i < examples.count; i++) {
            test += examples.items[i].test;
            fold += examples.items[i].validation;
        }
        printf("%s: %d labelled rows (%ld test, %ld in the validation fold, 1 of %d by prompt), %d sources\n",
               AL_JUDGE_LEARNED_NAME, examples.count, test, fold, AL_JUDGE_VALIDATION_FOLDS, examples.n_sources);
        add_settings(report, &opt, &examples);
        rc = validate(&examples, &opt, report);
    }
    if (rc == 0)
        rc = final_model(&examples, &opt, report);
    if (rc == 0 && opt.report)
        rc = write_report(report, opt.report);
    cJSON_Delete(report);
    al_judge_examples_free(&examples);
    fflush(stdout);
    return rc == 0 ? AL_EXIT_OK : al_cli_report_error("judge-train");
}
