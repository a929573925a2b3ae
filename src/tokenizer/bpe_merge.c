/* The BPE merge loop for one pre-token. The word starts as one symbol per byte; the pair
 * of neighbours with the lowest merge rank (leftmost on ties) merges first, until no
 * neighbouring pair has a merge. Candidates wait in a binary heap keyed by (rank,
 * position); a candidate whose symbols changed since it was pushed is skipped when it
 * surfaces, which keeps each merge O(log n) instead of rescanning the word. */
#include "tokenizer/bpe_internal.h"

#include "agentlora/error.h"

#include <stdlib.h>
#include <string.h>

struct bpe_symbol {
    int32_t id;
    int32_t previous; /* -1 at the start */
    int32_t next;     /* -1 at the end */
    uint32_t length;  /* bytes covered; 0 once merged into its left neighbour */
};

struct bpe_candidate {
    int32_t rank;
    int32_t left; /* symbol index of the left half */
    int32_t merged_id;
};

static int grow(void **array, size_t *capacity, size_t needed, size_t element_size)
{
    if (needed <= *capacity)
        return 0;
    size_t capacity_new = *capacity ? *capacity : 64;
    while (capacity_new < needed)
        capacity_new *= 2;
    void *bigger = realloc(*array, capacity_new * element_size);
    if (!bigger)
        return al_fail("out of memory merging a word of %zu bytes", needed);
    *array = bigger;
    *capacity = capacity_new;
    return 0;
}

/* A word of n bytes gives at most n tokens. */
static int grow_results(struct al_bpe_scratch *scratch, size_t length)
{
    if (length <= scratch->result_capacity)
        return 0;
    size_t ids_capacity = scratch->result_capacity, lengths_capacity = scratch->result_capacity;
    if (grow((void **)&scratch->ids, &ids_capacity, length, sizeof *scratch->ids) != 0 ||
        grow((void **)&scratch->lengths, &lengths_capacity, length, sizeof *scratch->lengths) != 0)
        return -1;
    scratch->result_capacity = ids_capacity;
    return 0;
}

static bool candidate_before(const struct bpe_candidate *a, const struct bpe_candidate *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void heap_push(struct bpe_candidate *heap, size_t *count, struct bpe_candidate candidate)
{
    size_t child = (*count)++;
    while (child > 0) {
        size_t parent = (child - 1) / 2;
        if (!candidate_before(&candidate, &heap[parent]))
            break;
        heap[child] = heap[parent];
        child = parent;
    }
    heap[child] = candidate;
}

static struct bpe_candidate heap_pop(struct bpe_candidate *heap, size_t *count)
{
    struct bpe_candidate top = heap[0];
    struct bpe_candidate last = heap[--*count];
    size_t parent = 0;
    for (;;) {
        size_t child = 2 * parent + 1;
        if (child >= *count)
            break;
        if (child + 1 < *count && candidate_before(&heap[child + 1], &heap[child]))
            child++;
        if (!candidate_before(&heap[child], &last))
            break;
        heap[parent] = heap[child];
        parent = child;
    }
    if (*count > 0)
        heap[parent] = last;
    return top;
}

static void push_if_mergeable(const struct al_bpe *bpe, struct al_bpe_scratch *scratch,
                              size_t *heap_count, int32_t left)
{
    if (left < 0)
        return;
    int32_t right = scratch->symbols[left].next;
    if (right < 0)
        return;
    struct al_merge merge;
    if (al_pair_map_get(&bpe->merges, scratch->symbols[left].id, scratch->symbols[right].id, &merge))
        heap_push(scratch->heap, heap_count,
                  (struct bpe_candidate){.rank = merge.rank, .left = left, .merged_id = merge.merged_id});
}

/* A candidate still applies when its left symbol is alive and the pair it now forms
 * with its right neighbour merges into the same token (Hugging Face's test). */
static bool candidate_applies(const struct al_bpe *bpe, const struct al_bpe_scratch *scratch,
                              const struct bpe_candidate *candidate)
{
    const struct bpe_symbol *left = &scratch->symbols[candidate->left];
    if (left->length == 0 || left->next < 0)
        return false;
    struct al_merge merge;
    return al_pair_map_get(&bpe->merges, left->id, scratch->symbols[left->next].id, &merge) &&
           merge.merged_id == candidate->merged_id;
}

static void merge_into_left(struct al_bpe_scratch *scratch, int32_t left, int32_t merged_id)
{
    struct bpe_symbol *symbols = scratch->symbols;
    int32_t right = symbols[left].next;
    symbols[left].id = merged_id;
    symbols[left].length += symbols[right].length;
    symbols[right].length = 0;
    symbols[left].next = symbols[right].next;
    if (symbols[left].next >= 0)
        symbols[symbols[left].next].previous = left;
}

static int emit_single(struct al_bpe_scratch *scratch, int32_t id, size_t length)
{
    scratch->ids[0] = id;
    scratch->lengths[0] = (uint32_t)length;
    scratch->count = 1;
    return 0;
}

int al_bpe_merge_word(const struct al_bpe *bpe, const char *word, size_t length,
                      struct al_bpe_scratch *scratch)
{
    scratch->count = 0;
    if (length == 0)
        return 0;
    if (grow_results(scratch, length) != 0)
        return -1;

    if (bpe->ignore_merges || length == 1) {
        int32_t whole = al_string_map_get(&bpe->raw_to_id, word, length);
        if (whole >= 0)
            return emit_single(scratch, whole, length);
    }

    if (grow((void **)&scratch->symbols, &scratch->symbol_capacity, length, sizeof *scratch->symbols) != 0 ||
        grow((void **)&scratch->heap, &scratch->heap_capacity, 3 * length, sizeof *scratch->heap) != 0)
        return -1;
    struct bpe_symbol *symbols = scratch->symbols;
    for (size_t i = 0; i < length; i++) {
        int32_t id = bpe->id_of_byte[(uint8_t)word[i]];
        if (id < 0)
            return al_fail("%s: the vocabulary has no token for byte 0x%02x", bpe->path, (uint8_t)word[i]);
        symbols[i] = (struct bpe_symbol){
            .id = id, .previous = (int32_t)i - 1, .next = i + 1 < length ? (int32_t)i + 1 : -1, .length = 1};
    }

    size_t heap_count = 0;
    for (size_t i = 0; i + 1 < length; i++)
        push_if_mergeable(bpe, scratch, &heap_count, (int32_t)i);
    while (heap_count > 0) {
        struct bpe_candidate candidate = heap_pop(scratch->heap, &heap_count);
        if (!candidate_applies(bpe, scratch, &candidate))
            continue;
        merge_into_left(scratch, candidate.left, candidate.merged_id);
        push_if_mergeable(bpe, scratch, &heap_count, symbols[candidate.left].previous);
        push_if_mergeable(bpe, scratch, &heap_count, candidate.left);
    }

    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
        scratch->ids[scratch->count] = symbols[i].id;
        scratch->lengths[scratch->count++] = symbols[i].length;
    }
    return 0;
}

void al_bpe_scratch_free(struct al_bpe_scratch *scratch)
{
    free(scratch->symbols);
    free(scratch->heap);
    free(scratch->ids);
    free(scratch->lengths);
    memset(scratch, 0, sizeof *scratch);
}
