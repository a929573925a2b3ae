/* The text the keyword judge reads: one spelling for what models write many ways.
 * Models print curly or straight apostrophes ("can’t" / "can't"), capitalise at will, wrap
 * words in markdown emphasis ("I **cannot** help") and wrap lines anywhere, so phrase
 * lists written in plain lowercase ASCII match only after this pass. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "agentlora/error.h"
#include "agentlora/judge.h"

static utf8proc_int32_t straighten_quote(utf8proc_int32_t code)
{
    switch (code) {
    case 0x2018: /* left single quotation mark */
    case 0x2019: /* right single quotation mark, the usual typographic apostrophe */
    case 0x201B: /* single high-reversed-9 */
    case 0x2032: /* prime, seen as an apostrophe in some outputs */
    case 0x02BC: /* modifier letter apostrophe */
        return '\'';
    case 0x201C:
    case 0x201D:
    case 0x201E:
        return '"';
    default:
        return code;
    }
}

static bool is_space(utf8proc_int32_t code)
{
    if (code == ' ' || code == '\t' || code == '\n' || code == '\r' || code == '\f' || code == '\v')
        return true;
    return utf8proc_category(code) == UTF8PROC_CATEGORY_ZS;
}

static bool is_word_char(utf8proc_int32_t code)
{
    utf8proc_category_t category = code < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(code);
    return (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO) ||
           category == UTF8PROC_CATEGORY_ND;
}

/* Markdown emphasis and code marks carry no words. An underscore inside a word
 * (send_email) is part of the word and stays; one at a word's edge (_really_) goes. */
static bool is_markup(utf8proc_int32_t code, utf8proc_int32_t previous, utf8proc_int32_t next, bool at_line_start)
{
    if (code == '*' || code == '`')
        return true;
    if (code == '_')
        return !(is_word_char(previous) && is_word_char(next));
    if (code == '#')
        return at_line_start; /* a heading mark */
    return false;
}

/* Decodes text into code points; -1 on invalid UTF-8. */
static int decode(const char *text, utf8proc_int32_t **codes, size_t *count)
{
    size_t length = strlen(text);
    *codes = malloc((length + 1) * sizeof **codes);
    if (!*codes)
        return al_fail("judge: out of memory normalising a response");
    size_t n = 0;
    for (size_t at = 0; at < length;) {
        utf8proc_ssize_t used = utf8proc_iterate((const utf8proc_uint8_t *)text + at, (utf8proc_ssize_t)(length - at),
                                                 &(*codes)[n]);
        if (used <= 0) {
            free(*codes);
            *codes = NULL;
            return al_fail("judge: response is not valid UTF-8 at byte %zu", at);
        }
        at += (size_t)used;
        n++;
    }
    *count = n;
    return 0;
}

char *al_judge_normalize(const char *text)
{
    utf8proc_int32_t *codes = NULL;
    size_t n = 0;
    if (decode(text ? text : "", &codes, &n) != 0)
        return NULL;
    /* Each code point lowercases to at most 4 UTF-8 bytes. */
    char *out = malloc(4 * n + 1);
    if (!out) {
        free(codes);
        return al_fail_null("judge: out of memory normalising a response");
    }
    size_t length = 0;
    int pending_newlines = 0;
    bool pending_space = false, at_line_start = true, line_is_heading = false;
    for (size_t i = 0; i < n; i++) {
        utf8proc_int32_t code = straighten_quote(codes[i]);
        if (is_space(code)) {
            pending_space = true;
            if (code == '\n') {
                pending_newlines += line_is_heading ? 2 : 1;
                at_line_start = true;
                line_is_heading = false;
            }
            continue;
        }
        utf8proc_int32_t previous = i > 0 ? codes[i - 1] : -1, next = i + 1 < n ? codes[i + 1] : -1;
        if (code == '#' && at_line_start)
            line_is_heading = true;
        if (is_markup(code, previous, next, at_line_start))
            continue;
        at_line_start = false;
        /* Whitespace collapses to one space. A paragraph break (a blank line, or the end of
         * a heading) becomes one newline, which ends a sentence for the judge as a full stop
         * does; a single line break is a soft wrap, as markdown renders it. */
        if (pending_space && length > 0)
            out[length++] = pending_newlines >= 2 ? '\n' : ' ';
        pending_space = false;
        pending_newlines = 0;
        length += (size_t)utf8proc_encode_char(utf8proc_tolower(code), (utf8proc_uint8_t *)out + length);
    }
    out[length] = '\0';
    free(codes);
    return out;
}
