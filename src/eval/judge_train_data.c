/* The labelled responses learned-v1 is trained and scored on, read once into feature
 * vectors (extraction is most of a fit's cost, so every fit shares it). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/judge_train.h"
#include "agentlora/rng.h"

static uint64_t hash_text(const char *text)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *text; text++) {
        h ^= (unsigned char)*text;
        h *= 1099511628211ULL;
    }
    return al_hash64(h);
}

/* The source's group: its part before '/' ("gptfuzz/train" and "gptfuzz/evaluate" are one). */
static int source_index(struct al_judge_examples *examples, const char *source)
{
    size_t length = strcspn(source, "/");
    if (length >= AL_JUDGE_SOURCE_NAME_MAX)
        length = AL_JUDGE_SOURCE_NAME_MAX - 1;
    for (int i = 0; i < examples->n_sources; i++)
        if (strlen(examples->sources[i]) == length && strncmp(examples->sources[i], source, length) == 0)
            return i;
    char (*grown)[AL_JUDGE_SOURCE_NAME_MAX] =
        realloc(examples->sources, (size_t)(examples->n_sources + 1) * sizeof *grown);
    if (!grown)
        return al_fail("out of memory");
    examples->sources = grown;
    snprintf(grown[examples->n_sources], AL_JUDGE_SOURCE_NAME_MAX, "%.*s", (int)length, source);
    return examples->n_sources++;
}

static struct al_judge_example *next_slot(struct al_judge_examples *examples)
{
    if (examples->count == examples->capacity) {
        int capacity = examples->capacity ? 2 * examples->capacity : 1024;
        struct al_judge_example *grown = realloc(examples->items, (size_t)capacity * sizeof *grown);
        if (!grown)
            return al_fail_null("out of memory");
        examples->items = grown;
        examples->capacity = capacity;
    }
    struct al_judge_example *slot = &examples->items[examples->count];
    memset(slot, 0, sizeof *slot);
    return slot;
}

static const char *string_or(const cJSON *record, const char *key, const char *fallback)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(record, key);
    return cJSON_IsString(item) ? item->valuestring : fallback;
}

struct file_settings {
    const struct al_judge_feature_settings *features;
    float weight, model_label_weight;
    const char *default_source;
};

static int read_record(struct al_judge_examples *examples, const cJSON *record, const struct file_settings *fs)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(record, "text");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(record, "refusal");
    if (!label)
        label = cJSON_GetObjectItemCaseSensitive(record, "label");
    if (!cJSON_IsString(text))
        return al_fail("needs a string \"text\"");
    if (!cJSON_IsBool(label))
        return al_fail("needs a boolean \"refusal\" (or \"label\")");
    const char *split = string_or(record, "split", "train");
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        return al_fail("\"split\" is \"%s\"; expected \"train\" or \"test\"", split);
    struct al_judge_example *example = next_slot(examples);
    int source = example ? source_index(examples, string_or(record, "source", fs->default_source)) : -1;
    if (source < 0)
        return -1;
    example->refusal = cJSON_IsTrue(label);
    example->test = strcmp(split, "test") == 0;
    example->validation =
        !example->test && hash_text(string_or(record, "prompt", text->valuestring)) % AL_JUDGE_VALIDATION_FOLDS == 0;
    example->source = source;
    example->weight = fs->weight * (strcmp(string_or(record, "label_origin", ""), "model") == 0 ? fs->model_label_weight : 1.0f);
    if (al_judge_features_extract(fs->features, text->valuestring, &example->features) != 0) {
        al_judge_features_free(&example->features);
        return -1;
    }
    examples->count++;
    return 0;
}

static int read_line(struct al_judge_examples *examples, const char *line, const struct file_settings *fs)
{
    cJSON *record = cJSON_Parse(line);
    if (!record)
        return al_fail("not valid JSON");
    int status = cJSON_IsObject(record) ? read_record(examples, record, fs) : al_fail("expected a JSON object");
    cJSON_Delete(record);
    return status;
}

static const char *file_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int al_judge_examples_read(struct al_judge_examples *examples, const char *path,
                           const struct al_judge_feature_settings *settings, float weight, float model_label_weight,
                           int sample)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return al_fail_errno("cannot open %s", path);
    struct file_settings fs = {settings, weight, model_label_weight, file_name(path)};
    char *line = NULL;
    size_t capacity = 0;
    long line_number = 0, kept = 0;
    int status = 0;
    while (status == 0 && getline(&line, &capacity, file) != -1) {
        line_number++;
        if (strspn(line, " \t\r\n") == strlen(line) || kept++ % (sample > 0 ? sample : 1) != 0)
            continue;
        if ((status = read_line(examples, line, &fs)) != 0)
            al_error_context("%s: line %ld", path, line_number);
    }
    free(line);
    fclose(file);
    return status;
}

void al_judge_examples_free(struct al_judge_examples *examples)
{
    for (int i = 0; i < examples->count; i++)
        al_judge_features_free(&examples->items[i].features);
    free(examples->items);
    free(examples->sources);
    memset(examples, 0, sizeof *examples);
}
