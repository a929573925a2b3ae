/* What the generating commands (generate, eval, ping-search) open the same way: a
 * backend, a model, its tokenizer, an optional adapter and the chat format. */
#include <stdio.h>
#include <string.h>

#include "agentlora/chat_template.h"
#include "agentlora/error.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "backend/backend.h"
#include "cli/cli.h"

int al_cli_model_open(struct al_cli_model *m, const char *model_dir, const char *adapter_dir,
                      const char *template_name, const char *device)
{
    memset(m, 0, sizeof *m);
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
