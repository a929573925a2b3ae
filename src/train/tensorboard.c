/* TensorBoard event files: TFRecord framing around hand-encoded Event protobufs (the
 * formats are summarised in metrics.h). Only the handful of fields TensorBoard needs for
 * scalar curves are written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/checkpoint.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/metrics.h"

/* The version string TensorFlow and TensorBoard write as the first event of a file. */
#define EVENT_FILE_VERSION "brain.Event:2"
#define TFRECORD_MASK_DELTA 0xa282ead8u

/* event.proto and summary.proto field numbers. */
enum {
    EVENT_WALL_TIME = 1,
    EVENT_STEP = 2,
    EVENT_FILE_VERSION_FIELD = 3,
    EVENT_SUMMARY = 5,
    EVENT_SESSION_LOG = 7,
    SUMMARY_VALUE = 1,
    VALUE_TAG = 1,
    VALUE_SIMPLE_VALUE = 2,
    SESSION_LOG_STATUS = 1,
    SESSION_LOG_START = 1,
};

/* Protobuf wire types. */
enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LENGTH_DELIMITED = 2, WIRE_FIXED32 = 5 };

struct al_tfevents {
    FILE *file;
    char *path;
};

/* ---- a growable byte buffer for one protobuf message ---- */

struct bytes {
    uint8_t *data;
    size_t length, capacity;
    bool failed;
};

static void put(struct bytes *b, const void *data, size_t size)
{
    if (b->failed)
        return;
    if (b->length + size > b->capacity) {
        size_t capacity = 2 * (b->capacity + size) + 64;
        uint8_t *grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, data, size);
    b->length += size;
}

static void put_varint(struct bytes *b, uint64_t value)
{
    uint8_t encoded[10];
    int n = 0;
    do {
        encoded[n] = value & 0x7f;
        value >>= 7;
        if (value)
            encoded[n] |= 0x80;
        n++;
    } while (value);
    put(b, encoded, (size_t)n);
}

static void put_key(struct bytes *b, int field, int wire_type)
{
    put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

static void put_le(struct bytes *b, uint64_t value, int size)
{
    uint8_t encoded[8];
    for (int i = 0; i < size; i++)
        encoded[i] = (uint8_t)(value >> (8 * i));
    put(b, encoded, (size_t)size);
}

static void put_double(struct bytes *b, int field, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_key(b, field, WIRE_FIXED64);
    put_le(b, bits, 8);
}

static void put_float(struct bytes *b, int field, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_key(b, field, WIRE_FIXED32);
    put_le(b, bits, 4);
}

static void put_bytes(struct bytes *b, int field, const void *data, size_t size)
{
    put_key(b, field, WIRE_LENGTH_DELIMITED);
    put_varint(b, size);
    put(b, data, size);
}

/* int64 fields are varints of the two's-complement value. */
static void put_int64(struct bytes *b, int field, int64_t value)
{
    put_key(b, field, WIRE_VARINT);
    put_varint(b, (uint64_t)value);
}

/* ---- records ---- */

uint32_t al_tfrecord_masked_crc(const void *data, size_t size)
{
    uint32_t crc = al_crc32c(data, size);
    return ((crc >> 15) | (crc << 17)) + TFRECORD_MASK_DELTA;
}

static int write_record(struct al_tfevents *events, const struct bytes *message)
{
    if (message->failed)
        return al_fail("out of memory encoding a TensorBoard event");
    struct bytes frame = {0};
    put_le(&frame, message->length, 8);
    put_le(&frame, al_tfrecord_masked_crc(frame.data, 8), 4);
    put(&frame, message->data, message->length);
    put_le(&frame, al_tfrecord_masked_crc(message->data, message->length), 4);
    int rc = 0;
    if (frame.failed)
        rc = al_fail("out of memory encoding a TensorBoard event");
    else if (fwrite(frame.data, 1, frame.length, events->file) != frame.length || fflush(events->file) != 0)
        rc = al_fail_errno("%s: write failed", events->path);
    free(frame.data);
    return rc;
}

/* An Event's common head: wall_time and step. */
static void put_event_head(struct bytes *event, double wall_time, int64_t step)
{
    put_double(event, EVENT_WALL_TIME, wall_time);
    if (step != 0) /* proto3 leaves default values out */
        put_int64(event, EVENT_STEP, step);
}

int al_tfevents_write_scalars(struct al_tfevents *events, double wall_time, int64_t step, const char *const *tags,
                              const float *values, int count)
{
    struct bytes summary = {0}, event = {0};
    for (int i = 0; i < count; i++) {
        struct bytes value = {0};
        put_bytes(&value, VALUE_TAG, tags[i], strlen(tags[i]));
        put_float(&value, VALUE_SIMPLE_VALUE, values[i]);
        put_bytes(&summary, SUMMARY_VALUE, value.data, value.length);
        summary.failed |= value.failed;
        free(value.data);
    }
    put_event_head(&event, wall_time, step);
    put_bytes(&event, EVENT_SUMMARY, summary.data, summary.length);
    event.failed |= summary.failed;
    int rc = write_record(events, &event);
    free(summary.data);
    free(event.data);
    return rc;
}

int al_tfevents_write_restart(struct al_tfevents *events, double wall_time, int64_t step)
{
    struct bytes session_log = {0}, event = {0};
    put_key(&session_log, SESSION_LOG_STATUS, WIRE_VARINT);
    put_varint(&session_log, SESSION_LOG_START);
    put_event_head(&event, wall_time, step);
    put_bytes(&event, EVENT_SESSION_LOG, session_log.data, session_log.length);
    event.failed |= session_log.failed;
    int rc = write_record(events, &event);
    free(session_log.data);
    free(event.data);
    return rc;
}

static int write_file_version(struct al_tfevents *events, double wall_time)
{
    struct bytes event = {0};
    put_event_head(&event, wall_time, 0);
    put_bytes(&event, EVENT_FILE_VERSION_FIELD, EVENT_FILE_VERSION, strlen(EVENT_FILE_VERSION));
    int rc = write_record(events, &event);
    free(event.data);
    return rc;
}

/* ---- the file ---- */

struct al_tfevents *al_tfevents_open(const char *dir)
{
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++) /* keep the file name one path component */
        if (*p == '/')
            *p = '_';
    if (al_mkdirs(dir) != 0)
        return NULL;
    double now = al_wall_time();
    struct al_tfevents *events = calloc(1, sizeof *events);
    if (!events)
        return al_fail_null("out of memory");
    events->path = al_strdup_printf("%s/events.out.tfevents.%lld.%s.%ld", dir, (long long)now, host, (long)getpid());
    if (!events->path) {
        free(events);
        return al_fail_null("out of memory");
    }
    /* Appending: a second writer in the same second (and process) adds valid records. */
    events->file = fopen(events->path, "ab");
    if (!events->file) {
        al_fail_errno("%s: cannot create", events->path);
        al_tfevents_close(events);
        return NULL;
    }
    if (write_file_version(events, now) != 0) {
        al_tfevents_close(events);
        return NULL;
    }
    return events;
}

const char *al_tfevents_path(const struct al_tfevents *events)
{
    return events->path;
}

void al_tfevents_close(struct al_tfevents *events)
{
    if (!events)
        return;
    if (events->file)
        fclose(events->file);
    free(events->path);
    free(events);
}
