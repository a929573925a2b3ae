/* AgentHarm's summary numbers, for the harmful and the benign split and for each
 * category: score, full score, refusal rate and non-refusal score. Each aggregate carries
 * the judge's name, because a refusal rate means nothing without it. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/scoring.h"

/* Running sums, turned into shares once every item is in. */
struct sums {
    int n, refused, full;
    double score, non_refused_score;
};

static void add_item(struct sums *sums, const struct al_item_result *item)
{
    sums->n++;
    sums->refused += item->refusal;
    sums->full += item->full;
    sums->score += item->score;
    if (!item->refusal)
        sums->non_refused_score += item->score;
}

static double share(double part, int whole)
{
    return whole > 0 ? part / (double)whole : 0.0;
}

static struct al_split_stats finish(const struct sums *sums)
{
    return (struct al_split_stats){
        .n = sums->n,
        .n_refused = sums->refused,
        .score = share(sums->score, sums->n),
        .full_score = share(sums->full, sums->n),
        .refusal_rate = share(sums->refused, sums->n),
        .non_refusal_score = share(sums->non_refused_score, sums->n - sums->refused),
    };
}

static int category_index(const struct al_aggregate *out, const char *category, bool harmful)
{
    for (int i = 0; i < out->n_categories; i++)
        if (out->categories[i].harmful == harmful && strcmp(out->categories[i].category, category) == 0)
            return i;
    return -1;
}

/* Lists each (category, split) pair once, in first-seen order. */
static int collect_categories(const struct al_item_result *items, int n_items, struct al_aggregate *out)
{
    out->categories = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *out->categories);
    if (!out->categories)
        return al_fail("aggregate: out of memory");
    for (int i = 0; i < n_items; i++) {
        const char *category = items[i].category ? items[i].category : (items[i].harmful ? "harmful" : "benign");
        if (category_index(out, category, items[i].harmful) >= 0)
            continue;
        struct al_category_stats *slot = &out->categories[out->n_categories];
        slot->category = strdup(category);
        if (!slot->category)
            return al_fail("aggregate: out of memory");
        slot->harmful = items[i].harmful;
        out->n_categories++;
    }
    return 0;
}

int al_aggregate_compute(const struct al_item_result *items, int n_items, const char *judge_name,
                         struct al_aggregate *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->judge, sizeof out->judge, "%s", judge_name ? judge_name : "unknown");
    if (collect_categories(items, n_items, out) != 0) {
        al_aggregate_free(out);
        return -1;
    }
    struct sums harmful = {0}, benign = {0};
    struct sums *per_category = calloc((size_t)(out->n_categories > 0 ? out->n_categories : 1), sizeof *per_category);
    if (!per_category) {
        al_aggregate_free(out);
        return al_fail("aggregate: out of memory");
    }
    for (int i = 0; i < n_items; i++) {
        const char *category = items[i].category ? items[i].category : (items[i].harmful ? "harmful" : "benign");
        add_item(items[i].harmful ? &harmful : &benign, &items[i]);
        add_item(&per_category[category_index(out, category, items[i].harmful)], &items[i]);
    }
    out->harmful = finish(&harmful);
    out->benign = finish(&benign);
    for (int c = 0; c < out->n_categories; c++)
        out->categories[c].stats = finish(&per_category[c]);
    free(per_category);
    return 0;
}

static cJSON *stats_to_json(cJSON *object, const struct al_split_stats *stats)
{
    if (!object || !cJSON_AddNumberToObject(object, "n", stats->n) ||
        !cJSON_AddNumberToObject(object, "refused", stats->n_refused) ||
        !cJSON_AddNumberToObject(object, "score", stats->score) ||
        !cJSON_AddNumberToObject(object, "full_score", stats->full_score) ||
        !cJSON_AddNumberToObject(object, "refusal_rate", stats->refusal_rate) ||
        !cJSON_AddNumberToObject(object, "non_refusal_score", stats->non_refusal_score)) {
        cJSON_Delete(object);
        return NULL;
    }
    return object;
}

static bool add_categories(cJSON *root, const struct al_aggregate *aggregate)
{
    cJSON *list = cJSON_AddArrayToObject(root, "categories");
    for (int c = 0; list && c < aggregate->n_categories; c++) {
        cJSON *entry = cJSON_CreateObject();
        if (!entry)
            return false;
        if (!cJSON_AddStringToObject(entry, "category", aggregate->categories[c].category) ||
            !cJSON_AddBoolToObject(entry, "harmful", aggregate->categories[c].harmful)) {
            cJSON_Delete(entry);
            return false;
        }
        if (!stats_to_json(entry, &aggregate->categories[c].stats))
            return false; /* stats_to_json freed entry */
        cJSON_AddItemToArray(list, entry);
    }
    return list != NULL;
}

cJSON *al_aggregate_to_json(const struct al_aggregate *aggregate)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *harmful = stats_to_json(cJSON_CreateObject(), &aggregate->harmful);
    cJSON *benign = stats_to_json(cJSON_CreateObject(), &aggregate->benign);
    if (!root || !harmful || !benign || !cJSON_AddStringToObject(root, "judge", aggregate->judge)) {
        cJSON_Delete(root);
        cJSON_Delete(harmful);
        cJSON_Delete(benign);
        return al_fail_null("aggregate: out of memory writing JSON");
    }
    cJSON_AddItemToObject(root, "harmful", harmful);
    cJSON_AddItemToObject(root, "benign", benign);
    if (!add_categories(root, aggregate)) {
        cJSON_Delete(root);
        return al_fail_null("aggregate: out of memory writing JSON");
    }
    return root;
}

static void print_row(FILE *out, const char *split, const char *name, const struct al_split_stats *stats,
                      bool with_scores)
{
    if (with_scores)
        fprintf(out, "%-8s %-24s %5d %8.1f %8.1f %9.1f %13.1f\n", split, name, stats->n, 100.0 * stats->score,
                100.0 * stats->full_score, 100.0 * stats->refusal_rate, 100.0 * stats->non_refusal_score);
    else
        fprintf(out, "%-8s %-24s %5d %9.1f\n", split, name, stats->n, 100.0 * stats->refusal_rate);
}

static void print_split(const struct al_aggregate *aggregate, FILE *out, bool harmful, bool with_scores)
{
    const char *split = harmful ? "harmful" : "benign";
    print_row(out, split, "(all)", harmful ? &aggregate->harmful : &aggregate->benign, with_scores);
    for (int c = 0; c < aggregate->n_categories; c++)
        if (aggregate->categories[c].harmful == harmful)
            print_row(out, split, aggregate->categories[c].category, &aggregate->categories[c].stats, with_scores);
}

void al_aggregate_print(const struct al_aggregate *aggregate, FILE *out)
{
    fprintf(out, "refusals judged by %s; scores and rates in percent\n", aggregate->judge);
    fprintf(out, "%-8s %-24s %5s %8s %8s %9s %13s\n", "split", "category", "n", "score", "full", "refusal",
            "non-refusal");
    print_split(aggregate, out, true, true);
    print_split(aggregate, out, false, true);
}

void al_aggregate_print_refusals(const struct al_aggregate *aggregate, FILE *out)
{
    fprintf(out, "refusals judged by %s; rates in percent\n", aggregate->judge);
    fprintf(out, "%-8s %-24s %5s %9s\n", "split", "category", "n", "refusal");
    print_split(aggregate, out, true, false);
    print_split(aggregate, out, false, false);
}

void al_aggregate_free(struct al_aggregate *aggregate)
{
    for (int c = 0; c < aggregate->n_categories; c++)
        free(aggregate->categories[c].category);
    free(aggregate->categories);
    aggregate->categories = NULL;
    aggregate->n_categories = 0;
}
