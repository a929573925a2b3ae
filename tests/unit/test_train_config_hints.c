/* Config mistakes answered with what to do: the key a misspelt name meant, a YAML config,
 * a Hugging Face Hub id given as the model. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/train_config.h"
#include "test_support.h"
#include "train/train_config_hints.h"

static bool error_mentions(const char *text)
{
    return strstr(al_error_message(), text) != NULL;
}

Test(train_config_hints, an_unknown_key_suggests_the_nearest_one)
{
    struct al_train_config c;
    al_train_config_defaults(&c);
    cr_assert_eq(al_train_config_set(&c, "lora_rank", "8"), -1);
    cr_assert(error_mentions("unknown key 'lora_rank'; did you mean lora_r?"), "%s", al_error_message());
    cr_assert_str_eq(al_train_config_closest_key("lora_alpah"), "lora_alpha");
    cr_assert_str_eq(al_train_config_closest_key("warmup_ration"), "warmup_ratio");
    cr_assert_str_eq(al_train_config_closest_key("epoch"), "epochs");
    cr_assert_null(al_train_config_closest_key("colour_scheme"));
    char *argv[] = {"--lora-alpah", "16"};
    bool help = false;
    cr_assert_eq(al_train_config_from_args(&c, 2, argv, &help), -1);
    cr_assert(error_mentions("did you mean lora_alpha?"), "%s", al_error_message());
}

Test(train_config_hints, a_yaml_config_is_named_as_yaml_with_how_to_convert_it)
{
    char *dir = test_tmpdir();
    static const char yaml[] = "model: models/tiny\nlora_r: 8\n";
    char *path = test_write_file(dir, "run.yaml", yaml, strlen(yaml));
    struct al_train_config c;
    al_train_config_defaults(&c);
    cr_assert_eq(al_train_config_load_file(&c, path), -1);
    cr_assert(error_mentions("looks like YAML") && error_mentions("json.dump(yaml.safe_load"), "%s",
              al_error_message());
    free(path);
    /* the same text under a .json name is recognised too */
    path = test_write_file(dir, "run.json", yaml, strlen(yaml));
    cr_assert_eq(al_train_config_load_file(&c, path), -1);
    cr_assert(error_mentions("looks like YAML"), "%s", al_error_message());
    free(path);
    free(dir);
}

Test(train_config_hints, a_hub_id_is_answered_with_how_to_download_it)
{
    cr_assert_eq(al_train_config_refuse_hub_id("model", "HuggingFaceTB/SmolLM2-135M-Instruct"), -1);
    cr_assert(error_mentions("looks like a Hugging Face Hub id") &&
                  error_mentions("huggingface-cli download HuggingFaceTB/SmolLM2-135M-Instruct"),
              "%s", al_error_message());
    cr_assert_eq(al_train_config_refuse_hub_id("model", "data/demo-tokenizer"), 0, "an existing folder is a path");
    cr_assert_eq(al_train_config_refuse_hub_id("model", "./models/tiny"), 0);
    cr_assert_eq(al_train_config_refuse_hub_id("model", "/abs/models/tiny"), 0);
    cr_assert_eq(al_train_config_refuse_hub_id("model", "a/b/c"), 0);
}
