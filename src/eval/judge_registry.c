/* Which judge a name means, where learned-v1's weights are found, and judging in batches.
 *
 * "auto", the default everywhere (eval, gen_eval, ping-search, judge), is learned-v1 when its
 * weights file is present and keywords-v1 otherwise; either way the chosen judge's own name
 * is what verdicts and tables record, so a number never says "auto". */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/judge_learned.h"

#define GET_IT_HINT "train it with `make judge` (from ../shared/judge, about a minute) or use --judge keywords-v1"

static bool disabled_by_environment(const char *value)
{
    return value && (value[0] == '\0' || strcmp(value, "none") == 0);
}

/* AL_JUDGE_LEARNED_FILE beside the running executable (the repository root for ./agentlora). */
static bool beside_executable(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return snprintf(out, size, "%s/%s", exe, AL_JUDGE_LEARNED_FILE) < (int)size && al_file_exists(out);
}

const char *al_judge_learned_find(void)
{
    static char found[PATH_MAX + sizeof AL_JUDGE_LEARNED_FILE];
    const char *chosen = getenv(AL_JUDGE_LEARNED_ENV);
    if (disabled_by_environment(chosen))
        return NULL;
    if (chosen)
        return al_file_exists(chosen) ? chosen : NULL;
    if (al_file_exists(AL_JUDGE_LEARNED_FILE))
        return AL_JUDGE_LEARNED_FILE;
    return beside_executable(found, sizeof found) ? found : NULL;
}

/* Opened on first use and kept until the process ends (commands judge until they exit).
 * Commands choose their judge before any thread starts, so no lock is needed. */
const struct al_judge *al_judge_learned_default(void)
{
    static struct al_judge *opened;
    if (opened)
        return opened;
    const char *path = al_judge_learned_find();
    if (!path) {
        const char *chosen = getenv(AL_JUDGE_LEARNED_ENV);
        if (disabled_by_environment(chosen))
            return al_fail_null("judge %s is disabled (%s is empty or \"none\")", AL_JUDGE_LEARNED_NAME,
                                AL_JUDGE_LEARNED_ENV);
        return al_fail_null("judge %s: no weights file %s (%s=%s, or %s under the working directory or beside "
                            "the executable); " GET_IT_HINT,
                            AL_JUDGE_LEARNED_NAME, chosen ? "at" : "found", AL_JUDGE_LEARNED_ENV,
                            chosen ? chosen : "(unset)", AL_JUDGE_LEARNED_FILE);
    }
    return opened = al_judge_learned_open(path);
}

const struct al_judge *al_judge_by_name(const char *name)
{
    if (name && strcmp(name, AL_JUDGE_KEYWORDS_NAME) == 0)
        return al_judge_keywords_v1();
    if (name && strcmp(name, AL_JUDGE_LEARNED_NAME) == 0)
        return al_judge_learned_default();
    if (name && strcmp(name, AL_JUDGE_AUTO_NAME) == 0) {
        if (!al_judge_learned_find())
            return al_judge_keywords_v1();
        return al_judge_learned_default();
    }
    return al_fail_null("unknown judge \"%s\" (known: %s, %s, %s)", name ? name : "(null)", AL_JUDGE_AUTO_NAME,
                        AL_JUDGE_LEARNED_NAME, AL_JUDGE_KEYWORDS_NAME);
}

/* Judges whose verdict is a pure function of the text may run on several threads. */
static bool is_pure(const struct al_judge *judge)
{
    return judge == al_judge_keywords_v1() || al_judge_is_learned(judge);
}

int al_judge_responses(const struct al_judge *judge, int n, const char *const *texts, const bool *has_tool_call,
                       struct al_verdict *out)
{
    bool parallel = is_pure(judge);
    al_error_clear();
    int first_failure = n;
#pragma omp parallel for schedule(dynamic, 16) if (parallel) reduction(min : first_failure)
    for (int i = 0; i < n; i++)
        if (al_judge_response(judge, texts[i], has_tool_call && has_tool_call[i], &out[i]) != 0 && i < first_failure)
            first_failure = i;
    if (first_failure < n)
        return al_fail("judge %s: response %d of %d could not be judged", judge->name, first_failure + 1, n);
    return 0;
}
