/* PING prefixes: both file formats, damaged files, modes and targets, and the seeded
 * per-record choice that must not change between epochs or loads. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/ping.h"
#include "test_support.h"

static char *write_fixture(const char *name, const char *text)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, name, text, strlen(text));
    cr_assert_not_null(path);
    free(dir);
    return path;
}

Test(data_ping, loads_a_json_list)
{
    char *path = write_fixture("p.json", " [\"First prefix.\", \"Second \\\"quoted\\\" prefix.\", \"Third.\"]\n");
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, path), 0, "%s", al_error_message());
    cr_assert_eq(ping.n_prefixes, 3);
    cr_assert_str_eq(ping.prefixes[1], "Second \"quoted\" prefix.");
    cr_assert_eq(ping.mode, AL_PING_NONE, "loading does not switch PING on");
    al_ping_free(&ping);
    free(path);
}

Test(data_ping, loads_one_prefix_per_line_skipping_blanks_and_comments)
{
    char *path = write_fixture("p.txt", "# candidate prefixes, round 3\n\nI will help carefully.  \r\n"
                                        "   # an indented comment\n\t\nI refuse harmful requests.\nLast one");
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, path), 0, "%s", al_error_message());
    cr_assert_eq(ping.n_prefixes, 3);
    cr_assert_str_eq(ping.prefixes[0], "I will help carefully.", "trailing space and \\r are trimmed");
    cr_assert_str_eq(ping.prefixes[1], "I refuse harmful requests.");
    cr_assert_str_eq(ping.prefixes[2], "Last one");
    al_ping_free(&ping);
    free(path);
}

Test(data_ping, damaged_files_are_errors)
{
    static const struct {
        const char *name, *text, *expect;
    } cases[] = {
        {"empty.txt", "", "no prefixes"},
        {"comments.txt", "# only\n\n# comments\n", "no prefixes"},
        {"empty_list.json", "[]", "no prefixes"},
        {"number.json", "[\"ok\", 3]", "prefix 2 is not a string"},
        {"blank.json", "[\"ok\", \"\"]", "prefix 2 is empty"},
        {"broken.json", "[\"ok\", ", "JSON list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_fixture(cases[i].name, cases[i].text);
        struct al_ping ping;
        cr_assert_eq(al_ping_load(&ping, path), -1, "%s accepted", cases[i].name);
        cr_assert_not_null(strstr(al_error_message(), cases[i].expect), "%s: %s", cases[i].name, al_error_message());
        cr_assert_not_null(strstr(al_error_message(), path));
        cr_assert_eq(ping.n_prefixes, 0);
        free(path);
    }
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, "/nonexistent/prefixes.json"), -1);
}

Test(data_ping, modes_and_targets_parse)
{
    enum al_ping_mode mode;
    enum al_ping_targets targets;
    cr_assert_eq(al_ping_mode_parse("train", &mode), 0);
    cr_assert_eq(mode, AL_PING_TRAIN);
    cr_assert_eq(al_ping_mode_parse("eval", &mode), 0);
    cr_assert_eq(mode, AL_PING_EVAL);
    cr_assert_eq(al_ping_mode_parse("none", &mode), 0);
    cr_assert_eq(mode, AL_PING_NONE);
    cr_assert_eq(al_ping_mode_parse("Train", &mode), -1);
    cr_assert_eq(al_ping_targets_parse("both", &targets), 0);
    cr_assert_eq(targets, AL_PING_BOTH);
    cr_assert_eq(al_ping_targets_parse("harmful", &targets), 0);
    cr_assert_eq(targets, AL_PING_HARMFUL);
    cr_assert_eq(al_ping_targets_parse("benign", &targets), 0);
    cr_assert_eq(targets, AL_PING_BENIGN);
    cr_assert_eq(al_ping_targets_parse("all", &targets), -1);
    cr_assert_str_eq(al_ping_mode_name(AL_PING_EVAL), "eval");
    cr_assert_str_eq(al_ping_targets_name(AL_PING_BENIGN), "benign");
}

static struct al_ping five_prefixes(uint64_t seed)
{
    char *path = write_fixture("five.json", "[\"A.\", \"B.\", \"C.\", \"D.\", \"E.\"]");
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, path), 0);
    free(path);
    ping.seed = seed;
    return ping;
}

Test(data_ping, choice_is_stable_per_record_and_spreads_over_prefixes)
{
    struct al_ping ping = five_prefixes(17);
    struct al_ping reloaded = five_prefixes(17);
    struct al_ping reseeded = five_prefixes(18);
    int used[5] = {0};
    int changed_by_seed = 0;
    for (int r = 0; r < 200; r++) {
        char id[32];
        snprintf(id, sizeof id, "benign-%d", r);
        const char *choice = al_ping_choose(&ping, id, r);
        cr_assert_not_null(choice);
        cr_assert_eq(choice, al_ping_choose(&ping, id, r), "the same call twice gives the same prefix");
        cr_assert_str_eq(choice, al_ping_choose(&reloaded, id, r), "a reload chooses the same text");
        cr_assert_eq(choice, al_ping_choose(&ping, id, r + 1000), "the id decides, not the position");
        used[choice[0] - 'A']++;
        changed_by_seed += strcmp(choice, al_ping_choose(&reseeded, id, r)) != 0;
    }
    for (int p = 0; p < 5; p++)
        cr_assert_gt(used[p], 15, "prefix %d chosen only %d times in 200", p, used[p]);
    cr_assert_gt(changed_by_seed, 100, "another seed reshuffles the choice");
    /* Without an id the record number decides. */
    cr_assert_eq(al_ping_choose(&ping, NULL, 5), al_ping_choose(&ping, NULL, 5));
    al_ping_free(&ping);
    al_ping_free(&reloaded);
    al_ping_free(&reseeded);
    struct al_ping none = {0};
    cr_assert_null(al_ping_choose(&none, "x", 1));
}

Test(data_ping, train_prefix_follows_mode_and_targets)
{
    struct al_ping ping = five_prefixes(3);
    cr_assert_null(al_ping_train_prefix(&ping, "h1", 1, true), "mode none");
    ping.mode = AL_PING_EVAL;
    cr_assert_null(al_ping_train_prefix(&ping, "h1", 1, true), "eval mode leaves training data alone");
    ping.mode = AL_PING_TRAIN;
    ping.targets = AL_PING_HARMFUL;
    cr_assert_eq(al_ping_train_prefix(&ping, "h1", 1, true), al_ping_choose(&ping, "h1", 1));
    cr_assert_null(al_ping_train_prefix(&ping, "b1", 2, false));
    ping.targets = AL_PING_BENIGN;
    cr_assert_null(al_ping_train_prefix(&ping, "h1", 1, true));
    cr_assert_eq(al_ping_train_prefix(&ping, "b1", 2, false), al_ping_choose(&ping, "b1", 2));
    ping.targets = AL_PING_BOTH;
    cr_assert_not_null(al_ping_train_prefix(&ping, "h1", 1, true));
    cr_assert_not_null(al_ping_train_prefix(&ping, "b1", 2, false));
    al_ping_free(&ping);
}
