/* Added tokens ("<|eot_id|>", "[INST]", "<tool_call>") are found in the raw text before
 * the model sees it, as Hugging Face does: the leftmost match wins, and of the matches
 * that start there the longest. Tokens marked lstrip/rstrip swallow the whitespace next
 * to them; single_word tokens match only between non-word characters. */
#include "tokenizer/tokenizer_internal.h"

#include "agentlora/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int al_added_tokens_add(struct al_added_tokens *added, const struct al_added_token *token)
{
    if (token->length == 0)
        return 0; /* an empty token could never be matched */
    for (size_t i = 0; i < added->count; i++)
        if (added->items[i].length == token->length &&
            memcmp(added->items[i].content, token->content, token->length) == 0)
            return 0;
    if (added->count == added->capacity) {
        size_t capacity = added->capacity ? 2 * added->capacity : 32;
        struct al_added_token *items = realloc(added->items, capacity * sizeof *items);
        if (!items)
            return al_fail("out of memory for added tokens");
        added->items = items;
        added->capacity = capacity;
    }
    struct al_added_token *copy = &added->items[added->count];
    *copy = *token;
    copy->content = malloc(token->length + 1);
    if (!copy->content)
        return al_fail("out of memory for added tokens");
    memcpy(copy->content, token->content, token->length);
    copy->content[token->length] = '\0';
    added->count++;
    return 0;
}

/* Sort key: first byte ascending, then length descending (longest match tried first). */
static int compare_for_matching(const void *a, const void *b, void *context)
{
    const struct al_added_tokens *added = context;
    const struct al_added_token *x = &added->items[*(const size_t *)a];
    const struct al_added_token *y = &added->items[*(const size_t *)b];
    uint8_t x_first = (uint8_t)x->content[0], y_first = (uint8_t)y->content[0];
    if (x_first != y_first)
        return x_first < y_first ? -1 : 1;
    if (x->length != y->length)
        return x->length > y->length ? -1 : 1;
    return 0;
}

int al_added_tokens_index(struct al_added_tokens *added)
{
    free(added->order);
    free(added->item_of_id);
    al_string_map_free(&added->by_content);
    added->order = malloc((added->count + 1) * sizeof *added->order);
    if (!added->order)
        return al_fail("out of memory for added tokens");
    for (size_t i = 0; i < added->count; i++)
        added->order[i] = i;
    qsort_r(added->order, added->count, sizeof *added->order, compare_for_matching, added);

    size_t position = 0;
    for (int byte = 0; byte < 256; byte++) {
        added->by_first_byte[byte] = position;
        while (position < added->count && (uint8_t)added->items[added->order[position]].content[0] == byte)
            position++;
    }
    added->by_first_byte[256] = position;

    int32_t largest_id = -1;
    for (size_t i = 0; i < added->count; i++)
        if (added->items[i].id > largest_id)
            largest_id = added->items[i].id;
    added->id_limit = largest_id + 1;
    added->item_of_id = malloc(((size_t)added->id_limit + 1) * sizeof *added->item_of_id);
    if (!added->item_of_id)
        return al_fail("out of memory for added tokens");
    for (int32_t id = 0; id < added->id_limit; id++)
        added->item_of_id[id] = -1;
    for (size_t i = 0; i < added->count; i++)
        if (added->items[i].id >= 0)
            added->item_of_id[added->items[i].id] = (int32_t)i;

    if (al_string_map_init(&added->by_content, added->count) != 0)
        return -1;
    for (size_t i = 0; i < added->count; i++)
        if (al_string_map_put(&added->by_content, added->items[i].content, added->items[i].length,
                              (int32_t)i) != 0)
            return -1;
    return 0;
}

void al_added_tokens_free(struct al_added_tokens *added)
{
    for (size_t i = 0; i < added->count; i++)
        free(added->items[i].content);
    free(added->items);
    free(added->order);
    free(added->item_of_id);
    al_string_map_free(&added->by_content);
    memset(added, 0, sizeof *added);
}

const struct al_added_token *al_added_tokens_find_id(const struct al_added_tokens *added, int32_t id)
{
    if (id < 0 || id >= added->id_limit || added->item_of_id[id] < 0)
        return NULL;
    return &added->items[added->item_of_id[id]];
}

/* ASCII letters, digits and '_' are word characters; so is any byte of a non-ASCII
 * character (letters of other scripts), which keeps single_word conservative. */
static bool is_word_byte(uint8_t byte)
{
    return isalnum(byte) || byte == '_' || byte >= 0x80;
}

static bool is_space_byte(uint8_t byte)
{
    return byte == ' ' || byte == '\t' || byte == '\n' || byte == '\r' || byte == '\v' || byte == '\f';
}

static bool matches_at(const struct al_added_token *token, const char *text, size_t length,
                       size_t position, bool parse_special)
{
    if (token->special && !parse_special)
        return false;
    if (token->length > length - position || memcmp(text + position, token->content, token->length) != 0)
        return false;
    if (token->single_word) {
        size_t end = position + token->length;
        if (position > 0 && is_word_byte((uint8_t)text[position - 1]))
            return false;
        if (end < length && is_word_byte((uint8_t)text[end]))
            return false;
    }
    return true;
}

/* The leftmost-longest match at or after `from`, or NULL. */
static const struct al_added_token *find_match(const struct al_added_tokens *added, const char *text,
                                               size_t length, size_t from, bool parse_special,
                                               size_t *match_start)
{
    for (size_t position = from; position < length; position++) {
        uint8_t byte = (uint8_t)text[position];
        for (size_t k = added->by_first_byte[byte]; k < added->by_first_byte[byte + 1]; k++) {
            const struct al_added_token *token = &added->items[added->order[k]];
            if (matches_at(token, text, length, position, parse_special)) {
                *match_start = position;
                return token;
            }
        }
    }
    return NULL;
}

int al_added_tokens_split(const struct al_added_tokens *added, const char *text, size_t length,
                          bool parse_special, const struct al_added_split_callbacks *callbacks)
{
    size_t position = 0;
    while (position < length) {
        size_t start = 0;
        const struct al_added_token *token =
            added->count ? find_match(added, text, length, position, parse_special, &start) : NULL;
        if (!token)
            break;
        size_t end = start + token->length;
        if (token->lstrip)
            while (start > position && is_space_byte((uint8_t)text[start - 1]))
                start--;
        if (token->rstrip)
            while (end < length && is_space_byte((uint8_t)text[end]))
                end++;
        if (start > position && callbacks->on_text(callbacks->context, position, start) != 0)
            return -1;
        if (callbacks->on_token(callbacks->context, token, start) != 0)
            return -1;
        position = end;
    }
    if (position < length && callbacks->on_text(callbacks->context, position, length) != 0)
        return -1;
    return 0;
}
