/* One record's bytes to a JSON tree, with the checks cJSON does not make.
 *
 * cJSON copies a raw NUL byte or a "\u0000" escape into a C string, where it silently
 * ends the text: a message would train on whatever came before it. It does not check
 * UTF-8, so bad bytes would surface only inside the tokenizer, far from the record. It
 * reports nesting past its limit as a plain parse failure. And where a key appears
 * twice, lookups find the first one, while Python's json (and so every tool that made
 * or reads these files) keeps the last. This file closes those gaps in one place, for
 * the reader, the dataset's re-reads and a tool call's string arguments alike. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "tokenizer/tokenizer_internal.h"

/* What a pass over the raw text finds: the first NUL (raw or escaped) and the deepest
 * bracket nesting, strings skipped. */
struct text_scan {
    size_t nul_at;
    bool nul_escaped;
    int max_depth;
    size_t deepest_at;
};

#define NOT_FOUND ((size_t)-1)

static bool is_escaped_nul(const char *text, size_t length, size_t backslash)
{
    return backslash + 6 <= length && memcmp(text + backslash + 1, "u0000", 5) == 0;
}

static void scan_text(const char *text, size_t length, struct text_scan *scan)
{
    memset(scan, 0, sizeof *scan);
    scan->nul_at = NOT_FOUND;
    bool in_string = false;
    int depth = 0;
    for (size_t i = 0; i < length; i++) {
        char c = text[i];
        if (c == '\0' && scan->nul_at == NOT_FOUND)
            scan->nul_at = i;
        if (in_string) {
            if (c == '\\') {
                if (scan->nul_at == NOT_FOUND && is_escaped_nul(text, length, i)) {
                    scan->nul_at = i;
                    scan->nul_escaped = true;
                }
                i++; /* the escaped character cannot end the string */
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > scan->max_depth) {
                scan->max_depth = depth;
                scan->deepest_at = i;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
}

static bool only_space_after(const char *from, const char *end)
{
    for (; from < end; from++)
        if (*from != ' ' && *from != '\t' && *from != '\r' && *from != '\n')
            return false;
    return true;
}

/* ---- duplicate keys: the last value wins, at the first key's place (as in Python) ---- */

struct keyed_child {
    cJSON *item;
    int position;
};

static int compare_keyed(const void *a, const void *b)
{
    const struct keyed_child *x = a, *y = b;
    int by_key = strcmp(x->item->string, y->item->string);
    return by_key ? by_key : (x->position > y->position) - (x->position < y->position);
}

static void note_duplicate(struct al_record_json_notes *notes, const char *key)
{
    if (!notes)
        return;
    if (notes->duplicate_keys++ == 0)
        snprintf(notes->first_duplicate, sizeof notes->first_duplicate, "%s", key);
}

/* One run of equal keys, sorted by position: the last item's value moves into the first
 * item's place; the items in between are dropped. */
static void keep_last_of_run(cJSON *object, struct keyed_child *run, int count,
                             struct al_record_json_notes *notes)
{
    note_duplicate(notes, run[0].item->string);
    cJSON *last = cJSON_DetachItemViaPointer(object, run[count - 1].item);
    for (int k = 1; k < count - 1; k++)
        cJSON_Delete(cJSON_DetachItemViaPointer(object, run[k].item));
    cJSON_ReplaceItemViaPointer(object, run[0].item, last);
}

/* Records are made of many small objects, nearly all without a repeated key: for those a
 * pairwise look costs less than sorting. */
#define PAIRWISE_LIMIT 16

static bool has_repeated_key_pairwise(const cJSON *object)
{
    for (const cJSON *a = object->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0)
                return true;
    return false;
}

static int resolve_object_keys(cJSON *object, struct al_record_json_notes *notes)
{
    int n = cJSON_GetArraySize(object);
    if (n < 2 || (n <= PAIRWISE_LIMIT && !has_repeated_key_pairwise(object)))
        return 0;
    struct keyed_child *children = malloc((size_t)n * sizeof *children);
    if (!children)
        return al_fail("out of memory");
    int i = 0;
    for (cJSON *child = object->child; child; child = child->next, i++)
        children[i] = (struct keyed_child){child, i};
    qsort(children, (size_t)n, sizeof *children, compare_keyed);
    for (int start = 0; start < n;) {
        int end = start + 1;
        while (end < n && strcmp(children[end].item->string, children[start].item->string) == 0)
            end++;
        if (end - start > 1)
            keep_last_of_run(object, children + start, end - start, notes);
        start = end;
    }
    free(children);
    return 0;
}

static int resolve_duplicate_keys(cJSON *item, struct al_record_json_notes *notes)
{
    if (cJSON_IsObject(item) && resolve_object_keys(item, notes) != 0)
        return -1;
    for (cJSON *child = item->child; child; child = child->next)
        if ((cJSON_IsObject(child) || cJSON_IsArray(child)) && resolve_duplicate_keys(child, notes) != 0)
            return -1;
    return 0;
}

/* ---- the parse ---- */

static int refuse_text(const char *text, size_t length, const struct text_scan *scan)
{
    size_t invalid = al_utf8_invalid_offset(text, length);
    if (scan->nul_at != NOT_FOUND && (invalid == length || scan->nul_at < invalid))
        return scan->nul_escaped
                   ? al_fail("a NUL character (\\u0000) in a string at byte %zu of the record; it would cut the "
                             "text short, so the record is refused",
                             scan->nul_at)
                   : al_fail("a NUL byte at byte %zu of the record (JSON text may not contain one)", scan->nul_at);
    if (invalid != length)
        return al_fail("invalid UTF-8 at byte %zu of the record", invalid);
    return 0;
}

cJSON *al_record_json_parse(const char *text, size_t length, struct al_record_json_notes *notes)
{
    if (notes)
        memset(notes, 0, sizeof *notes);
    struct text_scan scan;
    scan_text(text, length, &scan);
    if (refuse_text(text, length, &scan) != 0)
        return NULL;
    const char *end_of_value = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, length, &end_of_value, 0);
    if (!json || !only_space_after(end_of_value, text + length)) {
        cJSON_Delete(json);
        if (scan.max_depth > CJSON_NESTING_LIMIT)
            return al_fail_null("nesting too deep: %d levels of brackets (at byte %zu of the record), at most %d "
                                "are read",
                                scan.max_depth, scan.deepest_at, CJSON_NESTING_LIMIT);
        long offset = end_of_value && end_of_value >= text ? (long)(end_of_value - text) : 0;
        return al_fail_null("invalid JSON at byte %ld of the record", offset);
    }
    /* Float literals are matched to the text in document order, so before any key moves. */
    if (al_json_mark_float_literals(json, text, length) != 0) {
        cJSON_Delete(json);
        return al_fail_null("could not match the record's numbers to its text");
    }
    if (resolve_duplicate_keys(json, notes) != 0) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}
