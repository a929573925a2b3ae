/* PING prefixes: loading the candidate list, and the seeded choice per record. */
#include "agentlora/ping.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/rng.h"

/* Keeps the choice stream apart from the other consumers of al_hash64. */
#define PING_SALT 0x50494e47ULL /* "PING" */

void al_ping_free(struct al_ping *ping)
{
    for (int i = 0; i < ping->n_prefixes; i++)
        free(ping->prefixes[i]);
    free(ping->prefixes);
    memset(ping, 0, sizeof *ping);
}

static int add_prefix(struct al_ping *ping, const char *text, size_t length, const char *path, int entry)
{
    if (length == 0)
        return al_fail("%s: prefix %d is empty", path, entry);
    char **grown = realloc(ping->prefixes, (size_t)(ping->n_prefixes + 1) * sizeof *grown);
    if (!grown)
        return al_fail("out of memory");
    ping->prefixes = grown;
    char *copy = strndup(text, length);
    if (!copy)
        return al_fail("out of memory");
    ping->prefixes[ping->n_prefixes++] = copy;
    return 0;
}

static int load_json_list(struct al_ping *ping, const char *text, size_t size, const char *path)
{
    const char *end = NULL;
    cJSON *list = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    if (list && end)
        while (end < text + size && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
    if (!cJSON_IsArray(list) || end != text + size) {
        cJSON_Delete(list);
        return al_fail("%s: expected a JSON list of prefix strings", path);
    }
    int entry = 0, rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        entry++;
        if (!cJSON_IsString(item)) {
            rc = al_fail("%s: prefix %d is not a string", path, entry);
            break;
        }
        if ((rc = add_prefix(ping, item->valuestring, strlen(item->valuestring), path, entry)) != 0)
            break;
    }
    cJSON_Delete(list);
    return rc;
}

static bool skippable_line(const char *line, size_t length)
{
    size_t i = 0;
    while (i < length && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    return i == length || line[i] == '#';
}

/* One prefix per line; trailing white space (and a Windows '\r') is not part of it. */
static int load_lines(struct al_ping *ping, const char *text, size_t size, const char *path)
{
    size_t start = 0;
    int entry = 0;
    while (start < size) {
        const char *newline = memchr(text + start, '\n', size - start);
        size_t end = newline ? (size_t)(newline - text) : size;
        size_t length = end - start;
        if (!skippable_line(text + start, length)) {
            while (length > 0 && (text[start + length - 1] == ' ' || text[start + length - 1] == '\t' ||
                                  text[start + length - 1] == '\r'))
                length--;
            if (add_prefix(ping, text + start, length, path, ++entry) != 0)
                return -1;
        }
        start = end + 1;
    }
    return 0;
}

static bool looks_like_json_list(const char *text, size_t size)
{
    size_t i = 0;
    while (i < size && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    return i < size && text[i] == '[';
}

int al_ping_load(struct al_ping *ping, const char *path)
{
    memset(ping, 0, sizeof *ping);
    size_t size = 0;
    char *text = al_file_read_all(path, &size);
    if (!text)
        return -1;
    int rc = looks_like_json_list(text, size) ? load_json_list(ping, text, size, path)
                                              : load_lines(ping, text, size, path);
    free(text);
    if (rc == 0 && ping->n_prefixes == 0)
        rc = al_fail("%s: no prefixes in the file", path);
    if (rc != 0)
        al_ping_free(ping);
    return rc;
}

int al_ping_mode_parse(const char *text, enum al_ping_mode *mode)
{
    if (text && strcmp(text, "none") == 0)
        *mode = AL_PING_NONE;
    else if (text && strcmp(text, "train") == 0)
        *mode = AL_PING_TRAIN;
    else if (text && strcmp(text, "eval") == 0)
        *mode = AL_PING_EVAL;
    else
        return al_fail("PING mode \"%s\" is not one of none, train, eval", text ? text : "(null)");
    return 0;
}

int al_ping_targets_parse(const char *text, enum al_ping_targets *targets)
{
    if (text && strcmp(text, "harmful") == 0)
        *targets = AL_PING_HARMFUL;
    else if (text && strcmp(text, "benign") == 0)
        *targets = AL_PING_BENIGN;
    else if (text && strcmp(text, "both") == 0)
        *targets = AL_PING_BOTH;
    else
        return al_fail("PING targets \"%s\" is not one of harmful, benign, both", text ? text : "(null)");
    return 0;
}

const char *al_ping_mode_name(enum al_ping_mode mode)
{
    return mode == AL_PING_TRAIN ? "train" : mode == AL_PING_EVAL ? "eval" : "none";
}

const char *al_ping_targets_name(enum al_ping_targets targets)
{
    return targets == AL_PING_HARMFUL ? "harmful" : targets == AL_PING_BENIGN ? "benign" : "both";
}

static uint64_t string_hash(const char *text)
{
    uint64_t hash = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        hash ^= *p;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

const char *al_ping_choose(const struct al_ping *ping, const char *record_id, long record_number)
{
    if (ping->n_prefixes <= 0)
        return NULL;
    uint64_t key = record_id ? string_hash(record_id) : al_hash64((uint64_t)record_number);
    uint64_t draw = al_hash64(key ^ al_hash64(ping->seed ^ PING_SALT));
    return ping->prefixes[draw % (uint64_t)ping->n_prefixes];
}

const char *al_ping_train_prefix(const struct al_ping *ping, const char *record_id, long record_number,
                                 bool harmful)
{
    if (ping->mode != AL_PING_TRAIN)
        return NULL;
    bool targeted = ping->targets == AL_PING_BOTH || (ping->targets == AL_PING_HARMFUL && harmful) ||
                    (ping->targets == AL_PING_BENIGN && !harmful);
    return targeted ? al_ping_choose(ping, record_id, record_number) : NULL;
}
