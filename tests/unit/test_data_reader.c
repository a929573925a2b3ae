/* The streaming readers: the AgentAlign JSON array, JSON Lines, generic JSON Lines, and
 * every kind of damaged or hostile file the brief names. Fixtures are written here, by
 * hand, so each test shows the exact bytes it feeds. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/log.h"
#include "test_support.h"

#define HARMFUL_RECORD                                                                                         \
    "{\"id\": \"h-1\", \"category\": \"cyber_crime\", \"sub_category\": \"ddos_attack\","                      \
    " \"pattern\": [\"Search.web_search\", \"System_Tools.execute_command\"], \"tools\": [],"                  \
    " \"messages\": [{\"role\": \"user\", \"content\": \"Knock the site offline.\"},"                          \
    " {\"role\": \"assistant\", \"content\": \"I can't help with that.\"}]}"

#define BENIGN_RECORD(ID)                                                                                      \
    "{\"id\": \"" ID "\", \"category\": \"benign\", \"pattern\": [\"Search.web_search\"],"                     \
    " \"tools\": [{\"type\": \"function\", \"category\": \"Search\", \"function\": {\"name\": \"look_up\","     \
    " \"description\": \"Search.\", \"parameters\": {\"type\": \"object\", \"properties\": {\"q\":"            \
    " {\"type\": \"string\"}}, \"required\": [\"q\"]}}}],"                                                     \
    " \"messages\": [{\"role\": \"user\", \"content\": \"Weather in Oslo?\"},"                                 \
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abcdefghi\","                  \
    " \"type\": \"function\", \"function\": {\"name\": \"look_up\", \"arguments\": \"{\\\"q\\\": \\\"oslo\\\"}\"}}]}," \
    " {\"role\": \"tool\", \"name\": \"look_up\", \"tool_call_id\": \"abcdefghi\", \"content\": \"{\\\"t\\\": 3}\"}," \
    " {\"role\": \"assistant\", \"content\": \"It is 3 degrees.\"}]}"

#define BAD_ROLE_RECORD                                                                                        \
    "{\"id\": \"bad\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"},"    \
    " {\"role\": \"wizard\", \"content\": \"poof\"}]}"

static char *write_fixture(const char *name, const char *text)
{
    char *dir = test_tmpdir();
    cr_assert_not_null(dir);
    char *path = test_write_file(dir, name, text, strlen(text));
    cr_assert_not_null(path);
    free(dir);
    return path;
}

/* Reads every record; returns the count, or -1 with the error message kept. */
static int read_all(const char *path, bool strict, struct al_load_summary *summary, enum al_data_format *format)
{
    struct al_reader_options options = {.strict = strict};
    struct al_reader *reader = al_reader_open(path, &options);
    if (!reader)
        return -1;
    if (format)
        *format = al_reader_format(reader);
    struct al_conversation conv;
    int got, count = 0;
    while ((got = al_reader_next(reader, &conv)) == 1) {
        count++;
        al_conversation_free(&conv);
    }
    if (summary)
        al_reader_take_summary(reader, summary);
    al_reader_close(reader);
    return got < 0 ? -1 : count;
}

static void quiet(void)
{
    al_log_set_level(AL_LOG_ERROR);
}

TestSuite(data_reader, .init = quiet);

Test(data_reader, json_array_yields_records_with_labels_and_counts)
{
    char *path = write_fixture("a.json", "[\n" HARMFUL_RECORD ",\n" BENIGN_RECORD("b-1") ",\n" BENIGN_RECORD("b-2") "\n]\n");
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader, "%s", al_error_message());
    cr_assert_eq(al_reader_format(reader), AL_DATA_JSON_ARRAY);

    struct al_conversation conv;
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.id, "h-1");
    cr_assert(conv.harmful);
    cr_assert_eq(conv.n_messages, 2);
    al_conversation_free(&conv);

    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.id, "b-1");
    cr_assert_not(conv.harmful);
    cr_assert_eq(conv.n_messages, 4);
    cr_assert_str_eq(conv.messages[1].tool_calls[0].id, "abcdefghi");
    size_t offset, length;
    long number;
    al_reader_last_record(reader, &offset, &length, &number);
    cr_assert_eq(number, 2);
    al_conversation_free(&conv);

    cr_assert_eq(al_reader_next(reader, &conv), 1);
    al_conversation_free(&conv);
    cr_assert_eq(al_reader_next(reader, &conv), 0, "the array has three records");
    cr_assert_eq(al_reader_next(reader, &conv), 0, "the end is sticky");

    const struct al_load_summary *summary = al_reader_summary(reader);
    cr_assert_eq(summary->records, 3);
    cr_assert_eq(summary->harmful, 1);
    cr_assert_eq(summary->benign, 2);
    cr_assert_eq(al_load_summary_category(summary, "benign"), 2);
    cr_assert_eq(al_load_summary_category(summary, "cyber_crime"), 1);
    cr_assert_eq(summary->skipped, 0);
    char *text = al_load_summary_format(summary);
    cr_assert_not_null(strstr(text, "harmful 1"), "%s", text);
    free(text);
    al_reader_close(reader);
    free(path);
}

Test(data_reader, record_byte_range_is_exactly_the_element)
{
    char *path = write_fixture("r.json", "  [ " HARMFUL_RECORD " ,\t" BENIGN_RECORD("b") "]");
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader);
    struct al_conversation conv;
    size_t offset, length;
    cr_assert_eq(al_reader_next(reader, &conv), 1);
    al_reader_last_record(reader, &offset, &length, NULL);
    cr_assert_eq(offset, 4);
    cr_assert_eq(length, strlen(HARMFUL_RECORD));
    al_conversation_free(&conv);
    al_reader_close(reader);
    free(path);
}

Test(data_reader, jsonl_and_generic_jsonl_are_detected)
{
    char *path = write_fixture("a.jsonl", HARMFUL_RECORD "\n\n" BENIGN_RECORD("b-1") "\r\n   \n" BENIGN_RECORD("b-2"));
    enum al_data_format format;
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, true, &summary, &format), 3, "%s", al_error_message());
    cr_assert_eq(format, AL_DATA_JSONL);
    cr_assert_eq(summary.harmful, 1);
    al_load_summary_free(&summary);
    free(path);

    path = write_fixture("g.jsonl",
                         "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                         "\"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}], \"tools\": []}\n"
                         "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                         "\"content\": \"hello\"}]}\n");
    cr_assert_eq(read_all(path, true, &summary, &format), 2, "%s", al_error_message());
    cr_assert_eq(format, AL_DATA_GENERIC_JSONL);
    cr_assert_eq(summary.unlabeled, 2);
    cr_assert_eq(summary.benign, 2);
    cr_assert_eq(summary.harmful, 0);
    al_load_summary_free(&summary);
    free(path);
}

Test(data_reader, jsonl_bad_line_names_record_and_line)
{
    char *path = write_fixture("bad.jsonl", HARMFUL_RECORD "\n\n{\"id\": \"x\", \"messages\": [}\n" BENIGN_RECORD("b"));
    cr_assert_eq(read_all(path, true, NULL, NULL), -1);
    const char *message = al_error_message();
    cr_assert_not_null(strstr(message, path), "%s", message);
    cr_assert_not_null(strstr(message, "record 2 (line 3)"), "%s", message);

    struct al_load_summary summary;
    cr_assert_eq(read_all(path, false, &summary, NULL), 2, "skip mode keeps the good lines");
    cr_assert_eq(summary.skipped, 1);
    al_load_summary_free(&summary);
    free(path);
}

Test(data_reader, unknown_role_is_skipped_or_fatal_by_strictness)
{
    char *path = write_fixture("role.json", "[" HARMFUL_RECORD "," BAD_ROLE_RECORD "," BENIGN_RECORD("b") "]");
    cr_assert_eq(read_all(path, true, NULL, NULL), -1, "strict mode stops at the bad record");
    const char *message = al_error_message();
    cr_assert_not_null(strstr(message, path), "%s", message);
    cr_assert_not_null(strstr(message, "record 2"), "%s", message);

    struct al_load_summary summary;
    cr_assert_eq(read_all(path, false, &summary, NULL), 2, "%s", al_error_message());
    cr_assert_eq(summary.skipped, 1);
    cr_assert_eq(summary.records, 2);
    cr_assert_eq(summary.n_skip_reasons, 1);
    cr_assert_not_null(strstr(summary.skip_reasons[0], "record 2"), "%s", summary.skip_reasons[0]);
    al_load_summary_free(&summary);
    free(path);
}

Test(data_reader, skip_reasons_keep_only_the_first_few)
{
    char *text = strdup("[");
    for (int i = 0; i < AL_SUMMARY_MAX_REASONS + 3; i++) {
        char *grown = al_strdup_printf("%s%s,", text, BAD_ROLE_RECORD);
        free(text);
        text = grown;
    }
    char *full = al_strdup_printf("%s%s]", text, HARMFUL_RECORD);
    char *path = write_fixture("many.json", full);
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, false, &summary, NULL), 1);
    cr_assert_eq(summary.skipped, AL_SUMMARY_MAX_REASONS + 3);
    cr_assert_eq(summary.n_skip_reasons, AL_SUMMARY_MAX_REASONS);
    cr_assert_not_null(strstr(summary.skip_reasons[0], "record 1"));
    al_load_summary_free(&summary);
    free(text);
    free(full);
    free(path);
}

Test(data_reader, truncated_array_is_an_error)
{
    /* Cut in the middle of the second record. */
    char *full = strdup("[" HARMFUL_RECORD ",\n" BENIGN_RECORD("b") "]");
    full[strlen(full) - 40] = '\0';
    char *path = write_fixture("cut.json", full);
    cr_assert_eq(read_all(path, false, NULL, NULL), -1, "truncation is fatal even in skip mode");
    cr_assert_not_null(strstr(al_error_message(), "truncated"), "%s", al_error_message());
    cr_assert_not_null(strstr(al_error_message(), "record 2"), "%s", al_error_message());
    cr_assert_not_null(strstr(al_error_message(), path), "%s", al_error_message());
    free(path);

    /* Complete records, but the closing bracket is missing. */
    path = write_fixture("open.json", "[" HARMFUL_RECORD ",\n" HARMFUL_RECORD "\n");
    cr_assert_eq(read_all(path, false, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "without a closing ']'"), "%s", al_error_message());
    free(path);

    /* The file ends inside a string. */
    path = write_fixture("string.json", "[{\"id\": \"unterminated");
    cr_assert_eq(read_all(path, false, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "never ends"), "%s", al_error_message());
    free(path);
    free(full);
}

Test(data_reader, garbage_between_and_after_elements_is_an_error)
{
    char *path = write_fixture("garbage.json", "[" HARMFUL_RECORD " oops " HARMFUL_RECORD "]");
    cr_assert_eq(read_all(path, false, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "after record 1"), "%s", al_error_message());
    free(path);

    path = write_fixture("trailing.json", "[" HARMFUL_RECORD "]\n{\"more\": 1}");
    cr_assert_eq(read_all(path, false, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "after the closing"), "%s", al_error_message());
    free(path);

    path = write_fixture("comma.json", "[" HARMFUL_RECORD ",]");
    cr_assert_eq(read_all(path, false, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "trailing ','"), "%s", al_error_message());
    free(path);
}

Test(data_reader, empty_and_non_json_files_are_errors)
{
    char *path = write_fixture("empty.json", "");
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert_not_null(strstr(al_error_message(), "empty"), "%s", al_error_message());
    free(path);

    path = write_fixture("blank.json", " \n\t\n");
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert_not_null(strstr(al_error_message(), "empty"), "%s", al_error_message());
    free(path);

    path = write_fixture("prose.txt", "Dear reader, this is not JSON.");
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert_not_null(strstr(al_error_message(), "not a data file"), "%s", al_error_message());
    cr_assert_not_null(strstr(al_error_message(), path), "%s", al_error_message());
    free(path);

    static const char binary[] = {'\x7f', 'E', 'L', 'F', 0, 1};
    char *dir = test_tmpdir();
    path = test_write_file(dir, "binary", binary, sizeof binary);
    cr_assert_null(al_reader_open(path, NULL));
    cr_assert_not_null(strstr(al_error_message(), "0x7f"), "%s", al_error_message());
    free(path);
    free(dir);

    cr_assert_null(al_reader_open("/nonexistent/data.json", NULL));
    cr_assert_not_null(strstr(al_error_message(), "/nonexistent/data.json"));
}

Test(data_reader, empty_array_reads_nothing_and_dataset_refuses_it)
{
    char *path = write_fixture("none.json", " [ \n ] ");
    cr_assert_eq(read_all(path, true, NULL, NULL), 0);
    struct al_dataset dataset;
    cr_assert_eq(al_dataset_load(&dataset, path, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "no records"), "%s", al_error_message());
    free(path);
}

Test(data_reader, every_record_bad_leaves_no_usable_records)
{
    char *path = write_fixture("allbad.json", "[" BAD_ROLE_RECORD ", 42, \"text\", null]");
    struct al_dataset dataset;
    cr_assert_eq(al_dataset_load(&dataset, path, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "no usable records (4 skipped"), "%s", al_error_message());
    free(path);
}

Test(data_reader, non_object_elements_are_record_errors)
{
    char *path = write_fixture("mixed.json", "[1, " HARMFUL_RECORD ", [\"x\"], \"s\", true]");
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, false, &summary, NULL), 1);
    cr_assert_eq(summary.skipped, 4);
    cr_assert_not_null(strstr(summary.skip_reasons[0], "record 1"), "%s", summary.skip_reasons[0]);
    cr_assert_not_null(strstr(summary.skip_reasons[1], "record 3"), "%s", summary.skip_reasons[1]);
    al_load_summary_free(&summary);
    free(path);
}

Test(data_reader, strings_with_brackets_quotes_and_escapes_do_not_confuse_the_splitter)
{
    const char *tricky = "[{\"id\": \"t\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\","
                         " \"content\": \"a ]} \\\"quoted ]\\\" {[ back\\\\\"}, {\"role\": \"assistant\","
                         " \"content\": \"\\\\\\\\\"}]}, " HARMFUL_RECORD "]";
    char *path = write_fixture("tricky.json", tricky);
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader);
    struct al_conversation conv;
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.messages[0].content, "a ]} \"quoted ]\" {[ back\\");
    cr_assert_str_eq(conv.messages[1].content, "\\\\");
    al_conversation_free(&conv);
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_str_eq(conv.id, "h-1");
    al_conversation_free(&conv);
    cr_assert_eq(al_reader_next(reader, &conv), 0);
    al_reader_close(reader);
    free(path);
}

Test(data_reader, deep_nesting_is_a_record_error_not_a_crash)
{
    enum { DEPTH = 100000 };
    const char *head = "[{\"id\": \"deep\", \"category\": \"benign\", \"extra\": ";
    const char *tail = ", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}, " HARMFUL_RECORD "]";
    size_t size = strlen(head) + 2 * DEPTH + strlen(tail) + 1;
    char *text = malloc(size);
    char *p = stpcpy(text, head);
    memset(p, '[', DEPTH);
    memset(p + DEPTH, ']', DEPTH);
    strcpy(p + 2 * DEPTH, tail);
    char *path = write_fixture("deep.json", text);
    struct al_load_summary summary;
    cr_assert_eq(read_all(path, false, &summary, NULL), 1, "%s", al_error_message());
    cr_assert_eq(summary.skipped, 1);
    cr_assert_not_null(strstr(summary.skip_reasons[0], "record 1"), "%s", summary.skip_reasons[0]);
    cr_assert_eq(read_all(path, true, NULL, NULL), -1);
    al_load_summary_free(&summary);
    free(text);
    free(path);
}

Test(data_reader, huge_string_is_read_whole)
{
    enum { HUGE = 8 << 20 };
    const char *head = "[{\"id\": \"big\", \"category\": \"benign\", \"messages\": [{\"role\": \"user\", \"content\": \"";
    const char *tail = "\"}, {\"role\": \"assistant\", \"content\": \"ok\"}]}]";
    char *text = malloc(strlen(head) + HUGE + strlen(tail) + 1);
    char *p = stpcpy(text, head);
    for (int i = 0; i < HUGE; i++)
        p[i] = (char)('a' + i % 26);
    strcpy(p + HUGE, tail);
    char *path = write_fixture("huge.json", text);
    struct al_reader *reader = al_reader_open(path, NULL);
    cr_assert_not_null(reader);
    struct al_conversation conv;
    cr_assert_eq(al_reader_next(reader, &conv), 1, "%s", al_error_message());
    cr_assert_eq(strlen(conv.messages[0].content), (size_t)HUGE);
    cr_assert_eq(conv.messages[0].content[HUGE - 1], (char)('a' + (HUGE - 1) % 26));
    al_conversation_free(&conv);
    al_reader_close(reader);
    free(text);
    free(path);
}

Test(data_reader, byte_order_mark_is_tolerated)
{
    char *path = write_fixture("bom.json", "\xEF\xBB\xBF[" HARMFUL_RECORD "]");
    cr_assert_eq(read_all(path, true, NULL, NULL), 1, "%s", al_error_message());
    free(path);
}

Test(data_reader, broken_tool_schema_names_the_record)
{
    const char *bad_tools = "[" HARMFUL_RECORD ", {\"id\": \"t\", \"category\": \"benign\", \"tools\": [{\"type\":"
                            " \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
                            " \"properties\": {}, \"required\": [7]}}}], \"messages\": [{\"role\":"
                            " \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}]";
    char *path = write_fixture("tools.json", bad_tools);
    cr_assert_eq(read_all(path, true, NULL, NULL), -1);
    cr_assert_not_null(strstr(al_error_message(), "record 2"), "%s", al_error_message());
    cr_assert_not_null(strstr(al_error_message(), "tool 0 (f)"), "%s", al_error_message());
    free(path);
}

Test(data_reader, tool_schema_check_rejects_each_kind_of_damage)
{
    static const char *bad[] = {
        "{\"tools\": 3}",
        "{\"tools\": [1]}",
        "{\"tools\": [{\"type\": \"retrieval\", \"function\": {\"name\": \"f\", \"parameters\": {}}}]}",
        "{\"tools\": [{\"type\": \"function\"}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"parameters\": {}}}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"array\"}}}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"required\": \"x\"}}}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"properties\": []}}}]}",
        "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}},"
        " {\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *json = cJSON_Parse(bad[i]);
        cr_assert_not_null(json);
        cr_assert_eq(al_tool_schemas_check(cJSON_GetObjectItem(json, "tools"), "x.json", 7), -1, "case %zu", i);
        cr_assert_not_null(strstr(al_error_message(), "x.json: record 7"), "%s", al_error_message());
        cJSON_Delete(json);
    }
    cr_assert_eq(al_tool_schemas_check(NULL, "x.json", 1), 0, "a record without tools is fine");
}

Test(data_reader, dataset_index_rereads_the_same_records)
{
    char *path = write_fixture("ds.json", "[" HARMFUL_RECORD "," BAD_ROLE_RECORD "," BENIGN_RECORD("b-1") "]");
    struct al_dataset dataset;
    cr_assert_eq(al_dataset_load(&dataset, path, NULL), 0, "%s", al_error_message());
    cr_assert_eq(dataset.n_records, 2);
    cr_assert_eq(dataset.summary.skipped, 1);
    cr_assert_eq(dataset.records[0].record_number, 1);
    cr_assert_eq(dataset.records[1].record_number, 3, "numbers stay those of the file");
    cr_assert(dataset.records[0].harmful);
    cr_assert_str_eq(dataset.records[1].id, "b-1");
    cr_assert_str_eq(dataset.summary.categories[dataset.records[0].category].name, "cyber_crime");

    struct al_conversation conv;
    cr_assert_eq(al_dataset_get(&dataset, 1, &conv), 0, "%s", al_error_message());
    cr_assert_str_eq(conv.id, "b-1");
    cr_assert_str_eq(conv.messages[3].content, "It is 3 degrees.");
    char *key = al_pattern_key(&conv, 3);
    cr_assert_str_eq(key, "Search.web_search");
    cr_assert_eq(dataset.records[1].pattern_hash, al_pattern_key_hash(key));
    free(key);
    al_conversation_free(&conv);
    cr_assert_eq(al_dataset_get(&dataset, 2, &conv), -1, "out of range");
    al_dataset_free(&dataset);

    struct al_reader_options strict = {.strict = true};
    cr_assert_eq(al_dataset_load(&dataset, path, &strict), -1);
    free(path);
}

Test(data_reader, pattern_key_joins_steps_or_falls_back_to_id)
{
    char *steps[] = {"Search.web_search", "Communication.send_email"};
    struct al_conversation conv = {.pattern = steps, .n_pattern = 2};
    char *key = al_pattern_key(&conv, 5);
    cr_assert_str_eq(key, "Search.web_search > Communication.send_email");
    free(key);
    conv.n_pattern = 0;
    conv.id = "abc";
    key = al_pattern_key(&conv, 5);
    cr_assert_str_eq(key, "id:abc");
    free(key);
    conv.id = NULL;
    key = al_pattern_key(&conv, 5);
    cr_assert_str_eq(key, "record:5");
    free(key);
    cr_assert_neq(al_pattern_key_hash("a > b"), al_pattern_key_hash("b > a"));
}
