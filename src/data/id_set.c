/* A set of record ids with the record that first used each: open addressing over the
 * pattern-key hash, grown at half load. Only the reader uses it, once per record. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"

static size_t slot_of(const struct al_id_set *set, const char *id)
{
    size_t mask = set->capacity - 1;
    size_t slot = (size_t)al_pattern_key_hash(id) & mask;
    while (set->slots[slot].id && strcmp(set->slots[slot].id, id) != 0)
        slot = (slot + 1) & mask;
    return slot;
}

static int grow(struct al_id_set *set)
{
    size_t wanted = set->capacity ? set->capacity * 2 : 1024;
    struct al_id_set bigger = {calloc(wanted, sizeof *bigger.slots), wanted, 0};
    if (!bigger.slots)
        return -1;
    for (size_t i = 0; i < set->capacity; i++)
        if (set->slots[i].id)
            bigger.slots[slot_of(&bigger, set->slots[i].id)] = set->slots[i];
    bigger.count = set->count;
    free(set->slots);
    *set = bigger;
    return 0;
}

int al_id_set_add(struct al_id_set *set, const char *id, long record_number, long *first_record)
{
    if ((set->count + 1) * 2 > set->capacity && grow(set) != 0)
        return -1;
    size_t slot = slot_of(set, id);
    if (set->slots[slot].id) {
        *first_record = set->slots[slot].record_number;
        return 0;
    }
    char *copy = strdup(id);
    if (!copy)
        return -1;
    set->slots[slot].id = copy;
    set->slots[slot].record_number = record_number;
    set->count++;
    return 1;
}

void al_id_set_free(struct al_id_set *set)
{
    for (size_t i = 0; i < set->capacity; i++)
        free(set->slots[i].id);
    free(set->slots);
    memset(set, 0, sizeof *set);
}
