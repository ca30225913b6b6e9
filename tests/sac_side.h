// Helpers shared by the SAC tests that compare agents across devices (sac_parity_test,
// sac_fused_test, and bench/proto/sac_drift.c): the CPU device, a synchronised device-to-host
// copy, a network's arrays on the host and their relative error, and random transitions fed to one
// or two agents.
#ifndef TANDEM_TEST_SAC_SIDE_H
#define TANDEM_TEST_SAC_SIDE_H

#include "tandem/agent.h"
#include "test.h"

// The CPU device with one thread, opened once (NULL when it cannot be opened).
static tdm_dev *cpu(void) {
  static tdm_dev *d = NULL;
  if (!d && tdm_dev_open("cpu", 1, &d) != TDM_OK) d = NULL;
  return d;
}

// n floats of src (memory of dev: device or host) into host h, synchronised
static tdm_status down(tdm_dev *dev, float *h, const float *src, size_t n) {
  TDM_TRY(tdm_dev_d2h(dev, h, src, n * sizeof(float)));
  return tdm_dev_sync(dev);
}

// Host copy (malloc'd, freed by the caller; NULL on failure) of one of m's arrays: 0 parameters,
// 1 Adam first moments, 2 Adam second moments.
static inline float *fetch(tdm_mlp *m, int which) {
  const float *src = which == 0 ? m->params : which == 1 ? m->adam_m : m->adam_v;
  float *h = malloc(m->n_params * sizeof(float));
  if (h && down(m->dev, h, src, m->n_params) != TDM_OK) {
    free(h);
    h = NULL;
  }
  return h;
}

// relative error of array `which` of m against the same array of ref (any devices)
static inline double arr_err(tdm_mlp *m, tdm_mlp *ref, int which) {
  float *a = fetch(m, which), *b = fetch(ref, which);
  double e = a && b && m->n_params == ref->n_params ? tdm_t_relerr(a, b, m->n_params) : INFINITY;
  free(a);
  free(b);
  return e;
}

// n env steps of random transitions into x and (when non-NULL) y
static tdm_status feed2(tdm_agent *x, tdm_agent *y, int steps, uint64_t seed) {
  enum { MAX_N = 8, MAX_O = 64, MAX_A = 40 };
  int O = x->dims.obs_dim, A = x->dims.act_dim, N = x->dims.num_envs;
  if (N > MAX_N || O > MAX_O || A > MAX_A)
    return TDM_FAIL(TDM_ERR_ARG, "feed2: dims (N %d, O %d, A %d) above the test's buffers", N, O,
                    A);
  static float obs[MAX_N * MAX_O], nobs[MAX_N * MAX_O], act[MAX_N * MAX_A], rew[MAX_N];
  uint8_t te[MAX_N], tr[MAX_N];
  tdm_rng r;
  tdm_rng_init(&r, seed, 2);
  for (int k = 0; k < steps; k++) {
    for (int i = 0; i < N * O; i++) obs[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < N * O; i++) nobs[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < N * A; i++) act[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < N; i++) {
      rew[i] = tdm_rng_normal(&r);
      te[i] = tdm_rng_uniform(&r) < 0.1f;
      tr[i] = tdm_rng_uniform(&r) < 0.05f;
    }
    tdm_transition_batch b = {N, obs, act, rew, nobs, te, tr, NULL, TDM_SRC_REAL};
    TDM_TRY(tdm_agent_observe(x, &b));
    if (y) TDM_TRY(tdm_agent_observe(y, &b));
  }
  return TDM_OK;
}

#endif  // TANDEM_TEST_SAC_SIDE_H
