/* PING prefix search without a model: proposals are parsed one per line with list markers
 * and quotes removed and repeats, empty, over-long and invalid-UTF-8 lines skipped; the
 * ranking is by score, stable among equals; the meta prompt shows each top candidate with
 * its score and asks for K new ones; the prefix file is a JSON list that al_ping_load reads. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/ping.h"
#include "agentlora/ping_search.h"
#include "test_support.h"

Test(ping_search, parses_one_candidate_per_line)
{
    struct al_ping_candidate existing[] = {{.text = "Already here."}};
    char long_line[AL_PING_CANDIDATE_MAX_BYTES + 10];
    memset(long_line, 'x', sizeof long_line - 1);
    long_line[sizeof long_line - 1] = '\0';
    char reply[1024];
    snprintf(reply, sizeof reply,
             "1. I help with safe tasks.\n"
             "2) \"I refuse harmful ones.\"\n"
             "- Already here.\n"
             "\n"
             "   * I check every request first.  \n"
             "%s\n"
             "bad \xC3 byte\n"
             "I help with safe tasks.\n"
             "One more.\n"
             "And another.\n",
             long_line);
    char **out = NULL;
    int n = al_ping_parse_proposals(reply, existing, 1, 4, &out);
    cr_assert_eq(n, 4, "%d proposals", n);
    cr_expect_str_eq(out[0], "I help with safe tasks.");
    cr_expect_str_eq(out[1], "I refuse harmful ones.");
    cr_expect_str_eq(out[2], "I check every request first.");
    cr_expect_str_eq(out[3], "One more.", "at most max are kept, repeats skipped");
    for (int i = 0; i < n; i++)
        free(out[i]);
    free(out);
    cr_assert_eq(al_ping_parse_proposals("\n \n", NULL, 0, 3, &out), 0);
    free(out);
}

Test(ping_search, ranks_by_score_keeping_the_order_of_equals)
{
    struct al_ping_candidate c[] = {
        {.text = "a", .score = 0.5},
        {.text = "b", .score = 1.5},
        {.text = "c", .score = 0.5},
        {.text = "d", .score = 2.0},
    };
    al_ping_rank(c, 4);
    const char *expected[] = {"d", "b", "a", "c"};
    for (int i = 0; i < 4; i++)
        cr_expect_str_eq(c[i].text, expected[i], "rank %d", i + 1);
}

Test(ping_search, meta_prompt_shows_the_top_with_scores)
{
    struct al_ping_candidate top[] = {
        {.text = "First prefix.", .refusal_rate = 0.9, .helpfulness = 0.8, .score = 1.7},
        {.text = "Second prefix.", .refusal_rate = 0.5, .helpfulness = 0.6, .score = 1.1},
    };
    char *prompt = al_ping_meta_prompt(top, 2, 5);
    cr_assert_not_null(prompt);
    cr_expect(strstr(prompt, "Prefix: First prefix.\nScore: 170 (refusal 90, helpfulness 80)"), "%s", prompt);
    cr_expect(strstr(prompt, "Prefix: Second prefix.\nScore: 110 (refusal 50, helpfulness 60)"), "%s", prompt);
    cr_expect(strstr(prompt, "Write 5 new prefixes"), "%s", prompt);
    cr_expect(strstr(prompt, "one prefix per line"), "%s", prompt);
    free(prompt);
}

Test(ping_search, writes_a_prefix_file_that_ping_load_reads)
{
    struct al_ping_candidate c[] = {{.text = "One \"quoted\" prefix."}, {.text = "Two."}};
    char *dir = test_tmpdir();
    char *path = al_path_join(dir, "best.json");
    cr_assert_eq(al_ping_write_prefixes(path, c, 2), 0, "%s", al_error_message());
    struct al_ping ping;
    cr_assert_eq(al_ping_load(&ping, path), 0, "%s", al_error_message());
    cr_assert_eq(ping.n_prefixes, 2);
    cr_expect_str_eq(ping.prefixes[0], "One \"quoted\" prefix.");
    cr_expect_str_eq(ping.prefixes[1], "Two.");
    al_ping_free(&ping);
    free(path);
    free(dir);
}
