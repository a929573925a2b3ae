/* The one error facility: library code records what went wrong, with its context
 * (file, record number, tensor name), and returns -1 or NULL; the CLI prints it.
 * The message lives in thread-local storage so OpenMP workers cannot clobber it. */
#ifndef AGENTLORA_ERROR_H
#define AGENTLORA_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define AL_PRINTF(fmt_index, args_index) __attribute__((format(printf, fmt_index, args_index)))
#else
#define AL_PRINTF(fmt_index, args_index)
#endif

/* Records a message (replacing any earlier one) and returns -1, so that
 * `return al_fail("...")` reads naturally in functions returning a status. */
int al_fail(const char *fmt, ...) AL_PRINTF(1, 2);

/* Same, for functions that return a pointer: always returns NULL. */
void *al_fail_null(const char *fmt, ...) AL_PRINTF(1, 2);

/* Prepends context to the current message: "loading model/x: " + message.
 * Callers add context as the error climbs, so the CLI prints the whole path. */
void al_error_context(const char *fmt, ...) AL_PRINTF(1, 2);

/* The current message, or "" when none was recorded. */
const char *al_error_message(void);

void al_error_clear(void);

/* Records the system error (errno) together with a description. */
int al_fail_errno(const char *fmt, ...) AL_PRINTF(1, 2);

#endif
