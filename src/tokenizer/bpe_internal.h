/* The byte-level BPE model as bpe.c loads it and bpe_encode.c / bpe_merge.c use it. */
#ifndef AGENTLORA_BPE_INTERNAL_H
#define AGENTLORA_BPE_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/tokenizer_internal.h"

/* A Sequence of pre-tokenizers rarely holds more than two or three steps. */
#define BPE_MAX_STEPS 8

/* One pre-tokenizer step, applied to every pre-token the steps before it produced. */
enum bpe_step_kind {
    BPE_STEP_SPLIT,        /* Split(Isolated), Digits, ByteLevel(use_regex=true) */
    BPE_STEP_PREFIX_SPACE, /* ByteLevel(add_prefix_space=true): " " unless one is there */
};

struct bpe_step {
    enum bpe_step_kind kind;
    pcre2_code *pattern; /* BPE_STEP_SPLIT */
};

struct al_bpe {
    char *path;
    int32_t vocab_size;        /* largest id + 1 */
    char **piece_of_id;        /* vocabulary string ("Ġhello"), NULL for an unused id */
    char **raw_of_id;          /* the bytes it stands for (" hello") */
    uint32_t *raw_length_of_id;
    struct al_string_map piece_to_id; /* keys point into piece_of_id */
    struct al_string_map raw_to_id;   /* model vocabulary only; keys point into raw_of_id */
    struct al_pair_map merges;
    int32_t id_of_byte[256]; /* the single-byte tokens every word starts from; -1 if absent */
    struct al_byte_unicode byte_map;

    bool normalize_nfc;
    bool ignore_merges; /* a pre-token that is a vocabulary entry is emitted whole */
    struct bpe_step steps[BPE_MAX_STEPS];
    int step_count;

    int32_t *template_prefix; /* post-processor ids before the text (Llama 3: BOS) */
    size_t template_prefix_count;
    int32_t *template_suffix;
    size_t template_suffix_count;
};

/* Reusable buffers for merging words, so the hot loop does not allocate. */
struct al_bpe_scratch {
    struct bpe_symbol *symbols;
    struct bpe_candidate *heap;
    size_t symbol_capacity;
    size_t heap_capacity;
    int32_t *ids;       /* the result of the last al_bpe_merge_word */
    uint32_t *lengths;  /* bytes each result token covers */
    size_t count;
    size_t result_capacity;
};

/* Turns one pre-token's raw bytes into token ids (ignore_merges, then merges by rank). */
int al_bpe_merge_word(const struct al_bpe *bpe, const char *word, size_t length,
                      struct al_bpe_scratch *scratch);
void al_bpe_scratch_free(struct al_bpe_scratch *scratch);

#endif
