// Per-element arithmetic of Adam and of the Polyak average (the CPU twin is src/core/ops_cpu.c),
// shared by the Adam and Polyak kernels and the fused SAC update so that all of them compute
// exactly the same numbers.
#ifndef TANDEM_ADAM_CUH
#define TANDEM_ADAM_CUH

#include <stdint.h>

// Bias correction 1 - b^t, in double as the CPU twin.
static __device__ __forceinline__ float adam_bc(float b, int32_t t) {
  return (float)(1.0 - pow((double)b, (double)t));
}

// One Adam step of one element: the moments m, v are updated in place from the gradient g; returns
// the new parameter (decoupled weight decay wd; bc1, bc2 from adam_bc).
static __device__ __forceinline__ float adam_elem(float p, float g, float &m, float &v, float lr,
                                                  float b1, float b2, float eps, float wd,
                                                  float bc1, float bc2) {
  const float ob1 = 1.0f - b1, ob2 = 1.0f - b2;
  m = b1 * m + ob1 * g;
  v = b2 * v + ob2 * g * g;
  return p - (lr * ((m / bc1) / (sqrtf(v / bc2) + eps)) + lr * wd * p);
}

// The Polyak average of target t toward source s: (1 - tau) t + tau s.
static __device__ __forceinline__ float polyak_elem(float t, float s, float tau) {
  return (1.0f - tau) * t + tau * s;
}

#endif
