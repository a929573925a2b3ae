/* gpu_check parity: one backend (normally cuda) against the CPU reference on the same
 * model folder and the same packed batch of two documents, with the same non-zero random
 * LoRA adapter on both (B is random too, so the gradients of A are not zero as they are
 * at a fresh adapter's first step). Compares the logits of every position, the loss, and
 * every LoRA gradient tensor, and prints the errors as one JSON object.
 *
 * Tolerances (bf16 activations on the GPU, F32 on the CPU, so a few 2^-9 relative roundings
 * per op compound through the blocks): see the PARITY_* values below. They are first
 * estimates, not yet checked against a GPU run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/model.h"
#include "agentlora/rng.h"
#include "backend/backend.h"
#include "gpu_check.h"

/* Largest |logit difference| relative to the largest |CPU logit| (as tests/gpu/test_gpu_decoder.c). */
#define PARITY_LOGIT_TOLERANCE 5e-2
#define PARITY_LOSS_TOLERANCE 1e-2     /* |loss difference| / |CPU loss| */
#define PARITY_GRAD_TOLERANCE 2e-2     /* ||g - g_cpu|| / ||g_cpu|| over all LoRA gradients */
#define PARITY_GRAD_WORST_TOLERANCE 1e-1 /* the same for the worst single tensor */
#define ADAPTER_STD 0.02f
#define LORA_RANK 8
#define SEED 1234

struct side {
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
    struct al_workspace *workspace;
};

struct packed {
    int32_t *ids, *targets, *positions, *doc_start;
    struct al_batch batch;
};

static void side_close(struct side *s)
{
    al_workspace_free(s->workspace);
    al_lora_free(s->lora);
    al_model_free(s->model);
    if (s->backend)
        al_backend_destroy(s->backend);
}

static int side_open(struct side *s, const char *device, const char *model_dir, const float *adapter,
                     int64_t tokens)
{
    struct al_lora_config lora = {.rank = LORA_RANK, .alpha = 2.0f * LORA_RANK, .target_mask = AL_LORA_ALL_TARGETS};
    *s = (struct side){0};
    if (!(s->backend = al_backend_create(device)) || !(s->model = al_model_load(model_dir, s->backend)))
        return -1;
    s->lora = al_lora_create(al_model_get_config(s->model), s->backend, &lora, SEED);
    if (!s->lora)
        return -1;
    if (adapter && s->backend->ops->copy_to_backend(s->backend, s->lora->params, adapter,
                                                    (size_t)s->lora->num_params * sizeof(float)) != 0)
        return -1;
    s->workspace = al_workspace_create(s->model, s->lora, tokens, false);
    return s->workspace ? 0 : -1;
}

/* The CPU's fresh adapter with every element redrawn: A and B both non-zero. */
static float *random_adapter(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p)
        return al_fail_null("out of memory for %lld adapter values", (long long)n);
    struct al_rng rng;
    al_rng_seed(&rng, SEED, 3);
    for (int64_t i = 0; i < n; i++)
        p[i] = ADAPTER_STD * al_rng_normal(&rng);
    return p;
}

/* Two documents, of 5/8 and 3/8 of the tokens, of random ids. */
static int packed_make(struct packed *p, int64_t n, int vocab)
{
    p->ids = malloc((size_t)n * sizeof(int32_t));
    p->targets = malloc((size_t)n * sizeof(int32_t));
    p->positions = malloc((size_t)n * sizeof(int32_t));
    p->doc_start = malloc((size_t)n * sizeof(int32_t));
    if (!p->ids || !p->targets || !p->positions || !p->doc_start)
        return al_fail("out of memory for %lld tokens", (long long)n);
    struct al_rng rng;
    al_rng_seed(&rng, SEED, 5);
    int64_t second = n * 5 / 8;
    for (int64_t i = 0; i < n; i++)
        p->ids[i] = (int32_t)al_rng_below(&rng, (uint32_t)vocab);
    for (int64_t i = 0; i < n; i++) {
        int64_t start = i < second ? 0 : second, end = i < second ? second : n;
        p->doc_start[i] = (int32_t)start;
        p->positions[i] = (int32_t)(i - start);
        p->targets[i] = i + 1 < end ? p->ids[i + 1] : -1;
    }
    p->batch = (struct al_batch){n, p->ids, p->targets, p->positions, p->doc_start};
    return 0;
}

static void packed_free(struct packed *p)
{
    free(p->ids);
    free(p->targets);
    free(p->positions);
    free(p->doc_start);
}

struct logit_errors {
    double relative_max; /* max |d| / max |cpu| */
    double argmax_agreement;
};

static struct logit_errors compare_logits(const float *cpu, const float *dev, int64_t n, int vocab)
{
    double largest = 0, worst = 0;
    int64_t agree = 0;
    for (int64_t t = 0; t < n; t++) {
        int best_cpu = 0, best_dev = 0;
        for (int v = 0; v < vocab; v++) {
            int64_t i = t * vocab + v;
            largest = fmax(largest, fabs(cpu[i]));
            worst = fmax(worst, fabs((double)dev[i] - cpu[i]));
            best_cpu = cpu[i] > cpu[t * vocab + best_cpu] ? v : best_cpu;
            best_dev = dev[i] > dev[t * vocab + best_dev] ? v : best_dev;
        }
        agree += best_cpu == best_dev;
    }
    return (struct logit_errors){largest > 0 ? worst / largest : worst, n ? (double)agree / (double)n : 1};
}

struct grad_errors {
    double relative_l2, worst_tensor;
    char worst_name[64];
};

static double squared_distance(const float *a, const float *b, int64_t n, double *norm_a)
{
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)a[i] * a[i];
    }
    *norm_a += s;
    return d;
}

/* Relative L2 error over all gradients, and per A or B tensor of each layer and target. */
static struct grad_errors compare_grads(const struct al_lora *lora, const float *cpu, const float *dev)
{
    struct grad_errors e = {0};
    double total_d = 0, total_n = 0;
    snprintf(e.worst_name, sizeof e.worst_name, "none");
    for (int layer = 0; layer < lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            const struct al_lora_slot *s = &lora->slots[layer][t];
            if (!s->present)
                continue;
            int64_t sizes[2] = {(int64_t)s->in * lora->config.rank, (int64_t)s->out * lora->config.rank};
            int64_t offsets[2] = {s->a_offset, s->b_offset};
            for (int ab = 0; ab < 2; ab++) {
                double norm = 0, d = squared_distance(cpu + offsets[ab], dev + offsets[ab], sizes[ab], &norm);
                total_d += d;
                total_n += norm;
                double rel = norm > 0 ? sqrt(d / norm) : sqrt(d);
                if (rel > e.worst_tensor) {
                    e.worst_tensor = rel;
                    snprintf(e.worst_name, sizeof e.worst_name, "layers.%d.%s.lora_%c", layer,
                             al_lora_target_name((enum al_lora_target)t), ab ? 'B' : 'A');
                }
            }
        }
    }
    e.relative_l2 = total_n > 0 ? sqrt(total_d / total_n) : sqrt(total_d);
    return e;
}

/* Logits (host [n, vocab]), loss sum and gradients (host) of one side. */
static int run_side(struct side *s, const struct packed *p, float *logits, double *loss, float *grads)
{
    int64_t targets = al_batch_count_targets(&p->batch);
    if (al_model_logits(s->model, s->lora, s->workspace, &p->batch, logits) != 0 || al_lora_zero_grads(s->lora) != 0 ||
        al_model_forward_backward(s->model, s->lora, s->workspace, &p->batch, 1.0f / (float)targets, 0, loss) != 0)
        return -1;
    return s->backend->ops->copy_to_host(s->backend, grads, s->lora->grads,
                                         (size_t)s->lora->num_params * sizeof(float));
}

struct parity_options {
    const char *model_dir, *device;
    long tokens;
};

static int parse(int argc, char **argv, struct parity_options *o)
{
    *o = (struct parity_options){.device = "cuda", .tokens = 96};
    for (int i = 1; i < argc; i++) {
        const char *v = gpu_check_value(argc, argv, &i);
        if (!v)
            return -1;
        if (!strcmp(argv[i - 1], "--model"))
            o->model_dir = v;
        else if (!strcmp(argv[i - 1], "--device"))
            o->device = v;
        else if (!strcmp(argv[i - 1], "--tokens")) {
            if (gpu_check_int("--tokens", v, 2, 1 << 16, &o->tokens) != 0)
                return -1;
        } else {
            fprintf(stderr, "gpu_check parity: unknown option '%s'\n", argv[i - 1]);
            return -1;
        }
    }
    if (!o->model_dir)
        fprintf(stderr, "gpu_check parity: --model DIR is required\n");
    return o->model_dir ? 0 : -1;
}

static int print_result(const struct parity_options *o, double loss_cpu, double loss_dev, struct logit_errors le,
                        struct grad_errors ge)
{
    double loss_rel = fabs(loss_dev - loss_cpu) / fmax(fabs(loss_cpu), 1e-30);
    int ok = le.relative_max <= PARITY_LOGIT_TOLERANCE && loss_rel <= PARITY_LOSS_TOLERANCE &&
             ge.relative_l2 <= PARITY_GRAD_TOLERANCE && ge.worst_tensor <= PARITY_GRAD_WORST_TOLERANCE;
    printf("{\"device\": \"%s\", \"tokens\": %ld, \"pass\": %s, "
           "\"logits_max_rel_error\": %.3e, \"logits_tolerance\": %g, \"argmax_agreement\": %.4f, "
           "\"loss_cpu\": %.6f, \"loss_device\": %.6f, \"loss_rel_error\": %.3e, \"loss_tolerance\": %g, "
           "\"grad_rel_l2_error\": %.3e, \"grad_tolerance\": %g, \"grad_worst_tensor_rel_error\": %.3e, "
           "\"grad_worst_tensor\": \"%s\", \"grad_worst_tolerance\": %g}\n",
           o->device, o->tokens, ok ? "true" : "false", le.relative_max, PARITY_LOGIT_TOLERANCE,
           le.argmax_agreement, loss_cpu, loss_dev, loss_rel, PARITY_LOSS_TOLERANCE, ge.relative_l2,
           PARITY_GRAD_TOLERANCE, ge.worst_tensor, ge.worst_name, PARITY_GRAD_WORST_TOLERANCE);
    return ok ? 0 : 1;
}

int gpu_check_parity(int argc, char **argv)
{
    struct parity_options o;
    if (parse(argc, argv, &o) != 0)
        return 2;
    struct side cpu = {0}, dev = {0};
    struct packed p = {0};
    float *adapter = NULL, *logits[2] = {NULL, NULL}, *grads[2] = {NULL, NULL};
    double loss[2] = {0, 0};
    int rc = side_open(&cpu, "cpu", o.model_dir, NULL, o.tokens);
    const struct al_model_config *config = rc ? NULL : al_model_get_config(cpu.model);
    if (rc == 0 && (!(adapter = random_adapter(cpu.lora->num_params)) ||
                    cpu.backend->ops->copy_to_backend(cpu.backend, cpu.lora->params, adapter,
                                                      (size_t)cpu.lora->num_params * sizeof(float)) != 0 ||
                    side_open(&dev, o.device, o.model_dir, adapter, o.tokens) != 0 ||
                    packed_make(&p, o.tokens, config->vocab_size) != 0))
        rc = -1;
    for (int i = 0; rc == 0 && i < 2; i++) {
        logits[i] = malloc((size_t)o.tokens * (size_t)config->vocab_size * sizeof(float));
        grads[i] = malloc((size_t)cpu.lora->num_params * sizeof(float));
        if (!logits[i] || !grads[i] || run_side(i ? &dev : &cpu, &p, logits[i], &loss[i], grads[i]) != 0)
            rc = -1;
    }
    if (rc == 0) {
        double targets = (double)al_batch_count_targets(&p.batch);
        rc = print_result(&o, loss[0] / targets, loss[1] / targets,
                          compare_logits(logits[0], logits[1], o.tokens, config->vocab_size),
                          compare_grads(cpu.lora, grads[0], grads[1]));
    } else {
        fprintf(stderr, "gpu_check parity: %s\n", al_error_message());
        rc = 1;
    }
    for (int i = 0; i < 2; i++) {
        free(logits[i]);
        free(grads[i]);
    }
    free(adapter);
    packed_free(&p);
    side_close(&dev);
    side_close(&cpu);
    return rc;
}
