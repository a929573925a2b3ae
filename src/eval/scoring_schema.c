/* Do a call's arguments satisfy its tool's schema? The subset of JSON Schema that
 * OpenAI-style tool definitions use: required keys, types, enums, nested properties and
 * array items. Anything else in a schema (descriptions, formats, bounds) is not checked. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/scoring.h"

static bool has_type(const cJSON *value, const char *type)
{
    if (strcmp(type, "string") == 0)
        return cJSON_IsString(value);
    if (strcmp(type, "number") == 0)
        return cJSON_IsNumber(value);
    if (strcmp(type, "integer") == 0)
        return cJSON_IsNumber(value) && isfinite(value->valuedouble) && floor(value->valuedouble) == value->valuedouble;
    if (strcmp(type, "boolean") == 0)
        return cJSON_IsBool(value);
    if (strcmp(type, "array") == 0)
        return cJSON_IsArray(value);
    if (strcmp(type, "object") == 0)
        return cJSON_IsObject(value);
    if (strcmp(type, "null") == 0)
        return cJSON_IsNull(value);
    return true; /* a type this checker does not know constrains nothing here */
}

/* "type" is a name or a list of names; absent means any type. */
static bool matches_declared_type(const cJSON *schema, const cJSON *value, const char **type_name)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    *type_name = "?";
    if (cJSON_IsString(type)) {
        *type_name = type->valuestring;
        return has_type(value, type->valuestring);
    }
    if (!cJSON_IsArray(type))
        return true;
    const cJSON *name;
    cJSON_ArrayForEach(name, type)
    {
        if (cJSON_IsString(name) && has_type(value, name->valuestring))
            return true;
    }
    *type_name = "one of the listed types";
    return false;
}

static bool in_enum(const cJSON *schema, const cJSON *value)
{
    const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    if (!cJSON_IsArray(allowed))
        return true;
    const cJSON *option;
    cJSON_ArrayForEach(option, allowed)
    {
        if (cJSON_Compare(option, value, 1))
            return true;
    }
    return false;
}

static bool check_value(const cJSON *schema, const cJSON *value, const char *path, char *problem, size_t size);

static bool check_object(const cJSON *schema, const cJSON *value, const char *path, char *problem, size_t size)
{
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(schema, "required");
    const cJSON *key;
    cJSON_ArrayForEach(key, required)
    {
        if (cJSON_IsString(key) && !cJSON_GetObjectItemCaseSensitive(value, key->valuestring)) {
            snprintf(problem, size, "missing required argument \"%s%s%s\"", path, *path ? "." : "", key->valuestring);
            return false;
        }
    }
    const cJSON *properties = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *additional = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
    const cJSON *member;
    cJSON_ArrayForEach(member, value)
    {
        char member_path[128];
        snprintf(member_path, sizeof member_path, "%s%s%s", path, *path ? "." : "", member->string);
        const cJSON *member_schema = cJSON_GetObjectItemCaseSensitive(properties, member->string);
        if (!member_schema) {
            if (cJSON_IsFalse(additional)) {
                snprintf(problem, size, "unknown argument \"%s\"", member_path);
                return false;
            }
            continue;
        }
        if (!check_value(member_schema, member, member_path, problem, size))
            return false;
    }
    return true;
}

static bool check_value(const cJSON *schema, const cJSON *value, const char *path, char *problem, size_t size)
{
    const char *type_name;
    if (!matches_declared_type(schema, value, &type_name)) {
        snprintf(problem, size, "argument \"%s\" should be %s", *path ? path : "(arguments)", type_name);
        return false;
    }
    if (!in_enum(schema, value)) {
        snprintf(problem, size, "argument \"%s\" is not one of the allowed values", path);
        return false;
    }
    if (cJSON_IsObject(value))
        return check_object(schema, value, path, problem, size);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
    if (cJSON_IsArray(value) && cJSON_IsObject(items)) {
        int index = 0;
        const cJSON *element;
        cJSON_ArrayForEach(element, value)
        {
            char element_path[128];
            snprintf(element_path, sizeof element_path, "%s[%d]", path, index++);
            if (!check_value(items, element, element_path, problem, size))
                return false;
        }
    }
    return true;
}

bool al_schema_check(const cJSON *schema, const cJSON *arguments, char *problem, size_t problem_size)
{
    if (problem_size > 0)
        problem[0] = '\0';
    if (!arguments) {
        snprintf(problem, problem_size, "arguments are not valid JSON");
        return false;
    }
    if (!cJSON_IsObject(arguments)) {
        snprintf(problem, problem_size, "arguments are not a JSON object");
        return false;
    }
    if (!schema)
        return true;
    return check_value(schema, arguments, "", problem, problem_size);
}

const cJSON *al_tool_definition(const cJSON *tools, const char *name)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools)
    {
        const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
        if (!function)
            function = tool; /* a flat {"name", "parameters"} definition */
        const cJSON *tool_name = cJSON_GetObjectItemCaseSensitive(function, "name");
        if (cJSON_IsString(tool_name) && name && strcmp(tool_name->valuestring, name) == 0)
            return function;
    }
    return NULL;
}
