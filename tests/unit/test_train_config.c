/* The training config: one key table drives defaults, JSON, command-line overrides,
 * --help and the resume check. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/train_config.h"
#include "test_support.h"

static char *write_config(const char *json)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "run.json", json, strlen(json));
    free(dir);
    return path;
}

static bool error_mentions(const char *word)
{
    return strstr(al_error_message(), word) != NULL;
}

Test(train_config, defaults_are_the_documented_recipe)
{
    struct al_train_config c;
    al_train_config_defaults(&c);
    cr_assert_eq(c.lora_r, 16);
    cr_assert_eq(c.lora_alpha, 32.0);
    cr_assert_eq(c.lora_dropout, 0.0);
    cr_assert_str_eq(c.lora_targets, "all");
    cr_assert_eq(c.lr, 2e-4);
    cr_assert_str_eq(c.lr_scheduler, "cosine");
    cr_assert_eq(c.warmup_ratio, 0.03);
    cr_assert_eq(c.adam_beta1, 0.9);
    cr_assert_eq(c.adam_beta2, 0.999);
    cr_assert_eq(c.adam_epsilon, 1e-8);
    cr_assert_eq(c.weight_decay, 0.0);
    cr_assert_eq(c.max_grad_norm, 1.0);
    cr_assert_eq(c.gradient_checkpointing, false);
    cr_assert_eq(al_train_config_validate(&c), 0, "%s", al_error_message());
    struct al_lora_config lora;
    cr_assert_eq(al_train_config_lora(&c, &lora), 0);
    cr_assert_eq(lora.target_mask, AL_LORA_ALL_TARGETS, "all seven targets by default");
    struct al_schedule schedule;
    cr_assert_eq(al_train_config_schedule(&c, 1000, &schedule), 0);
    cr_assert_eq(schedule.kind, AL_SCHEDULE_COSINE);
    cr_assert_eq(schedule.warmup_steps, 30, "3%% of 1000 steps");
    cr_assert_eq(schedule.peak_lr, 2e-4);
    struct al_adamw_config adamw = al_train_config_adamw(&c);
    cr_assert_eq(adamw.beta2, 0.999f);
    cr_assert_eq(adamw.max_grad_norm, 1.0f);
}

Test(train_config, every_default_text_parses_with_its_type)
{
    int count = 0;
    const struct al_train_config_key *keys = al_train_config_keys(&count);
    cr_assert_gt(count, 30);
    struct al_train_config c;
    al_train_config_defaults(&c);
    for (int i = 0; i < count; i++)
        cr_assert_eq(al_train_config_set(&c, keys[i].name, keys[i].default_text), 0, "%s: %s", keys[i].name,
                     al_error_message());
}

Test(train_config, json_file_sets_keys)
{
    char *path = write_config("{\"model\": \"models/tiny\", \"lora_r\": 8, \"lr\": 5e-4, \"use_rslora\": true,"
                              " \"lr_scheduler\": \"linear\", \"lora_targets\": \"q_proj,v_proj\"}");
    struct al_train_config c;
    al_train_config_defaults(&c);
    cr_assert_eq(al_train_config_load_file(&c, path), 0, "%s", al_error_message());
    cr_assert_str_eq(c.model, "models/tiny");
    cr_assert_eq(c.lora_r, 8);
    cr_assert_eq(c.lr, 5e-4);
    cr_assert(c.use_rslora);
    cr_assert_eq(c.lora_alpha, 32.0, "keys absent from the file keep their defaults");
    cr_assert_eq(al_train_config_validate(&c), 0, "%s", al_error_message());
    free(path);
}

Test(train_config, unknown_json_key_is_named)
{
    char *path = write_config("{\"lora_rank\": 8}");
    struct al_train_config c;
    al_train_config_defaults(&c);
    cr_assert_eq(al_train_config_load_file(&c, path), -1);
    cr_assert(error_mentions("unknown key 'lora_rank'"), "%s", al_error_message());
    cr_assert(error_mentions(path), "the error names the file: %s", al_error_message());
    free(path);
}

Test(train_config, wrong_json_types_name_key_and_type)
{
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"lr\": \"fast\"}", "key 'lr' must be a number"},
        {"{\"lora_r\": 8.5}", "key 'lora_r' must be an integer"},
        {"{\"model\": 3}", "key 'model' must be a string"},
        {"{\"gradient_checkpointing\": 1}", "key 'gradient_checkpointing' must be a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_config(cases[i].json);
        struct al_train_config c;
        al_train_config_defaults(&c);
        cr_assert_eq(al_train_config_load_file(&c, path), -1, "%s", cases[i].json);
        cr_assert(error_mentions(cases[i].expect), "%s -> %s", cases[i].json, al_error_message());
        free(path);
    }
}

Test(train_config, command_line_overrides_the_file_wherever_it_appears)
{
    char *path = write_config("{\"lr\": 5e-4, \"lora_r\": 8, \"run_name\": \"from-file\"}");
    char *argv[] = {"--lr", "1e-3", "--config", path, "--lora-r=4", "--gradient_checkpointing", "--max_steps", "50"};
    struct al_train_config c;
    bool help = true;
    cr_assert_eq(al_train_config_from_args(&c, 8, argv, &help), 0, "%s", al_error_message());
    cr_assert(!help);
    cr_assert_eq(c.lr, 1e-3);
    cr_assert_eq(c.lora_r, 4);
    cr_assert_str_eq(c.run_name, "from-file");
    cr_assert(c.gradient_checkpointing, "a boolean option alone means true");
    cr_assert_eq(c.max_steps, 50);
    free(path);
}

Test(train_config, every_key_can_be_overridden_on_the_command_line)
{
    int count = 0;
    const struct al_train_config_key *keys = al_train_config_keys(&count);
    for (int i = 0; i < count; i++) {
        char option[80];
        snprintf(option, sizeof option, "--%s", keys[i].name);
        const char *value = keys[i].default_text;
        char *argv[] = {option, (char *)value};
        struct al_train_config c;
        bool help;
        cr_assert_eq(al_train_config_from_args(&c, 2, argv, &help), 0, "%s: %s", option, al_error_message());
    }
}

Test(train_config, bad_command_line_values_are_refused)
{
    struct al_train_config c;
    bool help;
    char *bad_type[] = {"--save_every", "often"};
    cr_assert_eq(al_train_config_from_args(&c, 2, bad_type, &help), -1);
    cr_assert(error_mentions("save_every") && error_mentions("integer"), "%s", al_error_message());
    char *unknown[] = {"--learning_rate", "1e-3"};
    cr_assert_eq(al_train_config_from_args(&c, 2, unknown, &help), -1);
    cr_assert(error_mentions("learning_rate"), "%s", al_error_message());
    char *missing[] = {"--lr"};
    cr_assert_eq(al_train_config_from_args(&c, 1, missing, &help), -1);
    char *out_of_range[] = {"--lora_dropout", "1.5"};
    cr_assert_eq(al_train_config_from_args(&c, 2, out_of_range, &help), -1);
    cr_assert(error_mentions("lora_dropout"), "%s", al_error_message());
    char *schedule[] = {"--lr_scheduler", "step"};
    cr_assert_eq(al_train_config_from_args(&c, 2, schedule, &help), -1);
    cr_assert(error_mentions("lr_scheduler"), "%s", al_error_message());
    char *targets[] = {"--lora_targets", "q_proj,wq"};
    cr_assert_eq(al_train_config_from_args(&c, 2, targets, &help), -1);
    cr_assert(error_mentions("wq"), "%s", al_error_message());
    char *help_args[] = {"--lr", "nonsense", "--help"};
    cr_assert_eq(al_train_config_from_args(&c, 3, help_args, &help), 0);
    cr_assert(help, "--help wins over everything else");
}

Test(train_config, help_lists_every_key_with_its_default)
{
    char *help = al_train_config_help("usage: agentlora train [--config FILE] [--key value ...]");
    cr_assert_not_null(help);
    int count = 0;
    const struct al_train_config_key *keys = al_train_config_keys(&count);
    for (int i = 0; i < count; i++) {
        char option[80], shown_default[1200];
        snprintf(option, sizeof option, "--%s ", keys[i].name);
        const char *quote = keys[i].type == AL_CONFIG_STRING ? "\"" : "";
        snprintf(shown_default, sizeof shown_default, "(default: %s%s%s)", quote, keys[i].default_text, quote);
        const char *line = strstr(help, option);
        cr_assert_not_null(line, "--help lacks %s", keys[i].name);
        const char *end = strchr(line, '\n');
        cr_assert(strstr(line, shown_default) && strstr(line, shown_default) < end, "%s: default not shown",
                  keys[i].name);
    }
    cr_assert(strstr(help, "(default: 2e-4)"), "lr's default as written in the table");
    free(help);
}

Test(train_config, json_round_trip_keeps_every_value)
{
    struct al_train_config a, b;
    al_train_config_defaults(&a);
    cr_assert_eq(al_train_config_set(&a, "lr", "0.00012345678901234567"), 0);
    cr_assert_eq(al_train_config_set(&a, "seed", "9007199254740991"), 0);
    cr_assert_eq(al_train_config_set(&a, "train_data", "data/\"quoted\".json"), 0);
    cr_assert_eq(al_train_config_set(&a, "use_rslora", "yes"), 0);
    cJSON *json = al_train_config_to_json(&a);
    al_train_config_defaults(&b);
    cr_assert_eq(al_train_config_apply_json(&b, json, "round trip"), 0, "%s", al_error_message());
    cJSON *again = al_train_config_to_json(&b);
    char *text_a = cJSON_PrintUnformatted(json), *text_b = cJSON_PrintUnformatted(again);
    cr_assert_str_eq(text_a, text_b);
    cr_assert_eq(b.lr, a.lr);
    cr_assert_eq(b.seed, 9007199254740991LL);
    free(text_a), free(text_b);
    cJSON_Delete(json), cJSON_Delete(again);
}

Test(train_config, resume_check_names_the_fixed_keys_that_differ)
{
    struct al_train_config a, b;
    al_train_config_defaults(&a);
    al_train_config_defaults(&b);
    const char *names[8];
    cr_assert_eq(al_train_config_fixed_differences(&a, &b, names, 8), 0);
    al_train_config_set(&b, "lora_targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
    cr_assert_eq(al_train_config_fixed_differences(&a, &b, names, 8), 0, "targets compare as sets");
    al_train_config_set(&b, "lr", "1e-3");      /* may change */
    al_train_config_set(&b, "save_every", "7"); /* may change */
    al_train_config_set(&b, "lora_r", "8");
    al_train_config_set(&b, "train_data", "other.jsonl");
    al_train_config_set(&b, "max_len", "512");
    int n = al_train_config_fixed_differences(&a, &b, names, 8);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "train_data");
    cr_assert_str_eq(names[1], "max_len");
    cr_assert_str_eq(names[2], "lora_r");
    const char *fixed[] = {"model", "lora_alpha", "seed", "lora_targets", "eval_data"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cr_assert(al_train_config_find_key(fixed[i])->fixed_on_resume, "%s", fixed[i]);
}
