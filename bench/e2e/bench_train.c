/* End-to-end LoRA training throughput on a randomly initialised model with the shapes of
 * a real one (a preset of al_model_preset: no download). For each micro-batch size it
 * times exactly what one training step does (zero the LoRA gradients, forward and
 * backward over one packed micro-batch, the clipped AdamW step, as src/train/trainer.c),
 * and reports tokens/s, MFU and peak memory: one human-readable line on stdout and one
 * JSON object per line appended to --out, with the keys bench/baseline_peft.py writes, so
 * the two engines can be put side by side.
 *
 * Model FLOPs per token (what MFU counts; recomputation under gradient checkpointing is
 * not counted, so this is MFU, not hardware FLOPs utilisation):
 *
 *     4 * N_matmul + 6 * N_lora + 6 * L * (heads * head_dim) * seq
 *
 *   - 4 * N_matmul: every frozen weight a token is multiplied by costs 2 FLOPs per weight
 *     in forward and 2 more for the input gradient in backward; frozen weights get no
 *     weight gradient, hence 4 and not the 6 of full fine-tuning. N_matmul is the base
 *     model's parameter count (al_model_config_parameter_count) less an untied input
 *     embedding table, which is a lookup and multiplies nothing (a tied table is counted
 *     once, as the lm_head).
 *   - 6 * N_lora: the adapters are trained: forward, input gradient and weight gradient.
 *   - attention, PaLM's convention (Chowdhery et al. 2022, appendix B) halved for the
 *     causal mask: forward QK^T and PV cost 2 * 2 * seq * width FLOPs per token and
 *     layer over a full row, half of that under the causal mask, and backward twice the
 *     forward, so 3 * 2 * seq * width = 6 * seq * width per layer. It is counted over the
 *     whole row (seq), as if the row were one document, although the packed documents
 *     attend only within themselves: the usual convention, and an upper bound.
 *
 * MFU = (model FLOPs per token * tokens/s) / the GEMM rate this run measured on the same
 * device: the backend's own linear_forward on a large square product (bf16 on CUDA, F32 on
 * the CPU backend; the JSON says which), not the datasheet peak.
 *
 * Peak memory: on CUDA the backend's arena high-water mark (memory_stats: bytes
 * allocated, like torch.cuda.max_memory_allocated; the CUDA context and cuBLAS's own
 * workspace are outside it); on the CPU the process's peak resident set (VmHWM), reset
 * before each micro-batch size. Both include the model weights.
 *
 * Build and run: bench/e2e/run.sh --help (see bench/e2e/README.md). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef AL_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "agentlora/config.h"
#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/log.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/optimizer.h"
#include "agentlora/random_model.h"
#include "agentlora/rng.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_blas_core.h"

/* The usual LoRA recipe (the trainer's defaults): alpha 32, no dropout, lr 2e-4. */
#define LORA_ALPHA 32.0f
#define LORA_DROPOUT 0.0f
#define LEARNING_RATE 2e-4f
#define SEED 42

/* Packed rows: documents of lengths drawn uniformly from [seq / 8, seq / 2], the last one
 * cut to fill the row, like chat transcripts packed into a long context. */
#define DOC_MIN_FRACTION 8
#define DOC_MAX_FRACTION 2

#define MAX_MICRO_BATCHES 16

/* The GEMM whose rate MFU divides by: large enough to reach the device's sustained rate. */
#define GEMM_SIZE_CUDA 8192
#define GEMM_SIZE_CPU 1024
#define GEMM_WARMUP 2
#define GEMM_REPEATS_CUDA 50
#define GEMM_REPEATS_CPU 5

struct options {
    const char *preset;
    const char *device;
    int seq;
    int micro_batches[MAX_MICRO_BATCHES];
    int micro_batch_count;
    int steps;
    int warmup;
    int rank;
    bool gradient_checkpointing;
    char model_dir[4096];
    const char *out;
    int gemm_size;
};

struct bench {
    struct options options;
    struct al_model_config config;
    struct al_backend *backend;
    struct al_model *model;
    struct al_lora *lora;
    struct al_optimizer *optimizer;
    char device_name[320];
    double gemm_flops_per_s;
};

/* What one micro-batch size measured. */
struct measurement {
    int micro_batch;
    double seconds;
    int64_t tokens;
    double final_loss;
    uint64_t peak_memory_bytes;
};

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- arguments ---- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: bench_train --preset NAME [--device cpu|cuda] [--seq N] [--micro-batch 1,2,4]\n"
            "                   [--steps N] [--warmup N] [--rank R] [--gradient-checkpointing 0|1]\n"
            "                   [--model-dir DIR] [--out FILE] [--gemm-size N]\n"
            "  --preset        model shapes:");
    for (int i = 0; al_model_preset_name(i); i++)
        fprintf(to, " %s", al_model_preset_name(i));
    fprintf(to, "\n"
                "  --device        backend (default cuda)\n"
                "  --seq           tokens per packed row (default 4096)\n"
                "  --micro-batch   comma-separated rows per step, one measurement each (default 1)\n"
                "  --steps         timed steps per micro-batch size (default 10)\n"
                "  --warmup        untimed steps first (default 2)\n"
                "  --rank          LoRA rank on all seven targets, alpha 32 (default 16)\n"
                "  --gradient-checkpointing  recompute blocks in backward (default 1)\n"
                "  --model-dir     random model folder, written once (default build/bench-models/PRESET)\n"
                "  --out           JSON lines appended here (default: none)\n"
                "  --gemm-size     M = N = K of the reference GEMM (default 8192 on cuda, 1024 on cpu)\n");
}

static int parse_int(const char *flag, const char *text, int min, int max, int *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || value < min || value > max)
        return al_fail("%s: '%s' is not an integer in [%d, %d]", flag, text, min, max);
    *out = (int)value;
    return 0;
}

static int parse_micro_batches(const char *text, struct options *o)
{
    char copy[256];
    if (strlen(text) >= sizeof copy)
        return al_fail("--micro-batch: list too long");
    strcpy(copy, text);
    o->micro_batch_count = 0;
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (o->micro_batch_count == MAX_MICRO_BATCHES)
            return al_fail("--micro-batch: at most %d sizes", MAX_MICRO_BATCHES);
        if (parse_int("--micro-batch", item, 1, 1024, &o->micro_batches[o->micro_batch_count++]) != 0)
            return -1;
    }
    if (o->micro_batch_count == 0)
        return al_fail("--micro-batch: empty list '%s' (expected e.g. 1,2,4)", text);
    return 0;
}

static int parse_value(const char *flag, const char *value, struct options *o)
{
    int flag_value = 0;
    if (!strcmp(flag, "--preset"))
        o->preset = value;
    else if (!strcmp(flag, "--device"))
        o->device = value;
    else if (!strcmp(flag, "--seq"))
        return parse_int(flag, value, 2, 1 << 20, &o->seq);
    else if (!strcmp(flag, "--micro-batch"))
        return parse_micro_batches(value, o);
    else if (!strcmp(flag, "--steps"))
        return parse_int(flag, value, 1, 1000000, &o->steps);
    else if (!strcmp(flag, "--warmup"))
        return parse_int(flag, value, 0, 1000000, &o->warmup);
    else if (!strcmp(flag, "--rank"))
        return parse_int(flag, value, 1, 4096, &o->rank);
    else if (!strcmp(flag, "--gemm-size"))
        return parse_int(flag, value, 16, 65536, &o->gemm_size);
    else if (!strcmp(flag, "--gradient-checkpointing")) {
        if (parse_int(flag, value, 0, 1, &flag_value) != 0)
            return -1;
        o->gradient_checkpointing = flag_value;
    } else if (!strcmp(flag, "--model-dir")) {
        if (strlen(value) >= sizeof o->model_dir)
            return al_fail("--model-dir: path too long");
        strcpy(o->model_dir, value);
    } else if (!strcmp(flag, "--out"))
        o->out = value;
    else
        return al_fail("unknown option '%s'", flag);
    return 0;
}

/* 0: parsed; 1: --help was asked for; -1: bad arguments (message recorded). */
static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){.device = "cuda", .seq = 4096, .micro_batches = {1}, .micro_batch_count = 1,
                          .steps = 10, .warmup = 2, .rank = 16, .gradient_checkpointing = true};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (i + 1 >= argc)
            return al_fail("option '%s' needs a value", argv[i]);
        if (parse_value(argv[i], argv[i + 1], o) != 0)
            return -1;
        i++;
    }
    struct al_model_config ignored;
    if (!o->preset)
        return al_fail("--preset is required (--help lists the presets)");
    if (al_model_preset(o->preset, &ignored) != 0)
        return -1;
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))
        return al_fail("--device: '%s' is neither cpu nor cuda", o->device);
    if (!o->model_dir[0])
        snprintf(o->model_dir, sizeof o->model_dir, "build/bench-models/%s", o->preset);
    if (!o->gemm_size)
        o->gemm_size = strcmp(o->device, "cuda") ? GEMM_SIZE_CPU : GEMM_SIZE_CUDA;
    return 0;
}

/* ---- the model ---- */

/* The folder must hold this preset: a stale one of other shapes would be measured silently. */
static int check_existing_model(const char *dir, const struct al_model_config *want)
{
    struct al_model_config have;
    if (al_model_config_load(&have, dir) != 0)
        return -1;
    if (have.hidden_size != want->hidden_size || have.intermediate_size != want->intermediate_size ||
        have.num_hidden_layers != want->num_hidden_layers || have.num_attention_heads != want->num_attention_heads ||
        have.num_key_value_heads != want->num_key_value_heads || have.head_dim != want->head_dim ||
        have.vocab_size != want->vocab_size || have.tie_word_embeddings != want->tie_word_embeddings ||
        have.attention_qkv_bias != want->attention_qkv_bias)
        return al_fail("%s holds a model whose shapes are not those of the preset; remove it or pass --model-dir",
                       dir);
    return 0;
}

static int prepare_model_folder(const struct options *o, const struct al_model_config *config)
{
    char config_path[4200];
    snprintf(config_path, sizeof config_path, "%s/config.json", o->model_dir);
    if (al_file_exists(config_path))
        return check_existing_model(o->model_dir, config);
    printf("writing a random %s model (bf16) to %s ...\n", o->preset, o->model_dir);
    fflush(stdout);
    if (al_random_model_write(config, AL_DTYPE_BF16, SEED, o->model_dir, 0) != 0) {
        al_error_context("writing the random model");
        return -1;
    }
    return 0;
}

static int set_up(struct bench *b)
{
    const struct options *o = &b->options;
    if (al_model_preset(o->preset, &b->config) != 0 || prepare_model_folder(o, &b->config) != 0)
        return -1;
    if (!(b->backend = al_backend_create(o->device)))
        return -1;
    if (!(b->model = al_model_load(o->model_dir, b->backend))) {
        al_error_context("loading %s", o->model_dir);
        return -1;
    }
    b->config = *al_model_get_config(b->model);
    struct al_lora_config lora = {
        .rank = o->rank, .alpha = LORA_ALPHA, .dropout = LORA_DROPOUT, .target_mask = AL_LORA_ALL_TARGETS};
    if (!(b->lora = al_lora_create(&b->config, b->backend, &lora, SEED)))
        return -1;
    struct al_adamw_config adamw = al_adamw_defaults();
    b->optimizer = al_optimizer_create(b->backend, b->lora->num_params, &adamw);
    return b->optimizer ? 0 : -1;
}

static void tear_down(struct bench *b)
{
    al_optimizer_free(b->optimizer);
    al_lora_free(b->lora);
    al_model_free(b->model);
    if (b->backend)
        al_backend_destroy(b->backend);
}

/* ---- the device ---- */

static void cpu_model_name(char *out, size_t size)
{
    snprintf(out, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon)
            continue;
        colon += 1 + strspn(colon + 1, " \t");
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(out, size, "%s", colon);
        break;
    }
    fclose(f);
}

static void describe_device(struct bench *b)
{
    char name[256];
    cpu_model_name(name, sizeof name);
#ifdef AL_HAVE_CUDA
    struct cudaDeviceProp properties;
    /* al_backend_create("cuda") takes device 0. */
    if (!strcmp(b->backend->name, "cuda") && cudaGetDeviceProperties(&properties, 0) == cudaSuccess)
        snprintf(name, sizeof name, "%s", properties.name);
#endif
    snprintf(b->device_name, sizeof b->device_name, "%s: %s", b->backend->name, name);
}

static void *random_backend_tensor(struct al_backend *backend, int64_t n, enum al_dtype dtype, uint64_t seed)
{
    float *host = malloc((size_t)n * sizeof(float));
    void *tensor = backend->ops->alloc(backend, (size_t)n * al_dtype_size(dtype));
    struct al_rng rng;
    al_rng_seed(&rng, seed, 7);
    if (host && tensor) {
        for (int64_t i = 0; i < n; i++)
            host[i] = al_rng_uniform_range(&rng, -1.0f, 1.0f);
        if (backend->ops->upload_convert(backend, tensor, dtype, host, AL_DTYPE_F32, n) == 0) {
            free(host);
            return tensor;
        }
    } else {
        al_fail("out of memory for a %" PRId64 "-element GEMM operand", n);
    }
    free(host);
    if (tensor)
        backend->ops->free(backend, tensor);
    return NULL;
}

/* One synchronised product y = x W^T; its duration in seconds through *seconds. */
static int timed_gemm(struct al_backend *be, void *y, const void *x, const void *w, int s, double *seconds)
{
    double start = now_seconds();
    if (be->ops->linear_forward(be, y, x, w, NULL, NULL, s, s, s) != 0 || be->ops->synchronize(be) != 0)
        return -1;
    *seconds = now_seconds() - start;
    return 0;
}

/* The rate of y [s, s] = x [s, s] W^T through the backend's linear_forward: activation
 * type x and y, weight type W (bf16 on CUDA, F32 on the CPU). The fastest of the timed
 * repeats counts: the rate the device sustains when nothing else disturbs it (a CPU is
 * often shared), which is what MFU should divide by. */
static int measure_gemm_rate(struct bench *b)
{
    struct al_backend *be = b->backend;
    int s = b->options.gemm_size;
    int64_t elements = (int64_t)s * s;
    void *x = random_backend_tensor(be, elements, be->act_dtype, 1);
    void *w = random_backend_tensor(be, elements, be->weight_dtype, 2);
    void *y = be->ops->alloc(be, al_backend_act_bytes(be, elements));
    int rc = x && w && y ? 0 : -1;
    int repeats = strcmp(be->name, "cuda") ? GEMM_REPEATS_CPU : GEMM_REPEATS_CUDA;
    double best = 0, seconds = 0;
    for (int i = 0; i < GEMM_WARMUP + repeats && rc == 0; i++) {
        rc = timed_gemm(be, y, x, w, s, &seconds);
        if (rc == 0 && i >= GEMM_WARMUP && (best == 0 || seconds < best))
            best = seconds;
    }
    if (rc == 0)
        b->gemm_flops_per_s = 2.0 * (double)s * s * s / best;
    be->ops->free(be, x);
    be->ops->free(be, w);
    be->ops->free(be, y);
    if (rc)
        al_error_context("measuring the %dx%dx%d GEMM rate", s, s, s);
    return rc;
}

/* ---- peak memory ---- */

static bool backend_counts_memory(const struct bench *b)
{
    return b->backend->ops->memory_stats != NULL;
}

/* Linux resets the peak resident set (VmHWM) when "5" is written to clear_refs. */
static void reset_host_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static uint64_t host_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    unsigned long long kib = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return (uint64_t)kib * 1024;
}

static void reset_peak(struct bench *b)
{
    size_t in_use, peak;
    if (backend_counts_memory(b))
        b->backend->ops->memory_stats(b->backend, &in_use, &peak, 1);
    else
        reset_host_peak();
}

static uint64_t read_peak(struct bench *b)
{
    size_t in_use = 0, peak = 0;
    if (!backend_counts_memory(b))
        return host_peak_rss();
    b->backend->ops->memory_stats(b->backend, &in_use, &peak, 0);
    return peak;
}

/* ---- a packed micro-batch ---- */

struct packed_rows {
    int32_t *ids, *targets, *positions, *doc_start;
    struct al_batch batch;
};

static void packed_rows_free(struct packed_rows *p)
{
    free(p->ids);
    free(p->targets);
    free(p->positions);
    free(p->doc_start);
}

static int random_document_length(struct al_rng *rng, int seq)
{
    int low = seq / DOC_MIN_FRACTION > 0 ? seq / DOC_MIN_FRACTION : 1;
    int high = seq / DOC_MAX_FRACTION > low ? seq / DOC_MAX_FRACTION : low;
    return low + (int)al_rng_below(rng, (uint32_t)(high - low + 1));
}

/* rows rows of seq random token ids, each row packed with documents of random lengths;
 * every token predicts the next one of its document, the last of each document nothing. */
static int packed_rows_make(struct packed_rows *p, int rows, int seq, int vocab, uint64_t seed)
{
    int64_t n = (int64_t)rows * seq;
    *p = (struct packed_rows){0};
    p->ids = malloc((size_t)n * sizeof(int32_t));
    p->targets = malloc((size_t)n * sizeof(int32_t));
    p->positions = malloc((size_t)n * sizeof(int32_t));
    p->doc_start = malloc((size_t)n * sizeof(int32_t));
    if (!p->ids || !p->targets || !p->positions || !p->doc_start) {
        packed_rows_free(p);
        return al_fail("out of memory for a batch of %" PRId64 " tokens", n);
    }
    struct al_rng rng;
    al_rng_seed(&rng, seed, 11);
    for (int64_t i = 0; i < n; i++)
        p->ids[i] = (int32_t)al_rng_below(&rng, (uint32_t)vocab);
    for (int64_t row_start = 0; row_start < n; row_start += seq) {
        int64_t row_end = row_start + seq;
        for (int64_t start = row_start; start < row_end;) {
            int64_t end = start + random_document_length(&rng, seq);
            if (end > row_end)
                end = row_end;
            for (int64_t i = start; i < end; i++) {
                p->positions[i] = (int32_t)(i - start);
                p->doc_start[i] = (int32_t)start;
                p->targets[i] = i + 1 < end ? p->ids[i + 1] : -1;
            }
            start = end;
        }
    }
    p->batch = (struct al_batch){n, p->ids, p->targets, p->positions, p->doc_start};
    return 0;
}

/* ---- one training step, as the trainer runs it with one micro-batch per step ---- */

static int train_step(struct bench *b, struct al_workspace *workspace, const struct packed_rows *rows,
                      float grad_scale, int64_t step, double *loss)
{
    struct al_step_report report;
    double loss_sum = 0;
    if (al_lora_zero_grads(b->lora) != 0 ||
        al_model_forward_backward(b->model, b->lora, workspace, &rows->batch, grad_scale,
                                  al_hash64((uint64_t)step), &loss_sum) != 0 ||
        al_optimizer_step(b->optimizer, b->lora, LEARNING_RATE, &report) != 0)
        return -1;
    *loss = loss_sum * grad_scale;
    return 0;
}

static int run_steps(struct bench *b, struct al_workspace *workspace, const struct packed_rows *rows, int count,
                     int64_t *step, double *loss)
{
    int64_t targets = al_batch_count_targets(&rows->batch);
    float grad_scale = targets > 0 ? 1.0f / (float)targets : 0.0f;
    for (int i = 0; i < count; i++)
        if (train_step(b, workspace, rows, grad_scale, (*step)++, loss) != 0)
            return -1;
    return b->backend->ops->synchronize(b->backend);
}

static int measure(struct bench *b, int micro_batch, struct measurement *out)
{
    const struct options *o = &b->options;
    struct packed_rows rows;
    if (packed_rows_make(&rows, micro_batch, o->seq, b->config.vocab_size, SEED + (uint64_t)micro_batch) != 0)
        return -1;
    int rc = al_batch_validate(&rows.batch, &b->config);
    reset_peak(b);
    struct al_workspace *workspace =
        rc ? NULL : al_workspace_create(b->model, b->lora, rows.batch.num_tokens, o->gradient_checkpointing);
    int64_t step = 1;
    double loss = 0, start = 0;
    rc = workspace ? 0 : -1;
    if (rc == 0)
        rc = run_steps(b, workspace, &rows, o->warmup, &step, &loss);
    if (rc == 0) {
        start = now_seconds();
        rc = run_steps(b, workspace, &rows, o->steps, &step, &loss);
    }
    if (rc == 0)
        *out = (struct measurement){micro_batch, now_seconds() - start, rows.batch.num_tokens * o->steps, loss,
                                    read_peak(b)};
    else
        al_error_context("micro-batch %d x %d tokens", micro_batch, o->seq);
    al_workspace_free(workspace);
    packed_rows_free(&rows);
    return rc;
}

/* ---- what is reported ---- */

/* See the header comment: 4 N_matmul + 6 N_lora + 6 L width seq. */
static double model_flops_per_token(const struct bench *b)
{
    const struct al_model_config *c = &b->config;
    double matmul_params = (double)al_model_config_parameter_count(c);
    if (!c->tie_word_embeddings)
        matmul_params -= (double)c->vocab_size * c->hidden_size;
    double width = (double)c->num_attention_heads * c->head_dim;
    double attention = 6.0 * c->num_hidden_layers * width * b->options.seq;
    return 4.0 * matmul_params + 6.0 * (double)b->lora->num_params + attention;
}

static const char *gemm_dtype(const struct bench *b)
{
    return al_dtype_name(b->backend->act_dtype);
}

static void utc_now(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static cJSON *result_json(const struct bench *b, const struct measurement *m)
{
    const struct options *o = &b->options;
    double tokens_per_s = (double)m->tokens / m->seconds;
    double flops_per_token = model_flops_per_token(b);
    const char *commit = getenv("AL_BENCH_COMMIT");
    char date[32];
    utc_now(date, sizeof date);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "engine", "agentlora");
    cJSON_AddStringToObject(j, "device", b->device_name);
    cJSON_AddStringToObject(j, "preset", o->preset);
    cJSON_AddNumberToObject(j, "params", (double)al_model_config_parameter_count(&b->config));
    cJSON_AddNumberToObject(j, "lora_params", (double)b->lora->num_params);
    cJSON_AddNumberToObject(j, "lora_rank", o->rank);
    cJSON_AddNumberToObject(j, "seq", o->seq);
    cJSON_AddNumberToObject(j, "micro_batch", m->micro_batch);
    cJSON_AddNumberToObject(j, "steps", o->steps);
    cJSON_AddBoolToObject(j, "gradient_checkpointing", o->gradient_checkpointing);
    cJSON_AddNumberToObject(j, "tokens_per_s", tokens_per_s);
    cJSON_AddNumberToObject(j, "step_ms", 1e3 * m->seconds / o->steps);
    cJSON_AddNumberToObject(j, "model_flops_per_token", flops_per_token);
    cJSON_AddStringToObject(j, "model_flops_formula", "4*N_matmul + 6*N_lora + 6*layers*heads*head_dim*seq");
    cJSON_AddNumberToObject(j, "mfu", flops_per_token * tokens_per_s / b->gemm_flops_per_s);
    cJSON_AddNumberToObject(j, "gemm_tflops", b->gemm_flops_per_s / 1e12);
    cJSON_AddStringToObject(j, "gemm_dtype", gemm_dtype(b));
    cJSON_AddNumberToObject(j, "peak_memory_bytes", (double)m->peak_memory_bytes);
    cJSON_AddStringToObject(j, "peak_memory_kind", backend_counts_memory(b) ? "device" : "host_rss");
    cJSON_AddNumberToObject(j, "final_loss", m->final_loss);
    cJSON_AddStringToObject(j, "commit", commit && *commit ? commit : "unknown");
    cJSON_AddStringToObject(j, "date", date);
    return j;
}

static void print_line(const struct bench *b, const struct measurement *m)
{
    double tokens_per_s = (double)m->tokens / m->seconds;
    double mfu = model_flops_per_token(b) * tokens_per_s / b->gemm_flops_per_s;
    printf("%s %s seq %d micro-batch %d: %.1f tokens/s, %.1f ms/step, MFU %.1f%% of %.2f TFLOP/s %s, "
           "peak %.2f GiB (%s), loss %.3f\n",
           b->options.preset, b->backend->name, b->options.seq, m->micro_batch, tokens_per_s,
           1e3 * m->seconds / b->options.steps, 100.0 * mfu, b->gemm_flops_per_s / 1e12, gemm_dtype(b),
           (double)m->peak_memory_bytes / (1 << 30), backend_counts_memory(b) ? "device" : "host RSS",
           m->final_loss);
    if (mfu > 1.0)
        fprintf(stderr, "bench_train: MFU above 100%%: the reference GEMM was slower than the training step's "
                        "GEMMs (a disturbed measurement, or --gemm-size too small)\n");
    fflush(stdout);
}

static int append_json_line(const char *path, const cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    FILE *f = text ? fopen(path, "a") : NULL;
    int rc = f && fprintf(f, "%s\n", text) > 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    return rc ? al_fail("cannot append a result to %s: %s", path, strerror(errno)) : 0;
}

static int report(const struct bench *b, const struct measurement *m)
{
    print_line(b, m);
    if (!b->options.out)
        return 0;
    cJSON *json = result_json(b, m);
    int rc = json ? append_json_line(b->options.out, json) : al_fail("out of memory");
    cJSON_Delete(json);
    return rc;
}

/* A result file that cannot be written should fail before the model is written and loaded. */
static int check_output_file(const char *path)
{
    FILE *f = path ? fopen(path, "a") : NULL;
    if (path && !f)
        return al_fail("--out: cannot open %s for appending: %s", path, strerror(errno));
    if (f)
        fclose(f);
    return 0;
}

static int run(struct bench *b)
{
    if (check_output_file(b->options.out) != 0 || set_up(b) != 0 || measure_gemm_rate(b) != 0)
        return -1;
    describe_device(b);
    printf("%s on %s: %" PRId64 " base parameters, %" PRId64 " LoRA parameters (r %d); GEMM %.2f TFLOP/s %s\n",
           b->options.preset, b->device_name, al_model_config_parameter_count(&b->config), b->lora->num_params,
           b->options.rank, b->gemm_flops_per_s / 1e12, gemm_dtype(b));
    for (int i = 0; i < b->options.micro_batch_count; i++) {
        struct measurement m;
        if (measure(b, b->options.micro_batches[i], &m) != 0 || report(b, &m) != 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    al_cpu_blas_use_best_kernels(argv); /* the CPU backend's GEMMs at the CPU's best */
    struct bench b = {0};
    int parsed = parse_options(argc, argv, &b.options);
    if (parsed > 0) {
        usage(stdout);
        return 0;
    }
    if (parsed < 0) {
        fprintf(stderr, "bench_train: %s\n(bench_train --help lists the options)\n", al_error_message());
        return 2;
    }
    al_log_set_level(AL_LOG_WARN);
    int rc = run(&b);
    if (rc != 0)
        fprintf(stderr, "bench_train: %s\n", al_error_message());
    tear_down(&b);
    return rc ? 1 : 0;
}
