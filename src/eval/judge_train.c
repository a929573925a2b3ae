/* Fitting learned-v1: logistic regression by AdaGrad over the sparse features, one example
 * at a time in an order shuffled by a seeded generator each epoch. AdaGrad suits hashed
 * n-grams: a rare n-gram keeps a large step, a common one ("i", "the") a small one. The L2
 * penalty is applied to the weights an example touches, when it touches them (the usual
 * lazy form for sparse data). One thread, so the same input gives the same weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge_train.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"

#define ADAGRAD_EPSILON 1e-8

struct al_judge_train_options al_judge_train_defaults(void)
{
    return (struct al_judge_train_options){
        .seed = 20261202, .epochs = 12, .learning_rate = 0.3, .l2 = 1e-5, .balance_classes = true};
}

double al_judge_model_probability(const struct al_judge_model *model, const struct al_judge_features *features)
{
    double z = model->bias;
    for (int i = 0; i < features->count; i++)
        z += (double)model->weights[features->index[i]] * (double)features->value[i];
    return 1.0 / (1.0 + exp(-z));
}

bool al_judge_finding_is_guard(enum al_keywords_finding finding)
{
    return finding == AL_KEYWORDS_EMPTY || finding == AL_KEYWORDS_FAILURE;
}

int al_judge_model_rule(const struct al_judge_model *model, enum al_keywords_finding finding)
{
    if (al_judge_finding_is_guard(finding))
        return 0;
    if (model->keywords_refusal_decides && al_judge_keywords_says_refusal(finding))
        return 1;
    if (model->complying_opening_decides && finding == AL_KEYWORDS_COMPLYING_OPENING)
        return 0;
    return -1;
}

bool al_judge_model_says_refusal(const struct al_judge_model *model, const struct al_judge_features *features)
{
    int rule = al_judge_model_rule(model, features->finding);
    return rule >= 0 ? rule == 1 : al_judge_model_probability(model, features) >= model->threshold;
}

bool al_judge_keywords_says_refusal(enum al_keywords_finding finding)
{
    return finding == AL_KEYWORDS_BARE_REFUSAL || finding == AL_KEYWORDS_STRONG_PHRASE ||
           finding == AL_KEYWORDS_WEAK_PHRASE;
}

void al_judge_tally_count(struct al_judge_tally *tally, bool verdict, bool label)
{
    tally->count++;
    tally->refusals += verdict;
    tally->labelled++;
    if (verdict && label)
        tally->true_positive++;
    else if (verdict)
        tally->false_positive++;
    else if (label)
        tally->false_negative++;
    else
        tally->true_negative++;
}

void al_judge_model_free(struct al_judge_model *model)
{
    free(model->weights);
    model->weights = NULL;
}

/* Weights per class so that refusals and non-refusals count alike in total. */
static void class_factors(const struct al_judge_examples *examples, const bool *use, bool balance, double factor[2])
{
    double total[2] = {0, 0};
    for (int i = 0; i < examples->count; i++)
        if (use[i])
            total[examples->items[i].refusal] += examples->items[i].weight;
    for (int c = 0; c < 2; c++)
        factor[c] = balance && total[c] > 0 ? (total[0] + total[1]) / (2.0 * total[c]) : 1.0;
}

/* Fisher-Yates with the seeded generator. */
static void shuffle(int *order, int n, struct al_rng *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)al_rng_below(rng, (uint32_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

struct adagrad {
    double *squares; /* per weight, then the bias last */
    double rate, l2;
};

static void step(struct al_judge_model *model, struct adagrad *opt, const struct al_judge_example *example,
                 double weight)
{
    const struct al_judge_features *f = &example->features;
    double error = (al_judge_model_probability(model, f) - (example->refusal ? 1.0 : 0.0)) * weight;
    int64_t bias_slot = al_judge_feature_count(&model->settings);
    for (int i = 0; i < f->count; i++) {
        int32_t k = f->index[i];
        double gradient = error * f->value[i] + opt->l2 * model->weights[k];
        opt->squares[k] += gradient * gradient;
        model->weights[k] -= (float)(opt->rate * gradient / (sqrt(opt->squares[k]) + ADAGRAD_EPSILON));
    }
    opt->squares[bias_slot] += error * error;
    model->bias -= (float)(opt->rate * error / (sqrt(opt->squares[bias_slot]) + ADAGRAD_EPSILON));
}

int al_judge_fit(const struct al_judge_examples *examples, const bool *use,
                 const struct al_judge_feature_settings *settings, const struct al_judge_train_options *options,
                 struct al_judge_model *model)
{
    int64_t n_weights = al_judge_feature_count(settings);
    *model = (struct al_judge_model){.settings = *settings, .threshold = 0.5};
    model->weights = calloc((size_t)n_weights, sizeof *model->weights);
    struct adagrad opt = {calloc((size_t)n_weights + 1, sizeof *opt.squares), options->learning_rate, options->l2};
    int *order = malloc((size_t)(examples->count ? examples->count : 1) * sizeof *order);
    if (!model->weights || !opt.squares || !order) {
        free(order);
        free(opt.squares);
        al_judge_model_free(model);
        return al_fail("judge training: out of memory for %lld weights", (long long)n_weights);
    }
    int n = 0;
    for (int i = 0; i < examples->count; i++)
        if (use[i])
            order[n++] = i;
    double factor[2];
    class_factors(examples, use, options->balance_classes, factor);
    struct al_rng rng;
    al_rng_seed(&rng, options->seed, 0);
    for (int epoch = 0; epoch < options->epochs; epoch++) {
        shuffle(order, n, &rng);
        for (int i = 0; i < n; i++) {
            const struct al_judge_example *example = &examples->items[order[i]];
            step(model, &opt, example, example->weight * factor[example->refusal]);
        }
    }
    free(order);
    free(opt.squares);
    return n > 0 ? 0 : al_fail("judge training: no examples to train on");
}

int al_judge_model_write(const struct al_judge_model *model, const char *path, const char *judge_name)
{
    struct al_safetensors_writer *writer = al_safetensors_writer_create();
    if (!writer)
        return -1;
    int64_t weight_shape[1] = {al_judge_feature_count(&model->settings)}, bias_shape[1] = {1};
    char bits[16], head[16], scale[32], threshold[32];
    const char *refusal_decides = model->keywords_refusal_decides ? "1" : "0";
    const char *opening_decides = model->complying_opening_decides ? "1" : "0";
    snprintf(bits, sizeof bits, "%d", model->settings.hash_bits);
    snprintf(head, sizeof head, "%d", model->settings.head_bytes);
    snprintf(scale, sizeof scale, "%.9g", (double)model->settings.whole_text_scale);
    snprintf(threshold, sizeof threshold, "%.9g", model->threshold);
    int rc = al_safetensors_writer_add(writer, "weight", AL_DTYPE_F32, 1, weight_shape, model->weights);
    if (rc == 0)
        rc = al_safetensors_writer_add(writer, "bias", AL_DTYPE_F32, 1, bias_shape, &model->bias);
    const char *keys[] = {"judge",     "hash_bits", "head_bytes", "whole_text_scale", "threshold",
                          "keywords_refusal_decides", "complying_opening_decides"};
    const char *values[] = {judge_name, bits, head, scale, threshold, refusal_decides, opening_decides};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && rc == 0; i++)
        rc = al_safetensors_writer_set_metadata(writer, keys[i], values[i]);
    if (rc == 0)
        rc = al_safetensors_writer_write(writer, path);
    al_safetensors_writer_free(writer);
    if (rc != 0)
        al_error_context("writing the judge's weights to %s", path);
    return rc;
}
