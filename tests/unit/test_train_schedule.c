/* Learning-rate schedules against values printed by transformers 5.23.0
 * (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
 * get_cosine_schedule_with_warmup; lr 2e-4, T = 100, W = 3, read with get_last_lr()
 * before each scheduler.step()). */
#include <criterion/criterion.h>
#include <math.h>

#include "agentlora/schedule.h"

/* Both sides evaluate the same double formula; only libm's last bit may differ. */
#define SCHEDULE_REL_TOLERANCE 1e-13

struct lr_point {
    int64_t step;
    double lr;
};

static void check_table(enum al_schedule_kind kind, int64_t total, int64_t warmup, const struct lr_point *table,
                        int count)
{
    struct al_schedule schedule;
    cr_assert_eq(al_schedule_init(&schedule, kind, 2e-4, total, warmup), 0);
    for (int i = 0; i < count; i++) {
        double got = al_schedule_lr(&schedule, table[i].step);
        double want = table[i].lr;
        cr_assert(fabs(got - want) <= SCHEDULE_REL_TOLERANCE * fmax(fabs(want), 1e-300) || got == want,
                  "%s step %lld: got %.17g, transformers gives %.17g", al_schedule_kind_name(kind),
                  (long long)table[i].step, got, want);
    }
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

Test(train_schedule, constant_with_warmup_matches_transformers)
{
    static const struct lr_point table[] = {
        {0, 0.0}, {1, 6.666666666666667e-05}, {2, 0.00013333333333333334}, {3, 0.0002}, {4, 0.0002},
        {50, 0.0002}, {100, 0.0002},
    };
    check_table(AL_SCHEDULE_CONSTANT, 100, 3, table, COUNT(table));
}

Test(train_schedule, linear_with_warmup_matches_transformers)
{
    static const struct lr_point table[] = {
        {0, 0.0},
        {1, 6.666666666666667e-05},
        {2, 0.00013333333333333334},
        {3, 0.0002},
        {4, 0.00019793814432989693},
        {50, 0.00010309278350515463},
        {97, 6.185567010309279e-06},
        {99, 2.061855670103093e-06},
        {100, 0.0},
        {101, 0.0},
    };
    check_table(AL_SCHEDULE_LINEAR, 100, 3, table, COUNT(table));
}

Test(train_schedule, cosine_with_warmup_matches_transformers)
{
    static const struct lr_point table[] = {
        {0, 0.0},
        {1, 6.666666666666667e-05},
        {2, 0.00013333333333333334},
        {3, 0.0002},
        {4, 0.00019994755690455152},
        {50, 0.00010485622221144484},
        {97, 4.7165788333860536e-07},
        {99, 5.2443095448506674e-08},
        {100, 0.0},
        {101, 5.2443095448506674e-08},
    };
    check_table(AL_SCHEDULE_COSINE, 100, 3, table, COUNT(table));
}

Test(train_schedule, cosine_without_warmup_starts_at_peak)
{
    static const struct lr_point table[] = {
        {0, 0.0002}, {1, 0.00019510565162951537}, {5, 0.0001}, {9, 4.8943483704846475e-06}, {10, 0.0},
    };
    check_table(AL_SCHEDULE_COSINE, 10, 0, table, COUNT(table));
}

Test(train_schedule, warmup_ratio_rounds_up_like_transformers)
{
    cr_assert_eq(al_schedule_warmup_steps(100, 0, 0.03), 3);
    cr_assert_eq(al_schedule_warmup_steps(1000, 0, 0.03), 30);
    cr_assert_eq(al_schedule_warmup_steps(10, 0, 0.03), 1);
    cr_assert_eq(al_schedule_warmup_steps(10, 0, 0.0), 0);
    cr_assert_eq(al_schedule_warmup_steps(10, 7, 0.03), 7, "explicit warmup steps win over the ratio");
}

Test(train_schedule, names_parse_and_bad_values_are_refused)
{
    enum al_schedule_kind kind;
    cr_assert_eq(al_schedule_kind_parse("linear", &kind), 0);
    cr_assert_eq(kind, AL_SCHEDULE_LINEAR);
    cr_assert_eq(al_schedule_kind_parse("cosine_with_restarts", &kind), -1);
    struct al_schedule schedule;
    cr_assert_eq(al_schedule_init(&schedule, AL_SCHEDULE_COSINE, 0.0, 10, 0), -1);
    cr_assert_eq(al_schedule_init(&schedule, AL_SCHEDULE_COSINE, 1e-4, 0, 0), -1);
    cr_assert_eq(al_schedule_init(&schedule, AL_SCHEDULE_COSINE, 1e-4, 10, -1), -1);
}
