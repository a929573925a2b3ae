/* Greedy first-fit packing of documents into rows, and the flattening of rows into the
 * arrays the model consumes (see include/agentlora/packing.h for the conventions). */
#include "agentlora/packing.h"

#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"

struct packed_row {
    int32_t *tokens;
    uint8_t *mask;
    int used;
    int *doc_lengths;
    int n_docs;
    int doc_capacity;
};

struct al_packer {
    struct al_pack_options options;
    struct packed_row *rows;
    int n_rows;
    int row_capacity;
    struct al_pack_stats stats;
};

static void free_row(struct packed_row *row)
{
    free(row->tokens);
    free(row->mask);
    free(row->doc_lengths);
}

struct al_packer *al_packer_create(const struct al_pack_options *options)
{
    if (options->max_len <= 0)
        return al_fail_null("packing: max_len must be positive (got %d)", options->max_len);
    if (options->rows_per_batch < 0)
        return al_fail_null("packing: rows_per_batch must not be negative (got %d)", options->rows_per_batch);
    struct al_packer *packer = calloc(1, sizeof *packer);
    if (!packer)
        return al_fail_null("out of memory");
    packer->options = *options;
    return packer;
}

void al_packer_free(struct al_packer *packer)
{
    if (!packer)
        return;
    for (int r = 0; r < packer->row_capacity; r++)
        free_row(&packer->rows[r]);
    free(packer->rows);
    free(packer);
}

const struct al_pack_stats *al_packer_stats(const struct al_packer *packer)
{
    return &packer->stats;
}

/* Rows are allocated once at full length and reused across batches. */
static struct packed_row *open_row(struct al_packer *packer)
{
    if (packer->n_rows == packer->row_capacity) {
        int wanted = packer->row_capacity ? packer->row_capacity * 2 : 4;
        struct packed_row *grown = realloc(packer->rows, (size_t)wanted * sizeof *grown);
        if (!grown)
            return al_fail_null("out of memory");
        memset(grown + packer->row_capacity, 0, (size_t)(wanted - packer->row_capacity) * sizeof *grown);
        packer->rows = grown;
        packer->row_capacity = wanted;
    }
    struct packed_row *row = &packer->rows[packer->n_rows];
    if (!row->tokens) {
        row->tokens = malloc((size_t)packer->options.max_len * sizeof *row->tokens);
        row->mask = malloc((size_t)packer->options.max_len);
        if (!row->tokens || !row->mask)
            return al_fail_null("out of memory");
    }
    row->used = 0;
    row->n_docs = 0;
    packer->n_rows++;
    return row;
}

static int append_to_row(struct packed_row *row, const struct al_document *doc, int length)
{
    if (row->n_docs == row->doc_capacity) {
        int wanted = row->doc_capacity ? row->doc_capacity * 2 : 8;
        int *grown = realloc(row->doc_lengths, (size_t)wanted * sizeof *grown);
        if (!grown)
            return al_fail("out of memory");
        row->doc_lengths = grown;
        row->doc_capacity = wanted;
    }
    memcpy(row->tokens + row->used, doc->tokens, (size_t)length * sizeof *doc->tokens);
    if (doc->loss_mask)
        memcpy(row->mask + row->used, doc->loss_mask, (size_t)length);
    else
        memset(row->mask + row->used, 1, (size_t)length);
    row->doc_lengths[row->n_docs++] = length;
    row->used += length;
    return 0;
}

/* First row with room, opening a new one while the batch allows; NULL: batch full. */
static struct packed_row *row_with_room(struct al_packer *packer, int length, int *failed)
{
    *failed = 0;
    for (int r = 0; r < packer->n_rows; r++)
        if (packer->options.max_len - packer->rows[r].used >= length)
            return &packer->rows[r];
    if (packer->options.rows_per_batch > 0 && packer->n_rows >= packer->options.rows_per_batch)
        return NULL;
    struct packed_row *row = open_row(packer);
    if (!row)
        *failed = 1;
    return row;
}

static long count_targets(const struct al_document *doc, int length)
{
    long targets = 0;
    for (int i = 1; i < length; i++)
        targets += doc->loss_mask ? (doc->loss_mask[i] != 0) : 1;
    return targets;
}

int al_packer_add(struct al_packer *packer, const struct al_document *doc)
{
    if (doc->n <= 0 || !doc->tokens)
        return al_fail("packing: document %ld has no tokens", packer->stats.documents + 1);
    int length = doc->n;
    bool overlong = length > packer->options.max_len;
    if (overlong && packer->options.overlong == AL_OVERLONG_DROP) {
        packer->stats.documents++;
        packer->stats.dropped++;
        return 0;
    }
    if (overlong)
        length = packer->options.max_len;
    int failed;
    struct packed_row *row = row_with_room(packer, length, &failed);
    if (failed)
        return -1;
    if (!row)
        return 1;
    if (append_to_row(row, doc, length) != 0)
        return -1;
    packer->stats.documents++;
    packer->stats.packed++;
    packer->stats.tokens += length;
    packer->stats.target_tokens += count_targets(doc, length);
    if (overlong) {
        packer->stats.truncated++;
        packer->stats.truncated_tokens += doc->n - length;
    }
    return 0;
}

static int allocate_batch(struct al_packed_batch *batch, int64_t n, int n_rows)
{
    memset(batch, 0, sizeof *batch);
    size_t count = (size_t)(n > 0 ? n : 1);
    batch->input_ids = malloc(count * sizeof *batch->input_ids);
    batch->targets = malloc(count * sizeof *batch->targets);
    batch->positions = malloc(count * sizeof *batch->positions);
    batch->doc_start = malloc(count * sizeof *batch->doc_start);
    batch->row_offsets = malloc((size_t)(n_rows + 1) * sizeof *batch->row_offsets);
    if (!batch->input_ids || !batch->targets || !batch->positions || !batch->doc_start || !batch->row_offsets) {
        al_packed_batch_free(batch);
        return al_fail("out of memory");
    }
    batch->n = n;
    batch->n_rows = n_rows;
    return 0;
}

/* Writes one document that starts at `start` on the flattened axis. */
static void flatten_document(struct al_packed_batch *batch, const int32_t *tokens, const uint8_t *mask,
                             int length, int64_t start)
{
    for (int i = 0; i < length; i++) {
        int64_t at = start + i;
        batch->input_ids[at] = tokens[i];
        batch->positions[at] = i;
        batch->doc_start[at] = (int32_t)start;
        bool has_target = i + 1 < length && mask[i + 1];
        batch->targets[at] = has_target ? tokens[i + 1] : -1;
        batch->n_targets += has_target;
    }
}

static void flatten_rows(const struct al_packer *packer, struct al_packed_batch *batch)
{
    int64_t at = 0;
    for (int r = 0; r < packer->n_rows; r++) {
        const struct packed_row *row = &packer->rows[r];
        batch->row_offsets[r] = at;
        int in_row = 0;
        for (int d = 0; d < row->n_docs; d++) {
            flatten_document(batch, row->tokens + in_row, row->mask + in_row, row->doc_lengths[d], at);
            in_row += row->doc_lengths[d];
            at += row->doc_lengths[d];
            batch->n_documents++;
        }
    }
    batch->row_offsets[packer->n_rows] = at;
}

int al_packer_take(struct al_packer *packer, struct al_packed_batch *batch)
{
    memset(batch, 0, sizeof *batch);
    if (packer->n_rows == 0)
        return 0;
    int64_t n = 0;
    for (int r = 0; r < packer->n_rows; r++)
        n += packer->rows[r].used;
    if (allocate_batch(batch, n, packer->n_rows) != 0)
        return -1;
    flatten_rows(packer, batch);
    packer->n_rows = 0;
    return 1;
}

void al_packed_batch_free(struct al_packed_batch *batch)
{
    free(batch->input_ids);
    free(batch->targets);
    free(batch->positions);
    free(batch->doc_start);
    free(batch->row_offsets);
    memset(batch, 0, sizeof *batch);
}

int al_pack_documents(const struct al_document *docs, int n_docs, const struct al_pack_options *options,
                      struct al_packed_batch *batch, struct al_pack_stats *stats)
{
    memset(batch, 0, sizeof *batch);
    struct al_pack_options unlimited = *options;
    unlimited.rows_per_batch = 0;
    struct al_packer *packer = al_packer_create(&unlimited);
    if (!packer)
        return -1;
    int rc = 0;
    for (int d = 0; d < n_docs && rc == 0; d++)
        if (al_packer_add(packer, &docs[d]) != 0)
            rc = -1;
    if (rc == 0 && al_packer_take(packer, batch) < 0)
        rc = -1;
    if (stats)
        *stats = packer->stats;
    al_packer_free(packer);
    return rc;
}

void al_pack_stats_add_to_summary(const struct al_pack_stats *stats, struct al_load_summary *summary)
{
    summary->tokens += stats->tokens;
    summary->target_tokens += stats->target_tokens;
    summary->truncated += stats->truncated;
    summary->dropped += stats->dropped;
}

int al_check_something_to_learn(const struct al_pack_stats *stats, int max_len, const char *source)
{
    if (stats->target_tokens > 0)
        return 0;
    long documents = stats->documents > 0 ? stats->documents : 1;
    return al_fail("%s: nothing to learn: the training records hold 0 target (assistant) tokens after "
                   "packing at max_len %d; %ld of %ld records (%.0f%%) were truncated at max_len%s",
                   source, max_len, stats->truncated, stats->documents, 100.0 * (double)stats->truncated / (double)documents,
                   stats->truncated > 0 ? ", which cut away their assistant turns: raise max_len" : "");
}
