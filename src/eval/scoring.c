/* One item's helpfulness: its first tool call against the reference trajectory's first
 * call, on the four criteria listed in scoring.h. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/scoring.h"

/* The criteria count equally: name, schema validity, argument values, and answering. */
#define CRITERIA_COUNT 4.0

const struct al_tool_call *al_reference_first_call(const struct al_conversation *reference)
{
    if (!reference)
        return NULL;
    for (int i = 0; i < reference->n_messages; i++) {
        const struct al_message *message = &reference->messages[i];
        if (message->role == AL_ROLE_ASSISTANT && message->n_tool_calls > 0)
            return &message->tool_calls[0];
    }
    return NULL;
}

static void check_arguments(const struct al_parsed_call *call, const cJSON *tools, struct al_call_score *out)
{
    if (call->malformed) {
        snprintf(out->problem, sizeof out->problem, "the call is not valid JSON");
        return;
    }
    const cJSON *tool = al_tool_definition(tools, call->name);
    if (tools && !tool) {
        snprintf(out->problem, sizeof out->problem, "no tool named \"%s\" in the record's tools", call->name);
        return;
    }
    const cJSON *schema = tool ? cJSON_GetObjectItemCaseSensitive(tool, "parameters") : NULL;
    out->arguments_valid = al_schema_check(schema, call->arguments, out->problem, sizeof out->problem);
}

void al_score_tool_response(const struct al_parsed_calls *calls, const struct al_conversation *reference,
                            bool refusal, struct al_call_score *out)
{
    memset(out, 0, sizeof *out);
    out->refusal = refusal;
    const struct al_tool_call *expected = al_reference_first_call(reference);
    const struct al_parsed_call *call = calls && calls->n_calls > 0 ? &calls->calls[0] : NULL;
    out->has_reference = expected != NULL;
    out->has_call = call != NULL;
    if (call && expected) {
        out->name_match = !call->malformed && strcmp(call->name, expected->name) == 0;
        check_arguments(call, reference->tools, out);
        if (out->name_match && call->arguments)
            out->argument_share = al_argument_match_share(call->arguments, expected->arguments);
    } else if (!call) {
        snprintf(out->problem, sizeof out->problem, "no tool call");
    } else {
        snprintf(out->problem, sizeof out->problem, "the reference has no tool call");
    }
    out->score = ((double)out->name_match + (double)out->arguments_valid + out->argument_share + (double)!refusal) /
                 CRITERIA_COUNT;
    out->full = out->name_match && out->arguments_valid && out->argument_share == 1.0 && !refusal;
}
