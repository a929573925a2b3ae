/* Subcommands of the agentlora binary. Each returns the process exit status. */
#ifndef AGENTLORA_CLI_H
#define AGENTLORA_CLI_H

#include <stdbool.h>

enum { AL_EXIT_OK = 0, AL_EXIT_FAILURE = 1, AL_EXIT_USAGE = 2 };

struct al_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
};

int al_cmd_inspect(int argc, char **argv);
int al_cmd_logits(int argc, char **argv);
int al_cmd_data(int argc, char **argv);
int al_cmd_init_model(int argc, char **argv);
int al_cmd_train(int argc, char **argv);
int al_cmd_merge(int argc, char **argv);
int al_cmd_generate(int argc, char **argv);
int al_cmd_judge(int argc, char **argv);
int al_cmd_eval(int argc, char **argv);
int al_cmd_convert(int argc, char **argv);
int al_cmd_ping_search(int argc, char **argv);

/* A whole number (or a finite number) within [min, max] into *out; -1 when text is not one. */
int al_cli_parse_int(const char *text, long min, long max, int *out);
int al_cli_parse_float(const char *text, float min, float max, float *out);
/* A record list such as "1,4,7-9" (1-based; pieces in any order). Returns -1 when it is
 * malformed; otherwise sets *selected to true when record_number is listed (selected may
 * be NULL to only validate; it is never set to false). */
int al_cli_parse_record_list(const char *list, long record_number, bool *selected);

/* Prints "agentlora <command>: <message>" to stderr and returns AL_EXIT_FAILURE. */
int al_cli_report_error(const char *command);

#endif
