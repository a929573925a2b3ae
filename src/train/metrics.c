/* metrics.jsonl and the TensorBoard scalars of a run (see metrics.h). */
#include "agentlora/metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/train_config.h"

#define METRICS_FILE "metrics.jsonl"
/* Longest "<kind>/<name>" TensorBoard tag. */
#define TAG_MAX 128

struct al_metrics_log {
    FILE *jsonl;
    char *jsonl_path;
    struct al_tfevents *events;
};

double al_wall_time(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)now.tv_sec + (double)now.tv_usec * 1e-6;
}

/* Calls visit(record, line, line_length, context) for every complete line of a
 * metrics.jsonl text (a line cut short by a crash ends the walk). */
static void for_each_record(const char *text, size_t length,
                            void (*visit)(const cJSON *record, const char *line, size_t line_length, void *context),
                            void *context)
{
    for (const char *line = text, *next; line < text + length; line = next) {
        const char *newline = memchr(line, '\n', (size_t)(text + length - line));
        if (!newline)
            break;
        next = newline + 1;
        cJSON *record = cJSON_ParseWithLength(line, (size_t)(newline - line));
        visit(record, line, (size_t)(next - line), context);
        cJSON_Delete(record);
    }
}

struct kept_lines {
    char *kept;
    size_t used;
    int64_t last_step;
};

static void keep_if_not_redone(const cJSON *record, const char *line, size_t line_length, void *context)
{
    struct kept_lines *k = context;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(record, "step");
    if (cJSON_IsNumber(step) && step->valuedouble <= (double)k->last_step) {
        memcpy(k->kept + k->used, line, line_length);
        k->used += line_length;
    }
}

/* Keeps the lines whose step is at most last_step: what a resumed run has not redone. */
static int keep_records_up_to(const char *path, int64_t last_step)
{
    if (!al_file_exists(path))
        return 0;
    size_t length = 0;
    char *text = al_file_read_all(path, &length);
    struct kept_lines k = {malloc(length + 1), 0, last_step};
    if (!text || !k.kept) {
        free(text);
        free(k.kept);
        return text ? al_fail("out of memory") : -1;
    }
    for_each_record(text, length, keep_if_not_redone, &k);
    int rc = al_file_write_atomic(path, k.kept, k.used);
    free(text);
    free(k.kept);
    return rc;
}

struct lowest_value {
    const char *kind, *name;
    double value;
    int64_t step;
    bool found;
};

static void keep_if_lowest(const cJSON *record, const char *line, size_t line_length, void *context)
{
    (void)line;
    (void)line_length;
    struct lowest_value *l = context;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(record, "kind");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(record, "step");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(record, l->name);
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, l->kind) != 0 || !cJSON_IsNumber(step) ||
        !cJSON_IsNumber(value) || !isfinite(value->valuedouble))
        return;
    if (!l->found || value->valuedouble < l->value) {
        l->value = value->valuedouble;
        l->step = (int64_t)step->valuedouble;
        l->found = true;
    }
}

int al_metrics_lowest(const char *run_dir, const char *kind, const char *name, double *value, int64_t *step)
{
    char *path = al_path_join(run_dir, METRICS_FILE);
    if (!path)
        return al_fail("out of memory");
    if (!al_file_exists(path)) {
        free(path);
        return 0;
    }
    size_t length = 0;
    char *text = al_file_read_all(path, &length);
    free(path);
    if (!text)
        return -1;
    struct lowest_value l = {kind, name, 0, 0, false};
    for_each_record(text, length, keep_if_lowest, &l);
    free(text);
    if (l.found) {
        *value = l.value;
        *step = l.step;
    }
    return l.found ? 1 : 0;
}

struct al_metrics_log *al_metrics_open(const char *run_dir, int64_t resume_step)
{
    struct al_metrics_log *log = calloc(1, sizeof *log);
    if (!log)
        return al_fail_null("out of memory");
    log->jsonl_path = al_path_join(run_dir, METRICS_FILE);
    int rc = log->jsonl_path ? al_mkdirs(run_dir) : al_fail("out of memory");
    if (rc == 0 && resume_step >= 0)
        rc = keep_records_up_to(log->jsonl_path, resume_step);
    if (rc == 0 && !(log->jsonl = fopen(log->jsonl_path, resume_step >= 0 ? "a" : "w")))
        rc = al_fail_errno("%s: cannot open", log->jsonl_path);
    if (rc == 0 && !(log->events = al_tfevents_open(run_dir)))
        rc = -1;
    if (rc == 0 && resume_step >= 0)
        rc = al_tfevents_write_restart(log->events, al_wall_time(), resume_step + 1);
    if (rc != 0) {
        al_error_context("opening the metrics of %s", run_dir);
        al_metrics_close(log);
        return NULL;
    }
    return log;
}

static bool reserved_name(const char *name)
{
    return strcmp(name, "kind") == 0 || strcmp(name, "step") == 0 || strcmp(name, "wall_time") == 0 ||
           strcmp(name, "judge") == 0;
}

static int write_jsonl(struct al_metrics_log *log, const char *kind, int64_t step, double wall_time,
                       const char *judge, const struct al_metric *metrics, int count)
{
    cJSON *record = cJSON_CreateObject();
    cJSON_AddStringToObject(record, "kind", kind);
    cJSON_AddNumberToObject(record, "step", (double)step);
    cJSON_AddItemToObject(record, "wall_time", al_json_exact_number(wall_time));
    if (judge)
        cJSON_AddStringToObject(record, "judge", judge);
    for (int i = 0; i < count; i++)
        cJSON_AddItemToObject(record, metrics[i].name, al_json_exact_number(metrics[i].value));
    char *line = cJSON_PrintUnformatted(record);
    cJSON_Delete(record);
    if (!line)
        return al_fail("out of memory");
    int rc = 0;
    if (fprintf(log->jsonl, "%s\n", line) < 0 || fflush(log->jsonl) != 0)
        rc = al_fail_errno("%s: write failed", log->jsonl_path);
    free(line);
    return rc;
}

static int write_scalars(struct al_metrics_log *log, const char *kind, int64_t step, double wall_time,
                         const struct al_metric *metrics, int count)
{
    char (*tags)[TAG_MAX] = calloc((size_t)count + 1, TAG_MAX);
    const char **tag_pointers = calloc((size_t)count + 1, sizeof *tag_pointers);
    float *values = calloc((size_t)count + 1, sizeof *values);
    int kept = 0, rc = 0;
    if (!tags || !tag_pointers || !values)
        rc = al_fail("out of memory");
    for (int i = 0; rc == 0 && i < count; i++) {
        if (!isfinite(metrics[i].value))
            continue;
        snprintf(tags[kept], TAG_MAX, "%s/%s", kind, metrics[i].name);
        tag_pointers[kept] = tags[kept];
        values[kept++] = (float)metrics[i].value;
    }
    if (rc == 0 && kept > 0)
        rc = al_tfevents_write_scalars(log->events, wall_time, step, tag_pointers, values, kept);
    free(tags);
    free(tag_pointers);
    free(values);
    return rc;
}

int al_metrics_write(struct al_metrics_log *log, const char *kind, int64_t step, const struct al_metric *metrics,
                     int count)
{
    return al_metrics_write_judged(log, kind, step, NULL, metrics, count);
}

int al_metrics_write_judged(struct al_metrics_log *log, const char *kind, int64_t step, const char *judge,
                            const struct al_metric *metrics, int count)
{
    for (int i = 0; i < count; i++)
        if (reserved_name(metrics[i].name) || strlen(kind) + strlen(metrics[i].name) + 2 > TAG_MAX)
            return al_fail("metric name '%s' is reserved or too long", metrics[i].name);
    double now = al_wall_time();
    if (write_jsonl(log, kind, step, now, judge, metrics, count) != 0 ||
        write_scalars(log, kind, step, now, metrics, count) != 0)
        return -1;
    return 0;
}

void al_metrics_close(struct al_metrics_log *log)
{
    if (!log)
        return;
    if (log->jsonl)
        fclose(log->jsonl);
    al_tfevents_close(log->events);
    free(log->jsonl_path);
    free(log);
}
