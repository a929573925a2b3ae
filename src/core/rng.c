/* PCG32 generator and a counter-based hash; both are plain integer arithmetic so the
 * same seed gives the same numbers on every machine and backend. */
#include "agentlora/rng.h"

#include <math.h>

#define PCG_MULTIPLIER 6364136223846793005ULL

void al_rng_seed(struct al_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->increment = (stream << 1u) | 1u;
    al_rng_u32(rng);
    rng->state += seed;
    al_rng_u32(rng);
}

uint32_t al_rng_u32(struct al_rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * PCG_MULTIPLIER + rng->increment;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rotation = (uint32_t)(old >> 59u);
    return (xorshifted >> rotation) | (xorshifted << ((-rotation) & 31));
}

float al_rng_uniform(struct al_rng *rng)
{
    return (float)(al_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

float al_rng_uniform_range(struct al_rng *rng, float low, float high)
{
    return low + (high - low) * al_rng_uniform(rng);
}

float al_rng_normal(struct al_rng *rng)
{
    /* 1 - u keeps the logarithm's argument in (0, 1]. */
    float u1 = 1.0f - al_rng_uniform(rng);
    float u2 = al_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

uint32_t al_rng_below(struct al_rng *rng, uint32_t bound)
{
    if (bound == 0)
        return 0;
    /* Lemire-style rejection keeps the result unbiased. */
    uint32_t threshold = (uint32_t)(-bound) % bound;
    for (;;) {
        uint32_t r = al_rng_u32(rng);
        if (r >= threshold)
            return r % bound;
    }
}

uint64_t al_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

float al_hash_uniform(uint64_t seed, uint64_t index)
{
    uint64_t h = al_hash64(seed ^ al_hash64(index));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}
