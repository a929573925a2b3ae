/* The JSON array splitter: finds where each top-level element of an array begins and
 * ends so that only one element at a time is handed to cJSON. It knows strings,
 * escapes and bracket depth, nothing more; whether an element is valid JSON is decided
 * by cJSON on the slice, which is why a bad element is a record error and not fatal. */
#include <stdint.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct al_json_array_scanner *scanner)
{
    while (scanner->cursor < scanner->size && is_json_space(scanner->text[scanner->cursor]))
        scanner->cursor++;
}

static long line_of(const struct al_json_array_scanner *scanner, size_t offset)
{
    const char *text = scanner->text;
    long line = 1;
    const char *p = text;
    while ((p = memchr(p, '\n', (size_t)(text + offset - p))) != NULL) {
        line++;
        p++;
    }
    return line;
}

/* A UTF-8 byte order mark is legal noise before the first value. */
static size_t skip_bom(const char *text, size_t size)
{
    return size >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
                   (unsigned char)text[2] == 0xBF
               ? 3
               : 0;
}

int al_json_array_scanner_init(struct al_json_array_scanner *scanner, const char *text, size_t size,
                               const char *source)
{
    memset(scanner, 0, sizeof *scanner);
    scanner->text = text;
    scanner->size = size;
    scanner->source = source;
    scanner->cursor = text ? skip_bom(text, size) : 0;
    skip_space(scanner);
    if (scanner->cursor >= size)
        return al_fail("%s: the file is empty (expected a JSON array of records)", source);
    if (text[scanner->cursor] != '[')
        return al_fail("%s: expected a JSON array ('[') at line %ld, found '%c'", source,
                       line_of(scanner, scanner->cursor), text[scanner->cursor]);
    scanner->cursor++;
    return 0;
}

/* Returned when the text ends inside a value. */
#define NEVER_ENDS SIZE_MAX

/* Ends a string whose opening quote is at `start`; returns the offset after the closing
 * quote, or NEVER_ENDS when the text ends inside the string. */
static size_t string_end(const char *text, size_t size, size_t start)
{
    size_t i = start + 1;
    while (i < size) {
        const char *hit = memchr(text + i, '"', size - i);
        if (!hit)
            return NEVER_ENDS;
        size_t quote = (size_t)(hit - text);
        /* An odd run of backslashes before the quote escapes it. */
        size_t backslashes = 0;
        while (quote - backslashes > start + 1 && text[quote - backslashes - 1] == '\\')
            backslashes++;
        if (backslashes % 2 == 0)
            return quote + 1;
        i = quote + 1;
    }
    return NEVER_ENDS;
}

/* The end of a bracketed value (object or array) starting at `start`, or NEVER_ENDS
 * when the brackets never balance. */
static size_t bracketed_end(const char *text, size_t size, size_t start)
{
    size_t depth = 0;
    size_t i = start;
    while (i < size) {
        char c = text[i];
        if (c == '"') {
            i = string_end(text, size, i);
            if (i == NEVER_ENDS)
                return NEVER_ENDS;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
            if (depth == 0)
                return i + 1;
        }
        i++;
    }
    return NEVER_ENDS;
}

/* Scalars (numbers, true, false, null) run until a separator; cJSON judges them. */
static size_t scalar_end(const char *text, size_t size, size_t start)
{
    size_t i = start;
    while (i < size && text[i] != ',' && text[i] != ']' && !is_json_space(text[i]))
        i++;
    return i;
}

static size_t element_end(const char *text, size_t size, size_t start)
{
    char c = text[start];
    if (c == '{' || c == '[')
        return bracketed_end(text, size, start);
    if (c == '"')
        return string_end(text, size, start);
    return scalar_end(text, size, start);
}

size_t al_json_value_end(const char *text, size_t size, size_t start)
{
    return start < size ? element_end(text, size, start) : SIZE_MAX;
}

/* After the array's ']' only white space may follow. */
static int finish(struct al_json_array_scanner *scanner)
{
    scanner->cursor++;
    scanner->finished = true;
    skip_space(scanner);
    if (scanner->cursor < scanner->size)
        return al_fail("%s: unexpected data after the closing ']' at line %ld", scanner->source,
                       line_of(scanner, scanner->cursor));
    return 0;
}

/* Between elements: a ',' then the next element, or the closing ']'. */
static int expect_separator(struct al_json_array_scanner *scanner)
{
    skip_space(scanner);
    if (scanner->cursor >= scanner->size)
        return al_fail("%s: truncated array: the file ends after record %ld without a closing ']'",
                       scanner->source, scanner->elements);
    char c = scanner->text[scanner->cursor];
    if (c == ']')
        return 0;
    if (c != ',')
        return al_fail("%s: unexpected '%c' after record %ld at line %ld (expected ',' or ']')", scanner->source,
                       c, scanner->elements, line_of(scanner, scanner->cursor));
    scanner->cursor++;
    skip_space(scanner);
    if (scanner->cursor < scanner->size && scanner->text[scanner->cursor] == ']')
        return al_fail("%s: trailing ',' after record %ld at line %ld", scanner->source, scanner->elements,
                       line_of(scanner, scanner->cursor));
    return 0;
}

int al_json_array_scanner_next(struct al_json_array_scanner *scanner, size_t *offset, size_t *length)
{
    if (scanner->finished)
        return 0;
    if (scanner->elements > 0 && expect_separator(scanner) != 0)
        return -1;
    skip_space(scanner);
    if (scanner->cursor >= scanner->size)
        return al_fail("%s: truncated array: the file ends after record %ld without a closing ']'",
                       scanner->source, scanner->elements);
    if (scanner->text[scanner->cursor] == ']')
        return finish(scanner) == 0 ? 0 : -1;
    size_t start = scanner->cursor;
    size_t end = element_end(scanner->text, scanner->size, start);
    if (end == NEVER_ENDS)
        return al_fail("%s: truncated file: record %ld (line %ld) never ends", scanner->source,
                       scanner->elements + 1, line_of(scanner, start));
    scanner->elements++;
    scanner->cursor = end;
    *offset = start;
    *length = end - start;
    return 1;
}
