/* Hugging Face PEFT loads an adapter WRITTEN BY agentlora and computes the same logits.
 *
 * For each tiny golden model, write_agentlora_adapter() below is "the agentlora
 * adapter": a LoRA whose every A and B comes from a fixed-seed PCG32, saved with
 * al_lora_save_peft. Its output is committed under tests/golden/agentlora_adapter/<case>/
 * adapter/; make_peft_expected.py loaded those files, unedited, with
 * PeftModel.from_pretrained and stored PEFT's logits in expected.safetensors.
 *
 * The tests here close the loop:
 *  - the writer, run now, reproduces the committed files byte for byte (so they are
 *    agentlora's output, and the writer is deterministic);
 *  - adapter_config.json says what PEFT needs to rebuild the same LoRA;
 *  - agentlora's logits for the same two sequences, packed as two documents of one
 *    batch, equal PEFT's.
 *
 * Regenerating (see tests/golden/README.md): run this suite with AL_WRITE_GOLDEN set to
 * tests/golden/agentlora_adapter, then run make_peft_expected.py. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/file.h"
#include "agentlora/lora.h"
#include "agentlora/model.h"
#include "agentlora/rng.h"
#include "agentlora/safetensors.h"
#include "backend/backend.h"
#include "test_support.h"

#define GOLDEN_DIR "tests/golden"
#define FIXTURE_DIR GOLDEN_DIR "/agentlora_adapter"
/* When set to a directory, the writer test writes <dir>/<case>/adapter there instead of
 * under a temporary folder: that is how the committed copies are made. */
#define WRITE_GOLDEN_ENV "AL_WRITE_GOLDEN"

/* Both sides compute in float32; differences come only from summation order (the same
 * bound as the transformers golden test, tests/golden/README.md). */
#define LOGITS_MAX_REL_ERROR 1e-4
/* The base model alone must miss PEFT's logits by far more than the tolerance, or a
 * writer that dropped the adapter (or its scale) could still pass. */
#define ADAPTER_MIN_REL_EFFECT 0.05

/* A and B are uniform in +-this: large enough that the adapter moves the logits of these
 * std-0.2 random models visibly, small enough to keep them far from overflow. */
#define ADAPTER_PARAM_RANGE 0.25f
/* The PCG32 stream for adapter parameters (any fixed value; the seed varies by case). */
#define ADAPTER_PARAM_STREAM 77

/* The base model name written into adapter_config.json: the folder PEFT loads it over. */
#define BASE_MODEL_NAME_FORMAT GOLDEN_DIR "/%s/model"

struct adapter_case {
    const char *name; /* the golden model folder: tests/golden/<name>/model */
    int rank;
    float alpha;
    bool use_rslora;
    unsigned target_mask;
    uint64_t seed;
};

static const struct adapter_case llama_tiny_case = {
    .name = "llama_tiny", .rank = 8, .alpha = 16, .use_rslora = false, .target_mask = AL_LORA_ALL_TARGETS,
    .seed = 20240601};

static const struct adapter_case qwen2_tiny_case = {
    .name = "qwen2_tiny", .rank = 4, .alpha = 4, .use_rslora = true,
    .target_mask = (1u << AL_LORA_Q) | (1u << AL_LORA_V) | (1u << AL_LORA_DOWN), .seed = 20240602};

/* Sliding windows (shorter than the 12-token sequence) and Qwen3's q/k norms: PEFT applies
 * the adapter over transformers' windowed attention, agentlora over its own. */
static const struct adapter_case mistral_window_tiny_case = {
    .name = "mistral_window_tiny", .rank = 4, .alpha = 8, .use_rslora = false, .target_mask = AL_LORA_ALL_TARGETS,
    .seed = 20240603};
static const struct adapter_case qwen2_window_tiny_case = {
    .name = "qwen2_window_tiny", .rank = 4, .alpha = 4, .use_rslora = true,
    .target_mask = (1u << AL_LORA_Q) | (1u << AL_LORA_K) | (1u << AL_LORA_O) | (1u << AL_LORA_UP),
    .seed = 20240604};
static const struct adapter_case qwen3_tiny_case = {
    .name = "qwen3_tiny", .rank = 8, .alpha = 16, .use_rslora = false, .target_mask = AL_LORA_ALL_TARGETS,
    .seed = 20240605};

static char *case_path(const char *format, const char *case_name)
{
    char *path = al_strdup_printf(format, case_name);
    cr_assert_not_null(path);
    return path;
}

/* ---- the writer ---- */

/* Every parameter, A and B alike, from one PCG32 in block order; checks that each B has a
 * non-zero entry (PEFT's own initialisation, B = 0, would hide every mistake). */
static void fill_parameters(struct al_lora *lora, uint64_t seed)
{
    float *host = malloc((size_t)lora->num_params * sizeof(float));
    cr_assert_not_null(host);
    struct al_rng rng;
    al_rng_seed(&rng, seed, ADAPTER_PARAM_STREAM);
    for (int64_t i = 0; i < lora->num_params; i++)
        host[i] = al_rng_uniform_range(&rng, -ADAPTER_PARAM_RANGE, ADAPTER_PARAM_RANGE);
    for (int layer = 0; layer < lora->num_layers; layer++) {
        for (int t = 0; t < AL_LORA_TARGET_COUNT; t++) {
            const struct al_lora_slot *slot = &lora->slots[layer][t];
            if (!slot->present)
                continue;
            float largest = 0;
            for (int64_t i = 0; i < (int64_t)slot->out * lora->config.rank; i++)
                largest = fmaxf(largest, fabsf(host[slot->b_offset + i]));
            cr_assert_gt(largest, 0.0f, "layer %d %s: B is all zero", layer, al_lora_target_name((enum al_lora_target)t));
        }
    }
    cr_assert_eq(al_lora_upload_params(lora, host), 0, "%s", al_error_message());
    free(host);
}

/* "The agentlora adapter" of a case, written into adapter_dir. */
static void write_agentlora_adapter(const struct adapter_case *c, const char *adapter_dir)
{
    char *model_dir = case_path(BASE_MODEL_NAME_FORMAT, c->name);
    struct al_model_config model;
    cr_assert_eq(al_model_config_load(&model, model_dir), 0, "%s", al_error_message());
    struct al_backend *backend = al_backend_cpu_create();
    cr_assert_not_null(backend, "%s", al_error_message());
    struct al_lora_config config = {
        .rank = c->rank, .alpha = c->alpha, .dropout = 0, .use_rslora = c->use_rslora, .target_mask = c->target_mask};
    struct al_lora *lora = al_lora_create(&model, backend, &config, c->seed);
    cr_assert_not_null(lora, "%s", al_error_message());
    fill_parameters(lora, c->seed);
    cr_assert_eq(al_lora_save_peft(lora, adapter_dir, model_dir), 0, "%s", al_error_message());
    al_lora_free(lora);
    al_backend_destroy(backend);
    free(model_dir);
}

static void assert_same_bytes(const char *written, const char *committed)
{
    size_t written_size = 0, committed_size = 0;
    char *mine = al_file_read_all(written, &written_size);
    cr_assert_not_null(mine, "%s", al_error_message());
    char *theirs = al_file_read_all(committed, &committed_size);
    cr_assert_not_null(theirs, "%s", al_error_message());
    size_t common = written_size < committed_size ? written_size : committed_size;
    size_t first_difference = 0;
    while (first_difference < common && mine[first_difference] == theirs[first_difference])
        first_difference++;
    cr_assert(written_size == committed_size && first_difference == common,
              "%s (%zu bytes) differs from the committed %s (%zu bytes) at byte %zu", written, written_size,
              committed, committed_size, first_difference);
    free(mine);
    free(theirs);
}

static void check_writer_reproduces_committed_files(const struct adapter_case *c)
{
    const char *golden_root = getenv(WRITE_GOLDEN_ENV);
    char *root = golden_root && *golden_root ? strdup(golden_root) : test_tmpdir();
    cr_assert_not_null(root);
    char *adapter_dir = al_strdup_printf("%s/%s/adapter", root, c->name);
    write_agentlora_adapter(c, adapter_dir);
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *written = al_strdup_printf("%s/%s", adapter_dir, files[i]);
        char *committed = al_strdup_printf(FIXTURE_DIR "/%s/adapter/%s", c->name, files[i]);
        assert_same_bytes(written, committed);
        free(written);
        free(committed);
    }
    free(adapter_dir);
    free(root);
}

/* ---- what PEFT reads from adapter_config.json ---- */

static void check_adapter_config(const struct adapter_case *c)
{
    char *path = case_path(FIXTURE_DIR "/%s/adapter/adapter_config.json", c->name);
    cJSON *json = al_json_load_file(path);
    cr_assert_not_null(json, "%s", al_error_message());
    const cJSON *peft_type = cJSON_GetObjectItemCaseSensitive(json, "peft_type");
    const cJSON *task_type = cJSON_GetObjectItemCaseSensitive(json, "task_type");
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(json, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(json, "lora_alpha");
    const cJSON *rslora = cJSON_GetObjectItemCaseSensitive(json, "use_rslora");
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(json, "target_modules");
    cr_assert(cJSON_IsString(peft_type) && strcmp(peft_type->valuestring, "LORA") == 0, "peft_type");
    /* CAUSAL_LM makes PeftModel.from_pretrained build a PeftModelForCausalLM. */
    cr_assert(cJSON_IsString(task_type) && strcmp(task_type->valuestring, "CAUSAL_LM") == 0, "task_type");
    cr_assert(cJSON_IsNumber(rank) && rank->valuedouble == c->rank, "r");
    cr_assert(cJSON_IsNumber(alpha) && alpha->valuedouble == c->alpha, "lora_alpha");
    cr_assert(cJSON_IsBool(rslora) && cJSON_IsTrue(rslora) == c->use_rslora, "use_rslora");

    /* An explicit list (a regex or "all-linear" would make PEFT choose the modules). */
    cr_assert(cJSON_IsArray(targets), "target_modules must be an explicit list");
    unsigned mask = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, targets)
    {
        enum al_lora_target target;
        cr_assert(cJSON_IsString(item), "target_modules holds a non-string");
        cr_assert_eq(al_lora_target_parse(item->valuestring, &target), 0, "%s", al_error_message());
        cr_assert_eq(mask & (1u << target), 0u, "%s listed twice", item->valuestring);
        mask |= 1u << target;
    }
    cr_assert_eq(mask, c->target_mask, "target_modules: mask %#x, expected %#x", mask, c->target_mask);
    cJSON_Delete(json);
    free(path);
}

/* ---- agentlora's logits against PEFT's ---- */

struct peft_reference {
    struct al_safetensors *file;
    int sequences, padded_length;
    const int32_t *ids, *lengths; /* [sequences, padded_length], [sequences] */
    const float *logits;          /* [sequences, padded_length, vocab], padding zero */
};

static const struct al_tensor_view *reference_tensor(const struct peft_reference *r, const char *name,
                                                     enum al_dtype dtype, int ndim)
{
    const struct al_tensor_view *view = al_safetensors_find(r->file, name);
    cr_assert_not_null(view, "expected.safetensors lacks %s", name);
    cr_assert(view->dtype == dtype && view->ndim == ndim, "expected.safetensors: %s has the wrong dtype or rank",
              name);
    return view;
}

static void open_reference(struct peft_reference *r, const char *case_name, int vocab)
{
    char *path = case_path(FIXTURE_DIR "/%s/expected.safetensors", case_name);
    r->file = al_safetensors_open(path);
    cr_assert_not_null(r->file, "%s", al_error_message());
    const struct al_tensor_view *ids = reference_tensor(r, "input_ids", AL_DTYPE_I32, 2);
    const struct al_tensor_view *lengths = reference_tensor(r, "lengths", AL_DTYPE_I32, 1);
    const struct al_tensor_view *logits = reference_tensor(r, "logits", AL_DTYPE_F32, 3);
    r->sequences = (int)ids->shape[0];
    r->padded_length = (int)ids->shape[1];
    cr_assert_eq(lengths->shape[0], r->sequences);
    cr_assert(logits->shape[0] == r->sequences && logits->shape[1] == r->padded_length && logits->shape[2] == vocab,
              "expected logits shape");
    r->ids = ids->data;
    r->lengths = lengths->data;
    r->logits = logits->data;
    for (int s = 0; s < r->sequences; s++)
        cr_assert(r->lengths[s] > 0 && r->lengths[s] <= r->padded_length, "length of sequence %d", s);
    free(path);
}

/* The sequences as documents of one packed batch (positions restart at 0, each document
 * attends only to itself), no targets; reference_rows[i] is token i's row in PEFT's grid. */
struct packed {
    struct al_batch batch;
    int32_t *ids, *targets, *positions, *doc_start;
    int64_t *reference_rows;
};

static void pack_sequences(struct packed *p, const struct peft_reference *r)
{
    int64_t n = 0;
    for (int s = 0; s < r->sequences; s++)
        n += r->lengths[s];
    p->ids = malloc((size_t)n * sizeof(int32_t));
    p->targets = malloc((size_t)n * sizeof(int32_t));
    p->positions = malloc((size_t)n * sizeof(int32_t));
    p->doc_start = malloc((size_t)n * sizeof(int32_t));
    p->reference_rows = malloc((size_t)n * sizeof(int64_t));
    cr_assert(p->ids && p->targets && p->positions && p->doc_start && p->reference_rows);
    int64_t i = 0;
    for (int s = 0; s < r->sequences; s++) {
        int32_t start = (int32_t)i;
        for (int t = 0; t < r->lengths[s]; t++, i++) {
            int64_t row = (int64_t)s * r->padded_length + t;
            p->ids[i] = r->ids[row];
            p->targets[i] = -1;
            p->positions[i] = t;
            p->doc_start[i] = start;
            p->reference_rows[i] = row;
        }
    }
    p->batch = (struct al_batch){n, p->ids, p->targets, p->positions, p->doc_start};
}

static void packed_free(struct packed *p)
{
    free(p->ids);
    free(p->targets);
    free(p->positions);
    free(p->doc_start);
    free(p->reference_rows);
}

/* Logits of the packed batch (lora may be NULL: the base model). */
static float *agentlora_logits(struct al_model *model, const struct al_lora *lora, const struct packed *p)
{
    int vocab = al_model_get_config(model)->vocab_size;
    struct al_workspace *workspace = al_workspace_create(model, lora, p->batch.num_tokens, false);
    cr_assert_not_null(workspace, "%s", al_error_message());
    float *logits = malloc((size_t)(p->batch.num_tokens * vocab) * sizeof(float));
    cr_assert_not_null(logits);
    cr_assert_eq(al_model_logits(model, lora, workspace, &p->batch, logits), 0, "%s", al_error_message());
    al_workspace_free(workspace);
    return logits;
}

static void check_logits_match_peft(const struct adapter_case *c)
{
    char *model_dir = case_path(GOLDEN_DIR "/%s/model", c->name);
    char *adapter_dir = case_path(FIXTURE_DIR "/%s/adapter", c->name);
    struct al_backend *backend = al_backend_cpu_create();
    cr_assert_not_null(backend, "%s", al_error_message());
    struct al_model *model = al_model_load(model_dir, backend);
    cr_assert_not_null(model, "%s", al_error_message());
    struct al_lora *lora = al_lora_load_peft(al_model_get_config(model), backend, adapter_dir);
    cr_assert_not_null(lora, "%s", al_error_message());
    int vocab = al_model_get_config(model)->vocab_size;

    struct peft_reference reference;
    open_reference(&reference, c->name, vocab);
    struct packed packed;
    pack_sequences(&packed, &reference);
    cr_assert_eq(al_batch_validate(&packed.batch, al_model_get_config(model)), 0, "%s", al_error_message());

    int64_t n = packed.batch.num_tokens;
    float *peft = malloc((size_t)(n * vocab) * sizeof(float));
    cr_assert_not_null(peft);
    for (int64_t i = 0; i < n; i++)
        memcpy(peft + i * vocab, reference.logits + packed.reference_rows[i] * vocab, (size_t)vocab * sizeof(float));

    float *adapted = agentlora_logits(model, lora, &packed);
    double error = test_max_rel_error(adapted, peft, n * vocab, 1e-6);
    cr_assert_lt(error, LOGITS_MAX_REL_ERROR, "%s: logits differ from PEFT's by %g (relative)", c->name, error);

    float *base = agentlora_logits(model, NULL, &packed);
    double effect = test_max_rel_error(base, peft, n * vocab, 1e-6);
    cr_assert_gt(effect, ADAPTER_MIN_REL_EFFECT, "%s: the adapter barely changes the logits (%g)", c->name, effect);
    cr_log_info("%s: %lld tokens, relative error %.3g against PEFT, base model off by %.3g", c->name,
                (long long)n, error, effect);

    free(base);
    free(adapted);
    free(peft);
    packed_free(&packed);
    al_safetensors_close(reference.file);
    al_lora_free(lora);
    al_model_free(model);
    al_backend_destroy(backend);
    free(adapter_dir);
    free(model_dir);
}

#define PEFT_LOADS_AGENTLORA_CASE(name)                                                                             \
    Test(peft_agentlora_##name, writer_reproduces_committed_adapter)                                                 \
    {                                                                                                                \
        check_writer_reproduces_committed_files(&name##_case);                                                       \
    }                                                                                                                \
    Test(peft_agentlora_##name, adapter_config_says_what_peft_needs)                                                 \
    {                                                                                                                \
        check_adapter_config(&name##_case);                                                                          \
    }                                                                                                                \
    Test(peft_agentlora_##name, logits_match_peft)                                                                   \
    {                                                                                                                \
        check_logits_match_peft(&name##_case);                                                                       \
    }

PEFT_LOADS_AGENTLORA_CASE(llama_tiny)
PEFT_LOADS_AGENTLORA_CASE(qwen2_tiny)
PEFT_LOADS_AGENTLORA_CASE(mistral_window_tiny)
PEFT_LOADS_AGENTLORA_CASE(qwen2_window_tiny)
PEFT_LOADS_AGENTLORA_CASE(qwen3_tiny)
