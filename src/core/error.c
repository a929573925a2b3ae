/* The error facility: one thread-local message, set where a failure is detected and
 * widened with context as it travels up to the CLI. */
#include "agentlora/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ERROR_CAPACITY 2048

static _Thread_local char current_message[ERROR_CAPACITY];

static void record(const char *fmt, va_list args)
{
    vsnprintf(current_message, sizeof current_message, fmt, args);
}

int al_fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    record(fmt, args);
    va_end(args);
    return -1;
}

void *al_fail_null(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    record(fmt, args);
    va_end(args);
    return NULL;
}

int al_fail_errno(const char *fmt, ...)
{
    int saved_errno = errno;
    va_list args;
    va_start(args, fmt);
    record(fmt, args);
    va_end(args);
    size_t used = strlen(current_message);
    snprintf(current_message + used, sizeof current_message - used, ": %s", strerror(saved_errno));
    return -1;
}

void al_error_context(const char *fmt, ...)
{
    char prefix[ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    int length = vsnprintf(prefix, sizeof prefix - 2, fmt, args);
    va_end(args);
    if (length < 0)
        return;
    if ((size_t)length > sizeof prefix - 3)
        length = (int)(sizeof prefix - 3);
    memcpy(prefix + length, ": ", 3);
    length += 2;
    /* Shift the message right to make room for the prefix, truncating its tail. */
    size_t message_length = strlen(current_message);
    size_t room = ERROR_CAPACITY - 1 - (size_t)length;
    if (message_length > room)
        message_length = room;
    memmove(current_message + length, current_message, message_length);
    current_message[length + message_length] = '\0';
    memcpy(current_message, prefix, (size_t)length);
}

const char *al_error_message(void)
{
    return current_message;
}

void al_error_clear(void)
{
    current_message[0] = '\0';
}
