/* gpu_check's entry point and the small helpers its subcommands share (gpu_check.h). */
#include "gpu_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *gpu_check_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "gpu_check: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int gpu_check_int(const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        fprintf(stderr, "gpu_check: %s must be a whole number from %ld to %ld, got '%s'\n", flag, min, max, text);
        return -1;
    }
    *out = value;
    return 0;
}

double gpu_check_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: gpu_check parity --model DIR [--device NAME] [--tokens N]\n"
                 "       gpu_check decode --model DIR [--device NAME] [--batch B] [--prompt P] [--new N]\n\n"
                 "parity: logits, loss and every LoRA gradient of one packed batch on --device (default cuda)\n"
                 "        against the CPU reference, with a non-zero random adapter; exit 1 outside tolerance.\n"
                 "decode: greedy decoding throughput with the KV cache: B sequences, a prefill of P random\n"
                 "        tokens each, then N decode steps of one token per sequence.\n"
                 "Both print one JSON object on stdout.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "parity"))
        return gpu_check_parity(argc - 1, argv + 1);
    if (!strcmp(argv[1], "decode"))
        return gpu_check_decode(argc - 1, argv + 1);
    fprintf(stderr, "gpu_check: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
