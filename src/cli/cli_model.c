/* What the generating commands (generate, eval, ping-search) open the same way: a
 * backend, a model (a folder, or a GGUF file converted once into a folder), its tokenizer,
 * an optional adapter and the chat format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/error.h"
#include "agentlora/gguf.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "cli/cli.h"

/* F32, the CPU reference's dtype: dequantised values are kept exactly (the CUDA backend
 * rounds weights to BF16 as it loads them, whatever the folder holds). */
#define GGUF_FOLDER_DTYPE AL_DTYPE_F32

char *al_cli_model_folder(const char *path)
{
    if (!al_path_is_gguf(path)) {
        char *copy = strdup(path);
        return copy ? copy : al_fail_null("out of memory");
    }
    char *dir = al_gguf_model_dir(path, GGUF_FOLDER_DTYPE);
    if (dir)
        fprintf(stderr, "agentlora: %s is a GGUF file; using %s, converted from it on first use\n", path, dir);
    return dir;
}

static int open_folder(struct al_cli_model *m, const char *model_dir, const char *adapter_dir,
                       const char *template_name, const char *device)
{
    if (!(m->backend = al_backend_create(device))) {
        al_error_context("--device %s", device);
        return -1;
    }
    if (!(m->model = al_model_load(model_dir, m->backend)) || !(m->tokenizer = al_tokenizer_load(model_dir)))
        return -1;
    if (adapter_dir && !(m->lora = al_lora_load_peft(al_model_get_config(m->model), m->backend, adapter_dir)))
        return -1;
    m->generator = (struct al_chat_generator){m->model, m->lora, m->tokenizer, 0, {0}};
    /* Tool-call arguments as objects: the form the models emit, as training renders them. */
    m->generator.chat.string_arguments_as_objects = true;
    return al_chat_format_for_model(model_dir, template_name, &m->generator.format);
}

int al_cli_model_open(struct al_cli_model *m, const char *model_path, const char *adapter_dir,
                      const char *template_name, const char *device)
{
    memset(m, 0, sizeof *m);
    char *model_dir = al_cli_model_folder(model_path);
    if (!model_dir)
        return -1;
    int rc = open_folder(m, model_dir, adapter_dir, template_name, device);
    free(model_dir);
    return rc;
}

int al_cli_model_disable_thinking(struct al_cli_model *m)
{
    if (m->generator.format != AL_CHAT_QWEN3)
        return al_fail("--no-thinking applies to the qwen3 chat format only; this model renders with %s "
                       "(--template qwen3 to choose it)",
                       al_chat_format_name(m->generator.format));
    m->generator.chat.disable_thinking = true;
    return 0;
}

void al_cli_model_close(struct al_cli_model *m)
{
    al_tokenizer_free(m->tokenizer);
    al_lora_free(m->lora);
    al_model_free(m->model);
    al_backend_destroy(m->backend);
    memset(m, 0, sizeof *m);
}

int al_cli_usage_error(const char *command, void (*usage)(FILE *out), const char *fmt, const char *value)
{
    fprintf(stderr, "agentlora %s: ", command);
    fprintf(stderr, fmt, value);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return AL_EXIT_USAGE;
}
