// Hidden activations and their derivatives on the GPU, shared by the elementwise ops and the fused
// SAC kernel (the same formulas as the CPU twins in src/core/ops_cpu.c).
#ifndef TANDEM_ACT_CUH
#define TANDEM_ACT_CUH

#include "tandem/ops.h"

// sigmoid without overflow on either side (the CPU twin's form)
static __device__ __forceinline__ float sigmoidf_(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

// softplus(x) = log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
static __device__ __forceinline__ float softplusf_(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

template <int ACT>
static __device__ __forceinline__ float act_f(float x) {
  if (ACT == TDM_ACT_RELU) return x > 0.0f ? x : 0.0f;
  if (ACT == TDM_ACT_TANH) return tanhf(x);
  if (ACT == TDM_ACT_SILU) return x * sigmoidf_(x);
  if (ACT == TDM_ACT_MISH) return x * tanhf(softplusf_(x));
  if (ACT == TDM_ACT_ELU) return x > 0.0f ? x : expm1f(x);
  return x;
}

// d act / dx at x, given y = act(x)
template <int ACT>
static __device__ __forceinline__ float act_df(float x, float y) {
  if (ACT == TDM_ACT_RELU) return x > 0.0f ? 1.0f : 0.0f;
  if (ACT == TDM_ACT_TANH) return 1.0f - y * y;
  if (ACT == TDM_ACT_SILU) {
    float s = sigmoidf_(x);
    return s * (1.0f + x * (1.0f - s));
  }
  if (ACT == TDM_ACT_MISH) {
    // d/dx x tanh(sp(x)) = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)
    float t = tanhf(softplusf_(x));
    return t + x * (1.0f - t * t) * sigmoidf_(x);
  }
  if (ACT == TDM_ACT_ELU) return x > 0.0f ? 1.0f : expf(x);
  return 1.0f;
}

// act_f / act_df for an activation known only at run time
static __device__ __forceinline__ float act_f_rt(int act, float x) {
  switch (act) {
    case TDM_ACT_RELU:
      return act_f<TDM_ACT_RELU>(x);
    case TDM_ACT_TANH:
      return act_f<TDM_ACT_TANH>(x);
    case TDM_ACT_SILU:
      return act_f<TDM_ACT_SILU>(x);
    case TDM_ACT_MISH:
      return act_f<TDM_ACT_MISH>(x);
    case TDM_ACT_ELU:
      return act_f<TDM_ACT_ELU>(x);
    default:
      return x;
  }
}
static __device__ __forceinline__ float act_df_rt(int act, float x, float y) {
  switch (act) {
    case TDM_ACT_RELU:
      return act_df<TDM_ACT_RELU>(x, y);
    case TDM_ACT_TANH:
      return act_df<TDM_ACT_TANH>(x, y);
    case TDM_ACT_SILU:
      return act_df<TDM_ACT_SILU>(x, y);
    case TDM_ACT_MISH:
      return act_df<TDM_ACT_MISH>(x, y);
    case TDM_ACT_ELU:
      return act_df<TDM_ACT_ELU>(x, y);
    default:
      return 1.0f;
  }
}

#endif  // TANDEM_ACT_CUH
