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
    struct al_id_set ids; /* record ids seen, to say when one repeats */
};

const char *al_data_format_name(enum al_data_format format)
{
    switch (format) {
    case AL_DATA_JSON_ARRAY: return "AgentAlign JSON array";
    case AL_DATA_JSONL: return "AgentAlign JSON Lines";
    case AL_DATA_GENERIC_JSONL: return "JSON Lines without AgentAlign labels";
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

static long count_newlines(const char *text, size_t length)
{
    long lines = 0;
    for (const char *p = text; (p = memchr(p, '\n', (size_t)(text + length - p))) != NULL; p++)
        lines++;
    return lines;
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
 * id/category/pattern, generic ones only the conversation (messages and tools, or the
 * Alpaca or ShareGPT fields). */
static enum al_data_format jsonl_flavour(const char *line, size_t length)
{
    cJSON *first = cJSON_ParseWithLength(line, length);
    enum al_data_format format = AL_DATA_JSONL;
    if (cJSON_IsObject(first) && !has_key(first, "category") &&
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

static bool parses_as_json(const char *text, size_t length)
{
    cJSON *json = cJSON_ParseWithLength(text, length);
    bool parsed = json != NULL;
    cJSON_Delete(json);
    return parsed;
}

/* A file that starts with '{' reads as JSON Lines, but an object spread over several
 * lines (pretty-printed) would then give one warning per line. When the first line is
 * not JSON on its own and the first object, read across lines, is, say what the file is. */
static int refuse_pretty_printed(const struct al_reader *reader, size_t at, size_t line_end)
{
    if (parses_as_json(reader->text + at, line_end - at))
        return 0;
    size_t end = al_json_value_end(reader->text, reader->size, at);
    if (end == SIZE_MAX || end <= line_end || !parses_as_json(reader->text + at, end - at))
        return 0;
    if (first_content_byte(reader->text + end, reader->size - end) == reader->size - end)
        return al_fail("%s: a single record object; expected an array of records ([{...}, ...]) or JSON Lines "
                       "(one record per line)",
                       reader->path);
    return al_fail("%s: the first record spans lines %ld to %ld: JSON Lines needs one record per line (or "
                   "wrap the records in a JSON array)",
                   reader->path, 1L + count_newlines(reader->text, at), 1L + count_newlines(reader->text, end));
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
    if (refuse_pretty_printed(reader, at, line_end) != 0)
        return -1;
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
    al_id_set_free(&reader->ids);
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

/* Parses the record's bytes; the error names file, record and line. */
static cJSON *parse_record_json(struct al_reader *reader, struct al_record_json_notes *notes)
{
    cJSON *json = al_record_json_parse(reader->text + reader->last_offset, reader->last_length, notes);
    if (!json) {
        al_error_context("%s: record %ld (line %ld)", reader->path, reader->record_number, record_line(reader));
        return NULL;
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return al_fail_null("%s: record %ld (line %ld): a record must be a JSON object", reader->path,
                            reader->record_number, record_line(reader));
    }
    return json;
}

static bool has_assistant_turn(const struct al_conversation *conv)
{
    for (int i = 0; i < conv->n_messages; i++)
        if (conv->messages[i].role == AL_ROLE_ASSISTANT)
            return true;
    return false;
}

/* Checks that only training needs: a record without an assistant turn has nothing to
 * learn from (its loss mask would be empty). */
static int check_trainable(const struct al_reader *reader, const struct al_conversation *conv)
{
    if (reader->options.require_assistant && !has_assistant_turn(conv))
        return al_fail("%s: record %ld: no assistant message, so nothing to train on", reader->path,
                       reader->record_number);
    return 0;
}

/* Duplicates are warned about one by one up to this many of each kind; the rest are only
 * counted (the summary gives the totals), so a file full of them does not flood the log. */
#define MAX_DUPLICATE_WARNINGS 5

static void warn_duplicate_keys(struct al_reader *reader, const struct al_record_json_notes *notes)
{
    if (notes->duplicate_keys == 0 || ++reader->summary.duplicate_keys > MAX_DUPLICATE_WARNINGS)
        return;
    al_log_warn("%s: record %ld (line %ld): key \"%s\" appears more than once%s; the last value is used (as "
                "Python's json does)",
                reader->path, reader->record_number, record_line(reader), notes->first_duplicate,
                notes->duplicate_keys > 1 ? " (and other keys too)" : "");
}

/* One record from bytes to a checked conversation; -1 leaves a record-level error. */
static int build_record(struct al_reader *reader, struct al_conversation *conv)
{
    struct al_record_json_notes notes;
    cJSON *json = parse_record_json(reader, &notes);
    if (!json)
        return -1;
    int rc = al_conversation_from_json(conv, json, reader->path, reader->record_number);
    cJSON_Delete(json);
    if (rc == 0 && (al_tool_schemas_check(conv->tools, reader->path, reader->record_number) != 0 ||
                    check_trainable(reader, conv) != 0)) {
        al_conversation_free(conv);
        rc = -1;
    }
    if (rc == 0)
        warn_duplicate_keys(reader, &notes);
    return rc;
}

/* A repeated id is kept (ids are labels, not keys), but said: it usually means a file
 * was concatenated twice, which would weight those records double. */
static int note_record_id(struct al_reader *reader, const struct al_conversation *conv)
{
    if (!conv->id)
        return 0;
    long first_record;
    int added = al_id_set_add(&reader->ids, conv->id, reader->record_number, &first_record);
    if (added < 0)
        return al_fail("out of memory reading %s", reader->path);
    if (added == 0 && ++reader->summary.duplicate_ids <= MAX_DUPLICATE_WARNINGS) {
        al_log_warn("%s: record %ld: id \"%.64s\" was already used by record %ld", reader->path,
                    reader->record_number, conv->id, first_record);
    }
    return 0;
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
            if (note_record_id(reader, conv) != 0 || al_load_summary_add_record(&reader->summary, conv) == -1) {
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
