/* metrics.jsonl and TensorBoard event files: records read back through their framing
 * (CRCs checked) and a small protobuf decoder. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/checkpoint.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/metrics.h"
#include "test_support.h"

Test(train_metrics, crc32c_matches_published_check_values)
{
    /* The CRC-32C check value, and RFC 3720 B.4's 32 zero bytes. */
    cr_assert_eq(al_crc32c("123456789", 9), 0xe3069283u);
    uint8_t zeros[32] = {0};
    cr_assert_eq(al_crc32c(zeros, sizeof zeros), 0x8a9136aau);
    uint8_t ones[32];
    memset(ones, 0xff, sizeof ones);
    cr_assert_eq(al_crc32c(ones, sizeof ones), 0x62a8ab43u);
    cr_assert_eq(al_crc32c_update(al_crc32c("1234", 4), "56789", 5), 0xe3069283u, "checksums chain");
}

/* ---- a reader for what the writer wrote ---- */

struct record {
    const uint8_t *data;
    uint64_t length;
};

static uint64_t read_le(const uint8_t *p, int size)
{
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; i--)
        value = (value << 8) | p[i];
    return value;
}

/* Splits a TFRecord file, asserting both CRCs of every record. */
static int split_records(const uint8_t *data, size_t size, struct record *records, int capacity)
{
    size_t offset = 0;
    int count = 0;
    while (offset < size) {
        cr_assert_leq(offset + 12, size, "truncated record header");
        uint64_t length = read_le(data + offset, 8);
        cr_assert_eq((uint32_t)read_le(data + offset + 8, 4), al_tfrecord_masked_crc(data + offset, 8),
                     "length CRC of record %d", count);
        cr_assert_leq(offset + 12 + length + 4, size, "truncated record data");
        const uint8_t *payload = data + offset + 12;
        cr_assert_eq((uint32_t)read_le(payload + length, 4), al_tfrecord_masked_crc(payload, length),
                     "data CRC of record %d", count);
        cr_assert_lt(count, capacity);
        records[count++] = (struct record){payload, length};
        offset += 12 + length + 4;
    }
    return count;
}

/* One protobuf field: number, wire type, and its value (varint/fixed) or bytes. */
struct field {
    int number, wire;
    uint64_t value;
    const uint8_t *bytes;
    uint64_t length;
};

static uint64_t read_varint(const uint8_t **p)
{
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
        uint8_t byte = *(*p)++;
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return value;
    }
}

static bool next_field(const uint8_t **p, const uint8_t *end, struct field *f)
{
    if (*p >= end)
        return false;
    uint64_t key = read_varint(p);
    f->number = (int)(key >> 3);
    f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0: f->value = read_varint(p); break;
    case 1: f->value = read_le(*p, 8), *p += 8; break;
    case 5: f->value = read_le(*p, 4), *p += 4; break;
    case 2:
        f->length = read_varint(p);
        f->bytes = *p;
        *p += f->length;
        break;
    default: cr_assert_fail("unexpected wire type %d", f->wire);
    }
    cr_assert_leq(*p, end, "field runs past its message");
    return true;
}

struct event {
    double wall_time;
    int64_t step;
    char file_version[32];
    char tags[4][64];
    float values[4];
    int value_count;
    int session_status;
};

static void decode_value(struct event *e, const uint8_t *p, const uint8_t *end)
{
    struct field f;
    int i = e->value_count++;
    while (next_field(&p, end, &f)) {
        if (f.number == 1 && f.wire == 2)
            snprintf(e->tags[i], sizeof e->tags[i], "%.*s", (int)f.length, (const char *)f.bytes);
        if (f.number == 2 && f.wire == 5) {
            uint32_t bits = (uint32_t)f.value;
            memcpy(&e->values[i], &bits, 4);
        }
    }
}

static struct event decode_event(struct record r)
{
    struct event e = {0};
    const uint8_t *p = r.data, *end = r.data + r.length;
    struct field f;
    while (next_field(&p, end, &f)) {
        if (f.number == 1 && f.wire == 1)
            memcpy(&e.wall_time, &f.value, 8);
        else if (f.number == 2 && f.wire == 0)
            e.step = (int64_t)f.value;
        else if (f.number == 3 && f.wire == 2)
            snprintf(e.file_version, sizeof e.file_version, "%.*s", (int)f.length, (const char *)f.bytes);
        else if (f.number == 5 && f.wire == 2) {
            const uint8_t *q = f.bytes, *summary_end = f.bytes + f.length;
            struct field value;
            while (next_field(&q, summary_end, &value))
                if (value.number == 1 && value.wire == 2)
                    decode_value(&e, value.bytes, value.bytes + value.length);
        } else if (f.number == 7 && f.wire == 2) {
            const uint8_t *q = f.bytes;
            struct field status;
            while (next_field(&q, f.bytes + f.length, &status))
                if (status.number == 1)
                    e.session_status = (int)status.value;
        }
    }
    return e;
}

static int read_events(const char *path, struct event *events, int capacity)
{
    struct al_mapped_file file;
    cr_assert_eq(al_file_map(&file, path), 0, "%s", al_error_message());
    struct record records[16];
    int count = split_records(file.data, file.size, records, 16);
    cr_assert_leq(count, capacity);
    for (int i = 0; i < count; i++)
        events[i] = decode_event(records[i]);
    al_file_unmap(&file);
    return count;
}

Test(train_metrics, event_file_reads_back)
{
    char *dir = test_tmpdir();
    struct al_tfevents *writer = al_tfevents_open(dir);
    cr_assert_not_null(writer, "%s", al_error_message());
    const char *base = strrchr(al_tfevents_path(writer), '/') + 1;
    cr_assert(strncmp(base, "events.out.tfevents.", 20) == 0, "%s", base);
    const char *tags[] = {"train/loss", "train/lr"};
    for (int step = 1; step <= 3; step++) {
        float values[] = {3.0f / (float)step, 2e-4f * (float)step};
        cr_assert_eq(al_tfevents_write_scalars(writer, 1700000000.5 + step, step, tags, values, 2), 0);
    }
    cr_assert_eq(al_tfevents_write_restart(writer, 1700000010.0, 3), 0);
    char *path = strdup(al_tfevents_path(writer));
    al_tfevents_close(writer);

    struct event events[8];
    int count = read_events(path, events, 8);
    cr_assert_eq(count, 5);
    cr_assert_str_eq(events[0].file_version, "brain.Event:2");
    for (int step = 1; step <= 3; step++) {
        struct event *e = &events[step];
        cr_assert_eq(e->step, step);
        cr_assert_eq(e->wall_time, 1700000000.5 + step);
        cr_assert_eq(e->value_count, 2);
        cr_assert_str_eq(e->tags[0], "train/loss");
        cr_assert_str_eq(e->tags[1], "train/lr");
        cr_assert_eq(e->values[0], 3.0f / (float)step);
        cr_assert_eq(e->values[1], 2e-4f * (float)step);
    }
    cr_assert_eq(events[4].session_status, 1, "SessionLog START");
    cr_assert_eq(events[4].step, 3);
    free(path);
    free(dir);
}

static char *find_event_file(const char *dir, int nth)
{
    DIR *d = opendir(dir);
    struct dirent *entry;
    char *names[4] = {0};
    int count = 0;
    while ((entry = readdir(d)) != NULL && count < 4)
        if (strncmp(entry->d_name, "events.out.tfevents.", 20) == 0)
            names[count++] = strdup(entry->d_name);
    closedir(d);
    cr_assert_gt(count, nth);
    char *path = al_path_join(dir, names[nth]);
    for (int i = 0; i < count; i++)
        free(names[i]);
    return path;
}

static int count_lines_with(const char *path, const char *needle)
{
    char *text = al_file_read_all(path, NULL);
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        count++;
    free(text);
    return count;
}

Test(train_metrics, jsonl_and_events_for_a_run)
{
    char *dir = test_tmpdir();
    char *run = al_path_join(dir, "run");
    struct al_metrics_log *log = al_metrics_open(run, -1);
    cr_assert_not_null(log, "%s", al_error_message());
    for (int step = 1; step <= 4; step++) {
        struct al_metric metrics[] = {{"loss", 1.0 / step}, {"lr", 1e-4}, {"grad_norm", step == 2 ? NAN : 0.5}};
        cr_assert_eq(al_metrics_write(log, "train", step, metrics, 3), 0, "%s", al_error_message());
    }
    struct al_metric eval[] = {{"loss", 0.75}};
    cr_assert_eq(al_metrics_write(log, "eval", 4, eval, 1), 0);
    struct al_metric reserved[] = {{"step", 1}};
    cr_assert_eq(al_metrics_write(log, "train", 5, reserved, 1), -1);
    al_metrics_close(log);

    char *jsonl = al_path_join(run, "metrics.jsonl");
    char *text = al_file_read_all(jsonl, NULL);
    char *line = strtok(text, "\n");
    cJSON *first = cJSON_Parse(line);
    cr_assert_str_eq(cJSON_GetObjectItem(first, "kind")->valuestring, "train");
    cr_assert_eq(cJSON_GetObjectItem(first, "step")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItem(first, "loss")->valuedouble, 1.0);
    cr_assert_eq(cJSON_GetObjectItem(first, "lr")->valuedouble, 1e-4, "values written exactly");
    cr_assert(cJSON_GetObjectItem(first, "wall_time")->valuedouble > 1.6e9);
    cJSON_Delete(first);
    cJSON *second = cJSON_Parse(strtok(NULL, "\n"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(second, "grad_norm")), "NaN is written as null");
    cJSON_Delete(second);
    free(text);
    cr_assert_eq(count_lines_with(jsonl, "\n"), 5);
    cr_assert_eq(count_lines_with(jsonl, "\"eval\""), 1);

    char *events_path = find_event_file(run, 0);
    struct event events[8];
    int count = read_events(events_path, events, 8);
    cr_assert_eq(count, 6, "file_version + 4 train + 1 eval");
    cr_assert_eq(events[2].value_count, 2, "the NaN grad norm is left out of TensorBoard");
    cr_assert_str_eq(events[5].tags[0], "eval/loss");
    cr_assert_eq(events[5].step, 4);
    free(events_path);
    free(jsonl);
    free(run);
    free(dir);
}

Test(train_metrics, resume_drops_records_after_the_checkpoint)
{
    char *dir = test_tmpdir();
    struct al_metrics_log *log = al_metrics_open(dir, -1);
    for (int step = 1; step <= 5; step++) {
        struct al_metric loss = {"loss", step};
        cr_assert_eq(al_metrics_write(log, "train", step, &loss, 1), 0);
    }
    al_metrics_close(log);
    char *jsonl = al_path_join(dir, "metrics.jsonl");
    /* A line cut short by the crash. */
    FILE *f = fopen(jsonl, "a");
    fputs("{\"kind\": \"train\", \"st", f);
    fclose(f);

    log = al_metrics_open(dir, 3);
    cr_assert_not_null(log, "%s", al_error_message());
    struct al_metric loss = {"loss", 40};
    cr_assert_eq(al_metrics_write(log, "train", 4, &loss, 1), 0);
    al_metrics_close(log);
    cr_assert_eq(count_lines_with(jsonl, "\n"), 4, "steps 1-3 kept, then the new step 4");
    cr_assert_eq(count_lines_with(jsonl, "\"step\":5"), 0);
    cr_assert_eq(count_lines_with(jsonl, "\"loss\":40"), 1);
    cr_assert_eq(count_lines_with(jsonl, "\"st\n"), 0, "the torn line is gone");
    free(jsonl);
    free(dir);
}

Test(train_metrics, progress_line_and_summary)
{
    char line[256];
    struct al_progress p = {.step = 30, .total_steps = 100, .session_first_step = 20, .session_seconds = 50.0,
                            .loss = 2.34567, .lr = 1.2e-4, .grad_norm = 0.8712, .tokens_per_second = 1234.4};
    al_progress_format(line, sizeof line, &p, 0);
    /* 10 steps in 50 s this session, 70 to go: 350 s. */
    cr_assert_str_eq(line, "step 30/100 | loss 2.3457 | lr 1.20e-04 | grad 0.871 | 1234 tok/s | eta 5m50s");
    al_progress_format(line, sizeof line, &p, 1);
    cr_assert(strncmp(line, "[######--------------]  30% step 30/100", 39) == 0, "%s", line);
    p.session_first_step = 30;
    al_progress_format(line, sizeof line, &p, 0);
    cr_assert(strstr(line, "eta ?"), "no pace yet right after a resume: %s", line);

    char duration[32];
    al_format_duration(duration, sizeof duration, 7505);
    cr_assert_str_eq(duration, "2h05m");
    al_format_duration(duration, sizeof duration, 45.4);
    cr_assert_str_eq(duration, "45s");

    struct al_run_summary s = {.steps = 100, .tokens = 409600, .seconds = 200, .final_loss = 0.5, .best_loss = 0.45,
                               .best_step = 90, .skipped_steps = 1, .adapter_path = "checkpoints/run/checkpoint-100"};
    char *text = al_run_summary_format(&s);
    cr_assert(strstr(text, "2048 tok/s") && strstr(text, "checkpoint-100") &&
                  strstr(text, "best loss     0.4500 (evaluation at step 90)") && strstr(text, "training finished"),
              "%s", text);
    cr_assert_null(strstr(text, "WARNING"), "%s", text);
    free(text);
}

Test(train_metrics, summary_of_an_interrupted_run_without_evaluation_or_update)
{
    struct al_run_summary s = {.steps = 3, .total_steps = 8, .session_steps = 3, .updates_applied = 0,
                               .final_loss = 0.5, .best_loss = NAN, .best_step = -1, .interrupted_by = SIGINT,
                               .adapter_path = "checkpoints/run/checkpoint-3"};
    char *text = al_run_summary_format(&s);
    cr_assert(strstr(text, "training interrupted (SIGINT) after step 3 of 8"), "%s", text);
    cr_assert(strstr(text, "best loss     none (no evaluation ran"), "%s", text);
    cr_assert(strstr(text, "WARNING       no step changed the adapter"), "%s", text);
    cr_assert_null(strstr(text, "training finished"), "%s", text);
    free(text);
}

/* "best loss" is the lowest evaluation loss, never a (noisy) training step's. */
Test(train_metrics, lowest_eval_loss_ignores_training_losses)
{
    char *dir = test_tmpdir();
    struct al_metrics_log *log = al_metrics_open(dir, -1);
    cr_assert_not_null(log, "%s", al_error_message());
    struct al_metric train_low = {"loss", 0.01}, eval_first = {"loss", 2.5}, eval_best = {"loss", 1.25},
                     eval_last = {"loss", 1.75};
    cr_assert_eq(al_metrics_write(log, "train", 1, &train_low, 1), 0);
    cr_assert_eq(al_metrics_write(log, "eval", 10, &eval_first, 1), 0);
    cr_assert_eq(al_metrics_write(log, "eval", 20, &eval_best, 1), 0);
    cr_assert_eq(al_metrics_write(log, "eval", 30, &eval_last, 1), 0);
    al_metrics_close(log);
    double value = 0;
    int64_t step = 0;
    cr_assert_eq(al_metrics_lowest(dir, "eval", "loss", &value, &step), 1, "%s", al_error_message());
    cr_assert_float_eq(value, 1.25, 1e-12);
    cr_assert_eq(step, 20);
    cr_assert_eq(al_metrics_lowest(dir, "eval", "loss_harmful", &value, &step), 0);
    free(dir);
}
