/* `agentlora logits` end to end: the binary on the golden model, its output file, and
 * its errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/safetensors.h"
#include "test_support.h"

#define GOLDEN "tests/golden/llama_tiny/"

/* The first sequence of the golden batch, whose logits transformers + PEFT computed. */
static void golden_first_sequence(char *ids_text, size_t size, int *length, float **reference, int *vocab)
{
    struct al_safetensors *expected = al_safetensors_open(GOLDEN "expected.safetensors");
    cr_assert_not_null(expected, "%s", al_error_message());
    const struct al_tensor_view *ids = al_safetensors_find(expected, "input_ids");
    const struct al_tensor_view *logits = al_safetensors_find(expected, "logits");
    *length = ((const int32_t *)al_safetensors_find(expected, "lengths")->data)[0];
    *vocab = (int)logits->shape[2];
    size_t used = 0;
    for (int t = 0; t < *length; t++)
        used += (size_t)snprintf(ids_text + used, size - used, "%s%d", t ? " " : "", ((const int32_t *)ids->data)[t]);
    *reference = malloc((size_t)*length * (size_t)*vocab * sizeof(float));
    memcpy(*reference, logits->data, (size_t)*length * (size_t)*vocab * sizeof(float));
    al_safetensors_close(expected);
}

Test(logits_cli, writes_the_logits_transformers_computed)
{
    char ids[1024];
    int length, vocab;
    float *reference;
    golden_first_sequence(ids, sizeof ids, &length, &reference, &vocab);
    char *dir = test_tmpdir();
    char *out_path = al_path_join(dir, "logits.safetensors");
    char *output = NULL;
    int status = test_run_cli(&output, "logits", "--model", GOLDEN "model", "--adapter", GOLDEN "adapter", "--ids",
                              ids, "--out", out_path, NULL);
    cr_assert_eq(status, 0, "%s", output);
    cr_assert(strstr(output, "top-5 logits"), "%s", output);
    struct al_safetensors *written = al_safetensors_open(out_path);
    cr_assert_not_null(written, "%s", al_error_message());
    const struct al_tensor_view *logits = al_safetensors_find(written, "logits");
    cr_assert_not_null(logits);
    cr_assert_eq(logits->shape[0], length);
    cr_assert_eq(logits->shape[1], vocab);
    double error = test_max_rel_error(logits->data, reference, (int64_t)length * vocab, 1e-6);
    cr_assert_lt(error, 1e-4, "relative error %g against transformers + PEFT", error);
    al_safetensors_close(written);
    free(output);
    free(out_path);
    free(dir);
    free(reference);
}

Test(logits_cli, usage_errors_exit_2_and_bad_input_exits_1)
{
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "logits", "--ids", "1 2", NULL), 2, "%s", output);
    cr_assert(strstr(output, "--model"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "logits", "--model", GOLDEN "model", "--ids", "1 x", NULL), 1, "%s", output);
    cr_assert(strstr(output, "not a token id"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "logits", "--model", GOLDEN "model", "--ids", "1 999", NULL), 1, "%s", output);
    cr_assert(strstr(output, "outside the vocabulary"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "logits", "--model", "/nonexistent/model", "--ids", "1", NULL), 1, "%s",
                 output);
    cr_assert(strstr(output, "/nonexistent/model"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "logits", "--model", GOLDEN "model", "--adapter", GOLDEN "model", "--ids",
                              "1", NULL),
                 1, "%s", output);
    cr_assert(strstr(output, "adapter_config.json"), "%s", output);
    free(output);
    cr_assert_eq(test_run_cli(&output, "logits", "--help", NULL), 0);
    cr_assert(strstr(output, "--adapter"), "%s", output);
    free(output);
}
