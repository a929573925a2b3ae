/* The progress line of long work (work_progress.h): what it says for given numbers, how
 * often it is written (a fake clock, so nothing sleeps), silence on a stream that is not a
 * terminal unless forced, whole lines when forced, redrawing on a real terminal (a
 * pseudo-terminal), and the open status line of another writer ended before it. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/work_progress.h"

/* ---- the line for given numbers ---- */

static void assert_formats(const struct al_work_snapshot *snapshot, const char *expected)
{
    char line[256];
    al_work_progress_format(line, sizeof line, snapshot);
    cr_assert_str_eq(line, expected);
}

Test(work_progress, line_says_items_rate_and_eta)
{
    /* 51000 tokens in 60 s; 120 items in 60 s leaves 280 items for 140 s. */
    assert_formats(&(struct al_work_snapshot){"eval", 120, 400, 51000, 60.0},
                   "eval: 120/400 items | 850 tok/s | eta 2m20s");
}

Test(work_progress, eta_is_unknown_before_the_first_item)
{
    assert_formats(&(struct al_work_snapshot){"eval", 0, 400, 0, 5.0}, "eval: 0/400 items | eta ?");
}

Test(work_progress, finished_work_says_how_long_it_took)
{
    assert_formats(&(struct al_work_snapshot){"generate", 7, 7, 700, 482.0},
                   "generate: 7/7 items | 1 tok/s | done in 8m02s");
}

Test(work_progress, work_without_tokens_leaves_the_rate_out)
{
    assert_formats(&(struct al_work_snapshot){"judge", 64, 256, 0, 2.0}, "judge: 64/256 items | eta 6s");
}

/* ---- a fake clock and a stream in memory (never a terminal) ---- */

struct fake_clock {
    double now;
};

static double read_fake_clock(void *context)
{
    return ((struct fake_clock *)context)->now;
}

struct captured {
    char *text;
    size_t size;
    FILE *stream;
};

static void capture(struct captured *c)
{
    c->text = NULL;
    c->size = 0;
    c->stream = open_memstream(&c->text, &c->size);
    cr_assert_not_null(c->stream);
}

static int count_lines(struct captured *c)
{
    fflush(c->stream);
    int n = 0;
    for (size_t i = 0; i < c->size; i++)
        n += c->text[i] == '\n';
    return n;
}

static void release(struct captured *c)
{
    fclose(c->stream);
    free(c->text);
}

/* Starts p on stream, 3 s between lines, on the fake clock as it stands. */
static void start_on(struct al_work_progress *p, FILE *stream, struct fake_clock *clock,
                     enum al_work_progress_mode mode, const char *label, int64_t total)
{
    struct al_work_progress_options options = {
        .mode = mode, .stream = stream, .interval_seconds = 3.0, .clock = read_fake_clock, .clock_context = clock};
    al_work_progress_start(p, label, total, &options);
}

/* A progress writing into memory, its clock at 0. */
struct rig {
    struct captured out;
    struct fake_clock clock;
    struct al_work_progress p;
};

static void rig_start(struct rig *r, enum al_work_progress_mode mode, const char *label, int64_t total)
{
    capture(&r->out);
    r->clock.now = 0.0;
    start_on(&r->p, r->out.stream, &r->clock, mode, label, total);
}

Test(work_progress, no_second_line_within_the_interval)
{
    struct rig r;
    rig_start(&r, AL_WORK_PROGRESS_ON, "eval", 10);
    cr_assert_eq(count_lines(&r.out), 1, "the start is shown at once:\n%s", r.out.text);
    r.clock.now = 1.0;
    al_work_progress_add(&r.p, 1, 10);
    r.clock.now = 2.9;
    al_work_progress_add(&r.p, 1, 10);
    cr_assert_eq(count_lines(&r.out), 1, "nothing more within 3 s:\n%s", r.out.text);
    r.clock.now = 3.0;
    al_work_progress_add(&r.p, 1, 10);
    cr_assert_eq(count_lines(&r.out), 2, "a line once 3 s have passed:\n%s", r.out.text);
    cr_assert(strstr(r.out.text, "eval: 3/10 items | 10 tok/s | eta 7s\n"), "%s", r.out.text);
    r.clock.now = 4.0;
    al_work_progress_add(&r.p, 7, 70);
    cr_assert_eq(count_lines(&r.out), 2, "the interval counts from the last line:\n%s", r.out.text);
    al_work_progress_finish(&r.p);
    cr_assert_eq(count_lines(&r.out), 3, "the end is always shown:\n%s", r.out.text);
    cr_assert(strstr(r.out.text, "eval: 10/10 items | 25 tok/s | done in 4s\n"), "%s", r.out.text);
    al_work_progress_finish(&r.p);
    cr_assert_eq(count_lines(&r.out), 3, "a second finish writes nothing");
    release(&r.out);
}

Test(work_progress, silent_when_not_a_terminal_and_not_forced)
{
    enum al_work_progress_mode modes[] = {AL_WORK_PROGRESS_AUTO, AL_WORK_PROGRESS_OFF};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        struct rig r;
        rig_start(&r, modes[m], "eval", 4);
        r.clock.now = 10.0;
        al_work_progress_add(&r.p, 4, 40);
        al_work_progress_break(&r.p);
        al_work_progress_finish(&r.p);
        fflush(r.out.stream);
        cr_assert_eq(r.out.size, 0, "mode %d wrote \"%s\"", (int)modes[m], r.out.text);
        cr_assert_not(al_work_progress_enabled(&r.p));
        release(&r.out);
    }
}

Test(work_progress, a_total_learned_later_is_shown)
{
    struct rig r;
    rig_start(&r, AL_WORK_PROGRESS_ON, "ping-search", 40);
    al_work_progress_set_total(&r.p, 20);
    r.clock.now = 2.0;
    al_work_progress_add(&r.p, 20, 0);
    al_work_progress_finish(&r.p);
    cr_assert(strstr(r.out.text, "ping-search: 0/40 items | eta ?\n"), "%s", r.out.text);
    cr_assert(strstr(r.out.text, "ping-search: 20/20 items | done in 2s\n"), "%s", r.out.text);
    release(&r.out);
}

Test(work_progress, a_missing_progress_is_no_progress)
{
    al_work_progress_start(NULL, "eval", 3, &(struct al_work_progress_options){.mode = AL_WORK_PROGRESS_ON});
    al_work_progress_add(NULL, 1, 1);
    al_work_progress_set_total(NULL, 2);
    al_work_progress_break(NULL);
    al_work_progress_finish(NULL);
    cr_assert_not(al_work_progress_enabled(NULL));
}

/* ---- another writer's open line ---- */

Test(work_progress, an_open_status_line_is_ended_first)
{
    struct captured training;
    capture(&training);
    fputs("\rstep 2/4 | loss 7.9", training.stream);
    al_status_line_open(training.stream);
    struct rig r;
    rig_start(&r, AL_WORK_PROGRESS_ON, "gen_eval step 2", 4);
    fflush(training.stream);
    cr_assert_str_eq(training.text, "\rstep 2/4 | loss 7.9\n", "the training line is ended before the progress");
    al_status_line_end();
    fflush(training.stream);
    cr_assert_str_eq(training.text, "\rstep 2/4 | loss 7.9\n", "and only once");
    al_work_progress_finish(&r.p);
    release(&training);
    release(&r.out);
}

/* ---- a real terminal ---- */

struct terminal {
    int controller;
    FILE *stream; /* the terminal's side, as stderr would be */
};

static void open_terminal(struct terminal *t)
{
    int device;
    cr_assert_eq(openpty(&t->controller, &device, NULL, NULL, NULL), 0, "no pseudo-terminal");
    t->stream = fdopen(device, "w");
    cr_assert_not_null(t->stream);
}

/* What the terminal received so far: the line discipline may hand it over in pieces, so
 * read until nothing more comes for a moment. */
static char *terminal_output(struct terminal *t)
{
    fflush(t->stream);
    static char text[4096];
    size_t used = 0;
    struct pollfd ready = {.fd = t->controller, .events = POLLIN};
    while (used < sizeof text - 1 && poll(&ready, 1, 200) == 1) {
        ssize_t n = read(t->controller, text + used, sizeof text - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    text[used] = '\0';
    return text;
}

Test(work_progress, a_terminal_gets_one_line_redrawn_in_place)
{
    struct terminal t;
    open_terminal(&t);
    struct fake_clock clock = {0.0};
    struct al_work_progress p;
    start_on(&p, t.stream, &clock, AL_WORK_PROGRESS_AUTO, "eval", 2);
    cr_assert(al_work_progress_enabled(&p), "on by default on a terminal");
    clock.now = 3.0;
    al_work_progress_add(&p, 1, 30);
    clock.now = 4.0;
    al_work_progress_add(&p, 1, 10);
    al_work_progress_finish(&p);
    /* The terminal turns "\n" into "\r\n" on its way out. */
    cr_assert_str_eq(terminal_output(&t),
                     "\reval: 0/2 items | eta ?\033[K"
                     "\reval: 1/2 items | 10 tok/s | eta 3s\033[K"
                     "\reval: 2/2 items | 10 tok/s | done in 4s\033[K\r\n");
    fclose(t.stream);
    close(t.controller);
}

Test(work_progress, a_break_ends_the_line_before_other_output)
{
    struct terminal t;
    open_terminal(&t);
    struct fake_clock clock = {0.0};
    struct al_work_progress p;
    start_on(&p, t.stream, &clock, AL_WORK_PROGRESS_AUTO, "generate", 3);
    al_work_progress_break(&p);
    al_work_progress_break(&p);
    cr_assert_str_eq(terminal_output(&t), "\rgenerate: 0/3 items | eta ?\033[K\r\n", "one newline, however many breaks");
    al_work_progress_finish(&p);
    fclose(t.stream);
    close(t.controller);
}
