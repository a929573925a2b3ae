/* The training data stream: a data file read once into an index, split into train and
 * eval by behaviour pattern (or a separate eval file), mixed harmful:benign, shuffled per
 * epoch from the seed, rendered with the chat template (PING prefixes injected in train
 * mode), tokenized, masked, and packed into batches of rows_per_batch rows of max_len.
 *
 * Exact resume: al_data_stream_cursor() is where the next batch starts; a stream opened
 * at that cursor yields the same batches as the original from there on. */
#ifndef AGENTLORA_DATA_STREAM_H
#define AGENTLORA_DATA_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/dataset.h"
#include "agentlora/example.h"
#include "agentlora/packing.h"
#include "agentlora/ping.h"

struct al_data_stream_options {
    const char *train_path;
    const char *eval_path;     /* NULL or "": hold out eval_fraction of the patterns of train_path */
    double eval_fraction;
    const char *ratio;         /* "harmful:benign" such as "1:2"; NULL or "" keeps the data's mix */
    uint64_t seed;
    bool strict;               /* a record that cannot be rendered stops the run instead of being skipped */
    struct al_example_options example; /* chat format and options; ping_prefix is chosen per record */
    const struct al_ping *ping;        /* prefixes injected when its mode is train; may be NULL */
    struct al_pack_options pack;
};

struct al_data_stream;

/* Loads and indexes the data and counts one epoch (every training record rendered and
 * packed once in epoch 0's order, which also fills the summary and logs records that
 * cannot be used). start may be NULL (epoch 0, position 0). */
struct al_data_stream *al_data_stream_open(const struct al_data_stream_options *options,
                                           const struct al_tokenizer *tokenizer, const struct al_data_cursor *start);
void al_data_stream_free(struct al_data_stream *stream);

/* The next training batch (1), endlessly cycling epochs; -1 on error. */
int al_data_stream_next(struct al_data_stream *stream, struct al_packed_batch *batch);
/* Where the next batch starts. */
struct al_data_cursor al_data_stream_cursor(const struct al_data_stream *stream);
/* Batches in one epoch (as counted at open). */
int64_t al_data_stream_batches_per_epoch(const struct al_data_stream *stream);
/* Training records that can be used (those that failed to render or tokenize, skipped
 * and counted in the summary, left out) and eval records; and the training data
 * summary (tokens, truncation, skipped records). */
int al_data_stream_counts(const struct al_data_stream *stream, int *train_records, int *eval_records);
const struct al_load_summary *al_data_stream_summary(const struct al_data_stream *stream);

/* The eval records with the given label (harmful or benign), packed in file order; built
 * on first use and kept. *batches stays owned by the stream. */
int al_data_stream_eval_batches(struct al_data_stream *stream, bool harmful, const struct al_packed_batch **batches,
                                int *count);

/* The eval records, unrendered: the dataset they index (the eval file, or the training file
 * whose held-out patterns they are) and their indices into it, ascending. Both stay owned
 * by the stream. Reading them changes nothing in the stream. */
void al_data_stream_eval_records(const struct al_data_stream *stream, const struct al_dataset **dataset,
                                 const struct al_index_list **eval);

/* A data position with one spelling for each place: the end of epoch e (position = the
 * record count) becomes the start of epoch e + 1 (position 0). */
struct al_data_cursor al_data_stream_normalise_cursor(const struct al_data_stream *stream, struct al_data_cursor cursor);

/* The training records a batch was packed from, when it started at data position `from`
 * and the next batch at `to` (al_data_stream_cursor before and after
 * al_data_stream_next), in the order they were drawn; records that cannot be used are
 * left out. *records (malloc'd; the caller frees the array, not the entries) point into
 * the stream's dataset: record numbers and ids for messages. Reads only: the stream
 * continues as before. */
int al_data_stream_batch_records(const struct al_data_stream *stream, struct al_data_cursor from,
                                 struct al_data_cursor to, const struct al_record_entry ***records, int *count);

#endif
