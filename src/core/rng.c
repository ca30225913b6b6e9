// Philox4x32-10 counter-based generator, bit-compatible with cuRAND's Philox4_32_10.
// Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011).
#include <math.h>

#include "tandem/core.h"

#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u

void tdm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void tdm_box_muller(uint32_t x, uint32_t y, float *n0, float *n1) {
  const float inv = 2.3283064e-10f, inv2pi = 2.3283064e-10f * 6.2831855f;
  float u = (float)x * inv + inv / 2.0f;
  float v = (float)y * inv2pi + inv2pi / 2.0f;
  float s = sqrtf(-2.0f * logf(u));
  *n0 = sinf(v) * s;
  *n1 = cosf(v) * s;
}

void tdm_rng_init(tdm_rng *r, uint64_t seed, uint64_t sub) {
  r->seed = seed;
  r->sub = sub;
  r->block = 0;
  r->pos = 4;
  r->has_spare = 0;
  r->spare = 0.0f;
}

uint32_t tdm_rng_u32(tdm_rng *r) {
  if (r->pos >= 4) {
    uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->sub,
                       (uint32_t)(r->sub >> 32)};
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    tdm_philox4x32_10(ctr, key, r->buf);
    r->block++;
    r->pos = 0;
  }
  return r->buf[r->pos++];
}

float tdm_rng_uniform(tdm_rng *r) { return tdm_u32_uniform(tdm_rng_u32(r)); }

double tdm_rng_uniform_d(tdm_rng *r) {
  uint64_t a = tdm_rng_u32(r) >> 5, b = tdm_rng_u32(r) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

float tdm_rng_normal(tdm_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  uint32_t x = tdm_rng_u32(r), y = tdm_rng_u32(r);
  float a, b;
  tdm_box_muller(x, y, &a, &b);
  r->spare = b;
  r->has_spare = 1;
  return a;
}

uint32_t tdm_rng_below(tdm_rng *r, uint32_t n) {
  // Lemire's multiply-shift with rejection for an unbiased result
  uint64_t m = (uint64_t)tdm_rng_u32(r) * n;
  uint32_t lo = (uint32_t)m;
  if (lo < n) {
    uint32_t t = (uint32_t)(-n) % n;
    while (lo < t) {
      m = (uint64_t)tdm_rng_u32(r) * n;
      lo = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}
