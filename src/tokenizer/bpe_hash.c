/* The two hash maps byte-level BPE needs: token string -> id (150k+ entries, looked up
 * for every pre-token) and (left id, right id) -> merge (looked up for every pair of
 * neighbouring symbols). Open addressing with linear probing, kept at most half full. */
#include "tokenizer/tokenizer_internal.h"

#include "agentlora/error.h"

#include <stdlib.h>
#include <string.h>

struct al_string_slot {
    const char *key; /* NULL: empty */
    size_t length;
    int32_t value;
};

struct al_pair_slot {
    uint64_t key; /* EMPTY_PAIR: empty */
    struct al_merge merge;
};

/* Ids are int32 and never negative, so this key (left = right = -1) never occurs. */
#define EMPTY_PAIR UINT64_MAX
#define MIN_CAPACITY 16

static size_t capacity_for(size_t expected)
{
    size_t capacity = MIN_CAPACITY;
    while (capacity < 2 * expected + 1)
        capacity *= 2;
    return capacity;
}

/* FNV-1a: simple and good enough for token strings. */
static uint64_t hash_bytes(const char *key, size_t length)
{
    uint64_t hash = 1469598103934665603ULL;
    for (size_t i = 0; i < length; i++) {
        hash ^= (uint8_t)key[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

/* splitmix64's finaliser spreads the bits of a packed id pair. */
static uint64_t hash_pair(uint64_t key)
{
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return key;
}

int al_string_map_init(struct al_string_map *map, size_t expected)
{
    map->capacity = capacity_for(expected);
    map->count = 0;
    map->slots = calloc(map->capacity, sizeof *map->slots);
    if (!map->slots)
        return al_fail("out of memory for a hash map of %zu entries", expected);
    return 0;
}

void al_string_map_free(struct al_string_map *map)
{
    free(map->slots);
    memset(map, 0, sizeof *map);
}

static struct al_string_slot *string_slot(const struct al_string_map *map, const char *key,
                                          size_t length)
{
    size_t mask = map->capacity - 1;
    size_t index = hash_bytes(key, length) & mask;
    for (;;) {
        struct al_string_slot *slot = &map->slots[index];
        if (!slot->key || (slot->length == length && memcmp(slot->key, key, length) == 0))
            return slot;
        index = (index + 1) & mask;
    }
}

static int string_map_grow(struct al_string_map *map)
{
    struct al_string_map bigger;
    if (al_string_map_init(&bigger, map->capacity) != 0)
        return -1;
    for (size_t i = 0; i < map->capacity; i++)
        if (map->slots[i].key)
            *string_slot(&bigger, map->slots[i].key, map->slots[i].length) = map->slots[i];
    bigger.count = map->count;
    free(map->slots);
    *map = bigger;
    return 0;
}

int al_string_map_put(struct al_string_map *map, const char *key, size_t length, int32_t value)
{
    if (2 * (map->count + 1) > map->capacity && string_map_grow(map) != 0)
        return -1;
    struct al_string_slot *slot = string_slot(map, key, length);
    if (!slot->key) {
        slot->key = key;
        slot->length = length;
        map->count++;
    }
    slot->value = value;
    return 0;
}

int32_t al_string_map_get(const struct al_string_map *map, const char *key, size_t length)
{
    if (map->capacity == 0)
        return -1;
    const struct al_string_slot *slot = string_slot(map, key, length);
    return slot->key ? slot->value : -1;
}

static uint64_t pack_pair(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

int al_pair_map_init(struct al_pair_map *map, size_t expected)
{
    map->capacity = capacity_for(expected);
    map->count = 0;
    map->slots = malloc(map->capacity * sizeof *map->slots);
    if (!map->slots)
        return al_fail("out of memory for a merge table of %zu entries", expected);
    for (size_t i = 0; i < map->capacity; i++)
        map->slots[i].key = EMPTY_PAIR;
    return 0;
}

void al_pair_map_free(struct al_pair_map *map)
{
    free(map->slots);
    memset(map, 0, sizeof *map);
}

static struct al_pair_slot *pair_slot(const struct al_pair_map *map, uint64_t key)
{
    size_t mask = map->capacity - 1;
    size_t index = hash_pair(key) & mask;
    for (;;) {
        struct al_pair_slot *slot = &map->slots[index];
        if (slot->key == EMPTY_PAIR || slot->key == key)
            return slot;
        index = (index + 1) & mask;
    }
}

static int pair_map_grow(struct al_pair_map *map)
{
    struct al_pair_map bigger;
    if (al_pair_map_init(&bigger, map->capacity) != 0)
        return -1;
    for (size_t i = 0; i < map->capacity; i++)
        if (map->slots[i].key != EMPTY_PAIR)
            *pair_slot(&bigger, map->slots[i].key) = map->slots[i];
    bigger.count = map->count;
    free(map->slots);
    *map = bigger;
    return 0;
}

int al_pair_map_put(struct al_pair_map *map, int32_t left, int32_t right, struct al_merge merge)
{
    if (2 * (map->count + 1) > map->capacity && pair_map_grow(map) != 0)
        return -1;
    uint64_t key = pack_pair(left, right);
    struct al_pair_slot *slot = pair_slot(map, key);
    if (slot->key == EMPTY_PAIR) {
        slot->key = key;
        map->count++;
    }
    slot->merge = merge;
    return 0;
}

bool al_pair_map_get(const struct al_pair_map *map, int32_t left, int32_t right, struct al_merge *merge)
{
    if (map->capacity == 0)
        return false;
    const struct al_pair_slot *slot = pair_slot(map, pack_pair(left, right));
    if (slot->key == EMPTY_PAIR)
        return false;
    *merge = slot->merge;
    return true;
}
