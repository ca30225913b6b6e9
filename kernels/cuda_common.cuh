// Shared helpers for the CUDA backend: error checks, launch geometry, deterministic warp and
// block reductions. Included by every kernels/*.cu; not part of the public interface.
#ifndef TANDEM_CUDA_COMMON_CUH
#define TANDEM_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "../src/core/ops_internal.h"
#include "tandem/ops.h"

// Return TDM_ERR_CUDA with the call's text and CUDA's message when a runtime call fails.
#define TDM_CUDA_CHECK(call)                                                           \
  do {                                                                                 \
    cudaError_t tdm_e_ = (call);                                                       \
    if (tdm_e_ != cudaSuccess)                                                         \
      return tdm_seterr(TDM_ERR_CUDA, __FILE__, __LINE__, "%s failed: %s (%s)", #call, \
                        cudaGetErrorString(tdm_e_), cudaGetErrorName(tdm_e_));         \
  } while (0)

// Return TDM_ERR_CUDA with the call's text and cuBLAS's message when a cuBLAS call fails.
#define TDM_CUBLAS_CHECK(call)                                                         \
  do {                                                                                 \
    cublasStatus_t tdm_cs_ = (call);                                                   \
    if (tdm_cs_ != CUBLAS_STATUS_SUCCESS)                                              \
      return tdm_seterr(TDM_ERR_CUDA, __FILE__, __LINE__, "%s failed: %s (%s)", #call, \
                        cublasGetStatusString(tdm_cs_), cublasGetStatusName(tdm_cs_)); \
  } while (0)

// The device's stream.
static inline cudaStream_t tdm_stream_of(const tdm_dev *dev) {
  return (cudaStream_t)dev->stream;
}

// Blocks for a grid-stride loop over `work` items with `threads` threads per block: enough to
// cover the work, capped at 32 blocks per SM (the loop takes the rest).
static inline unsigned tdm_grid_for(const tdm_dev *dev, size_t work, int threads) {
  size_t sms = dev->sm_count > 0 ? (size_t)dev->sm_count : 132;
  size_t want = (work + (size_t)threads - 1) / (size_t)threads;
  size_t cap = sms * 32;
  if (want > cap) want = cap;
  if (want < 1) want = 1;
  return (unsigned)want;
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define TDM_GRID_LOOP(i, n)                                                       \
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); \
       i += (size_t)gridDim.x * blockDim.x)

// Butterfly sum over a warp: every lane gets the same, order-fixed result.
static __device__ __forceinline__ float tdm_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Butterfly max over a warp.
static __device__ __forceinline__ float tdm_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block (blockDim.x a multiple of 32, at most 1024); sh holds 32 floats. Every
// thread gets the result. Fixed order, so deterministic. Synchronises; call from all threads.
static __device__ __forceinline__ float tdm_block_sum(float v, float *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = tdm_warp_sum(v);
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0f;
  return tdm_warp_sum(v);
}

// Max over a block, as tdm_block_sum.
static __device__ __forceinline__ float tdm_block_max(float v, float *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = tdm_warp_max(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
  return tdm_warp_max(v);
}

// Double-precision butterfly sum over a warp.
static __device__ __forceinline__ double tdm_warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Double-precision sum over a block, as tdm_block_sum; sh holds 32 doubles.
static __device__ __forceinline__ double tdm_block_sum_d(double v, double *sh) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = tdm_warp_sum_d(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.0;
  return tdm_warp_sum_d(v);
}

#endif  // TANDEM_CUDA_COMMON_CUH
