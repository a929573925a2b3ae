/* The features learned-v1 reads from a response: hashed n-grams of the normalised text in
 * three groups (the opening's words, the opening's characters, the whole text's words),
 * each group's counts scaled to unit length so that a long response does not outweigh a
 * short one, plus keywords-v1's finding as one indicator.
 *
 * Character n-grams are taken inside each word padded with a space on both sides, so they
 * see word starts and ends ("i can't" gives " ca", "an'", "'t "), and they carry text
 * without spaces (Chinese, Japanese) that word n-grams would see as one long word. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge_learned.h"
#include "agentlora/rng.h"

#define CHAR_NGRAM_MIN 3
#define CHAR_NGRAM_MAX 5

/* Group tags keep the same n-gram in two groups in two different slots. */
enum group { GROUP_HEAD_WORDS = 1, GROUP_HEAD_CHARS = 2, GROUP_ALL_WORDS = 3 };

struct al_judge_feature_settings al_judge_feature_defaults(void)
{
    return (struct al_judge_feature_settings){.hash_bits = 18, .head_bytes = 1500, .whole_text_scale = 1.0f};
}

int64_t al_judge_feature_count(const struct al_judge_feature_settings *settings)
{
    return ((int64_t)1 << settings->hash_bits) + AL_KEYWORDS_N_FINDINGS;
}

/* A list of slot indices a group collects before its counts are merged and scaled. */
struct slots {
    int32_t *index;
    int count, capacity;
};

static int slots_push(struct slots *s, int32_t index)
{
    if (s->count == s->capacity) {
        int capacity = s->capacity ? 2 * s->capacity : 256;
        int32_t *grown = realloc(s->index, (size_t)capacity * sizeof *grown);
        if (!grown)
            return al_fail("judge features: out of memory");
        s->index = grown;
        s->capacity = capacity;
    }
    s->index[s->count++] = index;
    return 0;
}

static int features_push(struct al_judge_features *f, int32_t index, float value)
{
    if (f->count == f->capacity) {
        int capacity = f->capacity ? 2 * f->capacity : 256;
        int32_t *index_grown = realloc(f->index, (size_t)capacity * sizeof *index_grown);
        if (index_grown)
            f->index = index_grown;
        float *value_grown = index_grown ? realloc(f->value, (size_t)capacity * sizeof *value_grown) : NULL;
        if (!value_grown)
            return al_fail("judge features: out of memory");
        f->value = value_grown;
        f->capacity = capacity;
    }
    f->index[f->count] = index;
    f->value[f->count++] = value;
    return 0;
}

/* FNV-1a over the group tag and the bytes, finished by a 64-bit mix: the slot of an n-gram. */
static int32_t slot_of(const struct al_judge_feature_settings *settings, enum group group, const char *bytes,
                       size_t length)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)group;
    h *= 1099511628211ULL;
    for (size_t i = 0; i < length; i++) {
        h ^= (unsigned char)bytes[i];
        h *= 1099511628211ULL;
    }
    return (int32_t)(al_hash64(h) & (((uint64_t)1 << settings->hash_bits) - 1));
}

static int compare_int32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Merges a group's slots into counts, scales them to length `scale`, appends them. */
static int add_group(struct al_judge_features *out, struct slots *s, float scale)
{
    if (s->count == 0)
        return 0;
    qsort(s->index, (size_t)s->count, sizeof *s->index, compare_int32);
    double squares = 0.0;
    for (int i = 0; i < s->count;) {
        int j = i;
        while (j < s->count && s->index[j] == s->index[i])
            j++;
        squares += (double)(j - i) * (double)(j - i);
        i = j;
    }
    float unit = scale / (float)sqrt(squares);
    for (int i = 0; i < s->count;) {
        int j = i;
        while (j < s->count && s->index[j] == s->index[i])
            j++;
        if (features_push(out, s->index[i], unit * (float)(j - i)) != 0)
            return -1;
        i = j;
    }
    s->count = 0;
    return 0;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80;
}

/* Words of text[0..length): runs of word bytes. Fills starts/lengths; returns the count. */
struct words {
    const char **start;
    size_t *length;
    int count, capacity;
};

static int split_words(const char *text, size_t length, struct words *w)
{
    w->count = 0;
    for (size_t at = 0; at < length;) {
        if (!is_word_byte((unsigned char)text[at])) {
            at++;
            continue;
        }
        size_t end = at;
        while (end < length && is_word_byte((unsigned char)text[end]))
            end++;
        if (w->count == w->capacity) {
            int capacity = w->capacity ? 2 * w->capacity : 128;
            const char **start = realloc(w->start, (size_t)capacity * sizeof *start);
            if (start)
                w->start = start;
            size_t *lengths = start ? realloc(w->length, (size_t)capacity * sizeof *lengths) : NULL;
            if (!lengths)
                return al_fail("judge features: out of memory");
            w->length = lengths;
            w->capacity = capacity;
        }
        w->start[w->count] = text + at;
        w->length[w->count++] = end - at;
        at = end;
    }
    return 0;
}

/* Unigrams and bigrams (joined by a space) of the words. */
static int word_ngrams(const struct al_judge_feature_settings *settings, enum group group, const struct words *w,
                       struct slots *s)
{
    char *pair = NULL;
    size_t pair_capacity = 0;
    int status = 0;
    for (int i = 0; i < w->count && status == 0; i++) {
        status = slots_push(s, slot_of(settings, group, w->start[i], w->length[i]));
        if (status != 0 || i + 1 == w->count)
            continue;
        size_t n = w->length[i] + 1 + w->length[i + 1];
        if (n > pair_capacity) {
            char *grown = realloc(pair, n);
            if (!grown) {
                status = al_fail("judge features: out of memory");
                break;
            }
            pair = grown;
            pair_capacity = n;
        }
        memcpy(pair, w->start[i], w->length[i]);
        pair[w->length[i]] = ' ';
        memcpy(pair + w->length[i] + 1, w->start[i + 1], w->length[i + 1]);
        status = slots_push(s, slot_of(settings, group, pair, n));
    }
    free(pair);
    return status;
}

static size_t utf8_length(unsigned char lead)
{
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Character n-grams of " word ": code points, not bytes, so a Chinese character counts
 * as one. A padded word shorter than n gives itself once. */
static int char_ngrams_of_word(const struct al_judge_feature_settings *settings, const char *word, size_t length,
                               struct slots *s)
{
    char padded[2 * 4 * CHAR_NGRAM_MAX + 2];
    size_t offsets[CHAR_NGRAM_MAX + 2];
    /* Walk code point boundaries of " word " with a window of up to CHAR_NGRAM_MAX + 1. */
    size_t total = length + 2;
    char *text = total <= sizeof padded ? padded : malloc(total);
    if (!text)
        return al_fail("judge features: out of memory");
    text[0] = ' ';
    memcpy(text + 1, word, length);
    text[total - 1] = ' ';
    size_t n_points = 0;
    for (size_t at = 0; at < total; at += utf8_length((unsigned char)text[at]))
        n_points++;
    int status = 0;
    for (int n = CHAR_NGRAM_MIN; n <= CHAR_NGRAM_MAX && status == 0; n++) {
        if (n_points <= (size_t)n) {
            status = slots_push(s, slot_of(settings, GROUP_HEAD_CHARS, text, total));
            break;
        }
        /* offsets[k]: start of the k-th code point in the sliding window. */
        size_t at = 0;
        for (int k = 0; k <= n; k++) {
            offsets[k] = at;
            at += utf8_length((unsigned char)text[at]);
        }
        for (;;) {
            status = slots_push(s, slot_of(settings, GROUP_HEAD_CHARS, text + offsets[0], offsets[n] - offsets[0]));
            if (status != 0 || offsets[n] >= total)
                break;
            memmove(offsets, offsets + 1, (size_t)n * sizeof *offsets);
            offsets[n] = offsets[n - 1] + utf8_length((unsigned char)text[offsets[n - 1]]);
        }
    }
    if (text != padded)
        free(text);
    return status;
}

/* The opening: at most head_bytes, cut at a code point start. */
static size_t head_length(const char *text, size_t length, int head_bytes)
{
    if (length <= (size_t)head_bytes)
        return length;
    size_t n = (size_t)head_bytes;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static int extract_groups(const struct al_judge_feature_settings *settings, const char *text,
                          struct al_judge_features *out)
{
    struct words w = {0};
    struct slots s = {0};
    size_t length = strlen(text), head = head_length(text, length, settings->head_bytes);
    int status = split_words(text, head, &w);
    if (status == 0)
        status = word_ngrams(settings, GROUP_HEAD_WORDS, &w, &s);
    if (status == 0)
        status = add_group(out, &s, 1.0f);
    for (int i = 0; i < w.count && status == 0; i++)
        status = char_ngrams_of_word(settings, w.start[i], w.length[i], &s);
    if (status == 0)
        status = add_group(out, &s, 1.0f);
    if (status == 0)
        status = split_words(text, length, &w);
    if (status == 0)
        status = word_ngrams(settings, GROUP_ALL_WORDS, &w, &s);
    if (status == 0)
        status = add_group(out, &s, settings->whole_text_scale);
    free(w.start);
    free(w.length);
    free(s.index);
    return status;
}

struct entry {
    int32_t index;
    float value;
};

static int compare_entry(const void *a, const void *b)
{
    return compare_int32(&((const struct entry *)a)->index, &((const struct entry *)b)->index);
}

/* Slots shared by two groups become one entry holding the sum. */
static int merge_duplicates(struct al_judge_features *f)
{
    struct entry *entries = malloc((size_t)(f->count ? f->count : 1) * sizeof *entries);
    if (!entries)
        return al_fail("judge features: out of memory");
    for (int i = 0; i < f->count; i++)
        entries[i] = (struct entry){f->index[i], f->value[i]};
    qsort(entries, (size_t)f->count, sizeof *entries, compare_entry);
    int n = 0;
    for (int i = 0; i < f->count; i++) {
        if (n > 0 && f->index[n - 1] == entries[i].index) {
            f->value[n - 1] += entries[i].value;
        } else {
            f->index[n] = entries[i].index;
            f->value[n++] = entries[i].value;
        }
    }
    f->count = n;
    free(entries);
    return 0;
}

int al_judge_features_extract(const struct al_judge_feature_settings *settings, const char *text,
                              struct al_judge_features *out)
{
    out->count = 0;
    out->finding = AL_KEYWORDS_NOTHING;
    char *normalised = al_judge_normalize(text);
    if (!normalised)
        return -1;
    struct al_verdict keywords;
    out->finding = al_judge_keywords_analyse(normalised, &keywords);
    int status = extract_groups(settings, normalised, out);
    free(normalised);
    if (status == 0)
        status = merge_duplicates(out);
    if (status == 0)
        status = features_push(out, (int32_t)(((int64_t)1 << settings->hash_bits) + out->finding), 1.0f);
    return status;
}

void al_judge_features_free(struct al_judge_features *features)
{
    free(features->index);
    free(features->value);
    memset(features, 0, sizeof *features);
}
