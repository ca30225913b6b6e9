// Helpers shared by the SAC tests (sac_test, sac_parity_test, sac_fused_test, and
// bench/proto/sac_drift.c): the CPU device, a synchronised device-to-host copy, a network's arrays
// on the host and their relative error, random transitions fed to one or two agents, and the
// check of the exploration noise's restart at episode ends on any device.
#ifndef TANDEM_TEST_SAC_SIDE_H
#define TANDEM_TEST_SAC_SIDE_H

#include "tandem/agent.h"
#include "test.h"

// The CPU device with one thread, opened once (NULL when it cannot be opened).
static inline tdm_dev *cpu(void) {
  static tdm_dev *d = NULL;
  if (!d && tdm_dev_open("cpu", 1, &d) != TDM_OK) d = NULL;
  return d;
}

// n floats of src (memory of dev: device or host) into host h, synchronised
static inline tdm_status down(tdm_dev *dev, float *h, const float *src, size_t n) {
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
static inline tdm_status feed2(tdm_agent *x, tdm_agent *y, int steps, uint64_t seed) {
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

// The restart of correlated exploration noise when episodes end, on device d with config c
// (noise_corr > 0; obs 3, act 2, 7 envs). Two agents made alike act once; x then observes
// an env step where the envs of `ended` (a string of '0' / '1' per transition, mapped to env slots
// through `stream`, NULL = identity) end, z one where all 7 end. Both draw the same fresh noise,
// so on the next act x's ended envs must give z's actions bit for bit and its other envs must
// not. NULL when that holds, else what failed.
static inline const char *noise_restart_check(tdm_dev *d, tdm_sac_cfg c, const char *ended,
                                              const int32_t *stream) {
  enum { N = 7, O = 3, A = 2 };
  static char why[160];
  tdm_agent_dims dims = {O, A, N};
  tdm_agent *x = NULL, *z = NULL;
  float obs[N * O], act[N * A], ax[N * A], az[N * A], rew[N] = {0};
  uint8_t te[N], tr[N] = {0}, all[N];
  tdm_t_rand(obs, N * O, -1, 1, 77);
  for (int i = 0; i < N; i++) {
    te[i] = ended[i] == '1';
    all[i] = 1;
  }
  snprintf(why, sizeof why, "agents not made or an op failed");
  if (tdm_sac_create(d, &c, &dims, 23, &x) != TDM_OK ||
      tdm_sac_create(d, &c, &dims, 23, &z) != TDM_OK)
    goto done;
  tdm_transition_batch bx = {N, obs, act, rew, obs, te, tr, stream, TDM_SRC_REAL};
  tdm_transition_batch bz = {N, obs, act, rew, obs, all, tr, NULL, TDM_SRC_REAL};
  if (tdm_agent_act(x, obs, N, true, act) != TDM_OK || tdm_agent_observe(x, &bx) != TDM_OK ||
      tdm_agent_act(z, obs, N, true, act) != TDM_OK || tdm_agent_observe(z, &bz) != TDM_OK ||
      tdm_agent_act(x, obs, N, true, ax) != TDM_OK || tdm_agent_act(z, obs, N, true, az) != TDM_OK)
    goto done;
  for (int i = 0; i < N; i++) {
    int env = stream ? stream[i] : i;
    bool same = !memcmp(ax + env * A, az + env * A, A * sizeof(float));
    if (same != te[i]) {
      snprintf(why, sizeof why, "ended %s: env %d (transition %d) %s", ended, env, i,
               te[i] ? "did not restart its noise" : "restarted its noise without ending");
      goto done;
    }
  }
  why[0] = 0;
done:
  tdm_agent_destroy(x);
  tdm_agent_destroy(z);
  return why[0] ? why : NULL;
}

#endif  // TANDEM_TEST_SAC_SIDE_H
