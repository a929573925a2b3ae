/* The training data stream (see include/agentlora/data_stream.h). */
#include "agentlora/data_stream.h"

#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/error.h"
#include "agentlora/log.h"

struct eval_set {
    bool built;
    struct al_packed_batch *batches;
    int count;
};

struct al_data_stream {
    struct al_data_stream_options options;
    const struct al_tokenizer *tokenizer;
    struct al_dataset train_data;
    struct al_dataset eval_data; /* used only with a separate eval file */
    bool separate_eval;
    struct al_index_list train, eval;
    int unusable_train; /* of train: records that failed to render or tokenize (skipped) */
    struct al_sampler sampler;
    struct al_packer *packer;
    /* A document drawn for a batch it did not fit: it opens the next batch. */
    struct al_example pending;
    bool has_pending;
    struct al_data_cursor next_batch_start;
    int64_t batches_per_epoch;
    struct eval_set eval_sets[2]; /* [benign, harmful] */
};

/* Renders one record of a dataset into an example. Returns 1 when built, 0 when the
 * record cannot be used and is skipped (not strict), -1 on error. */
static int build_example(const struct al_data_stream *s, const struct al_dataset *data, int index,
                         struct al_example *example, char **skip_reason)
{
    struct al_conversation conv;
    const struct al_record_entry *entry = &data->records[index];
    if (al_dataset_get(data, index, &conv) != 0)
        return -1;
    /* Not a bad record but the wrong format for the data: stop, whatever strict_data says. */
    if (al_chat_format_check_fits(s->options.example.format, &conv) != 0) {
        al_error_context("%s record %ld%s%s (set chat_format)", data->file.path, entry->record_number,
                         conv.id ? ", id " : "", conv.id ? conv.id : "");
        al_conversation_free(&conv);
        return -1;
    }
    struct al_example_options options = s->options.example;
    options.ping_prefix = s->options.ping && s->options.ping->mode == AL_PING_TRAIN
                              ? al_ping_train_prefix(s->options.ping, conv.id, entry->record_number, conv.harmful)
                              : NULL;
    int rc = al_example_build(example, s->tokenizer, &conv, &options, data->file.path, entry->record_number);
    al_conversation_free(&conv);
    if (rc == 0)
        return 1;
    if (s->options.strict)
        return -1;
    if (skip_reason)
        *skip_reason = strdup(al_error_message());
    return 0;
}

static struct al_document document_of(const struct al_example *example)
{
    return (struct al_document){example->tokens.ids, example->loss_mask, (int)example->tokens.count};
}

static int select_records(struct al_data_stream *s)
{
    const struct al_data_stream_options *o = &s->options;
    struct al_index_list all_train = {0};
    if (s->separate_eval) {
        all_train.n = s->train_data.n_records;
        all_train.items = malloc(((size_t)all_train.n + 1) * sizeof(int));
        if (!all_train.items)
            return al_fail("out of memory");
        for (int i = 0; i < all_train.n; i++)
            all_train.items[i] = i;
        s->eval.n = s->eval_data.n_records;
        s->eval.items = malloc(((size_t)s->eval.n + 1) * sizeof(int));
        if (!s->eval.items) {
            al_index_list_free(&all_train);
            return al_fail("out of memory");
        }
        for (int i = 0; i < s->eval.n; i++)
            s->eval.items[i] = i;
    } else if (al_dataset_split(&s->train_data, o->seed, o->eval_fraction, &all_train, &s->eval) != 0) {
        return -1;
    }
    int rc = 0;
    if (o->ratio && o->ratio[0]) {
        int harmful_part, benign_part;
        rc = al_parse_ratio(o->ratio, &harmful_part, &benign_part);
        if (rc == 0)
            rc = al_mix_ratio(&s->train_data, &all_train, harmful_part, benign_part, o->seed, &s->train);
        al_index_list_free(&all_train);
    } else {
        s->train = all_train;
    }
    if (rc == 0 && s->train.n == 0)
        rc = al_fail("%s: no training records after the split", o->train_path);
    return rc;
}

/* Renders and packs epoch 0 once: the batch count, the token summary, and a warning for
 * every record that cannot be used. */
static int count_epoch(struct al_data_stream *s)
{
    struct al_packer *packer = al_packer_create(&s->options.pack);
    if (!packer)
        return -1;
    int *order = malloc(((size_t)s->train.n + 1) * sizeof(int));
    if (!order) {
        al_packer_free(packer);
        return al_fail("out of memory");
    }
    al_epoch_order(order, s->train.n, s->options.seed, 0);
    int rc = 0;
    int64_t batches = 0;
    for (int i = 0; i < s->train.n && rc == 0; i++) {
        struct al_example example;
        char *reason = NULL;
        const struct al_record_entry *entry = &s->train_data.records[s->train.items[order[i]]];
        int built = build_example(s, &s->train_data, s->train.items[order[i]], &example, &reason);
        if (built <= 0) {
            rc = built;
            if (reason) {
                /* The reader counted it as accepted; now it is a skip, counted once. */
                al_log_warn("skipping %s", reason);
                al_load_summary_move_to_skipped(&s->train_data.summary, entry->harmful, entry->category, reason);
                s->unusable_train++;
                free(reason);
            }
            continue;
        }
        struct al_document doc = document_of(&example);
        int added = al_packer_add(packer, &doc);
        if (added == 1) {
            struct al_packed_batch batch;
            if (al_packer_take(packer, &batch) == 1)
                al_packed_batch_free(&batch);
            batches++;
            added = al_packer_add(packer, &doc);
        }
        al_example_free(&example);
        rc = added < 0 ? -1 : 0;
    }
    struct al_packed_batch last;
    if (rc == 0 && al_packer_take(packer, &last) == 1) {
        al_packed_batch_free(&last);
        batches++;
    }
    if (rc == 0) {
        al_pack_stats_add_to_summary(al_packer_stats(packer), &s->train_data.summary);
        s->batches_per_epoch = batches;
        rc = batches == 0 ? al_fail("%s: no training record could be used%s", s->options.train_path,
                                    al_packer_stats(packer)->dropped > 0 ? " (every one is longer than max_len)" : "")
                          : al_check_something_to_learn(al_packer_stats(packer), s->options.pack.max_len,
                                                        s->options.train_path);
    }
    free(order);
    al_packer_free(packer);
    return rc;
}

struct al_data_stream *al_data_stream_open(const struct al_data_stream_options *options,
                                           const struct al_tokenizer *tokenizer, const struct al_data_cursor *start)
{
    struct al_data_stream *s = calloc(1, sizeof *s);
    if (!s)
        return al_fail_null("out of memory");
    s->options = *options;
    s->tokenizer = tokenizer;
    s->separate_eval = options->eval_path && options->eval_path[0];
    struct al_reader_options reader = {.strict = options->strict, .require_assistant = true};
    struct al_data_cursor origin = {0, 0};
    s->next_batch_start = start ? *start : origin;
    if (al_dataset_load(&s->train_data, options->train_path, &reader) != 0 ||
        (s->separate_eval && al_dataset_load(&s->eval_data, options->eval_path, &reader) != 0) ||
        select_records(s) != 0 || count_epoch(s) != 0 ||
        al_sampler_init(&s->sampler, &s->train, options->seed, &s->next_batch_start) != 0 ||
        !(s->packer = al_packer_create(&options->pack))) {
        al_data_stream_free(s);
        return NULL;
    }
    return s;
}

static void free_eval_set(struct eval_set *set)
{
    for (int i = 0; i < set->count; i++)
        al_packed_batch_free(&set->batches[i]);
    free(set->batches);
    memset(set, 0, sizeof *set);
}

void al_data_stream_free(struct al_data_stream *s)
{
    if (!s)
        return;
    free_eval_set(&s->eval_sets[0]);
    free_eval_set(&s->eval_sets[1]);
    if (s->has_pending)
        al_example_free(&s->pending);
    al_packer_free(s->packer);
    al_sampler_free(&s->sampler);
    al_index_list_free(&s->train);
    al_index_list_free(&s->eval);
    if (s->separate_eval)
        al_dataset_free(&s->eval_data);
    al_dataset_free(&s->train_data);
    free(s);
}

/* Draws records until one does not fit the batch (it becomes pending) — or, for a batch
 * of one row that already holds a document, until the batch is full. */
int al_data_stream_next(struct al_data_stream *s, struct al_packed_batch *batch)
{
    if (s->has_pending) {
        struct al_document doc = document_of(&s->pending);
        int added = al_packer_add(s->packer, &doc);
        al_example_free(&s->pending);
        s->has_pending = false;
        if (added != 0)
            return added < 0 ? -1 : al_fail("a document did not fit an empty batch");
    }
    /* Terminates: counting the epoch at open proved that some record can be used. */
    for (;;) {
        /* An epoch's last batch ends with it (and may be partial): an epoch is every
         * record used once, and epoch e's batches are what counting epoch 0 counted. */
        if (s->sampler.cursor.position >= s->sampler.n) {
            int taken = al_packer_take(s->packer, batch);
            if (taken != 0) {
                s->next_batch_start = s->sampler.cursor;
                return taken == 1 ? 1 : -1;
            }
        }
        struct al_data_cursor before = s->sampler.cursor;
        int index;
        if (al_sampler_next(&s->sampler, &index) != 0)
            return -1;
        struct al_example example;
        int built = build_example(s, &s->train_data, index, &example, NULL);
        if (built < 0)
            return -1;
        if (built == 0)
            continue; /* counted and logged when the epoch was first counted */
        struct al_document doc = document_of(&example);
        int added = al_packer_add(s->packer, &doc);
        if (added < 0) {
            al_example_free(&example);
            return -1;
        }
        if (added == 0) {
            al_example_free(&example);
            continue;
        }
        /* Full: this record opens the next batch, which therefore starts at `before`. */
        s->pending = example;
        s->has_pending = true;
        s->next_batch_start = before;
        return al_packer_take(s->packer, batch) == 1 ? 1 : al_fail("the packer returned no batch");
    }
}

struct al_data_cursor al_data_stream_cursor(const struct al_data_stream *s)
{
    return s->next_batch_start;
}

int64_t al_data_stream_batches_per_epoch(const struct al_data_stream *s)
{
    return s->batches_per_epoch;
}

int al_data_stream_counts(const struct al_data_stream *s, int *train_records, int *eval_records)
{
    *train_records = s->train.n - s->unusable_train;
    *eval_records = s->eval.n;
    return 0;
}

const struct al_load_summary *al_data_stream_summary(const struct al_data_stream *s)
{
    return &s->train_data.summary;
}

static int build_eval_set(struct al_data_stream *s, bool harmful, struct eval_set *set)
{
    const struct al_dataset *data = s->separate_eval ? &s->eval_data : &s->train_data;
    struct al_packer *packer = al_packer_create(&s->options.pack);
    if (!packer)
        return -1;
    int rc = 0;
    for (int i = 0; i < s->eval.n && rc == 0; i++) {
        int index = s->eval.items[i];
        if (data->records[index].harmful != harmful)
            continue;
        struct al_example example;
        int built = build_example(s, data, index, &example, NULL);
        if (built <= 0) {
            rc = built;
            continue;
        }
        struct al_document doc = document_of(&example);
        int added = al_packer_add(packer, &doc);
        while (added == 1 && rc == 0) {
            struct al_packed_batch *grown = realloc(set->batches, ((size_t)set->count + 1) * sizeof *grown);
            if (!grown) {
                rc = al_fail("out of memory");
                break;
            }
            set->batches = grown;
            if (al_packer_take(packer, &set->batches[set->count]) == 1)
                set->count++;
            added = al_packer_add(packer, &doc);
        }
        if (added < 0)
            rc = -1;
        al_example_free(&example);
    }
    struct al_packed_batch last;
    if (rc == 0 && al_packer_take(packer, &last) == 1) {
        struct al_packed_batch *grown = realloc(set->batches, ((size_t)set->count + 1) * sizeof *grown);
        if (grown) {
            set->batches = grown;
            set->batches[set->count++] = last;
        } else {
            al_packed_batch_free(&last);
            rc = al_fail("out of memory");
        }
    }
    al_packer_free(packer);
    set->built = rc == 0;
    return rc;
}

int al_data_stream_eval_batches(struct al_data_stream *s, bool harmful, const struct al_packed_batch **batches,
                                int *count)
{
    struct eval_set *set = &s->eval_sets[harmful ? 1 : 0];
    if (!set->built && build_eval_set(s, harmful, set) != 0) {
        free_eval_set(set);
        return -1;
    }
    *batches = set->batches;
    *count = set->count;
    return 0;
}

void al_data_stream_eval_records(const struct al_data_stream *stream, const struct al_dataset **dataset,
                                 const struct al_index_list **eval)
{
    *dataset = stream->separate_eval ? &stream->eval_data : &stream->train_data;
    *eval = &stream->eval;
}

/* ---- naming the records of a batch ---- */

struct al_data_cursor al_data_stream_normalise_cursor(const struct al_data_stream *s, struct al_data_cursor cursor)
{
    /* The sampler moves to the next epoch only when it draws again, so the end of an
     * epoch and the start of the next are one place. */
    if (cursor.position >= s->train.n) {
        cursor.epoch++;
        cursor.position = 0;
    }
    return cursor;
}

static bool cursor_before(struct al_data_cursor a, struct al_data_cursor b)
{
    return a.epoch < b.epoch || (a.epoch == b.epoch && a.position < b.position);
}

int al_data_stream_batch_records(const struct al_data_stream *s, struct al_data_cursor from, struct al_data_cursor to,
                                 const struct al_record_entry ***records, int *count)
{
    *records = NULL;
    *count = 0;
    struct al_sampler sampler;
    if (al_sampler_init(&sampler, &s->train, s->options.seed, &from) != 0)
        return -1;
    int rc = 0, capacity = 0;
    to = al_data_stream_normalise_cursor(s, to);
    while (rc == 0 && cursor_before(al_data_stream_normalise_cursor(s, sampler.cursor), to)) {
        int index;
        struct al_example example;
        if (al_sampler_next(&sampler, &index) != 0 || (rc = build_example(s, &s->train_data, index, &example, NULL)) < 0)
            break;
        if (rc == 0)
            continue; /* could not be used: never part of a batch */
        rc = 0;
        al_example_free(&example);
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            const struct al_record_entry **grown = realloc((void *)*records, (size_t)capacity * sizeof *grown);
            if (!grown) {
                rc = al_fail("out of memory");
                break;
            }
            *records = grown;
        }
        (*records)[(*count)++] = &s->train_data.records[index];
    }
    al_sampler_free(&sampler);
    al_error_clear();
    if (rc != 0) {
        free((void *)*records);
        *records = NULL;
        *count = 0;
    }
    return rc;
}
