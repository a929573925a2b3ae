/* keep-last-K with protected checkpoints: the newest K and the one `latest` names are kept
 * as before, protected steps are kept on top of them, and everything else goes. Pruning
 * reads only folder names, so empty checkpoint-<step> folders stand in for checkpoints. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "agentlora/checkpoint.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"

static char *make_run(int count, int latest)
{
    char *dir = test_tmpdir();
    for (int step = 1; step <= count; step++) {
        char name[32];
        snprintf(name, sizeof name, "checkpoint-%d", step);
        char *path = al_path_join(dir, name);
        cr_assert_eq(al_mkdirs(path), 0);
        free(path);
    }
    char text[32];
    int length = snprintf(text, sizeof text, "checkpoint-%d", latest);
    free(test_write_file(dir, "latest", text, (size_t)length));
    return dir;
}

static void assert_steps(const char *dir, const int64_t *expected, int n)
{
    int64_t *steps = NULL;
    int count = 0;
    cr_assert_eq(al_checkpoint_list(dir, &steps, &count), 0, "%s", al_error_message());
    cr_assert_eq(count, n, "%d checkpoints left, expected %d", count, n);
    for (int i = 0; i < n; i++)
        cr_expect_eq(steps[i], expected[i], "checkpoint %d: step %lld, expected %lld", i, (long long)steps[i],
                     (long long)expected[i]);
    free(steps);
}

Test(train_checkpoint_protect, protected_steps_survive_keep_last)
{
    char *dir = make_run(5, 5);
    int64_t protected_steps[] = {2};
    cr_assert_eq(al_checkpoint_prune_protecting(dir, 2, protected_steps, 1), 0, "%s", al_error_message());
    int64_t expected[] = {2, 4, 5};
    assert_steps(dir, expected, 3);
    free(dir);
}

Test(train_checkpoint_protect, without_protection_only_the_newest_stay)
{
    char *dir = make_run(5, 5);
    cr_assert_eq(al_checkpoint_prune_protecting(dir, 2, NULL, 0), 0, "%s", al_error_message());
    int64_t expected[] = {4, 5};
    assert_steps(dir, expected, 2);
    free(dir);
}

Test(train_checkpoint_protect, a_protected_newest_step_counts_once)
{
    char *dir = make_run(4, 4);
    int64_t protected_steps[] = {4, 1};
    cr_assert_eq(al_checkpoint_prune_protecting(dir, 1, protected_steps, 2), 0, "%s", al_error_message());
    int64_t expected[] = {1, 4};
    assert_steps(dir, expected, 2);
    free(dir);
}
