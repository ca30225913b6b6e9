// Per-element arithmetic of the tanh-squashed Gaussian (src/agents/sac_ops.h has the formulas),
// shared by the SAC kernels and the fused SAC update so both compute exactly the same numbers.
#ifndef TANDEM_SAC_MATH_CUH
#define TANDEM_SAC_MATH_CUH

#include "../src/agents/sac_ops.h"

// 1 - tanh(u)^2 without cancellation (as the CPU twin)
static __device__ __forceinline__ float sech2(float u) {
  float e = expf(-2.0f * fabsf(u));
  return 4.0f * e / ((1.0f + e) * (1.0f + e));
}

// Action a = tanh(mean + exp(clamp(log_std)) e) into *a; returns this element's log-prob term.
static __device__ __forceinline__ float squash_elem(float mean, float log_std, float e, float lo,
                                                    float hi, float *a) {
  float s = fminf(fmaxf(log_std, lo), hi);
  float u = mean + expf(s) * e;
  *a = tanhf(u);
  return -0.5f * e * e - s - TDM_SAC_HALF_LOG_2PI - logf(sech2(u) + TDM_SAC_TANH_EPS);
}

// Gradients of one element of the squash: with respect to the mean (*dm) and the unclamped
// log_std (*ds), from dL/da (da) and dL/dlogp (dl); a is the action the forward produced.
static __device__ __forceinline__ void squash_bwd_elem(float m, float ls, float e, float a,
                                                       float da, float dl, float lo, float hi,
                                                       float *dm, float *ds) {
  float s = fminf(fmaxf(ls, lo), hi);
  float om = sech2(m + expf(s) * e);  // 1 - a^2
  float du = da * om + dl * 2.0f * a * om / (om + TDM_SAC_TANH_EPS);
  *dm = du;
  float d = du * expf(s) * e - dl;
  *ds = (ls >= lo && ls <= hi) ? d : 0.0f;
}

#endif  // TANDEM_SAC_MATH_CUH
