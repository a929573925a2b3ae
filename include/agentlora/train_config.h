/* The training configuration: one table of keys (name, type, default, help) drives the
 * JSON config file, the `--key value` command-line overrides and the --help text, so the
 * three can never disagree.
 *
 * Precedence: built-in defaults < the JSON file (--config FILE) < command-line overrides.
 * An unknown key is an error naming it; a value of the wrong type is an error naming the
 * key and the type it expects. Integers are whole numbers within +-2^53 (JSON numbers
 * are doubles; larger integers would not survive the round trip through a file). */
#ifndef AGENTLORA_TRAIN_CONFIG_H
#define AGENTLORA_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agentlora/lora.h"
#include "agentlora/optimizer.h"
#include "agentlora/schedule.h"

struct cJSON;

#define AL_CONFIG_PATH_MAX 1024
#define AL_CONFIG_WORD_MAX 64

struct al_train_config {
    /* model and data */
    char model[AL_CONFIG_PATH_MAX];
    char train_data[AL_CONFIG_PATH_MAX];
    char eval_data[AL_CONFIG_PATH_MAX];
    int64_t max_len;
    double eval_fraction;
    char harmful_benign_ratio[AL_CONFIG_WORD_MAX];
    char ping_prefixes[AL_CONFIG_PATH_MAX];
    char ping_mode[AL_CONFIG_WORD_MAX];
    char ping_targets[AL_CONFIG_WORD_MAX];
    int64_t seed;
    char chat_format[AL_CONFIG_WORD_MAX];
    bool last_turn_only;
    bool arguments_as_strings;
    bool strict_data;
    /* LoRA */
    int64_t lora_r;
    double lora_alpha;
    double lora_dropout;
    char lora_targets[AL_CONFIG_PATH_MAX];
    bool use_rslora;
    char init_adapter[AL_CONFIG_PATH_MAX];
    /* optimisation */
    double lr;
    char lr_scheduler[AL_CONFIG_WORD_MAX];
    double warmup_ratio;
    int64_t warmup_steps;
    double adam_beta1;
    double adam_beta2;
    double adam_epsilon;
    double weight_decay;
    double max_grad_norm;
    int64_t micro_batch_rows;
    int64_t gradient_accumulation;
    int64_t max_steps;
    double epochs;
    bool gradient_checkpointing;
    int64_t max_nonfinite_steps;
    /* output, logging, resume */
    char output_dir[AL_CONFIG_PATH_MAX];
    char run_name[AL_CONFIG_PATH_MAX];
    int64_t save_every;
    int64_t keep_last;
    int64_t log_every;
    int64_t eval_every;
    char device[AL_CONFIG_WORD_MAX];
    char resume[AL_CONFIG_PATH_MAX];
    bool overwrite;
    char skip_batches[AL_CONFIG_PATH_MAX];
    /* generation eval and the misalignment alarm */
    int64_t gen_eval_every;
    int64_t gen_eval_items;
    int64_t gen_eval_max_new_tokens;
    char gen_eval_judge[AL_CONFIG_WORD_MAX];
    char gen_eval_judge_model[AL_CONFIG_PATH_MAX];
    double misalignment_threshold;
    char on_misalignment[AL_CONFIG_WORD_MAX];
    /* data parallelism (mpirun -np N) */
    double collective_timeout;
};

/* Bounds of the generation eval: it runs inside training, so it must stay small. */
#define AL_GEN_EVAL_MAX_ITEMS 10000
#define AL_GEN_EVAL_MAX_NEW_TOKENS 100000

enum al_config_type { AL_CONFIG_STRING = 0, AL_CONFIG_INT, AL_CONFIG_FLOAT, AL_CONFIG_BOOL };

struct al_train_config_key {
    const char *section;        /* heading for --help when a new group starts, else NULL */
    const char *name;
    enum al_config_type type;
    size_t offset;              /* of the field in struct al_train_config */
    size_t capacity;            /* bytes of a string field */
    const char *default_text;   /* parsed like a command-line value */
    const char *help;
    bool fixed_on_resume;       /* a resumed run must keep this value */
};

/* The table, in --help order. */
const struct al_train_config_key *al_train_config_keys(int *count);
const struct al_train_config_key *al_train_config_find_key(const char *name);
/* "string", "integer", "number", "boolean". */
const char *al_config_type_name(enum al_config_type type);

/* Every key at its default. */
void al_train_config_defaults(struct al_train_config *config);

/* Sets one key from text, as on the command line (bool: true/false/1/0/yes/no). */
int al_train_config_set(struct al_train_config *config, const char *key, const char *value);

/* Applies every member of a JSON object; source names it in errors (a file path). */
int al_train_config_apply_json(struct al_train_config *config, const struct cJSON *json, const char *source);
int al_train_config_load_file(struct al_train_config *config, const char *path);

/* Every key, as a JSON object that al_train_config_apply_json reads back unchanged. */
struct cJSON *al_train_config_to_json(const struct al_train_config *config);

/* Checks ranges and names (schedule, targets, ping mode, ratio, device); errors name the key. */
int al_train_config_validate(const struct al_train_config *config);

/* Defaults, then --config FILE (wherever it appears), then each `--key value` or
 * `--key=value` in order ('-' and '_' are interchangeable in key names; a boolean key
 * given alone means true). --help or -h sets *help_requested and stops. argv[0] is not
 * skipped: pass the arguments after the subcommand. Validates the result. */
int al_train_config_from_args(struct al_train_config *config, int argc, char **argv, bool *help_requested);

/* The --help text: every key with its type, default and meaning. Caller frees. */
char *al_train_config_help(const char *usage_line);

/* Names of the keys that may not change on resume whose values differ between a and b;
 * returns how many (writes at most capacity names). */
int al_train_config_fixed_differences(const struct al_train_config *a, const struct al_train_config *b,
                                      const char **names, int capacity);

/* A JSON number that reads back as exactly the same double (cJSON's own printing keeps
 * only 15 digits when they compare "close enough"): the shortest of %.15g, %.16g, %.17g
 * that round-trips. NaN and infinities become null, as in cJSON. */
struct cJSON *al_json_exact_number(double value);

/* Conversions for the modules the loop hands the config to. */
int al_train_config_lora(const struct al_train_config *config, struct al_lora_config *lora);
struct al_adamw_config al_train_config_adamw(const struct al_train_config *config);
int al_train_config_schedule_kind(const struct al_train_config *config, enum al_schedule_kind *kind);
/* The run's schedule once its length is known: lr, lr_scheduler and the warmup from
 * warmup_steps or warmup_ratio. */
int al_train_config_schedule(const struct al_train_config *config, int64_t total_steps, struct al_schedule *schedule);

#endif
