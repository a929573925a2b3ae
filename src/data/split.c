/* Train/eval split by behaviour pattern and harmful:benign mixing. Both are pure
 * functions of (dataset, seed, parameters): no generator state, so a resumed run or a
 * later evaluation recomputes exactly the same lists. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/rng.h"

/* Separate the split's and the mixer's hash streams, so that which patterns go to eval
 * is unrelated to which records the mixer keeps. */
#define SPLIT_SALT 0x73706c6974ULL /* "split" */
#define MIX_SALT 0x6d6978ULL       /* "mix" */

void al_index_list_free(struct al_index_list *list)
{
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

static int allocate_list(struct al_index_list *list, int capacity)
{
    list->n = 0;
    list->items = malloc((size_t)(capacity > 0 ? capacity : 1) * sizeof *list->items);
    return list->items ? 0 : al_fail("out of memory");
}

/* A uniform number in [0, 1) from the pattern alone (and the seed): every record that
 * shares the pattern draws the same number, so they all land on one side. */
static double pattern_draw(uint64_t pattern_hash, uint64_t seed)
{
    uint64_t h = al_hash64(pattern_hash ^ al_hash64(seed ^ SPLIT_SALT));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

int al_dataset_split(const struct al_dataset *dataset, uint64_t seed, double eval_fraction,
                     struct al_index_list *train, struct al_index_list *eval)
{
    if (!(eval_fraction >= 0.0 && eval_fraction <= 1.0))
        return al_fail("eval fraction %g is outside [0, 1]", eval_fraction);
    if (allocate_list(train, dataset->n_records) != 0)
        return -1;
    if (allocate_list(eval, dataset->n_records) != 0) {
        al_index_list_free(train);
        return -1;
    }
    for (int i = 0; i < dataset->n_records; i++) {
        if (pattern_draw(dataset->records[i].pattern_hash, seed) < eval_fraction)
            eval->items[eval->n++] = i;
        else
            train->items[train->n++] = i;
    }
    return 0;
}

static int parse_part(const char *text, char **end, int *part)
{
    if (*text < '0' || *text > '9')
        return -1;
    errno = 0;
    long value = strtol(text, end, 10);
    if (errno != 0 || value > 1000000)
        return -1;
    *part = (int)value;
    return 0;
}

int al_parse_ratio(const char *text, int *harmful_part, int *benign_part)
{
    char *end = NULL;
    if (!text || parse_part(text, &end, harmful_part) != 0 || *end != ':' ||
        parse_part(end + 1, &end, benign_part) != 0 || *end != '\0')
        return al_fail("ratio \"%s\" is not of the form HARMFUL:BENIGN (e.g. \"1:2\")", text ? text : "(null)");
    if (*harmful_part == 0 && *benign_part == 0)
        return al_fail("ratio \"%s\" keeps nothing", text);
    return 0;
}

/* A record of one side with its seeded rank; the lowest ranks are kept. */
struct ranked {
    uint64_t rank;
    int index;
};

static int compare_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->index - y->index;
}

/* Marks in `keep` (by position in input) the `wanted` records of one side with the
 * lowest seeded rank. */
static int choose_side(const struct al_dataset *dataset, const struct al_index_list *input, bool harmful,
                       long wanted, uint64_t seed, bool *keep)
{
    struct ranked *side = malloc((size_t)(input->n > 0 ? input->n : 1) * sizeof *side);
    if (!side)
        return al_fail("out of memory");
    int n = 0;
    for (int i = 0; i < input->n; i++) {
        const struct al_record_entry *entry = &dataset->records[input->items[i]];
        if (entry->harmful != harmful)
            continue;
        side[n].rank = al_hash64((uint64_t)input->items[i] ^ al_hash64(seed ^ MIX_SALT));
        side[n].index = i;
        n++;
    }
    qsort(side, (size_t)n, sizeof *side, compare_ranked);
    for (long k = 0; k < wanted && k < n; k++)
        keep[side[k].index] = true;
    free(side);
    return 0;
}

static void count_sides(const struct al_dataset *dataset, const struct al_index_list *input, long *harmful,
                        long *benign)
{
    *harmful = *benign = 0;
    for (int i = 0; i < input->n; i++) {
        if (dataset->records[input->items[i]].harmful)
            (*harmful)++;
        else
            (*benign)++;
    }
}

int al_mix_ratio(const struct al_dataset *dataset, const struct al_index_list *input, int harmful_part,
                 int benign_part, uint64_t seed, struct al_index_list *output)
{
    if (harmful_part < 0 || benign_part < 0 || (harmful_part == 0 && benign_part == 0))
        return al_fail("ratio %d:%d keeps nothing", harmful_part, benign_part);
    long harmful, benign;
    count_sides(dataset, input, &harmful, &benign);
    if ((harmful_part > 0 && harmful == 0) || (benign_part > 0 && benign == 0))
        return al_fail("ratio %d:%d needs both sides, but the records hold %ld harmful and %ld benign",
                       harmful_part, benign_part, harmful, benign);
    /* The scarcer side (relative to its part) is kept whole; the other is cut down. */
    long keep_harmful = harmful, keep_benign = benign;
    if (harmful_part == 0)
        keep_harmful = 0;
    else if (benign_part == 0)
        keep_benign = 0;
    else if (harmful * benign_part > benign * harmful_part)
        keep_harmful = benign * harmful_part / benign_part;
    else
        keep_benign = harmful * benign_part / harmful_part;

    bool *keep = calloc((size_t)(input->n > 0 ? input->n : 1), sizeof *keep);
    if (!keep)
        return al_fail("out of memory");
    int rc = choose_side(dataset, input, true, keep_harmful, seed, keep);
    if (rc == 0)
        rc = choose_side(dataset, input, false, keep_benign, seed, keep);
    if (rc == 0)
        rc = allocate_list(output, input->n);
    if (rc == 0)
        for (int i = 0; i < input->n; i++)
            if (keep[i])
                output->items[output->n++] = input->items[i];
    free(keep);
    return rc;
}
