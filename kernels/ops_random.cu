// Random GPU ops with cuRAND's device API (Philox4_32_10), following the stream convention in
// core.h: seed and calls are read from the tdm_rng_ctr in device memory when the kernel runs
// (so a captured graph draws fresh numbers after an in-graph tdm_rng_advance); block g of four
// elements uses curand_init(seed, calls * 256 + stream, 4 g) and one curand4 / curand_normal4;
// element i takes lane i % 4. Uniforms are formed with explicitly rounded multiply and add (no
// fused multiply-add) so that they equal the CPU twin's bit for bit.
#include "cuda_common.cuh"
#include "philox.cuh"

#define RNG_THREADS 256

// Elements [4 g, min(4 g + 4, n)) of block g.
#define RNG_BLOCK_LOOP(g, n)                                                        \
  for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < ((n) + 3) / 4; \
       g += (size_t)gridDim.x * blockDim.x)

static unsigned rng_grid(const tdm_dev *dev, size_t n) {
  return tdm_grid_for(dev, (n + 3) / 4, RNG_THREADS);
}

// x = lo + (hi - lo) u
static __global__ void fill_uniform_kernel(float *x, size_t n, float lo, float hi,
                                           const tdm_rng_ctr *rng, uint32_t stream) {
  float span = __fsub_rn(hi, lo);
  RNG_BLOCK_LOOP(g, n) {
    curandStatePhilox4_32_10_t st;
    rng_block_init(rng, stream, g, &st);
    uint4 r = curand4(&st);
    for (int k = 0; k < 4; k++) {
      size_t i = 4 * g + (size_t)k;
      if (i < n) x[i] = __fadd_rn(lo, __fmul_rn(span, u32_uniform(lane_u(r, k))));
    }
  }
}

extern "C" tdm_status tdm_cuda_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                                            const tdm_rng_ctr *rng, uint32_t stream) {
  fill_uniform_kernel<<<rng_grid(dev, n), RNG_THREADS, 0, tdm_stream_of(dev)>>>(x, n, lo, hi, rng,
                                                                                stream);
  return TDM_LAUNCH_CHECK("fill_uniform_kernel");
}

// x = mean + std * z, z from curand_normal4 (Box-Muller on lanes (0, 1) and (2, 3))
static __global__ void fill_normal_kernel(float *x, size_t n, float mean, float std,
                                          const tdm_rng_ctr *rng, uint32_t stream) {
  RNG_BLOCK_LOOP(g, n) normals_block(rng, stream, g, x, n, mean, std);
}

extern "C" tdm_status tdm_cuda_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                                           const tdm_rng_ctr *rng, uint32_t stream) {
  fill_normal_kernel<<<rng_grid(dev, n), RNG_THREADS, 0, tdm_stream_of(dev)>>>(x, n, mean, std, rng,
                                                                               stream);
  return TDM_LAUNCH_CHECK("fill_normal_kernel");
}

// x = min(floor(u * bound), bound - 1); bound read from device memory
static __global__ void fill_randint_kernel(int32_t *x, size_t n, const int32_t *bound,
                                           const tdm_rng_ctr *rng, uint32_t stream) {
  int32_t b = *bound;
  float fb = (float)b;
  RNG_BLOCK_LOOP(g, n) {
    curandStatePhilox4_32_10_t st;
    rng_block_init(rng, stream, g, &st);
    uint4 r = curand4(&st);
    for (int k = 0; k < 4; k++) {
      size_t i = 4 * g + (size_t)k;
      if (i < n) {
        int32_t v = (int32_t)floorf(__fmul_rn(u32_uniform(lane_u(r, k)), fb));
        if (v > b - 1) v = b - 1;
        x[i] = v < 0 ? 0 : v;  // only for bound < 1, which the CPU refuses
      }
    }
  }
}

extern "C" tdm_status tdm_cuda_fill_randint(tdm_dev *dev, int32_t *x, size_t n,
                                            const int32_t *bound, const tdm_rng_ctr *rng,
                                            uint32_t stream) {
  fill_randint_kernel<<<rng_grid(dev, n), RNG_THREADS, 0, tdm_stream_of(dev)>>>(x, n, bound, rng,
                                                                                stream);
  return TDM_LAUNCH_CHECK("fill_randint_kernel");
}

// mask = u > p ? keep_scale : 0, y = x * mask (y may alias x)
static __global__ void dropout_kernel(const float *x, float *y, float *mask, size_t n, float p,
                                      float keep_scale, const tdm_rng_ctr *rng, uint32_t stream) {
  RNG_BLOCK_LOOP(g, n) {
    curandStatePhilox4_32_10_t st;
    rng_block_init(rng, stream, g, &st);
    uint4 r = curand4(&st);
    for (int k = 0; k < 4; k++) {
      size_t i = 4 * g + (size_t)k;
      if (i < n) {
        float mk = u32_uniform(lane_u(r, k)) > p ? keep_scale : 0.0f;
        mask[i] = mk;
        y[i] = __fmul_rn(x[i], mk);
      }
    }
  }
}

extern "C" tdm_status tdm_cuda_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask,
                                               size_t n, float p, const tdm_rng_ctr *rng,
                                               uint32_t stream) {
  float keep_scale = 1.0f / (1.0f - p);  // host float division, as the CPU twin
  dropout_kernel<<<rng_grid(dev, n), RNG_THREADS, 0, tdm_stream_of(dev)>>>(x, y, mask, n, p,
                                                                           keep_scale, rng, stream);
  return TDM_LAUNCH_CHECK("dropout_kernel");
}

// rng->calls += n on the stream (graph-safe: the addition is replayed, not baked)
static __global__ void rng_advance_kernel(tdm_rng_ctr *rng, unsigned long long n) {
  if (threadIdx.x == 0 && blockIdx.x == 0) rng->calls += n;
}

extern "C" tdm_status tdm_cuda_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n) {
  rng_advance_kernel<<<1, 1, 0, tdm_stream_of(dev)>>>(rng, (unsigned long long)n);
  return TDM_LAUNCH_CHECK("rng_advance_kernel");
}
