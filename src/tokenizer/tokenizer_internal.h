/* What the tokenizer files share: the tokenizer object, the added-token matcher, the
 * byte-level BPE model and the hash maps it is built on. Only src/tokenizer includes it. */
#ifndef AGENTLORA_TOKENIZER_INTERNAL_H
#define AGENTLORA_TOKENIZER_INTERNAL_H

#include "agentlora/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct al_spm;

/* ---- hash maps (bpe_hash.c) ---- */

/* Byte string -> id. Keys are not copied: they must outlive the map. */
struct al_string_map {
    struct al_string_slot *slots;
    size_t capacity; /* a power of two */
    size_t count;
};
int al_string_map_init(struct al_string_map *map, size_t expected);
void al_string_map_free(struct al_string_map *map);
/* Inserts or replaces. */
int al_string_map_put(struct al_string_map *map, const char *key, size_t length, int32_t value);
/* The value, or -1 when absent. */
int32_t al_string_map_get(const struct al_string_map *map, const char *key, size_t length);

/* (left id, right id) -> (merge rank, merged id). */
struct al_pair_map {
    struct al_pair_slot *slots;
    size_t capacity;
    size_t count;
};
struct al_merge {
    int32_t rank;
    int32_t merged_id;
};
int al_pair_map_init(struct al_pair_map *map, size_t expected);
void al_pair_map_free(struct al_pair_map *map);
/* Inserts or replaces: a pair listed twice keeps its last rank, as Hugging Face's
 * tokenizers does when it collects the merges into its map. */
int al_pair_map_put(struct al_pair_map *map, int32_t left, int32_t right, struct al_merge merge);
/* True and *merge filled when the pair merges. */
bool al_pair_map_get(const struct al_pair_map *map, int32_t left, int32_t right, struct al_merge *merge);

/* ---- added tokens (tokenizer_added.c) ---- */

struct al_added_token {
    char *content;
    size_t length;
    int32_t id;
    bool special;     /* matched only with AL_TOKENIZE_PARSE_SPECIAL */
    bool lstrip;      /* swallows the whitespace before it */
    bool rstrip;      /* swallows the whitespace after it */
    bool single_word; /* matches only between non-word characters */
};

struct al_added_tokens {
    struct al_added_token *items;
    size_t count;
    size_t capacity;
    /* items sorted by first byte, longest first; by_first_byte[b]..[b+1] is b's range */
    size_t *order;
    size_t by_first_byte[257];
    struct al_string_map by_content;
    int32_t *item_of_id; /* id -> index in items, -1 for ids that are not added tokens */
    int32_t id_limit;
};

/* Adds a token unless one with the same content exists (returns 0 then too). */
int al_added_tokens_add(struct al_added_tokens *added, const struct al_added_token *token);
/* Builds the lookup index; call after the last add. */
int al_added_tokens_index(struct al_added_tokens *added);
void al_added_tokens_free(struct al_added_tokens *added);
/* The added token with this id, or NULL (valid after al_added_tokens_index). */
const struct al_added_token *al_added_tokens_find_id(const struct al_added_tokens *added, int32_t id);

/* Splits text into plain segments and added tokens, leftmost-longest, and reports them in
 * order through the callbacks (either returns -1 to stop). */
struct al_added_split_callbacks {
    int (*on_text)(void *context, size_t start, size_t end);
    int (*on_token)(void *context, const struct al_added_token *token, size_t start);
    void *context;
};
int al_added_tokens_split(const struct al_added_tokens *added, const char *text, size_t length,
                          bool parse_special, const struct al_added_split_callbacks *callbacks);

/* ---- unicode helpers (unicode_utf8.c, unicode_nfc.c) ---- */

/* Returns the byte offset of the first invalid UTF-8 sequence, or `length` when valid. */
size_t al_utf8_invalid_offset(const char *text, size_t length);
/* Decodes one code point of valid UTF-8 at text[*position], advancing the position. */
uint32_t al_utf8_next(const char *text, size_t length, size_t *position);

/* GPT-2's reversible byte <-> printable-character map used by byte-level BPE. */
#define AL_BYTE_UNICODE_SHIFTED 68 /* bytes that are not printable: 0-32, 127-160, 173 */
struct al_byte_unicode {
    uint32_t code_of_byte[256];
    uint8_t byte_of_shifted[AL_BYTE_UNICODE_SHIFTED]; /* byte of U+0100 + i */
};
void al_byte_unicode_init(struct al_byte_unicode *map);
/* Converts a byte-level string ("Ġhello") to raw bytes (" hello"); returns the raw
 * length, or -1 when a character is not in the map. `raw` needs `length` bytes. */
long al_byte_unicode_to_raw(const struct al_byte_unicode *map, const char *text, size_t length,
                            char *raw);

/* Text after normalisation, with the input offset each of its bytes came from. */
struct al_normalized {
    char *text;
    size_t *origin;
    size_t length;
    size_t capacity;
};
/* Appends input[start, end) unchanged (origin = input offset). */
int al_normalized_append_copy(struct al_normalized *out, const char *input, size_t start, size_t end);
/* Appends NFC(input[start, end)); a composed character comes from the first input
 * character it absorbs (unicode_nfc.c). */
int al_normalized_append_nfc(struct al_normalized *out, const char *input, size_t start, size_t end);
/* Appends one byte that stands for input offset `origin` (an inserted prefix space). */
int al_normalized_append_byte(struct al_normalized *out, char byte, size_t origin);
void al_normalized_free(struct al_normalized *out);

/* ---- byte-level BPE (bpe.c, bpe_pretokenize.c, bpe_merge.c) ---- */

struct al_bpe;

/* Reads the model, normaliser, pre-tokeniser and post-processor of a tokenizer.json and
 * adds its added_tokens to `added`. */
struct al_bpe *al_bpe_load(const char *path, struct al_added_tokens *added);
void al_bpe_free(struct al_bpe *bpe);
/* Encodes one plain segment text[start, end) (no added tokens in it). */
int al_bpe_encode_segment(const struct al_bpe *bpe, const char *text, size_t start, size_t end,
                          struct al_tokens *out);
/* Appends the raw bytes of one (non-added) id to *buffer. */
int al_bpe_decode_id(const struct al_bpe *bpe, int32_t id, char **buffer, size_t *length,
                     size_t *capacity);
int32_t al_bpe_vocab_size(const struct al_bpe *bpe);
const char *al_bpe_id_to_piece(const struct al_bpe *bpe, int32_t id);
int32_t al_bpe_piece_to_id(const struct al_bpe *bpe, const char *piece, size_t length);
/* The post-processor's template: ids before and after the sequence. */
void al_bpe_template(const struct al_bpe *bpe, const int32_t **prefix, size_t *prefix_count,
                     const int32_t **suffix, size_t *suffix_count);

/* ---- the tokenizer object (tokenizer.c) ---- */

struct al_tokenizer {
    enum al_tokenizer_kind kind;
    char *source_path;
    struct al_bpe *bpe;
    struct al_spm *spm;
    struct al_added_tokens added;
    int32_t bos_id, eos_id, pad_id, unk_id;
    bool add_bos; /* SentencePiece: what AL_TOKENIZE_ADD_SPECIAL adds */
    bool add_eos;
};

/* Grows a byte buffer so that `extra` more bytes fit. */
int al_buffer_reserve(char **buffer, size_t length, size_t *capacity, size_t extra);

#endif
