/* Randomly initialised model folders: a config.json in the Hugging Face spelling and
 * weights drawn as Hugging Face initialises a fresh model, so that a pipeline can run
 * end to end without downloading a checkpoint (`agentlora init-model`).
 *
 *     struct al_model_config config;
 *     al_model_preset("tiny", &config);
 *     config.vocab_size = 2048;
 *     al_random_model_write(&config, AL_DTYPE_BF16, 42, "models/tiny", 0);
 *
 * Presets carry the shapes of real models (from their published config.json), so a
 * random "llama-3.1-8b" exercises exactly the memory and compute of the real one. */
#ifndef AGENTLORA_RANDOM_MODEL_H
#define AGENTLORA_RANDOM_MODEL_H

#include <stdint.h>

#include "agentlora/config.h"
#include "agentlora/dtype.h"

/* Fills `out` with a named preset: "tiny", "smollm2-135m", "llama-3.2-1b", "llama-3.1-8b",
 * "qwen2.5-7b" or "mistral-7b". Shapes, RoPE and tying are those of the published
 * config.json; bos/eos ids those of the -Instruct release (the chat models this engine
 * fine-tunes). "tiny" is a small Llama whose vocab_size (2048, the demo tokenizer's) the
 * caller usually replaces. torch_dtype is BF16. Unknown names fail with the list. */
int al_model_preset(const char *name, struct al_model_config *out);

/* The index-th preset name, or NULL past the end (for listing them). */
const char *al_model_preset_name(int index);

/* Shards are kept to this size by default: writing one holds it in memory about twice
 * (the writer's copy of each tensor, then the file image), so 2 GB keeps an 8B model's
 * peak near 5 GB instead of 32. */
#define AL_RANDOM_MODEL_DEFAULT_SHARD_BYTES 2000000000ULL

/* Hugging Face's initializer_range: linear and embedding weights ~ N(0, 0.02^2). */
#define AL_RANDOM_MODEL_INIT_STD 0.02f

/* Writes OUT_DIR/config.json and the weights: model.safetensors, or, when the weights
 * exceed max_shard_bytes (0: AL_RANDOM_MODEL_DEFAULT_SHARD_BYTES), shards
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json. A tensor larger
 * than max_shard_bytes gets a shard of its own. Weights are N(0, 0.02^2) for linears and
 * embeddings, zero for biases, one for RMSNorm weights, stored in dtype (F32, F16 or
 * BF16; also written as torch_dtype). The same config, dtype and seed give byte-identical
 * files whatever the thread count. OUT_DIR is created when missing; it must not already
 * hold a model (config.json or model weights), so nothing is overwritten. */
int al_random_model_write(const struct al_model_config *config, enum al_dtype dtype, uint64_t seed,
                          const char *out_dir, uint64_t max_shard_bytes);

/* The same with weights drawn from normal(0, init_std) instead of the Hugging Face default
 * AL_RANDOM_MODEL_INIT_STD: a larger std gives a random frozen model whose logits span
 * enough range for a LoRA adapter to learn visibly (the demo). */
int al_random_model_write_std(const struct al_model_config *config, enum al_dtype dtype, uint64_t seed,
                              float init_std, const char *out_dir, uint64_t max_shard_bytes);

/* The config.json text al_random_model_write writes (caller frees), or NULL. */
char *al_random_model_config_json(const struct al_model_config *config, enum al_dtype dtype);

#endif
