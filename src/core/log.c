/* Leveled logging to stderr. */
#include "agentlora/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "agentlora/work_progress.h"

static enum al_log_level threshold = AL_LOG_INFO;
static char prefix[32]; /* "rank 1: " in a data-parallel run's other ranks, else empty */

void al_log_set_level(enum al_log_level level)
{
    threshold = level;
}

void al_log_set_prefix(const char *text)
{
    snprintf(prefix, sizeof prefix, "%s", text ? text : "");
}

enum al_log_level al_log_get_level(void)
{
    return threshold;
}

void al_log(enum al_log_level level, const char *fmt, ...)
{
    static const char *const labels[] = {"debug", "info", "warning", "error"};
    if (level < threshold || level >= AL_LOG_QUIET)
        return;
    al_status_line_end(); /* a progress line redrawn in place would swallow the message */
    va_list args;
    va_start(args, fmt);
    fputs(prefix, stderr);
    if (level != AL_LOG_INFO)
        fprintf(stderr, "%s: ", labels[level]);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}
