/* The progress line of long work that is not training (see work_progress.h). */
#include "agentlora/work_progress.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The stream holding an unfinished '\r' line, or NULL. */
static FILE *open_line_stream;

void al_status_line_open(FILE *stream)
{
    open_line_stream = stream;
}

void al_status_line_end(void)
{
    if (!open_line_stream)
        return;
    fputc('\n', open_line_stream);
    fflush(open_line_stream);
    open_line_stream = NULL;
}

void al_format_duration(char *out, size_t size, double seconds)
{
    if (!isfinite(seconds) || seconds < 0) {
        snprintf(out, size, "?");
        return;
    }
    long long total = (long long)llround(seconds);
    long long hours = total / 3600, minutes = total / 60 % 60, secs = total % 60;
    if (hours > 0)
        snprintf(out, size, "%lldh%02lldm", hours, minutes);
    else if (minutes > 0)
        snprintf(out, size, "%lldm%02llds", minutes, secs);
    else
        snprintf(out, size, "%llds", secs);
}

/* ---- the line ---- */

/* "eta 3m20s" at the pace so far, or "done in 8m02s" once every item is done. */
static void format_time_field(char *out, size_t size, const struct al_work_snapshot *s)
{
    char duration[32];
    if (s->total > 0 && s->done >= s->total) {
        al_format_duration(duration, sizeof duration, s->seconds);
        snprintf(out, size, "done in %s", duration);
        return;
    }
    double left = s->done > 0 ? s->seconds / (double)s->done * (double)(s->total - s->done) : NAN;
    al_format_duration(duration, sizeof duration, left);
    snprintf(out, size, "eta %s", duration);
}

void al_work_progress_format(char *out, size_t size, const struct al_work_snapshot *s)
{
    char rate[48] = "", time_field[48];
    if (s->tokens > 0) {
        double per_second = s->seconds > 0 ? (double)s->tokens / s->seconds : 0.0;
        snprintf(rate, sizeof rate, " | %.0f tok/s", per_second);
    }
    format_time_field(time_field, sizeof time_field, s);
    snprintf(out, size, "%s: %lld/%lld items%s | %s", s->label, (long long)s->done, (long long)s->total, rate,
             time_field);
}

/* ---- the progress ---- */

static double monotonic_seconds(void *context)
{
    (void)context;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static double now_of(const struct al_work_progress *p)
{
    return p->clock(p->clock_context);
}

static bool wanted(enum al_work_progress_mode mode, bool terminal)
{
    return mode == AL_WORK_PROGRESS_ON || (mode == AL_WORK_PROGRESS_AUTO && terminal);
}

/* On a terminal the line replaces the one before and stays open until the next; elsewhere
 * each is a line of its own. `last` ends the terminal's line too. */
static void write_line(struct al_work_progress *p, bool last)
{
    char line[256];
    double now = now_of(p);
    struct al_work_snapshot snapshot = {p->label, p->done, p->total, p->tokens, now - p->started_at};
    al_work_progress_format(line, sizeof line, &snapshot);
    if (p->terminal) {
        fprintf(p->stream, "\r%s\033[K%s", line, last ? "\n" : "");
        if (last)
            open_line_stream = NULL;
        else
            al_status_line_open(p->stream);
    } else {
        fprintf(p->stream, "%s\n", line);
    }
    fflush(p->stream);
    p->last_line_at = now;
}

void al_work_progress_start(struct al_work_progress *p, const char *label, int64_t total_items,
                            const struct al_work_progress_options *options)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->stream = options->stream ? options->stream : stderr;
    p->terminal = isatty(fileno(p->stream)) == 1;
    p->enabled = wanted(options->mode, p->terminal);
    if (!p->enabled)
        return;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total_items;
    p->interval = options->interval_seconds > 0 ? options->interval_seconds : AL_WORK_PROGRESS_INTERVAL;
    p->clock = options->clock ? options->clock : monotonic_seconds;
    p->clock_context = options->clock_context;
    p->started_at = now_of(p);
    al_status_line_end();
    write_line(p, false);
}

void al_work_progress_add(struct al_work_progress *p, int64_t items, int64_t tokens)
{
    if (!al_work_progress_enabled(p))
        return;
    p->done += items;
    p->tokens += tokens;
    if (now_of(p) - p->last_line_at >= p->interval)
        write_line(p, false);
}

void al_work_progress_set_total(struct al_work_progress *p, int64_t total_items)
{
    if (al_work_progress_enabled(p))
        p->total = total_items;
}

void al_work_progress_break(struct al_work_progress *p)
{
    if (al_work_progress_enabled(p) && p->terminal && open_line_stream == p->stream)
        al_status_line_end();
}

void al_work_progress_finish(struct al_work_progress *p)
{
    if (!al_work_progress_enabled(p))
        return;
    write_line(p, true);
    p->enabled = false; /* a second finish writes nothing */
}

bool al_work_progress_enabled(const struct al_work_progress *p)
{
    return p && p->enabled;
}
