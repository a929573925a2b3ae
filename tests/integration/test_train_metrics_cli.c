/* The numbers a training run reports agree with each other: tokens/s of each logged step
 * is the same in the progress line and in metrics.jsonl (and so TensorBoard, which gets the
 * same values). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "test_support.h"
#include "train_testing.h"

/* The tok/s of the progress line of `step` in a run's output, or -1. */
static double progress_rate(const char *output, int step)
{
    char needle[32];
    snprintf(needle, sizeof needle, "step %d/", step);
    const char *line = strstr(output, needle);
    const char *field = line ? strstr(line, " tok/s") : NULL;
    if (!field)
        return -1;
    while (field > line && field[-1] != ' ')
        field--;
    return atof(field);
}

Test(train_metrics_cli, tokens_per_second_is_the_same_in_the_progress_line_and_metrics_jsonl, .timeout = 60)
{
    char *root = test_tmpdir();
    char *model = al_path_join(root, "model"), *out = al_path_join(root, "out");
    cr_assert_eq(test_write_trainable_model(model), 0, "%s", al_error_message());
    char *output = NULL;
    int status = test_run_cli(&output, "train", "--model", model, "--train_data", "data/agentalign_sample.json",
                              "--chat_format", "chatml-qwen2.5", "--max_len", TRAIN_TEST_MAX_LEN, "--max_steps", "4",
                              "--warmup_steps", "1", "--lora_r", "4", "--device", "cpu", "--output_dir", out,
                              "--run_name", "rate", NULL);
    cr_assert_eq(status, 0, "%s", output);
    char *metrics_path = al_strdup_printf("%s/rate/metrics.jsonl", out);
    char *metrics = al_file_read_all(metrics_path, NULL);
    cr_assert_not_null(metrics, "%s", al_error_message());
    int compared = 0;
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *record = cJSON_Parse(line);
        if (strcmp(cJSON_GetObjectItem(record, "kind")->valuestring, "train") == 0) {
            int step = (int)cJSON_GetObjectItem(record, "step")->valuedouble;
            double logged = cJSON_GetObjectItem(record, "tokens_per_second")->valuedouble;
            double shown = progress_rate(output, step);
            cr_expect(fabs(round(logged) - shown) <= 0.5, "step %d: metrics.jsonl %.1f tok/s, progress line %.0f",
                      step, logged, shown);
            compared++;
        }
        cJSON_Delete(record);
    }
    cr_assert_eq(compared, 4);
    free(metrics);
    free(metrics_path);
    free(output);
    free(out);
    free(model);
    free(root);
}
