// CPU twins of the fused replay kernels (kernels/replay.cu), and their dispatch.
#include <string.h>

#include "replay_ops.h"

tdm_status tdm_replay_cpu_put(tdm_dev *dev, const tdm_replay_cols *cols, const float *src, int n,
                              int64_t pos, int64_t capacity, int32_t *size_dev, int32_t new_size) {
  (void)dev;
  for (int i = 0; i < n; i++) {
    int64_t row = (pos + i) % capacity;
    const float *s = src + (size_t)i * cols->total_width;
    for (int k = 0; k < TDM_REPLAY_NCOLS; k++) {
      int w = cols->width[k];
      memcpy(cols->ring[k] + (size_t)row * w, s, (size_t)w * sizeof(float));
      s += w;
    }
  }
  *size_dev = new_size;
  return TDM_OK;
}

tdm_status tdm_replay_cpu_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols, const int32_t *idx,
                                      int n) {
  (void)dev;
  for (int k = 0; k < TDM_REPLAY_NCOLS; k++) {
    int w = cols->width[k];
    for (int i = 0; i < n; i++)
      memcpy(cols->batch[k] + (size_t)i * w, cols->ring[k] + (size_t)idx[i] * w,
             (size_t)w * sizeof(float));
  }
  return TDM_OK;
}

tdm_status tdm_replay_cpu_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols, int32_t *idx,
                                      int n, const int32_t *bound, const tdm_rng_ctr *rng,
                                      uint32_t stream) {
  TDM_TRY(tdm_fill_randint(dev, idx, (size_t)n, bound, rng, stream));  // dev is the CPU
  return tdm_replay_cpu_gather_cols(dev, cols, idx, n);
}

tdm_status tdm_replay_put(tdm_dev *dev, const tdm_replay_cols *cols, const float *src, int n,
                          int64_t pos, int64_t capacity, int32_t *size_dev, int32_t new_size) {
#ifdef TDM_CUDA
  if (dev->kind == TDM_DEV_CUDA)
    return tdm_replay_cuda_put(dev, cols, src, n, pos, capacity, size_dev, new_size);
#endif
  return tdm_replay_cpu_put(dev, cols, src, n, pos, capacity, size_dev, new_size);
}

tdm_status tdm_replay_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols, const int32_t *idx,
                                  int n) {
#ifdef TDM_CUDA
  if (dev->kind == TDM_DEV_CUDA) return tdm_replay_cuda_gather_cols(dev, cols, idx, n);
#endif
  return tdm_replay_cpu_gather_cols(dev, cols, idx, n);
}

tdm_status tdm_replay_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols, int32_t *idx, int n,
                                  const int32_t *bound, const tdm_rng_ctr *rng, uint32_t stream) {
#ifdef TDM_CUDA
  if (dev->kind == TDM_DEV_CUDA)
    return tdm_replay_cuda_sample_cols(dev, cols, idx, n, bound, rng, stream);
#endif
  return tdm_replay_cpu_sample_cols(dev, cols, idx, n, bound, rng, stream);
}
