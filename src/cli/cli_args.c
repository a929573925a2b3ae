/* Option values shared by the subcommands: bounded numbers, record lists, progress. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "cli/cli.h"

int al_cli_parse_int(const char *text, long min, long max, int *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || *end || errno || value < min || value > max)
        return -1;
    *out = (int)value;
    return 0;
}

int al_cli_parse_float(const char *text, float min, float max, float *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(value) || value < min || value > max)
        return -1;
    *out = (float)value;
    return 0;
}

int al_cli_parse_record_list(const char *list, long record_number, bool *selected)
{
    const char *p = list;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        errno = 0;
        long low = strtol(p, &end, 10), high = low;
        if (end == p || errno || low < 1)
            return -1;
        if (*end == '-') {
            const char *from = end + 1;
            high = strtol(from, &end, 10);
            if (end == from || errno || high < low)
                return -1;
        }
        if (*end != ',' && *end != '\0')
            return -1;
        if (selected && record_number >= low && record_number <= high)
            *selected = true;
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && !*p)
            return -1;
    }
    return 0;
}

bool al_cli_progress_option(int c, enum al_work_progress_mode *mode)
{
    if (c != AL_CLI_OPT_PROGRESS && c != AL_CLI_OPT_NO_PROGRESS)
        return false;
    *mode = c == AL_CLI_OPT_PROGRESS ? AL_WORK_PROGRESS_ON : AL_WORK_PROGRESS_OFF;
    return true;
}
