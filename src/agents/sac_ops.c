// Dispatch of the fused SAC kernels on dev->kind (CPU twin or CUDA launcher).
#include "sac_ops.h"

#ifdef TDM_CUDA
#define SAC_DISPATCH(name, ...)                                       \
  return dev->kind == TDM_DEV_CUDA ? tdm_sac_cuda_##name(__VA_ARGS__) \
                                   : tdm_sac_cpu_##name(__VA_ARGS__)
#else
#define SAC_DISPATCH(name, ...) return tdm_sac_cpu_##name(__VA_ARGS__)
#endif

tdm_status tdm_sac_concat(tdm_dev *dev, const float *x, int dx, const float *y, int dy, int ldy,
                          float *out, int B) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(concat, dev, x, dx, y, dy, ldy, out, B);
}

tdm_status tdm_sac_squash_fwd(tdm_dev *dev, const float *head, const float *eps, float *act,
                              float *logp, int B, int A, float lo, float hi) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(squash_fwd, dev, head, eps, act, logp, B, A, lo, hi);
}

tdm_status tdm_sac_squash_bwd(tdm_dev *dev, const float *head, const float *eps, const float *act,
                              const float *dact, int ld_dact, const float *dlogp, float *dhead,
                              int B, int A, float lo, float hi) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(squash_bwd, dev, head, eps, act, dact, ld_dact, dlogp, dhead, B, A, lo, hi);
}

tdm_status tdm_sac_target(tdm_dev *dev, const float *qt, const float *logp_next,
                          const float *reward, const float *term, const float *log_alpha,
                          float gamma, float *y, int B) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(target, dev, qt, logp_next, reward, term, log_alpha, gamma, y, B);
}

tdm_status tdm_sac_critic_loss(tdm_dev *dev, const float *q, const float *y, const float *log_alpha,
                               float *dq, float *stats, int B) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(critic_loss, dev, q, y, log_alpha, dq, stats, B);
}

tdm_status tdm_sac_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                              const float *log_alpha, float target_entropy, float *dq, float *dlogp,
                              float *g_log_alpha, float *stats, int B) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(actor_loss, dev, q, logp, log_alpha, target_entropy, dq, dlogp, g_log_alpha, stats,
               B);
}

tdm_status tdm_sac_squash_cat(tdm_dev *dev, const float *head, const float *eps, const float *obs,
                              int O, float *xq, float *act, float *logp, int B, int A, float lo,
                              float hi, const float *obs2, const float *act2, float *xq2) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(squash_cat, dev, head, eps, obs, O, xq, act, logp, B, A, lo, hi, obs2, act2, xq2);
}

tdm_status tdm_sac_target_loss(tdm_dev *dev, const float *qt, const float *logp_next,
                               const float *reward, const float *term, const float *log_alpha,
                               float gamma, const float *q, float *y, float *dq, float *stats,
                               int B, tdm_rng_ctr *rng) {
  if (B < 1) return TDM_OK;
  SAC_DISPATCH(target_loss, dev, qt, logp_next, reward, term, log_alpha, gamma, q, y, dq, stats, B,
               rng);
}
