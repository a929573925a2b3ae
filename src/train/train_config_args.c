/* The training configuration from the command line, and the --help text, both driven by
 * the key table of train_config.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/train_config.h"
#include "train_config_hints.h"

/* Key names are written with '_' in files; on the command line '-' works too. */
static int normalise_key(const char *option, size_t length, char *out, size_t capacity)
{
    if (length + 1 > capacity)
        return al_fail("unknown option '--%.*s'", (int)length, option);
    for (size_t i = 0; i < length; i++)
        out[i] = option[i] == '-' ? '_' : option[i];
    out[length] = '\0';
    return 0;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Loads every --config FILE first, so that the other options override the file wherever
 * they appear. */
static int apply_config_files(struct al_train_config *config, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return al_fail("option --config needs a file");
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path && al_train_config_load_file(config, path) != 0)
            return -1;
    }
    return 0;
}

/* One option at argv[*index]; advances *index past its value. */
static int apply_option(struct al_train_config *config, int argc, char **argv, int *index)
{
    const char *arg = argv[*index];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return al_fail("unexpected argument '%s' (options are --key value)", arg);
    const char *option = arg + 2, *equals = strchr(option, '=');
    size_t length = equals ? (size_t)(equals - option) : strlen(option);
    char name[64];
    if (normalise_key(option, length, name, sizeof name) != 0)
        return -1;
    if (strcmp(name, "config") == 0) { /* already applied */
        *index += equals ? 0 : 1;
        return 0;
    }
    const struct al_train_config_key *key = al_train_config_find_key(name);
    if (!key)
        return al_train_config_unknown_key(name);
    const char *value = equals ? equals + 1 : NULL;
    if (!value) {
        bool next_is_value = *index + 1 < argc && strncmp(argv[*index + 1], "--", 2) != 0;
        if (key->type == AL_CONFIG_BOOL && !next_is_value)
            value = "true";
        else if (*index + 1 < argc)
            value = argv[++*index];
        else
            return al_fail("option --%s needs a value (%s)", name, al_config_type_name(key->type));
    }
    if (al_train_config_set(config, name, value) != 0) {
        al_error_context("command line");
        return -1;
    }
    return 0;
}

int al_train_config_from_args(struct al_train_config *config, int argc, char **argv, bool *help_requested)
{
    *help_requested = false;
    al_train_config_defaults(config);
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            *help_requested = true;
            return 0;
        }
    }
    if (apply_config_files(config, argc, argv) != 0)
        return -1;
    for (int i = 0; i < argc; i++)
        if (apply_option(config, argc, argv, &i) != 0)
            return -1;
    return al_train_config_validate(config);
}

/* ---- --help ---- */

struct text {
    char *data;
    size_t length, capacity;
    bool failed;
};

static int reserve(struct text *text, size_t extra)
{
    if (text->length + extra + 1 <= text->capacity)
        return 0;
    size_t capacity = 2 * (text->capacity + extra + 1);
    char *grown = realloc(text->data, capacity);
    if (!grown)
        return -1;
    text->data = grown;
    text->capacity = capacity;
    return 0;
}

static void append(struct text *text, const char *fmt, ...) AL_PRINTF(2, 3);

static void append(struct text *text, const char *fmt, ...)
{
    if (text->failed)
        return;
    va_list args;
    va_start(args, fmt);
    int needed = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (needed < 0 || reserve(text, (size_t)needed) != 0) {
        text->failed = true;
        return;
    }
    va_start(args, fmt);
    vsnprintf(text->data + text->length, (size_t)needed + 1, fmt, args);
    va_end(args);
    text->length += (size_t)needed;
}

static const char *placeholder(enum al_config_type type)
{
    switch (type) {
    case AL_CONFIG_STRING: return "TEXT";
    case AL_CONFIG_INT: return "INT";
    case AL_CONFIG_FLOAT: return "NUMBER";
    case AL_CONFIG_BOOL: return "BOOL";
    }
    return "?";
}

char *al_train_config_help(const char *usage_line)
{
    struct text text = {0};
    int count = 0;
    const struct al_train_config_key *keys = al_train_config_keys(&count);
    append(&text, "%s\n\n", usage_line);
    append(&text, "Keys marked * cannot change when a run is resumed.\n");
    for (int i = 0; i < count; i++) {
        const struct al_train_config_key *key = &keys[i];
        if (key->section)
            append(&text, "\n%s:\n", key->section);
        char option[96];
        snprintf(option, sizeof option, "--%s %s", key->name, placeholder(key->type));
        const char *def = key->default_text;
        append(&text, "  %-34s %s%s (default: %s%s%s)\n", option, key->fixed_on_resume ? "* " : "", key->help,
               key->type == AL_CONFIG_STRING ? "\"" : "", def, key->type == AL_CONFIG_STRING ? "\"" : "");
    }
    if (text.failed) {
        free(text.data);
        return al_fail_null("out of memory");
    }
    return text.data;
}
