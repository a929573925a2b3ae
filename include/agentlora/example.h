/* Training examples: a conversation rendered with the model's chat template, tokenized
 * with the model's tokenizer, and the loss mask of its assistant output (the text and
 * tool calls of the assistant turns, end-of-turn token included). With a PING prefix in
 * train mode, the prefix opens the first assistant response and is trained on. */
#ifndef AGENTLORA_EXAMPLE_H
#define AGENTLORA_EXAMPLE_H

#include <stdint.h>

#include "agentlora/chat_template.h"
#include "agentlora/conversation.h"
#include "agentlora/tokenizer.h"

struct al_example_options {
    enum al_chat_format format;
    struct al_chat_options chat; /* mask (all or last assistant turn), Llama 3 date, ... */
    const char *ping_prefix;     /* opens the first assistant response, or NULL */
};

struct al_example {
    struct al_rendered_chat rendered;
    struct al_tokens tokens;
    uint8_t *loss_mask;  /* per token: 1 when the token is assistant output */
    int64_t n_trained;   /* tokens with mask 1 */
};

/* Renders, tokenizes and masks one conversation. Errors name source and record. A PING
 * prefix that the chat format cannot carry (the Llama 3 and Mistral templates drop or
 * refuse text before a tool call) is an error rather than a silent omission. */
int al_example_build(struct al_example *example, const struct al_tokenizer *tokenizer,
                     const struct al_conversation *conv, const struct al_example_options *options,
                     const char *source, long record_number);
void al_example_free(struct al_example *example);

#endif
