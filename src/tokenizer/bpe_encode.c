/* Encoding one plain segment (text between added tokens) with byte-level BPE, in Hugging
 * Face's order: normalise (NFC), run the pre-tokenizer steps in turn (a Split regex makes
 * pre-tokens of its matches and of the gaps between them; ByteLevel may prefix each
 * pre-token with a space), then merge each pre-token's bytes. Repeated pre-tokens are
 * merged once per segment: a cache keyed by their bytes holds the result. */
#include "tokenizer/bpe_internal.h"

#include "agentlora/error.h"

#include <stdlib.h>

/* Longer pre-tokens are rare (whitespace runs, long words) and seldom repeat. */
#define CACHE_MAX_WORD_BYTES 64

struct range {
    size_t start, end; /* in the normalised text */
};

struct range_list {
    struct range *items;
    size_t count, capacity;
};

struct segment_encoder {
    const struct al_bpe *bpe;
    struct al_normalized normalized;
    struct range_list ranges, split;
    pcre2_match_data *match_data;
    struct al_bpe_scratch scratch;
    struct al_string_map cache;  /* word bytes (in normalized.text) -> index into cached_ids */
    int32_t *cached_ids;         /* per entry: count, then count (id, length) pairs */
    size_t cached_length, cached_capacity;
};

static int range_push(struct range_list *list, size_t start, size_t end)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        struct range *items = realloc(list->items, capacity * sizeof *items);
        if (!items)
            return al_fail("out of memory splitting text into pre-tokens");
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = (struct range){start, end};
    return 0;
}

static int normalize_segment(struct segment_encoder *encoder, const char *text, size_t start, size_t end)
{
    if (encoder->bpe->normalize_nfc)
        return al_normalized_append_nfc(&encoder->normalized, text, start, end);
    return al_normalized_append_copy(&encoder->normalized, text, start, end);
}

/* ByteLevel(add_prefix_space=true): every pre-token that does not start with a space
 * gets one, standing for the pre-token's first byte. Rebuilds the normalised text. */
static int add_prefix_spaces(struct segment_encoder *encoder)
{
    struct al_normalized *old = &encoder->normalized;
    struct al_normalized spaced = {0};
    for (size_t i = 0; i < encoder->ranges.count; i++) {
        struct range *range = &encoder->ranges.items[i];
        size_t new_start = spaced.length;
        if (old->text[range->start] != ' ' &&
            al_normalized_append_byte(&spaced, ' ', old->origin[range->start]) != 0)
            goto fail;
        for (size_t k = range->start; k < range->end; k++)
            if (al_normalized_append_byte(&spaced, old->text[k], old->origin[k]) != 0)
                goto fail;
        range->start = new_start;
        range->end = spaced.length;
    }
    al_normalized_free(old);
    *old = spaced;
    return 0;
fail:
    al_normalized_free(&spaced);
    return -1;
}

static int match_once(const pcre2_code *code, const char *subject, size_t length, size_t from,
                      pcre2_match_data *match_data)
{
    int result = pcre2_match(code, (PCRE2_SPTR)subject, length, from, PCRE2_NO_UTF_CHECK, match_data, NULL);
    if (result == PCRE2_ERROR_JIT_STACKLIMIT) /* the interpreter has no such limit */
        result = pcre2_match(code, (PCRE2_SPTR)subject, length, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             match_data, NULL);
    return result;
}

/* Splits one range with one pattern, Isolated: each match and each gap is a pre-token.
 * The pattern sees only the range, as when Hugging Face splits each piece on its own. */
static int split_range(struct segment_encoder *encoder, const pcre2_code *code, struct range range,
                       struct range_list *out)
{
    const char *subject = encoder->normalized.text + range.start;
    size_t length = range.end - range.start;
    size_t position = 0; /* end of the last pre-token */
    size_t search = 0;   /* where the next match may start */
    while (search < length) {
        int result = match_once(code, subject, length, search, encoder->match_data);
        if (result == PCRE2_ERROR_NOMATCH)
            break;
        if (result < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(result, message, sizeof message);
            return al_fail("%s: pre-tokenizer regex failed: %s", encoder->bpe->path, (const char *)message);
        }
        PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(encoder->match_data);
        size_t match_start = ovector[0], match_end = ovector[1];
        if (match_end == match_start) { /* an empty match splits nothing: look further on */
            search = match_start;
            al_utf8_next(subject, length, &search);
            continue;
        }
        if (match_start > position && range_push(out, range.start + position, range.start + match_start) != 0)
            return -1;
        if (range_push(out, range.start + match_start, range.start + match_end) != 0)
            return -1;
        position = search = match_end;
    }
    if (position < length && range_push(out, range.start + position, range.end) != 0)
        return -1;
    return 0;
}

static int split_all(struct segment_encoder *encoder, const pcre2_code *code)
{
    pcre2_match_data_free(encoder->match_data);
    encoder->match_data = pcre2_match_data_create_from_pattern(code, NULL);
    if (!encoder->match_data)
        return al_fail("out of memory for regex match data");
    encoder->split.count = 0;
    for (size_t i = 0; i < encoder->ranges.count; i++)
        if (split_range(encoder, code, encoder->ranges.items[i], &encoder->split) != 0)
            return -1;
    struct range_list swap = encoder->ranges;
    encoder->ranges = encoder->split;
    encoder->split = swap;
    return 0;
}

static int pre_tokenize(struct segment_encoder *encoder)
{
    encoder->ranges.count = 0;
    if (encoder->normalized.length == 0)
        return 0;
    if (range_push(&encoder->ranges, 0, encoder->normalized.length) != 0)
        return -1;
    for (int s = 0; s < encoder->bpe->step_count; s++) {
        const struct bpe_step *step = &encoder->bpe->steps[s];
        int status = step->kind == BPE_STEP_SPLIT ? split_all(encoder, step->pattern) : add_prefix_spaces(encoder);
        if (status != 0)
            return -1;
    }
    return 0;
}

static int cache_reserve(struct segment_encoder *encoder, size_t extra)
{
    if (encoder->cached_length + extra <= encoder->cached_capacity)
        return 0;
    size_t capacity = encoder->cached_capacity ? 2 * encoder->cached_capacity : 1024;
    while (capacity < encoder->cached_length + extra)
        capacity *= 2;
    int32_t *bigger = realloc(encoder->cached_ids, capacity * sizeof *bigger);
    if (!bigger)
        return al_fail("out of memory for the BPE cache");
    encoder->cached_ids = bigger;
    encoder->cached_capacity = capacity;
    return 0;
}

static int emit_cached(const struct segment_encoder *encoder, int32_t entry, size_t word_start,
                       struct al_tokens *out)
{
    const int32_t *cached = encoder->cached_ids + entry;
    size_t position = word_start;
    for (int32_t k = 0; k < cached[0]; k++) {
        if (al_tokens_push(out, cached[1 + 2 * k], encoder->normalized.origin[position]) != 0)
            return -1;
        position += (size_t)cached[2 + 2 * k];
    }
    return 0;
}

static int encode_word(struct segment_encoder *encoder, struct range word, struct al_tokens *out)
{
    const char *bytes = encoder->normalized.text + word.start;
    size_t length = word.end - word.start;
    bool cacheable = length <= CACHE_MAX_WORD_BYTES;
    if (cacheable) {
        int32_t entry = al_string_map_get(&encoder->cache, bytes, length);
        if (entry >= 0)
            return emit_cached(encoder, entry, word.start, out);
    }
    struct al_bpe_scratch *scratch = &encoder->scratch;
    if (al_bpe_merge_word(encoder->bpe, bytes, length, scratch) != 0)
        return -1;
    size_t position = word.start;
    for (size_t k = 0; k < scratch->count; k++) {
        if (al_tokens_push(out, scratch->ids[k], encoder->normalized.origin[position]) != 0)
            return -1;
        position += scratch->lengths[k];
    }
    if (!cacheable)
        return 0;
    if (cache_reserve(encoder, 1 + 2 * scratch->count) != 0)
        return -1;
    int32_t entry = (int32_t)encoder->cached_length;
    int32_t *cached = encoder->cached_ids + entry;
    cached[0] = (int32_t)scratch->count;
    for (size_t k = 0; k < scratch->count; k++) {
        cached[1 + 2 * k] = scratch->ids[k];
        cached[2 + 2 * k] = (int32_t)scratch->lengths[k];
    }
    encoder->cached_length += 1 + 2 * scratch->count;
    return al_string_map_put(&encoder->cache, bytes, length, entry);
}

static void encoder_free(struct segment_encoder *encoder)
{
    al_normalized_free(&encoder->normalized);
    free(encoder->ranges.items);
    free(encoder->split.items);
    pcre2_match_data_free(encoder->match_data);
    al_bpe_scratch_free(&encoder->scratch);
    al_string_map_free(&encoder->cache);
    free(encoder->cached_ids);
}

int al_bpe_encode_segment(const struct al_bpe *bpe, const char *text, size_t start, size_t end,
                          struct al_tokens *out)
{
    struct segment_encoder encoder = {.bpe = bpe};
    int status = -1;
    if (normalize_segment(&encoder, text, start, end) != 0 || pre_tokenize(&encoder) != 0 ||
        al_string_map_init(&encoder.cache, 64) != 0)
        goto done;
    for (size_t i = 0; i < encoder.ranges.count; i++)
        if (encode_word(&encoder, encoder.ranges.items[i], out) != 0)
            goto done;
    status = 0;
done:
    encoder_free(&encoder);
    return status;
}
