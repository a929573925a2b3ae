/* First-contact messages of the command line: --version, a Hub id where a model folder
 * belongs, and the CUDA device on a machine without an NVIDIA GPU. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlora/version.h"
#include "test_support.h"

Test(cli_messages, version_prints_the_release)
{
    char *output = NULL;
    cr_assert_eq(test_run_cli(&output, "--version", NULL), 0, "%s", output);
    cr_assert(strncmp(output, "agentlora " AL_VERSION " (", strlen("agentlora " AL_VERSION " (")) == 0, "%s",
              output);
    free(output);
}

Test(cli_messages, train_on_a_hub_id_says_how_to_download_it, .timeout = 30)
{
    char *dir = test_tmpdir();
    char *output = NULL;
    int status = test_run_cli(&output, "train", "--model", "HuggingFaceTB/SmolLM2-135M-Instruct", "--train_data",
                              "data/agentalign_sample.json", "--output_dir", dir, NULL);
    cr_assert_eq(status, 1, "%s", output);
    cr_assert(strstr(output, "looks like a Hugging Face Hub id") && strstr(output, "huggingface-cli download"), "%s",
              output);
    free(output);
    free(dir);
}

/* Only meaningful where no NVIDIA GPU is present (the CPU machines tests run on). */
Test(cli_messages, cuda_without_a_gpu_says_no_nvidia_gpu_found, .timeout = 30)
{
    if (access("/dev/nvidia0", F_OK) == 0)
        cr_skip_test("an NVIDIA GPU is present");
    char *output = NULL;
    int status = test_run_cli(&output, "logits", "--model", "data/no-such-model", "--ids", "1 2", "--device", "cuda",
                              NULL);
    cr_assert_neq(status, 0, "%s", output);
    cr_assert(strstr(output, "no NVIDIA GPU found") || strstr(output, "built without CUDA"), "%s", output);
    free(output);
}
