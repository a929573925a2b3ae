/* Packing on hand-made documents: every array of the flattened batch is spelled out,
 * then the invariants the attention kernel relies on are checked on a larger stream. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/packing.h"

static void assert_ints(const int32_t *got, const int32_t *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s[%ld] = %d, expected %d", what, (long)i, got[i], want[i]);
}

Test(data_packing, targets_positions_and_doc_start_on_three_documents)
{
    static const int32_t a[] = {1, 2, 3}, b[] = {4, 5}, c[] = {6, 7, 8, 9};
    static const uint8_t ma[] = {0, 1, 1}, mb[] = {1, 1}, mc[] = {0, 0, 1, 1};
    const struct al_document docs[] = {{a, ma, 3}, {b, mb, 2}, {c, mc, 4}};
    struct al_pack_options options = {.max_len = 5};
    struct al_packed_batch batch;
    struct al_pack_stats stats;
    cr_assert_eq(al_pack_documents(docs, 3, &options, &batch, &stats), 0, "%s", al_error_message());

    /* a and b fill row 0 exactly; c opens row 1. */
    cr_assert_eq(batch.n, 9);
    cr_assert_eq(batch.n_rows, 2);
    cr_assert_eq(batch.n_documents, 3);
    static const int64_t rows[] = {0, 5, 9};
    for (int r = 0; r <= 2; r++)
        cr_assert_eq(batch.row_offsets[r], rows[r]);
    static const int32_t ids[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* The target of i is token i+1 of the same document when its mask is set. */
    static const int32_t targets[] = {2, 3, -1, 5, -1, -1, 8, 9, -1};
    static const int32_t positions[] = {0, 1, 2, 0, 1, 0, 1, 2, 3};
    static const int32_t doc_start[] = {0, 0, 0, 3, 3, 5, 5, 5, 5};
    assert_ints(batch.input_ids, ids, 9, "input_ids");
    assert_ints(batch.targets, targets, 9, "targets");
    assert_ints(batch.positions, positions, 9, "positions");
    assert_ints(batch.doc_start, doc_start, 9, "doc_start");
    cr_assert_eq(batch.n_targets, 5);
    cr_assert_eq(stats.target_tokens, 5);
    cr_assert_eq(stats.tokens, 9);
    cr_assert_eq(stats.packed, 3);
    cr_assert_eq(stats.truncated + stats.dropped, 0);
    al_packed_batch_free(&batch);
}

Test(data_packing, first_fit_puts_a_later_short_document_into_an_earlier_row)
{
    static const int32_t a[] = {10, 11, 12, 13}, b[] = {20, 21, 22, 23}, c[] = {30};
    const struct al_document docs[] = {{a, NULL, 4}, {b, NULL, 4}, {c, NULL, 1}};
    struct al_pack_options options = {.max_len = 5};
    struct al_packed_batch batch;
    cr_assert_eq(al_pack_documents(docs, 3, &options, &batch, NULL), 0);
    static const int32_t ids[] = {10, 11, 12, 13, 30, 20, 21, 22, 23};
    static const int32_t doc_start[] = {0, 0, 0, 0, 4, 5, 5, 5, 5};
    static const int32_t targets[] = {11, 12, 13, -1, -1, 21, 22, 23, -1};
    assert_ints(batch.input_ids, ids, 9, "input_ids");
    assert_ints(batch.doc_start, doc_start, 9, "doc_start");
    assert_ints(batch.targets, targets, 9, "targets (NULL mask: every token is a target)");
    cr_assert_eq(batch.row_offsets[1], 5);
    al_packed_batch_free(&batch);
}

Test(data_packing, overlong_documents_are_truncated_or_dropped_and_counted)
{
    static const int32_t longdoc[] = {1, 2, 3, 4, 5, 6, 7}, shortdoc[] = {8, 9};
    const struct al_document docs[] = {{longdoc, NULL, 7}, {shortdoc, NULL, 2}};
    struct al_pack_options options = {.max_len = 5, .overlong = AL_OVERLONG_TRUNCATE};
    struct al_packed_batch batch;
    struct al_pack_stats stats;
    cr_assert_eq(al_pack_documents(docs, 2, &options, &batch, &stats), 0);
    cr_assert_eq(stats.truncated, 1);
    cr_assert_eq(stats.truncated_tokens, 2);
    cr_assert_eq(stats.dropped, 0);
    cr_assert_eq(batch.n, 7);
    static const int32_t ids[] = {1, 2, 3, 4, 5, 8, 9};
    static const int32_t targets[] = {2, 3, 4, 5, -1, 9, -1};
    assert_ints(batch.input_ids, ids, 7, "input_ids");
    assert_ints(batch.targets, targets, 7, "targets: the cut document's last kept token has none");
    al_packed_batch_free(&batch);

    options.overlong = AL_OVERLONG_DROP;
    cr_assert_eq(al_pack_documents(docs, 2, &options, &batch, &stats), 0);
    cr_assert_eq(stats.dropped, 1);
    cr_assert_eq(stats.truncated, 0);
    cr_assert_eq(stats.documents, 2);
    cr_assert_eq(stats.packed, 1);
    cr_assert_eq(batch.n, 2);
    cr_assert_eq(batch.input_ids[0], 8);
    cr_assert_eq(batch.doc_start[1], 0);
    al_packed_batch_free(&batch);

    struct al_load_summary summary = {0};
    al_pack_stats_add_to_summary(&stats, &summary);
    al_pack_stats_add_to_summary(&stats, &summary);
    cr_assert_eq(summary.dropped, 2);
    cr_assert_eq(summary.tokens, 4);
    cr_assert_eq(summary.target_tokens, 2);
}

Test(data_packing, bad_input_is_an_error)
{
    struct al_pack_options options = {.max_len = 0};
    cr_assert_null(al_packer_create(&options));
    options.max_len = 4;
    struct al_packer *packer = al_packer_create(&options);
    struct al_document empty = {NULL, NULL, 0};
    cr_assert_eq(al_packer_add(packer, &empty), -1);
    cr_assert_not_null(strstr(al_error_message(), "no tokens"));
    struct al_packed_batch batch;
    cr_assert_eq(al_packer_take(packer, &batch), 0, "nothing pending");
    cr_assert_eq(batch.n, 0);
    al_packer_free(packer);
}

/* A stream of varied documents through a packer limited to 3 rows of 16: every
 * document arrives exactly once, in a batch of at most 3 rows, and each batch obeys
 * the attention convention: doc_start[i] <= i, positions count from doc_start, and a
 * token never has a target across a document boundary. */
Test(data_packing, streaming_batches_respect_row_limit_and_conventions)
{
    enum { DOCS = 60, MAX_LEN = 16, ROWS = 3 };
    struct al_pack_options options = {.max_len = MAX_LEN, .rows_per_batch = ROWS};
    struct al_packer *packer = al_packer_create(&options);
    cr_assert_not_null(packer);
    int32_t tokens[DOCS][MAX_LEN];
    int lengths[DOCS];
    for (int d = 0; d < DOCS; d++) {
        lengths[d] = 1 + (d * 7) % MAX_LEN;
        for (int i = 0; i < lengths[d]; i++)
            tokens[d][i] = d * 100 + i; /* the id tells document and position */
    }
    int seen[DOCS] = {0};
    int batches = 0;
    for (int d = 0; d <= DOCS; d++) {
        struct al_document doc = {d < DOCS ? tokens[d] : NULL, NULL, d < DOCS ? lengths[d] : 0};
        int added = d < DOCS ? al_packer_add(packer, &doc) : 1;
        cr_assert_geq(added, 0);
        if (added == 0)
            continue;
        struct al_packed_batch batch;
        int took = al_packer_take(packer, &batch);
        if (took == 1) {
            batches++;
            cr_assert_leq(batch.n_rows, ROWS);
            cr_assert_leq(batch.n, ROWS * MAX_LEN);
            for (int r = 0; r < batch.n_rows; r++)
                cr_assert_leq(batch.row_offsets[r + 1] - batch.row_offsets[r], MAX_LEN);
            for (int64_t i = 0; i < batch.n; i++) {
                int32_t id = batch.input_ids[i];
                cr_assert_leq(batch.doc_start[i], i);
                cr_assert_eq(batch.positions[i], i - batch.doc_start[i]);
                cr_assert_eq(batch.positions[i], id % 100);
                cr_assert_eq(batch.input_ids[batch.doc_start[i]], (id / 100) * 100, "doc_start points at the first token");
                bool last = batch.positions[i] == lengths[id / 100] - 1;
                cr_assert_eq(batch.targets[i], last ? -1 : id + 1);
                if (batch.positions[i] == 0)
                    seen[id / 100]++;
            }
            al_packed_batch_free(&batch);
        }
        if (d < DOCS)
            cr_assert_eq(al_packer_add(packer, &doc), 0, "a document always fits an empty batch");
    }
    for (int d = 0; d < DOCS; d++)
        cr_assert_eq(seen[d], 1, "document %d packed %d times", d, seen[d]);
    cr_assert_gt(batches, 5);
    cr_assert_eq(al_packer_stats(packer)->packed, DOCS);
    al_packer_free(packer);
}
