// Fused replay-buffer kernels: put one add's rows into the ring, gather every array of a batch
// in one launch. tdm_replay_<op> dispatches on dev->kind to tdm_replay_cpu_<op>
// (src/agents/replay_ops_cpu.c, the reference) or tdm_replay_cuda_<op> (kernels/replay.cu), which
// have exactly its signature. Private to src/agents.
#ifndef TANDEM_REPLAY_OPS_H
#define TANDEM_REPLAY_OPS_H

#include "tandem/ops.h"
#include "tandem/replay.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_REPLAY_NCOLS 6  // obs, act, reward, next_obs, terminated, source

// The ring's arrays (C, width[k]) and a batch's arrays (rows, width[k]), in the same order.
typedef struct {
  float *ring[TDM_REPLAY_NCOLS];
  float *batch[TDM_REPLAY_NCOLS];
  int width[TDM_REPLAY_NCOLS];
  int total_width;  // sum of width
} tdm_replay_cols;

// Write n packed rows src (n, total_width) (columns in cols order) into ring rows
// (pos + i) % capacity, and *size_dev = new_size.
tdm_status tdm_replay_put(tdm_dev *dev, const tdm_replay_cols *cols, const float *src, int n,
                          int64_t pos, int64_t capacity, int32_t *size_dev, int32_t new_size);
tdm_status tdm_replay_cpu_put(tdm_dev *dev, const tdm_replay_cols *cols, const float *src, int n,
                              int64_t pos, int64_t capacity, int32_t *size_dev, int32_t new_size);
tdm_status tdm_replay_cuda_put(tdm_dev *dev, const tdm_replay_cols *cols, const float *src, int n,
                               int64_t pos, int64_t capacity, int32_t *size_dev, int32_t new_size);

// batch[k] (n, width[k]) = ring[k][idx[i], :] for every array k; idx (n) in device memory.
tdm_status tdm_replay_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols, const int32_t *idx,
                                  int n);
tdm_status tdm_replay_cpu_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols, const int32_t *idx,
                                      int n);
tdm_status tdm_replay_cuda_gather_cols(tdm_dev *dev, const tdm_replay_cols *cols,
                                       const int32_t *idx, int n);

// Sample and gather in one op: idx (n) as tdm_fill_randint(idx, n, bound, rng, stream) (the same
// draws), then batch[k] = ring[k][idx, :] as tdm_replay_gather_cols; bound (the size) and rng are
// read from device memory when the op runs. The CPU twin is exactly those two ops.
tdm_status tdm_replay_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols, int32_t *idx, int n,
                                  const int32_t *bound, const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_replay_cpu_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols, int32_t *idx,
                                      int n, const int32_t *bound, const tdm_rng_ctr *rng,
                                      uint32_t stream);
tdm_status tdm_replay_cuda_sample_cols(tdm_dev *dev, const tdm_replay_cols *cols, int32_t *idx,
                                       int n, const int32_t *bound, const tdm_rng_ctr *rng,
                                       uint32_t stream);

// r's ring arrays with b's arrays as the batch destinations (what tdm_replay_gather and
// tdm_replay_sample gather into).
void tdm_replay_cols_of(const tdm_replay *r, const tdm_replay_batch *b, tdm_replay_cols *out);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_REPLAY_OPS_H
