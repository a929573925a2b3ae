/* Learning-rate schedules: the transformers formulas, documented in schedule.h. */
#include "agentlora/schedule.h"

#include <math.h>
#include <string.h>

#include "agentlora/error.h"

static const char *const kind_names[] = {
    [AL_SCHEDULE_CONSTANT] = "constant",
    [AL_SCHEDULE_LINEAR] = "linear",
    [AL_SCHEDULE_COSINE] = "cosine",
};

#define KIND_COUNT ((int)(sizeof kind_names / sizeof kind_names[0]))

int al_schedule_kind_parse(const char *name, enum al_schedule_kind *kind)
{
    for (int i = 0; i < KIND_COUNT; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *kind = (enum al_schedule_kind)i;
            return 0;
        }
    }
    return al_fail("unknown learning-rate schedule '%s' (expected constant, linear or cosine)", name);
}

const char *al_schedule_kind_name(enum al_schedule_kind kind)
{
    return (int)kind >= 0 && (int)kind < KIND_COUNT ? kind_names[kind] : "?";
}

int64_t al_schedule_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio)
{
    if (warmup_steps > 0)
        return warmup_steps;
    return (int64_t)ceil((double)total_steps * warmup_ratio);
}

int al_schedule_init(struct al_schedule *schedule, enum al_schedule_kind kind, double peak_lr,
                     int64_t total_steps, int64_t warmup_steps)
{
    if (!(peak_lr > 0.0) || !isfinite(peak_lr))
        return al_fail("learning rate must be positive and finite, got %g", peak_lr);
    if (total_steps <= 0)
        return al_fail("a schedule needs a positive number of steps, got %lld", (long long)total_steps);
    if (warmup_steps < 0)
        return al_fail("warmup steps must not be negative, got %lld", (long long)warmup_steps);
    if ((int)kind < 0 || (int)kind >= KIND_COUNT)
        return al_fail("unknown schedule kind %d", (int)kind);
    schedule->kind = kind;
    schedule->peak_lr = peak_lr;
    schedule->total_steps = total_steps;
    schedule->warmup_steps = warmup_steps;
    return 0;
}

static double at_least_one(int64_t n)
{
    return n > 1 ? (double)n : 1.0;
}

/* The multiplier f(s) of schedule.h, computed in double as Python does. */
static double schedule_factor(const struct al_schedule *schedule, int64_t s)
{
    int64_t warmup = schedule->warmup_steps, total = schedule->total_steps;
    if (s < warmup)
        return (double)s / at_least_one(warmup);
    double decay_steps = at_least_one(total - warmup);
    switch (schedule->kind) {
    case AL_SCHEDULE_LINEAR:
        return fmax(0.0, (double)(total - s) / decay_steps);
    case AL_SCHEDULE_COSINE: {
        double progress = (double)(s - warmup) / decay_steps;
        return fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
    }
    case AL_SCHEDULE_CONSTANT:
    default:
        return 1.0;
    }
}

double al_schedule_lr(const struct al_schedule *schedule, int64_t updates_done)
{
    return schedule->peak_lr * schedule_factor(schedule, updates_done);
}
