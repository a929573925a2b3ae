/* Helpers every subcommand shares. */
#include <stdio.h>

#include "agentlora/error.h"
#include "cli/cli.h"

int al_cli_report_error(const char *command)
{
    const char *message = al_error_message();
    fprintf(stderr, "agentlora %s: %s\n", command, *message ? message : "failed (no details recorded)");
    return AL_EXIT_FAILURE;
}
