/* The training configuration table and everything it drives: defaults, setting a key
 * from text or JSON, writing the config back as JSON, validation, the resume check. */
#include "agentlora/train_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agentlora/chat_template.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "train/batch_skip.h"
#include "train_config_hints.h"

/* Integers must survive a round trip through a JSON number (a double). */
#define LARGEST_EXACT_INTEGER 9007199254740992.0 /* 2^53 */

#define FIELD(name) offsetof(struct al_train_config, name)
#define FIELD_SIZE(name) sizeof(((struct al_train_config *)0)->name)
#define TEXT_KEY(section, name, def, fixed, help) \
    {section, #name, AL_CONFIG_STRING, FIELD(name), FIELD_SIZE(name), def, help, fixed}
#define INT_KEY(section, name, def, fixed, help) {section, #name, AL_CONFIG_INT, FIELD(name), 0, def, help, fixed}
#define FLOAT_KEY(section, name, def, fixed, help) {section, #name, AL_CONFIG_FLOAT, FIELD(name), 0, def, help, fixed}
#define BOOL_KEY(section, name, def, fixed, help) {section, #name, AL_CONFIG_BOOL, FIELD(name), 0, def, help, fixed}
#define FIXED true
#define FREE false

/* The defaults are the usual LoRA recipe: r 16, alpha 32, every linear adapted, AdamW at
 * 2e-4 with a cosine decay after 3% warmup, gradients clipped at norm 1. */
static const struct al_train_config_key keys[] = {
    TEXT_KEY("Model and data", model, "", FIXED,
             "Hugging Face model folder (config.json, *.safetensors, tokenizer), or a GGUF file (converted once "
             "into <file>.hf)"),
    TEXT_KEY(NULL, train_data, "", FIXED, "training data: AgentAlign JSON array or JSONL, messages, Alpaca or ShareGPT JSONL"),
    TEXT_KEY(NULL, eval_data, "", FIXED, "separate evaluation data; empty: hold out eval_fraction of train_data"),
    INT_KEY(NULL, max_len, "2048", FIXED, "tokens per packed row, at most 1048576"),
    FLOAT_KEY(NULL, eval_fraction, "0.05", FIXED, "share of behaviour patterns held out for evaluation, in [0, 1)"),
    TEXT_KEY(NULL, harmful_benign_ratio, "", FIXED, "harmful:benign mix such as 1:2; empty keeps the data's own mix"),
    TEXT_KEY(NULL, ping_prefixes, "", FIXED, "PING prefix file (JSON list of strings or one per line)"),
    TEXT_KEY(NULL, ping_mode, "none", FIXED, "none | train (prefixes in the training targets) | eval"),
    TEXT_KEY(NULL, ping_targets, "harmful", FIXED, "records that get a prefix: harmful | benign | both"),
    INT_KEY(NULL, seed, "42", FIXED, "seed of every random choice (data order, LoRA init, dropout)"),
    TEXT_KEY(NULL, chat_format, "auto", FIXED,
             "auto (recognised from tokenizer_config.json; SmolLM2's template gives chatml-tools) | llama3.1 | "
             "llama3.2 | chatml-qwen2.5 | smollm2 (no tools) | chatml-tools (ChatML with tool tags, no system "
             "prompt added) | qwen3 (tool tags, <think> reasoning) | mistral-nemo | mistral-v3"),
    BOOL_KEY(NULL, last_turn_only, "false", FIXED, "train only on the final assistant turn of each record"),
    BOOL_KEY(NULL, arguments_as_strings, "false", FIXED,
             "render tool-call arguments given as JSON strings as strings (quoted; qwen3 writes them as they are) "
             "(default: as objects)"),
    BOOL_KEY(NULL, strict_data, "false", FREE, "stop at the first malformed record (default: skip and count it)"),

    INT_KEY("LoRA", lora_r, "16", FIXED, "rank r, at most 65536"),
    FLOAT_KEY(NULL, lora_alpha, "32", FIXED, "alpha; the update is scaled by alpha / r; in (0, 65536]"),
    FLOAT_KEY(NULL, lora_dropout, "0", FREE, "dropout on the LoRA input, in [0, 1)"),
    TEXT_KEY(NULL, lora_targets, "all", FIXED, "adapted linears: all, or a list such as q_proj,v_proj"),
    BOOL_KEY(NULL, use_rslora, "false", FIXED, "scale by alpha / sqrt(r) (rsLoRA)"),
    TEXT_KEY(NULL, init_adapter, "", FIXED,
             "PEFT LoRA adapter folder to start from (its r, alpha, targets replace the lora_* keys)"),

    FLOAT_KEY("Optimisation", lr, "2e-4", FREE, "peak learning rate, in (0, 1]"),
    TEXT_KEY(NULL, lr_scheduler, "cosine", FREE, "constant | linear | cosine, after linear warmup"),
    FLOAT_KEY(NULL, warmup_ratio, "0.03", FREE, "warmup as a share of the steps (ceil), when warmup_steps is 0"),
    INT_KEY(NULL, warmup_steps, "0", FREE, "warmup steps; overrides warmup_ratio when positive"),
    FLOAT_KEY(NULL, adam_beta1, "0.9", FREE, "AdamW beta1"),
    FLOAT_KEY(NULL, adam_beta2, "0.999", FREE, "AdamW beta2"),
    FLOAT_KEY(NULL, adam_epsilon, "1e-8", FREE, "AdamW epsilon, in [1e-30, 1]"),
    FLOAT_KEY(NULL, weight_decay, "0", FREE, "AdamW decoupled weight decay, in [0, 10]"),
    FLOAT_KEY(NULL, max_grad_norm, "1.0", FREE, "clip gradients to this global norm, at most 1e9; 0 disables"),
    INT_KEY(NULL, micro_batch_rows, "1", FREE, "packed rows of max_len tokens per forward/backward, at most 65536"),
    INT_KEY(NULL, gradient_accumulation, "1", FREE, "micro-batches per optimizer step, at most 1048576"),
    INT_KEY(NULL, max_steps, "0", FREE, "optimizer steps; 0: as many as epochs take"),
    FLOAT_KEY(NULL, epochs, "1", FREE, "passes over the training data when max_steps is 0, at most 10000"),
    BOOL_KEY(NULL, gradient_checkpointing, "false", FREE, "recompute each block in backward to save memory"),
    INT_KEY(NULL, max_nonfinite_steps, "5", FREE, "stop after this many NaN/Inf gradient steps in a row"),

    TEXT_KEY("Output and logging", output_dir, "checkpoints", FREE, "folder holding one subfolder per run"),
    TEXT_KEY(NULL, run_name, "run", FREE, "the run's subfolder: checkpoints, metrics, TensorBoard events"),
    INT_KEY(NULL, save_every, "100", FREE, "checkpoint every N steps (and always at the end); 0: only at the end"),
    INT_KEY(NULL, keep_last, "3", FREE, "checkpoints kept; older ones are deleted"),
    INT_KEY(NULL, log_every, "1", FREE, "progress line and metrics every N steps"),
    INT_KEY(NULL, eval_every, "0", FREE, "evaluation loss every N steps; 0: only at the end"),
    TEXT_KEY(NULL, device, "auto", FREE, "cpu | cuda | auto (CUDA when a GPU is visible)"),
    TEXT_KEY(NULL, resume, "", FREE, "empty: fresh run; auto: from the run's latest checkpoint; or a checkpoint folder"),
    BOOL_KEY(NULL, overwrite, "false", FREE,
             "let a fresh run replace the checkpoints already in its run folder (deleted, and named in the log); "
             "without it such a run is refused"),
    TEXT_KEY(NULL, skip_batches, "", FREE,
             "training batches to leave out, by the data position they start at (EPOCH:POSITION, comma-separated), "
             "e.g. the ones a non-finite gradient warning names"),

    INT_KEY("Generation eval and the misalignment alarm", gen_eval_every, "0", FREE,
            "generate on eval items every N steps (and at step 0, the baseline): harmful refusal rate and benign "
            "helpfulness; 0: off"),
    INT_KEY(NULL, gen_eval_items, "8", FREE, "eval items per split (harmful, benign) generated each time"),
    INT_KEY(NULL, gen_eval_max_new_tokens, "64", FREE, "longest generated response in the generation eval"),
    TEXT_KEY(NULL, gen_eval_judge, "auto", FREE,
             "refusal judge of the generation eval: auto (learned-v1 where its weights are found, else keywords-v1), learned-v1, keywords-v1, or model (with gen_eval_judge_model)"),
    TEXT_KEY(NULL, gen_eval_judge_model, "", FREE,
             "chat model folder that judges refusals instead (its yes/no answer; judge name model:<folder>); its "
             "chat format is recognised from the folder, or is chat_format when it is the trained model"),
    FLOAT_KEY(NULL, misalignment_threshold, "10", FREE,
              "alarm when the harmful refusal rate falls more than this many points (percent) below step 0's"),
    TEXT_KEY(NULL, on_misalignment, "warn", FREE,
             "warn | stop (stop the run and name the best checkpoint by refusal rate + helpfulness)"),

    FLOAT_KEY("Data parallelism (mpirun -np N agentlora train ...)", collective_timeout, "1800", FREE,
              "seconds a rank waits for another before it ends the run, naming the rank it waited for; rank 0's "
              "evaluations and checkpoints are waiting time for the others, so keep it above the longest"),
};

#define KEY_COUNT ((int)(sizeof keys / sizeof keys[0]))

const struct al_train_config_key *al_train_config_keys(int *count)
{
    *count = KEY_COUNT;
    return keys;
}

const struct al_train_config_key *al_train_config_find_key(const char *name)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

const char *al_config_type_name(enum al_config_type type)
{
    switch (type) {
    case AL_CONFIG_STRING: return "string";
    case AL_CONFIG_INT: return "integer";
    case AL_CONFIG_FLOAT: return "number";
    case AL_CONFIG_BOOL: return "boolean";
    }
    return "?";
}

/* ---- typed access to a field ---- */

static char *text_field(struct al_train_config *config, const struct al_train_config_key *key)
{
    return (char *)config + key->offset;
}

static int64_t *int_field(struct al_train_config *config, const struct al_train_config_key *key)
{
    return (int64_t *)((char *)config + key->offset);
}

static double *float_field(struct al_train_config *config, const struct al_train_config_key *key)
{
    return (double *)((char *)config + key->offset);
}

static bool *bool_field(struct al_train_config *config, const struct al_train_config_key *key)
{
    return (bool *)((char *)config + key->offset);
}

#define CONST_FIELD(type_fn, config, key) type_fn((struct al_train_config *)(config), key)

/* ---- setting from text ---- */

static int type_error(const struct al_train_config_key *key, const char *value)
{
    return al_fail("key '%s' expects %s %s, got '%s'", key->name,
                   key->type == AL_CONFIG_INT ? "an" : "a", al_config_type_name(key->type), value);
}

static int parse_int(const struct al_train_config_key *key, const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || fabs((double)value) > LARGEST_EXACT_INTEGER)
        return type_error(key, text);
    *out = value;
    return 0;
}

static int parse_float(const struct al_train_config_key *key, const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(value))
        return type_error(key, text);
    *out = value;
    return 0;
}

static int parse_bool(const struct al_train_config_key *key, const char *text, bool *out)
{
    static const char *const truths[] = {"true", "1", "yes"}, *const falsehoods[] = {"false", "0", "no"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(text, truths[i]) == 0)
            return (*out = true), 0;
        if (strcasecmp(text, falsehoods[i]) == 0)
            return (*out = false), 0;
    }
    return type_error(key, text);
}

static int set_text(struct al_train_config *config, const struct al_train_config_key *key, const char *value)
{
    size_t length = strlen(value);
    if (length >= key->capacity)
        return al_fail("key '%s': value is %zu characters long, the limit is %zu", key->name, length,
                       key->capacity - 1);
    memcpy(text_field(config, key), value, length + 1);
    return 0;
}

static int set_from_text(struct al_train_config *config, const struct al_train_config_key *key, const char *value)
{
    switch (key->type) {
    case AL_CONFIG_STRING: return set_text(config, key, value);
    case AL_CONFIG_INT: return parse_int(key, value, int_field(config, key));
    case AL_CONFIG_FLOAT: return parse_float(key, value, float_field(config, key));
    case AL_CONFIG_BOOL: return parse_bool(key, value, bool_field(config, key));
    }
    return al_fail("key '%s': unknown type", key->name);
}

void al_train_config_defaults(struct al_train_config *config)
{
    memset(config, 0, sizeof *config);
    for (int i = 0; i < KEY_COUNT; i++) {
        int rc = set_from_text(config, &keys[i], keys[i].default_text);
        (void)rc; /* the table's defaults parse: test_train_config checks it */
    }
}

static int unknown_key(const char *name)
{
    return al_train_config_unknown_key(name);
}

int al_train_config_set(struct al_train_config *config, const char *name, const char *value)
{
    const struct al_train_config_key *key = al_train_config_find_key(name);
    return key ? set_from_text(config, key, value) : unknown_key(name);
}

/* ---- JSON ---- */

/* A number, or the raw number text al_json_exact_number makes (a config converted with
 * al_train_config_to_json and read back without being printed in between). */
static bool json_number(const cJSON *item, double *value)
{
    if (cJSON_IsNumber(item)) {
        *value = item->valuedouble;
        return true;
    }
    if (!cJSON_IsRaw(item) || !item->valuestring)
        return false;
    char *end = NULL;
    *value = strtod(item->valuestring, &end);
    return end != item->valuestring && *end == '\0' && isfinite(*value);
}

static int set_from_json(struct al_train_config *config, const struct al_train_config_key *key, const cJSON *item)
{
    const char *expected = al_config_type_name(key->type);
    double number = 0.0;
    switch (key->type) {
    case AL_CONFIG_STRING:
        if (!cJSON_IsString(item))
            return al_fail("key '%s' must be a %s", key->name, expected);
        return set_text(config, key, item->valuestring);
    case AL_CONFIG_INT:
        if (!json_number(item, &number) || number != floor(number) || fabs(number) > LARGEST_EXACT_INTEGER)
            return al_fail("key '%s' must be an %s", key->name, expected);
        *int_field(config, key) = (int64_t)number;
        return 0;
    case AL_CONFIG_FLOAT:
        if (!json_number(item, &number))
            return al_fail("key '%s' must be a %s", key->name, expected);
        *float_field(config, key) = number;
        return 0;
    case AL_CONFIG_BOOL:
        if (!cJSON_IsBool(item))
            return al_fail("key '%s' must be a %s (true or false)", key->name, expected);
        *bool_field(config, key) = cJSON_IsTrue(item);
        return 0;
    }
    return al_fail("key '%s': unknown type", key->name);
}

int al_train_config_apply_json(struct al_train_config *config, const cJSON *json, const char *source)
{
    if (!cJSON_IsObject(json))
        return al_fail("%s: a training config must be a JSON object", source);
    const cJSON *item;
    cJSON_ArrayForEach(item, json)
    {
        const struct al_train_config_key *key = al_train_config_find_key(item->string);
        int rc = key ? set_from_json(config, key, item) : unknown_key(item->string);
        if (rc != 0) {
            al_error_context("%s", source);
            return -1;
        }
    }
    return 0;
}

int al_train_config_load_file(struct al_train_config *config, const char *path)
{
    if (al_train_config_refuse_yaml(path) != 0)
        return -1;
    cJSON *json = al_json_load_file(path);
    if (!json)
        return -1;
    int rc = al_train_config_apply_json(config, json, path);
    cJSON_Delete(json);
    return rc;
}

cJSON *al_json_exact_number(double value)
{
    if (!isfinite(value))
        return cJSON_CreateNull();
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtod(text, NULL) == value)
            break;
    }
    return cJSON_CreateRaw(text);
}

static cJSON *field_to_json(const struct al_train_config *config, const struct al_train_config_key *key)
{
    switch (key->type) {
    case AL_CONFIG_STRING: return cJSON_CreateString(CONST_FIELD(text_field, config, key));
    case AL_CONFIG_INT: return cJSON_CreateNumber((double)*CONST_FIELD(int_field, config, key));
    case AL_CONFIG_FLOAT: return al_json_exact_number(*CONST_FIELD(float_field, config, key));
    case AL_CONFIG_BOOL: return cJSON_CreateBool(*CONST_FIELD(bool_field, config, key));
    }
    return NULL;
}

cJSON *al_train_config_to_json(const struct al_train_config *config)
{
    cJSON *json = cJSON_CreateObject();
    for (int i = 0; json && i < KEY_COUNT; i++) {
        cJSON *value = field_to_json(config, &keys[i]);
        if (!value || !cJSON_AddItemToObject(json, keys[i].name, value)) {
            cJSON_Delete(value);
            cJSON_Delete(json);
            return al_fail_null("out of memory");
        }
    }
    return json ? json : al_fail_null("out of memory");
}

/* ---- validation ---- */

static bool one_of(const char *value, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(value, *words) == 0)
            return true;
    return false;
}

static int check_word(const char *key, const char *value, const char *const *words, const char *listing)
{
    return one_of(value, words) ? 0 : al_fail("key '%s': '%s' is not one of %s", key, value, listing);
}

/* "H:B" with non-negative integers, not both zero (the data module's ratio syntax). */
static int check_ratio(const char *value)
{
    if (value[0] == '\0')
        return 0;
    unsigned harmful = 0, benign = 0;
    int consumed = 0;
    if (sscanf(value, "%u:%u%n", &harmful, &benign, &consumed) != 2 || value[consumed] != '\0' ||
        (harmful == 0 && benign == 0) || value[0] == '-' || strchr(value, '-'))
        return al_fail("key 'harmful_benign_ratio': '%s' is not a ratio such as 1:2", value);
    return 0;
}

static int check_range(const char *key, double value, double low, double high, bool high_inclusive)
{
    if (value < low || value > high || (!high_inclusive && value == high))
        return al_fail("key '%s': %g is outside [%g, %g%c", key, value, low, high, high_inclusive ? ']' : ')');
    return 0;
}

/* Upper bounds on the numbers that would otherwise pass as "positive" and fail only
 * later: the optimizer runs in fp32, where 1e39 is infinity (the first step's update
 * would be NaN), and counts past these multiply into allocations or step totals no run
 * could reach. Each is far beyond any sane recipe. */
#define MAX_LR 1.0
#define MAX_LORA_ALPHA 65536.0
#define MAX_LORA_RANK 65536
#define MIN_ADAM_EPSILON 1e-30
#define MAX_ADAM_EPSILON 1.0
#define MAX_WEIGHT_DECAY 10.0
#define MAX_GRAD_NORM_LIMIT 1e9
#define MAX_EPOCHS 10000.0
#define MAX_MAX_LEN 1048576
#define MAX_MICRO_BATCH_ROWS 65536
#define MAX_GRADIENT_ACCUMULATION 1048576

/* (0, high]: positive, and at most high. */
static int check_positive_up_to(const char *key, double value, double high)
{
    if (!(value > 0) || value > high)
        return al_fail("key '%s': %g is outside (0, %g]", key, value, high);
    return 0;
}

static int check_positive(const char *key, double value)
{
    return value > 0 ? 0 : al_fail("key '%s' must be positive, got %g", key, value);
}

static int check_non_negative(const char *key, double value)
{
    return value >= 0 ? 0 : al_fail("key '%s' must not be negative, got %g", key, value);
}

static int validate_data(const struct al_train_config *c)
{
    static const char *const modes[] = {"none", "train", "eval", NULL};
    static const char *const ping_targets[] = {"harmful", "benign", "both", NULL};
    if (check_positive_up_to("max_len", (double)c->max_len, MAX_MAX_LEN) || check_range("eval_fraction", c->eval_fraction, 0, 1, false) ||
        check_ratio(c->harmful_benign_ratio) || check_word("ping_mode", c->ping_mode, modes, "none, train, eval") ||
        check_word("ping_targets", c->ping_targets, ping_targets, "harmful, benign, both") ||
        check_non_negative("seed", (double)c->seed))
        return -1;
    enum al_chat_format format;
    if (strcmp(c->chat_format, "auto") != 0 && al_chat_format_from_name(c->chat_format, &format) != 0) {
        al_error_context("key 'chat_format'");
        return -1;
    }
    return 0;
}

static int validate_lora(const struct al_train_config *c)
{
    struct al_lora_config lora;
    if (check_positive_up_to("lora_r", (double)c->lora_r, MAX_LORA_RANK) || check_positive_up_to("lora_alpha", c->lora_alpha, MAX_LORA_ALPHA) ||
        check_range("lora_dropout", c->lora_dropout, 0, 1, false) || al_train_config_lora(c, &lora))
        return -1;
    return 0;
}

static int validate_optimisation(const struct al_train_config *c)
{
    enum al_schedule_kind kind;
    if (check_positive_up_to("lr", c->lr, MAX_LR) || al_train_config_schedule_kind(c, &kind) ||
        check_range("warmup_ratio", c->warmup_ratio, 0, 1, true) ||
        check_non_negative("warmup_steps", (double)c->warmup_steps) ||
        check_range("adam_beta1", c->adam_beta1, 0, 1, false) || check_range("adam_beta2", c->adam_beta2, 0, 1, false) ||
        check_range("adam_epsilon", c->adam_epsilon, MIN_ADAM_EPSILON, MAX_ADAM_EPSILON, true) || check_range("weight_decay", c->weight_decay, 0, MAX_WEIGHT_DECAY, true) ||
        check_range("max_grad_norm", c->max_grad_norm, 0, MAX_GRAD_NORM_LIMIT, true) ||
        check_positive_up_to("micro_batch_rows", (double)c->micro_batch_rows, MAX_MICRO_BATCH_ROWS) ||
        check_positive_up_to("gradient_accumulation", (double)c->gradient_accumulation, MAX_GRADIENT_ACCUMULATION) ||
        check_non_negative("max_steps", (double)c->max_steps) || check_range("epochs", c->epochs, 0, MAX_EPOCHS, true) ||
        check_positive("max_nonfinite_steps", (double)c->max_nonfinite_steps))
        return -1;
    if (c->max_steps == 0 && c->epochs <= 0)
        return al_fail("keys 'max_steps' and 'epochs': one of them must be positive");
    return 0;
}

static int validate_output(const struct al_train_config *c)
{
    static const char *const devices[] = {"cpu", "cuda", "auto", NULL};
    if (check_non_negative("save_every", (double)c->save_every) || check_positive("keep_last", (double)c->keep_last) ||
        check_positive("log_every", (double)c->log_every) || check_non_negative("eval_every", (double)c->eval_every) ||
        check_word("device", c->device, devices, "cpu, cuda, auto"))
        return -1;
    static const char *const reactions[] = {"warn", "stop", NULL};
    if (check_non_negative("gen_eval_every", (double)c->gen_eval_every) ||
        check_positive("gen_eval_items", (double)c->gen_eval_items) ||
        check_positive("gen_eval_max_new_tokens", (double)c->gen_eval_max_new_tokens) ||
        check_range("misalignment_threshold", c->misalignment_threshold, -100, 100, true) ||
        check_word("on_misalignment", c->on_misalignment, reactions, "warn, stop") ||
        check_positive_up_to("collective_timeout", c->collective_timeout, 1e7))
        return -1;
    if (c->gen_eval_items > AL_GEN_EVAL_MAX_ITEMS || c->gen_eval_max_new_tokens > AL_GEN_EVAL_MAX_NEW_TOKENS)
        return al_fail("keys 'gen_eval_items' and 'gen_eval_max_new_tokens' must be at most %d and %d",
                       AL_GEN_EVAL_MAX_ITEMS, AL_GEN_EVAL_MAX_NEW_TOKENS);
    if (c->overwrite && c->resume[0] != '\0')
        return al_fail("keys 'overwrite' and 'resume': overwrite starts the run afresh, so it cannot resume");
    struct al_batch_skips skips;
    if (al_batch_skips_parse(c->skip_batches, &skips) != 0)
        return -1;
    al_batch_skips_free(&skips);
    if (c->output_dir[0] == '\0' || c->run_name[0] == '\0' || strchr(c->run_name, '/'))
        return al_fail("keys 'output_dir' and 'run_name' must be non-empty, and run_name a plain folder name");
    return 0;
}

int al_train_config_validate(const struct al_train_config *c)
{
    return validate_data(c) || validate_lora(c) || validate_optimisation(c) || validate_output(c) ? -1 : 0;
}

/* ---- conversions ---- */

int al_train_config_lora(const struct al_train_config *config, struct al_lora_config *lora)
{
    memset(lora, 0, sizeof *lora);
    if (config->lora_r <= 0 || config->lora_r > INT32_MAX)
        return al_fail("key 'lora_r': %lld is not a usable rank", (long long)config->lora_r);
    lora->rank = (int)config->lora_r;
    lora->alpha = (float)config->lora_alpha;
    lora->dropout = (float)config->lora_dropout;
    lora->use_rslora = config->use_rslora;
    if (al_lora_targets_parse(config->lora_targets, &lora->target_mask) != 0 ||
        al_lora_config_validate(lora) != 0) {
        al_error_context("key 'lora_targets'/'lora_r'/'lora_alpha'");
        return -1;
    }
    return 0;
}

struct al_adamw_config al_train_config_adamw(const struct al_train_config *config)
{
    return (struct al_adamw_config){
        .beta1 = (float)config->adam_beta1,
        .beta2 = (float)config->adam_beta2,
        .eps = (float)config->adam_epsilon,
        .weight_decay = (float)config->weight_decay,
        .max_grad_norm = (float)config->max_grad_norm,
    };
}

int al_train_config_schedule_kind(const struct al_train_config *config, enum al_schedule_kind *kind)
{
    if (al_schedule_kind_parse(config->lr_scheduler, kind) != 0) {
        al_error_context("key 'lr_scheduler'");
        return -1;
    }
    return 0;
}

int al_train_config_schedule(const struct al_train_config *config, int64_t total_steps, struct al_schedule *schedule)
{
    enum al_schedule_kind kind;
    if (al_train_config_schedule_kind(config, &kind) != 0)
        return -1;
    int64_t warmup = al_schedule_warmup_steps(total_steps, config->warmup_steps, config->warmup_ratio);
    return al_schedule_init(schedule, kind, config->lr, total_steps, warmup);
}

/* ---- the resume check ---- */

/* Targets are compared as sets, so "all" equals the seven names listed. */
static bool same_targets(const char *a, const char *b)
{
    unsigned mask_a = 0, mask_b = 0;
    if (al_lora_targets_parse(a, &mask_a) != 0 || al_lora_targets_parse(b, &mask_b) != 0) {
        al_error_clear();
        return strcmp(a, b) == 0;
    }
    return mask_a == mask_b;
}

static bool same_value(const struct al_train_config *a, const struct al_train_config *b,
                       const struct al_train_config_key *key)
{
    switch (key->type) {
    case AL_CONFIG_STRING:
        if (strcmp(key->name, "lora_targets") == 0)
            return same_targets(a->lora_targets, b->lora_targets);
        return strcmp(CONST_FIELD(text_field, a, key), CONST_FIELD(text_field, b, key)) == 0;
    case AL_CONFIG_INT: return *CONST_FIELD(int_field, a, key) == *CONST_FIELD(int_field, b, key);
    case AL_CONFIG_FLOAT: return *CONST_FIELD(float_field, a, key) == *CONST_FIELD(float_field, b, key);
    case AL_CONFIG_BOOL: return *CONST_FIELD(bool_field, a, key) == *CONST_FIELD(bool_field, b, key);
    }
    return false;
}

int al_train_config_fixed_differences(const struct al_train_config *a, const struct al_train_config *b,
                                      const char **names, int capacity)
{
    int count = 0;
    for (int i = 0; i < KEY_COUNT; i++) {
        if (!keys[i].fixed_on_resume || same_value(a, b, &keys[i]))
            continue;
        if (count < capacity)
            names[count] = keys[i].name;
        count++;
    }
    return count;
}
