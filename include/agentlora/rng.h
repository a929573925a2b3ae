/* Deterministic random numbers. The whole state is two integers so checkpoints can
 * save and restore it exactly; every consumer owns its own generator. */
#ifndef AGENTLORA_RNG_H
#define AGENTLORA_RNG_H

#include <stdint.h>

/* PCG32 (O'Neill): small, fast, statistically sound, with independent streams. */
struct al_rng {
    uint64_t state;
    uint64_t increment;
};

void al_rng_seed(struct al_rng *rng, uint64_t seed, uint64_t stream);
uint32_t al_rng_u32(struct al_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
float al_rng_uniform(struct al_rng *rng);
/* Uniform in [low, high). */
float al_rng_uniform_range(struct al_rng *rng, float low, float high);
/* Standard normal (Box-Muller). */
float al_rng_normal(struct al_rng *rng);
/* Uniform integer in [0, bound). */
uint32_t al_rng_below(struct al_rng *rng, uint32_t bound);

/* A stateless 64-bit mix (splitmix64 finaliser): counter-based randomness, e.g. a dropout
 * mask that backward regenerates from (seed, index) instead of storing it. */
uint64_t al_hash64(uint64_t x);
/* Uniform in [0, 1) from (seed, index), identical on every backend. */
float al_hash_uniform(uint64_t seed, uint64_t index);

#endif
