/* `agentlora data inspect` end to end on the project's sample data and the real Qwen2.5
 * and Llama 3.2 tokenizers: renders and token ids identical to transformers'
 * apply_chat_template + tokenizer (tests/golden/data/make_data_golden.py), the summary,
 * trained-token marks, PING prefixes, and errors. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/file.h"
#include "test_support.h"

#define SAMPLE "data/agentalign_sample.json"
#define RECORDS "1,2,50,60,88"

static cJSON *expected_case(cJSON **root, const char *name)
{
    *root = al_json_load_file("tests/golden/data/expected_inspect.json");
    cr_assert_not_null(*root);
    cJSON *item = cJSON_GetObjectItem(cJSON_GetObjectItem(*root, "cases"), name);
    cr_assert_not_null(item, "no case %s", name);
    return item;
}

/* Runs data inspect with --raw or --ids and compares each output line with the case. */
static void check_against_transformers(const char *tokenizer_dir, const char *case_name)
{
    char *model = test_shared_path(tokenizer_dir);
    cJSON *root;
    cJSON *expected = expected_case(&root, case_name);
    char *ids_output = NULL, *raw_output = NULL;
    int status = test_run_cli(&ids_output, "data", "inspect", SAMPLE, "--model", model, "--records", RECORDS,
                              "--ids", "--date", "26 Jul 2024", NULL);
    cr_assert_eq(status, 0, "%s", ids_output);
    status = test_run_cli(&raw_output, "data", "inspect", SAMPLE, "--model", model, "--records", RECORDS, "--raw",
                          "--date", "26 Jul 2024", NULL);
    cr_assert_eq(status, 0, "%s", raw_output);

    cJSON *texts = cJSON_GetObjectItem(expected, "texts"), *ids = cJSON_GetObjectItem(expected, "ids");
    char *ids_line = ids_output, *raw_line = raw_output;
    for (int r = 0; r < cJSON_GetArraySize(ids); r++) {
        /* ids: the line must list exactly the expected ids */
        cJSON *want = cJSON_GetArrayItem(ids, r);
        char *cursor = ids_line;
        for (int t = 0; t < cJSON_GetArraySize(want); t++) {
            char *end;
            long id = strtol(cursor, &end, 10);
            cr_assert_neq(end, cursor, "record %d: output ends after %d ids", r, t);
            cr_assert_eq(id, cJSON_GetArrayItem(want, t)->valueint, "record %d token %d: %ld, transformers %d", r,
                         t, id, cJSON_GetArrayItem(want, t)->valueint);
            cursor = end;
        }
        cr_assert_eq(*cursor, '\n', "record %d: more ids than transformers produced", r);
        ids_line = cursor + 1;
        /* raw: the line is a JSON string equal to the expected text */
        char *newline = strchr(raw_line, '\n');
        cr_assert_not_null(newline);
        *newline = '\0';
        cJSON *line = cJSON_Parse(raw_line);
        cr_assert(cJSON_IsString(line), "record %d: not a JSON string: %.80s", r, raw_line);
        cr_assert_str_eq(line->valuestring, cJSON_GetArrayItem(texts, r)->valuestring, "record %d text differs", r);
        cJSON_Delete(line);
        raw_line = newline + 1;
    }
    free(ids_output);
    free(raw_output);
    cJSON_Delete(root);
    free(model);
}

Test(data_inspect_cli, qwen25_renders_and_ids_match_transformers)
{
    check_against_transformers("tokenizers/qwen2.5", "qwen2.5");
}

Test(data_inspect_cli, llama32_renders_and_ids_match_transformers)
{
    check_against_transformers("tokenizers/llama-3.2", "llama-3.2");
}

Test(data_inspect_cli, summary_marks_and_ping_prefixes)
{
    char *model = test_shared_path("tokenizers/qwen2.5");
    char *output = NULL;
    int status = test_run_cli(&output, "data", "inspect", SAMPLE, "--model", model, "--records", "1", "--ping-prefixes",
                              "data/ping_prefixes.json", "--max-len", "512", NULL);
    cr_assert_eq(status, 0, "%s", output);
    cr_assert(strstr(output, "records: 88 (harmful 48, benign 40)"), "%s", output);
    cr_assert(strstr(output, "chat format chatml-qwen2.5"), "%s", output);
    cr_assert(strstr(output, "PING prefixes in train mode"), "%s", output);
    /* record 1 is harmful: the trained part opens with the prefix right after the header */
    const char *trained = strstr(output, "<|im_start|>assistant\n\u00ab");
    cr_assert_not_null(trained, "%s", output);
    cJSON *prefixes = al_json_load_file("data/ping_prefixes.json");
    bool found = false;
    for (int i = 0; i < cJSON_GetArraySize(prefixes); i++) {
        const char *prefix = cJSON_GetArrayItem(prefixes, i)->valuestring;
        found |= strncmp(trained + strlen("<|im_start|>assistant\n\u00ab"), prefix, strlen(prefix)) == 0;
    }
    cr_assert(found, "the first assistant response must open with a PING prefix");
    /* at max_len 512 some of the longer trajectories are truncated and counted */
    cr_assert(strstr(output, "truncated documents: ") && !strstr(output, "truncated documents: 0,"), "%s", output);
    cJSON_Delete(prefixes);
    free(output);
    free(model);
}

Test(data_inspect_cli, last_turn_only_trains_on_fewer_tokens)
{
    char *model = test_shared_path("tokenizers/qwen2.5");
    char *all = NULL, *last = NULL;
    cr_assert_eq(test_run_cli(&all, "data", "inspect", SAMPLE, "--model", model, "--records", "60", NULL), 0);
    cr_assert_eq(test_run_cli(&last, "data", "inspect", SAMPLE, "--model", model, "--records", "60",
                              "--last-turn-only", NULL),
                 0);
    long trained_all = 0, trained_last = 0;
    cr_assert_eq(sscanf(strstr(all, "tokens, ") + 8, "%ld", &trained_all), 1);
    cr_assert_eq(sscanf(strstr(last, "tokens, ") + 8, "%ld", &trained_last), 1);
    /* record 60 has three assistant turns after one user turn: "last turn" is all three */
    cr_assert_eq(trained_last, trained_all);
    free(all);
    free(last);
    free(model);
}

Test(data_inspect_cli, bad_input_is_named_and_usage_errors_exit_2)
{
    char *model = test_shared_path("tokenizers/qwen2.5");
    char *dir = test_tmpdir();
    const char *broken = "[{\"id\": \"a\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", \"content\": "
                         "\"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]},\n"
                         " {\"id\": \"b\", \"category\": \"benign\", \"messages\": [{\"role\": \"wizard\", "
                         "\"content\": \"x\"}]}]";
    char *path = test_write_file(dir, "broken.json", broken, strlen(broken));
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "data", "inspect", path, "--model", model, "--strict", NULL), 1, "%s", output);
    cr_assert(strstr(output, "broken.json") && strstr(output, "record 2") && strstr(output, "wizard"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "data", "inspect", path, "--model", model, NULL), 0, "%s", output);
    cr_assert(strstr(output, "skipped: 1"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "data", "inspect", path, NULL), 2, "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "data", "inspect", path, "--model", model, "--template", "vicuna", NULL), 1,
                 "%s", output);
    cr_assert(strstr(output, "vicuna"), "%s", output);
    free(output);
    char *llama2 = test_shared_path("tokenizers/llama2-sentencepiece");
    cr_assert_eq(test_run_cli(&output, "data", "inspect", SAMPLE, "--model", llama2, NULL), 1, "%s", output);
    cr_assert(strstr(output, "--template"), "a folder without a chat template asks for --template: %s", output);
    free(output);
    free(llama2);
    free(path);
    free(dir);
    free(model);
}
