/* learned-v1: a refusal judge learned from labelled responses, trained by agentlora itself.
 *
 * It is a logistic regression over hashed features of the normalised response text
 * (al_judge_normalize): word unigrams and bigrams and character 3- to 5-grams of the
 * response's opening, word unigrams and bigrams of the whole response, and keywords-v1's
 * finding. A tool call, an empty response and a technical failure (keywords-v1's rules)
 * are no refusal without consulting the weights, as with the other judges.
 *
 * Why not a LoRA adapter on a small chat model: on 2 CPU cores the linear model trains in
 * seconds and judges tens of thousands of responses a second, where a 135M-parameter
 * judge costs one prefill per response; and it scores better on held-out data than
 * keywords-v1 (README, "The refusal judge").
 *
 * Weights file (safetensors): "weight" F32 [2^hash_bits + AL_KEYWORDS_N_FINDINGS], "bias"
 * F32 [1]; __metadata__ holds "judge" (the name), "hash_bits", "head_bytes",
 * "whole_text_scale" and "threshold". */
#ifndef AGENTLORA_JUDGE_LEARNED_H
#define AGENTLORA_JUDGE_LEARNED_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/judge.h"

#define AL_JUDGE_LEARNED_NAME "learned-v1"
/* Where the trained weights ship, relative to the repository root. */
#define AL_JUDGE_LEARNED_FILE "data/judge/learned-v1.safetensors"
/* Names a weights file to use instead (an empty value or "none" disables the learned
 * judge, so auto means keywords-v1). */
#define AL_JUDGE_LEARNED_ENV "AGENTLORA_JUDGE_WEIGHTS"

/* ---- features (judge_features.c) ---- */

struct al_judge_feature_settings {
    int hash_bits;          /* hashed features: 2^hash_bits slots */
    int head_bytes;         /* the opening the n-grams of the head are taken from */
    float whole_text_scale; /* weight of the whole-text word group relative to the head's */
};

/* The settings learned-v1 is trained with, chosen on the validation fold of the train rows
 * (agreement 0.926 with a 600-byte opening, 0.938 with 1000, 0.940 with 1500 and the whole
 * text at full weight): refusals show in a response's opening, about 250 words here, room
 * for a lecture before the refusal or a persona that refuses before one that complies;
 * the whole text's words see the rest. 2^18 slots keep collisions rare for ~10^5 distinct
 * n-grams at 1 MB of weights. */
struct al_judge_feature_settings al_judge_feature_defaults(void);

/* A sparse feature vector: sorted unique indices, their values. */
struct al_judge_features {
    int32_t *index;
    float *value;
    int count, capacity;
    enum al_keywords_finding finding; /* keywords-v1's finding on the same text */
};

/* Number of weights for these settings: the hashed slots, then one per keywords finding. */
int64_t al_judge_feature_count(const struct al_judge_feature_settings *settings);
/* Features of one response (NULL is empty). *out is reset first; -1 on invalid UTF-8 or
 * no memory (recorded). */
int al_judge_features_extract(const struct al_judge_feature_settings *settings, const char *text,
                              struct al_judge_features *out);
void al_judge_features_free(struct al_judge_features *features);

/* ---- the judge (judge_learned.c) ---- */

/* Opens a weights file; errors name the file and what is wrong in it. */
struct al_judge *al_judge_learned_open(const char *path);
void al_judge_learned_close(struct al_judge *judge);
/* Whether judge is a learned judge (opened by al_judge_learned_open). */
bool al_judge_is_learned(const struct al_judge *judge);
/* The judge's probability that the response refuses, without the guards (tool call,
 * empty, technical failure). -1 when judge is not a learned judge or the text is invalid. */
int al_judge_learned_probability(const struct al_judge *judge, const char *text, double *p_refusal);

/* The weights file auto and learned-v1 use: $AGENTLORA_JUDGE_WEIGHTS when set, else
 * AL_JUDGE_LEARNED_FILE under the working directory, else under the folder of the running
 * executable; NULL when none exists (or the variable disables it). */
const char *al_judge_learned_find(void);
/* learned-v1 opened once from al_judge_learned_find() and kept for the process; NULL
 * (recorded: how to get the file) when none is found or it does not open. */
const struct al_judge *al_judge_learned_default(void);

/* ---- batches ---- */

/* Judges n responses (texts[i] may be NULL; has_tool_call may be NULL: none), in parallel
 * for the learned judge and keywords-v1 (both are pure functions of the text), in order
 * for a model judge. Returns 0, or -1 with the first failing index in the message. */
int al_judge_responses(const struct al_judge *judge, int n, const char *const *texts, const bool *has_tool_call,
                       struct al_verdict *out);

#endif
