/* Helpers shared by the test files: paths, temporary folders, random data, comparisons,
 * and running the agentlora binary. */
#ifndef AGENTLORA_TEST_SUPPORT_H
#define AGENTLORA_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* ../shared/<relative> (AL_SHARED_DIR overrides); the caller frees. */
char *test_shared_path(const char *relative);
/* A fresh empty directory under /tmp; the caller frees the string (and may leave the
 * directory: /tmp is the test's scratch). */
char *test_tmpdir(void);
/* Writes bytes to dir/name and returns the full path (caller frees). */
char *test_write_file(const char *dir, const char *name, const void *data, size_t size);
/* Copies a file. */
int test_copy_file(const char *from, const char *to);

/* Uniform random floats in [-scale, scale) from a seeded generator. */
void test_fill_random(float *x, int64_t n, uint64_t seed, float scale);

/* max |a - b| / max(max |b|, floor): relative error against a reference. */
double test_max_rel_error(const float *a, const float *ref, int64_t n, double floor);
double test_max_abs_error(const float *a, const float *ref, int64_t n);

/* Runs ./agentlora (or $AL_CLI) with the given arguments (NULL-terminated), captures
 * stdout+stderr into a malloc'd string, returns the exit status (-1 on a signal). */
int test_run_cli(char **output, const char *arg0, ...);
/* The same with a NULL-terminated argument list, calling prepare(context) in the child
 * just before exec (resource limits, signal dispositions, credentials); prepare may be
 * NULL. */
int test_run_cli_prepared(char **output, void (*prepare)(void *context), void *context, const char *const *arguments);

/* `agentlora init-model --preset tiny` with the demo tokenizer (init std 0.1) into
 * parent/model: a random model for CLI tests. Returns the folder (the caller frees), or
 * NULL with *output (the caller frees) holding what the command printed. */
char *test_cli_tiny_model(const char *parent, char **output);

/* The line-th (0-based) line of a command's output parsed as JSON, or NULL (no such line,
 * or not JSON). The caller deletes it with cJSON_Delete. */
struct cJSON;
struct cJSON *test_output_json_line(const char *output, int line);

#endif
