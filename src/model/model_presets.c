/* Named model shapes for `agentlora init-model`. Every number below is a fact from the
 * model's published config.json (Hugging Face hub, the -Instruct release: same shapes as
 * the base model, and the end-of-turn ids a chat fine-tune needs). */
#include <stdio.h>
#include <string.h>

#include "agentlora/error.h"
#include "agentlora/random_model.h"

struct preset {
    const char *name;
    enum al_arch arch;
    int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, max_positions;
    double rope_theta;
    float rms_norm_eps;
    bool tied;
    /* llama3 rope scaling: factor, low and high frequency factors, original context. */
    bool rope_llama3;
    float rope_factor, rope_low, rope_high;
    int rope_original;
    int bos;
    int eos[3];
    int n_eos;
};

/* Llama 3.x chat models stop on <|end_of_text|>, <|eom_id|> and <|eot_id|>. */
#define LLAMA3_BOS 128000
#define LLAMA3_EOS {128001, 128008, 128009}, 3
#define LLAMA3_VOCAB 128256

static const struct preset presets[] = {
    /* A small Llama for demos and tests; its vocabulary is the demo tokenizer's. */
    {.name = "tiny", .arch = AL_ARCH_LLAMA, .hidden = 64, .intermediate = 192, .layers = 2, .heads = 4,
     .kv_heads = 2, .head_dim = 16, .vocab = 2048, .max_positions = 2048, .rope_theta = 10000.0,
     .rms_norm_eps = 1e-5f, .tied = false, .bos = -1, .n_eos = 0},
    /* HuggingFaceTB/SmolLM2-135M-Instruct */
    {.name = "smollm2-135m", .arch = AL_ARCH_LLAMA, .hidden = 576, .intermediate = 1536, .layers = 30,
     .heads = 9, .kv_heads = 3, .head_dim = 64, .vocab = 49152, .max_positions = 8192, .rope_theta = 100000.0,
     .rms_norm_eps = 1e-5f, .tied = true, .bos = 1, .eos = {2}, .n_eos = 1},
    /* meta-llama/Llama-3.2-1B-Instruct */
    {.name = "llama-3.2-1b", .arch = AL_ARCH_LLAMA, .hidden = 2048, .intermediate = 8192, .layers = 16,
     .heads = 32, .kv_heads = 8, .head_dim = 64, .vocab = LLAMA3_VOCAB, .max_positions = 131072,
     .rope_theta = 500000.0, .rms_norm_eps = 1e-5f, .tied = true, .rope_llama3 = true, .rope_factor = 32.0f,
     .rope_low = 1.0f, .rope_high = 4.0f, .rope_original = 8192, .bos = LLAMA3_BOS, .eos = LLAMA3_EOS},
    /* meta-llama/Llama-3.1-8B-Instruct */
    {.name = "llama-3.1-8b", .arch = AL_ARCH_LLAMA, .hidden = 4096, .intermediate = 14336, .layers = 32,
     .heads = 32, .kv_heads = 8, .head_dim = 128, .vocab = LLAMA3_VOCAB, .max_positions = 131072,
     .rope_theta = 500000.0, .rms_norm_eps = 1e-5f, .tied = false, .rope_llama3 = true, .rope_factor = 8.0f,
     .rope_low = 1.0f, .rope_high = 4.0f, .rope_original = 8192, .bos = LLAMA3_BOS, .eos = LLAMA3_EOS},
    /* Qwen/Qwen2.5-7B-Instruct: q/k/v biases; bos <|endoftext|>, eos <|im_end|>. */
    {.name = "qwen2.5-7b", .arch = AL_ARCH_QWEN2, .hidden = 3584, .intermediate = 18944, .layers = 28,
     .heads = 28, .kv_heads = 4, .head_dim = 128, .vocab = 152064, .max_positions = 32768,
     .rope_theta = 1000000.0, .rms_norm_eps = 1e-6f, .tied = false, .bos = 151643, .eos = {151645}, .n_eos = 1},
    /* mistralai/Mistral-7B-Instruct-v0.3: no sliding window (v0.1 had 4096). */
    {.name = "mistral-7b", .arch = AL_ARCH_MISTRAL, .hidden = 4096, .intermediate = 14336, .layers = 32,
     .heads = 32, .kv_heads = 8, .head_dim = 128, .vocab = 32768, .max_positions = 32768,
     .rope_theta = 1000000.0, .rms_norm_eps = 1e-5f, .tied = false, .bos = 1, .eos = {2}, .n_eos = 1},
};
#define N_PRESETS (int)(sizeof presets / sizeof presets[0])

const char *al_model_preset_name(int index)
{
    return index >= 0 && index < N_PRESETS ? presets[index].name : NULL;
}

static void fill_config(const struct preset *p, struct al_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = p->arch;
    snprintf(c->architecture, sizeof c->architecture, "%s", al_arch_name(p->arch));
    c->hidden_size = p->hidden;
    c->intermediate_size = p->intermediate;
    c->num_hidden_layers = p->layers;
    c->num_attention_heads = p->heads;
    c->num_key_value_heads = p->kv_heads;
    c->head_dim = p->head_dim;
    c->vocab_size = p->vocab;
    c->max_position_embeddings = p->max_positions;
    c->rms_norm_eps = p->rms_norm_eps;
    c->rope_theta = p->rope_theta;
    c->rope_llama3 = p->rope_llama3;
    c->rope_factor = p->rope_factor;
    c->rope_low_freq_factor = p->rope_low;
    c->rope_high_freq_factor = p->rope_high;
    c->rope_original_max_position = p->rope_original;
    c->tie_word_embeddings = p->tied;
    c->attention_qkv_bias = p->arch == AL_ARCH_QWEN2;
    c->sliding_window = 0;
    c->bos_token_id = p->bos;
    c->num_eos_token_ids = p->n_eos;
    for (int i = 0; i < p->n_eos; i++)
        c->eos_token_ids[i] = p->eos[i];
    c->torch_dtype = AL_DTYPE_BF16;
}

int al_model_preset(const char *name, struct al_model_config *out)
{
    for (int i = 0; i < N_PRESETS; i++) {
        if (name && strcmp(name, presets[i].name) == 0) {
            fill_config(&presets[i], out);
            return 0;
        }
    }
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < N_PRESETS && used < sizeof known; i++)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", presets[i].name);
    return al_fail("unknown model preset \"%s\" (known: %s)", name ? name : "(null)", known);
}
