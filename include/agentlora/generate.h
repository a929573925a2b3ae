/* Generation: batched incremental decoding with a key/value cache, token sampling
 * (greedy, temperature, top-p) from a seed, and chat-level generation that renders a
 * conversation's prompt, prefills an optional forced prefix (PING's eval mode) after the
 * assistant header, and returns the completion separately from that prefix.
 *
 *     struct al_chat_generator gen = {model, lora, tokenizer, AL_CHAT_CHATML_QWEN25, {0}};
 *     struct al_chat_prompt prompt = {&conversation, "I will help safely.", 0};
 *     struct al_generate_options options = al_generate_default_options();
 *     struct al_chat_generation result;
 *     if (al_generate_chat(&gen, &prompt, 1, &options, &result) == 0)
 *         puts(result.completion);
 *     al_chat_generation_free(&result);
 *
 * Every generation runs in evaluation mode: LoRA dropout is off. */
#ifndef AGENTLORA_GENERATE_H
#define AGENTLORA_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "agentlora/chat_template.h"
#include "agentlora/rng.h"

struct al_model;
struct al_model_config;
struct al_lora;
struct al_tokenizer;
struct al_conversation;
struct al_weighted_token;

/* ---- KV-cache decoding (src/model/decode.c) ----
 * The model run one step at a time: each step appends tokens to some of `sequences`
 * independent sequences, keeps their keys and values in a per-layer cache, and returns
 * logits. A prompt is prefilled with one step holding all its tokens; each later step
 * adds one token per active sequence. Sequences of different lengths decode together.
 * The logits equal those of al_model_logits over each whole sequence (up to rounding:
 * the tests require 1e-5 relative on the CPU). */

/* Tokens one step runs through the model at once when the caller does not choose:
 * longer steps (prefills) are split into chunks of this many, bounding activation memory. */
#define AL_DECODER_DEFAULT_STEP_TOKENS 256

struct al_decoder;

/* Caches for `sequences` sequences of up to max_len tokens each, and activations for
 * steps of max_step_tokens tokens (0: AL_DECODER_DEFAULT_STEP_TOKENS). lora (NULL for the
 * base model) is borrowed and must outlive the decoder. Fails when the model's backend
 * does not implement decoding. */
struct al_decoder *al_decoder_create(const struct al_model *model, const struct al_lora *lora, int sequences,
                                     int max_len, int max_step_tokens);
void al_decoder_free(struct al_decoder *decoder);
/* Empties every sequence, so the decoder can serve a new batch. */
void al_decoder_reset(struct al_decoder *decoder);
/* Tokens sequence `sequence` holds so far. */
int al_decoder_length(const struct al_decoder *decoder, int sequence);

/* Appends n tokens: token i (id ids[i]) goes to sequence seq[i] at that sequence's next
 * position, in the order given. When logits is not NULL it receives one row of
 * vocab_size floats (host memory) for each token with want_logits[i] (every token when
 * want_logits is NULL), in token order: the distribution of the token that follows it.
 * Nothing changes when the tokens do not fit (bad id or sequence, a sequence past
 * max_len); after a failure inside the model the decoder must be reset. */
int al_decoder_step(struct al_decoder *decoder, const int32_t *seq, const int32_t *ids, int64_t n,
                    const bool *want_logits, float *logits);

/* ---- choosing tokens ----
 * temperature 0: greedy (the most likely token; the lowest id among equals), top_p
 * ignored. temperature > 0: softmax(logits / temperature), restricted by top_p:
 *   top_p == 1      the whole distribution;
 *   0 < top_p < 1   the nucleus: the fewest most likely tokens whose probabilities sum to
 *                   at least top_p (never empty; ties ordered by id);
 *   top_p == 0      only the most likely token, so the result equals greedy.
 * A sampled token consumes exactly one draw of the sequence's generator, whatever the
 * nucleus size, so a sequence's text depends only on its seed, stream and logits. */
struct al_sampling {
    float temperature; /* >= 0, finite */
    float top_p;       /* in [0, 1] */
    uint64_t seed;
};

int al_sampling_validate(const struct al_sampling *sampling);

/* One sequence's sampler: its generator (seeded from (seed, stream)) and scratch for a
 * vocabulary, so choosing a token allocates nothing. */
struct al_token_sampler {
    struct al_sampling sampling;
    struct al_rng rng;
    int vocab;
    struct al_weighted_token *scratch; /* [vocab] */
};

int al_token_sampler_init(struct al_token_sampler *sampler, const struct al_sampling *sampling, int vocab,
                          uint64_t stream);
void al_token_sampler_free(struct al_token_sampler *sampler);
/* The next token from one row of logits. Non-finite logits other than -inf (a masked
 * token) are an error, as is a row with every token masked. */
int al_token_sampler_next(struct al_token_sampler *sampler, const float *logits, int32_t *token);

/* ---- token-level generation (src/eval/generate.c) ---- */

enum al_stop_reason {
    AL_STOP_END_OF_TURN = 0, /* the model wrote one of the stop ids */
    AL_STOP_MAX_TOKENS,      /* max_new_tokens were written */
    AL_STOP_CONTEXT_FULL,    /* prompt and completion filled max_position_embeddings */
};

const char *al_stop_reason_name(enum al_stop_reason reason);

#define AL_GENERATE_DEFAULT_MAX_NEW_TOKENS 256
#define AL_GENERATE_MAX_STOP_IDS 16

struct al_generate_options {
    int max_new_tokens;
    struct al_sampling sampling;
    /* Ids that end a sequence (not part of its completion). n_stop_ids 0 with the chat
     * functions: al_generate_stop_ids of the tokenizer and model. */
    int32_t stop_ids[AL_GENERATE_MAX_STOP_IDS];
    int n_stop_ids;
    int max_step_tokens; /* 0: AL_DECODER_DEFAULT_STEP_TOKENS */
};

/* Greedy, AL_GENERATE_DEFAULT_MAX_NEW_TOKENS, top_p 1, seed 0, no stop ids yet. */
struct al_generate_options al_generate_default_options(void);

/* The ids that end an assistant turn: the tokenizer's end-of-turn ids
 * (al_tokenizer_end_of_turn_ids) and the model's eos ids from config.json, without
 * repeats and within the model's vocabulary. Returns how many it wrote (at most
 * capacity). */
int al_generate_stop_ids(const struct al_tokenizer *tokenizer, const struct al_model_config *config, int32_t *ids,
                         int capacity);

/* A prompt of token ids. `stream` picks the sampling stream (seed, stream): give each
 * prompt a stable number (a record number) and its sampled text does not depend on the
 * batch it runs in. */
struct al_token_prompt {
    const int32_t *ids;
    int length; /* > 0 */
    uint64_t stream;
};

struct al_token_generation {
    int32_t *ids; /* the new tokens, without the stop id */
    int count;
    enum al_stop_reason stop;
    int32_t stop_id; /* the id that ended it, -1 when no stop id did */
};

/* Generates a completion for each of n prompts, decoding them together as one batch;
 * out[i] belongs to prompts[i]. A sequence never grows past the model's
 * max_position_embeddings (prompt and completion together); a prompt that fills it is an
 * error. On failure nothing is left allocated in out. */
int al_generate_tokens(const struct al_model *model, const struct al_lora *lora, const struct al_token_prompt *prompts,
                       int n, const struct al_generate_options *options, struct al_token_generation *out);
void al_token_generation_free(struct al_token_generation *generation);

/* ---- chat-level generation (src/eval/generate_chat.c) ---- */

/* What text generation needs; every pointer is borrowed. chat holds the render options
 * (date_string, llama_tools_in_system, ...); its add_generation_prompt and
 * assistant_prefix are set per prompt. */
struct al_chat_generator {
    const struct al_model *model;
    const struct al_lora *lora; /* NULL: the base model */
    const struct al_tokenizer *tokenizer;
    enum al_chat_format format;
    struct al_chat_options chat;
};

/* The prompt is the conversation up to its first assistant response (rendered by
 * al_chat_render_prompt, so it ends with the last user message before that response),
 * then the assistant header, then `prefix` when not NULL or empty: the forced start of
 * the response, which the model continues. */
struct al_chat_prompt {
    const struct al_conversation *conversation;
    const char *prefix;
    uint64_t stream; /* sampling stream, as in struct al_token_prompt */
};

struct al_chat_generation {
    char *prompt;          /* the rendered prompt, up to and including the assistant header */
    char *prefix;          /* the forced prefix ("" when none) */
    char *completion;      /* what the model wrote after the prefix, without the stop token; the
                              exact decoded bytes (a completion cut by max_new_tokens may end
                              inside a UTF-8 character) */
    int prompt_tokens;     /* tokens prefilled: prompt and prefix */
    int32_t *completion_ids;
    int completion_count;
    enum al_stop_reason stop;
    int32_t stop_id;       /* -1 when no stop id ended it */
};

/* Renders, tokenizes and generates n prompts as one batch; out[i] belongs to prompts[i].
 * Errors name the prompt's index. On failure nothing is left allocated in out. */
int al_generate_chat(const struct al_chat_generator *generator, const struct al_chat_prompt *prompts, int n,
                     const struct al_generate_options *options, struct al_chat_generation *out);
void al_chat_generation_free(struct al_chat_generation *generation);

#endif
