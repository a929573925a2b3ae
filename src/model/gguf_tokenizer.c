/* A GGUF's tokenizer as Hugging Face files: tokenizer.json (byte-level BPE from
 * tokenizer.ggml.tokens / merges / token_type) and tokenizer_config.json (special tokens,
 * chat template). Only gpt2-style BPE (tokenizer.ggml.model "gpt2") can be expressed;
 * SentencePiece ("llama") GGUFs are refused. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/gguf.h"
#include "tokenizer/tokenizer_internal.h"

/* llama.cpp's token types (llama_token_type): control tokens are Hugging Face's special
 * added tokens, user-defined ones its non-special added tokens. */
enum { TOKEN_TYPE_NORMAL = 1, TOKEN_TYPE_CONTROL = 3, TOKEN_TYPE_USER_DEFINED = 4 };

/* Pre-tokenizer regexes (facts of the released tokenizers these GGUF pre names stand
 * for; llama.cpp's llama-vocab.cpp maps the same names to the same patterns). */
static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static cJSON *byte_level(bool use_regex)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", false);
    cJSON_AddBoolToObject(b, "trim_offsets", false);
    cJSON_AddBoolToObject(b, "use_regex", use_regex);
    return b;
}

static cJSON *sequence_of(cJSON *first, cJSON *second)
{
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(seq, "pretokenizers");
    cJSON_AddItemToArray(list, first);
    cJSON_AddItemToArray(list, second);
    return seq;
}

static cJSON *split_on(const char *pattern)
{
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *p = cJSON_AddObjectToObject(split, "pattern");
    cJSON_AddStringToObject(p, "Regex", pattern);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", false);
    return split;
}

/* The pre-tokenizer a tokenizer.ggml.pre name stands for, or NULL with an error. */
static cJSON *pre_tokenizer_for(const char *pre, const char *path)
{
    if (!pre || strcmp(pre, "default") == 0 || strcmp(pre, "gpt2") == 0 || strcmp(pre, "gpt-2") == 0)
        return byte_level(true); /* GPT-2's own pattern */
    if (strcmp(pre, "smollm") == 0) { /* SmolLM: single digits, then GPT-2's pattern */
        cJSON *digits = cJSON_CreateObject();
        cJSON_AddStringToObject(digits, "type", "Digits");
        cJSON_AddBoolToObject(digits, "individual_digits", true);
        return sequence_of(digits, byte_level(true));
    }
    if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0 || strcmp(pre, "llama-v3") == 0)
        return sequence_of(split_on(LLAMA3_PATTERN), byte_level(false));
    if (strcmp(pre, "qwen2") == 0)
        return sequence_of(split_on(QWEN2_PATTERN), byte_level(false));
    return al_fail_null("%s: tokenizer.ggml.pre \"%s\" has no known Hugging Face pre-tokenizer (known: default, "
                        "gpt2, smollm, llama-bpe, qwen2)", path, pre);
}

struct gguf_vocab {
    const struct al_gguf_value *tokens;
    const struct al_gguf_value *types;  /* NULL when absent: all normal */
    const struct al_gguf_value *merges;
    const char *pre;
};

/* GGUF strings are UTF-8, and tokenizer.json must be: a token with a stray byte (a
 * flipped bit) would be written into a file that Python's json refuses to read. */
static int check_utf8_strings(const struct al_gguf *g, const struct al_gguf_value *array, const char *key)
{
    for (uint64_t k = 0; k < array->count; k++) {
        size_t length = strlen(array->strings[k]);
        size_t invalid = al_utf8_invalid_offset(array->strings[k], length);
        if (invalid != length)
            return al_fail("%s: %s[%" PRIu64 "] is not valid UTF-8 (at byte %zu)", al_gguf_path(g), key, k,
                           invalid);
    }
    return 0;
}

static int read_vocab(const struct al_gguf *g, struct gguf_vocab *v)
{
    const char *model;
    if (al_gguf_get_string(g, "tokenizer.ggml.model", &model) < 0)
        return -1;
    if (strcmp(model, "gpt2") != 0)
        return al_fail("%s: tokenizer.ggml.model is \"%s\"; only byte-level BPE (\"gpt2\") tokenizers can be "
                       "converted", al_gguf_path(g), model);
    if (al_gguf_get_array(g, "tokenizer.ggml.tokens", AL_GGUF_STRING, &v->tokens) < 0 ||
        al_gguf_get_array(g, "tokenizer.ggml.merges", AL_GGUF_STRING, &v->merges) < 0 ||
        check_utf8_strings(g, v->tokens, "tokenizer.ggml.tokens") < 0 ||
        check_utf8_strings(g, v->merges, "tokenizer.ggml.merges") < 0)
        return -1;
    v->types = NULL;
    if (al_gguf_find(g, "tokenizer.ggml.token_type")) {
        if (al_gguf_get_array(g, "tokenizer.ggml.token_type", AL_GGUF_INT32, &v->types) < 0)
            return -1;
        if (v->types->count != v->tokens->count)
            return al_fail("%s: tokenizer.ggml.token_type has %" PRIu64 " entries for %" PRIu64 " tokens",
                           al_gguf_path(g), v->types->count, v->tokens->count);
    }
    v->pre = NULL;
    const struct al_gguf_value *pre = al_gguf_find(g, "tokenizer.ggml.pre");
    if (pre && pre->type == AL_GGUF_STRING)
        v->pre = pre->str;
    return 0;
}

static int token_type(const struct gguf_vocab *v, uint64_t id)
{
    return v->types ? (int)al_gguf_array_int(v->types, id) : TOKEN_TYPE_NORMAL;
}

static bool is_added(int type)
{
    return type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED;
}

static cJSON *added_token(uint64_t id, const char *content, bool special, bool with_id)
{
    cJSON *t = cJSON_CreateObject();
    if (with_id)
        cJSON_AddNumberToObject(t, "id", (double)id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", false);
    cJSON_AddBoolToObject(t, "lstrip", false);
    cJSON_AddBoolToObject(t, "rstrip", false);
    cJSON_AddBoolToObject(t, "normalized", false);
    cJSON_AddBoolToObject(t, "special", special);
    return t;
}

/* merges: "a b" strings in the GGUF, ["a", "b"] pairs in the file (tokens may hold
 * spaces only as Ġ in byte-level BPE, so the one space splits unambiguously). */
static cJSON *merges_json(const struct al_gguf *g, const struct gguf_vocab *v)
{
    cJSON *merges = cJSON_CreateArray();
    for (uint64_t k = 0; merges && k < v->merges->count; k++) {
        const char *m = v->merges->strings[k];
        const char *space = strchr(m, ' ');
        if (!space || space == m || !space[1] || strchr(space + 1, ' ')) {
            cJSON_Delete(merges);
            return al_fail_null("%s: tokenizer.ggml.merges[%" PRIu64 "] \"%s\" is not two tokens separated by one "
                                "space", al_gguf_path(g), k, m);
        }
        char *left = strndup(m, (size_t)(space - m));
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(left));
        cJSON_AddItemToArray(pair, cJSON_CreateString(space + 1));
        cJSON_AddItemToArray(merges, pair);
        free(left);
    }
    return merges;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A vocabulary maps each text to one id: a token listed twice cannot be written. */
static int check_unique_tokens(const struct al_gguf *g, const struct gguf_vocab *v)
{
    size_t n = (size_t)v->tokens->count;
    const char **sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return al_fail("%s: out of memory", al_gguf_path(g));
    memcpy(sorted, v->tokens->strings, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_strings);
    int rc = 0;
    for (size_t k = 1; k < n && rc == 0; k++)
        if (strcmp(sorted[k - 1], sorted[k]) == 0)
            rc = al_fail("%s: tokenizer.ggml.tokens holds \"%s\" twice", al_gguf_path(g), sorted[k]);
    free(sorted);
    return rc;
}

/* Hugging Face's post-processor: ByteLevel, or a template that prepends bos when the
 * GGUF says tokenizer.ggml.add_bos_token. */
static cJSON *post_processor(const struct al_gguf *g, const struct gguf_vocab *v)
{
    const struct al_gguf_value *add_bos = al_gguf_find(g, "tokenizer.ggml.add_bos_token");
    int64_t bos;
    if (!add_bos || add_bos->type != AL_GGUF_BOOL || !add_bos->u ||
        al_gguf_get_int_or(g, "tokenizer.ggml.bos_token_id", -1, &bos) < 0 || bos < 0 ||
        (uint64_t)bos >= v->tokens->count)
        return byte_level(false);
    const char *text = v->tokens->strings[bos];
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(t, "single");
    cJSON *special = cJSON_CreateObject(), *sequence = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(special, "SpecialToken");
    cJSON_AddStringToObject(s, "id", text);
    cJSON_AddNumberToObject(s, "type_id", 0);
    cJSON *q = cJSON_AddObjectToObject(sequence, "Sequence");
    cJSON_AddStringToObject(q, "id", "A");
    cJSON_AddNumberToObject(q, "type_id", 0);
    cJSON_AddItemToArray(single, special);
    cJSON_AddItemToArray(single, sequence);
    cJSON *pair = cJSON_Duplicate(single, true), *second = cJSON_CreateObject();
    cJSON *b = cJSON_AddObjectToObject(second, "Sequence");
    cJSON_AddStringToObject(b, "id", "B");
    cJSON_AddNumberToObject(b, "type_id", 1);
    cJSON_AddItemToArray(pair, second);
    cJSON_AddItemToObject(t, "pair", pair);
    cJSON *tokens = cJSON_AddObjectToObject(t, "special_tokens");
    cJSON *entry = cJSON_AddObjectToObject(tokens, text);
    cJSON_AddStringToObject(entry, "id", text);
    cJSON *ids = cJSON_AddArrayToObject(entry, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)bos));
    cJSON *texts = cJSON_AddArrayToObject(entry, "tokens");
    cJSON_AddItemToArray(texts, cJSON_CreateString(text));
    return t;
}

static cJSON *tokenizer_json(const struct al_gguf *g, const struct gguf_vocab *v)
{
    if (check_unique_tokens(g, v) < 0)
        return NULL;
    cJSON *pre = pre_tokenizer_for(v->pre, al_gguf_path(g));
    if (!pre)
        return NULL;
    cJSON *merges = merges_json(g, v);
    if (!merges) {
        cJSON_Delete(pre);
        return NULL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (uint64_t id = 0; id < v->tokens->count; id++) {
        int type = token_type(v, id);
        if (is_added(type))
            cJSON_AddItemToArray(added, added_token(id, v->tokens->strings[id], type == TOKEN_TYPE_CONTROL, true));
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddItemToObject(root, "post_processor", post_processor(g, v));
    cJSON_AddItemToObject(root, "decoder", byte_level(false));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (uint64_t id = 0; id < v->tokens->count; id++)
        cJSON_AddNumberToObject(vocab, v->tokens->strings[id], (double)id);
    cJSON_AddItemToObject(model, "merges", merges);
    return root;
}

/* The text of a special token id from tokenizer.ggml.<key>, or NULL when absent. */
static const char *special_token(const struct al_gguf *g, const struct gguf_vocab *v, const char *key)
{
    int64_t id;
    if (al_gguf_get_int_or(g, key, -1, &id) < 0 || id < 0 || (uint64_t)id >= v->tokens->count)
        return NULL;
    return v->tokens->strings[id];
}

static void add_token_or_null(cJSON *object, const char *name, const char *token)
{
    if (token)
        cJSON_AddStringToObject(object, name, token);
    else
        cJSON_AddNullToObject(object, name);
}

static cJSON *tokenizer_config_json(const struct al_gguf *g, const struct gguf_vocab *v)
{
    cJSON *root = cJSON_CreateObject();
    const struct al_gguf_value *add_bos = al_gguf_find(g, "tokenizer.ggml.add_bos_token");
    cJSON_AddBoolToObject(root, "add_bos_token", add_bos && add_bos->type == AL_GGUF_BOOL && add_bos->u);
    cJSON_AddBoolToObject(root, "add_eos_token", false);
    cJSON_AddBoolToObject(root, "add_prefix_space", false);
    cJSON *decoder = cJSON_AddObjectToObject(root, "added_tokens_decoder");
    for (uint64_t id = 0; id < v->tokens->count; id++) {
        int type = token_type(v, id);
        if (is_added(type)) {
            char key[32];
            snprintf(key, sizeof key, "%" PRIu64, id);
            cJSON_AddItemToObject(decoder, key, added_token(id, v->tokens->strings[id], type == TOKEN_TYPE_CONTROL,
                                                            false));
        }
    }
    add_token_or_null(root, "bos_token", special_token(g, v, "tokenizer.ggml.bos_token_id"));
    add_token_or_null(root, "eos_token", special_token(g, v, "tokenizer.ggml.eos_token_id"));
    add_token_or_null(root, "pad_token", special_token(g, v, "tokenizer.ggml.padding_token_id"));
    add_token_or_null(root, "unk_token", special_token(g, v, "tokenizer.ggml.unknown_token_id"));
    const struct al_gguf_value *template = al_gguf_find(g, "tokenizer.chat_template");
    if (template && template->type == AL_GGUF_STRING)
        cJSON_AddStringToObject(root, "chat_template", template->str);
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", false);
    int64_t context;
    if (al_gguf_get_int_or(g, "llama.context_length", 0, &context) == 0 && context > 0)
        cJSON_AddNumberToObject(root, "model_max_length", (double)context);
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    return root;
}

static int write_json(cJSON *json, const char *dir, const char *name)
{
    char *path = al_path_join(dir, name);
    char *text = cJSON_Print(json);
    int rc = path && text ? al_file_write_atomic(path, text, strlen(text)) : al_fail("%s: out of memory", name);
    free(text);
    free(path);
    return rc;
}

int al_gguf_write_tokenizer(const struct al_gguf *g, const char *out_dir)
{
    struct gguf_vocab v;
    if (read_vocab(g, &v) < 0)
        return -1;
    cJSON *tokenizer = tokenizer_json(g, &v);
    if (!tokenizer)
        return -1;
    cJSON *config = tokenizer_config_json(g, &v);
    int rc = write_json(tokenizer, out_dir, "tokenizer.json");
    if (rc == 0)
        rc = write_json(config, out_dir, "tokenizer_config.json");
    cJSON_Delete(tokenizer);
    cJSON_Delete(config);
    return rc;
}
