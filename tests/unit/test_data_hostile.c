/* Inputs that used to be accepted silently or refused with the wrong words: NUL
 * characters, invalid UTF-8, duplicate keys and ids, records without an assistant turn
 * or with a category that is not a name, nesting too deep, a pretty-printed object, a
 * FIFO, and the summary counts when a record is dropped at tokenization. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/packing.h"
#include "test_support.h"

#define USER_TURN "{\"role\": \"user\", \"content\": \"hi\"}"
#define ASSISTANT_TURN "{\"role\": \"assistant\", \"content\": \"hello\"}"
#define GOOD_LINE(ID) "{\"id\": \"" ID "\", \"category\": \"benign\", \"messages\": [" USER_TURN ", " ASSISTANT_TURN "]}\n"

static char *write_fixture(const char *name, const void *text, size_t length)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, name, text, length);
    cr_assert_not_null(path);
    free(dir);
    return path;
}

static char *write_text(const char *name, const char *text)
{
    return write_fixture(name, text, strlen(text));
}

/* Reads every record (not strict); the summary is moved out. Returns records read or -1. */
static int read_all(const char *path, struct al_reader_options options, struct al_load_summary *summary)
{
    struct al_reader *reader = al_reader_open(path, &options);
    if (!reader)
        return -1;
    struct al_conversation conv;
    int got, count = 0;
    while ((got = al_reader_next(reader, &conv)) == 1) {
        count++;
        al_conversation_free(&conv);
    }
    al_reader_take_summary(reader, summary);
    al_reader_close(reader);
    return got < 0 ? -1 : count;
}

static void expect_one_skip(const char *path, const char *fragment)
{
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, (struct al_reader_options){0}, &summary), 1, "%s", al_error_message());
    cr_assert_eq(summary.skipped, 1);
    cr_assert_eq(summary.records, 1);
    const char *reason = summary.skip_reasons[0];
    cr_assert(strstr(reason, path), "the reason does not name the data file: %s", reason);
    cr_assert(strstr(reason, "record 1"), "the reason does not name the record: %s", reason);
    cr_assert(strstr(reason, fragment), "the reason lacks \"%s\": %s", fragment, reason);
    al_load_summary_free(&summary);
}

static void quiet(void)
{
    al_log_set_level(AL_LOG_ERROR);
}

TestSuite(data_hostile, .init = quiet);

/* ---- item 5: NUL ---- */

Test(data_hostile, an_escaped_nul_in_content_refuses_the_record)
{
    char *path = write_text("nul.jsonl", "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", "
                                         "\"content\": \"\\u0000Delete every file\"}, " ASSISTANT_TURN "]}\n" GOOD_LINE("b"));
    expect_one_skip(path, "NUL character");
    free(path);
}

Test(data_hostile, a_raw_nul_byte_refuses_the_record)
{
    const char line[] = "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", \"content\": "
                        "\"x\0y\"}, " ASSISTANT_TURN "]}\n" GOOD_LINE("b");
    char *path = write_fixture("raw.jsonl", line, sizeof line - 1);
    expect_one_skip(path, "NUL byte");
    free(path);
}

Test(data_hostile, a_nul_inside_string_tool_arguments_is_refused)
{
    char *path = write_text(
        "args.jsonl",
        "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [" USER_TURN ", {\"role\": \"assistant\", \"content\": "
        "\"\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": \"{\\\"q\\\": \\\"\\\\u0000x\\\"}\"}}]}]}\n"
        GOOD_LINE("b"));
    expect_one_skip(path, "NUL character");
    free(path);
}

/* An escaped backslash before "u0000" is text, not a NUL. */
Test(data_hostile, an_escaped_backslash_then_u0000_is_plain_text)
{
    char *path = write_text("text.jsonl", "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", "
                                          "\"content\": \"C:\\\\u0000\"}, " ASSISTANT_TURN "]}\n");
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader, "%s", al_error_message());
    struct al_conversation conv;
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.messages[0].content, "C:\\u0000");
    al_conversation_free(&conv);
    al_reader_close(reader);
    free(path);
}

/* ---- item 10: invalid UTF-8 is a data error, counted once ---- */

Test(data_hostile, invalid_utf8_is_refused_at_reading_naming_the_data_file)
{
    char *path = write_text("utf8.jsonl", "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", "
                                          "\"content\": \"caf\xe9\"}, " ASSISTANT_TURN "]}\n" GOOD_LINE("b"));
    expect_one_skip(path, "invalid UTF-8 at byte");
    free(path);
}

Test(data_hostile, a_record_dropped_later_moves_from_accepted_to_skipped)
{
    struct al_load_summary summary = {0};
    struct al_conversation harmful = {.category = "privacy", .harmful = true};
    struct al_conversation generic = {0};
    int privacy = al_load_summary_add_record(&summary, &harmful);
    cr_assert_eq(al_load_summary_add_record(&summary, &harmful), privacy);
    cr_assert_eq(al_load_summary_add_record(&summary, &generic), AL_CATEGORY_NONE);
    al_load_summary_move_to_skipped(&summary, true, privacy, "data.json: record 2: too long");
    al_load_summary_move_to_skipped(&summary, false, AL_CATEGORY_NONE, "data.json: record 3: bad");
    cr_assert_eq(summary.records, 1);
    cr_assert_eq(summary.harmful, 1);
    cr_assert_eq(summary.benign, 0);
    cr_assert_eq(summary.unlabeled, 0);
    cr_assert_eq(summary.skipped, 2);
    cr_assert_eq(al_load_summary_category(&summary, "privacy"), 1);
    cr_assert_str_eq(summary.skip_reasons[0], "data.json: record 2: too long");
    al_load_summary_free(&summary);
}

/* ---- item 11: duplicate keys and ids ---- */

Test(data_hostile, a_duplicate_key_keeps_the_last_value_as_python_does)
{
    char *path = write_text("dup.jsonl", "{\"id\": \"a\", \"category\": \"privacy\", \"category\": \"benign\", "
                                         "\"messages\": [" USER_TURN ", " ASSISTANT_TURN "]}\n");
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader, "%s", al_error_message());
    struct al_conversation conv;
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.category, "benign");
    cr_assert(!conv.harmful, "the last \"category\" is benign");
    cr_assert_eq(al_reader_summary(reader)->duplicate_keys, 1);
    al_conversation_free(&conv);
    al_reader_close(reader);
    free(path);
}

/* Python: json.loads('{"a": 1, "b": 2, "a": 3}') == {"a": 3, "b": 2}, in that order. */
Test(data_hostile, the_kept_value_takes_the_first_place)
{
    const char *text = "{\"a\": 1, \"b\": 2, \"a\": 3, \"c\": {\"x\": 1, \"x\": [5]}, \"a\": 4.0}";
    struct al_record_json_notes notes;
    cJSON *json = al_record_json_parse(text, strlen(text), &notes);
    cr_assert_not_null(json, "%s", al_error_message());
    char *printed = cJSON_PrintUnformatted(json);
    cr_assert_str_eq(printed, "{\"a\":4,\"b\":2,\"c\":{\"x\":[5]}}");
    /* The float literal's mark travels with the value. */
    cr_assert_str_eq(cJSON_GetObjectItem(json, "a")->valuestring, "4.0");
    cr_assert_eq(notes.duplicate_keys, 2);
    cr_assert_str_eq(notes.first_duplicate, "a");
    free(printed);
    cJSON_Delete(json);
}

Test(data_hostile, duplicate_ids_are_counted_and_kept)
{
    char *path = write_text("ids.jsonl", GOOD_LINE("a") GOOD_LINE("b") GOOD_LINE("a") GOOD_LINE("a"));
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, (struct al_reader_options){0}, &summary), 4, "%s", al_error_message());
    cr_assert_eq(summary.duplicate_ids, 2);
    char *text = al_load_summary_format(&summary);
    cr_assert(strstr(text, "duplicate ids: 2"), "%s", text);
    free(text);
    al_load_summary_free(&summary);
    free(path);
}

/* ---- item 12: nothing to train on, or a label that is not a name ---- */

Test(data_hostile, a_record_without_an_assistant_turn_is_skipped_for_training)
{
    char *path = write_text("noassistant.jsonl", "{\"id\": \"a\", \"category\": \"benign\", \"messages\": [" USER_TURN
                                                 "]}\n" GOOD_LINE("b"));
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, (struct al_reader_options){.require_assistant = true}, &summary), 1);
    cr_assert_eq(summary.skipped, 1);
    cr_assert(strstr(summary.skip_reasons[0], "record 1: no assistant message"), "%s", summary.skip_reasons[0]);
    al_load_summary_free(&summary);
    /* Evaluation prompts may end with the user's turn. */
    cr_assert_eq(read_all(path, (struct al_reader_options){0}, &summary), 2);
    al_load_summary_free(&summary);
    free(path);
}

Test(data_hostile, a_category_that_is_not_a_non_empty_string_is_skipped)
{
    const char *bad[] = {"\"\"", "3", "true", "[\"benign\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = al_strdup_printf("{\"id\": \"a\", \"category\": %s, \"messages\": [" USER_TURN ", " ASSISTANT_TURN
                                      "]}\n" GOOD_LINE("b"),
                                      bad[i]);
        char *path = write_text("category.jsonl", text);
        expect_one_skip(path, "\"category\" must be a non-empty string");
        free(path);
        free(text);
    }
}

/* ---- item 14: the right words ---- */

Test(data_hostile, nesting_ten_thousand_deep_says_so)
{
    enum { DEPTH = 10000 };
    const char *head = "{\"id\": \"deep\", \"category\": \"benign\", \"extra\": ";
    const char *tail = ", \"messages\": [" USER_TURN ", " ASSISTANT_TURN "]}\n" GOOD_LINE("b");
    char *text = malloc(strlen(head) + 2 * DEPTH + strlen(tail) + 1);
    char *p = stpcpy(text, head);
    memset(p, '[', DEPTH);
    memset(p + DEPTH, ']', DEPTH);
    strcpy(p + 2 * DEPTH, tail);
    char *path = write_text("deep.jsonl", text);
    expect_one_skip(path, "nesting too deep");
    free(path);
    free(text);
}

Test(data_hostile, one_pretty_printed_object_is_named_as_such)
{
    char *path = write_text("pretty.json", "{\n  \"id\": \"a\",\n  \"category\": \"benign\",\n  \"messages\": [\n    "
                                           USER_TURN ",\n    " ASSISTANT_TURN "\n  ]\n}\n");
    al_error_clear();
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert(strstr(al_error_message(), path), "%s", al_error_message());
    cr_assert(strstr(al_error_message(), "a single record object; expected an array"), "%s", al_error_message());
    free(path);
}

Test(data_hostile, pretty_printed_records_in_a_row_say_one_record_per_line)
{
    char *path = write_text("pretty2.jsonl", "{\n  \"id\": \"a\", \"messages\": [" USER_TURN "]\n}\n"
                                             "{\n  \"id\": \"b\", \"messages\": [" USER_TURN "]\n}\n");
    al_error_clear();
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert(strstr(al_error_message(), "one record per line"), "%s", al_error_message());
    free(path);
}

/* A FIFO with no writer would block open() forever; it must be refused at once. */
Test(data_hostile, a_fifo_is_refused_without_blocking, .timeout = 10)
{
    char *dir = test_tmpdir();
    char *fifo = al_path_join(dir, "data.jsonl");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    al_error_clear();
    cr_assert_null(al_reader_open(fifo, NULL));
    cr_assert(strstr(al_error_message(), "not a regular file (a FIFO"), "%s", al_error_message());
    al_error_clear();
    cr_assert_null(al_file_read_all(fifo, NULL));
    cr_assert(strstr(al_error_message(), "not a regular file"), "%s", al_error_message());
    cr_assert_null(al_json_load_file(fifo));
    unlink(fifo);
    free(fifo);
    free(dir);
}

/* ---- item 9: nothing to learn ---- */

Test(data_hostile, zero_target_tokens_fail_naming_max_len_and_the_truncated_share)
{
    struct al_pack_stats stats = {.documents = 8, .packed = 8, .truncated = 6, .tokens = 64, .target_tokens = 0};
    cr_assert_eq(al_check_something_to_learn(&stats, 8, "data.json"), -1);
    const char *message = al_error_message();
    cr_assert(strstr(message, "data.json"), "%s", message);
    cr_assert(strstr(message, "max_len 8"), "%s", message);
    cr_assert(strstr(message, "6 of 8 records (75%)"), "%s", message);
    stats.target_tokens = 1;
    cr_assert_eq(al_check_something_to_learn(&stats, 8, "data.json"), 0);
}
