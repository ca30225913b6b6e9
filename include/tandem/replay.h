// tandem replay buffer: a ring of transitions in device memory (host memory on the CPU).
//
// Structure of arrays, one row per transition: obs (C, O), act (C, A), reward (C), next_obs
// (C, O), terminated (C) as 0/1 floats, source (C) as a float tag (tdm_source). The current size
// lives in device memory too (an int32), so uniform sampling (tdm_fill_randint) and the gathers
// (tdm_gather_rows) run on the device and can sit inside a CUDA graph.
//
// Transitions arrive as one host batch per env step (N envs), are packed row by row into a pinned
// staging buffer, copied with one asynchronous h2d and scattered into the ring (wrapping) by one
// kernel that also stores the new size. A batch is gathered from all arrays by one kernel.
// Truncated transitions are stored with terminated = 0, so they bootstrap, but they end the
// episode for sequence sampling.
//
// Episode links for sequence sampling are kept on the host: each row knows the row that holds the
// next transition of the same env stream (or -1 when the episode ended there, the next one is not
// written yet, or it was overwritten). Sequence sampling computes its indices on the host
// (rejection sampling of start rows, uniform over all valid starts), uploads them and gathers on
// the device; it is therefore not graph-safe, unlike tdm_replay_sample.
#ifndef TANDEM_REPLAY_H
#define TANDEM_REPLAY_H

#include <stdio.h>

#include "tandem/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// Where a transition came from.
typedef enum {
  TDM_SRC_REAL = 0,       // the environment, agent's action
  TDM_SRC_SYNTHETIC = 1,  // a model rollout (Dyna / MBPO)
  TDM_SRC_PLANNER = 2,    // the environment, planner's action (hybrid MPC)
} tdm_source;

// N transitions from one env step, all in host memory. Actions are in the agent's [-1, 1] space.
typedef struct {
  int n;                      // number of transitions (1 <= n <= the buffer's max_add)
  const float *obs;           // (n, O)
  const float *act;           // (n, A) in [-1, 1]
  const float *reward;        // (n)
  const float *next_obs;      // (n, O), the true final observation when the episode ended
  const uint8_t *terminated;  // (n) 1: terminal state, bootstrapping stops
  const uint8_t *truncated;   // (n) 1: time limit (bootstraps; ends the episode); NULL = none
  const int32_t *stream;      // (n) env slot of each transition, in [0, max_streams); NULL = 0..n-1
  tdm_source source;          // tag of all n transitions
} tdm_transition_batch;

// The env slot of transition i, and whether it ended its episode (terminated or truncated).
static inline int32_t tdm_transition_stream(const tdm_transition_batch *b, int i) {
  return b->stream ? b->stream[i] : i;
}
static inline bool tdm_transition_ends(const tdm_transition_batch *b, int i) {
  return b->terminated[i] || (b->truncated && b->truncated[i]);
}

typedef struct {
  int obs_dim, act_dim;  // O, A
  int64_t capacity;      // C rows (>= 1)
  int max_add;           // largest n of one tdm_replay_add (the number of envs)
  int max_streams;       // env slots for episode links (>= max_add; 0 = max_add)
  int max_seq_rows;      // largest L * B of tdm_replay_sample_seq (0 = sequence sampling off)
} tdm_replay_cfg;

typedef struct tdm_replay tdm_replay;

// A batch of gathered transitions in device memory, sized for up to max_rows rows.
// Sequence batches are time-major: row t * B + b is step t of sequence b.
typedef struct {
  int max_rows, rows;
  int32_t *idx;       // (rows) ring rows that were gathered
  float *obs;         // (rows, O)
  float *act;         // (rows, A)
  float *reward;      // (rows)
  float *next_obs;    // (rows, O); next_obs == obs + max_rows * O
  float *terminated;  // (rows) 0 / 1
  float *source;      // (rows) tdm_source as float
  void *mem_;         // one device allocation holding all of the above
} tdm_replay_batch;

// Create an empty buffer on dev. A capacity whose arrays do not fit in the device's free memory
// (tdm_dev_mem_info) is refused with TDM_ERR_OOM naming the bytes needed and the bytes free.
tdm_status tdm_replay_create(tdm_dev *dev, const tdm_replay_cfg *cfg, tdm_replay **out);
void tdm_replay_destroy(tdm_replay *r);

// Device bytes the arrays of cfg need (what tdm_replay_create checks against free memory).
size_t tdm_replay_bytes(const tdm_replay_cfg *cfg);

// The configuration the buffer was created with.
const tdm_replay_cfg *tdm_replay_get_cfg(const tdm_replay *r);

// Append b->n transitions (overwriting the oldest rows once full). Asynchronous on the device
// stream; waits for earlier copies out of the staging buffer first.
tdm_status tdm_replay_add(tdm_replay *r, const tdm_transition_batch *b);

// Number of stored transitions (host mirror; min(total added, capacity)).
int64_t tdm_replay_size(const tdm_replay *r);

// Total transitions ever added.
int64_t tdm_replay_total(const tdm_replay *r);

// The size as an int32 in device memory (the bound tdm_fill_randint reads).
const int32_t *tdm_replay_size_dev(const tdm_replay *r);

// Allocate / free a batch of up to max_rows rows for r.
tdm_status tdm_replay_batch_create(tdm_replay *r, int max_rows, tdm_replay_batch *b);
void tdm_replay_batch_destroy(tdm_replay *r, tdm_replay_batch *b);

// Draw B row indices uniformly in [0, size) on the device (tdm_fill_randint with the size read
// from device memory, Philox sub-stream (rng->calls, stream)) and gather them into b. No host
// synchronisation: safe inside a CUDA graph. The buffer must not be empty when this runs. One
// launch on the GPU (draws and gathers fused; the same indices as tdm_fill_randint).
tdm_status tdm_replay_sample(tdm_replay *r, tdm_replay_batch *b, int B, const tdm_rng_ctr *rng,
                             uint32_t stream);

// Gather the rows b->idx[0..n) (device int32, already filled) into b.
tdm_status tdm_replay_gather(tdm_replay *r, tdm_replay_batch *b, int n);

// Sample B contiguous sub-trajectories of L steps of one env stream that do not cross an episode
// end (terminated or truncated may occur only at the last step), uniform over all valid start
// rows, indices drawn on the host from hr, into b time-major (L * B rows). Synchronises.
// TDM_ERR_ARG when no valid sequence of length L exists yet.
tdm_status tdm_replay_sample_seq(tdm_replay *r, tdm_replay_batch *b, int L, int B, tdm_rng *hr);

// Write the contents (configuration, counters, episode links, all arrays, CRC-32) to f.
tdm_status tdm_replay_write(tdm_replay *r, FILE *f);

// Read contents written by tdm_replay_write into r (same obs_dim, act_dim, capacity, streams).
// Refuses a wrong magic, version, configuration, checksum or a truncated file, saying which and
// naming what (the file, for messages).
tdm_status tdm_replay_read(tdm_replay *r, FILE *f, const char *what);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_REPLAY_H
