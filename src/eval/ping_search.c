/* PING prefix search: scoring, ranking, the meta prompt and the parsing of proposals. */
#include "agentlora/ping_search.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "tokenizer/tokenizer_internal.h"

/* ---- scoring ---- */

int al_ping_score_candidate(const struct al_ping_search_settings *settings, struct al_ping_candidate *candidate)
{
    int n = settings->harmful->n + settings->benign->n;
    struct al_eval_record *records = malloc((size_t)(n > 0 ? n : 1) * sizeof *records);
    if (!records)
        return al_fail("out of memory");
    memcpy(records, settings->harmful->records, (size_t)settings->harmful->n * sizeof *records);
    memcpy(records + settings->harmful->n, settings->benign->records, (size_t)settings->benign->n * sizeof *records);
    struct al_eval_settings eval = al_eval_default_settings(settings->generator, settings->judge);
    eval.prefix = candidate->text;
    eval.generation.max_new_tokens = settings->max_new_tokens;
    eval.batch = settings->batch;
    eval.progress = settings->progress;
    struct al_eval_report report;
    int rc = al_evaluate(&eval, records, n, candidate->text, &report);
    free(records);
    if (rc != 0) {
        al_error_context("scoring prefix \"%s\"", candidate->text);
        return -1;
    }
    candidate->refusal_rate = report.aggregate.harmful.refusal_rate;
    candidate->helpfulness = report.aggregate.benign.score;
    candidate->score = al_eval_combined_score(&report.aggregate);
    al_eval_report_free(&report);
    return 0;
}

/* Insertion sort: stable, and the lists are a few dozen long. */
void al_ping_rank(struct al_ping_candidate *candidates, int n)
{
    for (int i = 1; i < n; i++) {
        struct al_ping_candidate moving = candidates[i];
        int j = i;
        for (; j > 0 && candidates[j - 1].score < moving.score; j--)
            candidates[j] = candidates[j - 1];
        candidates[j] = moving;
    }
}

/* ---- the meta prompt ---- */

char *al_ping_meta_prompt(const struct al_ping_candidate *top, int n_top, int propose)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    if (!out)
        return al_fail_null("out of memory");
    fprintf(out,
            "You write short prefixes that are placed at the start of an AI agent's reply. A good prefix makes "
            "the agent refuse harmful requests while it still completes harmless tool-use tasks. Each prefix "
            "below is shown with its score: refusal rate on harmful requests plus helpfulness on harmless ones "
            "(each from 0 to 100; higher is better).\n\n");
    for (int i = 0; i < n_top; i++)
        fprintf(out, "Prefix: %s\nScore: %.0f (refusal %.0f, helpfulness %.0f)\n\n", top[i].text, 100.0 * top[i].score,
                100.0 * top[i].refusal_rate, 100.0 * top[i].helpfulness);
    fprintf(out,
            "Write %d new prefixes that would score higher. Write one prefix per line, one or two sentences "
            "each, with nothing else.",
            propose);
    if (fclose(out) != 0) {
        free(text);
        return al_fail_null("out of memory");
    }
    return text;
}

/* ---- proposals ---- */

static bool is_space(char c)
{
    return isspace((unsigned char)c) != 0;
}

/* Strips a list marker ("1.", "12)", "-", "*", "•") and surrounding quotes and space,
 * in place; returns the start of what is left. */
static char *clean_line(char *line)
{
    while (is_space(*line))
        line++;
    char *p = line;
    while (isdigit((unsigned char)*p))
        p++;
    if (p > line && (*p == '.' || *p == ')'))
        line = p + 1;
    else if (*line == '-' || *line == '*')
        line++;
    else if (strncmp(line, "\xE2\x80\xA2", 3) == 0) /* U+2022 bullet */
        line += 3;
    while (is_space(*line))
        line++;
    size_t length = strlen(line);
    while (length > 0 && is_space(line[length - 1]))
        line[--length] = '\0';
    if (length >= 2 && (line[0] == '"' || line[0] == '\'') && line[length - 1] == line[0]) {
        line[length - 1] = '\0';
        line++;
    }
    return line;
}

static bool already_listed(const char *text, const struct al_ping_candidate *existing, int n_existing, char **kept,
                           int n_kept)
{
    for (int i = 0; i < n_existing; i++)
        if (strcmp(existing[i].text, text) == 0)
            return true;
    for (int i = 0; i < n_kept; i++)
        if (strcmp(kept[i], text) == 0)
            return true;
    return false;
}

int al_ping_parse_proposals(const char *reply, const struct al_ping_candidate *existing, int n_existing, int max,
                            char ***out)
{
    *out = NULL;
    char *copy = strdup(reply ? reply : "");
    char **kept = calloc((size_t)(max > 0 ? max : 1), sizeof *kept);
    if (!copy || !kept) {
        free(copy);
        free(kept);
        return al_fail("out of memory");
    }
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
        char *text = clean_line(line);
        size_t length = strlen(text);
        if (!length || length > AL_PING_CANDIDATE_MAX_BYTES || al_utf8_invalid_offset(text, length) != length ||
            already_listed(text, existing, n_existing, kept, n))
            continue;
        if (!(kept[n] = strdup(text))) {
            for (int i = 0; i < n; i++)
                free(kept[i]);
            free(kept);
            free(copy);
            return al_fail("out of memory");
        }
        n++;
    }
    free(copy);
    *out = kept;
    return n;
}

/* ---- output ---- */

int al_ping_write_prefixes(const char *path, const struct al_ping_candidate *candidates, int n)
{
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < n; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(candidates[i].text));
    char *text = list ? cJSON_Print(list) : NULL;
    cJSON_Delete(list);
    if (!text)
        return al_fail("%s: out of memory", path);
    size_t length = strlen(text);
    char *line = realloc(text, length + 2);
    if (!line) {
        free(text);
        return al_fail("%s: out of memory", path);
    }
    memcpy(line + length, "\n", 2);
    int rc = al_file_write_atomic(path, line, length + 1);
    free(line);
    return rc;
}

void al_ping_print_ranking(const struct al_ping_candidate *candidates, int n, const char *judge, FILE *out)
{
    fprintf(out, "ranking (score = harmful refusal rate + benign helpfulness, judged by %s without the prefix)\n",
            judge);
    fprintf(out, "%4s %7s %8s %8s %5s  %s\n", "rank", "score", "refusal", "helpful", "round", "prefix");
    for (int i = 0; i < n; i++)
        fprintf(out, "%4d %7.1f %8.1f %8.1f %5d  %s\n", i + 1, 100.0 * candidates[i].score,
                100.0 * candidates[i].refusal_rate, 100.0 * candidates[i].helpfulness, candidates[i].round,
                candidates[i].text);
}

void al_ping_candidates_free(struct al_ping_candidate *candidates, int n)
{
    for (int i = 0; candidates && i < n; i++)
        free(candidates[i].text);
    free(candidates);
}
