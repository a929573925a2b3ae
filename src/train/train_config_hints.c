/* Messages that tell a user what to do instead of only what went wrong: the key they
 * probably meant, a YAML config, a Hugging Face Hub id given as the model. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/train_config.h"
#include "train_config_hints.h"

#define KEY_NAME_MAX 64

/* Levenshtein distance of two short strings (key names), one row at a time. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= KEY_NAME_MAX || m >= KEY_NAME_MAX)
        return KEY_NAME_MAX;
    int row[KEY_NAME_MAX + 1];
    for (size_t j = 0; j <= m; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diagonal = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int above = row[j];
            int substitution = diagonal + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            int best = above + 1 < row[j - 1] + 1 ? above + 1 : row[j - 1] + 1;
            row[j] = substitution < best ? substitution : best;
            diagonal = above;
        }
    }
    return row[m];
}

/* The key a misspelt name most likely meant: the nearest by edit distance, within a
 * third of the name's length (at least 2), or one the name is a prefix of; else NULL. */
const char *al_train_config_closest_key(const char *name)
{
    int count;
    const struct al_train_config_key *keys = al_train_config_keys(&count);
    const char *best = NULL;
    int best_distance = KEY_NAME_MAX;
    int limit = (int)strlen(name) / 3 > 2 ? (int)strlen(name) / 3 : 2;
    for (int i = 0; i < count; i++) {
        int distance = edit_distance(name, keys[i].name);
        if (strlen(name) >= 3 && strncmp(keys[i].name, name, strlen(name)) == 0)
            distance = distance < limit ? distance : limit;
        if (distance < best_distance) {
            best_distance = distance;
            best = keys[i].name;
        }
    }
    return best_distance <= limit ? best : NULL;
}

int al_train_config_unknown_key(const char *name)
{
    const char *suggestion = al_train_config_closest_key(name);
    if (suggestion)
        return al_fail("unknown key '%s'; did you mean %s? (agentlora train --help lists the keys)", name,
                       suggestion);
    return al_fail("unknown key '%s' (agentlora train --help lists the keys)", name);
}

/* A file whose name ends in .yaml/.yml, or whose first line is "key: value" rather than
 * JSON's '{'. */
static bool looks_like_yaml(const char *path, const char *text)
{
    const char *dot = strrchr(path, '.');
    if (dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
        return true;
    while (*text && isspace((unsigned char)*text))
        text++;
    if (*text == '{' || *text == '[' || *text == '\0')
        return false;
    if (strncmp(text, "---", 3) == 0 || *text == '#')
        return true;
    const char *colon = strchr(text, ':'), *newline = strchr(text, '\n');
    return colon && (!newline || colon < newline);
}

int al_train_config_refuse_yaml(const char *path)
{
    char *text = al_file_read_all(path, NULL);
    if (!text)
        return -1;
    bool yaml = looks_like_yaml(path, text);
    free(text);
    if (!yaml)
        return 0;
    return al_fail("%s looks like YAML; training configs are JSON objects ({\"lora_r\": 16, \"lr\": 2e-4, ...}). "
                   "Convert it, for example with python3 -c 'import json, sys, yaml; "
                   "json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout, indent=2)' %s > run.json, "
                   "or pass the keys as --key value",
                   path, path);
}

/* "org/name": two plain name parts (letters, digits, '-', '_', '.') and one slash. */
static bool looks_like_hub_id(const char *text)
{
    const char *slash = strchr(text, '/');
    if (!slash || slash == text || slash[1] == '\0' || strchr(slash + 1, '/') || text[0] == '.')
        return false;
    for (const char *p = text; *p; p++)
        if (p != slash && !isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

int al_train_config_refuse_hub_id(const char *key, const char *value)
{
    if (!value[0] || al_file_exists(value) || al_dir_exists(value) || !looks_like_hub_id(value))
        return 0;
    return al_fail("key '%s': %s is not a local file or folder; it looks like a Hugging Face Hub id, and agentlora "
                   "does not download: fetch it first (huggingface-cli download %s --local-dir models/%s) and "
                   "pass that folder (or a GGUF file)",
                   key, value, value, strchr(value, '/') + 1);
}
