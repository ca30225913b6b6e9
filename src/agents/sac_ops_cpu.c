// CPU twins of the fused SAC kernels (kernels/sac.cu): the reference implementation. Sums over
// the batch accumulate in double, in row order.
#include <math.h>

#include "sac_ops.h"

// 1 - tanh(u)^2 = sech(u)^2 = 4 e^{-2|u|} / (1 + e^{-2|u|})^2, free of the cancellation in
// 1 - a^2 when |u| is large
static inline float sech2(float u) {
  float e = expf(-2.0f * fabsf(u));
  return 4.0f * e / ((1.0f + e) * (1.0f + e));
}

tdm_status tdm_sac_cpu_concat(tdm_dev *dev, const float *x, int dx, const float *y, int dy, int ldy,
                              float *out, int B) {
  (void)dev;
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * (dx + dy);
    for (int j = 0; j < dx; j++) o[j] = x[(size_t)b * dx + j];
    for (int j = 0; j < dy; j++) o[dx + j] = y[(size_t)b * ldy + j];
  }
  return TDM_OK;
}

tdm_status tdm_sac_cpu_squash_fwd(tdm_dev *dev, const float *head, const float *eps, float *act,
                                  float *logp, int B, int A, float lo, float hi) {
  (void)dev;
  for (int b = 0; b < B; b++) {
    const float *mean = head + (size_t)b * 2 * A, *log_std = mean + A;
    float lp = 0.0f;
    for (int j = 0; j < A; j++) {
      float s = fminf(fmaxf(log_std[j], lo), hi);
      float e = eps ? eps[(size_t)b * A + j] : 0.0f;
      float u = mean[j] + expf(s) * e;
      act[(size_t)b * A + j] = tanhf(u);
      lp += -0.5f * e * e - s - TDM_SAC_HALF_LOG_2PI - logf(sech2(u) + TDM_SAC_TANH_EPS);
    }
    if (logp) logp[b] = lp;
  }
  return TDM_OK;
}

tdm_status tdm_sac_cpu_squash_bwd(tdm_dev *dev, const float *head, const float *eps,
                                  const float *act, const float *dact, int ld_dact,
                                  const float *dlogp, float *dhead, int B, int A, float lo,
                                  float hi) {
  (void)dev;
  for (int b = 0; b < B; b++) {
    const float *mean = head + (size_t)b * 2 * A, *log_std = mean + A;
    float *dmean = dhead + (size_t)b * 2 * A, *dlog_std = dmean + A;
    float dl = dlogp ? dlogp[b] : 0.0f;
    for (int j = 0; j < A; j++) {
      float ls = log_std[j];
      float s = fminf(fmaxf(ls, lo), hi);
      float e = eps ? eps[(size_t)b * A + j] : 0.0f;
      float a = act[(size_t)b * A + j];
      float da = dact ? dact[(size_t)b * ld_dact + j] : 0.0f;
      float om = sech2(mean[j] + expf(s) * e);  // 1 - a^2
      // du = dL/da * tanh' + dL/dlogp * d(-log(1 - a^2 + eps))/du
      float du = da * om + dl * 2.0f * a * om / (om + TDM_SAC_TANH_EPS);
      dmean[j] = du;
      // ds = du * exp(s) eps + dL/dlogp * (-1); the clamp passes gradient inside [lo, hi]
      float ds = du * expf(s) * e - dl;
      dlog_std[j] = (ls >= lo && ls <= hi) ? ds : 0.0f;
    }
  }
  return TDM_OK;
}

tdm_status tdm_sac_cpu_target(tdm_dev *dev, const float *qt, const float *logp_next,
                              const float *reward, const float *term, const float *log_alpha,
                              float gamma, float *y, int B) {
  (void)dev;
  float alpha = expf(log_alpha[0]);
  for (int b = 0; b < B; b++) {
    float mn = fminf(qt[b], qt[B + b]);
    y[b] = reward[b] + gamma * (1.0f - term[b]) * (mn - alpha * logp_next[b]);
  }
  return TDM_OK;
}

tdm_status tdm_sac_cpu_critic_loss(tdm_dev *dev, const float *q, const float *y,
                                   const float *log_alpha, float *dq, float *stats, int B) {
  (void)dev;
  double loss = 0.0, qsum = 0.0;
  float inv = 1.0f / (float)B;
  for (int e = 0; e < 2; e++)
    for (int b = 0; b < B; b++) {
      float d = q[e * B + b] - y[b];
      dq[e * B + b] = d * inv;
      loss += (double)d * d;
      qsum += q[e * B + b];
    }
  stats[TDM_SAC_ST_CRITIC] = (float)(0.5 * loss / B);
  stats[TDM_SAC_ST_QMEAN] = (float)(qsum / (2.0 * B));
  stats[TDM_SAC_ST_ALPHA] = expf(log_alpha[0]);
  return TDM_OK;
}

tdm_status tdm_sac_cpu_actor_loss(tdm_dev *dev, const float *q, const float *logp,
                                  const float *log_alpha, float target_entropy, float *dq,
                                  float *dlogp, float *g_log_alpha, float *stats, int B) {
  (void)dev;
  float alpha = expf(log_alpha[0]);
  float inv = 1.0f / (float)B;
  double loss = 0.0, lsum = 0.0;
  for (int b = 0; b < B; b++) {
    float q0 = q[b], q1 = q[B + b];
    bool first = q0 <= q1;
    float mn = first ? q0 : q1;
    dq[b] = first ? -inv : 0.0f;
    dq[B + b] = first ? 0.0f : -inv;
    dlogp[b] = alpha * inv;
    loss += (double)(alpha * logp[b] - mn);
    lsum += logp[b];
  }
  float mean_logp = (float)(lsum / B);
  if (g_log_alpha) g_log_alpha[0] = -(mean_logp + target_entropy);
  stats[TDM_SAC_ST_ACTOR] = (float)(loss / B);
  stats[TDM_SAC_ST_ENTROPY] = -mean_logp;
  return TDM_OK;
}

tdm_status tdm_sac_cpu_squash_cat(tdm_dev *dev, const float *head, const float *eps,
                                  const float *obs, int O, float *xq, float *act, float *logp,
                                  int B, int A, float lo, float hi, const float *obs2,
                                  const float *act2, float *xq2) {
  if (xq2) TDM_TRY(tdm_sac_cpu_concat(dev, obs2, O, act2, A, A, xq2, B));
  const int W = O + A;
  for (int b = 0; b < B; b++) {
    const float *mean = head + (size_t)b * 2 * A, *log_std = mean + A;
    float *row = xq + (size_t)b * W;
    for (int j = 0; j < O; j++) row[j] = obs[(size_t)b * O + j];
    float lp = 0.0f;
    for (int j = 0; j < A; j++) {  // the arithmetic of tdm_sac_cpu_squash_fwd
      float s = fminf(fmaxf(log_std[j], lo), hi);
      float e = eps ? eps[(size_t)b * A + j] : 0.0f;
      float u = mean[j] + expf(s) * e;
      float a = tanhf(u);
      row[O + j] = a;
      if (act) act[(size_t)b * A + j] = a;
      lp += -0.5f * e * e - s - TDM_SAC_HALF_LOG_2PI - logf(sech2(u) + TDM_SAC_TANH_EPS);
    }
    if (logp) logp[b] = lp;
  }
  return TDM_OK;
}

tdm_status tdm_sac_cpu_target_loss(tdm_dev *dev, const float *qt, const float *logp_next,
                                   const float *reward, const float *term, const float *log_alpha,
                                   float gamma, const float *q, float *y, float *dq, float *stats,
                                   int B, tdm_rng_ctr *rng) {
  TDM_TRY(tdm_sac_cpu_target(dev, qt, logp_next, reward, term, log_alpha, gamma, y, B));
  TDM_TRY(tdm_sac_cpu_critic_loss(dev, q, y, log_alpha, dq, stats, B));
  if (rng) rng->calls += 1;
  return TDM_OK;
}
