/* The teacher-forced loss of the records' own assistant answers, for evaluations of plain
 * chat data. Without reference tool calls there is nothing to score a response against,
 * and the four-criteria score would still hand every answer 1/4 for not refusing; the
 * loss (and its perplexity) on the reference answers is what such data can measure. The
 * records are rendered, tokenized and masked exactly as training does (al_example_build,
 * every assistant turn), one record per forward pass. */
#include <math.h>
#include <stdlib.h>

#include "agentlora/error.h"
#include "agentlora/evaluate.h"
#include "agentlora/example.h"
#include "agentlora/model.h"

bool al_eval_records_are_plain_chat(const struct al_eval_record *records, int n)
{
    for (int i = 0; i < n; i++) {
        const struct al_conversation *conv = records[i].conversation;
        if (conv->tools || al_reference_first_call(conv))
            return false;
    }
    return n > 0;
}

/* One example as a batch of one document: position i predicts token i + 1 where that
 * token is assistant output. */
struct one_document {
    int32_t *input_ids, *targets, *positions, *doc_start;
};

static int fill_batch(const struct al_example *example, struct one_document *d, struct al_batch *batch)
{
    size_t n = example->tokens.count;
    d->input_ids = malloc(n * sizeof *d->input_ids);
    d->targets = malloc(n * sizeof *d->targets);
    d->positions = malloc(n * sizeof *d->positions);
    d->doc_start = calloc(n, sizeof *d->doc_start);
    if (!d->input_ids || !d->targets || !d->positions || !d->doc_start)
        return al_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        d->input_ids[i] = example->tokens.ids[i];
        d->positions[i] = (int32_t)i;
        d->targets[i] = i + 1 < n && example->loss_mask[i + 1] ? example->tokens.ids[i + 1] : -1;
    }
    *batch = (struct al_batch){(int64_t)n, d->input_ids, d->targets, d->positions, d->doc_start};
    return 0;
}

static void free_document(struct one_document *d)
{
    free(d->input_ids);
    free(d->targets);
    free(d->positions);
    free(d->doc_start);
}

static int record_loss(const struct al_chat_generator *generator, const struct al_eval_record *record,
                       double *loss_sum, int64_t *tokens)
{
    struct al_example_options options = {.format = generator->format, .chat = generator->chat};
    options.chat.add_generation_prompt = false;
    options.chat.mask = AL_CHAT_MASK_ALL_ASSISTANT;
    struct al_example example;
    if (al_example_build(&example, generator->tokenizer, record->conversation, &options, "eval data",
                         record->record_number) != 0)
        return -1;
    int max_len = al_model_get_config(generator->model)->max_position_embeddings;
    struct one_document document = {0};
    struct al_batch batch;
    int rc = 0;
    if (example.n_trained == 0 || (int64_t)example.tokens.count > max_len) {
        /* Nothing to score (no assistant answer), or longer than the model's context:
         * left out, and the token count says how much was measured. */
    } else if ((rc = fill_batch(&example, &document, &batch)) == 0) {
        /* The loss runs the model in evaluation mode; only the workspace is written. */
        struct al_model *model = (struct al_model *)generator->model;
        struct al_workspace *workspace = al_workspace_create(model, generator->lora, batch.num_tokens, false);
        double sum = 0;
        rc = workspace ? al_model_loss(model, generator->lora, workspace, &batch, &sum) : -1;
        al_workspace_free(workspace);
        if (rc == 0) {
            *loss_sum += sum;
            *tokens += al_batch_count_targets(&batch);
        } else {
            al_error_context("reference loss of record %ld", record->record_number);
        }
    }
    free_document(&document);
    al_example_free(&example);
    return rc;
}

int al_eval_reference_loss(const struct al_chat_generator *generator, const struct al_eval_record *records, int n,
                           struct al_reference_loss *out)
{
    double sum = 0;
    int64_t tokens = 0;
    for (int i = 0; i < n; i++)
        if (record_loss(generator, &records[i], &sum, &tokens) != 0)
            return -1;
    out->tokens = tokens;
    out->loss = tokens > 0 ? sum / (double)tokens : 0.0;
    out->perplexity = tokens > 0 ? exp(out->loss) : 0.0;
    return 0;
}
