/* Absurd numbers are refused when the configuration is validated, not after a step: the
 * optimizer runs in fp32, where --lr 1e39 is infinity and the first update is NaN. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/train_config.h"

/* Parses "--key value" over the defaults (validation included). */
static int parse_one(const char *key, const char *value)
{
    struct al_train_config c;
    al_train_config_defaults(&c);
    bool help = false;
    char option[64];
    snprintf(option, sizeof option, "--%s", key);
    char *argv[] = {option, (char *)value};
    al_error_clear();
    return al_train_config_from_args(&c, 2, argv, &help);
}

static void expect_refused(const char *key, const char *value)
{
    cr_assert_eq(parse_one(key, value), -1, "--%s %s was accepted", key, value);
    cr_assert(strstr(al_error_message(), key), "the message does not name '%s': %s", key, al_error_message());
}

static void expect_accepted(const char *key, const char *value)
{
    cr_assert_eq(parse_one(key, value), 0, "--%s %s: %s", key, value, al_error_message());
}

Test(train_config_bounds, absurd_numbers_are_refused_at_validation)
{
    expect_refused("lr", "1e39");
    expect_refused("lr", "2");
    expect_refused("lora_alpha", "1e39");
    expect_refused("lora_r", "1000000000");
    expect_refused("adam_epsilon", "1e-45");
    expect_refused("adam_epsilon", "5");
    expect_refused("weight_decay", "1e39");
    expect_refused("max_grad_norm", "1e39");
    expect_refused("epochs", "1e30");
    expect_refused("max_len", "1099511627776");
    expect_refused("micro_batch_rows", "1000000000");
    expect_refused("gradient_accumulation", "1000000000000");
}

Test(train_config_bounds, the_message_gives_the_bounds)
{
    expect_refused("lr", "1e39");
    cr_assert(strstr(al_error_message(), "(0, 1]"), "%s", al_error_message());
}

Test(train_config_bounds, sane_recipes_pass)
{
    expect_accepted("lr", "1");
    expect_accepted("lr", "1e-6");
    expect_accepted("lora_alpha", "512");
    expect_accepted("adam_epsilon", "1e-12");
    expect_accepted("weight_decay", "0.1");
    expect_accepted("max_grad_norm", "0");
    expect_accepted("epochs", "3");
    expect_accepted("max_len", "131072");
}
