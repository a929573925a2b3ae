/* Merging a LoRA adapter into its base model: W' = W + scale * B A for every adapted
 * linear, computed in fp32 and stored back in the base model's dtype, written as a
 * Hugging Face model folder that needs no PEFT to load. */
#ifndef AGENTLORA_MERGE_H
#define AGENTLORA_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/dtype.h"

/* Shards of at most this many bytes unless the caller says otherwise: transformers'
 * save_pretrained default (max_shard_size="5GB"). */
#define AL_MERGE_DEFAULT_SHARD_BYTES 5000000000ULL

/* In place: weight [out, in] (F32, F16 or BF16) += scale * B [out, rank] A [rank, in].
 * The sum is formed in fp32 and rounded once to the weight's dtype. */
int al_merge_lora_weight(void *weight, enum al_dtype dtype, int64_t out, int64_t in, const float *A, const float *B,
                         int rank, float scale);

/* Writes out_dir (created; must differ from model_dir): every tensor of the model with
 * the adapter merged, in the model's dtype, in shards of at most max_shard_bytes
 * (model.safetensors when one shard suffices, else model-0000k-of-0000n.safetensors and
 * model.safetensors.index.json), plus config.json, generation_config.json and the
 * tokenizer files copied unchanged. A single tensor larger than the limit gets a shard
 * of its own. */
int al_merge_model(const char *model_dir, const char *adapter_dir, const char *out_dir, uint64_t max_shard_bytes);

/* 0 when out_dir is free for a merge: missing, or an empty folder, or anything when
 * overwrite is set (the merge then replaces the files it writes); else -1 saying what is
 * there and that --overwrite replaces it. */
int al_merge_check_target(const char *out_dir, bool overwrite);

#endif
