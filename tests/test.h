// Minimal test harness: each test is a function; main() runs them with TDM_RUN / TDM_RUN_GPU and
// returns tdm_test_end(). Each test prints one line "PASS name", "FAIL name: why" or
// "SKIP name: why"; tests/run_tests.sh adds them up.
#ifndef TANDEM_TEST_H
#define TANDEM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/tandem.h"

static int tdm_t_failed_now, tdm_t_pass, tdm_t_fail, tdm_t_skip;

// Test binaries run the CPU GEMMs on the kernels the tandem CLI would pick (include/tandem/core.h:
// tdm_blas_pick_kernels, which may re-execute the binary once before main).
__attribute__((constructor)) static void tdm_t_pick_kernels(void) {
  tdm_blas_pick_kernels();
}
static char tdm_t_why[512];

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      if (!tdm_t_failed_now)                                                               \
        snprintf(tdm_t_why, sizeof tdm_t_why, "%s:%d: CHECK(%s)", __FILE__, __LINE__, #cond); \
      tdm_t_failed_now = 1;                                                                \
      return;                                                                              \
    }                                                                                      \
  } while (0)

#define CHECKF(cond, ...)                                                                  \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      if (!tdm_t_failed_now) {                                                             \
        int k_ = snprintf(tdm_t_why, sizeof tdm_t_why, "%s:%d: ", __FILE__, __LINE__);     \
        snprintf(tdm_t_why + k_, sizeof tdm_t_why - (size_t)k_, __VA_ARGS__);              \
      }                                                                                    \
      tdm_t_failed_now = 1;                                                                \
      return;                                                                              \
    }                                                                                      \
  } while (0)

// Fails the test with the library's error message when expr is not TDM_OK.
#define CHECK_OK(expr)                                                                     \
  do {                                                                                     \
    tdm_status s_ = (expr);                                                                \
    CHECKF(s_ == TDM_OK, "%s -> %s: %s", #expr, tdm_status_name(s_), tdm_errmsg());        \
  } while (0)

// Skip the current test (prints SKIP and returns).
static int tdm_t_skipped_now;
#define SKIP(...)                                                 \
  do {                                                            \
    snprintf(tdm_t_why, sizeof tdm_t_why, __VA_ARGS__);           \
    tdm_t_skipped_now = 1;                                        \
    return;                                                       \
  } while (0)

static inline void tdm_t_run(const char *name, void (*fn)(void)) {
  tdm_t_failed_now = 0;
  tdm_t_skipped_now = 0;
  tdm_t_why[0] = 0;
  double t0 = tdm_now();
  fn();
  double dt = tdm_now() - t0;
  if (tdm_t_failed_now) {
    printf("FAIL %s: %s\n", name, tdm_t_why);
    tdm_t_fail++;
  } else if (tdm_t_skipped_now) {
    printf("SKIP %s: %s\n", name, tdm_t_why);
    tdm_t_skip++;
  } else {
    printf("PASS %s (%.2fs)\n", name, dt);
    tdm_t_pass++;
  }
  fflush(stdout);
}

#define TDM_RUN(fn) tdm_t_run(#fn, fn)

// The GPU device the GPU tests of a binary share (opened at the first use, closed at the end, so
// that compute-sanitizer's leak check reports only what the engine leaks).
static tdm_dev *tdm_t_gpu = NULL;
static int tdm_t_gpu_tried = 0;

static inline int tdm_test_end(void) {
  tdm_dev_close(tdm_t_gpu);
  tdm_t_gpu = NULL;
  return tdm_t_fail ? 1 : 0;
}

// The GPU device for GPU tests, or NULL (then the test calls SKIP).
static inline tdm_dev *tdm_test_gpu(void) {
  if (!tdm_t_gpu_tried) {
    tdm_t_gpu_tried = 1;
    if (tdm_cuda_built() && tdm_cuda_device_count() > 0) {
      if (tdm_dev_open("cuda:0", 1, &tdm_t_gpu) != TDM_OK) tdm_t_gpu = NULL;
    }
  }
  return tdm_t_gpu;
}
#define NEED_GPU(dev)                                                                        \
  tdm_dev *dev = tdm_test_gpu();                                                             \
  if (!dev) SKIP("no GPU (%s)", tdm_cuda_built() ? "none visible" : "built without CUDA")

// Relative error ||a - b|| / ||b|| in double.
static inline double tdm_t_relerr(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    if (isnan(a[i]) || isnan(b[i])) return INFINITY;
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

// Fill x with uniform values in [lo, hi) from a host Philox stream.
static inline void tdm_t_rand(float *x, size_t n, float lo, float hi, uint64_t seed) {
  tdm_rng r;
  tdm_rng_init(&r, seed, 7);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)tdm_rng_uniform_d(&r);
}

// act(x) in double, written independently of the library (the reference of the activation tests).
static inline double tdm_t_ref_act(tdm_act a, double x) {
  switch (a) {
    case TDM_ACT_NONE:
      return x;
    case TDM_ACT_RELU:
      return x > 0 ? x : 0;
    case TDM_ACT_TANH:
      return tanh(x);
    case TDM_ACT_SILU:
      return x / (1 + exp(-x));
    case TDM_ACT_MISH:
      return x * tanh(x > 30 ? x : log1p(exp(x)));
    case TDM_ACT_ELU:
      return x > 0 ? x : expm1(x);
  }
  return NAN;
}

// Buffers a test allocates (dev NULL: host malloc), freed together by tdm_t_release_all between
// tests, since a failed CHECK returns early.
#define TDM_T_MAX_BUFS 4096
static struct {
  tdm_dev *dev;
  void *p;
} tdm_t_bufs[TDM_T_MAX_BUFS];
static int tdm_t_nbufs;

static inline void tdm_t_release_all(void) {
  for (int i = 0; i < tdm_t_nbufs; i++) {
    if (tdm_t_bufs[i].dev)
      tdm_dev_free(tdm_t_bufs[i].dev, tdm_t_bufs[i].p);
    else
      free(tdm_t_bufs[i].p);
  }
  tdm_t_nbufs = 0;
}

// Remember p for tdm_t_release_all and return it (NULL, freeing p, when the table is full).
static inline void *tdm_t_track(tdm_dev *dev, void *p) {
  if (!p) return NULL;
  if (tdm_t_nbufs == TDM_T_MAX_BUFS) {
    if (dev)
      tdm_dev_free(dev, p);
    else
      free(p);
    return NULL;
  }
  tdm_t_bufs[tdm_t_nbufs].dev = dev;
  tdm_t_bufs[tdm_t_nbufs].p = p;
  tdm_t_nbufs++;
  return p;
}

#endif  // TANDEM_TEST_H
