/* Packing: tokenised documents (ids + per-token loss mask) into rows of at most max_len
 * tokens, rows flattened into one token axis per batch.
 *
 * For token i of the flattened batch:
 *   input_ids[i]  the token
 *   targets[i]    the next token of the same document when that next token's mask is
 *                 set, else -1 (so a document's last token never has a target)
 *   positions[i]  position within its document, restarting at 0 for each document
 *   doc_start[i]  index (in the flattened batch) of its document's first token: the
 *                 convention of attention_forward in src/backend/backend.h, where token
 *                 i attends to j exactly when doc_start[i] <= j <= i
 *
 * Rows are not padded: a row that no further document fits into simply ends, and the
 * next row begins right after it on the token axis. A row boundary is a document
 * boundary (documents never straddle rows), so padding tokens would only cost compute.
 * The rows exist to bound a batch at rows_per_batch * max_len tokens.
 *
 * Placement is greedy first-fit in data order: each document goes into the first row
 * with room for it; when no row of the batch has room, the batch is full. */
#ifndef AGENTLORA_PACKING_H
#define AGENTLORA_PACKING_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/dataset.h"

enum al_overlong_policy {
    AL_OVERLONG_TRUNCATE = 0, /* keep the first max_len tokens */
    AL_OVERLONG_DROP,         /* leave the document out */
};

struct al_pack_options {
    int max_len;          /* tokens per row */
    int rows_per_batch;   /* 0: no limit (one batch takes everything added) */
    enum al_overlong_policy overlong;
};

struct al_document {
    const int32_t *tokens;
    const uint8_t *loss_mask; /* 1 where the token is a training target; NULL: all are */
    int n;
};

struct al_pack_stats {
    long documents;        /* offered to the packer */
    long packed;           /* placed in a row (truncated ones included) */
    long truncated;
    long truncated_tokens; /* tokens cut from truncated documents */
    long dropped;
    long tokens;           /* tokens placed */
    long target_tokens;    /* of which have a target */
};

struct al_packed_batch {
    int64_t n;             /* tokens on the flattened axis */
    int32_t *input_ids;
    int32_t *targets;
    int32_t *positions;
    int32_t *doc_start;
    int n_rows;
    int64_t *row_offsets;  /* n_rows + 1 entries: row r is [row_offsets[r], row_offsets[r + 1]) */
    int n_documents;
    int64_t n_targets;     /* tokens whose target is >= 0 */
};

struct al_packer;

struct al_packer *al_packer_create(const struct al_pack_options *options);
void al_packer_free(struct al_packer *packer);

/* Offers the next document. 0: placed (or dropped as over-long; see the stats);
 * 1: the batch is full and the document was NOT placed: take the batch, then offer the
 * same document again (it always fits an empty batch); -1: error (empty document). */
int al_packer_add(struct al_packer *packer, const struct al_document *doc);

/* Moves the pending rows out as one flattened batch and starts an empty one.
 * 1: *batch filled; 0: nothing was pending (*batch is left empty). */
int al_packer_take(struct al_packer *packer, struct al_packed_batch *batch);

const struct al_pack_stats *al_packer_stats(const struct al_packer *packer);

void al_packed_batch_free(struct al_packed_batch *batch);

/* Packs all documents into one batch with as many rows as needed (rows_per_batch is
 * ignored). stats may be NULL. */
int al_pack_documents(const struct al_document *docs, int n_docs, const struct al_pack_options *options,
                      struct al_packed_batch *batch, struct al_pack_stats *stats);

/* Adds packing counts (tokens, targets, truncated, dropped) to a load summary. */
void al_pack_stats_add_to_summary(const struct al_pack_stats *stats, struct al_load_summary *summary);

/* Training on batches without a single target token would save an adapter trained on
 * nothing: fails (naming source, max_len and the share of records truncated there) when
 * the epoch's stats hold no target token. */
int al_check_something_to_learn(const struct al_pack_stats *stats, int max_len, const char *source);

#endif
