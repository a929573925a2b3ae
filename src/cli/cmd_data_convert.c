/* agentlora data convert: any data file the reader accepts (AgentAlign array or JSONL,
 * messages JSONL, Alpaca, ShareGPT) to messages JSON Lines, one record per line, read and
 * checked exactly as training reads it. Training reads Alpaca and ShareGPT natively; the
 * conversion is for users who want to see, edit or share the messages form. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/dataset.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "cli/cli.h"

#define COMMAND "data convert"

void al_data_convert_usage(FILE *out)
{
    fprintf(out,
            "usage: agentlora data convert FILE --out OUT.jsonl [--strict] [--overwrite]\n\n"
            "Writes FILE's records as messages JSON Lines ({\"messages\", \"tools\", ...}, one record per\n"
            "line), read exactly as training reads them: AgentAlign JSON array or JSONL, messages JSONL,\n"
            "Alpaca ({\"instruction\", \"input\", \"output\"}, optional \"system\" and \"history\") and ShareGPT\n"
            "({\"conversations\": [{\"from\", \"value\"}]}, optional \"system\" and \"tools\"). Keys that are not\n"
            "the format's own (id, category, ...) are kept. Training, eval and data inspect read Alpaca\n"
            "and ShareGPT files directly; convert them to see or edit the messages form.\n\n"
            "  --out FILE     where the JSON Lines go (written whole, then renamed into place)\n"
            "  --strict       stop at the first malformed record (default: skip it, say why, go on)\n"
            "  --overwrite    replace OUT when it exists (default: refuse)\n\n"
            "exit status: 0 success, 1 bad input, 2 usage error\n");
}

struct convert_options {
    const char *data_path, *out_path;
    bool strict, overwrite;
};

static int parse_options(int argc, char **argv, struct convert_options *opt)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'}, {"strict", no_argument, NULL, 'S'},
        {"overwrite", no_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'o': opt->out_path = optarg; break;
        case 'S': opt->strict = true; break;
        case 'w': opt->overwrite = true; break;
        case 'h': al_data_convert_usage(stdout); return 1;
        default: return -1;
        }
    }
    if (optind + 1 != argc || !opt->out_path) {
        fprintf(stderr, "agentlora " COMMAND ": one FILE and --out FILE are required\n\n");
        return -1;
    }
    opt->data_path = argv[optind];
    return 0;
}

/* cJSON prints numbers from their double, so "maximum": 2.0 would come out as 2; the
 * parse kept such literals (al_json_mark_float_literals), and a raw item prints them as
 * written. */
static void keep_number_spelling(cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item) && item->valuestring)
            item->type = cJSON_Raw | (item->type & cJSON_StringIsConst);
        keep_number_spelling(item->child);
    }
}

/* One accepted record's text as a messages-form line (without the newline). */
static char *messages_line(const char *text, size_t length, const char *source, long record_number)
{
    cJSON *record = al_record_json_parse(text, length, NULL);
    if (!record) {
        al_error_context("%s: record %ld", source, record_number);
        return NULL;
    }
    enum al_record_format format = al_record_format_of(record);
    cJSON *converted = format == AL_RECORD_MESSAGES ? record : al_record_to_messages_form(record, format);
    char *line = NULL;
    if (converted) {
        keep_number_spelling(converted);
        line = cJSON_PrintUnformatted(converted);
        if (!line)
            al_fail("out of memory");
    } else {
        al_error_context("%s: record %ld", source, record_number);
    }
    if (converted != record)
        cJSON_Delete(converted);
    cJSON_Delete(record);
    return line;
}

/* A growing text: the whole output is written at once, atomically. */
struct text {
    char *data;
    size_t length, capacity;
};

static int text_append_line(struct text *t, const char *line)
{
    size_t n = strlen(line);
    if (t->length + n + 2 > t->capacity) {
        size_t capacity = t->capacity ? t->capacity : 1 << 16;
        while (t->length + n + 2 > capacity)
            capacity *= 2;
        char *grown = realloc(t->data, capacity);
        if (!grown)
            return al_fail("out of memory");
        t->data = grown;
        t->capacity = capacity;
    }
    memcpy(t->data + t->length, line, n);
    t->length += n;
    t->data[t->length++] = '\n';
    return 0;
}

static int convert_records(struct al_reader *reader, const struct al_mapped_file *file, struct text *out,
                           long *written)
{
    struct al_conversation conv;
    int status;
    while ((status = al_reader_next(reader, &conv)) == 1) {
        al_conversation_free(&conv);
        size_t offset, length;
        long record_number;
        al_reader_last_record(reader, &offset, &length, &record_number);
        char *line = messages_line((const char *)file->data + offset, length, file->path, record_number);
        int rc = line ? text_append_line(out, line) : -1;
        free(line);
        if (rc != 0)
            return -1;
        (*written)++;
    }
    return status;
}

static void print_result(const struct convert_options *opt, const struct al_load_summary *summary, long written)
{
    char *details = al_load_summary_format(summary);
    printf("%s: %ld records written as messages JSON Lines to %s\n%s", opt->data_path, written, opt->out_path,
           details ? details : "");
    free(details);
}

static int run_convert(const struct convert_options *opt)
{
    if (!opt->overwrite && al_file_exists(opt->out_path))
        return al_fail("%s exists; pass --overwrite to replace it", opt->out_path);
    struct al_mapped_file file = {0};
    if (al_file_map(&file, opt->data_path) != 0)
        return -1;
    struct al_reader_options reader_options = {.strict = opt->strict};
    struct al_reader *reader = al_reader_open_mapped(&file, &reader_options);
    struct text out = {0};
    long written = 0;
    int rc = reader ? convert_records(reader, &file, &out, &written) : -1;
    if (rc == 0 && written == 0)
        rc = al_fail("%s: no usable records (%ld skipped; first: %s)", opt->data_path,
                     al_reader_summary(reader)->skipped,
                     al_reader_summary(reader)->n_skip_reasons ? al_reader_summary(reader)->skip_reasons[0] : "-");
    if (rc == 0)
        rc = al_file_write_atomic(opt->out_path, out.data, out.length);
    if (rc == 0)
        print_result(opt, al_reader_summary(reader), written);
    free(out.data);
    if (reader)
        al_reader_close(reader);
    al_file_unmap(&file);
    return rc;
}

int al_cmd_data_convert(int argc, char **argv)
{
    struct convert_options opt = {0};
    int parsed = parse_options(argc, argv, &opt);
    if (parsed != 0) {
        if (parsed < 0)
            al_data_convert_usage(stderr);
        return parsed < 0 ? AL_EXIT_USAGE : AL_EXIT_OK;
    }
    return run_convert(&opt) == 0 ? AL_EXIT_OK : al_cli_report_error(COMMAND);
}
