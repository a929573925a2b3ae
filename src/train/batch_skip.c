/* Batch names and skip_batches (see batch_skip.h). */
#include "train/batch_skip.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/log.h"

/* How many records a batch description lists before it only counts. */
#define RECORDS_LISTED 16

/* ---- skip_batches ---- */

static bool parse_count(const char **text, int64_t *value)
{
    if (**text < '0' || **text > '9')
        return false;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll(*text, &end, 10);
    if (errno != 0)
        return false;
    *value = parsed;
    *text = end;
    return true;
}

static void skip_spaces(const char **text)
{
    while (**text == ' ')
        (*text)++;
}

/* One "EPOCH:POSITION" at *text, advancing past it. */
static bool parse_start(const char **text, struct al_data_cursor *start)
{
    skip_spaces(text);
    if (!parse_count(text, &start->epoch) || **text != ':')
        return false;
    (*text)++;
    if (!parse_count(text, &start->position))
        return false;
    skip_spaces(text);
    return true;
}

int al_batch_skips_parse(const char *text, struct al_batch_skips *skips)
{
    memset(skips, 0, sizeof *skips);
    const char *p = text;
    skip_spaces(&p);
    if (*p == '\0')
        return 0;
    int capacity = 1;
    for (const char *c = text; *c; c++)
        capacity += *c == ',';
    if (capacity > AL_SKIP_BATCHES_MAX)
        return al_fail("key 'skip_batches': %d entries, at most %d", capacity, AL_SKIP_BATCHES_MAX);
    skips->starts = calloc((size_t)capacity, sizeof *skips->starts);
    skips->used = calloc((size_t)capacity, sizeof *skips->used);
    if (!skips->starts || !skips->used) {
        al_batch_skips_free(skips);
        return al_fail("out of memory");
    }
    for (;;) {
        if (!parse_start(&p, &skips->starts[skips->count])) {
            al_batch_skips_free(skips);
            return al_fail("key 'skip_batches': '%s' is not a list of batch positions EPOCH:POSITION such as 0:40,0:52",
                           text);
        }
        skips->count++;
        if (*p == '\0')
            return 0;
        if (*p != ',') {
            al_batch_skips_free(skips);
            return al_fail("key 'skip_batches': unexpected '%c' in '%s' (entries are EPOCH:POSITION, separated by "
                           "commas)",
                           *p, text);
        }
        p++;
    }
}

void al_batch_skips_free(struct al_batch_skips *skips)
{
    free(skips->starts);
    free(skips->used);
    memset(skips, 0, sizeof *skips);
}

bool al_batch_skips_take(struct al_batch_skips *skips, const struct al_data_stream *stream,
                         struct al_data_cursor start)
{
    start = al_data_stream_normalise_cursor(stream, start);
    for (int i = 0; i < skips->count; i++) {
        struct al_data_cursor listed = al_data_stream_normalise_cursor(stream, skips->starts[i]);
        if (!skips->used[i] && listed.epoch == start.epoch && listed.position == start.position) {
            skips->used[i] = true;
            return true;
        }
    }
    return false;
}

void al_batch_skips_report_unused(const struct al_batch_skips *skips)
{
    for (int i = 0; i < skips->count; i++)
        if (!skips->used[i])
            al_log_warn("skip_batches: no batch of this run started at %" PRId64 ":%" PRId64
                        " (a position before the run's start, after its end, or not the start of a batch); "
                        "nothing was skipped there",
                        skips->starts[i].epoch, skips->starts[i].position);
}

/* ---- describing a batch ---- */

struct text {
    char buffer[2048];
    size_t used;
};

static void append(struct text *text, const char *fmt, ...) AL_PRINTF(2, 3);

static void append(struct text *text, const char *fmt, ...)
{
    if (text->used >= sizeof text->buffer)
        return;
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(text->buffer + text->used, sizeof text->buffer - text->used, fmt, args);
    va_end(args);
    if (n > 0)
        text->used += (size_t)n;
}

char *al_batch_describe(const struct al_data_stream *stream, const char *data_path, struct al_data_cursor from,
                        struct al_data_cursor to)
{
    from = al_data_stream_normalise_cursor(stream, from);
    struct text text = {.used = 0};
    append(&text, "%" PRId64 ":%" PRId64, from.epoch, from.position);
    const struct al_record_entry **records = NULL;
    int count = 0;
    if (al_data_stream_batch_records(stream, from, to, &records, &count) != 0) {
        append(&text, " [its records cannot be listed: %s]", al_error_message());
        al_error_clear();
    } else {
        append(&text, " [record%s ", count == 1 ? "" : "s");
        for (int i = 0; i < count && i < RECORDS_LISTED; i++) {
            append(&text, "%s%ld", i ? ", " : "", records[i]->record_number);
            if (records[i]->id)
                append(&text, " (id %s)", records[i]->id);
        }
        if (count > RECORDS_LISTED)
            append(&text, " and %d more", count - RECORDS_LISTED);
        append(&text, " of %s]", data_path);
    }
    free((void *)records);
    char *out = strdup(text.buffer);
    return out ? out : al_fail_null("out of memory");
}
