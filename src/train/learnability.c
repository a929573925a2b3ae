/* Checks on the plan of a training run (see learnability.h). */
#include "learnability.h"

#include "agentlora/error.h"
#include "agentlora/log.h"

static int64_t steps_with_a_learning_rate(const struct al_learnability *plan)
{
    int64_t count = 0;
    for (int64_t s = 0; s < plan->steps_left; s++)
        count += al_schedule_lr(plan->schedule, plan->updates_done + s) > 0.0;
    return count;
}

int al_learnability_check(const struct al_learnability *plan)
{
    const struct al_schedule *schedule = plan->schedule;
    if (plan->steps_left > 0 && steps_with_a_learning_rate(plan) == 0)
        return al_fail("this run cannot learn: its %lld step%s all have learning rate 0 (warmup of %lld step%s "
                       "starts at 0); train more steps (epochs or max_steps) or set warmup_steps 0 with "
                       "warmup_ratio 0",
                       (long long)plan->steps_left, plan->steps_left == 1 ? "" : "s",
                       (long long)schedule->warmup_steps, schedule->warmup_steps == 1 ? "" : "s");
    if (schedule->warmup_steps >= schedule->total_steps)
        al_log_warn("warmup (%lld steps) covers all %lld steps: the learning rate never reaches its peak %g; "
                    "lower warmup_steps or warmup_ratio, or train more steps",
                    (long long)schedule->warmup_steps, (long long)schedule->total_steps, schedule->peak_lr);
    if (plan->eval_every > 0 && plan->eval_records == 0)
        al_log_warn("eval_every %lld, but there are no eval records (eval_data is empty and eval_fraction held "
                    "none out): no evaluation will run; set eval_data or a larger eval_fraction",
                    (long long)plan->eval_every);
    return 0;
}

void al_learnability_warn_if_unchanged(int64_t updates_applied, int64_t steps)
{
    if (updates_applied == 0)
        al_log_warn("WARNING: none of the %lld step%s of this run changed the adapter (each had learning rate 0, "
                    "a zero gradient or a non-finite one): the saved adapter is the initial one",
                    (long long)steps, steps == 1 ? "" : "s");
}
