/* Loading a byte-level BPE tokenizer.json: the model (vocab, merges, ignore_merges), the
 * added tokens, the normaliser (none or NFC), the pre-tokeniser (Split regexes and
 * ByteLevel) and the post-processor's template. Anything this engine would not
 * reproduce exactly is refused with a message that names the file and the setting. */
#include "tokenizer/bpe_internal.h"

#include "agentlora/error.h"
#include "agentlora/file.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Real vocabularies stay below 300k ids; a larger id means a broken or hostile file,
 * and would make the id-indexed tables enormous. */
#define MAX_VOCAB_SIZE (1 << 24)

/* ByteLevel(use_regex=true) splits with GPT-2's pattern (as Hugging Face's ByteLevel). */
static const char GPT2_SPLIT_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *json_type_name(const cJSON *node)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

static bool json_true(const cJSON *object, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(object, key));
}

static bool json_empty_or_null(const cJSON *object, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    return !item || cJSON_IsNull(item) || (cJSON_IsString(item) && item->valuestring[0] == '\0');
}

/* ---- vocabulary ---- */

static int set_piece(struct al_bpe *bpe, int32_t id, const char *piece, size_t length, bool byte_level)
{
    if (id < 0 || id >= bpe->vocab_size)
        return al_fail("%s: token id %d out of range", bpe->path, id);
    if (bpe->piece_of_id[id])
        return 0; /* an added token that repeats a vocabulary entry keeps the entry */
    char *copy = malloc(length + 1);
    char *raw = malloc(length + 1);
    if (!copy || !raw) {
        free(copy);
        free(raw);
        return al_fail("out of memory loading %s", bpe->path);
    }
    memcpy(copy, piece, length);
    copy[length] = '\0';
    long raw_length = byte_level ? al_byte_unicode_to_raw(&bpe->byte_map, piece, length, raw) : -1;
    bool is_byte_level_string = raw_length >= 0;
    if (!is_byte_level_string) { /* not a byte-level string: stands for its own UTF-8 bytes */
        memcpy(raw, piece, length);
        raw_length = (long)length;
    }
    raw[raw_length] = '\0';
    bpe->piece_of_id[id] = copy;
    bpe->raw_of_id[id] = raw;
    bpe->raw_length_of_id[id] = (uint32_t)raw_length;
    if (al_string_map_put(&bpe->piece_to_id, copy, length, id) != 0)
        return -1;
    if (is_byte_level_string && al_string_map_put(&bpe->raw_to_id, raw, (size_t)raw_length, id) != 0)
        return -1;
    return 0;
}

static double largest_id(const cJSON *vocab, const cJSON *added_tokens)
{
    double largest = -1;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, vocab)
        if (cJSON_IsNumber(entry) && entry->valuedouble > largest)
            largest = entry->valuedouble;
    cJSON_ArrayForEach(entry, added_tokens) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > largest)
            largest = id->valuedouble;
    }
    return largest;
}

static int load_vocab(struct al_bpe *bpe, const cJSON *vocab, const cJSON *added_tokens)
{
    if (!cJSON_IsObject(vocab))
        return al_fail("%s: model.vocab is not an object", bpe->path);
    double largest = largest_id(vocab, added_tokens);
    if (largest < 0)
        return al_fail("%s: model.vocab is empty", bpe->path);
    if (largest >= MAX_VOCAB_SIZE)
        return al_fail("%s: token id %.0f is beyond the supported vocabulary size %d", bpe->path, largest,
                       MAX_VOCAB_SIZE);
    bpe->vocab_size = (int32_t)largest + 1;
    bpe->piece_of_id = calloc((size_t)bpe->vocab_size, sizeof *bpe->piece_of_id);
    bpe->raw_of_id = calloc((size_t)bpe->vocab_size, sizeof *bpe->raw_of_id);
    bpe->raw_length_of_id = calloc((size_t)bpe->vocab_size, sizeof *bpe->raw_length_of_id);
    if (!bpe->piece_of_id || !bpe->raw_of_id || !bpe->raw_length_of_id ||
        al_string_map_init(&bpe->piece_to_id, (size_t)bpe->vocab_size) != 0 ||
        al_string_map_init(&bpe->raw_to_id, (size_t)bpe->vocab_size) != 0)
        return al_fail("out of memory loading %s", bpe->path);

    const cJSON *entry;
    cJSON_ArrayForEach(entry, vocab) {
        if (!cJSON_IsNumber(entry) || entry->valuedouble < 0)
            return al_fail("%s: model.vocab[\"%s\"] is not a token id", bpe->path, entry->string);
        if (set_piece(bpe, (int32_t)entry->valuedouble, entry->string, strlen(entry->string), true) != 0)
            return -1;
    }
    for (int byte = 0; byte < 256; byte++) {
        char raw = (char)byte;
        bpe->id_of_byte[byte] = al_string_map_get(&bpe->raw_to_id, &raw, 1);
    }
    return 0;
}

/* ---- merges: "a b" strings (older files) or ["a", "b"] pairs (newer files) ---- */

static int merge_halves(const struct al_bpe *bpe, const cJSON *merge, size_t rank, const char **left,
                        size_t *left_length, const char **right, size_t *right_length)
{
    if (cJSON_IsString(merge)) {
        const char *text = merge->valuestring;
        const char *space = strchr(text, ' ');
        if (!space || space == text || strchr(space + 1, ' '))
            return al_fail("%s: merges[%zu] \"%s\" is not two tokens separated by a space", bpe->path,
                           rank, text);
        *left = text;
        *left_length = (size_t)(space - text);
        *right = space + 1;
        *right_length = strlen(space + 1);
        return 0;
    }
    if (cJSON_IsArray(merge) && cJSON_GetArraySize(merge) == 2 &&
        cJSON_IsString(cJSON_GetArrayItem(merge, 0)) && cJSON_IsString(cJSON_GetArrayItem(merge, 1))) {
        *left = cJSON_GetArrayItem(merge, 0)->valuestring;
        *right = cJSON_GetArrayItem(merge, 1)->valuestring;
        *left_length = strlen(*left);
        *right_length = strlen(*right);
        return 0;
    }
    return al_fail("%s: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", bpe->path, rank);
}

static int load_merges(struct al_bpe *bpe, const cJSON *merges)
{
    if (!cJSON_IsArray(merges))
        return al_fail("%s: model.merges is not an array", bpe->path);
    if (al_pair_map_init(&bpe->merges, (size_t)cJSON_GetArraySize(merges)) != 0)
        return -1;
    char *joined = NULL;
    size_t joined_capacity = 0;
    size_t rank = 0;
    const cJSON *merge;
    int status = 0;
    cJSON_ArrayForEach(merge, merges) {
        const char *left = NULL, *right = NULL;
        size_t left_length = 0, right_length = 0;
        if (merge_halves(bpe, merge, rank, &left, &left_length, &right, &right_length) != 0 ||
            al_buffer_reserve(&joined, 0, &joined_capacity, left_length + right_length) != 0) {
            status = -1;
            break;
        }
        memcpy(joined, left, left_length);
        memcpy(joined + left_length, right, right_length);
        int32_t left_id = al_string_map_get(&bpe->piece_to_id, left, left_length);
        int32_t right_id = al_string_map_get(&bpe->piece_to_id, right, right_length);
        int32_t merged_id = al_string_map_get(&bpe->piece_to_id, joined, left_length + right_length);
        if (left_id < 0 || right_id < 0 || merged_id < 0) {
            status = al_fail("%s: merges[%zu] uses a token that is not in the vocabulary", bpe->path, rank);
            break;
        }
        struct al_merge value = {.rank = (int32_t)rank, .merged_id = merged_id};
        if (al_pair_map_put(&bpe->merges, left_id, right_id, value) != 0) {
            status = -1;
            break;
        }
        rank++;
    }
    free(joined);
    return status;
}

static int load_model(struct al_bpe *bpe, const cJSON *model, const cJSON *added_tokens)
{
    if (!cJSON_IsObject(model))
        return al_fail("%s: no \"model\" object", bpe->path);
    const char *type = json_type_name(model);
    if (type && strcmp(type, "BPE") != 0)
        return al_fail("%s: model type \"%s\" is not supported (only byte-level BPE)", bpe->path, type);
    if (json_true(model, "byte_fallback"))
        return al_fail("%s: BPE with byte_fallback is not supported", bpe->path);
    if (!json_empty_or_null(model, "continuing_subword_prefix") || !json_empty_or_null(model, "end_of_word_suffix"))
        return al_fail("%s: BPE subword prefixes/suffixes are not supported", bpe->path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return al_fail("%s: BPE dropout is not supported (it makes encoding random)", bpe->path);
    bpe->ignore_merges = json_true(model, "ignore_merges");
    if (load_vocab(bpe, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added_tokens) != 0)
        return -1;
    return load_merges(bpe, cJSON_GetObjectItemCaseSensitive(model, "merges"));
}

/* ---- added tokens ---- */

static int load_added_tokens(struct al_bpe *bpe, const cJSON *added_tokens, struct al_added_tokens *added)
{
    if (!added_tokens || cJSON_IsNull(added_tokens))
        return 0;
    if (!cJSON_IsArray(added_tokens))
        return al_fail("%s: added_tokens is not an array", bpe->path);
    size_t index = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, added_tokens) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(entry, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(entry, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !cJSON_IsString(content))
            return al_fail("%s: added_tokens[%zu] needs an \"id\" and a \"content\"", bpe->path, index);
        struct al_added_token token = {
            .content = content->valuestring,
            .length = strlen(content->valuestring),
            .id = (int32_t)id->valuedouble,
            .special = json_true(entry, "special"),
            .lstrip = json_true(entry, "lstrip"),
            .rstrip = json_true(entry, "rstrip"),
            .single_word = json_true(entry, "single_word"),
        };
        if (set_piece(bpe, token.id, token.content, token.length, false) != 0 ||
            al_added_tokens_add(added, &token) != 0)
            return -1;
        index++;
    }
    return 0;
}

/* ---- normaliser ---- */

static int load_normalizer(struct al_bpe *bpe, const cJSON *normalizer)
{
    if (!normalizer || cJSON_IsNull(normalizer))
        return 0;
    const char *type = json_type_name(normalizer);
    if (type && strcmp(type, "NFC") == 0) {
        bpe->normalize_nfc = true;
        return 0;
    }
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *step;
        cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(normalizer, "normalizers"))
            if (load_normalizer(bpe, step) != 0)
                return -1;
        return 0;
    }
    return al_fail("%s: normalizer \"%s\" is not supported (only NFC)", bpe->path, type ? type : "?");
}

/* ---- pre-tokeniser ---- */

static int check_step_room(const struct al_bpe *bpe)
{
    if (bpe->step_count == BPE_MAX_STEPS)
        return al_fail("%s: more than %d pre-tokenizer steps", bpe->path, BPE_MAX_STEPS);
    return 0;
}

static int add_prefix_space_step(struct al_bpe *bpe)
{
    if (check_step_room(bpe) != 0)
        return -1;
    bpe->steps[bpe->step_count++] = (struct bpe_step){.kind = BPE_STEP_PREFIX_SPACE};
    return 0;
}

static int add_splitter(struct al_bpe *bpe, const char *pattern, bool literal)
{
    if (check_step_room(bpe) != 0)
        return -1;
    int error_code;
    PCRE2_SIZE error_offset;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &error_code,
                                     &error_offset, NULL);
    if (!code) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error_code, message, sizeof message);
        return al_fail("%s: pre-tokenizer regex does not compile at offset %zu: %s", bpe->path,
                       (size_t)error_offset, (const char *)message);
    }
    /* JIT makes the split several times faster; without it matching still works. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    bpe->steps[bpe->step_count++] = (struct bpe_step){.kind = BPE_STEP_SPLIT, .pattern = code};
    return 0;
}

static int load_split(struct al_bpe *bpe, const cJSON *split)
{
    const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated") != 0 || json_true(split, "invert"))
        return al_fail("%s: Split pre-tokenizer: only behavior Isolated without invert is supported",
                       bpe->path);
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    const cJSON *regex = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    const cJSON *literal = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    if (cJSON_IsString(regex))
        return add_splitter(bpe, regex->valuestring, false);
    if (cJSON_IsString(literal))
        return add_splitter(bpe, literal->valuestring, true);
    return al_fail("%s: Split pre-tokenizer without a Regex or String pattern", bpe->path);
}

static int load_pre_tokenizer(struct al_bpe *bpe, const cJSON *pre_tokenizer, bool *saw_byte_level)
{
    const char *type = json_type_name(pre_tokenizer);
    if (!type)
        return al_fail("%s: pre_tokenizer without a type", bpe->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *step;
        cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(pre_tokenizer, "pretokenizers"))
            if (load_pre_tokenizer(bpe, step, saw_byte_level) != 0)
                return -1;
        return 0;
    }
    if (strcmp(type, "Split") == 0)
        return load_split(bpe, pre_tokenizer);
    if (strcmp(type, "Digits") == 0) /* numeric characters (Nd, Nl, No), alone or in runs */
        return add_splitter(bpe, json_true(pre_tokenizer, "individual_digits") ? "\\p{N}" : "\\p{N}+", false);
    if (strcmp(type, "ByteLevel") == 0) {
        *saw_byte_level = true;
        /* Hugging Face adds the space to each pre-token so far, then splits with GPT-2's regex. */
        if (json_true(pre_tokenizer, "add_prefix_space") && add_prefix_space_step(bpe) != 0)
            return -1;
        const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(pre_tokenizer, "use_regex");
        if (!use_regex || cJSON_IsTrue(use_regex)) /* Hugging Face's default is true */
            return add_splitter(bpe, GPT2_SPLIT_PATTERN, false);
        return 0;
    }
    return al_fail("%s: pre_tokenizer \"%s\" is not supported", bpe->path, type);
}

/* ---- post-processor: the TemplateProcessing "single" template ---- */

static int append_ids(struct al_bpe *bpe, int32_t **ids, size_t *count, const cJSON *special_ids)
{
    const cJSON *id;
    cJSON_ArrayForEach(id, special_ids) {
        if (!cJSON_IsNumber(id))
            return al_fail("%s: post_processor special token ids must be numbers", bpe->path);
        int32_t *bigger = realloc(*ids, (*count + 1) * sizeof *bigger);
        if (!bigger)
            return al_fail("out of memory loading %s", bpe->path);
        *ids = bigger;
        (*ids)[(*count)++] = (int32_t)id->valuedouble;
    }
    return 0;
}

static int load_template(struct al_bpe *bpe, const cJSON *processor)
{
    const cJSON *special_tokens = cJSON_GetObjectItemCaseSensitive(processor, "special_tokens");
    bool after_sequence = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(processor, "single")) {
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            after_sequence = true;
            continue;
        }
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(special, "id");
        const cJSON *entry = cJSON_IsString(name) ? cJSON_GetObjectItemCaseSensitive(special_tokens, name->valuestring) : NULL;
        if (!entry)
            return al_fail("%s: TemplateProcessing names a special token it does not define", bpe->path);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
        int status = after_sequence ? append_ids(bpe, &bpe->template_suffix, &bpe->template_suffix_count, ids)
                                    : append_ids(bpe, &bpe->template_prefix, &bpe->template_prefix_count, ids);
        if (status != 0)
            return -1;
    }
    return 0;
}

static int load_post_processor(struct al_bpe *bpe, const cJSON *processor)
{
    if (!processor || cJSON_IsNull(processor))
        return 0;
    const char *type = json_type_name(processor);
    if (type && strcmp(type, "ByteLevel") == 0)
        return 0; /* only trims offsets, which this engine reports its own way */
    if (type && strcmp(type, "TemplateProcessing") == 0)
        return load_template(bpe, processor);
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *step;
        cJSON_ArrayForEach(step, cJSON_GetObjectItemCaseSensitive(processor, "processors"))
            if (load_post_processor(bpe, step) != 0)
                return -1;
        return 0;
    }
    return al_fail("%s: post_processor \"%s\" is not supported", bpe->path, type ? type : "?");
}

/* ---- the whole file ---- */

static int load_document(struct al_bpe *bpe, const cJSON *root, struct al_added_tokens *added)
{
    if (!cJSON_IsObject(root))
        return al_fail("%s: not a JSON object", bpe->path);
    const cJSON *added_tokens = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (load_model(bpe, cJSON_GetObjectItemCaseSensitive(root, "model"), added_tokens) != 0 ||
        load_added_tokens(bpe, added_tokens, added) != 0 ||
        load_normalizer(bpe, cJSON_GetObjectItemCaseSensitive(root, "normalizer")) != 0)
        return -1;
    bool saw_byte_level = false;
    const cJSON *pre_tokenizer = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre_tokenizer && !cJSON_IsNull(pre_tokenizer) &&
        load_pre_tokenizer(bpe, pre_tokenizer, &saw_byte_level) != 0)
        return -1;
    if (!saw_byte_level)
        return al_fail("%s: no ByteLevel pre_tokenizer: not a byte-level BPE tokenizer", bpe->path);
    return load_post_processor(bpe, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
}

struct al_bpe *al_bpe_load(const char *path, struct al_added_tokens *added)
{
    struct al_bpe *bpe = calloc(1, sizeof *bpe);
    if (!bpe || !(bpe->path = strdup(path))) {
        free(bpe);
        return al_fail_null("out of memory loading %s", path);
    }
    al_byte_unicode_init(&bpe->byte_map);
    cJSON *root = al_json_load_file(path);
    if (!root) {
        al_bpe_free(bpe);
        return NULL;
    }
    int status = load_document(bpe, root, added);
    cJSON_Delete(root);
    if (status != 0) {
        al_bpe_free(bpe);
        return NULL;
    }
    return bpe;
}

void al_bpe_free(struct al_bpe *bpe)
{
    if (!bpe)
        return;
    for (int32_t id = 0; id < bpe->vocab_size; id++) {
        if (bpe->piece_of_id)
            free(bpe->piece_of_id[id]);
        if (bpe->raw_of_id)
            free(bpe->raw_of_id[id]);
    }
    free(bpe->piece_of_id);
    free(bpe->raw_of_id);
    free(bpe->raw_length_of_id);
    al_string_map_free(&bpe->piece_to_id);
    al_string_map_free(&bpe->raw_to_id);
    al_pair_map_free(&bpe->merges);
    for (int i = 0; i < bpe->step_count; i++)
        pcre2_code_free(bpe->steps[i].pattern);
    free(bpe->template_prefix);
    free(bpe->template_suffix);
    free(bpe->path);
    free(bpe);
}

/* ---- lookups ---- */

int32_t al_bpe_vocab_size(const struct al_bpe *bpe)
{
    return bpe->vocab_size;
}

const char *al_bpe_id_to_piece(const struct al_bpe *bpe, int32_t id)
{
    return id >= 0 && id < bpe->vocab_size ? bpe->piece_of_id[id] : NULL;
}

int32_t al_bpe_piece_to_id(const struct al_bpe *bpe, const char *piece, size_t length)
{
    return al_string_map_get(&bpe->piece_to_id, piece, length);
}

void al_bpe_template(const struct al_bpe *bpe, const int32_t **prefix, size_t *prefix_count,
                     const int32_t **suffix, size_t *suffix_count)
{
    *prefix = bpe->template_prefix;
    *prefix_count = bpe->template_prefix_count;
    *suffix = bpe->template_suffix;
    *suffix_count = bpe->template_suffix_count;
}

int al_bpe_decode_id(const struct al_bpe *bpe, int32_t id, char **buffer, size_t *length, size_t *capacity)
{
    if (id < 0 || id >= bpe->vocab_size || !bpe->raw_of_id[id])
        return al_fail("%s: cannot decode token id %d (vocabulary size %d)", bpe->path, id, bpe->vocab_size);
    uint32_t raw_length = bpe->raw_length_of_id[id];
    if (al_buffer_reserve(buffer, *length, capacity, raw_length) != 0)
        return -1;
    memcpy(*buffer + *length, bpe->raw_of_id[id], raw_length);
    *length += raw_length;
    return 0;
}
