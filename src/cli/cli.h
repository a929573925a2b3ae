/* Subcommands of the agentlora binary. Each returns the process exit status. */
#ifndef AGENTLORA_CLI_H
#define AGENTLORA_CLI_H

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

/* Prints "agentlora <command>: <message>" to stderr and returns AL_EXIT_FAILURE. */
int al_cli_report_error(const char *command);

#endif
