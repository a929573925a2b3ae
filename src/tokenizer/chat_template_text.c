/* The text side of the renderers: a builder that remembers assistant spans, and the two
 * Jinja filters the templates lean on, `tojson` (Python's json.dumps as transformers
 * calls it) and `trim` (Python's str.strip()), reproduced byte for byte. */
#include "chat_template_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_TEXT_CAPACITY 1024
#define INITIAL_SPAN_CAPACITY 8

static bool reserve_text(struct chat_builder *b, size_t extra)
{
    if (b->out_of_memory)
        return false;
    size_t needed = b->length + extra + 1;
    if (needed <= b->capacity)
        return true;
    size_t capacity = b->capacity ? b->capacity : INITIAL_TEXT_CAPACITY;
    while (capacity < needed)
        capacity *= 2;
    char *text = realloc(b->text, capacity);
    if (!text) {
        b->out_of_memory = true;
        return false;
    }
    b->text = text;
    b->capacity = capacity;
    return true;
}

void chat_append_n(struct chat_builder *b, const char *text, size_t n)
{
    if (!reserve_text(b, n))
        return;
    memcpy(b->text + b->length, text, n);
    b->length += n;
    b->text[b->length] = '\0';
}

void chat_append(struct chat_builder *b, const char *text)
{
    chat_append_n(b, text, strlen(text));
}

void chat_begin_assistant(struct chat_builder *b, int message_index)
{
    if (b->out_of_memory)
        return;
    if (b->n_spans == b->span_capacity) {
        int capacity = b->span_capacity ? 2 * b->span_capacity : INITIAL_SPAN_CAPACITY;
        struct al_chat_span *spans = realloc(b->spans, (size_t)capacity * sizeof *spans);
        if (!spans) {
            b->out_of_memory = true;
            return;
        }
        b->spans = spans;
        b->span_capacity = capacity;
    }
    b->spans[b->n_spans++] = (struct al_chat_span){b->length, b->length, message_index};
    b->span_open = true;
}

void chat_end_assistant(struct chat_builder *b)
{
    if (b->span_open && b->n_spans > 0)
        b->spans[b->n_spans - 1].end = b->length;
    b->span_open = false;
}

/* ---- tojson ---------------------------------------------------------------------- */

void chat_append_json_string(struct chat_builder *b, const char *text)
{
    chat_append(b, "\"");
    const char *run = text; /* bytes copied verbatim (ensure_ascii=False keeps UTF-8) */
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        const char *escape = NULL;
        char unicode[8];
        switch (c) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(unicode, sizeof unicode, "\\u%04x", c);
                escape = unicode;
            }
        }
        if (escape) {
            chat_append_n(b, run, (size_t)(p - run));
            chat_append(b, escape);
            run = p + 1;
        }
    }
    chat_append(b, run);
    chat_append(b, "\"");
}

/* Python's repr(float): the shortest digits that read back to the same double, in
 * fixed notation for exponents -4..15 and scientific ("1e+16", "1.5e-05") otherwise. */
static void format_python_float(double value, char *out, size_t size)
{
    if (isnan(value)) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(value)) {
        snprintf(out, size, value > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char scientific[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision - 1, value);
        if (strtod(scientific, NULL) == value)
            break;
    }
    /* scientific is "[-]d[.ddd]e[+-]XX": split it into sign, digits and exponent. */
    const char *p = scientific;
    bool negative = *p == '-';
    if (negative)
        p++;
    char digits[24];
    size_t n_digits = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[n_digits++] = *p;
    digits[n_digits] = '\0';
    int exponent = atoi(p + 1);
    while (n_digits > 1 && digits[n_digits - 1] == '0')
        digits[--n_digits] = '\0';

    char body[48]; /* at most 17 digits, a point, 4 zeros and an exponent */
    size_t used = 0;
    if (exponent >= -4 && exponent < 16) {
        /* Fixed notation: digits d0 d1 ... mean d0.d1... x 10^exponent. */
        size_t integer_digits = exponent >= 0 ? (size_t)exponent + 1 : 0;
        if (integer_digits == 0) {
            used += (size_t)snprintf(body + used, sizeof body - used, "0.");
            for (int i = 0; i < -exponent - 1; i++)
                body[used++] = '0';
            used += (size_t)snprintf(body + used, sizeof body - used, "%s", digits);
        } else if (integer_digits >= n_digits) {
            used += (size_t)snprintf(body + used, sizeof body - used, "%s", digits);
            for (size_t i = n_digits; i < integer_digits; i++)
                body[used++] = '0';
            used += (size_t)snprintf(body + used, sizeof body - used, ".0");
        } else {
            snprintf(body, sizeof body, "%.*s.%s", (int)integer_digits, digits, digits + integer_digits);
        }
    } else {
        snprintf(body, sizeof body, "%c%s%se%c%02d", digits[0], n_digits > 1 ? "." : "", digits + 1,
                 exponent < 0 ? '-' : '+', abs(exponent));
    }
    snprintf(out, size, "%s%s", negative ? "-" : "", body);
}

/* cJSON keeps one double per number; al_json_mark_float_literals (conversation.h) keeps
 * the literal of numbers written as floats ("2.0") or as long integers in valuestring.
 * Python prints a float literal as repr(float) and an integer literal as its digits. */
static void append_number(struct chat_builder *b, const cJSON *number)
{
    const char *literal = number->valuestring;
    char text[64];
    if (literal && !strpbrk(literal, ".eE")) {
        chat_append(b, literal);
        return;
    }
    if (literal || number->valuedouble != floor(number->valuedouble))
        format_python_float(number->valuedouble, text, sizeof text);
    else
        snprintf(text, sizeof text, "%.0f", number->valuedouble);
    chat_append(b, text);
}

static void append_newline_indent(struct chat_builder *b, int indent, int depth)
{
    chat_append(b, "\n");
    for (int i = 0; i < indent * depth; i++)
        chat_append(b, " ");
}

static void append_json_value(struct chat_builder *b, const cJSON *value, int indent, int depth);

static void append_container(struct chat_builder *b, const cJSON *value, int indent, int depth)
{
    bool object = cJSON_IsObject(value);
    chat_append(b, object ? "{" : "[");
    if (!value->child) {
        chat_append(b, object ? "}" : "]");
        return;
    }
    for (const cJSON *item = value->child; item; item = item->next) {
        if (indent >= 0)
            append_newline_indent(b, indent, depth + 1);
        if (object) {
            chat_append_json_string(b, item->string ? item->string : "");
            chat_append(b, ": ");
        }
        append_json_value(b, item, indent, depth + 1);
        if (item->next)
            chat_append(b, indent >= 0 ? "," : ", ");
    }
    if (indent >= 0)
        append_newline_indent(b, indent, depth);
    chat_append(b, object ? "}" : "]");
}

static void append_json_value(struct chat_builder *b, const cJSON *value, int indent, int depth)
{
    if (cJSON_IsObject(value) || cJSON_IsArray(value))
        append_container(b, value, indent, depth);
    else if (cJSON_IsString(value))
        chat_append_json_string(b, value->valuestring);
    else if (cJSON_IsNumber(value))
        append_number(b, value);
    else if (cJSON_IsTrue(value))
        chat_append(b, "true");
    else if (cJSON_IsFalse(value))
        chat_append(b, "false");
    else
        chat_append(b, "null");
}

void chat_append_json(struct chat_builder *b, const cJSON *value, int indent)
{
    append_json_value(b, value, indent, 0);
}

/* ---- trim ------------------------------------------------------------------------ */

/* Decodes one UTF-8 sequence at p (within end); returns its length, or 1 for a stray byte. */
static size_t decode_utf8(const unsigned char *p, const unsigned char *end, uint32_t *code)
{
    size_t length = *p < 0x80 ? 1 : (*p >> 5) == 0x6 ? 2 : (*p >> 4) == 0xe ? 3 : (*p >> 3) == 0x1e ? 4 : 1;
    if ((size_t)(end - p) < length)
        length = 1;
    *code = length == 1 ? *p : (uint32_t)(*p & (0x7f >> length));
    for (size_t i = 1; i < length; i++)
        *code = (*code << 6) | (p[i] & 0x3f);
    return length;
}

/* The characters for which Python's str.isspace() is true. */
static bool is_python_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

void chat_trim(const char *text, const char **begin, size_t *length)
{
    const unsigned char *start = (const unsigned char *)text;
    const unsigned char *end = start + strlen(text);
    uint32_t code;
    while (start < end) {
        size_t n = decode_utf8(start, end, &code);
        if (!is_python_space(code))
            break;
        start += n;
    }
    while (end > start) {
        const unsigned char *last = end - 1;
        while (last > start && (*last & 0xc0) == 0x80) /* back to the sequence's first byte */
            last--;
        decode_utf8(last, end, &code);
        if (!is_python_space(code))
            break;
        end = last;
    }
    *begin = (const char *)start;
    *length = (size_t)(end - start);
}

void chat_append_trimmed(struct chat_builder *b, const char *text)
{
    const char *begin;
    size_t length;
    chat_trim(text, &begin, &length);
    chat_append_n(b, begin, length);
}

void chat_append_arguments_tojson(struct chat_builder *b, const struct al_tool_call *call)
{
    if (call->arguments_was_string && call->arguments_text && !b->string_arguments_as_objects)
        chat_append_json_string(b, call->arguments_text);
    else
        chat_append_json(b, call->arguments, -1);
}

size_t chat_utf8_length(const char *text)
{
    size_t count = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if ((*p & 0xc0) != 0x80)
            count++;
    return count;
}
