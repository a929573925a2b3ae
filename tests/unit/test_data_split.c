/* Split by pattern, harmful:benign mixing, the per-epoch shuffle and the data cursor,
 * on a generated JSON Lines file with known patterns and labels. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "test_support.h"

enum { N_RECORDS = 240, N_PATTERNS = 24 };

/* Record i: pattern i % N_PATTERNS (two steps), harmful when i % 4 == 0. */
static bool fixture_harmful(int i)
{
    return i % 4 == 0;
}

static char *write_dataset(void)
{
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "mix.jsonl");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < N_RECORDS; i++) {
        bool harmful = fixture_harmful(i);
        fprintf(f,
                "{\"id\": \"r%d\", \"category\": \"%s\", \"pattern\": [\"Cap.step_%d\", \"Cap.finish\"], "
                "\"messages\": [{\"role\": \"user\", \"content\": \"request %d\"}, "
                "{\"role\": \"assistant\", \"content\": \"answer %d\"}]}\n",
                i, harmful ? "online_fraud" : "benign", i % N_PATTERNS, i, i);
    }
    fclose(f);
    free(dir);
    return path;
}

static void load(struct al_dataset *dataset)
{
    char *path = write_dataset();
    cr_assert_eq(al_dataset_load(dataset, path, NULL), 0, "%s", al_error_message());
    cr_assert_eq(dataset->n_records, N_RECORDS);
    free(path);
}

static bool same_list(const struct al_index_list *a, const struct al_index_list *b)
{
    return a->n == b->n && memcmp(a->items, b->items, (size_t)a->n * sizeof *a->items) == 0;
}

Test(data_split, one_pattern_never_lands_on_both_sides)
{
    struct al_dataset dataset;
    load(&dataset);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        struct al_index_list train, eval;
        cr_assert_eq(al_dataset_split(&dataset, seed, 0.25, &train, &eval), 0);
        cr_assert_eq(train.n + eval.n, N_RECORDS);
        cr_assert_gt(train.n, 0);
        cr_assert_gt(eval.n, 0);
        int side_of_pattern[N_PATTERNS];
        for (int p = 0; p < N_PATTERNS; p++)
            side_of_pattern[p] = -1;
        const struct al_index_list *sides[2] = {&train, &eval};
        for (int s = 0; s < 2; s++) {
            for (int k = 0; k < sides[s]->n; k++) {
                int pattern = sides[s]->items[k] % N_PATTERNS;
                cr_assert(side_of_pattern[pattern] == -1 || side_of_pattern[pattern] == s,
                          "seed %lu: pattern %d is on both sides", (unsigned long)seed, pattern);
                side_of_pattern[pattern] = s;
                if (k > 0)
                    cr_assert_lt(sides[s]->items[k - 1], sides[s]->items[k], "lists stay in file order");
            }
        }
        al_index_list_free(&train);
        al_index_list_free(&eval);
    }
    al_dataset_free(&dataset);
}

Test(data_split, split_is_deterministic_and_seed_dependent)
{
    struct al_dataset dataset;
    load(&dataset);
    struct al_index_list train1, eval1, train2, eval2, train3, eval3;
    cr_assert_eq(al_dataset_split(&dataset, 7, 0.3, &train1, &eval1), 0);
    cr_assert_eq(al_dataset_split(&dataset, 7, 0.3, &train2, &eval2), 0);
    cr_assert(same_list(&train1, &train2) && same_list(&eval1, &eval2));
    cr_assert_eq(al_dataset_split(&dataset, 8, 0.3, &train3, &eval3), 0);
    cr_assert_not(same_list(&eval1, &eval3), "another seed picks other eval patterns");
    al_index_list_free(&train1);
    al_index_list_free(&eval1);
    al_index_list_free(&train2);
    al_index_list_free(&eval2);
    al_index_list_free(&train3);
    al_index_list_free(&eval3);

    struct al_index_list train, eval;
    cr_assert_eq(al_dataset_split(&dataset, 7, 0.0, &train, &eval), 0);
    cr_assert_eq(eval.n, 0);
    cr_assert_eq(train.n, N_RECORDS);
    al_index_list_free(&train);
    al_index_list_free(&eval);
    cr_assert_eq(al_dataset_split(&dataset, 7, 1.0, &train, &eval), 0);
    cr_assert_eq(train.n, 0);
    al_index_list_free(&train);
    al_index_list_free(&eval);
    cr_assert_eq(al_dataset_split(&dataset, 7, 1.5, &train, &eval), -1);
    al_dataset_free(&dataset);
}

Test(data_split, ratio_text_is_parsed_strictly)
{
    int h, b;
    cr_assert_eq(al_parse_ratio("1:2", &h, &b), 0);
    cr_assert(h == 1 && b == 2);
    cr_assert_eq(al_parse_ratio("3:0", &h, &b), 0);
    cr_assert(h == 3 && b == 0);
    static const char *bad[] = {"1-2", ":2", "1:", "0:0", "1:2x", "-1:2", "a:b", "", " 1:2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(al_parse_ratio(bad[i], &h, &b), -1, "\"%s\" accepted", bad[i]);
    cr_assert_eq(al_parse_ratio(NULL, &h, &b), -1);
}

static void count_labels(const struct al_dataset *dataset, const struct al_index_list *list, int *harmful,
                         int *benign)
{
    *harmful = *benign = 0;
    for (int k = 0; k < list->n; k++) {
        cr_assert_eq(dataset->records[list->items[k]].harmful, fixture_harmful(list->items[k]));
        if (dataset->records[list->items[k]].harmful)
            (*harmful)++;
        else
            (*benign)++;
    }
}

Test(data_split, mixing_keeps_the_scarce_side_and_subsamples_the_other)
{
    struct al_dataset dataset;
    load(&dataset);
    struct al_index_list all = {.items = malloc(N_RECORDS * sizeof(int)), .n = N_RECORDS};
    for (int i = 0; i < N_RECORDS; i++)
        all.items[i] = i;

    /* 60 harmful, 180 benign. */
    struct al_index_list mixed, again, other_seed;
    int harmful, benign;
    cr_assert_eq(al_mix_ratio(&dataset, &all, 1, 2, 11, &mixed), 0, "%s", al_error_message());
    count_labels(&dataset, &mixed, &harmful, &benign);
    cr_assert_eq(harmful, 60);
    cr_assert_eq(benign, 120);
    for (int k = 1; k < mixed.n; k++)
        cr_assert_lt(mixed.items[k - 1], mixed.items[k], "the input order is kept");
    cr_assert_eq(al_mix_ratio(&dataset, &all, 1, 2, 11, &again), 0);
    cr_assert(same_list(&mixed, &again), "same seed, same subsample");
    cr_assert_eq(al_mix_ratio(&dataset, &all, 1, 2, 12, &other_seed), 0);
    cr_assert_not(same_list(&mixed, &other_seed), "another seed, another subsample");
    al_index_list_free(&mixed);
    al_index_list_free(&again);
    al_index_list_free(&other_seed);

    /* 2:1 cuts the benign side to 30. */
    cr_assert_eq(al_mix_ratio(&dataset, &all, 2, 1, 11, &mixed), 0);
    count_labels(&dataset, &mixed, &harmful, &benign);
    cr_assert(harmful == 60 && benign == 30, "%d:%d", harmful, benign);
    al_index_list_free(&mixed);

    /* 1:10 cuts the harmful side to 18. */
    cr_assert_eq(al_mix_ratio(&dataset, &all, 1, 10, 11, &mixed), 0);
    count_labels(&dataset, &mixed, &harmful, &benign);
    cr_assert(harmful == 18 && benign == 180, "%d:%d", harmful, benign);
    al_index_list_free(&mixed);

    cr_assert_eq(al_mix_ratio(&dataset, &all, 0, 1, 11, &mixed), 0);
    count_labels(&dataset, &mixed, &harmful, &benign);
    cr_assert(harmful == 0 && benign == 180);
    al_index_list_free(&mixed);

    /* A side the ratio needs but the input lacks is an error. */
    struct al_index_list only_benign = {.items = malloc(3 * sizeof(int)), .n = 3};
    only_benign.items[0] = 1, only_benign.items[1] = 2, only_benign.items[2] = 3;
    cr_assert_eq(al_mix_ratio(&dataset, &only_benign, 1, 2, 11, &mixed), -1);
    cr_assert_not_null(strstr(al_error_message(), "0 harmful"), "%s", al_error_message());
    al_index_list_free(&only_benign);
    al_index_list_free(&all);
    al_dataset_free(&dataset);
}

static bool is_permutation(const int *order, int n)
{
    bool *seen = calloc((size_t)n, 1);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        ok = order[i] >= 0 && order[i] < n && !seen[order[i]];
        if (ok)
            seen[order[i]] = true;
    }
    free(seen);
    return ok;
}

Test(data_split, epoch_order_is_a_seeded_permutation_that_changes_per_epoch)
{
    enum { N = 100 };
    int a[N], b[N], c[N], d[N];
    al_epoch_order(a, N, 42, 0);
    al_epoch_order(b, N, 42, 0);
    al_epoch_order(c, N, 42, 1);
    al_epoch_order(d, N, 43, 0);
    cr_assert(is_permutation(a, N) && is_permutation(c, N) && is_permutation(d, N));
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "same seed and epoch, same order");
    cr_assert_neq(memcmp(a, c, sizeof a), 0, "another epoch, another order");
    cr_assert_neq(memcmp(a, d, sizeof a), 0, "another seed, another order");
    int identity = 1;
    for (int i = 0; i < N; i++)
        identity &= a[i] == i;
    cr_assert_not(identity, "the order is shuffled");
    int one[1];
    al_epoch_order(one, 1, 42, 3);
    cr_assert_eq(one[0], 0);
}

Test(data_split, cursor_round_trips_through_json_and_rejects_damage)
{
    struct al_data_cursor cursor = {.epoch = 3, .position = 1234567}, back;
    cJSON *json = al_data_cursor_to_json(&cursor);
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    cJSON *parsed = cJSON_Parse(text);
    cr_assert_eq(al_data_cursor_from_json(&back, parsed, "state.json"), 0, "%s", al_error_message());
    cr_assert(back.epoch == 3 && back.position == 1234567);
    cJSON_Delete(parsed);
    free(text);

    static const char *bad[] = {"{\"epoch\": 1}", "{\"epoch\": -1, \"position\": 0}",
                                "{\"epoch\": 1, \"position\": 2.5}", "{\"epoch\": \"1\", \"position\": 0}", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *damaged = cJSON_Parse(bad[i]);
        cr_assert_eq(al_data_cursor_from_json(&back, damaged, "state.json"), -1, "%s accepted", bad[i]);
        cr_assert_not_null(strstr(al_error_message(), "state.json"));
        cJSON_Delete(damaged);
    }
}

/* A run interrupted after `stop` draws and resumed from its saved cursor draws exactly
 * what the uninterrupted run drew. */
Test(data_split, sampler_resumed_from_a_saved_cursor_continues_exactly)
{
    enum { N = 13, DRAWS = 50 };
    struct al_index_list records = {.items = malloc(N * sizeof(int)), .n = N};
    for (int i = 0; i < N; i++)
        records.items[i] = 100 + i;

    struct al_sampler sampler;
    cr_assert_eq(al_sampler_init(&sampler, &records, 9, NULL), 0);
    int reference[DRAWS];
    for (int k = 0; k < DRAWS; k++)
        cr_assert_eq(al_sampler_next(&sampler, &reference[k]), 0);
    al_sampler_free(&sampler);

    /* Every epoch draws each record exactly once. */
    for (int epoch = 0; epoch < DRAWS / N; epoch++) {
        int seen[N] = {0};
        for (int k = 0; k < N; k++)
            seen[reference[epoch * N + k] - 100]++;
        for (int i = 0; i < N; i++)
            cr_assert_eq(seen[i], 1, "epoch %d draws record %d %d times", epoch, i, seen[i]);
    }
    cr_assert_neq(memcmp(reference, reference + N, N * sizeof(int)), 0, "epochs differ");

    for (int stop = 0; stop < DRAWS; stop += 6) {
        cr_assert_eq(al_sampler_init(&sampler, &records, 9, NULL), 0);
        int drawn;
        for (int k = 0; k < stop; k++)
            al_sampler_next(&sampler, &drawn);
        cJSON *saved_json = al_data_cursor_to_json(&sampler.cursor);
        char *saved = cJSON_PrintUnformatted(saved_json);
        cJSON_Delete(saved_json);
        al_sampler_free(&sampler);

        struct al_data_cursor cursor;
        cJSON *json = cJSON_Parse(saved);
        cr_assert_eq(al_data_cursor_from_json(&cursor, json, "saved"), 0);
        cJSON_Delete(json);
        cr_assert_eq(al_sampler_init(&sampler, &records, 9, &cursor), 0, "%s", al_error_message());
        for (int k = stop; k < DRAWS; k++) {
            cr_assert_eq(al_sampler_next(&sampler, &drawn), 0);
            cr_assert_eq(drawn, reference[k], "resumed at %d: draw %d differs", stop, k);
        }
        al_sampler_free(&sampler);
        free(saved);
    }

    struct al_data_cursor too_far = {.epoch = 0, .position = N + 1};
    cr_assert_eq(al_sampler_init(&sampler, &records, 9, &too_far), -1);
    struct al_index_list empty = {0};
    cr_assert_eq(al_sampler_init(&sampler, &empty, 9, NULL), -1);
    al_index_list_free(&records);
}
