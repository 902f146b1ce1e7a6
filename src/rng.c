/* rng.c: the project's seeded generator, xoshiro256** (Blackman & Vigna) with its state
 * filled by splitmix64, so that any 64-bit seed gives a well-mixed stream. */
#include <math.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mv_rng_seed(mv_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t mv_rng_next(mv_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mv_rng_uniform(mv_rng *rng) { return (double)(mv_rng_next(rng) >> 11) * 0x1.0p-53; }

double mv_rng_normal(mv_rng *rng)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    double u = 1.0 - mv_rng_uniform(rng);
    double v = mv_rng_uniform(rng);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

void mv_rng_skip_normals(mv_rng *rng, size_t count)
{
    /* mv_rng_normal takes exactly two words, whatever they are: skipping needs no logarithm */
    for (size_t i = 0; i < 2 * count; i++) (void)mv_rng_next(rng);
}

uint32_t mv_rng_below(mv_rng *rng, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low range. */
    uint64_t m = (uint64_t)(uint32_t)(mv_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(mv_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
