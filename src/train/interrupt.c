/* Stop requests from SIGINT and SIGTERM (see interrupt.h). The handler only stores the
 * signal number, or, the second time, restores the default action and raises the signal
 * again: both are async-signal-safe. */
#include "interrupt.h"

#include <string.h>
#include <unistd.h>

#include "agentlora/error.h"

static volatile sig_atomic_t requested_signal;

static void on_stop_signal(int signal_number)
{
    if (requested_signal != 0) {
        static const char message[] = "\nsecond interrupt: stopping at once, without a checkpoint\n";
        ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
        (void)ignored;
        signal(signal_number, SIG_DFL);
        raise(signal_number);
        return;
    }
    requested_signal = signal_number;
    static const char message[] =
        "\ninterrupt: finishing the current step and writing a checkpoint (interrupt again to stop at once)\n";
    ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
    (void)ignored;
}

int al_interrupt_install(struct al_interrupt_guard *guard)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART; /* a read or write in progress goes on, the loop checks the flag */
    requested_signal = 0;
    if (sigaction(SIGINT, &action, &guard->previous_int) != 0)
        return al_fail_errno("cannot install the SIGINT handler");
    if (sigaction(SIGTERM, &action, &guard->previous_term) != 0) {
        sigaction(SIGINT, &guard->previous_int, NULL);
        return al_fail_errno("cannot install the SIGTERM handler");
    }
    return 0;
}

void al_interrupt_restore(const struct al_interrupt_guard *guard)
{
    sigaction(SIGINT, &guard->previous_int, NULL);
    sigaction(SIGTERM, &guard->previous_term, NULL);
}

int al_interrupt_requested(void)
{
    return (int)requested_signal;
}
