/* The reference-answer loss of plain-chat evaluation: the mean -log p of every assistant
 * token of the records, checked against log-softmax of the model's own logits over the
 * same rendered tokens (a path that does not go through the fused loss), and which data
 * counts as plain chat. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/example.h"
#include "agentlora/model.h"
#include "agentlora/tokenizer.h"
#include "model_testing.h"
#include "test_support.h"

static const char *const PLAIN[] = {
    "{\"instruction\": \"Name a colour.\", \"input\": \"\", \"output\": \"Blue.\"}",
    "{\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello there!\"},"
    " {\"from\": \"human\", \"value\": \"Bye\"}, {\"from\": \"gpt\", \"value\": \"Goodbye.\"}]}",
};
static const char *const WITH_TOOLS =
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Weather?\"}, {\"role\": \"assistant\", \"content\": null,"
    " \"tool_calls\": [{\"function\": {\"name\": \"weather\", \"arguments\": {}}}]}]}";

struct fixture {
    struct test_chat_model m; /* dir, backend, model, tokenizer */
    struct al_chat_generator gen;
};

static void open_fixture(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(test_chat_model_open(&f->m, 3, 0.1f), 0, "%s", al_error_message());
    f->gen = (struct al_chat_generator){f->m.model, NULL, f->m.tokenizer, AL_CHAT_CHATML_TOOLS, {0}};
}

static void close_fixture(struct fixture *f)
{
    test_chat_model_close(&f->m);
}

static void read_records(struct al_conversation *convs, struct al_eval_record *records, const char *const *texts, int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(al_conversation_from_text(&convs[i], texts[i], strlen(texts[i]), "test", i + 1), 0, "%s",
                     al_error_message());
        records[i] = (struct al_eval_record){&convs[i], i + 1};
    }
}

/* Sum of -log softmax(logits)[next token] over the example's assistant tokens. */
static double loss_from_logits(struct fixture *f, const struct al_conversation *conv, int64_t *tokens)
{
    struct al_example_options options = {.format = f->gen.format};
    struct al_example example;
    cr_assert_eq(al_example_build(&example, f->m.tokenizer, conv, &options, "test", 1), 0, "%s", al_error_message());
    int n = (int)example.tokens.count, vocab = al_model_get_config(f->m.model)->vocab_size;
    int32_t *positions = malloc((size_t)n * sizeof *positions), *starts = calloc((size_t)n, sizeof *starts);
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    for (int i = 0; i < n; i++) {
        positions[i] = i;
        targets[i] = -1;
    }
    struct al_batch batch = {n, example.tokens.ids, targets, positions, starts};
    float *logits = malloc((size_t)n * (size_t)vocab * sizeof *logits);
    struct al_workspace *workspace = al_workspace_create(f->m.model, NULL, n, false);
    cr_assert_eq(al_model_logits(f->m.model, NULL, workspace, &batch, logits), 0, "%s", al_error_message());
    double sum = 0;
    for (int i = 0; i + 1 < n; i++) {
        if (!example.loss_mask[i + 1])
            continue;
        const float *row = logits + (size_t)i * (size_t)vocab;
        double max = row[0], z = 0;
        for (int v = 1; v < vocab; v++)
            max = fmax(max, row[v]);
        for (int v = 0; v < vocab; v++)
            z += exp(row[v] - max);
        sum += -(row[example.tokens.ids[i + 1]] - max - log(z));
        (*tokens)++;
    }
    al_workspace_free(workspace);
    free(logits);
    free(positions);
    free(starts);
    free(targets);
    al_example_free(&example);
    return sum;
}

Test(reference_loss, is_the_mean_log_loss_of_every_assistant_token)
{
    struct fixture f;
    open_fixture(&f);
    struct al_conversation convs[2];
    struct al_eval_record records[2];
    read_records(convs, records, PLAIN, 2);
    struct al_reference_loss got;
    cr_assert_eq(al_eval_reference_loss(&f.gen, records, 2, &got), 0, "%s", al_error_message());
    int64_t tokens = 0;
    double sum = loss_from_logits(&f, &convs[0], &tokens) + loss_from_logits(&f, &convs[1], &tokens);
    cr_assert_eq(got.tokens, tokens, "tokens %lld, expected %lld", (long long)got.tokens, (long long)tokens);
    cr_assert(tokens > 8, "both assistant turns of the ShareGPT record count (%lld tokens)", (long long)tokens);
    cr_assert(fabs(got.loss - sum / (double)tokens) < 1e-4, "loss %.6f, from logits %.6f", got.loss,
              sum / (double)tokens);
    cr_assert(fabs(got.perplexity - exp(got.loss)) < 1e-9 * got.perplexity);
    for (int i = 0; i < 2; i++)
        al_conversation_free(&convs[i]);
    close_fixture(&f);
}

Test(reference_loss, plain_chat_means_no_tools_and_no_reference_call)
{
    struct al_conversation convs[3];
    struct al_eval_record records[3];
    const char *const texts[] = {PLAIN[0], PLAIN[1], WITH_TOOLS};
    read_records(convs, records, texts, 3);
    cr_assert(al_eval_records_are_plain_chat(records, 2));
    cr_assert(!al_eval_records_are_plain_chat(records, 3), "a record with a tool call makes the data agentic");
    cr_assert(!al_eval_records_are_plain_chat(records, 0), "no records is not plain chat");
    for (int i = 0; i < 3; i++)
        al_conversation_free(&convs[i]);
}
