/* The record reader: an iterator over a mapped data file that hands out one
 * conversation at a time. The file is never parsed whole; each record's bytes (an array
 * element found by the splitter, or one line of JSON Lines) are parsed on their own and
 * freed before the next, so a 222 MB file costs the mapping plus one record. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/log.h"

struct al_reader {
    struct al_mapped_file owned_file; /* set when the reader mapped the file itself */
    const char *text;
    size_t size;
    const char *path;
    enum al_data_format format;
    struct al_reader_options options;
    struct al_json_array_scanner scanner; /* JSON array */
    size_t line_cursor;                   /* JSON Lines: start of the next line */
    long line_number;                     /* JSON Lines: line of the record last read */
    long lines_counted_to_offset;         /* line_at(): incremental newline count */
    size_t counted_offset;
    long record_number;
    size_t last_offset, last_length;
    struct al_load_summary summary;
};

const char *al_data_format_name(enum al_data_format format)
{
    switch (format) {
    case AL_DATA_JSON_ARRAY: return "AgentAlign JSON array";
    case AL_DATA_JSONL: return "AgentAlign JSON Lines";
    case AL_DATA_GENERIC_JSONL: return "generic messages JSON Lines";
    default: return "unknown";
    }
}

/* Line of a byte offset; offsets only grow while reading, so counting continues from
 * the last question instead of rescanning the file. */
static long line_at(struct al_reader *reader, size_t offset)
{
    if (offset < reader->counted_offset) {
        reader->counted_offset = 0;
        reader->lines_counted_to_offset = 1;
    }
    const char *p = reader->text + reader->counted_offset;
    const char *end = reader->text + offset;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        reader->lines_counted_to_offset++;
        p++;
    }
    reader->counted_offset = offset;
    return reader->lines_counted_to_offset;
}

static size_t first_content_byte(const char *text, size_t size)
{
    size_t i = size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (i < size && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    return i;
}

static bool has_key(const cJSON *object, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(object, key) != NULL;
}

/* JSON Lines come in two flavours that differ only in labels: AgentAlign records carry
 * id/category/pattern, generic ones only messages (and tools). */
static enum al_data_format jsonl_flavour(const char *line, size_t length)
{
    cJSON *first = cJSON_ParseWithLength(line, length);
    enum al_data_format format = AL_DATA_JSONL;
    if (cJSON_IsObject(first) && has_key(first, "messages") && !has_key(first, "category") &&
        !has_key(first, "id") && !has_key(first, "pattern"))
        format = AL_DATA_GENERIC_JSONL;
    cJSON_Delete(first);
    return format;
}

static int describe_bad_start(const struct al_reader *reader, size_t at)
{
    unsigned char c = (unsigned char)reader->text[at];
    if (c >= 0x20 && c < 0x7f)
        return al_fail("%s: not a data file: expected a JSON array ('[') or JSON Lines ('{'), found '%c'",
                       reader->path, c);
    return al_fail("%s: not a data file: expected a JSON array ('[') or JSON Lines ('{'), found byte 0x%02x",
                   reader->path, c);
}

static int detect_format(struct al_reader *reader)
{
    size_t at = first_content_byte(reader->text, reader->size);
    if (at >= reader->size)
        return al_fail("%s: the file is empty", reader->path);
    if (reader->text[at] == '[') {
        reader->format = AL_DATA_JSON_ARRAY;
        return al_json_array_scanner_init(&reader->scanner, reader->text, reader->size, reader->path);
    }
    if (reader->text[at] != '{')
        return describe_bad_start(reader, at);
    const char *newline = memchr(reader->text + at, '\n', reader->size - at);
    size_t line_end = newline ? (size_t)(newline - reader->text) : reader->size;
    reader->format = jsonl_flavour(reader->text + at, line_end - at);
    return 0;
}

static struct al_reader *open_over(struct al_reader *reader, const struct al_mapped_file *file,
                                   const struct al_reader_options *options)
{
    reader->text = (const char *)file->data;
    reader->size = file->size;
    reader->path = file->path;
    reader->lines_counted_to_offset = 1;
    if (options)
        reader->options = *options;
    if (reader->size == 0 || !reader->text) {
        al_fail("%s: the file is empty", reader->path);
        al_reader_close(reader);
        return NULL;
    }
    if (detect_format(reader) != 0) {
        al_reader_close(reader);
        return NULL;
    }
    return reader;
}

struct al_reader *al_reader_open_mapped(const struct al_mapped_file *file, const struct al_reader_options *options)
{
    struct al_reader *reader = calloc(1, sizeof *reader);
    if (!reader)
        return al_fail_null("out of memory");
    return open_over(reader, file, options);
}

struct al_reader *al_reader_open(const char *path, const struct al_reader_options *options)
{
    struct al_reader *reader = calloc(1, sizeof *reader);
    if (!reader)
        return al_fail_null("out of memory");
    if (al_file_map(&reader->owned_file, path) != 0) {
        free(reader);
        return NULL;
    }
    return open_over(reader, &reader->owned_file, options);
}

void al_reader_close(struct al_reader *reader)
{
    if (!reader)
        return;
    al_load_summary_free(&reader->summary);
    al_file_unmap(&reader->owned_file);
    free(reader);
}

enum al_data_format al_reader_format(const struct al_reader *reader)
{
    return reader->format;
}

void al_reader_last_record(const struct al_reader *reader, size_t *offset, size_t *length, long *record_number)
{
    if (offset)
        *offset = reader->last_offset;
    if (length)
        *length = reader->last_length;
    if (record_number)
        *record_number = reader->record_number;
}

const struct al_load_summary *al_reader_summary(const struct al_reader *reader)
{
    return &reader->summary;
}

void al_reader_take_summary(struct al_reader *reader, struct al_load_summary *summary)
{
    *summary = reader->summary;
    memset(&reader->summary, 0, sizeof reader->summary);
}

static bool is_blank(const char *text, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r')
            return false;
    return true;
}

/* The next non-blank line of a JSON Lines file: 1 found, 0 end of file. */
static int next_line(struct al_reader *reader, size_t *offset, size_t *length)
{
    while (reader->line_cursor < reader->size) {
        size_t start = reader->line_cursor;
        const char *newline = memchr(reader->text + start, '\n', reader->size - start);
        size_t end = newline ? (size_t)(newline - reader->text) : reader->size;
        reader->line_cursor = newline ? end + 1 : reader->size;
        reader->line_number++;
        if (is_blank(reader->text + start, end - start))
            continue;
        *offset = start;
        *length = end - start;
        return 1;
    }
    return 0;
}

/* Where the record lies, for messages: arrays by line of the element's first byte. */
static long record_line(struct al_reader *reader)
{
    return reader->format == AL_DATA_JSON_ARRAY ? line_at(reader, reader->last_offset) : reader->line_number;
}

static bool only_space_after(const char *from, const char *end)
{
    for (; from < end; from++)
        if (*from != ' ' && *from != '\t' && *from != '\r' && *from != '\n')
            return false;
    return true;
}

/* Parses the record's bytes; the error names file, record and line. */
static cJSON *parse_record_json(struct al_reader *reader)
{
    const char *start = reader->text + reader->last_offset;
    const char *end_of_value = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(start, reader->last_length, &end_of_value, 0);
    if (!json || !only_space_after(end_of_value, start + reader->last_length)) {
        cJSON_Delete(json);
        long offset_in_record = end_of_value && end_of_value >= start ? (long)(end_of_value - start) : 0;
        return al_fail_null("%s: record %ld (line %ld): invalid JSON at byte %ld of the record", reader->path,
                            reader->record_number, record_line(reader), offset_in_record);
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return al_fail_null("%s: record %ld (line %ld): a record must be a JSON object", reader->path,
                            reader->record_number, record_line(reader));
    }
    return json;
}

/* One record from bytes to a checked conversation; -1 leaves a record-level error. */
static int build_record(struct al_reader *reader, struct al_conversation *conv)
{
    cJSON *json = parse_record_json(reader);
    if (!json)
        return -1;
    memset(conv, 0, sizeof *conv);
    /* Keep float literals ("2.0") so chat templates print numbers as Python would. */
    int rc = al_json_mark_float_literals(json, reader->text + reader->last_offset, reader->last_length);
    if (rc == 0)
        rc = al_conversation_from_json(conv, json, reader->path, reader->record_number);
    cJSON_Delete(json);
    if (rc == 0 && al_tool_schemas_check(conv->tools, reader->path, reader->record_number) != 0) {
        al_conversation_free(conv);
        rc = -1;
    }
    return rc;
}

/* 1: bytes of the next record; 0: end; -1: structural error (always fatal). */
static int next_record_bytes(struct al_reader *reader)
{
    int got = reader->format == AL_DATA_JSON_ARRAY
                  ? al_json_array_scanner_next(&reader->scanner, &reader->last_offset, &reader->last_length)
                  : next_line(reader, &reader->last_offset, &reader->last_length);
    if (got == 1)
        reader->record_number++;
    return got;
}

int al_reader_next(struct al_reader *reader, struct al_conversation *conv)
{
    for (;;) {
        int got = next_record_bytes(reader);
        if (got <= 0)
            return got;
        if (build_record(reader, conv) == 0) {
            if (al_load_summary_add_record(&reader->summary, conv) == -1) {
                al_conversation_free(conv);
                return -1;
            }
            return 1;
        }
        if (reader->options.strict)
            return -1;
        al_log_warn("skipping: %s", al_error_message());
        al_load_summary_add_skip(&reader->summary, al_error_message());
        al_error_clear();
    }
}
