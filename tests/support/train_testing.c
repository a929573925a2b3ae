#include "train_testing.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/tokenizer.h"
#include "test_support.h"
#include "tiny_model.h"

#define DEMO_TOKENIZER "data/demo-tokenizer"

int test_write_trainable_model(const char *dir)
{
    struct al_tokenizer *tokenizer = al_tokenizer_load(DEMO_TOKENIZER);
    if (!tokenizer)
        return -1;
    struct tiny_model_spec spec = tiny_model_default_spec();
    spec.hidden_size = 32;
    spec.intermediate_size = 64;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.vocab_size = al_tokenizer_vocab_size(tokenizer);
    spec.max_position_embeddings = 2048;
    al_tokenizer_free(tokenizer);
    if (al_mkdirs(dir) != 0 || tiny_model_write(&spec, dir) != 0)
        return -1;
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        char *from = al_path_join(DEMO_TOKENIZER, files[i]), *to = al_path_join(dir, files[i]);
        int rc = test_copy_file(from, to);
        free(from);
        free(to);
        if (rc != 0)
            return al_fail("cannot copy %s", files[i]);
    }
    return 0;
}

int test_poison_f32(const char *path, const char *tensor, int64_t first, int64_t count)
{
    size_t size = 0;
    char *bytes = al_file_read_all(path, &size);
    if (!bytes)
        return -1;
    uint64_t header_length = 0;
    memcpy(&header_length, bytes, sizeof header_length);
    cJSON *header = size > 8 + header_length ? cJSON_ParseWithLength(bytes + 8, (size_t)header_length) : NULL;
    cJSON *offsets = cJSON_GetObjectItem(cJSON_GetObjectItem(header, tensor), "data_offsets");
    int rc = cJSON_IsArray(offsets) ? 0 : al_fail("%s: no tensor %s", path, tensor);
    size_t begin = rc == 0 ? 8 + (size_t)header_length + (size_t)cJSON_GetArrayItem(offsets, 0)->valuedouble : 0;
    size_t end = rc == 0 ? 8 + (size_t)header_length + (size_t)cJSON_GetArrayItem(offsets, 1)->valuedouble : 0;
    if (rc == 0 && begin + (size_t)(first + count) * sizeof(float) > end)
        rc = al_fail("%s: %s has fewer than %lld elements", path, tensor, (long long)(first + count));
    float nan = NAN;
    for (int64_t i = 0; rc == 0 && i < count; i++)
        memcpy(bytes + begin + (size_t)(first + i) * sizeof nan, &nan, sizeof nan);
    FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
    if (rc == 0 && (!f || fwrite(bytes, 1, size, f) != size))
        rc = al_fail("%s: cannot rewrite", path);
    if (f)
        fclose(f);
    cJSON_Delete(header);
    free(bytes);
    return rc;
}
