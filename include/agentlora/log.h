/* Logging to stderr with a level threshold; the logger is the only other global. */
#ifndef AGENTLORA_LOG_H
#define AGENTLORA_LOG_H

#include "agentlora/error.h"

enum al_log_level { AL_LOG_DEBUG = 0, AL_LOG_INFO = 1, AL_LOG_WARN = 2, AL_LOG_ERROR = 3, AL_LOG_QUIET = 4 };

void al_log_set_level(enum al_log_level level);
enum al_log_level al_log_get_level(void);
/* Text written before every message ("rank 1: "); NULL or "" for none. */
void al_log_set_prefix(const char *text);
void al_log(enum al_log_level level, const char *fmt, ...) AL_PRINTF(2, 3);

#define al_log_debug(...) al_log(AL_LOG_DEBUG, __VA_ARGS__)
#define al_log_info(...) al_log(AL_LOG_INFO, __VA_ARGS__)
#define al_log_warn(...) al_log(AL_LOG_WARN, __VA_ARGS__)

#endif
