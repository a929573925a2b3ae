/* The AST-style match of a call's argument values against the reference's (as function
 * calling benchmarks grade them): compare parsed values, not text, so that key order,
 * spacing, "2.50" vs "2.5" and "New York, NY" vs "new york ny" do not count as mistakes. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "agentlora/scoring.h"

/* Lowercase letters and digits, words separated by one space; punctuation dropped.
 * NULL on invalid UTF-8 or no memory (the caller then compares bytes). */
static char *comparable_text(const char *text)
{
    size_t length = strlen(text);
    char *out = malloc(4 * length + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    bool pending_space = false;
    for (size_t at = 0; at < length;) {
        utf8proc_int32_t code;
        utf8proc_ssize_t used = utf8proc_iterate((const utf8proc_uint8_t *)text + at, (utf8proc_ssize_t)(length - at), &code);
        if (used <= 0) {
            free(out);
            return NULL;
        }
        at += (size_t)used;
        utf8proc_category_t category = utf8proc_category(code);
        bool letter_or_digit = (category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO) ||
                               (category >= UTF8PROC_CATEGORY_ND && category <= UTF8PROC_CATEGORY_NO);
        if (category == UTF8PROC_CATEGORY_ZS || code == '\t' || code == '\n' || code == '\r') {
            pending_space = true;
            continue;
        }
        if (!letter_or_digit)
            continue;
        if (pending_space && n > 0)
            out[n++] = ' ';
        pending_space = false;
        n += (size_t)utf8proc_encode_char(utf8proc_tolower(code), (utf8proc_uint8_t *)out + n);
    }
    out[n] = '\0';
    return out;
}

static bool strings_match(const char *generated, const char *reference)
{
    char *a = comparable_text(generated), *b = comparable_text(reference);
    bool same = a && b ? strcmp(a, b) == 0 : strcmp(generated, reference) == 0;
    free(a);
    free(b);
    return same;
}

static bool numbers_match(double generated, double reference)
{
    double scale = fmax(1.0, fabs(reference));
    return fabs(generated - reference) <= AL_SCORE_NUMBER_RELATIVE_TOLERANCE * scale;
}

static bool arrays_match(const cJSON *generated, const cJSON *reference)
{
    if (cJSON_GetArraySize(generated) != cJSON_GetArraySize(reference))
        return false;
    const cJSON *g = generated->child, *r = reference->child;
    for (; g && r; g = g->next, r = r->next)
        if (!al_argument_values_match(g, r))
            return false;
    return true;
}

bool al_argument_values_match(const cJSON *generated, const cJSON *reference)
{
    if (!generated || !reference)
        return false;
    if (cJSON_IsString(reference))
        return cJSON_IsString(generated) && strings_match(generated->valuestring, reference->valuestring);
    if (cJSON_IsNumber(reference))
        return cJSON_IsNumber(generated) && numbers_match(generated->valuedouble, reference->valuedouble);
    if (cJSON_IsBool(reference))
        return cJSON_IsBool(generated) && cJSON_IsTrue(generated) == cJSON_IsTrue(reference);
    if (cJSON_IsNull(reference))
        return cJSON_IsNull(generated);
    if (cJSON_IsArray(reference))
        return cJSON_IsArray(generated) && arrays_match(generated, reference);
    if (cJSON_IsObject(reference))
        return cJSON_IsObject(generated) && al_argument_match_share(generated, reference) == 1.0;
    return false;
}

double al_argument_match_share(const cJSON *generated, const cJSON *reference)
{
    if (!cJSON_IsObject(reference))
        return al_argument_values_match(generated, reference) ? 1.0 : 0.0;
    int total = 0, matched = 0;
    const cJSON *key;
    cJSON_ArrayForEach(key, reference)
    {
        total++;
        const cJSON *value = cJSON_IsObject(generated) ? cJSON_GetObjectItemCaseSensitive(generated, key->string) : NULL;
        matched += al_argument_values_match(value, key);
    }
    return total > 0 ? (double)matched / (double)total : 1.0;
}
