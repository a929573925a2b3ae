/* Chat-level generation: a conversation's prompt rendered by its chat template, the
 * forced prefix (PING eval mode) placed after the assistant header, the whole text
 * tokenized as training tokenizes a rendered conversation, generation, and the new
 * tokens decoded into the completion, which never contains the prefix. */
#include <stdlib.h>
#include <string.h>

#include "agentlora/conversation.h"
#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"

void al_chat_generation_free(struct al_chat_generation *generation)
{
    free(generation->prompt);
    free(generation->prefix);
    free(generation->completion);
    free(generation->completion_ids);
    memset(generation, 0, sizeof *generation);
}

/* A shallow view of the conversation that ends before its first assistant message: the
 * model is asked for that first response (to a harmful request, the refusal the judge
 * looks for). A conversation without assistant messages is kept whole. */
static struct al_conversation up_to_first_response(const struct al_conversation *conv)
{
    struct al_conversation view = *conv;
    for (int i = 0; i < conv->n_messages; i++)
        if (conv->messages[i].role == AL_ROLE_ASSISTANT) {
            view.n_messages = i;
            break;
        }
    return view;
}

/* Renders prompt i with its prefix; out gets the prompt (without the prefix) and the
 * prefix; tokens gets the ids of prompt and prefix together. The prefix is tokenized
 * with the prompt, not on its own, because training saw it that way: inside the rendered
 * assistant response, where a token may span the header's last byte and its first. */
static int render_prompt(const struct al_chat_generator *gen, const struct al_chat_prompt *prompt,
                         struct al_chat_generation *out, struct al_tokens *tokens)
{
    const char *prefix = prompt->prefix ? prompt->prefix : "";
    struct al_chat_options chat = gen->chat;
    chat.add_generation_prompt = true;
    chat.assistant_prefix = *prefix ? prefix : NULL;
    struct al_rendered_chat rendered;
    struct al_conversation view = up_to_first_response(prompt->conversation);
    if (al_chat_render_prompt(gen->format, &view, &chat, &rendered) != 0)
        return -1;
    size_t prefix_length = strlen(prefix);
    int rc = 0;
    if (rendered.length < prefix_length || memcmp(rendered.text + rendered.length - prefix_length, prefix,
                                                  prefix_length) != 0)
        rc = al_fail("the rendered prompt does not end with the prefix");
    if (rc == 0) {
        out->prompt = strndup(rendered.text, rendered.length - prefix_length);
        out->prefix = strdup(prefix);
        if (!out->prompt || !out->prefix)
            rc = al_fail("out of memory");
    }
    if (rc == 0)
        rc = al_tokenizer_encode(gen->tokenizer, rendered.text, rendered.length, AL_TOKENIZE_PARSE_SPECIAL, tokens);
    al_rendered_chat_free(&rendered);
    return rc;
}

/* Moves a token generation's ids into the chat result and decodes them. */
static int take_completion(const struct al_chat_generator *gen, struct al_token_generation *tokens,
                           struct al_chat_generation *out)
{
    out->completion = al_tokenizer_decode(gen->tokenizer, tokens->ids, (size_t)tokens->count, false, NULL);
    if (!out->completion)
        return -1;
    out->completion_ids = tokens->ids;
    out->completion_count = tokens->count;
    out->stop = tokens->stop;
    out->stop_id = tokens->stop_id;
    tokens->ids = NULL;
    return 0;
}

/* The options with the stop ids filled in from the tokenizer and model when none were
 * given. */
static struct al_generate_options with_stop_ids(const struct al_chat_generator *gen,
                                                const struct al_generate_options *options)
{
    struct al_generate_options resolved = *options;
    if (resolved.n_stop_ids == 0)
        resolved.n_stop_ids = al_generate_stop_ids(gen->tokenizer, al_model_get_config(gen->model),
                                                   resolved.stop_ids, AL_GENERATE_MAX_STOP_IDS);
    return resolved;
}

int al_generate_chat(const struct al_chat_generator *gen, const struct al_chat_prompt *prompts, int n,
                     const struct al_generate_options *options, struct al_chat_generation *out)
{
    if (n <= 0)
        return al_fail("generate: no prompts");
    struct al_generate_options resolved = with_stop_ids(gen, options);
    memset(out, 0, (size_t)n * sizeof *out);
    struct al_tokens *tokens = calloc((size_t)n, sizeof *tokens);
    struct al_token_prompt *token_prompts = calloc((size_t)n, sizeof *token_prompts);
    struct al_token_generation *generated = calloc((size_t)n, sizeof *generated);
    int rc = tokens && token_prompts && generated ? 0 : al_fail("generate: out of memory");
    for (int i = 0; rc == 0 && i < n; i++) {
        if (render_prompt(gen, &prompts[i], &out[i], &tokens[i]) != 0) {
            al_error_context("prompt %d", i);
            rc = -1;
            break;
        }
        out[i].prompt_tokens = (int)tokens[i].count;
        token_prompts[i] = (struct al_token_prompt){tokens[i].ids, (int)tokens[i].count, prompts[i].stream};
    }
    if (rc == 0)
        rc = al_generate_tokens(gen->model, gen->lora, token_prompts, n, &resolved, generated);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = take_completion(gen, &generated[i], &out[i]);
    for (int i = 0; generated && i < n; i++)
        al_token_generation_free(&generated[i]);
    for (int i = 0; tokens && i < n; i++)
        al_tokens_free(&tokens[i]);
    free(tokens);
    free(token_prompts);
    free(generated);
    if (rc != 0)
        for (int i = 0; i < n; i++)
            al_chat_generation_free(&out[i]);
    return rc;
}
