/* gpu_check decode: greedy decoding throughput with the KV cache (src/model/decode.c),
 * as `agentlora generate` decodes: B sequences are prefilled with P random token ids
 * each, then N steps append one token per sequence, the argmax of its logits. Reports the
 * prefill time and the decode rate (B*N tokens over the N steps' time, logits copied to
 * the host each step, as generation needs them). bench/gpu/generate_hf.py measures
 * transformers' generate the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/generate.h"
#include "agentlora/model.h"
#include "agentlora/rng.h"
#include "backend/backend.h"
#include "gpu_check.h"

struct decode_options {
    const char *model_dir, *device;
    long batch, prompt, new_tokens;
};

static int parse(int argc, char **argv, struct decode_options *o)
{
    *o = (struct decode_options){.device = "cuda", .batch = 1, .prompt = 128, .new_tokens = 128};
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i], *v = gpu_check_value(argc, argv, &i);
        if (!v)
            return -1;
        int rc = 0;
        if (!strcmp(flag, "--model"))
            o->model_dir = v;
        else if (!strcmp(flag, "--device"))
            o->device = v;
        else if (!strcmp(flag, "--batch"))
            rc = gpu_check_int(flag, v, 1, 1024, &o->batch);
        else if (!strcmp(flag, "--prompt"))
            rc = gpu_check_int(flag, v, 1, 1 << 16, &o->prompt);
        else if (!strcmp(flag, "--new"))
            rc = gpu_check_int(flag, v, 1, 1 << 16, &o->new_tokens);
        else {
            fprintf(stderr, "gpu_check decode: unknown option '%s'\n", flag);
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (!o->model_dir)
        fprintf(stderr, "gpu_check decode: --model DIR is required\n");
    return o->model_dir ? 0 : -1;
}

static int argmax(const float *row, int vocab)
{
    int best = 0;
    for (int v = 1; v < vocab; v++)
        best = row[v] > row[best] ? v : best;
    return best;
}

/* Prefills every sequence with prompt random ids, in steps of at most step_tokens tokens;
 * next[s] receives sequence s's first greedy token. */
static int prefill(struct al_decoder *d, const struct decode_options *o, int vocab, int step_tokens, float *logits,
                   int32_t *next)
{
    int64_t total = o->batch * o->prompt;
    int32_t *seq = malloc((size_t)step_tokens * sizeof(int32_t)), *ids = malloc((size_t)step_tokens * sizeof(int32_t));
    bool *want = malloc((size_t)step_tokens * sizeof(bool));
    int rc = seq && ids && want ? 0 : al_fail("out of memory for the prefill");
    struct al_rng rng;
    al_rng_seed(&rng, 7, 1);
    for (int64_t start = 0; rc == 0 && start < total; start += step_tokens) {
        int64_t n = total - start < step_tokens ? total - start : step_tokens;
        int wanted = 0, first_seq = -1;
        for (int64_t i = 0; i < n; i++) {
            seq[i] = (int32_t)((start + i) / o->prompt);
            ids[i] = (int32_t)al_rng_below(&rng, (uint32_t)vocab);
            want[i] = (start + i) % o->prompt == o->prompt - 1;
            if (want[i] && first_seq < 0)
                first_seq = seq[i];
            wanted += want[i];
        }
        rc = al_decoder_step(d, seq, ids, n, want, logits);
        for (int w = 0; rc == 0 && w < wanted; w++)
            next[first_seq + w] = argmax(logits + (int64_t)w * vocab, vocab);
    }
    free(seq);
    free(ids);
    free(want);
    return rc;
}

static int decode_steps(struct al_decoder *d, const struct decode_options *o, int vocab, float *logits, int32_t *next)
{
    int32_t *seq = malloc((size_t)o->batch * sizeof(int32_t));
    if (!seq)
        return al_fail("out of memory");
    for (long s = 0; s < o->batch; s++)
        seq[s] = (int32_t)s;
    int rc = 0;
    for (long step = 0; rc == 0 && step < o->new_tokens; step++) {
        rc = al_decoder_step(d, seq, next, o->batch, NULL, logits);
        for (long s = 0; rc == 0 && s < o->batch; s++)
            next[s] = argmax(logits + s * vocab, vocab);
    }
    free(seq);
    return rc;
}

int gpu_check_decode(int argc, char **argv)
{
    struct decode_options o;
    if (parse(argc, argv, &o) != 0)
        return 2;
    struct al_backend *backend = al_backend_create(o.device);
    struct al_model *model = backend ? al_model_load(o.model_dir, backend) : NULL;
    int vocab = model ? al_model_get_config(model)->vocab_size : 0;
    int step_tokens = o.batch > AL_DECODER_DEFAULT_STEP_TOKENS ? (int)o.batch : AL_DECODER_DEFAULT_STEP_TOKENS;
    struct al_decoder *d =
        model ? al_decoder_create(model, NULL, (int)o.batch, (int)(o.prompt + o.new_tokens + 1), step_tokens) : NULL;
    float *logits = d ? malloc((size_t)step_tokens * (size_t)vocab * sizeof(float)) : NULL;
    int32_t *next = d ? malloc((size_t)o.batch * sizeof(int32_t)) : NULL;
    int rc = logits && next ? 0 : -1;
    double t0 = gpu_check_now(), t1 = 0, t2 = 0;
    if (rc == 0 && (rc = prefill(d, &o, vocab, step_tokens, logits, next)) == 0) {
        t1 = gpu_check_now();
        rc = decode_steps(d, &o, vocab, logits, next);
        t2 = gpu_check_now();
    }
    if (rc == 0)
        printf("{\"engine\": \"agentlora\", \"device\": \"%s\", \"batch\": %ld, \"prompt\": %ld, \"new_tokens\": %ld, "
               "\"prefill_s\": %.4f, \"decode_s\": %.4f, \"decode_tokens_per_s\": %.1f, \"ms_per_step\": %.3f}\n",
               o.device, o.batch, o.prompt, o.new_tokens, t1 - t0, t2 - t1,
               (double)(o.batch * o.new_tokens) / (t2 - t1), 1e3 * (t2 - t1) / (double)o.new_tokens);
    else
        fprintf(stderr, "gpu_check decode: %s\n", al_error_message());
    free(logits);
    free(next);
    al_decoder_free(d);
    al_model_free(model);
    if (backend)
        al_backend_destroy(backend);
    return rc == 0 ? 0 : 1;
}
