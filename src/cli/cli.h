/* Subcommands of the agentlora binary. Each returns the process exit status. */
#ifndef AGENTLORA_CLI_H
#define AGENTLORA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "agentlora/generate.h"
#include "agentlora/work_progress.h"

enum { AL_EXIT_OK = 0, AL_EXIT_FAILURE = 1, AL_EXIT_USAGE = 2 };

struct al_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

int al_cmd_inspect(int argc, char **argv);
int al_cmd_logits(int argc, char **argv);
int al_cmd_data(int argc, char **argv);
/* agentlora data convert (cmd_data_convert.c); argv[0] is "convert". */
int al_cmd_data_convert(int argc, char **argv);
void al_data_convert_usage(FILE *out);
int al_cmd_init_model(int argc, char **argv);
int al_cmd_train(int argc, char **argv);
int al_cmd_merge(int argc, char **argv);
int al_cmd_generate(int argc, char **argv);
int al_cmd_judge(int argc, char **argv);
int al_cmd_judge_train(int argc, char **argv);
int al_cmd_eval(int argc, char **argv);
int al_cmd_convert(int argc, char **argv);
int al_cmd_ping_search(int argc, char **argv);

/* --progress and --no-progress, for the commands whose work takes long (eval, generate
 * --data, ping-search, judge): getopt codes beyond any character, the help lines, and the
 * mode they choose. */
enum { AL_CLI_OPT_PROGRESS = 0x100, AL_CLI_OPT_NO_PROGRESS, AL_CLI_OPT_NO_THINKING };
#define AL_CLI_PROGRESS_OPTIONS                                                                                \
    {"progress", no_argument, NULL, AL_CLI_OPT_PROGRESS}, {"no-progress", no_argument, NULL, AL_CLI_OPT_NO_PROGRESS}
#define AL_CLI_PROGRESS_HELP                                                                                   \
    "  --progress             show progress on stderr (items done, tok/s, ETA, every few seconds)\n"         \
    "                         even when stderr is not a terminal; by default only on a terminal\n"            \
    "  --no-progress          never show it\n"
/* True when c is one of the two options; *mode is then set. */
bool al_cli_progress_option(int c, enum al_work_progress_mode *mode);

/* --no-thinking, for the commands that generate (eval, generate, ping-search): Qwen3's
 * enable_thinking=false, an empty <think></think> opening every answer. */
#define AL_CLI_THINKING_OPTION {"no-thinking", no_argument, NULL, AL_CLI_OPT_NO_THINKING}
#define AL_CLI_THINKING_HELP                                                                                   \
    "  --no-thinking          qwen3 format only: answer without thinking (the template's\n"                 \
    "                         enable_thinking=false: the prompt ends with an empty think block)\n"

/* A whole number (or a finite number) within [min, max] into *out; -1 when text is not one. */
int al_cli_parse_int(const char *text, long min, long max, int *out);
int al_cli_parse_float(const char *text, float min, float max, float *out);
/* A record list such as "1,4,7-9" (1-based; pieces in any order). Returns -1 when it is
 * malformed; otherwise sets *selected to true when record_number is listed (selected may
 * be NULL to only validate; it is never set to false). */
int al_cli_parse_record_list(const char *list, long record_number, bool *selected);

/* The backend, model, tokenizer, optional adapter and chat format that generate, eval and
 * ping-search share; generator is ready for al_generate_chat. */
struct al_cli_model {
    struct al_backend *backend;
    struct al_model *model;
    struct al_tokenizer *tokenizer;
    struct al_lora *lora; /* NULL without --adapter */
    struct al_chat_generator generator;
};

/* Opens everything in order; on failure the message names what failed and
 * al_cli_model_close releases what was opened. template_name NULL: recognised from the
 * model's tokenizer_config.json. */
int al_cli_model_open(struct al_cli_model *m, const char *model_path, const char *adapter_dir,
                      const char *template_name, const char *device);

/* The model folder a --model argument names: the path itself, or for a GGUF file the
 * folder "<file>.hf" it is converted into once (al_gguf_model_dir; a note goes to stderr).
 * The caller frees it; NULL with the error recorded. */
char *al_cli_model_folder(const char *path);
void al_cli_model_close(struct al_cli_model *m);
/* Applies --no-thinking to the opened model's generator; an error for a chat format that
 * has no thinking (anything but qwen3), so the flag is never silently ignored. */
int al_cli_model_disable_thinking(struct al_cli_model *m);

/* The refusal judge chosen by --judge NAME, --judge-model DIR and the judge model's chat
 * format (cli_judge.c). */
#define AL_CLI_MODEL_JUDGE_NAME "model"

struct al_cli_judge_choice {
    const char *name;          /* --judge (default AL_JUDGE_DEFAULT_NAME) */
    bool name_given;           /* --judge was on the command line */
    const char *model_dir;     /* --judge-model, or NULL */
    const char *template_name; /* the judge model's chat format, or NULL (recognised) */
};

/* What is wrong with the combination, as a usage message, or NULL when it is fine. */
const char *al_cli_judge_problem(const struct al_cli_judge_choice *choice);

/* The judge: a model judge opened on `device` (also stored in *opened, for the caller to
 * close with al_judge_model_close) or a built-in one (*opened NULL). NULL on failure. */
const struct al_judge *al_cli_judge_open(const struct al_cli_judge_choice *choice, const char *device,
                                         struct al_judge **opened);

/* Prints "agentlora <command>: <fmt % value>", a blank line and the usage; returns
 * AL_EXIT_USAGE. */
int al_cli_usage_error(const char *command, void (*usage)(FILE *out), const char *fmt, const char *value);

/* Prints "agentlora <command>: <message>" to stderr and returns AL_EXIT_FAILURE. */
int al_cli_report_error(const char *command);

#endif
