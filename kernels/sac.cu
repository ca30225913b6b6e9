// Fused SAC kernels; CPU twins in src/agents/sac_ops_cpu.c (same signatures, the reference).
// Elementwise ops use grid-stride loops; the losses reduce over the batch in one block of
// SAC_RED_THREADS threads (strided per-thread sums, then a fixed-order block sum): deterministic.
#include "../src/agents/sac_ops.h"
#include "cuda_common.cuh"
#include "sac_math.cuh"

#define SAC_THREADS 256
#define SAC_RED_THREADS 256

// out (B, dx + dy) = [x | y]
static __global__ void concat_kernel(const float *__restrict__ x, int dx,
                                     const float *__restrict__ y, int dy, int ldy,
                                     float *__restrict__ out, int B) {
  int W = dx + dy;
  TDM_GRID_LOOP(i, (size_t)B * W) {
    size_t b = i / W;
    int j = (int)(i % W);
    out[i] = j < dx ? x[b * dx + j] : y[b * ldy + (j - dx)];
  }
}

extern "C" tdm_status tdm_sac_cuda_concat(tdm_dev *dev, const float *x, int dx, const float *y,
                                          int dy, int ldy, float *out, int B) {
  size_t n = (size_t)B * (dx + dy);
  concat_kernel<<<tdm_grid_for(dev, n, SAC_THREADS), SAC_THREADS, 0, tdm_stream_of(dev)>>>(
      x, dx, y, dy, ldy, out, B);
  return TDM_LAUNCH_CHECK("sac concat_kernel");
}

// one thread per row: the row's log-prob sums over A in the CPU twin's order
static __global__ void squash_fwd_kernel(const float *__restrict__ head,
                                         const float *__restrict__ eps, float *__restrict__ act,
                                         float *__restrict__ logp, int B, int A, float lo,
                                         float hi) {
  TDM_GRID_LOOP(b, (size_t)B) {
    const float *mean = head + b * 2 * A, *log_std = mean + A;
    float lp = 0.0f;
    for (int j = 0; j < A; j++)
      lp += squash_elem(mean[j], log_std[j], eps ? eps[b * A + j] : 0.0f, lo, hi, &act[b * A + j]);
    if (logp) logp[b] = lp;
  }
}

extern "C" tdm_status tdm_sac_cuda_squash_fwd(tdm_dev *dev, const float *head, const float *eps,
                                              float *act, float *logp, int B, int A, float lo,
                                              float hi) {
  squash_fwd_kernel<<<tdm_grid_for(dev, (size_t)B, SAC_THREADS), SAC_THREADS, 0,
                      tdm_stream_of(dev)>>>(head, eps, act, logp, B, A, lo, hi);
  return TDM_LAUNCH_CHECK("sac squash_fwd_kernel");
}

static __global__ void squash_bwd_kernel(const float *__restrict__ head,
                                         const float *__restrict__ eps,
                                         const float *__restrict__ act,
                                         const float *__restrict__ dact, int ld_dact,
                                         const float *__restrict__ dlogp, float *__restrict__ dhead,
                                         int B, int A, float lo, float hi) {
  TDM_GRID_LOOP(i, (size_t)B * A) {
    size_t b = i / A;
    int j = (int)(i % A);
    squash_bwd_elem(head[b * 2 * A + j], head[b * 2 * A + A + j], eps ? eps[i] : 0.0f, act[i],
                    dact ? dact[b * ld_dact + j] : 0.0f, dlogp ? dlogp[b] : 0.0f, lo, hi,
                    &dhead[b * 2 * A + j], &dhead[b * 2 * A + A + j]);
  }
}

extern "C" tdm_status tdm_sac_cuda_squash_bwd(tdm_dev *dev, const float *head, const float *eps,
                                              const float *act, const float *dact, int ld_dact,
                                              const float *dlogp, float *dhead, int B, int A,
                                              float lo, float hi) {
  size_t n = (size_t)B * A;
  squash_bwd_kernel<<<tdm_grid_for(dev, n, SAC_THREADS), SAC_THREADS, 0, tdm_stream_of(dev)>>>(
      head, eps, act, dact, ld_dact, dlogp, dhead, B, A, lo, hi);
  return TDM_LAUNCH_CHECK("sac squash_bwd_kernel");
}

static __global__ void target_kernel(const float *__restrict__ qt,
                                     const float *__restrict__ logp_next,
                                     const float *__restrict__ reward,
                                     const float *__restrict__ term,
                                     const float *__restrict__ log_alpha, float gamma,
                                     float *__restrict__ y, int B) {
  float alpha = expf(log_alpha[0]);
  TDM_GRID_LOOP(b, (size_t)B) {
    float mn = fminf(qt[b], qt[B + b]);
    y[b] = reward[b] + gamma * (1.0f - term[b]) * (mn - alpha * logp_next[b]);
  }
}

extern "C" tdm_status tdm_sac_cuda_target(tdm_dev *dev, const float *qt, const float *logp_next,
                                          const float *reward, const float *term,
                                          const float *log_alpha, float gamma, float *y, int B) {
  target_kernel<<<tdm_grid_for(dev, (size_t)B, SAC_THREADS), SAC_THREADS, 0, tdm_stream_of(dev)>>>(
      qt, logp_next, reward, term, log_alpha, gamma, y, B);
  return TDM_LAUNCH_CHECK("sac target_kernel");
}

static __global__ void critic_loss_kernel(const float *__restrict__ q, const float *__restrict__ y,
                                          const float *__restrict__ log_alpha,
                                          float *__restrict__ dq, float *__restrict__ stats,
                                          int B) {
  __shared__ double sh[32];
  float inv = 1.0f / (float)B;
  double loss = 0.0, qsum = 0.0;
  for (int i = threadIdx.x; i < 2 * B; i += blockDim.x) {
    int b = i % B;
    float d = q[i] - y[b];
    dq[i] = d * inv;
    loss += (double)d * d;
    qsum += q[i];
  }
  loss = tdm_block_sum_d(loss, sh);
  qsum = tdm_block_sum_d(qsum, sh);
  if (threadIdx.x == 0) {
    stats[TDM_SAC_ST_CRITIC] = (float)(0.5 * loss / B);
    stats[TDM_SAC_ST_QMEAN] = (float)(qsum / (2.0 * B));
    stats[TDM_SAC_ST_ALPHA] = expf(log_alpha[0]);
  }
}

extern "C" tdm_status tdm_sac_cuda_critic_loss(tdm_dev *dev, const float *q, const float *y,
                                               const float *log_alpha, float *dq, float *stats,
                                               int B) {
  critic_loss_kernel<<<1, SAC_RED_THREADS, 0, tdm_stream_of(dev)>>>(q, y, log_alpha, dq, stats, B);
  return TDM_LAUNCH_CHECK("sac critic_loss_kernel");
}

static __global__ void actor_loss_kernel(const float *__restrict__ q,
                                         const float *__restrict__ logp,
                                         const float *__restrict__ log_alpha, float target_entropy,
                                         float *__restrict__ dq, float *__restrict__ dlogp,
                                         float *__restrict__ g_log_alpha, float *__restrict__ stats,
                                         int B) {
  __shared__ double sh[32];
  float alpha = expf(log_alpha[0]);
  float inv = 1.0f / (float)B;
  double loss = 0.0, lsum = 0.0;
  for (int b = threadIdx.x; b < B; b += blockDim.x) {
    float q0 = q[b], q1 = q[B + b];
    bool first = q0 <= q1;
    float mn = first ? q0 : q1;
    dq[b] = first ? -inv : 0.0f;
    dq[B + b] = first ? 0.0f : -inv;
    dlogp[b] = alpha * inv;
    loss += (double)(alpha * logp[b] - mn);
    lsum += logp[b];
  }
  loss = tdm_block_sum_d(loss, sh);
  lsum = tdm_block_sum_d(lsum, sh);
  if (threadIdx.x == 0) {
    float mean_logp = (float)(lsum / B);
    if (g_log_alpha) g_log_alpha[0] = -(mean_logp + target_entropy);
    stats[TDM_SAC_ST_ACTOR] = (float)(loss / B);
    stats[TDM_SAC_ST_ENTROPY] = -mean_logp;
  }
}

extern "C" tdm_status tdm_sac_cuda_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                                              const float *log_alpha, float target_entropy,
                                              float *dq, float *dlogp, float *g_log_alpha,
                                              float *stats, int B) {
  actor_loss_kernel<<<1, SAC_RED_THREADS, 0, tdm_stream_of(dev)>>>(
      q, logp, log_alpha, target_entropy, dq, dlogp, g_log_alpha, stats, B);
  return TDM_LAUNCH_CHECK("sac actor_loss_kernel");
}

// squash as squash_fwd_kernel (one thread per row) into the action columns of xq; the observation
// columns are copied by a second grid-stride loop over the B x O elements in the same launch
static __global__ void squash_cat_kernel(const float *__restrict__ head,
                                         const float *__restrict__ eps,
                                         const float *__restrict__ obs, int O,
                                         float *__restrict__ xq, float *__restrict__ act,
                                         float *__restrict__ logp, int B, int A, float lo, float hi,
                                         const float *__restrict__ obs2,
                                         const float *__restrict__ act2, float *__restrict__ xq2) {
  const int W = O + A;
  TDM_GRID_LOOP(b, (size_t)B) {
    const float *mean = head + b * 2 * A, *log_std = mean + A;
    float lp = 0.0f;
    for (int j = 0; j < A; j++) {
      float a;
      lp += squash_elem(mean[j], log_std[j], eps ? eps[b * A + j] : 0.0f, lo, hi, &a);
      xq[b * W + O + j] = a;
      if (act) act[b * A + j] = a;
    }
    if (logp) logp[b] = lp;
  }
  TDM_GRID_LOOP(i, (size_t)B * O) {
    size_t b = i / O;
    xq[b * W + (i % O)] = obs[i];
  }
  if (xq2) {
    TDM_GRID_LOOP(i, (size_t)B * W) {  // the arithmetic-free concat_kernel
      size_t b = i / W;
      int j = (int)(i % W);
      xq2[i] = j < O ? obs2[b * O + j] : act2[b * A + (j - O)];
    }
  }
}

extern "C" tdm_status tdm_sac_cuda_squash_cat(tdm_dev *dev, const float *head, const float *eps,
                                              const float *obs, int O, float *xq, float *act,
                                              float *logp, int B, int A, float lo, float hi,
                                              const float *obs2, const float *act2, float *xq2) {
  size_t work = (size_t)B * (xq2 ? O + A : (O > 1 ? O : 1));
  squash_cat_kernel<<<tdm_grid_for(dev, work, SAC_THREADS), SAC_THREADS, 0, tdm_stream_of(dev)>>>(
      head, eps, obs, O, xq, act, logp, B, A, lo, hi, obs2, act2, xq2);
  return TDM_LAUNCH_CHECK("sac squash_cat_kernel");
}

// target and critic loss in one block: thread i computes y of row i % B itself (the arithmetic
// of target_kernel), so no thread waits for another's y
static __global__ void target_loss_kernel(const float *__restrict__ qt,
                                          const float *__restrict__ logp_next,
                                          const float *__restrict__ reward,
                                          const float *__restrict__ term,
                                          const float *__restrict__ log_alpha, float gamma,
                                          const float *__restrict__ q, float *__restrict__ y,
                                          float *__restrict__ dq, float *__restrict__ stats, int B,
                                          tdm_rng_ctr *rng) {
  __shared__ double sh[32];
  float alpha = expf(log_alpha[0]);
  float inv = 1.0f / (float)B;
  double loss = 0.0, qsum = 0.0;
  for (int i = threadIdx.x; i < 2 * B; i += blockDim.x) {
    int b = i % B;
    float mn = fminf(qt[b], qt[B + b]);
    float yb = reward[b] + gamma * (1.0f - term[b]) * (mn - alpha * logp_next[b]);
    if (i < B) y[b] = yb;
    float d = q[i] - yb;
    dq[i] = d * inv;
    loss += (double)d * d;
    qsum += q[i];
  }
  loss = tdm_block_sum_d(loss, sh);
  qsum = tdm_block_sum_d(qsum, sh);
  if (threadIdx.x == 0) {
    stats[TDM_SAC_ST_CRITIC] = (float)(0.5 * loss / B);
    stats[TDM_SAC_ST_QMEAN] = (float)(qsum / (2.0 * B));
    stats[TDM_SAC_ST_ALPHA] = alpha;
    if (rng) rng->calls += 1;
  }
}

extern "C" tdm_status tdm_sac_cuda_target_loss(tdm_dev *dev, const float *qt,
                                               const float *logp_next, const float *reward,
                                               const float *term, const float *log_alpha,
                                               float gamma, const float *q, float *y, float *dq,
                                               float *stats, int B, tdm_rng_ctr *rng) {
  target_loss_kernel<<<1, SAC_RED_THREADS, 0, tdm_stream_of(dev)>>>(
      qt, logp_next, reward, term, log_alpha, gamma, q, y, dq, stats, B, rng);
  return TDM_LAUNCH_CHECK("sac target_loss_kernel");
}
