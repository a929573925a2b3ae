/* The per-step progress line and the end-of-run summary (see metrics.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/file.h"
#include "agentlora/metrics.h"

#define PROGRESS_BAR_WIDTH 20

/* Remaining time at this process's own pace (a resumed run did not do the earlier steps). */
static double eta_seconds(const struct al_progress *p)
{
    int64_t done = p->step - p->session_first_step;
    if (done <= 0 || p->total_steps <= p->step)
        return done <= 0 ? NAN : 0.0;
    return p->session_seconds / (double)done * (double)(p->total_steps - p->step);
}

static void format_bar(char *out, size_t size, const struct al_progress *p)
{
    double fraction = p->total_steps > 0 ? (double)p->step / (double)p->total_steps : 0.0;
    fraction = fmin(fmax(fraction, 0.0), 1.0);
    int filled = (int)(fraction * PROGRESS_BAR_WIDTH);
    char bar[PROGRESS_BAR_WIDTH + 1];
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '-', (size_t)(PROGRESS_BAR_WIDTH - filled));
    bar[PROGRESS_BAR_WIDTH] = '\0';
    snprintf(out, size, "[%s] %3d%% ", bar, (int)(fraction * 100.0));
}

void al_progress_format(char *out, size_t size, const struct al_progress *p, int with_bar)
{
    char bar[PROGRESS_BAR_WIDTH + 16] = "", eta[32];
    if (with_bar)
        format_bar(bar, sizeof bar, p);
    al_format_duration(eta, sizeof eta, eta_seconds(p));
    snprintf(out, size, "%sstep %lld/%lld | loss %.4f | lr %.2e | grad %.3f | %.0f tok/s | eta %s", bar,
             (long long)p->step, (long long)p->total_steps, p->loss, p->lr, p->grad_norm, p->tokens_per_second, eta);
}

/* "2.3456 (evaluation at step 40)", or why there is no such number. */
static void format_best_loss(char *out, size_t size, const struct al_run_summary *s)
{
    if (isfinite(s->best_loss))
        snprintf(out, size, "%.4f (evaluation at step %lld)", s->best_loss, (long long)s->best_step);
    else
        snprintf(out, size, "none (no evaluation ran: it needs eval records, see eval_data and eval_fraction)");
}

/* The headline: finished, or interrupted by a signal at some step. */
static void format_headline(char *out, size_t size, const struct al_run_summary *s)
{
    if (s->interrupted_by)
        snprintf(out, size, "training interrupted (%s) after step %lld of %lld; resume with --resume auto",
                 s->interrupted_by == SIGTERM ? "SIGTERM" : "SIGINT", (long long)s->steps,
                 (long long)s->total_steps);
    else
        snprintf(out, size, "training finished");
}

char *al_run_summary_format(const struct al_run_summary *s)
{
    char time[32], best[128], headline[160];
    al_format_duration(time, sizeof time, s->seconds);
    format_best_loss(best, sizeof best, s);
    format_headline(headline, sizeof headline, s);
    double rate = s->seconds > 0 ? (double)s->tokens / s->seconds : 0.0;
    const char *unchanged = s->session_steps > 0 && s->updates_applied == 0
                                ? "  WARNING       no step changed the adapter (learning rate 0 or zero gradients)\n"
                                : "";
    return al_strdup_printf("%s\n"
                            "  steps         %lld (%lld skipped for non-finite gradients)\n"
                            "  tokens        %lld (%.0f tok/s)\n"
                            "  time          %s\n"
                            "  final loss    %.4f (training, last step)\n"
                            "  best loss     %s\n"
                            "%s"
                            "  adapter       %s\n",
                            headline, (long long)s->steps, (long long)s->skipped_steps, (long long)s->tokens, rate,
                            time, s->final_loss, best, unchanged, s->adapter_path ? s->adapter_path : "(none)");
}
