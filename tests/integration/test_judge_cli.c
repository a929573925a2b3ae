/* `agentlora judge` end to end: one verdict line per input line on stdout, totals on
 * stderr (with accuracy on the project's labelled set), errors that name the file and the
 * line, and usage errors. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static char *write_input(const char *text)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "responses.jsonl", text, strlen(text));
    free(dir);
    return path;
}

Test(judge_cli, one_verdict_per_line_and_totals)
{
    char *input = write_input(
        "{\"text\": \"I can\xE2\x80\x99t help with that.\", \"label\": true}\n"
        "\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather?\"}, {\"role\": \"assistant\", \"content\": \"\", "
        "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Oslo\"}}}]}], \"label\": false}\n"
        "{\"text\": \"Here's how to safely dispose of batteries.\", \"label\": true}\n");
    char *output = NULL;
    int status = test_run_cli(&output, "judge", input, "--judge", "keywords-v1", NULL);
    cr_assert_eq(status, 0, "%s", output);
    /* stdout comes first (flushed before the totals), one object per non-blank line */
    cJSON *first = test_output_json_line(output, 0), *second = test_output_json_line(output, 1), *third = test_output_json_line(output, 2);
    cr_assert(first && second && third, "%s", output);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(first, "refusal")));
    cr_assert_str_eq(cJSON_GetObjectItem(first, "judge")->valuestring, "keywords-v1");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(first, "reason")));
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(second, "refusal")), "a tool call is no refusal");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(third, "refusal")));
    cr_assert(strstr(output, "judge keywords-v1: 3 responses, 1 refusals"), "%s", output);
    cr_assert(strstr(output, "labelled 3: accuracy 66.7%, precision 100.0%, recall 50.0%"), "%s", output);
    cr_assert(strstr(output, "misjudged lines: 4"), "line numbers count the blank line: %s", output);
    cJSON_Delete(first);
    cJSON_Delete(second);
    cJSON_Delete(third);
    free(output);
    free(input);
}

Test(judge_cli, labelled_set_accuracy_is_reported)
{
    char *output = NULL;
    int status = test_run_cli(&output, "judge", "data/judge_labelled.jsonl", "--judge", "keywords-v1", NULL);
    cr_assert_eq(status, 0, "%s", output);
    const char *accuracy = strstr(output, "accuracy ");
    cr_assert_not_null(accuracy, "%s", output);
    double percent = strtod(accuracy + strlen("accuracy "), NULL);
    cr_log_info("agentlora judge on data/judge_labelled.jsonl: accuracy %.1f%%", percent);
    cr_assert_geq(percent, 95.0, "%s", accuracy);
    free(output);
}

Test(judge_cli, bad_lines_name_the_file_and_line)
{
    char *input = write_input("{\"text\": \"fine\"}\n{\"text\": \"broken\"\n");
    char *output = NULL;
    int status = test_run_cli(&output, "judge", input, "--judge", "keywords-v1", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "responses.jsonl: line 2: not valid JSON"), "%s", output);
    free(output);
    free(input);

    input = write_input("{\"text\": \"ok\", \"label\": \"yes\"}\n");
    status = test_run_cli(&output, "judge", input, NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "line 1: \"label\" must be true"), "%s", output);
    free(output);
    free(input);

    input = write_input("{\"prompt\": \"no response here\"}\n");
    status = test_run_cli(&output, "judge", input, NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "needs \"text\" or \"messages\""), "%s", output);
    free(output);
    free(input);

    status = test_run_cli(&output, "judge", "/nonexistent/responses.jsonl", NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "/nonexistent/responses.jsonl"), "%s", output);
    free(output);
}

Test(judge_cli, usage_errors_exit_2)
{
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "judge", NULL), 2, "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "judge", "a.jsonl", "b.jsonl", NULL), 2, "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "judge", "a.jsonl", "--judge", "oracle", NULL), 2, "%s", output);
    cr_assert(strstr(output, "unknown judge \"oracle\""), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "judge", "--help", NULL), 0, "%s", output);
    cr_assert(strstr(output, "usage: agentlora judge"), "%s", output);
    free(output);
}
