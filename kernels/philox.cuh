// Counter-based random numbers on the GPU (cuRAND's Philox4_32_10 device API) following the
// stream convention in core.h, shared by the random ops, the replay sampling and the fused SAC
// kernel so that all of them draw the same numbers as the CPU twins.
#ifndef TANDEM_PHILOX_CUH
#define TANDEM_PHILOX_CUH

#include <curand_kernel.h>

#include "tandem/core.h"

// Philox state for block g of the op's sub-stream.
static __device__ __forceinline__ void rng_block_init(const tdm_rng_ctr *rng, uint32_t stream,
                                                      size_t g, curandStatePhilox4_32_10_t *st) {
  unsigned long long seed = rng->seed, calls = rng->calls;
  unsigned long long sub = calls * 256ull + (unsigned long long)(stream & 255u);
  curand_init(seed, sub, 4ull * (unsigned long long)g, st);
}

// Uniform in (0, 1] from 32 bits, as core.h's tdm_u32_uniform: two roundings, never an FMA.
static __device__ __forceinline__ float u32_uniform(uint32_t x) {
  return __fadd_rn(__fmul_rn((float)x, 2.3283064e-10f), 2.3283064e-10f / 2.0f);
}

// Lane k of a uint4 / float4.
static __device__ __forceinline__ uint32_t lane_u(uint4 v, int k) {
  return k == 0 ? v.x : (k == 1 ? v.y : (k == 2 ? v.z : v.w));
}
static __device__ __forceinline__ float lane_f(float4 v, int k) {
  return k == 0 ? v.x : (k == 1 ? v.y : (k == 2 ? v.z : v.w));
}

// Index of batch row r as fill_randint_kernel (kernels/ops_random.cu) draws it: Philox block
// g = r / 4 of sub-stream calls * 256 + stream, lane r % 4, u in (0, 1] formed with two explicit
// roundings, floor(u * bound) clamped to [0, bound - 1].
static __device__ __forceinline__ int32_t sample_index(const tdm_rng_ctr *rng, uint32_t stream,
                                                       int r, int32_t b) {
  curandStatePhilox4_32_10_t st;
  rng_block_init(rng, stream, (size_t)(r / 4), &st);
  float u = u32_uniform(lane_u(curand4(&st), r % 4));
  int32_t q = (int32_t)floorf(__fmul_rn(u, (float)b));
  if (q > b - 1) q = b - 1;
  return q < 0 ? 0 : q;
}

// Normals 4 g .. 4 g + 3 of sub-stream stream as mean + std z into x (n elements in all; two
// roundings, never an FMA, as the CPU twin).
static __device__ __forceinline__ void normals_block(const tdm_rng_ctr *rng, uint32_t stream,
                                                     size_t g, float *x, size_t n, float mean,
                                                     float std) {
  curandStatePhilox4_32_10_t st;
  rng_block_init(rng, stream, g, &st);
  float4 z = curand_normal4(&st);
  for (int k = 0; k < 4; k++) {
    size_t i = 4 * g + (size_t)k;
    if (i < n) x[i] = __fadd_rn(mean, __fmul_rn(std, lane_f(z, k)));
  }
}

#endif  // TANDEM_PHILOX_CUH
