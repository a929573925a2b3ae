/* The dataset: one validating pass of the reader over the mapped file that keeps only
 * an index (byte range, label, category, pattern hash, id) per record. Conversations
 * are parsed again on demand, so the training set never sits in memory as JSON trees:
 * the released AgentAlign file as cJSON trees would cost several times its 222 MB. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/rng.h"

/* Steps are joined with a separator no capability name contains. */
#define PATTERN_SEPARATOR " > "

char *al_pattern_key(const struct al_conversation *conv, long record_number)
{
    if (conv->n_pattern == 0)
        return conv->id ? al_strdup_printf("id:%s", conv->id) : al_strdup_printf("record:%ld", record_number);
    size_t length = 1;
    for (int i = 0; i < conv->n_pattern; i++)
        length += strlen(conv->pattern[i]) + strlen(PATTERN_SEPARATOR);
    char *key = malloc(length);
    if (!key)
        return NULL;
    key[0] = '\0';
    for (int i = 0; i < conv->n_pattern; i++) {
        if (i > 0)
            strcat(key, PATTERN_SEPARATOR);
        strcat(key, conv->pattern[i]);
    }
    return key;
}

/* FNV-1a, then the splitmix finaliser so that similar keys spread over all 64 bits. */
uint64_t al_pattern_key_hash(const char *key)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        hash ^= *p;
        hash *= 0x100000001b3ULL;
    }
    return al_hash64(hash);
}

static int grow_records(struct al_dataset *dataset, int *capacity)
{
    if (dataset->n_records < *capacity)
        return 0;
    int wanted = *capacity ? *capacity * 2 : 256;
    struct al_record_entry *grown = realloc(dataset->records, (size_t)wanted * sizeof *grown);
    if (!grown)
        return al_fail("out of memory indexing %s", dataset->file.path);
    dataset->records = grown;
    *capacity = wanted;
    return 0;
}

static int index_record(struct al_dataset *dataset, const struct al_reader *reader,
                        const struct al_conversation *conv, int *capacity)
{
    if (grow_records(dataset, capacity) != 0)
        return -1;
    struct al_record_entry *entry = &dataset->records[dataset->n_records];
    memset(entry, 0, sizeof *entry);
    al_reader_last_record(reader, &entry->offset, &entry->length, &entry->record_number);
    entry->harmful = conv->harmful;
    entry->category = AL_CATEGORY_NONE;
    if (conv->category) {
        /* The reader counted the record already, so its category is in the table. */
        for (int i = 0; i < al_reader_summary(reader)->n_categories; i++)
            if (strcmp(al_reader_summary(reader)->categories[i].name, conv->category) == 0)
                entry->category = i;
    }
    char *key = al_pattern_key(conv, entry->record_number);
    entry->id = conv->id ? strdup(conv->id) : NULL;
    if (!key || (conv->id && !entry->id)) {
        free(key);
        free(entry->id);
        return al_fail("out of memory indexing %s", dataset->file.path);
    }
    entry->pattern_hash = al_pattern_key_hash(key);
    free(key);
    dataset->n_records++;
    return 0;
}

static int read_all(struct al_dataset *dataset, struct al_reader *reader)
{
    int capacity = 0;
    struct al_conversation conv;
    int got;
    while ((got = al_reader_next(reader, &conv)) == 1) {
        int rc = index_record(dataset, reader, &conv, &capacity);
        al_conversation_free(&conv);
        if (rc != 0)
            return -1;
    }
    return got;
}

int al_dataset_load(struct al_dataset *dataset, const char *path, const struct al_reader_options *options)
{
    memset(dataset, 0, sizeof *dataset);
    if (al_file_map(&dataset->file, path) != 0)
        return -1;
    struct al_reader *reader = al_reader_open_mapped(&dataset->file, options);
    if (!reader) {
        al_dataset_free(dataset);
        return -1;
    }
    dataset->format = al_reader_format(reader);
    int rc = read_all(dataset, reader);
    al_reader_take_summary(reader, &dataset->summary);
    al_reader_close(reader);
    if (rc == 0 && dataset->n_records == 0)
        rc = dataset->summary.skipped > 0
                 ? al_fail("%s: no usable records (%ld skipped; first: %s)", path, dataset->summary.skipped,
                           dataset->summary.skip_reasons[0])
                 : al_fail("%s: the file holds no records", path);
    if (rc != 0) {
        al_dataset_free(dataset);
        return -1;
    }
    return 0;
}

int al_dataset_get(const struct al_dataset *dataset, int index, struct al_conversation *conv)
{
    if (index < 0 || index >= dataset->n_records)
        return al_fail("%s: record index %d out of range (%d records)", dataset->file.path, index,
                       dataset->n_records);
    const struct al_record_entry *entry = &dataset->records[index];
    memset(conv, 0, sizeof *conv);
    cJSON *json = al_record_json_parse((const char *)dataset->file.data + entry->offset, entry->length, NULL);
    if (!json) {
        al_error_context("%s: record %ld: on re-reading (file changed?)", dataset->file.path,
                         entry->record_number);
        return -1;
    }
    int rc = al_conversation_from_json(conv, json, dataset->file.path, entry->record_number);
    cJSON_Delete(json);
    return rc;
}

void al_dataset_free(struct al_dataset *dataset)
{
    for (int i = 0; i < dataset->n_records; i++)
        free(dataset->records[i].id);
    free(dataset->records);
    al_load_summary_free(&dataset->summary);
    al_file_unmap(&dataset->file);
    memset(dataset, 0, sizeof *dataset);
}
