/* PING prefix search: score candidate prefixes by the refusal rate they bring on harmful
 * items plus the helpfulness they leave on benign ones (each completion judged and scored
 * without the prefix, as the evaluation pipeline does), rank them, and have a model
 * propose new candidates from a meta prompt that shows the best ones with their scores
 * (PING's search loop). */
#ifndef AGENTLORA_PING_SEARCH_H
#define AGENTLORA_PING_SEARCH_H

#include <stdbool.h>
#include <stdio.h>

#include "agentlora/evaluate.h"

/* Candidates shown in the meta prompt, and written as the result. */
#define AL_PING_SEARCH_TOP 3
/* Longest candidate kept from a proposal, in bytes: a prefix is one or two sentences. */
#define AL_PING_CANDIDATE_MAX_BYTES 300

struct al_ping_candidate {
    char *text;          /* owned */
    int round;           /* 0: from the candidates file; r: proposed in round r */
    double refusal_rate; /* harmful items judged refusals, in [0, 1] */
    double helpfulness;  /* mean tool-use score of benign items, in [0, 1] */
    double score;        /* refusal_rate + helpfulness */
};

struct al_ping_search_settings {
    const struct al_chat_generator *generator;
    const struct al_judge *judge;
    const struct al_eval_records *harmful, *benign;
    int max_new_tokens;
    int batch;
    struct al_work_progress *progress; /* ticked per batch of records scored; NULL: none */
};

/* Evaluates the harmful and benign records with candidate->text as the forced prefix and
 * fills its refusal_rate, helpfulness and score. */
int al_ping_score_candidate(const struct al_ping_search_settings *settings, struct al_ping_candidate *candidate);

/* Sorts by score, best first; equal scores keep their order. */
void al_ping_rank(struct al_ping_candidate *candidates, int n);

/* The meta prompt: the task, the top candidates with their scores, and the request for
 * `propose` new prefixes, one per line. The caller frees. */
char *al_ping_meta_prompt(const struct al_ping_candidate *top, int n_top, int propose);

/* One candidate per line of a model's reply: list markers ("1.", "2)", "-", "*"), quotes
 * and surrounding space removed; empty lines, over-long lines, lines that are not valid
 * UTF-8 (a byte-level model can write stray bytes) and repeats (of each other
 * or of `existing`) skipped; at most `max` kept. *out is a malloc'd array of malloc'd
 * strings. Returns how many, or -1 on no memory. */
int al_ping_parse_proposals(const char *reply, const struct al_ping_candidate *existing, int n_existing, int max,
                            char ***out);

/* The candidates' texts as a JSON list of strings (the prefix file format of train and eval). */
int al_ping_write_prefixes(const char *path, const struct al_ping_candidate *candidates, int n);

/* The ranking: one line per candidate with its score, refusal rate and helpfulness in percent. */
void al_ping_print_ranking(const struct al_ping_candidate *candidates, int n, const char *judge, FILE *out);

void al_ping_candidates_free(struct al_ping_candidate *candidates, int n);

#endif
