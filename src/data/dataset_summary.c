/* The load summary: what a data file contributed (records by label and category), what
 * was skipped and why, and later what packing did to it (tokens, truncations). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"

void al_load_summary_free(struct al_load_summary *summary)
{
    for (int i = 0; i < summary->n_categories; i++)
        free(summary->categories[i].name);
    free(summary->categories);
    for (int i = 0; i < summary->n_skip_reasons; i++)
        free(summary->skip_reasons[i]);
    memset(summary, 0, sizeof *summary);
}

static int find_category(const struct al_load_summary *summary, const char *name)
{
    for (int i = 0; i < summary->n_categories; i++)
        if (strcmp(summary->categories[i].name, name) == 0)
            return i;
    return -1;
}

long al_load_summary_category(const struct al_load_summary *summary, const char *name)
{
    int index = find_category(summary, name);
    return index < 0 ? 0 : summary->categories[index].count;
}

/* Categories are few (nine in AgentAlign), so a linear table is the simplest index. */
static int add_category(struct al_load_summary *summary, const char *name)
{
    int index = find_category(summary, name);
    if (index >= 0) {
        summary->categories[index].count++;
        return index;
    }
    struct al_category_count *grown =
        realloc(summary->categories, (size_t)(summary->n_categories + 1) * sizeof *grown);
    if (!grown)
        return al_fail("out of memory");
    summary->categories = grown;
    char *copy = strdup(name);
    if (!copy)
        return al_fail("out of memory");
    index = summary->n_categories++;
    grown[index].name = copy;
    grown[index].count = 1;
    return index;
}

int al_load_summary_add_record(struct al_load_summary *summary, const struct al_conversation *conv)
{
    int category = AL_CATEGORY_NONE;
    if (conv->category) {
        category = add_category(summary, conv->category);
        if (category < 0)
            return -1;
    }
    summary->records++;
    summary->by_format[conv->format]++;
    if (conv->harmful) {
        summary->harmful++;
    } else {
        summary->benign++;
        if (!conv->category)
            summary->unlabeled++;
    }
    return category;
}

void al_load_summary_add_skip(struct al_load_summary *summary, const char *reason)
{
    summary->skipped++;
    if (summary->n_skip_reasons < AL_SUMMARY_MAX_REASONS) {
        char *copy = strdup(reason);
        if (copy)
            summary->skip_reasons[summary->n_skip_reasons++] = copy;
    }
}

void al_load_summary_move_to_skipped(struct al_load_summary *summary, bool harmful, int category,
                                     const char *reason)
{
    summary->records--;
    if (harmful) {
        summary->harmful--;
    } else {
        summary->benign--;
        if (category == AL_CATEGORY_NONE)
            summary->unlabeled--;
    }
    if (category >= 0 && category < summary->n_categories)
        summary->categories[category].count--;
    al_load_summary_add_skip(summary, reason);
}

/* Appends printf output to a growing string; on failure the string is freed. */
static char *append(char *text, const char *fmt, ...) AL_PRINTF(2, 3);
static char *append(char *text, const char *fmt, ...)
{
    if (!text)
        return NULL;
    va_list args;
    va_start(args, fmt);
    char *piece = NULL;
    int n = vasprintf(&piece, fmt, args);
    va_end(args);
    char *joined = n < 0 ? NULL : al_strdup_printf("%s%s", text, piece);
    free(piece);
    free(text);
    return joined;
}

/* Records that came in another tool's shape, so a user sees how their file was read. */
static char *append_record_shapes(char *text, const struct al_load_summary *summary)
{
    static const char *const how[AL_RECORD_FORMAT_COUNT] = {
        [AL_RECORD_ALPACA] = "instruction + input as the user turn, output as the assistant's",
        [AL_RECORD_SHAREGPT] = "conversations: human -> user, gpt -> assistant, function_call/observation -> "
                               "tool call/result",
    };
    for (int format = AL_RECORD_ALPACA; format < AL_RECORD_FORMAT_COUNT; format++)
        if (summary->by_format[format] > 0)
            text = append(text, "read as messages: %ld %s records (%s)\n", summary->by_format[format],
                          al_record_format_name((enum al_record_format)format), how[format]);
    return text;
}

char *al_load_summary_format(const struct al_load_summary *summary)
{
    char *text = al_strdup_printf("records: %ld (harmful %ld, benign %ld", summary->records, summary->harmful,
                                  summary->benign);
    if (summary->unlabeled > 0)
        text = append(text, ", of which %ld unlabeled", summary->unlabeled);
    text = append(text, ")\n");
    for (int i = 0; i < summary->n_categories; i++)
        text = append(text, "  %-24s %ld\n", summary->categories[i].name, summary->categories[i].count);
    text = append_record_shapes(text, summary);
    if (summary->skipped > 0) {
        text = append(text, "skipped: %ld\n", summary->skipped);
        for (int i = 0; i < summary->n_skip_reasons; i++)
            text = append(text, "  %s\n", summary->skip_reasons[i]);
    }
    if (summary->duplicate_ids > 0)
        text = append(text, "duplicate ids: %ld records reuse an earlier record's id (kept)\n",
                      summary->duplicate_ids);
    if (summary->duplicate_keys > 0)
        text = append(text, "duplicate keys: %ld records give a key twice (the last value was used)\n",
                      summary->duplicate_keys);
    if (summary->tokens > 0 || summary->truncated > 0 || summary->dropped > 0)
        text = append(text, "tokens: %ld (%ld with a target), truncated documents: %ld, dropped: %ld\n",
                      summary->tokens, summary->target_tokens, summary->truncated, summary->dropped);
    return text;
}
