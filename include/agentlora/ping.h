/* PING (Prefix INjection Guard) prefixes: short sentences placed at the start of an
 * assistant response. In train mode the data pipeline puts one at the start of a
 * record's first assistant response (the renderer inserts the text); in eval mode
 * generation prefills it later. Which prefix a record gets is a seeded function of its
 * id, so it never changes between epochs or after a resume. */
#ifndef AGENTLORA_PING_H
#define AGENTLORA_PING_H

#include <stdbool.h>
#include <stdint.h>

enum al_ping_mode {
    AL_PING_NONE = 0,
    AL_PING_TRAIN, /* prefixes are part of the training targets */
    AL_PING_EVAL,  /* prefixes are prefilled at generation time only */
};

enum al_ping_targets {
    AL_PING_HARMFUL = 0, /* only harmful records get a prefix */
    AL_PING_BENIGN,
    AL_PING_BOTH,
};

struct al_ping {
    char **prefixes;
    int n_prefixes;
    enum al_ping_mode mode;
    enum al_ping_targets targets;
    uint64_t seed;
};

/* Loads prefixes from a JSON list of strings, or from a text file with one prefix per
 * line (blank lines and lines starting with '#' are skipped). Fails on an empty list,
 * an empty prefix or a non-string entry. Mode defaults to AL_PING_NONE; set mode,
 * targets and seed afterwards. */
int al_ping_load(struct al_ping *ping, const char *path);
void al_ping_free(struct al_ping *ping);

/* "none" | "train" | "eval" and "harmful" | "benign" | "both". */
int al_ping_mode_parse(const char *text, enum al_ping_mode *mode);
int al_ping_targets_parse(const char *text, enum al_ping_targets *targets);
const char *al_ping_mode_name(enum al_ping_mode mode);
const char *al_ping_targets_name(enum al_ping_targets targets);

/* The prefix chosen for a record: seeded by (seed, id), or (seed, record_number) when
 * the record has no id. Independent of mode; NULL only when no prefixes are loaded. */
const char *al_ping_choose(const struct al_ping *ping, const char *record_id, long record_number);

/* Train mode: the prefix to place at the start of the record's first assistant
 * response, or NULL when the record gets none (another mode, or its label is not
 * targeted). */
const char *al_ping_train_prefix(const struct al_ping *ping, const char *record_id, long record_number,
                                 bool harmful);

#endif
