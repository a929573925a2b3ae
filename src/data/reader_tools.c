/* Checks the OpenAI-style tool schemas a record offers the model. The chat templates
 * render them verbatim, so a schema without a name or parameters would silently teach
 * the model a broken tool; catching it here names the record instead. Keys beyond the
 * ones checked are tolerated (AgentAlign's schemas carry a sibling "category"). */
#include <cjson/cJSON.h>
#include <string.h>

#include "agentlora/dataset.h"
#include "agentlora/error.h"

/* "required" must list names, but a name missing from "properties" is tolerated: the
 * released AgentAlign schemas contain such entries (place_order_meituan requires
 * "items" without describing it), and rendering passes the schema through verbatim. */
static int check_required(const cJSON *parameters, const char *name, const char *source, long record_number,
                          int index)
{
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(parameters, "required");
    if (!required)
        return 0;
    if (!cJSON_IsArray(required))
        return al_fail("%s: record %ld: tool %d (%s): \"required\" is not a list", source, record_number, index,
                       name);
    const cJSON *key;
    cJSON_ArrayForEach(key, required)
    {
        if (!cJSON_IsString(key))
            return al_fail("%s: record %ld: tool %d (%s): \"required\" holds a non-string", source, record_number,
                           index, name);
    }
    return 0;
}

static int check_parameters(const cJSON *parameters, const char *name, const char *source, long record_number,
                            int index)
{
    if (!cJSON_IsObject(parameters))
        return al_fail("%s: record %ld: tool %d (%s): \"parameters\" is missing or not an object", source,
                       record_number, index, name);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(parameters, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "object") == 0))
        return al_fail("%s: record %ld: tool %d (%s): parameters type must be \"object\"", source, record_number,
                       index, name);
    const cJSON *properties = cJSON_GetObjectItemCaseSensitive(parameters, "properties");
    if (properties && !cJSON_IsObject(properties))
        return al_fail("%s: record %ld: tool %d (%s): \"properties\" is not an object", source, record_number,
                       index, name);
    return check_required(parameters, name, source, record_number, index);
}

static int check_schema(const cJSON *schema, const char *source, long record_number, int index)
{
    if (!cJSON_IsObject(schema))
        return al_fail("%s: record %ld: tool %d is not an object", source, record_number, index);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)
        return al_fail("%s: record %ld: tool %d: \"type\" must be \"function\"", source, record_number, index);
    const cJSON *function = cJSON_GetObjectItemCaseSensitive(schema, "function");
    if (!cJSON_IsObject(function))
        return al_fail("%s: record %ld: tool %d: \"function\" is missing or not an object", source, record_number,
                       index);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0')
        return al_fail("%s: record %ld: tool %d: the function has no name", source, record_number, index);
    const cJSON *description = cJSON_GetObjectItemCaseSensitive(function, "description");
    if (description && !cJSON_IsString(description))
        return al_fail("%s: record %ld: tool %d (%s): \"description\" is not a string", source, record_number,
                       index, name->valuestring);
    return check_parameters(cJSON_GetObjectItemCaseSensitive(function, "parameters"), name->valuestring, source,
                            record_number, index);
}

static const char *tool_name(const cJSON *schema)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(schema, "function"), "name")
        ->valuestring;
}

/* Two tools with one name would make a tool call ambiguous. Runs after every schema
 * was checked, so each one has a name. */
static int check_unique_names(const cJSON *tools, const char *source, long record_number)
{
    int index = 0;
    const cJSON *first;
    cJSON_ArrayForEach(first, tools)
    {
        for (const cJSON *second = first->next; second; second = second->next)
            if (strcmp(tool_name(first), tool_name(second)) == 0)
                return al_fail("%s: record %ld: tool %d: the name \"%s\" is offered twice", source,
                               record_number, index, tool_name(first));
        index++;
    }
    return 0;
}

int al_tool_schemas_check(const cJSON *tools, const char *source, long record_number)
{
    if (!tools)
        return 0;
    if (!cJSON_IsArray(tools))
        return al_fail("%s: record %ld: \"tools\" is not a list", source, record_number);
    int index = 0;
    const cJSON *schema;
    cJSON_ArrayForEach(schema, tools)
    {
        if (check_schema(schema, source, record_number, index) != 0)
            return -1;
        index++;
    }
    return check_unique_names(tools, source, record_number);
}
