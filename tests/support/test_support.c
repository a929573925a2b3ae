#include "test_support.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentlora/file.h"
#include "agentlora/rng.h"

char *test_shared_path(const char *relative)
{
    const char *root = getenv("AL_SHARED_DIR");
    return al_path_join(root && *root ? root : "../shared", relative);
}

char *test_tmpdir(void)
{
    char template[] = "/tmp/agentlora-test-XXXXXX";
    char *dir = mkdtemp(template);
    return dir ? strdup(dir) : NULL;
}

char *test_write_file(const char *dir, const char *name, const void *data, size_t size)
{
    char *path = al_path_join(dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(path);
        return NULL;
    }
    fwrite(data, 1, size, f);
    fclose(f);
    return path;
}

int test_copy_file(const char *from, const char *to)
{
    size_t size = 0;
    char *data = al_file_read_all(from, &size);
    if (!data)
        return -1;
    FILE *f = fopen(to, "wb");
    if (!f) {
        free(data);
        return -1;
    }
    size_t written = fwrite(data, 1, size, f);
    fclose(f);
    free(data);
    return written == size ? 0 : -1;
}

void test_fill_random(float *x, int64_t n, uint64_t seed, float scale)
{
    struct al_rng rng;
    al_rng_seed(&rng, seed, 7);
    for (int64_t i = 0; i < n; i++)
        x[i] = al_rng_uniform_range(&rng, -scale, scale);
}

double test_max_abs_error(const float *a, const float *ref, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        if (d < 0)
            d = -d;
        if (!(d <= worst)) /* NaN counts as the worst */
            worst = d;
    }
    return worst;
}

double test_max_rel_error(const float *a, const float *ref, int64_t n, double floor)
{
    double largest = floor;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i] < 0 ? -ref[i] : ref[i];
        if (r > largest)
            largest = r;
    }
    return test_max_abs_error(a, ref, n) / largest;
}

char *test_cli_tiny_model(const char *parent, char **output)
{
    char *dir = al_path_join(parent, "model");
    *output = NULL;
    if (!dir)
        return NULL;
    if (test_run_cli(output, "init-model", "--preset", "tiny", "--tokenizer", "data/demo-tokenizer", "--init-std",
                     "0.1", "--out", dir, NULL) != 0) {
        free(dir);
        return NULL;
    }
    free(*output);
    *output = NULL;
    return dir;
}

int test_run_cli(char **output, const char *arg0, ...)
{
    const char *args[64];
    int count = 0;
    va_list list;
    va_start(list, arg0);
    for (const char *a = arg0; a && count < 63; a = va_arg(list, const char *))
        args[count++] = a;
    va_end(list);
    args[count] = NULL;
    return test_run_cli_prepared(output, NULL, NULL, args);
}

int test_run_cli_prepared(char **output, void (*prepare)(void *context), void *context, const char *const *arguments)
{
    const char *cli = getenv("AL_CLI");
    if (!cli || !*cli)
        cli = "./agentlora";
    const char *args[128];
    int count = 0;
    args[count++] = cli;
    for (int i = 0; arguments[i] && count < 127; i++)
        args[count++] = arguments[i];
    args[count] = NULL;

    int pipe_fds[2];
    if (pipe(pipe_fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipe_fds[1], 1);
        dup2(pipe_fds[1], 2);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        if (prepare)
            prepare(context);
        execv(cli, (char *const *)args);
        _exit(127);
    }
    close(pipe_fds[1]);
    size_t capacity = 4096, used = 0;
    char *text = malloc(capacity);
    ssize_t got;
    while (text && (got = read(pipe_fds[0], text + used, capacity - used - 1)) > 0) {
        used += (size_t)got;
        if (used + 1 == capacity) {
            char *grown = realloc(text, capacity * 2);
            if (!grown)
                break;
            text = grown;
            capacity *= 2;
        }
    }
    close(pipe_fds[0]);
    if (text)
        text[used] = '\0';
    int status = 0;
    waitpid(pid, &status, 0);
    if (output)
        *output = text;
    else
        free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct cJSON *test_output_json_line(const char *output, int line)
{
    const char *start = output;
    for (int i = 0; i < line && start; i++) {
        start = strchr(start, '\n');
        start = start ? start + 1 : NULL;
    }
    if (!start)
        return NULL;
    const char *end = strchr(start, '\n');
    return cJSON_ParseWithLength(start, end ? (size_t)(end - start) : strlen(start));
}
