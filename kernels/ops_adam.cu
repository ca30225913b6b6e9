// Adam(W) on the GPU, graph-safe and deterministic. With clipping, the squared gradient norm is
// reduced in two passes without atomics: a fixed number of blocks (a function of n only) write
// partial sums to scratch[1 ..], then one block adds them in a fixed order and writes the clip
// factor to scratch[0]. The update kernel reads the clip factor and the int32 step counter from
// device memory (so a replayed graph sees the current values), and a one-thread kernel then
// increments the counter.
#include <string.h>

#include "adam.cuh"
#include "cuda_common.cuh"

#define ADAM_THREADS 256
#define ADAM_MAX_PARTIALS 1024
#define ADAM_FINAL_THREADS 1024

// Blocks of the partial-sum pass for n parameters: about 8 elements per thread, at most 1024.
static size_t adam_partials(size_t n) {
  size_t per_block = (size_t)ADAM_THREADS * 8;
  size_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > ADAM_MAX_PARTIALS) b = ADAM_MAX_PARTIALS;
  return b;
}

extern "C" size_t tdm_cuda_adam_scratch_floats(size_t n) {
  return 1 + adam_partials(n);
}

// partial[b] = sum of g^2 over the elements block b strides over (double inside the block)
static __global__ void adam_sumsq_partial_kernel(const float *g, size_t n, float *partial) {
  __shared__ double sh[32];
  double s = 0.0;
  for (size_t i = (size_t)blockIdx.x * ADAM_THREADS + threadIdx.x; i < n;
       i += (size_t)gridDim.x * ADAM_THREADS) {
    double v = (double)g[i];
    s += v * v;
  }
  s = tdm_block_sum_d(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = (float)s;
}

// scratch[0] = min(1, max_norm / norm), norm = sqrt(sum of the nparts partials)
static __global__ void adam_clip_final_kernel(float *scratch, int nparts, float max_norm) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int k = threadIdx.x; k < nparts; k += ADAM_FINAL_THREADS) s += (double)scratch[1 + k];
  s = tdm_block_sum_d(s, sh);
  if (threadIdx.x == 0) {
    double norm = sqrt(s);
    scratch[0] = norm > (double)max_norm ? (float)((double)max_norm / norm) : 1.0f;
  }
}

// the update; clip points to the clip factor or is NULL (no clipping)
static __global__ void adam_update_kernel(float *p, const float *g, float *m, float *v, size_t n,
                                          float lr, float b1, float b2, float eps, float wd,
                                          const int32_t *step, const float *clip) {
  float c = clip ? *clip : 1.0f;
  int32_t t = *step + 1;
  // bias corrections in double, once per thread, as the CPU twin
  const float bc1 = adam_bc(b1, t), bc2 = adam_bc(b2, t);
  TDM_GRID_LOOP(i, n) {
    float mi = m[i], vi = v[i];
    p[i] = adam_elem(p[i], g[i] * c, mi, vi, lr, b1, b2, eps, wd, bc1, bc2);
    m[i] = mi;
    v[i] = vi;
  }
}

static __global__ void adam_step_incr_kernel(int32_t *step) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *step += 1;
}

extern "C" tdm_status tdm_cuda_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v,
                                         size_t n, const tdm_adam_cfg *cfg, int32_t *step,
                                         float *scratch) {
  cudaStream_t st = tdm_stream_of(dev);
  const float *clip = NULL;
  if (cfg->max_grad_norm > 0.0f) {
    size_t nparts = adam_partials(n);
    adam_sumsq_partial_kernel<<<(unsigned)nparts, ADAM_THREADS, 0, st>>>(g, n, scratch + 1);
    TDM_TRY(TDM_LAUNCH_CHECK("adam_sumsq_partial_kernel"));
    adam_clip_final_kernel<<<1, ADAM_FINAL_THREADS, 0, st>>>(scratch, (int)nparts,
                                                             cfg->max_grad_norm);
    TDM_TRY(TDM_LAUNCH_CHECK("adam_clip_final_kernel"));
    clip = scratch;
  }
  adam_update_kernel<<<tdm_grid_for(dev, n, ADAM_THREADS), ADAM_THREADS, 0, st>>>(
      p, g, m, v, n, cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, step, clip);
  TDM_TRY(TDM_LAUNCH_CHECK("adam_update_kernel"));
  adam_step_incr_kernel<<<1, 1, 0, st>>>(step);
  return TDM_LAUNCH_CHECK("adam_step_incr_kernel");
}

// ---------------------------------------------------------------------------------------------
// several groups in one launch, the step counters incremented by the last block to finish

typedef struct {
  float *p[TDM_ADAM_MAX_GROUPS];
  const float *g[TDM_ADAM_MAX_GROUPS];
  float *m[TDM_ADAM_MAX_GROUPS], *v[TDM_ADAM_MAX_GROUPS];
  int32_t *step[TDM_ADAM_MAX_GROUPS];
  float *ema[TDM_ADAM_MAX_GROUPS];  // or NULL
  float ema_tau[TDM_ADAM_MAX_GROUPS];
  size_t off[TDM_ADAM_MAX_GROUPS + 1];  // group k owns flat indices off[k] .. off[k + 1] - 1
  int ng;
} adam_groups_arg;

// Every block reads the step counters before it does anything else and bumps *sync when done;
// the block that bumps it last (all others have read the counters by then) writes t + 1 to each
// counter and resets *sync to 0. The atomic counts blocks only; no float is summed with atomics.
static __global__ void adam_groups_kernel(adam_groups_arg a, float lr, float b1, float b2,
                                          float eps, float wd, unsigned int *sync) {
  __shared__ int32_t t_sh[TDM_ADAM_MAX_GROUPS];
  __shared__ float bc1_sh[TDM_ADAM_MAX_GROUPS], bc2_sh[TDM_ADAM_MAX_GROUPS];
  if ((int)threadIdx.x < a.ng) {
    int k = threadIdx.x;
    int32_t t = *a.step[k] + 1;
    t_sh[k] = t;
    // bias corrections in double, as adam_update_kernel and the CPU twin
    bc1_sh[k] = adam_bc(b1, t);
    bc2_sh[k] = adam_bc(b2, t);
  }
  __syncthreads();
  TDM_GRID_LOOP(i, a.off[a.ng]) {
    int k = 0;
    while (k + 1 < a.ng && i >= a.off[k + 1]) k++;
    size_t j = i - a.off[k];
    float *p = a.p[k], *m = a.m[k], *v = a.v[k];
    float mi = m[j], vi = v[j];
    float pn = adam_elem(p[j], a.g[k][j], mi, vi, lr, b1, b2, eps, wd, bc1_sh[k], bc2_sh[k]);
    m[j] = mi;
    v[j] = vi;
    p[j] = pn;
    float *ema = a.ema[k];
    if (ema) ema[j] = polyak_elem(ema[j], pn, a.ema_tau[k]);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    unsigned int ticket = atomicAdd(sync, 1u);
    if (ticket == gridDim.x - 1) {
      for (int k = 0; k < a.ng; k++) *a.step[k] = t_sh[k];
      *sync = 0u;
      __threadfence();
    }
  }
}

extern "C" tdm_status tdm_cuda_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups,
                                                int ngroups, const tdm_adam_cfg *cfg,
                                                uint32_t *sync) {
  adam_groups_arg a;
  memset(&a, 0, sizeof a);
  a.ng = ngroups;
  for (int k = 0; k < ngroups; k++) {
    a.p[k] = groups[k].p;
    a.g[k] = groups[k].g;
    a.m[k] = groups[k].m;
    a.v[k] = groups[k].v;
    a.step[k] = groups[k].step;
    a.ema[k] = groups[k].ema;
    a.ema_tau[k] = groups[k].ema_tau;
    a.off[k + 1] = a.off[k] + groups[k].n;
  }
  adam_groups_kernel<<<tdm_grid_for(dev, a.off[ngroups], ADAM_THREADS), ADAM_THREADS, 0,
                       tdm_stream_of(dev)>>>(a, cfg->lr, cfg->beta1, cfg->beta2, cfg->eps,
                                             cfg->weight_decay, (unsigned int *)sync);
  return TDM_LAUNCH_CHECK("adam_groups_kernel");
}
