// Fused SAC kernels. Each op tdm_sac_<op> dispatches on dev->kind to tdm_sac_cpu_<op>
// (src/agents/sac_ops_cpu.c) or tdm_sac_cuda_<op> (kernels/sac.cu), which have exactly its
// signature; the CPU twin is the reference. Private to src/agents; callers pass valid arguments.
//
// Log-probability of the tanh-squashed Gaussian, in Stable-Baselines3's epsilon form:
//   s = clamp(log_std, lo, hi), u = mean + exp(s) * eps, a = tanh(u)
//   log pi(a|s) = sum_j [ -eps_j^2 / 2 - s_j - log(2 pi) / 2 - log(1 - a_j^2 + 1e-6) ]
// 1 - a^2 is computed as sech(u)^2 = 4 e^{-2|u|} / (1 + e^{-2|u|})^2, which equals it but keeps
// its precision where a saturates (1 - a^2 in float cancels for |u| > ~4).
// Its gradient is that of the reparameterised sample (eps fixed): d/du of the correction is
// 2 a (1 - a^2) / (1 - a^2 + 1e-6), d/ds of the Gaussian part is -1, du/ds = exp(s) eps, and the
// clamp passes the gradient only inside [lo, hi].
// Batch reductions (losses, statistics) run in one block in a fixed order: deterministic.
#ifndef TANDEM_SAC_OPS_H
#define TANDEM_SAC_OPS_H

#include "tandem/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_SAC_TANH_EPS 1e-6f
#define TDM_SAC_HALF_LOG_2PI 0.91893853320467274f

// Statistics slots written by the loss kernels (device floats).
enum {
  TDM_SAC_ST_CRITIC = 0,
  TDM_SAC_ST_ACTOR,
  TDM_SAC_ST_ALPHA,
  TDM_SAC_ST_ENTROPY,
  TDM_SAC_ST_QMEAN,
  TDM_SAC_ST_N
};

// Out (B, dx + dy) = [x (B, dx) | y (B, dy)], y with row stride ldy.
tdm_status tdm_sac_concat(tdm_dev *dev, const float *x, int dx, const float *y, int dy, int ldy,
                          float *out, int B);
tdm_status tdm_sac_cpu_concat(tdm_dev *dev, const float *x, int dx, const float *y, int dy, int ldy,
                              float *out, int B);
tdm_status tdm_sac_cuda_concat(tdm_dev *dev, const float *x, int dx, const float *y, int dy,
                               int ldy, float *out, int B);

// Act (B, A) = tanh(u) and logp (B) (may be NULL) from head (B, 2A) = [mean | log_std]
// and eps (B, A); eps NULL gives the deterministic action tanh(mean).
tdm_status tdm_sac_squash_fwd(tdm_dev *dev, const float *head, const float *eps, float *act,
                              float *logp, int B, int A, float lo, float hi);
tdm_status tdm_sac_cpu_squash_fwd(tdm_dev *dev, const float *head, const float *eps, float *act,
                                  float *logp, int B, int A, float lo, float hi);
tdm_status tdm_sac_cuda_squash_fwd(tdm_dev *dev, const float *head, const float *eps, float *act,
                                   float *logp, int B, int A, float lo, float hi);

// Dhead (B, 2A) (=) from dact (B, A) with row stride ld_dact (may be NULL) and dlogp (B)
// (may be NULL); head, eps and act as given to and returned by squash_fwd.
tdm_status tdm_sac_squash_bwd(tdm_dev *dev, const float *head, const float *eps, const float *act,
                              const float *dact, int ld_dact, const float *dlogp, float *dhead,
                              int B, int A, float lo, float hi);
tdm_status tdm_sac_cpu_squash_bwd(tdm_dev *dev, const float *head, const float *eps,
                                  const float *act, const float *dact, int ld_dact,
                                  const float *dlogp, float *dhead, int B, int A, float lo,
                                  float hi);
tdm_status tdm_sac_cuda_squash_bwd(tdm_dev *dev, const float *head, const float *eps,
                                   const float *act, const float *dact, int ld_dact,
                                   const float *dlogp, float *dhead, int B, int A, float lo,
                                   float hi);

// Critic target y (B) = reward + gamma (1 - term) (min_e qt (2, B) - alpha logp_next),
// alpha = exp(log_alpha[0]).
tdm_status tdm_sac_target(tdm_dev *dev, const float *qt, const float *logp_next,
                          const float *reward, const float *term, const float *log_alpha,
                          float gamma, float *y, int B);
tdm_status tdm_sac_cpu_target(tdm_dev *dev, const float *qt, const float *logp_next,
                              const float *reward, const float *term, const float *log_alpha,
                              float gamma, float *y, int B);
tdm_status tdm_sac_cuda_target(tdm_dev *dev, const float *qt, const float *logp_next,
                               const float *reward, const float *term, const float *log_alpha,
                               float gamma, float *y, int B);

// Critic loss 0.5 sum_e mean_b (q_eb - y_b)^2 over q (2, B): dq (2, B) = (q - y) / B;
// stats[CRITIC] = loss, stats[QMEAN] = mean q, stats[ALPHA] = exp(log_alpha[0]).
tdm_status tdm_sac_critic_loss(tdm_dev *dev, const float *q, const float *y, const float *log_alpha,
                               float *dq, float *stats, int B);
tdm_status tdm_sac_cpu_critic_loss(tdm_dev *dev, const float *q, const float *y,
                                   const float *log_alpha, float *dq, float *stats, int B);
tdm_status tdm_sac_cuda_critic_loss(tdm_dev *dev, const float *q, const float *y,
                                    const float *log_alpha, float *dq, float *stats, int B);

// Actor loss mean_b (alpha logp_b - min_e q_eb): dq (2, B) = -1/B on the smaller member (the
// first on ties), 0 on the other; dlogp (B) = alpha / B; g_log_alpha[0] = -(mean logp +
// target_entropy) unless NULL; stats[ACTOR] = loss, stats[ENTROPY] = -mean logp.
tdm_status tdm_sac_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                              const float *log_alpha, float target_entropy, float *dq, float *dlogp,
                              float *g_log_alpha, float *stats, int B);
tdm_status tdm_sac_cpu_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                                  const float *log_alpha, float target_entropy, float *dq,
                                  float *dlogp, float *g_log_alpha, float *stats, int B);
tdm_status tdm_sac_cuda_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                                   const float *log_alpha, float target_entropy, float *dq,
                                   float *dlogp, float *g_log_alpha, float *stats, int B);

// Squash and concatenate in one op: as tdm_sac_squash_fwd, and xq (B, O + A) = [obs (B, O) |
// act]; act (B, A) is also written unless NULL, logp (B) unless NULL. When xq2 is not NULL the
// same launch also writes xq2 (B, O + A) = [obs2 (B, O) | act2 (B, A)] (a plain concatenation).
tdm_status tdm_sac_squash_cat(tdm_dev *dev, const float *head, const float *eps, const float *obs,
                              int O, float *xq, float *act, float *logp, int B, int A, float lo,
                              float hi, const float *obs2, const float *act2, float *xq2);
tdm_status tdm_sac_cpu_squash_cat(tdm_dev *dev, const float *head, const float *eps,
                                  const float *obs, int O, float *xq, float *act, float *logp,
                                  int B, int A, float lo, float hi, const float *obs2,
                                  const float *act2, float *xq2);
tdm_status tdm_sac_cuda_squash_cat(tdm_dev *dev, const float *head, const float *eps,
                                   const float *obs, int O, float *xq, float *act, float *logp,
                                   int B, int A, float lo, float hi, const float *obs2,
                                   const float *act2, float *xq2);

// Critic target and loss in one op: y (B) as tdm_sac_target from qt (2, B), then dq and stats as
// tdm_sac_critic_loss from q (2, B) and that y. When rng is not NULL, rng->calls += 1 (the update
// counter, advanced here because every reader of it has run by then).
tdm_status tdm_sac_target_loss(tdm_dev *dev, const float *qt, const float *logp_next,
                               const float *reward, const float *term, const float *log_alpha,
                               float gamma, const float *q, float *y, float *dq, float *stats,
                               int B, tdm_rng_ctr *rng);
tdm_status tdm_sac_cpu_target_loss(tdm_dev *dev, const float *qt, const float *logp_next,
                                   const float *reward, const float *term, const float *log_alpha,
                                   float gamma, const float *q, float *y, float *dq, float *stats,
                                   int B, tdm_rng_ctr *rng);
tdm_status tdm_sac_cuda_target_loss(tdm_dev *dev, const float *qt, const float *logp_next,
                                    const float *reward, const float *term, const float *log_alpha,
                                    float gamma, const float *q, float *y, float *dq, float *stats,
                                    int B, tdm_rng_ctr *rng);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_SAC_OPS_H
