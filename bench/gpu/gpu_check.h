/* gpu_check: the measurements bench/gpu/check.sh needs that no other program makes.
 *   gpu_check parity --model DIR [--device cuda]   one backend against the CPU reference
 *   gpu_check decode --model DIR [--device cuda] --batch B ...   decoding throughput
 * Each prints one JSON object on stdout and exits 0 (within tolerance / measured),
 * 1 (outside tolerance or failed) or 2 (usage). */
#ifndef AGENTLORA_BENCH_GPU_CHECK_H
#define AGENTLORA_BENCH_GPU_CHECK_H

#include <stdint.h>

int gpu_check_parity(int argc, char **argv);
int gpu_check_decode(int argc, char **argv);

/* The value after argv[*i] for flag, advancing *i; NULL (and a message) when missing. */
const char *gpu_check_value(int argc, char **argv, int *i);
/* A whole number in [min, max] from text, or -1 with a message naming flag. */
int gpu_check_int(const char *flag, const char *text, long min, long max, long *out);
double gpu_check_now(void);

#endif
