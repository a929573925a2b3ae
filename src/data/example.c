/* A conversation becomes a training example: rendered text, tokens, loss mask. */
#include "agentlora/example.h"

#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"

static int first_assistant(const struct al_conversation *conv)
{
    for (int i = 0; i < conv->n_messages; i++)
        if (conv->messages[i].role == AL_ROLE_ASSISTANT)
            return i;
    return -1;
}

/* The first assistant message's content with the prefix in front (a space between them
 * when there is content), for the duration of one render. */
static char *prefixed_content(const char *prefix, const char *content)
{
    size_t prefix_length = strlen(prefix), content_length = strlen(content);
    char *joined = malloc(prefix_length + content_length + 2);
    if (!joined)
        return NULL;
    memcpy(joined, prefix, prefix_length);
    size_t used = prefix_length;
    if (content_length > 0)
        joined[used++] = ' ';
    memcpy(joined + used, content, content_length + 1);
    return joined;
}

static int render(struct al_example *example, const struct al_conversation *conv,
                  const struct al_example_options *options, const char *source, long record_number)
{
    int index = options->ping_prefix ? first_assistant(conv) : -1;
    if (options->ping_prefix && index < 0)
        return al_fail("%s: record %ld: no assistant response to open with the PING prefix", source, record_number);
    struct al_message *message = index >= 0 ? &conv->messages[index] : NULL;
    char *original = message ? message->content : NULL;
    if (message && !(message->content = prefixed_content(options->ping_prefix, original))) {
        message->content = original;
        return al_fail("out of memory");
    }
    int rc = al_chat_render(options->format, conv, &options->chat, &example->rendered);
    if (message) {
        free(message->content);
        message->content = original;
    }
    if (rc != 0) {
        al_error_context("%s: record %ld", source, record_number);
        return -1;
    }
    if (options->ping_prefix && !strstr(example->rendered.text, options->ping_prefix))
        return al_fail("%s: record %ld: the %s chat format cannot carry the PING prefix in this response (its "
                       "template drops text before a tool call)",
                       source, record_number, al_chat_format_name(options->format));
    return 0;
}

/* A token is trained on when it starts inside an assistant span. */
static void build_mask(struct al_example *example)
{
    const struct al_rendered_chat *r = &example->rendered;
    int span = 0;
    for (size_t i = 0; i < example->tokens.count; i++) {
        size_t offset = example->tokens.offsets[i];
        while (span < r->n_spans && r->spans[span].end <= offset)
            span++;
        bool inside = span < r->n_spans && r->spans[span].begin <= offset;
        example->loss_mask[i] = inside;
        example->n_trained += inside;
    }
}

int al_example_build(struct al_example *example, const struct al_tokenizer *tokenizer,
                     const struct al_conversation *conv, const struct al_example_options *options,
                     const char *source, long record_number)
{
    memset(example, 0, sizeof *example);
    if (render(example, conv, options, source, record_number) != 0) {
        al_example_free(example);
        return -1;
    }
    /* The rendered text already holds BOS and every special token as text. */
    if (al_tokenizer_encode(tokenizer, example->rendered.text, example->rendered.length, AL_TOKENIZE_PARSE_SPECIAL,
                            &example->tokens) != 0) {
        al_error_context("%s: record %ld", source, record_number);
        al_example_free(example);
        return -1;
    }
    example->loss_mask = calloc(example->tokens.count + 1, 1);
    if (!example->loss_mask) {
        al_example_free(example);
        return al_fail("out of memory");
    }
    build_mask(example);
    return 0;
}

void al_example_free(struct al_example *example)
{
    al_rendered_chat_free(&example->rendered);
    al_tokens_free(&example->tokens);
    free(example->loss_mask);
    memset(example, 0, sizeof *example);
}
