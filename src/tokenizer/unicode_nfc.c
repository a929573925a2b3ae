/* Normalised text that remembers where each byte came from, so that token offsets can be
 * reported in the caller's text. NFC itself is utf8proc's; this file only cuts the input
 * into pieces that NFC treats independently and records the origins. */
#include "tokenizer/tokenizer_internal.h"

#include "agentlora/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Code points below U+0300 (ASCII, Latin-1, Latin Extended) are their own NFC when no
 * combining mark follows: NFC changes nothing before the combining marks block. */
#define FIRST_CODE_NFC_MAY_CHANGE 0x300

static int reserve(struct al_normalized *out, size_t extra)
{
    if (out->length + extra <= out->capacity)
        return 0;
    size_t capacity = out->capacity ? out->capacity : 256;
    while (capacity < out->length + extra)
        capacity *= 2;
    char *text = realloc(out->text, capacity + 1);
    if (!text)
        return al_fail("out of memory normalising %zu bytes", out->length + extra);
    out->text = text;
    size_t *origin = realloc(out->origin, capacity * sizeof *origin);
    if (!origin)
        return al_fail("out of memory normalising %zu bytes", out->length + extra);
    out->origin = origin;
    out->capacity = capacity;
    return 0;
}

int al_normalized_append_copy(struct al_normalized *out, const char *input, size_t start, size_t end)
{
    if (reserve(out, end - start) != 0)
        return -1;
    memcpy(out->text + out->length, input + start, end - start);
    for (size_t i = start; i < end; i++)
        out->origin[out->length++] = i;
    return 0;
}

int al_normalized_append_byte(struct al_normalized *out, char byte, size_t origin)
{
    if (reserve(out, 1) != 0)
        return -1;
    out->text[out->length] = byte;
    out->origin[out->length++] = origin;
    return 0;
}

/* Hangul vowel and trailing-consonant jamo compose with the syllable before them. */
static bool is_hangul_joining_jamo(uint32_t code)
{
    return (code >= 0x1161 && code <= 0x1175) || (code >= 0x11A8 && code <= 0x11C2);
}

/* True when NFC can never combine or reorder this character with what precedes it:
 * everything that composes as a second character, or has a non-zero combining class,
 * is a combining mark (Mn, Mc, Me) or a joining Hangul jamo. */
static bool starts_independent_piece(uint32_t code)
{
    if (code < 0x80)
        return true;
    if (is_hangul_joining_jamo(code))
        return false;
    utf8proc_category_t category = utf8proc_category((utf8proc_int32_t)code);
    return category != UTF8PROC_CATEGORY_MN && category != UTF8PROC_CATEGORY_MC &&
           category != UTF8PROC_CATEGORY_ME;
}

/* Composition never changes a text's canonical decomposition, so the decomposition of
 * the input piece (canonically reordered, each position tagged with the input offset of
 * the character decomposed there) lines up with the decompositions of the normalised
 * characters one after the other. Each normalised character starts at the smallest tag
 * among the positions it takes, which is where Hugging Face's alignments start it. */
#define MAX_PIECE_CODES 256
#define MAX_DECOMPOSITION 32

struct tagged_code {
    utf8proc_int32_t code;
    size_t origin;
};

static size_t decompose(utf8proc_int32_t code, utf8proc_int32_t *parts)
{
    utf8proc_ssize_t count = utf8proc_decompose_char(code, parts, MAX_DECOMPOSITION, UTF8PROC_DECOMPOSE, NULL);
    if (count <= 0 || count > MAX_DECOMPOSITION) {
        parts[0] = code;
        return 1;
    }
    return (size_t)count;
}

static int combining_class(utf8proc_int32_t code)
{
    return utf8proc_get_property(code)->combining_class;
}

/* Stable insertion sort of each run of non-starters by combining class (canonical
 * order). Only the characters move: the origins stay in place, because Hugging Face
 * aligns a reordered character with the input position it lands on. */
static void reorder_canonically(struct tagged_code *codes, size_t count)
{
    for (size_t i = 1; i < count; i++) {
        utf8proc_int32_t moving = codes[i].code;
        int moving_class = combining_class(moving);
        if (moving_class == 0)
            continue;
        size_t j = i;
        while (j > 0 && combining_class(codes[j - 1].code) > moving_class) {
            codes[j].code = codes[j - 1].code;
            j--;
        }
        codes[j].code = moving;
    }
}

static size_t decompose_tagged(const char *input, size_t start, size_t end, struct tagged_code *codes)
{
    size_t count = 0, position = start;
    while (position < end) {
        size_t origin = position;
        utf8proc_int32_t parts[MAX_DECOMPOSITION];
        size_t part_count = decompose((utf8proc_int32_t)al_utf8_next(input, end, &position), parts);
        for (size_t k = 0; k < part_count; k++) {
            if (count == MAX_PIECE_CODES)
                return 0;
            codes[count++] = (struct tagged_code){parts[k], origin};
        }
    }
    reorder_canonically(codes, count);
    return count;
}

static void align_changed_piece(const char *input, size_t start, size_t end, const char *normalized,
                                size_t length, size_t *origin)
{
    struct tagged_code codes[MAX_PIECE_CODES];
    size_t code_count = decompose_tagged(input, start, end, codes);
    size_t used = 0, position = 0;
    while (position < length) {
        size_t char_start = position;
        utf8proc_int32_t parts[MAX_DECOMPOSITION];
        size_t part_count = decompose((utf8proc_int32_t)al_utf8_next(normalized, length, &position), parts);
        size_t smallest = start;
        if (used + part_count <= code_count) {
            smallest = codes[used].origin;
            for (size_t k = 1; k < part_count; k++)
                if (codes[used + k].origin < smallest)
                    smallest = codes[used + k].origin;
        }
        used += part_count;
        for (size_t i = char_start; i < position; i++)
            origin[i] = smallest;
    }
    if (used != code_count) /* cannot happen for NFC output; stay safe and coarse */
        for (size_t i = 0; i < length; i++)
            origin[i] = start;
}

/* Appends NFC(input[start, end)), one independent piece (a starter and its marks). */
static int append_nfc_piece(struct al_normalized *out, const char *input, size_t start, size_t end,
                            uint32_t first_code)
{
    size_t first_length = 0;
    al_utf8_next(input + start, end - start, &first_length);
    if (first_length == end - start && first_code < FIRST_CODE_NFC_MAY_CHANGE)
        return al_normalized_append_copy(out, input, start, end);

    utf8proc_uint8_t *normalized = NULL;
    utf8proc_ssize_t length = utf8proc_map((const utf8proc_uint8_t *)input + start,
                                           (utf8proc_ssize_t)(end - start), &normalized,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (length < 0)
        return al_fail("NFC normalisation failed at byte %zu: %s", start, utf8proc_errmsg(length));
    int status = 0;
    if ((size_t)length == end - start && memcmp(normalized, input + start, end - start) == 0) {
        status = al_normalized_append_copy(out, input, start, end);
    } else if (reserve(out, (size_t)length) != 0) {
        status = -1;
    } else {
        memcpy(out->text + out->length, normalized, (size_t)length);
        align_changed_piece(input, start, end, (const char *)normalized, (size_t)length,
                            out->origin + out->length);
        out->length += (size_t)length;
    }
    free(normalized);
    return status;
}

int al_normalized_append_nfc(struct al_normalized *out, const char *input, size_t start, size_t end)
{
    size_t position = start;
    while (position < end) {
        size_t piece_start = position;
        uint32_t first_code = al_utf8_next(input, end, &position);
        for (;;) {
            size_t next = position;
            if (next >= end || starts_independent_piece(al_utf8_next(input, end, &next)))
                break;
            position = next;
        }
        if (first_code < 0x80 && position == piece_start + 1) {
            if (al_normalized_append_byte(out, input[piece_start], piece_start) != 0)
                return -1;
            continue;
        }
        if (append_nfc_piece(out, input, piece_start, position, first_code) != 0)
            return -1;
    }
    return 0;
}

void al_normalized_free(struct al_normalized *out)
{
    free(out->text);
    free(out->origin);
    memset(out, 0, sizeof *out);
}
