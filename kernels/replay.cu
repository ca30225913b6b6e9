// Fused replay-buffer kernels; CPU twins in src/agents/replay_ops_cpu.c. One thread per element
// of the packed row (all arrays side by side), grid-stride loops.
#include "../src/agents/replay_ops.h"
#include "cuda_common.cuh"
#include "philox.cuh"
#include "replay_dev.cuh"

#define RP_THREADS 256

static __global__ void put_kernel(tdm_replay_cols cols, const float *__restrict__ src, int n,
                                  int64_t pos, int64_t capacity, int32_t *size_dev,
                                  int32_t new_size) {
  const int W = cols.total_width;
  TDM_GRID_LOOP(i, (size_t)n * W) {
    int r = (int)(i / W), c;
    int k = col_of(cols, (int)(i % W), &c);
    int64_t row = (pos + r) % capacity;
    cols.ring[k][(size_t)row * cols.width[k] + c] = src[i];
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) *size_dev = new_size;
}

extern "C" tdm_status tdm_replay_cuda_put(tdm_dev *dev, const tdm_replay_cols *cols,
                                          const float *src, int n, int64_t pos, int64_t capacity,
                                          int32_t *size_dev, int32_t new_size) {
  size_t total = (size_t)n * cols->total_width;
  put_kernel<<<tdm_grid_for(dev, total, RP_THREADS), RP_THREADS, 0, tdm_stream_of(dev)>>>(
      *cols, src, n, pos, capacity, size_dev, new_size);
  return TDM_LAUNCH_CHECK("replay put_kernel");
}

static __global__ void gather_cols_kernel(tdm_replay_cols cols, const int32_t *__restrict__ idx,
                                          int n) {
  const int W = cols.total_width;
  TDM_GRID_LOOP(i, (size_t)n * W) {
    int r = (int)(i / W), c;
    int k = col_of(cols, (int)(i % W), &c);
    int w = cols.width[k];
    cols.batch[k][(size_t)r * w + c] = cols.ring[k][(size_t)idx[r] * w + c];
  }
}

extern "C" tdm_status tdm_replay_cuda_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols,
                                                  const int32_t *idx, int n) {
  size_t total = (size_t)n * cols->total_width;
  gather_cols_kernel<<<tdm_grid_for(dev, total, RP_THREADS), RP_THREADS, 0, tdm_stream_of(dev)>>>(
      *cols, idx, n);
  return TDM_LAUNCH_CHECK("replay gather_cols_kernel");
}

// One thread per element of the packed batch row: each draws its row's index (counter-based, so
// every thread of a row gets the same one), the first column also stores it, then copies.
static __global__ void sample_cols_kernel(tdm_replay_cols cols, int32_t *__restrict__ idx, int n,
                                          const int32_t *bound, const tdm_rng_ctr *rng,
                                          uint32_t stream) {
  const int W = cols.total_width;
  const int32_t b = *bound;
  TDM_GRID_LOOP(i, (size_t)n * W) {
    int r = (int)(i / W), c, j = (int)(i % W);
    int32_t row = sample_index(rng, stream, r, b);
    if (j == 0) idx[r] = row;
    int k = col_of(cols, j, &c);
    int w = cols.width[k];
    cols.batch[k][(size_t)r * w + c] = cols.ring[k][(size_t)row * w + c];
  }
}

extern "C" tdm_status tdm_replay_cuda_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols,
                                                  int32_t *idx, int n, const int32_t *bound,
                                                  const tdm_rng_ctr *rng, uint32_t stream) {
  size_t total = (size_t)n * cols->total_width;
  sample_cols_kernel<<<tdm_grid_for(dev, total, RP_THREADS), RP_THREADS, 0, tdm_stream_of(dev)>>>(
      *cols, idx, n, bound, rng, stream);
  return TDM_LAUNCH_CHECK("replay sample_cols_kernel");
}
