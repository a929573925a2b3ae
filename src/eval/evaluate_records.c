/* The records an evaluation runs on, parsed from a dataset's index. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/evaluate.h"

void al_eval_records_free(struct al_eval_records *records)
{
    for (int i = 0; i < records->n; i++)
        al_conversation_free(&records->conversations[i]);
    free(records->conversations);
    free(records->records);
    memset(records, 0, sizeof *records);
}

int al_eval_records_load(struct al_eval_records *out, const struct al_dataset *dataset, const int *indices, int n)
{
    memset(out, 0, sizeof *out);
    size_t count = (size_t)(n > 0 ? n : 1);
    out->conversations = calloc(count, sizeof *out->conversations);
    out->records = calloc(count, sizeof *out->records);
    if (!out->conversations || !out->records) {
        al_eval_records_free(out);
        return al_fail("out of memory");
    }
    for (int i = 0; i < n; i++) {
        int index = indices[i];
        if (index < 0 || index >= dataset->n_records) {
            al_eval_records_free(out);
            return al_fail("%s: no record at index %d (it has %d)", dataset->file.path, index, dataset->n_records);
        }
        if (al_dataset_get(dataset, index, &out->conversations[i]) != 0) {
            al_eval_records_free(out);
            return -1;
        }
        out->n = i + 1;
        out->records[i] = (struct al_eval_record){&out->conversations[i], dataset->records[index].record_number};
    }
    return 0;
}
