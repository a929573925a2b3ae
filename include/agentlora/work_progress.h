/* Progress of long work that is not training (evaluation, generation over a data file,
 * PING prefix search, judging a file): a line on stderr that says how many items are done,
 * the tokens per second and the time left, so that a slow run on a busy machine shows
 * that it is alive and when it will end.
 *
 *     eval: 120/400 items | 850 tok/s | eta 3m20s
 *
 * On a terminal the line is redrawn in place ('\r'); on anything else (a log file, a pipe)
 * it is silent unless forced on, and then writes whole lines. Either way a line is written
 * when the work starts, at most once per interval while it goes on, and once when it ends.
 *
 *     struct al_work_progress progress;
 *     al_work_progress_start(&progress, "eval", n_items, &(struct al_work_progress_options){0});
 *     for (...) { ...; al_work_progress_add(&progress, batch_items, batch_tokens); }
 *     al_work_progress_finish(&progress);
 *
 * Every function accepts NULL for the progress and then does nothing, so library code can
 * take an optional one. */
#ifndef AGENTLORA_WORK_PROGRESS_H
#define AGENTLORA_WORK_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Seconds between two lines while the work goes on. */
#define AL_WORK_PROGRESS_INTERVAL 3.0

enum al_work_progress_mode {
    AL_WORK_PROGRESS_AUTO = 0, /* on when the stream is a terminal */
    AL_WORK_PROGRESS_ON,       /* also when it is not (--progress) */
    AL_WORK_PROGRESS_OFF,      /* never (--no-progress) */
};

struct al_work_progress_options {
    enum al_work_progress_mode mode;
    FILE *stream;            /* NULL: stderr */
    double interval_seconds; /* 0: AL_WORK_PROGRESS_INTERVAL */
    /* Seconds on a clock that only goes forward; NULL: CLOCK_MONOTONIC. Tests set their own. */
    double (*clock)(void *context);
    void *clock_context;
};

/* One look at the work, as the line shows it. */
struct al_work_snapshot {
    const char *label;
    int64_t done, total; /* items */
    int64_t tokens;      /* processed so far; 0 leaves tok/s out (work that counts none) */
    double seconds;      /* since the work started */
};

/* Lives in the caller (no allocation, so it cannot fail); fields are private. */
struct al_work_progress {
    bool enabled, terminal;
    FILE *stream;
    char label[64];
    int64_t done, total, tokens;
    double started_at, last_line_at, interval;
    double (*clock)(void *context);
    void *clock_context;
};

/* Decides whether lines are written (mode, and whether the stream is a terminal) and, when
 * they are, writes the first one (0 items done). Ends another status line left open on the
 * stream first (al_status_line_end), such as training's. */
void al_work_progress_start(struct al_work_progress *progress, const char *label, int64_t total_items,
                            const struct al_work_progress_options *options);
/* items more done, tokens more processed; writes a line when the interval has passed. */
void al_work_progress_add(struct al_work_progress *progress, int64_t items, int64_t tokens);
/* The total changes when the work learns its true size (ping-search's rounds may propose
 * fewer candidates than asked). */
void al_work_progress_set_total(struct al_work_progress *progress, int64_t total_items);
/* Before other output goes to the same terminal: ends the redrawn line so that the output
 * starts on a line of its own. The next line is drawn below it. */
void al_work_progress_break(struct al_work_progress *progress);
/* Writes the last line (total time instead of the ETA) and ends it. */
void al_work_progress_finish(struct al_work_progress *progress);
bool al_work_progress_enabled(const struct al_work_progress *progress);

/* "eval: 120/400 items | 850 tok/s | eta 3m20s", or with every item done
 * "eval: 400/400 items | 850 tok/s | done in 8m02s". The ETA is "?" before the first item. */
void al_work_progress_format(char *out, size_t size, const struct al_work_snapshot *snapshot);

/* "45s", "7m35s", "2h05m"; "?" for a negative or non-finite number. */
void al_format_duration(char *out, size_t size, double seconds);

/* ---- the one status line a terminal can have open ----
 * A line redrawn with '\r' has no newline until it is done; anything else written to the
 * terminal meanwhile would land at its end. Whoever leaves such a line open says so, and
 * whoever writes something else first ends it (the logger does). */

/* stream now holds an unfinished status line. */
void al_status_line_open(FILE *stream);
/* Ends the open status line, if any, with a newline. */
void al_status_line_end(void);

#endif
