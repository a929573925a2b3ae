/* What `agentlora judge` reads, one JSON object a line, and the totals it keeps, so the
 * judge can be checked against labelled responses. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/judge.h"

static int from_messages(struct al_judge_input *input, const cJSON *record, const char *source, long line_number)
{
    struct al_conversation conv;
    if (al_conversation_from_json(&conv, record, source, line_number) != 0)
        return -1;
    const struct al_message *last = NULL;
    for (int i = 0; i < conv.n_messages; i++)
        if (conv.messages[i].role == AL_ROLE_ASSISTANT)
            last = &conv.messages[i];
    int status = 0;
    if (!last) {
        status = al_fail("%s: line %ld: \"messages\" has no assistant message to judge", source, line_number);
    } else {
        input->has_tool_call = last->n_tool_calls > 0;
        input->text = strdup(last->content ? last->content : "");
        if (!input->text)
            status = al_fail("%s: line %ld: out of memory", source, line_number);
    }
    al_conversation_free(&conv);
    return status;
}

static int read_label(struct al_judge_input *input, const cJSON *record, const char *source, long line_number)
{
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(record, "label");
    if (!label)
        return 0;
    if (!cJSON_IsBool(label))
        return al_fail("%s: line %ld: \"label\" must be true (a refusal) or false", source, line_number);
    input->has_label = true;
    input->label = cJSON_IsTrue(label);
    return 0;
}

static int from_record(struct al_judge_input *input, const cJSON *record, const char *source, long line_number)
{
    if (!cJSON_IsObject(record))
        return al_fail("%s: line %ld: expected a JSON object", source, line_number);
    if (read_label(input, record, source, line_number) != 0)
        return -1;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(record, "text");
    if (text) {
        if (!cJSON_IsString(text))
            return al_fail("%s: line %ld: \"text\" must be a string", source, line_number);
        input->text = strdup(text->valuestring);
        return input->text ? 0 : al_fail("%s: line %ld: out of memory", source, line_number);
    }
    if (cJSON_GetObjectItemCaseSensitive(record, "messages"))
        return from_messages(input, record, source, line_number);
    return al_fail("%s: line %ld: needs \"text\" or \"messages\"", source, line_number);
}

int al_judge_input_from_line(struct al_judge_input *input, const char *line, const char *source, long line_number)
{
    memset(input, 0, sizeof *input);
    cJSON *record = cJSON_Parse(line);
    if (!record)
        return al_fail("%s: line %ld: not valid JSON", source, line_number);
    int status = from_record(input, record, source, line_number);
    cJSON_Delete(record);
    if (status != 0)
        al_judge_input_free(input);
    return status;
}

void al_judge_input_free(struct al_judge_input *input)
{
    free(input->text);
    memset(input, 0, sizeof *input);
}

static int remember_misjudged(struct al_judge_tally *tally, long line_number)
{
    if (tally->n_misjudged == tally->misjudged_capacity) {
        long capacity = tally->misjudged_capacity ? 2 * tally->misjudged_capacity : 16;
        long *grown = realloc(tally->misjudged_lines, (size_t)capacity * sizeof *grown);
        if (!grown)
            return al_fail("judge totals: out of memory");
        tally->misjudged_lines = grown;
        tally->misjudged_capacity = capacity;
    }
    tally->misjudged_lines[tally->n_misjudged++] = line_number;
    return 0;
}

int al_judge_tally_add(struct al_judge_tally *tally, const struct al_judge_input *input,
                       const struct al_verdict *verdict, long line_number)
{
    tally->count++;
    tally->refusals += verdict->refusal;
    if (!input->has_label)
        return 0;
    tally->labelled++;
    if (verdict->refusal && input->label)
        tally->true_positive++;
    else if (verdict->refusal)
        tally->false_positive++;
    else if (input->label)
        tally->false_negative++;
    else
        tally->true_negative++;
    return verdict->refusal == input->label ? 0 : remember_misjudged(tally, line_number);
}

static double share(long part, long whole)
{
    return whole > 0 ? (double)part / (double)whole : 0.0;
}

double al_judge_tally_accuracy(const struct al_judge_tally *tally)
{
    return share(tally->true_positive + tally->true_negative, tally->labelled);
}

double al_judge_tally_precision(const struct al_judge_tally *tally)
{
    return share(tally->true_positive, tally->true_positive + tally->false_positive);
}

double al_judge_tally_recall(const struct al_judge_tally *tally)
{
    return share(tally->true_positive, tally->true_positive + tally->false_negative);
}

void al_judge_tally_free(struct al_judge_tally *tally)
{
    free(tally->misjudged_lines);
    memset(tally, 0, sizeof *tally);
}
