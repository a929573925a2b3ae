/* Tokenizers: byte-level BPE read from a Hugging Face tokenizer.json (Llama 3, Qwen2.5,
 * SmolLM2, ...) and SentencePiece models read from tokenizer.model (Llama 2, Mistral),
 * behind one API. Token ids match Hugging Face `tokenizers` / `sentencepiece` exactly.
 *
 * Offsets. Every encoded token carries `offset`: the byte offset, in the text given to
 * al_tokenizer_encode, of the first input byte the token covers.
 *  - Byte-level BPE: a token covers a contiguous run of bytes. A token that holds only the
 *    second half of a multi-byte character starts inside that character (its offset is
 *    not on a UTF-8 boundary). Under NFC normalisation (Qwen2.5), a character that NFC
 *    composed from several input characters ("e" + U+0301 -> U+00E9) starts at the first
 *    of them, and every byte of it maps there. Rounded down to a character start, the
 *    offsets equal Hugging Face's offsets (checked on the golden corpus).
 *  - SentencePiece: a piece starts at the first input byte of its surface. Byte-fallback
 *    pieces of one character (<0xF0> <0x9F> <0xA6> <0x99>) start at that character's
 *    first byte + 0, 1, 2, 3. A piece that covers no input byte (the dummy-prefix "▁")
 *    gets the offset of the next input byte.
 *  - Special and added tokens start at the first byte of their text (after lstrip, the
 *    first stripped whitespace byte). Tokens added by AL_TOKENIZE_ADD_SPECIAL get the
 *    offset 0 (prefix, e.g. BOS) or the text length (suffix, e.g. EOS).
 * Offsets never decrease and are always <= the text length.
 *
 * Special tokens in SentencePiece text. With AL_TOKENIZE_PARSE_SPECIAL the text is split
 * on the control pieces (<s>, </s>, [INST], [TOOL_CALLS], ...), the unknown piece and the
 * added tokens of tokenizer_config.json; the text between them is encoded by SentencePiece.
 * Only text at the very start of the input gets the model's dummy-prefix "▁"; text after a
 * special token does not. That is what mistral-common produces ("<s>[INST] Hi[/INST]"
 * -> <s> [INST] ▁Hi [/INST], checked against its samples) and what Hugging Face's
 * Metaspace prepend_scheme "first" does; Hugging Face's *legacy* Llama 2 tokenizer would
 * instead prepend "▁" after every special token. Decoding mirrors it: the leading space
 * is dropped only when no token was written before.
 *
 * Byte-level BPE follows tokenizer.json: normalizer none or NFC; pre_tokenizer ByteLevel,
 * Split (Isolated) and Digits in a Sequence; post_processor ByteLevel, TemplateProcessing.
 * Anything else fails to load rather than tokenize differently. Added tokens are matched
 * in the raw text (their "normalized" flag is not needed for the supported normalisers);
 * lstrip/rstrip swallow ASCII whitespace; single_word treats ASCII letters, digits, '_'
 * and all non-ASCII characters as word characters.
 *
 * Thread safety: a loaded tokenizer is read-only; encode and decode may run on several
 * threads at once.
 */
#ifndef AGENTLORA_TOKENIZER_H
#define AGENTLORA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct al_tokenizer;

enum al_tokenizer_kind {
    AL_TOKENIZER_BYTE_LEVEL_BPE = 0,
    AL_TOKENIZER_SENTENCEPIECE,
};

/* Flags for al_tokenizer_encode. */
enum {
    /* Special tokens written in the text ("<|eot_id|>", "<s>", "[INST]") become their
     * ids. Without it they are encoded as ordinary text, as Hugging Face does with
     * split_special_tokens=True; non-special added tokens of a tokenizer.json (Qwen's
     * "<tool_call>") are matched either way, as in Hugging Face. */
    AL_TOKENIZE_PARSE_SPECIAL = 1u << 0,
    /* Adds what Hugging Face adds with add_special_tokens=True: the post-processor's
     * template (Llama 3: <|begin_of_text|> first) for tokenizer.json, BOS (and EOS when
     * add_eos_token) for SentencePiece. Off for text rendered by a chat template, which
     * already holds its BOS. */
    AL_TOKENIZE_ADD_SPECIAL = 1u << 1,
};

/* The result of an encode: ids[i] starts at byte offsets[i] of the input. */
struct al_tokens {
    int32_t *ids;
    size_t *offsets;
    size_t count;
    size_t capacity;
};

/* Appends one token (grows the arrays). */
int al_tokens_push(struct al_tokens *tokens, int32_t id, size_t offset);
/* Frees the arrays and zeroes the struct (safe on a zeroed struct). */
void al_tokens_free(struct al_tokens *tokens);

/* Loads a model folder: tokenizer.json when present, else tokenizer.model; then
 * tokenizer_config.json when present: bos/eos/pad/unk tokens (a token it names that the
 * vocabulary lacks is an error), and for SentencePiece add_bos_token, add_eos_token and
 * added_tokens_decoder (a tokenizer.json's own template and added tokens rule there).
 * When the folder has a config.json, every id the tokenizer can produce must lie below
 * its vocab_size (al_tokenizer_check_model_vocab). Errors name the file. */
struct al_tokenizer *al_tokenizer_load(const char *model_dir);
/* Fails, naming the tokenizer file and model_name, when the tokenizer can produce an id
 * >= the model's vocab_size. al_tokenizer_load applies it against the folder's
 * config.json (when there is one). */
int al_tokenizer_check_model_vocab(const struct al_tokenizer *tokenizer, int64_t model_vocab_size,
                                   const char *model_name);
/* Loads one tokenizer.json (no tokenizer_config.json). */
struct al_tokenizer *al_tokenizer_load_json(const char *tokenizer_json_path);
/* Loads one SentencePiece model file (no tokenizer_config.json). */
struct al_tokenizer *al_tokenizer_load_sentencepiece(const char *model_path);
/* Applies a tokenizer_config.json to a loaded tokenizer (what al_tokenizer_load does). */
int al_tokenizer_apply_config(struct al_tokenizer *tokenizer, const char *config_path);
void al_tokenizer_free(struct al_tokenizer *tokenizer);

enum al_tokenizer_kind al_tokenizer_kind(const struct al_tokenizer *tokenizer);

/* Encodes `length` bytes of UTF-8 text, appending to `out` (which may hold earlier
 * tokens; offsets of the new tokens are relative to `text`). Invalid UTF-8 is an error
 * that names the byte offset. */
int al_tokenizer_encode(const struct al_tokenizer *tokenizer, const char *text, size_t length,
                        unsigned flags, struct al_tokens *out);

/* Decodes ids into a new NUL-terminated byte string (the caller frees; *length gets its
 * length when length is not NULL). Special tokens are written as their text unless
 * skip_special. The bytes are exactly the decoded bytes: ids that cut a character in
 * two give invalid UTF-8, which the caller may repair. decode(encode(x)) == x for
 * byte-level BPE, and for SentencePiece text that its normaliser keeps unchanged. */
char *al_tokenizer_decode(const struct al_tokenizer *tokenizer, const int32_t *ids, size_t count,
                          bool skip_special, size_t *length);

/* Number of ids (the largest id + 1, added tokens included). */
int32_t al_tokenizer_vocab_size(const struct al_tokenizer *tokenizer);
/* The token's string as stored in the vocabulary ("Ġhello", "▁Hello", "<|eot_id|>"),
 * or NULL for an id out of range or unused. Valid until the tokenizer is freed. */
const char *al_tokenizer_id_to_piece(const struct al_tokenizer *tokenizer, int32_t id);
/* The id of a vocabulary string, or -1 when there is none. */
int32_t al_tokenizer_piece_to_id(const struct al_tokenizer *tokenizer, const char *piece);

/* Special ids, -1 when the tokenizer has none. */
int32_t al_tokenizer_bos_id(const struct al_tokenizer *tokenizer);
int32_t al_tokenizer_eos_id(const struct al_tokenizer *tokenizer);
int32_t al_tokenizer_pad_id(const struct al_tokenizer *tokenizer);
int32_t al_tokenizer_unk_id(const struct al_tokenizer *tokenizer);

#define AL_TOKENIZER_MAX_END_OF_TURN 8
/* Ids that end an assistant turn for generation: eos first, then those of the known
 * end-of-turn tokens the vocabulary has (<|eot_id|>, <|eom_id|>, <|end_of_text|>,
 * <|im_end|>, <|endoftext|>, </s>), without repeats. Writes at most `capacity` ids and
 * returns how many it wrote. */
int al_tokenizer_end_of_turn_ids(const struct al_tokenizer *tokenizer, int32_t *ids, int capacity);

/* True for special tokens: added tokens marked "special" in tokenizer.json, control
 * pieces (<s>, </s>, [INST], ...) and the unknown piece of a SentencePiece model. */
bool al_tokenizer_is_special(const struct al_tokenizer *tokenizer, int32_t id);

#ifdef __cplusplus
}
#endif

#endif
