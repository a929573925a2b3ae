/* A tokenizer a tiny model can judge with: see judge_testing.h. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "judge_testing.h"
#include "test_support.h"

#define DEMO_TOKENIZER_DIR "data/demo-tokenizer"

/* One entry of tokenizer.json's added_tokens: a plain (not special) token. */
static cJSON *added_token(int id, const char *content)
{
    cJSON *token = cJSON_CreateObject();
    cJSON_AddNumberToObject(token, "id", id);
    cJSON_AddStringToObject(token, "content", content);
    cJSON_AddFalseToObject(token, "single_word");
    cJSON_AddFalseToObject(token, "lstrip");
    cJSON_AddFalseToObject(token, "rstrip");
    cJSON_AddFalseToObject(token, "normalized");
    cJSON_AddFalseToObject(token, "special");
    return token;
}

void test_write_demo_tokenizer(const char *dir, bool with_yes_no)
{
    cr_assert_eq(al_mkdirs(dir), 0, "cannot create %s", dir);
    char *text = al_file_read_all(DEMO_TOKENIZER_DIR "/tokenizer.json", NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    cr_assert_not_null(root, "cannot read " DEMO_TOKENIZER_DIR "/tokenizer.json");
    cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    if (with_yes_no) {
        cJSON_AddItemToArray(added, added_token(TEST_YES_ID, "Yes"));
        cJSON_AddItemToArray(added, added_token(TEST_YES_ID + 1, "No"));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(test_write_file(dir, "tokenizer.json", json, strlen(json)));
    free(json);
    char *config = al_path_join(dir, "tokenizer_config.json");
    cr_assert_eq(test_copy_file(DEMO_TOKENIZER_DIR "/tokenizer_config.json", config), 0);
    free(config);
}
