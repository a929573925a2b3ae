/* The tokenizer front: loading a model folder, tokenizer_config.json, and the steps both
 * kinds share: added tokens are split off first, the text between them goes to the BPE
 * or SentencePiece model, and the template's special tokens are added around it. */
#include "tokenizer/tokenizer_internal.h"

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "tokenizer/sentencepiece_wrapper.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Tokens that end a turn in the chat formats this engine trains (Llama 3, ChatML,
 * Llama 2 / Mistral), looked up by name when the vocabulary has them. */
static const char *const END_OF_TURN_NAMES[] = {
    "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "</s>",
};

/* ---- small shared helpers ---- */

int al_tokens_push(struct al_tokens *tokens, int32_t id, size_t offset)
{
    if (tokens->count == tokens->capacity) {
        size_t capacity = tokens->capacity ? 2 * tokens->capacity : 256;
        int32_t *ids = realloc(tokens->ids, capacity * sizeof *ids);
        if (!ids)
            return al_fail("out of memory for %zu tokens", capacity);
        tokens->ids = ids;
        size_t *offsets = realloc(tokens->offsets, capacity * sizeof *offsets);
        if (!offsets)
            return al_fail("out of memory for %zu tokens", capacity);
        tokens->offsets = offsets;
        tokens->capacity = capacity;
    }
    tokens->ids[tokens->count] = id;
    tokens->offsets[tokens->count++] = offset;
    return 0;
}

void al_tokens_free(struct al_tokens *tokens)
{
    free(tokens->ids);
    free(tokens->offsets);
    memset(tokens, 0, sizeof *tokens);
}

/* Keeps room for `extra` bytes and a terminating NUL. */
int al_buffer_reserve(char **buffer, size_t length, size_t *capacity, size_t extra)
{
    if (length + extra + 1 <= *capacity)
        return 0;
    size_t bigger = *capacity ? *capacity : 64;
    while (bigger < length + extra + 1)
        bigger *= 2;
    char *grown = realloc(*buffer, bigger);
    if (!grown)
        return al_fail("out of memory for %zu bytes of text", bigger);
    *buffer = grown;
    *capacity = bigger;
    return 0;
}

static struct al_tokenizer *tokenizer_new(enum al_tokenizer_kind kind, const char *path)
{
    struct al_tokenizer *tokenizer = calloc(1, sizeof *tokenizer);
    if (!tokenizer || !(tokenizer->source_path = strdup(path))) {
        free(tokenizer);
        return al_fail_null("out of memory loading %s", path);
    }
    tokenizer->kind = kind;
    tokenizer->bos_id = tokenizer->eos_id = tokenizer->pad_id = tokenizer->unk_id = -1;
    return tokenizer;
}

/* ---- loading ---- */

struct al_tokenizer *al_tokenizer_load_json(const char *tokenizer_json_path)
{
    struct al_tokenizer *tokenizer = tokenizer_new(AL_TOKENIZER_BYTE_LEVEL_BPE, tokenizer_json_path);
    if (!tokenizer)
        return NULL;
    tokenizer->bpe = al_bpe_load(tokenizer_json_path, &tokenizer->added);
    if (!tokenizer->bpe || al_added_tokens_index(&tokenizer->added) != 0) {
        al_tokenizer_free(tokenizer);
        return NULL;
    }
    const int32_t *prefix, *suffix;
    size_t prefix_count, suffix_count;
    al_bpe_template(tokenizer->bpe, &prefix, &prefix_count, &suffix, &suffix_count);
    if (prefix_count > 0) /* without tokenizer_config.json, the template's first token is BOS */
        tokenizer->bos_id = prefix[0];
    return tokenizer;
}

static int32_t id_or_none(int id)
{
    return id >= 0 ? id : -1;
}

/* Control pieces (<s>, </s>, [INST], ...) and the unknown piece are what Hugging Face
 * lists as special tokens of a SentencePiece model; they are matched in the text. */
static int add_spm_special_pieces(struct al_tokenizer *tokenizer)
{
    int32_t size = al_spm_vocab_size(tokenizer->spm);
    for (int32_t id = 0; id < size; id++) {
        if (!al_spm_is_control(tokenizer->spm, id) && !al_spm_is_unknown(tokenizer->spm, id))
            continue;
        const char *piece = al_spm_id_to_piece(tokenizer->spm, id);
        struct al_added_token token = {
            .content = (char *)piece, .length = strlen(piece), .id = id, .special = true};
        if (al_added_tokens_add(&tokenizer->added, &token) != 0)
            return -1;
    }
    return al_added_tokens_index(&tokenizer->added);
}

struct al_tokenizer *al_tokenizer_load_sentencepiece(const char *model_path)
{
    struct al_tokenizer *tokenizer = tokenizer_new(AL_TOKENIZER_SENTENCEPIECE, model_path);
    if (!tokenizer)
        return NULL;
    tokenizer->spm = al_spm_load(model_path);
    if (!tokenizer->spm || add_spm_special_pieces(tokenizer) != 0) {
        al_tokenizer_free(tokenizer);
        return NULL;
    }
    tokenizer->bos_id = id_or_none(al_spm_bos_id(tokenizer->spm));
    tokenizer->eos_id = id_or_none(al_spm_eos_id(tokenizer->spm));
    tokenizer->unk_id = id_or_none(al_spm_unk_id(tokenizer->spm));
    tokenizer->pad_id = id_or_none(al_spm_pad_id(tokenizer->spm));
    /* Llama 2 and Mistral tokenizers add BOS and not EOS unless their config says so. */
    tokenizer->add_bos = tokenizer->bos_id >= 0;
    tokenizer->add_eos = false;
    return tokenizer;
}

/* ---- tokenizer_config.json ---- */

/* A special-token entry is a string, {"content": "..."} or null. */
static const char *config_token_text(const cJSON *entry)
{
    if (cJSON_IsString(entry))
        return entry->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(entry, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

static int set_special_from_config(struct al_tokenizer *tokenizer, const cJSON *config, const char *key,
                                   int32_t *id, const char *config_path)
{
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(config, key);
    if (!entry)
        return 0;
    if (cJSON_IsNull(entry)) {
        *id = -1;
        return 0;
    }
    const char *text = config_token_text(entry);
    if (!text)
        return al_fail("%s: %s is neither a string nor {\"content\": ...}", config_path, key);
    int32_t found = al_tokenizer_piece_to_id(tokenizer, text);
    if (found < 0)
        return al_fail("%s: %s \"%s\" is not in the tokenizer's vocabulary", config_path, key, text);
    *id = found;
    return 0;
}

static int add_config_added_tokens(struct al_tokenizer *tokenizer, const cJSON *decoder, const char *config_path)
{
    const cJSON *entry;
    cJSON_ArrayForEach(entry, decoder) {
        char *end = NULL;
        long id = strtol(entry->string, &end, 10);
        const char *content = config_token_text(entry);
        if (!end || *end != '\0' || id < 0 || !content)
            return al_fail("%s: added_tokens_decoder entry \"%s\" is not an id with a content", config_path,
                           entry->string);
        if (id >= al_tokenizer_vocab_size(tokenizer))
            return al_fail("%s: added token \"%s\" has id %ld beyond the vocabulary (%d)", config_path, content,
                           id, al_tokenizer_vocab_size(tokenizer));
        struct al_added_token token = {
            .content = (char *)content,
            .length = strlen(content),
            .id = (int32_t)id,
            .special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "special")),
            .lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "lstrip")),
            .rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "rstrip")),
            .single_word = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "single_word")),
        };
        if (al_added_tokens_add(&tokenizer->added, &token) != 0)
            return -1;
    }
    return al_added_tokens_index(&tokenizer->added);
}

static int apply_config_document(struct al_tokenizer *tokenizer, const cJSON *config, const char *config_path)
{
    if (!cJSON_IsObject(config))
        return al_fail("%s: not a JSON object", config_path);
    /* tokenizer.json lists its added tokens itself; a SentencePiece model may get more here. */
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder");
    if (tokenizer->kind == AL_TOKENIZER_SENTENCEPIECE && cJSON_IsObject(decoder) &&
        add_config_added_tokens(tokenizer, decoder, config_path) != 0)
        return -1;
    if (set_special_from_config(tokenizer, config, "bos_token", &tokenizer->bos_id, config_path) != 0 ||
        set_special_from_config(tokenizer, config, "eos_token", &tokenizer->eos_id, config_path) != 0 ||
        set_special_from_config(tokenizer, config, "pad_token", &tokenizer->pad_id, config_path) != 0 ||
        set_special_from_config(tokenizer, config, "unk_token", &tokenizer->unk_id, config_path) != 0)
        return -1;
    /* add_bos_token / add_eos_token steer SentencePiece; a tokenizer.json's own template
     * decides for byte-level BPE (Qwen2.5 says false and its template adds nothing). */
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *add_eos = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (cJSON_IsBool(add_bos))
        tokenizer->add_bos = cJSON_IsTrue(add_bos) && tokenizer->bos_id >= 0;
    if (cJSON_IsBool(add_eos))
        tokenizer->add_eos = cJSON_IsTrue(add_eos) && tokenizer->eos_id >= 0;
    return 0;
}

int al_tokenizer_apply_config(struct al_tokenizer *tokenizer, const char *config_path)
{
    cJSON *config = al_json_load_file(config_path);
    if (!config)
        return -1;
    int status = apply_config_document(tokenizer, config, config_path);
    cJSON_Delete(config);
    return status;
}

/* The largest id the tokenizer can hand out: its vocabulary and its added tokens. */
static int32_t highest_id(const struct al_tokenizer *tokenizer)
{
    int32_t highest = al_tokenizer_vocab_size(tokenizer) - 1;
    for (size_t i = 0; i < tokenizer->added.count; i++)
        if (tokenizer->added.items[i].id > highest)
            highest = tokenizer->added.items[i].id;
    return highest;
}

int al_tokenizer_check_model_vocab(const struct al_tokenizer *tokenizer, int64_t model_vocab_size,
                                   const char *model_name)
{
    int32_t highest = highest_id(tokenizer);
    if (highest < model_vocab_size)
        return 0;
    return al_fail("%s: the tokenizer has ids up to %ld, but the model %s has vocab_size %lld: ids from %lld on "
                   "have no embedding (is this the model's own tokenizer?)",
                   tokenizer->source_path, (long)highest, model_name, (long long)model_vocab_size,
                   (long long)model_vocab_size);
}

/* A model folder's tokenizer must fit the folder's model: an id past vocab_size would
 * fail only inside training, after a checkpoint, naming neither file. */
static int check_against_config(const struct al_tokenizer *tokenizer, const char *model_dir)
{
    char *config_path = al_path_join(model_dir, "config.json");
    if (!config_path)
        return al_fail("out of memory");
    int rc = 0;
    if (al_file_exists(config_path)) {
        cJSON *config = al_json_load_file(config_path);
        const cJSON *vocab = config ? cJSON_GetObjectItemCaseSensitive(config, "vocab_size") : NULL;
        if (!config)
            rc = -1;
        else if (cJSON_IsNumber(vocab) && vocab->valuedouble >= 1)
            rc = al_tokenizer_check_model_vocab(tokenizer, (int64_t)vocab->valuedouble, config_path);
        cJSON_Delete(config);
    }
    free(config_path);
    return rc;
}

struct al_tokenizer *al_tokenizer_load(const char *model_dir)
{
    char *json_path = al_path_join(model_dir, "tokenizer.json");
    char *model_path = al_path_join(model_dir, "tokenizer.model");
    char *config_path = al_path_join(model_dir, "tokenizer_config.json");
    struct al_tokenizer *tokenizer = NULL;
    if (!json_path || !model_path || !config_path)
        al_fail("out of memory loading the tokenizer of %s", model_dir);
    else if (al_file_exists(json_path))
        tokenizer = al_tokenizer_load_json(json_path);
    else if (al_file_exists(model_path))
        tokenizer = al_tokenizer_load_sentencepiece(model_path);
    else
        al_fail("%s: no tokenizer.json or tokenizer.model", model_dir);
    if (tokenizer && ((al_file_exists(config_path) && al_tokenizer_apply_config(tokenizer, config_path) != 0) ||
                      check_against_config(tokenizer, model_dir) != 0)) {
        al_tokenizer_free(tokenizer);
        tokenizer = NULL;
    }
    free(json_path);
    free(model_path);
    free(config_path);
    return tokenizer;
}

void al_tokenizer_free(struct al_tokenizer *tokenizer)
{
    if (!tokenizer)
        return;
    al_bpe_free(tokenizer->bpe);
    if (tokenizer->spm)
        al_spm_free(tokenizer->spm);
    al_added_tokens_free(&tokenizer->added);
    free(tokenizer->source_path);
    free(tokenizer);
}

enum al_tokenizer_kind al_tokenizer_kind(const struct al_tokenizer *tokenizer)
{
    return tokenizer->kind;
}

/* ---- encoding ---- */

struct encode_run {
    const struct al_tokenizer *tokenizer;
    const char *text;
    struct al_tokens *out;
};

static int encode_plain_text(void *context, size_t start, size_t end)
{
    struct encode_run *run = context;
    if (run->tokenizer->kind == AL_TOKENIZER_BYTE_LEVEL_BPE)
        return al_bpe_encode_segment(run->tokenizer->bpe, run->text, start, end, run->out);
    /* Only text at the very start gets SentencePiece's dummy prefix; text after a special
     * token does not (Hugging Face's prepend_scheme "first", mistral-common). */
    return al_spm_encode(run->tokenizer->spm, run->text, start, end, start == 0, run->out);
}

static int encode_added_token(void *context, const struct al_added_token *token, size_t start)
{
    struct encode_run *run = context;
    return al_tokens_push(run->out, token->id, start);
}

static int push_ids(struct al_tokens *out, const int32_t *ids, size_t count, size_t offset)
{
    for (size_t i = 0; i < count; i++)
        if (al_tokens_push(out, ids[i], offset) != 0)
            return -1;
    return 0;
}

static int add_special_prefix(const struct al_tokenizer *tokenizer, struct al_tokens *out)
{
    if (tokenizer->kind == AL_TOKENIZER_SENTENCEPIECE)
        return tokenizer->add_bos ? al_tokens_push(out, tokenizer->bos_id, 0) : 0;
    const int32_t *prefix, *suffix;
    size_t prefix_count, suffix_count;
    al_bpe_template(tokenizer->bpe, &prefix, &prefix_count, &suffix, &suffix_count);
    return push_ids(out, prefix, prefix_count, 0);
}

static int add_special_suffix(const struct al_tokenizer *tokenizer, size_t length, struct al_tokens *out)
{
    if (tokenizer->kind == AL_TOKENIZER_SENTENCEPIECE)
        return tokenizer->add_eos ? al_tokens_push(out, tokenizer->eos_id, length) : 0;
    const int32_t *prefix, *suffix;
    size_t prefix_count, suffix_count;
    al_bpe_template(tokenizer->bpe, &prefix, &prefix_count, &suffix, &suffix_count);
    return push_ids(out, suffix, suffix_count, length);
}

int al_tokenizer_encode(const struct al_tokenizer *tokenizer, const char *text, size_t length,
                        unsigned flags, struct al_tokens *out)
{
    size_t invalid = al_utf8_invalid_offset(text, length);
    if (invalid != length)
        return al_fail("%s: text is not valid UTF-8 at byte %zu", tokenizer->source_path, invalid);
    bool add_special = (flags & AL_TOKENIZE_ADD_SPECIAL) != 0;
    if (add_special && add_special_prefix(tokenizer, out) != 0)
        return -1;
    struct encode_run run = {.tokenizer = tokenizer, .text = text, .out = out};
    struct al_added_split_callbacks callbacks = {
        .on_text = encode_plain_text, .on_token = encode_added_token, .context = &run};
    if (al_added_tokens_split(&tokenizer->added, text, length, (flags & AL_TOKENIZE_PARSE_SPECIAL) != 0,
                              &callbacks) != 0)
        return -1;
    if (add_special && add_special_suffix(tokenizer, length, out) != 0)
        return -1;
    return 0;
}

/* ---- decoding ---- */

struct decoded_text {
    char *bytes;
    size_t length, capacity;
};

static int append_bytes(struct decoded_text *text, const char *bytes, size_t length)
{
    if (al_buffer_reserve(&text->bytes, text->length, &text->capacity, length) != 0)
        return -1;
    memcpy(text->bytes + text->length, bytes, length);
    text->length += length;
    return 0;
}

/* Decodes ids[0, count) that hold no added token. */
static int decode_model_run(const struct al_tokenizer *tokenizer, const int32_t *ids, size_t count,
                            bool at_start, struct decoded_text *text)
{
    if (tokenizer->kind == AL_TOKENIZER_BYTE_LEVEL_BPE) {
        for (size_t i = 0; i < count; i++)
            if (al_bpe_decode_id(tokenizer->bpe, ids[i], &text->bytes, &text->length, &text->capacity) != 0)
                return -1;
        return 0;
    }
    size_t length = 0;
    char *decoded = al_spm_decode(tokenizer->spm, ids, count, at_start, &length);
    if (!decoded)
        return -1;
    int status = append_bytes(text, decoded, length);
    free(decoded);
    return status;
}

char *al_tokenizer_decode(const struct al_tokenizer *tokenizer, const int32_t *ids, size_t count,
                          bool skip_special, size_t *length)
{
    struct decoded_text text = {0};
    if (al_buffer_reserve(&text.bytes, 0, &text.capacity, 0) != 0)
        return NULL;
    bool emitted_anything = false;
    size_t i = 0;
    while (i < count) {
        const struct al_added_token *added = al_added_tokens_find_id(&tokenizer->added, ids[i]);
        if (added) {
            if (!(skip_special && added->special)) {
                if (append_bytes(&text, added->content, added->length) != 0)
                    goto fail;
                emitted_anything = true;
            }
            i++;
            continue;
        }
        size_t run_end = i;
        while (run_end < count && !al_added_tokens_find_id(&tokenizer->added, ids[run_end]))
            run_end++;
        if (decode_model_run(tokenizer, ids + i, run_end - i, !emitted_anything, &text) != 0)
            goto fail;
        emitted_anything = true;
        i = run_end;
    }
    text.bytes[text.length] = '\0';
    if (length)
        *length = text.length;
    return text.bytes;
fail:
    free(text.bytes);
    return NULL;
}

/* ---- lookups ---- */

int32_t al_tokenizer_vocab_size(const struct al_tokenizer *tokenizer)
{
    return tokenizer->kind == AL_TOKENIZER_BYTE_LEVEL_BPE ? al_bpe_vocab_size(tokenizer->bpe)
                                                          : al_spm_vocab_size(tokenizer->spm);
}

const char *al_tokenizer_id_to_piece(const struct al_tokenizer *tokenizer, int32_t id)
{
    if (tokenizer->kind == AL_TOKENIZER_BYTE_LEVEL_BPE)
        return al_bpe_id_to_piece(tokenizer->bpe, id);
    const struct al_added_token *added = al_added_tokens_find_id(&tokenizer->added, id);
    return added ? added->content : al_spm_id_to_piece(tokenizer->spm, id);
}

int32_t al_tokenizer_piece_to_id(const struct al_tokenizer *tokenizer, const char *piece)
{
    size_t length = strlen(piece);
    int32_t item = al_string_map_get(&tokenizer->added.by_content, piece, length);
    if (item >= 0)
        return tokenizer->added.items[item].id;
    return tokenizer->kind == AL_TOKENIZER_BYTE_LEVEL_BPE ? al_bpe_piece_to_id(tokenizer->bpe, piece, length)
                                                          : al_spm_piece_to_id(tokenizer->spm, piece, length);
}

int32_t al_tokenizer_bos_id(const struct al_tokenizer *tokenizer) { return tokenizer->bos_id; }
int32_t al_tokenizer_eos_id(const struct al_tokenizer *tokenizer) { return tokenizer->eos_id; }
int32_t al_tokenizer_pad_id(const struct al_tokenizer *tokenizer) { return tokenizer->pad_id; }
int32_t al_tokenizer_unk_id(const struct al_tokenizer *tokenizer) { return tokenizer->unk_id; }

static int push_unique(int32_t *ids, int count, int capacity, int32_t id)
{
    if (id < 0 || count >= capacity)
        return count;
    for (int i = 0; i < count; i++)
        if (ids[i] == id)
            return count;
    ids[count] = id;
    return count + 1;
}

int al_tokenizer_end_of_turn_ids(const struct al_tokenizer *tokenizer, int32_t *ids, int capacity)
{
    int count = push_unique(ids, 0, capacity, tokenizer->eos_id);
    for (size_t i = 0; i < sizeof END_OF_TURN_NAMES / sizeof END_OF_TURN_NAMES[0]; i++)
        count = push_unique(ids, count, capacity, al_tokenizer_piece_to_id(tokenizer, END_OF_TURN_NAMES[i]));
    return count;
}

bool al_tokenizer_is_special(const struct al_tokenizer *tokenizer, int32_t id)
{
    const struct al_added_token *added = al_added_tokens_find_id(&tokenizer->added, id);
    return added && added->special;
}
