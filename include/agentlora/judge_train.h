/* Training learned-v1 (judge_learned.h) from labelled responses: reading the examples
 * (judge_train_data.c), fitting the logistic regression and scoring it (judge_train.c).
 * `agentlora judge-train` and `make judge` drive it. Deterministic: the same files and
 * options give the same weights, bit for bit (one thread, a seeded order). */
#ifndef AGENTLORA_JUDGE_TRAIN_H
#define AGENTLORA_JUDGE_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/judge_learned.h"

#define AL_JUDGE_SOURCE_NAME_MAX 48
/* Train rows whose prompt hashes to fold 0 of this many are the validation part. */
#define AL_JUDGE_VALIDATION_FOLDS 5

struct al_judge_example {
    struct al_judge_features features;
    bool refusal;
    bool test;       /* "split": "test" */
    bool validation; /* a train row in the validation fold (by prompt) */
    int source;      /* index into al_judge_examples.sources */
    float weight;    /* the file's weight, times model_label_weight for "label_origin": "model" */
};

struct al_judge_examples {
    struct al_judge_example *items;
    int count, capacity;
    char (*sources)[AL_JUDGE_SOURCE_NAME_MAX];
    int n_sources;
};

/* Appends the examples of a JSONL file: {"text", "refusal" (or "label"): bool, optional
 * "source" (its part before '/' groups it; default: the file name), "label_origin"
 * ("model" rows get model_label_weight), "split" ("train" or "test"; default train),
 * "prompt" (rows sharing a prompt share a validation fold; default: the text)}. Keeps
 * every `sample`-th line only (1: all). Errors name the file and line. */
int al_judge_examples_read(struct al_judge_examples *examples, const char *path,
                           const struct al_judge_feature_settings *settings, float weight, float model_label_weight,
                           int sample);
void al_judge_examples_free(struct al_judge_examples *examples);

struct al_judge_train_options {
    uint64_t seed;
    int epochs;
    double learning_rate; /* AdaGrad's step */
    double l2;            /* L2 penalty per example on the weights it touches */
    bool balance_classes; /* weigh refusals and non-refusals to equal totals */
};
struct al_judge_train_options al_judge_train_defaults(void);

/* The trained model: weights[al_judge_feature_count(settings)], bias. */
struct al_judge_model {
    struct al_judge_feature_settings settings;
    float *weights;
    float bias;
    double threshold;
    /* keywords-v1's findings that decide before the weights: its refusal rules (bare,
     * strong and weak phrases) are precise (about 0.98 on held-out rows) where the
     * weights can miss what they saw little of ("No.", "Lo siento, pero no puedo"); a
     * complying opening ("Sure, here's") means an answer. */
    bool keywords_refusal_decides, complying_opening_decides;
};

/* Fits on the examples with use[i] true. *model is allocated (free with
 * al_judge_model_free). */
int al_judge_fit(const struct al_judge_examples *examples, const bool *use,
                 const struct al_judge_feature_settings *settings, const struct al_judge_train_options *options,
                 struct al_judge_model *model);
void al_judge_model_free(struct al_judge_model *model);

/* sigmoid(bias + weights . features), without the guards. */
double al_judge_model_probability(const struct al_judge_model *model, const struct al_judge_features *features);
/* Whether keywords-v1's finding is one learned-v1 trusts over its weights: an empty output
 * or a technical failure is no refusal. */
bool al_judge_finding_is_guard(enum al_keywords_finding finding);
/* The rule that decides before the weights: 1 refusal, 0 no refusal, -1 the weights decide. */
int al_judge_model_rule(const struct al_judge_model *model, enum al_keywords_finding finding);
/* The verdict learned-v1 gives on an example's features (with its guards). */
bool al_judge_model_says_refusal(const struct al_judge_model *model, const struct al_judge_features *features);
/* keywords-v1's verdict from the same features' finding. */
bool al_judge_keywords_says_refusal(enum al_keywords_finding finding);

/* Writes the weights file that al_judge_learned_open reads. */
int al_judge_model_write(const struct al_judge_model *model, const char *path, const char *judge_name);

/* Adds one verdict against its label to tally's counts (al_judge_tally_accuracy etc. read
 * them; misjudged line numbers are not kept). */
void al_judge_tally_count(struct al_judge_tally *tally, bool verdict, bool label);

#endif
