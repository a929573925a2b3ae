/* Epoch order and the data cursor. The order of epoch e is a function of (seed, e)
 * alone, so the cursor {epoch, position} is the whole state a resume needs: rebuild the
 * permutation of that epoch and continue at the position. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/rng.h"

/* The PCG stream reserved for data shuffling, apart from dropout or init streams. */
#define SHUFFLE_STREAM 0x5348554646ULL /* "SHUFF" */

/* Cursor fields are stored as JSON numbers (doubles): exact up to 2^53. */
#define CURSOR_MAX_EXACT 9007199254740992.0

void al_epoch_order(int *order, int n, uint64_t seed, int64_t epoch)
{
    struct al_rng rng;
    al_rng_seed(&rng, al_hash64(seed ^ al_hash64((uint64_t)epoch)), SHUFFLE_STREAM);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)al_rng_below(&rng, (uint32_t)i + 1);
        int swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
}

cJSON *al_data_cursor_to_json(const struct al_data_cursor *cursor)
{
    cJSON *json = cJSON_CreateObject();
    if (!json || !cJSON_AddNumberToObject(json, "epoch", (double)cursor->epoch) ||
        !cJSON_AddNumberToObject(json, "position", (double)cursor->position)) {
        cJSON_Delete(json);
        return al_fail_null("out of memory");
    }
    return json;
}

static int read_count(const cJSON *json, const char *key, int64_t *value, const char *source)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, key);
    if (!cJSON_IsNumber(item))
        return al_fail("%s: data cursor: \"%s\" is missing or not a number", source, key);
    double number = item->valuedouble;
    if (number < 0 || number > CURSOR_MAX_EXACT || floor(number) != number)
        return al_fail("%s: data cursor: \"%s\" = %g is not a non-negative integer", source, key, number);
    *value = (int64_t)number;
    return 0;
}

int al_data_cursor_from_json(struct al_data_cursor *cursor, const cJSON *json, const char *source)
{
    if (!cJSON_IsObject(json))
        return al_fail("%s: data cursor is not an object", source);
    struct al_data_cursor read;
    if (read_count(json, "epoch", &read.epoch, source) != 0 || read_count(json, "position", &read.position, source) != 0)
        return -1;
    *cursor = read;
    return 0;
}

int al_sampler_init(struct al_sampler *sampler, const struct al_index_list *records, uint64_t seed,
                    const struct al_data_cursor *start)
{
    memset(sampler, 0, sizeof *sampler);
    if (records->n <= 0)
        return al_fail("sampler: no records to sample");
    if (start && (start->epoch < 0 || start->position < 0 || start->position > records->n))
        return al_fail("sampler: cursor (epoch %lld, position %lld) does not fit %d records",
                       (long long)start->epoch, (long long)start->position, records->n);
    sampler->items = malloc((size_t)records->n * sizeof *sampler->items);
    sampler->order = malloc((size_t)records->n * sizeof *sampler->order);
    if (!sampler->items || !sampler->order) {
        al_sampler_free(sampler);
        return al_fail("out of memory");
    }
    memcpy(sampler->items, records->items, (size_t)records->n * sizeof *sampler->items);
    sampler->n = records->n;
    sampler->seed = seed;
    if (start)
        sampler->cursor = *start;
    sampler->order_epoch = -1;
    return 0;
}

int al_sampler_next(struct al_sampler *sampler, int *record_index)
{
    if (sampler->n <= 0)
        return al_fail("sampler: not initialised");
    if (sampler->cursor.position >= sampler->n) {
        sampler->cursor.epoch++;
        sampler->cursor.position = 0;
    }
    if (sampler->order_epoch != sampler->cursor.epoch) {
        al_epoch_order(sampler->order, sampler->n, sampler->seed, sampler->cursor.epoch);
        sampler->order_epoch = sampler->cursor.epoch;
    }
    *record_index = sampler->items[sampler->order[sampler->cursor.position]];
    sampler->cursor.position++;
    return 0;
}

void al_sampler_free(struct al_sampler *sampler)
{
    free(sampler->items);
    free(sampler->order);
    memset(sampler, 0, sizeof *sampler);
}
