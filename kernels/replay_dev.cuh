// Device helpers of the replay buffer's packed rows, shared by kernels/replay.cu and the fused SAC
// kernel.
#ifndef TANDEM_REPLAY_DEV_CUH
#define TANDEM_REPLAY_DEV_CUH

#include "../src/agents/replay_ops.h"

// array k and column c of packed column j (tdm_replay_cols)
static __device__ __forceinline__ int col_of(const tdm_replay_cols &cols, int j, int *c) {
  int k = 0;
  while (k < TDM_REPLAY_NCOLS - 1 && j >= cols.width[k]) j -= cols.width[k++];
  *c = j;
  return k;
}

#endif  // TANDEM_REPLAY_DEV_CUH
