/* Training data: streaming readers for AgentAlign files, the in-memory record index,
 * the train/eval split by behaviour pattern, harmful:benign mixing, the per-epoch
 * shuffle and the data cursor that makes resume exact.
 *
 * Formats (detected from the first non-space byte and the first record's keys):
 *   - the AgentAlign JSON array   [ {id, category, pattern, tools, messages}, ... ]
 *   - JSON Lines of the same records
 *   - generic JSON Lines          {"messages": [...], "tools": [...]}
 * The array is never parsed whole: a small scanner finds each element's byte range in
 * the mapped file and only that slice goes to cJSON, so memory stays at one record. */
#ifndef AGENTLORA_DATASET_H
#define AGENTLORA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentlora/conversation.h"
#include "agentlora/file.h"

struct cJSON;

enum al_data_format {
    AL_DATA_UNKNOWN = 0,
    AL_DATA_JSON_ARRAY,    /* the released AgentAlign file */
    AL_DATA_JSONL,         /* AgentAlign records, one per line */
    AL_DATA_GENERIC_JSONL, /* {"messages", "tools"} without AgentAlign labels */
};

const char *al_data_format_name(enum al_data_format format);

/* ---- the array splitter ----
 * Walks a JSON array element by element without parsing it: it tracks strings, escapes
 * and nesting depth only, which is enough to find where each element ends. */
struct al_json_array_scanner {
    const char *text;
    size_t size;
    size_t cursor;        /* next byte to look at */
    long elements;        /* elements returned so far */
    bool finished;        /* the closing ']' was seen */
    const char *source;   /* file name for error messages */
};

/* Positions the scanner after the opening '['; fails when the text is not an array. */
int al_json_array_scanner_init(struct al_json_array_scanner *scanner, const char *text, size_t size,
                               const char *source);
/* 1: *offset / *length hold the next element's bytes; 0: the array ended cleanly;
 * -1: truncated array, garbage between elements, or trailing data after ']'. */
int al_json_array_scanner_next(struct al_json_array_scanner *scanner, size_t *offset, size_t *length);

/* The offset just past the JSON value that starts at `start` (found the way the splitter
 * finds elements: strings, escapes and brackets only), or SIZE_MAX when it never ends. */
size_t al_json_value_end(const char *text, size_t size, size_t start);

/* ---- load summary ---- */

/* How many skip reasons are kept verbatim; the rest are only counted. */
#define AL_SUMMARY_MAX_REASONS 5

struct al_category_count {
    char *name;
    long count;
};

struct al_load_summary {
    long records;          /* accepted records */
    long harmful;
    long benign;           /* category "benign" or no category (generic records) */
    long unlabeled;        /* of the benign ones: records without a category */
    long by_format[AL_RECORD_FORMAT_COUNT]; /* accepted records by shape: messages, Alpaca, ShareGPT */
    struct al_category_count *categories; /* in order of first appearance */
    int n_categories;
    long skipped;
    char *skip_reasons[AL_SUMMARY_MAX_REASONS];
    int n_skip_reasons;
    /* Filled by the packer (al_pack_stats_add_to_summary in packing.h). */
    long tokens;
    long target_tokens;
    long truncated;
    long dropped;
    /* Said as warnings and counted; the records themselves are kept. */
    long duplicate_ids;    /* records whose id an earlier record already had */
    long duplicate_keys;   /* records with a key given twice (the last value was used) */
};

/* Category index for records without a category (generic records). */
#define AL_CATEGORY_NONE (-2)

/* Counts one accepted record; returns its category's index (AL_CATEGORY_NONE when it
 * has none) or -1 when out of memory. */
int al_load_summary_add_record(struct al_load_summary *summary, const struct al_conversation *conv);
/* Counts one skipped record and keeps the reason while fewer than the maximum are kept. */
void al_load_summary_add_skip(struct al_load_summary *summary, const char *reason);
/* A record counted as accepted that turned out unusable later (at tokenization): it
 * leaves the accepted counts (label and category) and becomes a skip, so that records +
 * skipped stays the number of records in the file. */
void al_load_summary_move_to_skipped(struct al_load_summary *summary, bool harmful, int category,
                                     const char *reason);
void al_load_summary_free(struct al_load_summary *summary);
/* Count of one category (0 when absent). */
long al_load_summary_category(const struct al_load_summary *summary, const char *name);
/* A few human lines for the CLI; the caller frees. */
char *al_load_summary_format(const struct al_load_summary *summary);

/* ---- readers ---- */

struct al_reader_options {
    /* true: the first malformed record fails the load. false (default): it is skipped,
     * counted in the summary and logged as a warning. Structural damage (a truncated
     * array, garbage between elements, a file that is not JSON) always fails. */
    bool strict;
    /* true: a record without an assistant message is skipped (or, strict, fatal):
     * training has nothing to learn from it. Evaluation prompts may lack one. */
    bool require_assistant;
};

struct al_reader;

/* Record ids seen so far and the record that first used each (id_set.c). */
struct al_id_slot {
    char *id;
    long record_number;
};
struct al_id_set {
    struct al_id_slot *slots;
    size_t capacity; /* a power of two */
    size_t count;
};
/* 1: added; 0: already there (*first_record says where); -1: out of memory. */
int al_id_set_add(struct al_id_set *set, const char *id, long record_number, long *first_record);
void al_id_set_free(struct al_id_set *set);

/* Maps and opens a data file; fails on an empty file or one that is not JSON. */
struct al_reader *al_reader_open(const char *path, const struct al_reader_options *options);
/* The same over a mapping the caller keeps alive (the dataset re-reads it later). */
struct al_reader *al_reader_open_mapped(const struct al_mapped_file *file, const struct al_reader_options *options);
void al_reader_close(struct al_reader *reader);

/* 1: *conv holds the next record (free it with al_conversation_free); 0: no more
 * records; -1: error (al_error_message names the file and the record number). */
int al_reader_next(struct al_reader *reader, struct al_conversation *conv);

enum al_data_format al_reader_format(const struct al_reader *reader);
/* Where the record last returned lies in the file, and its 1-based number. */
void al_reader_last_record(const struct al_reader *reader, size_t *offset, size_t *length, long *record_number);
/* Counts so far (records by label and category, skips with their reasons). */
const struct al_load_summary *al_reader_summary(const struct al_reader *reader);
/* Moves the summary out (the reader's own is left empty); free it with al_load_summary_free. */
void al_reader_take_summary(struct al_reader *reader, struct al_load_summary *summary);

/* Checks a record's "tools" list: each entry {"type": "function", "function": {"name",
 * "description"?, "parameters": {"type": "object", "properties"?, "required"?}}}, extra
 * keys tolerated (AgentAlign adds "category"); "required" must be a list of strings
 * (names absent from "properties" are tolerated: the released schemas have some).
 * The reader applies it to every record; errors name source and record. */
int al_tool_schemas_check(const struct cJSON *tools, const char *source, long record_number);

/* ---- the dataset: an index of records over the mapped file ---- */

struct al_record_entry {
    size_t offset, length;  /* the record's bytes in the file */
    long record_number;     /* 1-based, as in error messages */
    char *id;               /* may be NULL (generic records) */
    bool harmful;
    int category;           /* index into summary.categories, AL_CATEGORY_NONE when unlabeled */
    uint64_t pattern_hash;  /* hash of the joined pattern steps (or of the id when none) */
};

struct al_dataset {
    struct al_mapped_file file;
    enum al_data_format format;
    struct al_record_entry *records;
    int n_records;
    struct al_load_summary summary;
};

/* Reads the whole file once (validating every record) and keeps only the index;
 * fails when no usable record remains. */
int al_dataset_load(struct al_dataset *dataset, const char *path, const struct al_reader_options *options);
/* Parses record `index` again from the mapping. */
int al_dataset_get(const struct al_dataset *dataset, int index, struct al_conversation *conv);
void al_dataset_free(struct al_dataset *dataset);

/* The key a split hashes: pattern steps joined with " > ", or "id:<id>" when the record
 * has no pattern, or "record:<n>" when it has neither. The caller frees. */
char *al_pattern_key(const struct al_conversation *conv, long record_number);
uint64_t al_pattern_key_hash(const char *key);

/* ---- splits and mixing (lists of dataset record indices, ascending) ---- */

struct al_index_list {
    int *items;
    int n;
};

void al_index_list_free(struct al_index_list *list);

/* Records whose pattern hashes (with the seed) below eval_fraction go to eval, the rest
 * to train: one pattern never lands on both sides. eval_fraction in [0, 1]. */
int al_dataset_split(const struct al_dataset *dataset, uint64_t seed, double eval_fraction,
                     struct al_index_list *train, struct al_index_list *eval);

/* "1:2" -> harmful 1, benign 2. Non-negative integers, not both zero. */
int al_parse_ratio(const char *text, int *harmful_part, int *benign_part);

/* Keeps every record of the scarcer side and a seeded, deterministic subsample of the
 * other so that harmful:benign is as close to the ratio as whole records allow. The
 * output keeps the input order. */
int al_mix_ratio(const struct al_dataset *dataset, const struct al_index_list *input, int harmful_part,
                 int benign_part, uint64_t seed, struct al_index_list *output);

/* ---- per-epoch order and the data cursor ---- */

/* order[0..n) = a Fisher-Yates permutation of 0..n-1 seeded from (seed, epoch). */
void al_epoch_order(int *order, int n, uint64_t seed, int64_t epoch);

struct al_data_cursor {
    int64_t epoch;
    int64_t position; /* next item of that epoch's order */
};

/* {"epoch": E, "position": P}; NULL when out of memory. */
struct cJSON *al_data_cursor_to_json(const struct al_data_cursor *cursor);
int al_data_cursor_from_json(struct al_data_cursor *cursor, const struct cJSON *json, const char *source);

/* Hands out record indices epoch after epoch; saving `cursor` and restoring it with
 * al_sampler_init continues with exactly the same sequence. */
struct al_sampler {
    int *items;        /* the records sampled (copied) */
    int n;
    uint64_t seed;
    struct al_data_cursor cursor;
    int *order;        /* permutation of the current epoch */
    int64_t order_epoch;
};

int al_sampler_init(struct al_sampler *sampler, const struct al_index_list *records, uint64_t seed,
                    const struct al_data_cursor *start);
/* Next record index (into the dataset); advances the cursor, moving to the next epoch
 * after the last item. */
int al_sampler_next(struct al_sampler *sampler, int *record_index);
void al_sampler_free(struct al_sampler *sampler);

#endif
