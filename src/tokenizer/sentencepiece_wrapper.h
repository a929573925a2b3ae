/* A C view of Debian's libsentencepiece, for tokenizer.c only. The wrapper holds two
 * processors of the same model: one as trained (it adds the dummy-prefix "▁" before the
 * text) and one with that prefix switched off, for text that follows a control token
 * (Hugging Face's prepend_scheme "first", mistral-common's per-message encoding). */
#ifndef AGENTLORA_SENTENCEPIECE_WRAPPER_H
#define AGENTLORA_SENTENCEPIECE_WRAPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentlora/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct al_spm;

/* Loads a SentencePiece model (the protobuf tokenizer.model). NULL + al_fail on error. */
struct al_spm *al_spm_load(const char *path);
void al_spm_free(struct al_spm *spm);

int32_t al_spm_vocab_size(const struct al_spm *spm);
/* The piece string of an id, or NULL when out of range (valid while spm lives). */
const char *al_spm_id_to_piece(const struct al_spm *spm, int32_t id);
/* The id of a piece, or -1 when the vocabulary has no such piece. */
int32_t al_spm_piece_to_id(const struct al_spm *spm, const char *piece, size_t length);
int32_t al_spm_bos_id(const struct al_spm *spm);
int32_t al_spm_eos_id(const struct al_spm *spm);
int32_t al_spm_unk_id(const struct al_spm *spm);
int32_t al_spm_pad_id(const struct al_spm *spm);
bool al_spm_is_control(const struct al_spm *spm, int32_t id);
bool al_spm_is_unknown(const struct al_spm *spm, int32_t id);
bool al_spm_is_byte(const struct al_spm *spm, int32_t id);

/* Encodes text[start, end), appending ids with offsets into `text` (see tokenizer.h for
 * how byte-fallback pieces and the dummy prefix get theirs). */
int al_spm_encode(const struct al_spm *spm, const char *text, size_t start, size_t end,
                  bool dummy_prefix, struct al_tokens *out);

/* Decodes ids into a new NUL-terminated string. strip_dummy_prefix drops the space the
 * dummy prefix stands for (true at the start of a text, false after a control token). */
char *al_spm_decode(const struct al_spm *spm, const int32_t *ids, size_t count, bool strip_dummy_prefix,
                    size_t *length);

#ifdef __cplusplus
}
#endif

#endif
