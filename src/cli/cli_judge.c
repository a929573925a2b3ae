/* The refusal judge a command's options choose (judge and eval share it): a built-in judge
 * by name, or a model-as-judge opened from a folder. */
#include <string.h>

#include "agentlora/judge.h"
#include "cli/cli.h"

const char *al_cli_judge_problem(const struct al_cli_judge_choice *choice)
{
    bool model_named = strcmp(choice->name, AL_CLI_MODEL_JUDGE_NAME) == 0;
    if (model_named && !choice->model_dir)
        return "--judge " AL_CLI_MODEL_JUDGE_NAME " needs --judge-model DIR";
    if (choice->model_dir && choice->name_given && !model_named)
        return "--judge-model judges with the model; it cannot go with another --judge";
    if (!choice->model_dir && choice->template_name)
        return "the judge's chat format applies to --judge-model only";
    return NULL;
}

const struct al_judge *al_cli_judge_open(const struct al_cli_judge_choice *choice, const char *device,
                                         struct al_judge **opened)
{
    *opened = NULL;
    if (choice->model_dir)
        return *opened = al_judge_model_open(choice->model_dir, choice->template_name, device);
    return al_judge_by_name(choice->name);
}
