/* The data formats people already have, end to end: an Alpaca file and a ShareGPT file
 * train as they are (the summary says how they were read), `data convert` writes them as
 * messages JSON Lines that render byte for byte like the originals, refuses to overwrite,
 * and an evaluation of plain chat reports the reference answers' loss and perplexity
 * instead of a tool-call score. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"
#include "train_testing.h"

#define TEMPLATE "chatml-tools"
#define DEMO_TOKENIZER "data/demo-tokenizer"

static const char ALPACA[] =
    "{\"instruction\": \"Give three tips for staying healthy.\", \"input\": \"\", \"output\": \"Eat well, move, sleep.\"}\n"
    "{\"instruction\": \"Translate to French.\", \"input\": \"Good morning\", \"output\": \"Bonjour\"}\n"
    "{\"instruction\": \"Name a colour.\", \"output\": \"Blue.\", \"system\": \"Answer in one word.\"}\n"
    "{\"instruction\": \"Add 2 and 3.\", \"input\": \"\", \"output\": \"5\"}\n"
    "{\"instruction\": \"What is the capital of Italy?\", \"input\": \"\", \"output\": \"Rome.\"}\n"
    "{\"instruction\": \"Say hello.\", \"input\": \"\", \"output\": \"Hello!\"}\n";

static const char SHAREGPT[] =
    "{\"conversations\": [{\"from\": \"system\", \"value\": \"Be brief.\"}, {\"from\": \"human\", \"value\": \"Hi\"},"
    " {\"from\": \"gpt\", \"value\": \"Hello!\"}, {\"from\": \"human\", \"value\": \"Bye\"},"
    " {\"from\": \"gpt\", \"value\": \"Goodbye.\"}]}\n"
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"Weather in Paris?\"}, {\"from\": \"function_call\","
    " \"value\": \"{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\", \\\"days\\\":"
    " 2.0}}\"}, {\"from\": \"observation\", \"value\": \"{\\\"temp\\\": 21}\"}, {\"from\": \"gpt\", \"value\":"
    " \"21 degrees.\"}], \"tools\": \"[{\\\"name\\\": \\\"get_weather\\\", \\\"description\\\": \\\"Weather\\\","
    " \\\"parameters\\\": {\\\"type\\\": \\\"object\\\", \\\"properties\\\": {\\\"city\\\": {\\\"type\\\":"
    " \\\"string\\\"}, \\\"days\\\": {\\\"type\\\": \\\"number\\\", \\\"maximum\\\": 7.0}}}}]\"}\n"
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"2+2?\"}, {\"from\": \"gpt\", \"value\": \"4\"}]}\n"
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"Capital of Spain?\"}, {\"from\": \"gpt\", \"value\":"
    " \"Madrid.\"}]}\n";

struct scratch {
    char *root, *model, *out;
};

static void scratch_setup(struct scratch *s)
{
    s->root = test_tmpdir();
    s->model = al_path_join(s->root, "model");
    s->out = al_path_join(s->root, "out");
    cr_assert_eq(test_write_trainable_model(s->model), 0, "%s", al_error_message());
}

static void scratch_teardown(struct scratch *s)
{
    free(s->model);
    free(s->out);
    free(s->root);
}

static void assert_contains(const char *output, const char *fragment)
{
    cr_assert(output && strstr(output, fragment), "output lacks \"%s\":\n%s", fragment, output ? output : "(none)");
}

static void train_on(const struct scratch *s, const char *data, const char *run, const char *expected_summary)
{
    char *output = NULL;
    int status = test_run_cli(&output, "train", "--model", s->model, "--chat_format", TEMPLATE, "--train_data", data,
                              "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "2", "--warmup_ratio", "0",
                              "--lora_r", "4", "--eval_fraction", "0", "--device", "cpu", "--output_dir", s->out,
                              "--run_name", run, NULL);
    cr_assert_eq(status, 0, "%s", output);
    assert_contains(output, expected_summary);
    assert_contains(output, "training finished");
    char *adapter = al_strdup_printf("%s/%s/checkpoint-2/adapter_model.safetensors", s->out, run);
    cr_assert(al_file_exists(adapter), "no adapter at %s:\n%s", adapter, output);
    free(adapter);
    free(output);
}

Test(data_formats_cli, alpaca_and_sharegpt_files_train_as_they_are, .timeout = 120)
{
    struct scratch s;
    scratch_setup(&s);
    char *alpaca = test_write_file(s.root, "alpaca.jsonl", ALPACA, strlen(ALPACA));
    char *sharegpt = test_write_file(s.root, "sharegpt.jsonl", SHAREGPT, strlen(SHAREGPT));
    train_on(&s, alpaca, "alpaca", "read as messages: 6 Alpaca records");
    train_on(&s, sharegpt, "sharegpt", "read as messages: 4 ShareGPT records");
    free(alpaca);
    free(sharegpt);
    scratch_teardown(&s);
}

/* The rendered texts only: the lines that are JSON strings (the summary, also printed,
 * names the file and how it was read). */
static char *inspect_raw(const char *data)
{
    char *output = NULL;
    int status = test_run_cli(&output, "data", "inspect", data, "--model", DEMO_TOKENIZER, "--template", TEMPLATE,
                              "--raw", NULL);
    cr_assert_eq(status, 0, "%s", output);
    char *texts = calloc(strlen(output) + 1, 1);
    for (char *line = strtok(output, "\n"); line; line = strtok(NULL, "\n"))
        if (line[0] == '"')
            strcat(strcat(texts, line), "\n");
    free(output);
    cr_assert(strlen(texts) > 0, "no rendered records");
    return texts;
}

Test(data_formats_cli, convert_writes_messages_that_render_like_the_original, .timeout = 60)
{
    char *root = test_tmpdir();
    char *sharegpt = test_write_file(root, "sharegpt.jsonl", SHAREGPT, strlen(SHAREGPT));
    char *converted = al_path_join(root, "messages.jsonl");
    char *output = NULL;
    int status = test_run_cli(&output, "data", "convert", sharegpt, "--out", converted, NULL);
    cr_assert_eq(status, 0, "%s", output);
    assert_contains(output, "4 records written as messages JSON Lines");
    free(output);

    char *text = al_file_read_all(converted, NULL);
    cr_assert_not_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *record = cJSON_Parse(line);
        cr_assert(cJSON_IsArray(cJSON_GetObjectItem(record, "messages")), "line %d: %s", lines + 1, line);
        cr_assert_null(cJSON_GetObjectItem(record, "conversations"), "line %d keeps the ShareGPT key", lines + 1);
        cJSON_Delete(record);
    }
    cr_assert_eq(lines, 4);
    char *again = al_file_read_all(converted, NULL);
    cr_assert(strstr(again, "\"maximum\":7.0"), "a float literal lost its spelling:\n%s", again);
    free(again);

    char *original_render = inspect_raw(sharegpt), *converted_render = inspect_raw(converted);
    cr_assert_str_eq(converted_render, original_render);

    status = test_run_cli(&output, "data", "convert", sharegpt, "--out", converted, NULL);
    cr_assert_eq(status, 1, "an existing --out was overwritten:\n%s", output);
    assert_contains(output, "exists; pass --overwrite");
    free(output);
    status = test_run_cli(&output, "data", "convert", sharegpt, "--out", converted, "--overwrite", NULL);
    cr_assert_eq(status, 0, "%s", output);
    free(output);
    free(original_render);
    free(converted_render);
    free(text);
    free(converted);
    free(sharegpt);
    free(root);
}

Test(data_formats_cli, a_file_in_an_unknown_shape_is_named_as_such, .timeout = 60)
{
    char *root = test_tmpdir();
    static const char prompt_completion[] = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
    char *path = test_write_file(root, "pc.jsonl", prompt_completion, strlen(prompt_completion));
    char *output = NULL;
    int status = test_run_cli(&output, "data", "inspect", path, "--model", DEMO_TOKENIZER, "--template", TEMPLATE, NULL);
    cr_assert_eq(status, 1, "%s", output);
    assert_contains(output, "record 1: record has no \"messages\" and is not in another known format (Alpaca");
    assert_contains(output, "its keys: \"prompt\", \"completion\"");
    free(output);
    free(path);
    free(root);
}

Test(data_formats_cli, plain_chat_eval_reports_loss_and_perplexity_not_a_tool_score, .timeout = 120)
{
    struct scratch s;
    scratch_setup(&s);
    char *alpaca = test_write_file(s.root, "alpaca.jsonl", ALPACA, strlen(ALPACA));
    char *reports = al_path_join(s.root, "reports");
    char *output = NULL;
    int status = test_run_cli(&output, "eval", "--model", s.model, "--template", TEMPLATE, "--data", alpaca, "--limit",
                              "3", "--max-new-tokens", "4", "--ping-prefix", "Sure.", "--out", reports, NULL);
    cr_assert_eq(status, 0, "%s", output);
    assert_contains(output, "plain chat (no tools or tool calls in the records): no tool-call score; reference "
                            "answers, teacher-forced: loss ");
    assert_contains(output, "plain chat (no tool-call score): reference answers' loss A ");
    cr_assert_null(strstr(output, "combined score"), "a tool-call based score was printed:\n%s", output);
    cr_assert_null(strstr(output, "scoreA"), "score columns were printed:\n%s", output);
    char *report_path = al_path_join(reports, "report.json");
    cJSON *report = al_json_load_file(report_path);
    cr_assert_not_null(report, "%s", al_error_message());
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(report, "reports"), 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(first, "plain_chat")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(first, "combined_score")));
    cJSON *reference = cJSON_GetObjectItem(first, "reference_answers");
    double loss = cJSON_GetObjectItem(reference, "loss")->valuedouble;
    double perplexity = cJSON_GetObjectItem(reference, "perplexity")->valuedouble;
    cr_assert(loss > 0 && cJSON_GetObjectItem(reference, "tokens")->valuedouble > 0, "loss %g", loss);
    cr_assert(perplexity > 1.0 && perplexity < 1e9, "perplexity %g", perplexity);
    cJSON_Delete(report);
    free(report_path);
    free(output);
    free(reports);
    free(alpaca);
    scratch_teardown(&s);
}
