/* The GPU bundle (`make gpu-bundle`, bench/gpu/make_bundle.sh) on a machine without a
 * GPU: a copy of it in a fresh folder (as it arrives on a GPU machine) has every program and
 * every bundled library resolve each library it needs either inside the copy or from the
 * list of libraries a CUDA 13 GPU machine provides (never from this machine's own copies
 * of the bundled ones, never "not found"); its check_tools.py (which check.sh trusts) tells
 * equal adapters and losses from differing ones; and its check.sh runs the CPU-side phases,
 * says plainly that the GPU phases did not run, and exits 0.
 *
 * The bundle is AL_GPU_BUNDLE (the Makefile sets it; `make test` builds the bundle when
 * the CUDA backend is built). Without the CUDA backend there is no bundle: skipped. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agentlora/file.h"
#include "test_support.h"

#define MAX_PROVIDED 64
#define REQUIRED_PROGRAMS "agentlora", "test_gpu", "bench_train", "bench_cuda_ops", "gpu_check", "device_probe"

/* Runs a shell command, capturing stdout and stderr; returns its exit status. */
static int run_shell(char **output, const char *fmt, ...)
{
    char command[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(command, sizeof command, fmt, ap);
    va_end(ap);
    strncat(command, " 2>&1", sizeof command - strlen(command) - 1);
    FILE *p = popen(command, "r");
    cr_assert_not_null(p, "popen: %s", command);
    size_t size = 0, cap = 1 << 16;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    size_t got;
    while ((got = fread(text + size, 1, cap - size - 1, p)) > 0) {
        size += got;
        if (cap - size < 4096) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
        }
    }
    text[size] = '\0';
    int status = pclose(p);
    *output = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A copy of the bundle in a fresh temporary folder (its real path; caller frees). */
static char *copy_bundle(void)
{
    const char *bundle = getenv("AL_GPU_BUNDLE");
#ifndef AL_HAVE_CUDA
    cr_skip_test("built without the CUDA backend: there is no GPU bundle to check");
#endif
    cr_assert(bundle && *bundle, "AL_GPU_BUNDLE is not set (make test sets it)");
    char *check = al_path_join(bundle, "check.sh");
    cr_assert(al_file_exists(check), "%s is missing: run make gpu-bundle", check);
    free(check);
    char *tmp = test_tmpdir(), *output, resolved[PATH_MAX];
    cr_assert_not_null(tmp);
    cr_assert_not_null(realpath(tmp, resolved));
    cr_assert_eq(run_shell(&output, "cp -r '%s' '%s/bundle'", bundle, resolved), 0, "%s", output);
    free(output);
    free(tmp);
    return al_path_join(resolved, "bundle");
}

struct provided {
    char names[MAX_PROVIDED][256];
    int count;
};

static void read_provided(const char *bundle, struct provided *p)
{
    char *path = al_path_join(bundle, "gpu-provided-libraries.txt");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[256];
    p->count = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] && line[0] != '#' && p->count < MAX_PROVIDED)
            snprintf(p->names[p->count++], sizeof p->names[0], "%s", line);
    }
    fclose(f);
    free(path);
    cr_assert(p->count >= 10, "only %d provided libraries listed", p->count);
}

static bool is_provided(const struct provided *p, const char *soname)
{
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->names[i], soname))
            return true;
    return false;
}

/* Checks one ldd line: "soname => /path (0x...)", "soname => not found", or a line without
 * "=>" (the vDSO, the dynamic loader). Returns the number of problems reported. */
static int check_ldd_line(const char *file, const char *line, const char *bundle, const struct provided *p)
{
    char soname[256], path[PATH_MAX];
    if (sscanf(line, " %255s => %4095s", soname, path) != 2)
        return 0;
    if (!strcmp(path, "not")) {
        cr_log_error("%s: %s not found", file, soname);
        return 1;
    }
    if (is_provided(p, soname))
        return 0;
    char real[PATH_MAX];
    if (!realpath(path, real) || strncmp(real, bundle, strlen(bundle)) != 0 || real[strlen(bundle)] != '/') {
        cr_log_error("%s: %s resolves to %s, outside the bundle, and is not GPU-provided", file, soname, path);
        return 1;
    }
    return 0;
}

/* ldd of one file with LD_LIBRARY_PATH unset (a GPU machine's environment is not ours). */
static int check_file(const char *bundle, const char *file, const struct provided *p)
{
    char *output;
    cr_assert_eq(run_shell(&output, "env -u LD_LIBRARY_PATH ldd '%s'", file), 0, "ldd %s", file);
    int problems = 0;
    for (char *line = strtok(output, "\n"); line; line = strtok(NULL, "\n"))
        problems += check_ldd_line(file, line, bundle, p);
    free(output);
    return problems;
}

Test(gpu_bundle, every_library_resolves_inside_the_copy_or_from_the_gpu_list, .timeout = 60)
{
    char *bundle = copy_bundle(), *list;
    struct provided provided;
    read_provided(bundle, &provided);
    char *output;
    /* What check.sh does first on the GPU machine: unpack the gzipped libraries. */
    cr_assert_eq(run_shell(&output, "cd '%s/lib' && for f in *.gz; do [ -e \"$f\" ] && gzip -dc \"$f\" > \"${f%%.gz}\"; "
                                    "done; true", bundle), 0, "%s", output);
    free(output);
    static const char *const programs[] = {REQUIRED_PROGRAMS};
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        char *path = al_path_join(bundle, programs[i]);
        cr_assert(al_file_exists(path), "the bundle lacks %s", programs[i]);
        free(path);
    }
    cr_assert_eq(run_shell(&list, "cd '%s' && for f in * lib/*; do [ -f \"$f\" ] && head -c 4 \"$f\" | grep -q ELF && "
                                  "echo \"$f\"; done; true", bundle), 0);
    int files = 0, problems = 0, libraries = 0;
    for (char *name = list; *name;) {
        char *end = strchr(name, '\n');
        if (end)
            *end = '\0';
        char *file = al_path_join(bundle, name);
        problems += check_file(bundle, file, &provided);
        libraries += !strncmp(name, "lib/", 4);
        files++;
        free(file);
        if (!end)
            break;
        name = end + 1;
    }
    cr_expect_geq(libraries, 5, "only %d bundled libraries", libraries);
    cr_expect_eq(problems, 0, "%d unresolved or system-resolved libraries among %d files (see the log)", problems,
                 files);
    free(list);
    free(bundle);
}

Test(gpu_bundle, check_sh_without_a_gpu_runs_the_cpu_phases_and_exits_0, .timeout = 120)
{
    char *bundle = copy_bundle(), *output;
    int status = run_shell(&output, "AL_CHECK_GPU=0 AL_CHECK_REFERENCE_STEPS=3 '%s/check.sh' '%s/out'", bundle,
                           bundle);
    cr_assert_eq(status, 0, "check.sh exited %d:\n%s", status, output);
    cr_expect_not_null(strstr(output, "the GPU phases did NOT run"), "%s", output);
    char *summary_path = al_path_join(bundle, "out/summary.json");
    cJSON *summary = al_json_load_file(summary_path);
    cr_assert_not_null(summary, "no %s", summary_path);
    const cJSON *phase;
    int cpu_passed = 0, gpu_not_run = 0, others = 0;
    cJSON_ArrayForEach(phase, cJSON_GetObjectItem(summary, "phases"))
    {
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(phase, "kind"));
        const char *result = cJSON_GetStringValue(cJSON_GetObjectItem(phase, "status"));
        cr_assert(kind && result);
        if (!strcmp(kind, "cpu") && !strcmp(result, "pass"))
            cpu_passed++;
        else if (!strcmp(kind, "gpu") && !strcmp(result, "not_run"))
            gpu_not_run++;
        else
            others++;
    }
    cr_expect_eq(cpu_passed, 2, "the bundle and reference phases should pass:\n%s", output);
    cr_expect_geq(gpu_not_run, 8, "every GPU phase should be listed as not run:\n%s", output);
    cr_expect_eq(others, 0, "%s", output);
    char *md_path = al_path_join(bundle, "out/summary.md");
    cr_expect(al_file_exists(md_path), "no %s", md_path);
    free(md_path);
    cJSON_Delete(summary);
    free(summary_path);
    free(output);
    free(bundle);
}

/* A one-tensor F32 safetensors file holding values (header padded to 8 bytes). */
static char *write_adapter(const char *dir, const char *name, const float values[2])
{
    const char header[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ";
    uint64_t header_size = sizeof header - 1;
    char bytes[8 + sizeof header - 1 + 8];
    memcpy(bytes, &header_size, 8);
    memcpy(bytes + 8, header, header_size);
    memcpy(bytes + 8 + header_size, values, 8);
    return test_write_file(dir, name, bytes, sizeof bytes);
}

/* check.sh's verdicts rest on check_tools.py: equal inputs pass, a difference fails and is
 * measured (adapters: the largest absolute difference; losses: relative, against a tolerance). */
Test(gpu_bundle, check_tools_detect_differences_in_adapters_and_losses, .timeout = 30)
{
    char *bundle = copy_bundle(), *dir = test_tmpdir(), *output;
    const float a[2] = {1.0f, 2.0f}, b[2] = {1.0f, 2.5f};
    char *pa = write_adapter(dir, "a.safetensors", a), *pb = write_adapter(dir, "b.safetensors", b);
    cr_assert_eq(run_shell(&output, "python3 '%s/tools/check_tools.py' adapters '%s' '%s'", bundle, pa, pa), 0, "%s",
                 output);
    cr_expect_not_null(strstr(output, "\"identical\": true"), "%s", output);
    free(output);
    cr_assert_eq(run_shell(&output, "python3 '%s/tools/check_tools.py' adapters '%s' '%s'", bundle, pa, pb), 1, "%s",
                 output);
    cr_expect_not_null(strstr(output, "\"max_abs_difference\": 0.5"), "%s", output);
    free(output);

    const char cpu[] = "{\"kind\":\"train\",\"step\":1,\"loss\":2.0}\n{\"kind\":\"train\",\"step\":2,\"loss\":1.0}\n"
                       "{\"kind\":\"eval\",\"step\":2,\"loss\":9.0}\n";
    const char near[] = "{\"kind\":\"train\",\"step\":1,\"loss\":2.01}\n{\"kind\":\"train\",\"step\":2,\"loss\":1.01}\n";
    const char far[] = "{\"kind\":\"train\",\"step\":1,\"loss\":2.0}\n{\"kind\":\"train\",\"step\":2,\"loss\":1.05}\n";
    char *pc = test_write_file(dir, "cpu.jsonl", cpu, sizeof cpu - 1);
    char *pn = test_write_file(dir, "near.jsonl", near, sizeof near - 1);
    char *pf = test_write_file(dir, "far.jsonl", far, sizeof far - 1);
    cr_expect_eq(run_shell(&output, "python3 '%s/tools/check_tools.py' losses '%s' '%s' --tolerance 0.02", bundle, pc,
                           pn), 0, "%s", output);
    free(output);
    cr_expect_eq(run_shell(&output, "python3 '%s/tools/check_tools.py' losses '%s' '%s' --tolerance 0.02", bundle, pc,
                           pf), 1, "%s", output);
    cr_expect_not_null(strstr(output, "\"worst_step\": 2"), "%s", output);
    free(output);
    free(pa);
    free(pb);
    free(pc);
    free(pn);
    free(pf);
    free(dir);
    free(bundle);
}
