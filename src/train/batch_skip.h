/* Naming training batches, and leaving out the ones the user names.
 *
 * A batch is named by the data position it starts at, "EPOCH:POSITION" (the stream's
 * cursor before it is drawn): a function of the data and the seed alone, so the name
 * stays the same across resumes. The non-finite gradient warning names a step's batches
 * this way, with the records they hold; `skip_batches` lists such names, and a batch
 * starting at a listed position is drawn and dropped, the next one taking its place. A
 * run given the same skip_batches from its start and a run resumed with them are
 * therefore bit-identical; without skip_batches nothing changes. */
#ifndef AGENTLORA_TRAIN_BATCH_SKIP_H
#define AGENTLORA_TRAIN_BATCH_SKIP_H

#include <stdbool.h>

#include "agentlora/data_stream.h"

/* Most batches one skip_batches value may name. */
#define AL_SKIP_BATCHES_MAX 4096

struct al_batch_skips {
    struct al_data_cursor *starts;
    bool *used;
    int count;
};

/* "0:40,1:3" (spaces allowed around entries); "" is an empty list. Errors name the key. */
int al_batch_skips_parse(const char *text, struct al_batch_skips *skips);
void al_batch_skips_free(struct al_batch_skips *skips);
/* True (once) when a listed batch starts at `start` (normalised by the stream). */
bool al_batch_skips_take(struct al_batch_skips *skips, const struct al_data_stream *stream,
                         struct al_data_cursor start);
/* Warns about listed batches that never came: a position no batch starts at, or one
 * before the run's own start. */
void al_batch_skips_report_unused(const struct al_batch_skips *skips);

/* "0:40 [records 41 (id harmful-x), 7 of data/train.json]" for the batch that started
 * at `from` and ended where `to` starts. The caller frees; NULL only when out of memory. */
char *al_batch_describe(const struct al_data_stream *stream, const char *data_path, struct al_data_cursor from,
                        struct al_data_cursor to);

#endif
