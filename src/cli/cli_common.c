/* Helpers every subcommand shares. */
#include <stdio.h>

#include "agentlora/error.h"
#include "agentlora/work_progress.h"
#include "cli/cli.h"

int al_cli_report_error(const char *command)
{
    const char *message = al_error_message();
    al_status_line_end(); /* work that failed can leave its progress line open */
    fprintf(stderr, "agentlora %s: %s\n", command, *message ? message : "failed (no details recorded)");
    return AL_EXIT_FAILURE;
}
