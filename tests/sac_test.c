// Replay buffer and SAC agent on the CPU: ring wrap-around, sampling, gathers, sequence sampling,
// capacity refusal, save / load; tanh-Gaussian log-prob and gradient against float64; one SAC
// update's critic loss against a float64 recomputation; temperature direction; determinism;
// checkpoint round trip; a 1-D toy problem.
#include "../src/agents/sac_ops.h"
#include "sac_side.h"

// ---------------------------------------------------------------------------------------------
// replay

// Transition t of stream s: obs = (t, s, ended, 0.25 t), act = (0.5 t, -t), reward = t,
// next_obs = obs + 1000.
typedef struct {
  float obs[16 * 4], next[16 * 4], act[16 * 2], rew[16];
  uint8_t term[16], trunc[16];
  int32_t stream[16];
} tb_buf;

static tdm_transition_batch fill_batch(tb_buf *w, int n, const int *t, const int *s,
                                       const uint8_t *term, const uint8_t *trunc) {
  for (int i = 0; i < n; i++) {
    float e = (term[i] || trunc[i]) ? 1.0f : 0.0f;
    float o[4] = {(float)t[i], (float)s[i], e, 0.25f * t[i]};
    for (int j = 0; j < 4; j++) {
      w->obs[i * 4 + j] = o[j];
      w->next[i * 4 + j] = o[j] + 1000.0f;
    }
    w->act[i * 2] = 0.5f * t[i];
    w->act[i * 2 + 1] = -(float)t[i];
    w->rew[i] = (float)t[i];
    w->term[i] = term[i];
    w->trunc[i] = trunc[i];
    w->stream[i] = s[i];
  }
  tdm_transition_batch b = {n,       w->obs,   w->act,    w->rew,      w->next,
                            w->term, w->trunc, w->stream, TDM_SRC_REAL};
  return b;
}

static void test_replay_wraparound(void) {
  tdm_dev *d = cpu();
  tdm_replay_cfg c = {4, 2, 10, 3, 0, 0};
  tdm_replay *r;
  CHECK_OK(tdm_replay_create(d, &c, &r));
  tb_buf w;
  uint8_t z[3] = {0, 0, 0};
  for (int k = 0; k < 5; k++) {
    int t[3] = {3 * k, 3 * k + 1, 3 * k + 2}, s[3] = {0, 1, 2};
    tdm_transition_batch b = fill_batch(&w, 3, t, s, z, z);
    b.source = k == 4 ? TDM_SRC_PLANNER : TDM_SRC_REAL;
    CHECK_OK(tdm_replay_add(r, &b));
  }
  CHECK(tdm_replay_size(r) == 10 && tdm_replay_total(r) == 15);
  CHECK(*tdm_replay_size_dev(r) == 10);
  tdm_replay_batch bt;
  CHECK_OK(tdm_replay_batch_create(r, 10, &bt));
  for (int i = 0; i < 10; i++) bt.idx[i] = i;
  CHECK_OK(tdm_replay_gather(r, &bt, 10));
  // transitions t = 0..14 went to rows t % 10: rows 0..4 hold t = 10..14, rows 5..9 t = 5..9
  for (int i = 0; i < 10; i++) {
    int t = i < 5 ? 10 + i : i;
    CHECKF(bt.obs[i * 4] == (float)t, "row %d holds t = %g, expected %d", i, bt.obs[i * 4], t);
    CHECK(bt.next_obs[i * 4 + 3] == 0.25f * t + 1000.0f);
    CHECK(bt.act[i * 2] == 0.5f * t && bt.act[i * 2 + 1] == -(float)t);
    CHECK(bt.reward[i] == (float)t && bt.terminated[i] == 0.0f);
    CHECK(bt.source[i] == (t >= 12 ? (float)TDM_SRC_PLANNER : (float)TDM_SRC_REAL));
  }
  tdm_replay_batch_destroy(r, &bt);
  tdm_replay_destroy(r);
}

static void test_replay_sample_and_gather(void) {
  tdm_dev *d = cpu();
  tdm_replay_cfg c = {4, 2, 100, 1, 0, 0};
  tdm_replay *r;
  CHECK_OK(tdm_replay_create(d, &c, &r));
  tdm_replay_batch bt;
  CHECK_OK(tdm_replay_batch_create(r, 500, &bt));
  tdm_rng_ctr ctr = {77, 0};
  CHECK(tdm_replay_sample(r, &bt, 10, &ctr, 0) == TDM_ERR_ARG);  // empty
  tb_buf w;
  uint8_t z[1] = {0}, one[1] = {1};
  for (int k = 0; k < 37; k++) {
    int t[1] = {k}, s[1] = {0};
    tdm_transition_batch b = fill_batch(&w, 1, t, s, k % 5 == 4 ? one : z, z);
    CHECK_OK(tdm_replay_add(r, &b));
  }
  int seen[37] = {0};
  for (int rep = 0; rep < 3; rep++) {
    CHECK_OK(tdm_replay_sample(r, &bt, 500, &ctr, 0));
    CHECK_OK(tdm_rng_advance(d, &ctr, 1));
    for (int i = 0; i < 500; i++) {
      int row = bt.idx[i];
      CHECKF(row >= 0 && row < 37, "index %d outside [0, 37)", row);
      seen[row]++;
      // not full yet: row = t
      CHECK(bt.obs[i * 4] == (float)row && bt.obs[i * 4 + 3] == 0.25f * row);
      CHECK(bt.next_obs[i * 4 + 1] == 1000.0f);
      CHECK(bt.act[i * 2 + 1] == -(float)row && bt.reward[i] == (float)row);
      CHECK(bt.terminated[i] == (row % 5 == 4 ? 1.0f : 0.0f));
    }
  }
  // 1500 uniform draws over 37 rows: every row appears, none dominates
  for (int i = 0; i < 37; i++)
    CHECKF(seen[i] > 10 && seen[i] < 90, "row %d drawn %d times", i, seen[i]);
  tdm_replay_batch_destroy(r, &bt);
  tdm_replay_destroy(r);
}

// 4 streams with random episode ends, small capacity so that the ring wraps.
static tdm_status fill_streams(tdm_replay *r, int steps, uint64_t seed, bool truncate_too) {
  tdm_rng g;
  tdm_rng_init(&g, seed, 1);
  tb_buf w;
  for (int k = 0; k < steps; k++) {
    int t[4], s[4];
    uint8_t te[4], tr[4];
    for (int i = 0; i < 4; i++) {
      t[i] = k;
      s[i] = 3 - i;  // streams in a different order than the batch slots
      float u = tdm_rng_uniform(&g);
      te[i] = u < 0.08f;
      tr[i] = truncate_too && !te[i] && u > 0.93f;
    }
    tdm_transition_batch b = fill_batch(&w, 4, t, s, te, tr);
    TDM_TRY(tdm_replay_add(r, &b));
  }
  return TDM_OK;
}

static void test_replay_sequences_stay_in_episodes(void) {
  tdm_dev *d = cpu();
  const int L = 5, B = 64;
  tdm_replay_cfg c = {4, 2, 203, 4, 0, L * B};
  tdm_replay *r;
  CHECK_OK(tdm_replay_create(d, &c, &r));
  CHECK_OK(fill_streams(r, 150, 3, true));  // 600 transitions into 203 rows
  tdm_replay_batch bt;
  CHECK_OK(tdm_replay_batch_create(r, L * B, &bt));
  tdm_rng hr;
  tdm_rng_init(&hr, 9, 0);
  int ends_last = 0;
  for (int rep = 0; rep < 20; rep++) {
    CHECK_OK(tdm_replay_sample_seq(r, &bt, L, B, &hr));
    CHECK(bt.rows == L * B);
    for (int b = 0; b < B; b++) {
      const float *o0 = bt.obs + (size_t)b * 4;
      for (int t = 0; t < L; t++) {
        const float *o = bt.obs + ((size_t)t * B + b) * 4;
        CHECKF(o[1] == o0[1], "sequence %d changes stream at step %d", b, t);
        CHECKF(o[0] == o0[0] + t, "sequence %d not contiguous at step %d (%g after %g)", b, t, o[0],
               o0[0]);
        if (t < L - 1) CHECKF(o[2] == 0.0f, "sequence %d crosses an episode end at step %d", b, t);
      }
      ends_last += bt.obs[((size_t)(L - 1) * B + b) * 4 + 2] != 0.0f;
    }
  }
  CHECK(ends_last > 0);  // sequences may end exactly at an episode end
  // longer than any episode can be: refused with a message
  tdm_replay_cfg c2 = {4, 2, 50, 4, 0, 400};
  tdm_replay *r2;
  CHECK_OK(tdm_replay_create(d, &c2, &r2));
  tb_buf w;
  for (int k = 0; k < 10; k++) {
    int t[4] = {k, k, k, k}, s[4] = {0, 1, 2, 3};
    uint8_t te[4] = {(uint8_t)(k % 3 == 2), (uint8_t)(k % 3 == 2), 0, 0};
    uint8_t tr[4] = {0, 0, (uint8_t)(k % 3 == 2), (uint8_t)(k % 3 == 2)};
    tdm_transition_batch b = fill_batch(&w, 4, t, s, te, tr);
    CHECK_OK(tdm_replay_add(r2, &b));
  }
  tdm_replay_batch b2;
  CHECK_OK(tdm_replay_batch_create(r2, 400, &b2));
  CHECK_OK(tdm_replay_sample_seq(r2, &b2, 3, 10, &hr));
  tdm_status st = tdm_replay_sample_seq(r2, &b2, 4, 10, &hr);
  CHECKF(st == TDM_ERR_ARG && strstr(tdm_errmsg(), "no sub-trajectory"), "got %s: %s",
         tdm_status_name(st), tdm_errmsg());
  tdm_replay_batch_destroy(r2, &b2);
  tdm_replay_destroy(r2);
  tdm_replay_batch_destroy(r, &bt);
  tdm_replay_destroy(r);
}

static void test_replay_capacity_refused(void) {
  tdm_dev *d = cpu();
  tdm_replay_cfg c = {100000, 1000, 2000000000, 1, 0, 0};
  size_t need = tdm_replay_bytes(&c);
  tdm_replay *r = NULL;
  tdm_status st = tdm_replay_create(d, &c, &r);
  CHECK(st == TDM_ERR_OOM && r == NULL);
  char want[64];
  snprintf(want, sizeof want, "needs %zu bytes", need + (size_t)2000000000 * 13);
  CHECKF(strstr(tdm_errmsg(), want) && strstr(tdm_errmsg(), "bytes") &&
             strstr(tdm_errmsg(), "are free"),
         "message: %s", tdm_errmsg());
}

static void test_replay_save_load(void) {
  tdm_dev *d = cpu();
  tdm_replay_cfg c = {4, 2, 61, 4, 0, 40};
  tdm_replay *r, *r2, *r3;
  CHECK_OK(tdm_replay_create(d, &c, &r));
  CHECK_OK(tdm_replay_create(d, &c, &r2));
  CHECK_OK(tdm_replay_create(d, &c, &r3));
  CHECK_OK(fill_streams(r, 40, 5, true));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_replay_write(r, f));
  long len = ftell(f);
  rewind(f);
  CHECK_OK(tdm_replay_read(r2, f, "test file"));
  CHECK(tdm_replay_size(r2) == tdm_replay_size(r) && tdm_replay_total(r2) == 160);
  tdm_replay_batch b1, b2;
  CHECK_OK(tdm_replay_batch_create(r, 61, &b1));
  CHECK_OK(tdm_replay_batch_create(r2, 61, &b2));
  for (int i = 0; i < 61; i++) b1.idx[i] = b2.idx[i] = i;
  CHECK_OK(tdm_replay_gather(r, &b1, 61));
  CHECK_OK(tdm_replay_gather(r2, &b2, 61));
  CHECK(!memcmp(b1.mem_, b2.mem_, (size_t)((char *)(b1.source + 61) - (char *)b1.mem_)));
  // the episode links came along: the same host stream draws the same sequences
  tdm_rng h1, h2;
  tdm_rng_init(&h1, 4, 0);
  tdm_rng_init(&h2, 4, 0);
  CHECK_OK(tdm_replay_sample_seq(r, &b1, 4, 10, &h1));
  CHECK_OK(tdm_replay_sample_seq(r2, &b2, 4, 10, &h2));
  CHECK(!memcmp(b1.obs, b2.obs, 40 * 4 * sizeof(float)));
  // the next add lands at the same place
  CHECK_OK(fill_streams(r, 1, 6, false));
  CHECK_OK(fill_streams(r2, 1, 6, false));
  CHECK_OK(tdm_replay_gather(r, &b1, 61 > 40 ? 40 : 61));
  for (int i = 0; i < 40; i++) b2.idx[i] = b1.idx[i];
  CHECK_OK(tdm_replay_gather(r2, &b2, 40));
  CHECK(!memcmp(b1.obs, b2.obs, 40 * 4 * sizeof(float)));
  // a flipped byte in the arrays is refused by the checksum and r3 stays empty
  fseek(f, len - 40, SEEK_SET);
  int ch = fgetc(f);
  fseek(f, len - 40, SEEK_SET);
  fputc(ch ^ 0x5a, f);
  rewind(f);
  tdm_status st = tdm_replay_read(r3, f, "test file");
  CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), "checksum"), "%s", tdm_errmsg());
  CHECK(tdm_replay_size(r3) == 0);
  // links out of range are refused before anything is copied (layout in src/agents/replay.c: ...,
  // ended (C bytes), last row of each stream (S int32), the rows' arrays (13 floats a row here),
  // the checksum)
  const long data = (long)tdm_replay_size(r2) * 13 * 4, at_last = len - 4 - data - 4 * 4;
  const long at_ended = at_last - 61;
  for (int k = 0; k < 2; k++) {
    CHECK_OK(tdm_replay_write(r, f = freopen(NULL, "w+b", f)));
    CHECK(f && ftell(f) == len);
    fseek(f, k == 0 ? at_ended : at_last, SEEK_SET);
    fputc(k == 0 ? 7 : 0x7f, f);  // row 0 ended = 7; stream 0 last row 127 (its low byte)
    rewind(f);
    st = tdm_replay_read(r3, f, "test file");
    CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), k == 0 ? "links out of range" : "last row"),
           "%s", tdm_errmsg());
    CHECK(tdm_replay_size(r3) == 0);
  }
  // a buffer of another shape is refused
  tdm_replay_cfg c4 = {5, 2, 61, 4, 0, 0};
  tdm_replay *r4;
  CHECK_OK(tdm_replay_create(d, &c4, &r4));
  rewind(f);
  st = tdm_replay_read(r4, f, "test file");
  CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), "shape"), "%s", tdm_errmsg());
  fclose(f);
  tdm_replay_destroy(r4);
  tdm_replay_batch_destroy(r, &b1);
  tdm_replay_batch_destroy(r2, &b2);
  tdm_replay_destroy(r);
  tdm_replay_destroy(r2);
  tdm_replay_destroy(r3);
}

// ---------------------------------------------------------------------------------------------
// tanh-Gaussian

// float64 log pi and actions for one row
static double ref_logp(const double *head, const double *eps, int A, double lo, double hi,
                       double *act) {
  double lp = 0;
  for (int j = 0; j < A; j++) {
    double s = fmin(fmax(head[A + j], lo), hi);
    double u = head[j] + exp(s) * eps[j];
    double a = tanh(u);
    if (act) act[j] = a;
    lp += -0.5 * eps[j] * eps[j] - s - 0.5 * log(2 * M_PI) - log(1 - a * a + 1e-6);
  }
  return lp;
}

static void test_squash_logprob_vs_float64(void) {
  tdm_dev *d = cpu();
  enum { B = 64, A = 3 };
  float head[B * 2 * A], eps[B * A], act[B * A], logp[B];
  tdm_t_rand(head, B * 2 * A, -3.0f, 3.0f, 11);
  tdm_t_rand(eps, B * A, -2.5f, 2.5f, 12);
  head[A] = -25.0f;            // below the clamp
  head[2 * A + A + 1] = 4.0f;  // above it
  CHECK_OK(tdm_sac_squash_fwd(d, head, eps, act, logp, B, A, -20.0f, 2.0f));
  double max_rel = 0;
  for (int b = 0; b < B; b++) {
    double h[2 * A], e[A], ra[A];
    for (int j = 0; j < 2 * A; j++) h[j] = head[b * 2 * A + j];
    for (int j = 0; j < A; j++) e[j] = eps[b * A + j];
    double lp = ref_logp(h, e, A, -20, 2, ra);
    for (int j = 0; j < A; j++) CHECK(fabs(act[b * A + j] - ra[j]) < 1e-6);
    double rel = fabs(logp[b] - lp) / fmax(1.0, fabs(lp));
    if (rel > max_rel) max_rel = rel;
  }
  CHECKF(max_rel < 2e-5, "log-prob relative error %g", max_rel);
  // deterministic: tanh(mean)
  CHECK_OK(tdm_sac_squash_fwd(d, head, NULL, act, NULL, B, A, -20.0f, 2.0f));
  for (int i = 0; i < B * A; i++)
    CHECK(fabsf(act[i] - tanhf(head[(i / A) * 2 * A + i % A])) < 1e-7f);
}

static void test_squash_gradient_finite_differences(void) {
  tdm_dev *d = cpu();
  enum { B = 16, A = 3 };
  float head[B * 2 * A], eps[B * A], act[B * A], logp[B], dact[B * 5], dlogp[B], dhead[B * 2 * A];
  tdm_t_rand(head, B * 2 * A, -1.5f, 1.0f, 21);
  tdm_t_rand(eps, B * A, -2.0f, 2.0f, 22);
  tdm_t_rand(dact, B * 5, -1.0f, 1.0f, 23);  // row stride 5: dL/da sits in columns 2..4
  tdm_t_rand(dlogp, B, 0.1f, 1.0f, 24);
  head[2 * A + A] = -30.0f;  // clamped: no gradient
  const float lo = -5.0f, hi = 2.0f;
  CHECK_OK(tdm_sac_squash_fwd(d, head, eps, act, logp, B, A, lo, hi));
  CHECK_OK(tdm_sac_squash_bwd(d, head, eps, act, dact + 2, 5, dlogp, dhead, B, A, lo, hi));
  // L = sum_b [ sum_j dact_bj a_bj + dlogp_b logp_b ], central differences in float64
  double max_err = 0, scale = 0;
  for (int b = 0; b < B; b++) {
    double e[A];
    for (int j = 0; j < A; j++) e[j] = eps[b * A + j];
    for (int k = 0; k < 2 * A; k++) {
      double h[2 * A], a[A], Lp = 0, Lm = 0, step = 1e-6;
      for (int dir = 0; dir < 2; dir++) {
        for (int j = 0; j < 2 * A; j++) h[j] = head[b * 2 * A + j];
        h[k] += dir ? -step : step;
        double lp = ref_logp(h, e, A, lo, hi, a), L = dlogp[b] * lp;
        for (int j = 0; j < A; j++) L += dact[b * 5 + 2 + j] * a[j];
        if (dir)
          Lm = L;
        else
          Lp = L;
      }
      double fd = (Lp - Lm) / (2 * step);
      double err = fabs(fd - dhead[b * 2 * A + k]);
      if (err > max_err) max_err = err;
      scale = fmax(scale, fabs(fd));
    }
  }
  CHECKF(max_err < 1e-4 * fmax(1.0, scale), "max gradient error %g (scale %g)", max_err, scale);
  CHECK(dhead[2 * A + A] == 0.0f);
}

// ---------------------------------------------------------------------------------------------
// SAC agent

static tdm_sac_cfg small_cfg(void) {
  tdm_sac_cfg c = tdm_sac_defaults();
  c.hidden = 16;
  c.layers = 2;
  c.batch_size = 32;
  c.buffer_size = 500;
  return c;
}

// n env steps of random transitions (obs O, act A) into the agent's replay
static tdm_status feed(tdm_agent *a, int steps, uint64_t seed) {
  int O = a->dims.obs_dim, A = a->dims.act_dim, N = a->dims.num_envs;
  float obs[4 * 8], nobs[4 * 8], act[4 * 8], rew[4];
  uint8_t te[4], tr[4];
  tdm_rng g;
  tdm_rng_init(&g, seed, 2);
  for (int k = 0; k < steps; k++) {
    for (int i = 0; i < N * O; i++) obs[i] = 2.0f * tdm_rng_uniform(&g) - 1.0f;
    for (int i = 0; i < N * O; i++) nobs[i] = 2.0f * tdm_rng_uniform(&g) - 1.0f;
    for (int i = 0; i < N * A; i++) act[i] = 2.0f * tdm_rng_uniform(&g) - 1.0f;
    for (int i = 0; i < N; i++) {
      rew[i] = tdm_rng_normal(&g);
      te[i] = tdm_rng_uniform(&g) < 0.2f;
      tr[i] = 0;
    }
    tdm_transition_batch b = {N, obs, act, rew, nobs, te, tr, NULL, TDM_SRC_REAL};
    TDM_TRY(tdm_agent_observe(a, &b));
  }
  return TDM_OK;
}

static void test_agent_registry(void) {
  tdm_agent_cfg c = tdm_agent_cfg_defaults();
  tdm_agent_dims dims = {3, 2, 1};
  tdm_agent *a = NULL;
  tdm_status st = tdm_agent_create("td3", cpu(), &c, &dims, 1, &a);
  CHECKF(st == TDM_ERR_ARG && strstr(tdm_errmsg(), "td3") && strstr(tdm_errmsg(), "sac"), "%s",
         tdm_errmsg());
  c.sac = small_cfg();
  c.sac.tau = 0;
  CHECK(tdm_agent_create("sac", cpu(), &c, &dims, 1, &a) == TDM_ERR_CONFIG);
  CHECK(strstr(tdm_errmsg(), "tau"));
  c.sac = small_cfg();
  CHECK_OK(tdm_agent_create("sac", cpu(), &c, &dims, 1, &a));
  CHECK(!strcmp(a->ops->name, "sac") && tdm_sac_replay(a) && tdm_sac_actor(a));
  tdm_agent_stats s;
  CHECK(tdm_agent_update(a, 1, &s) == TDM_ERR_ARG);  // empty replay
  float obs[3] = {0.1f, -0.2f, 0.3f}, act[2];
  CHECK_OK(tdm_agent_act(a, obs, 1, true, act));
  CHECK(fabsf(act[0]) <= 1 && fabsf(act[1]) <= 1);
  tdm_agent_destroy(a);
}

// float64 forward of member e of an MLP with ReLU hidden layers on one input row
static void ref_mlp(const tdm_mlp *m, int e, const double *x, double *y) {
  double buf[2][256];
  const double *in = x;
  int L = m->spec.n_layers;
  for (int l = 0; l < L; l++) {
    const tdm_mlp_layer *ly = &m->layers[l];
    const float *W = m->params + ly->w + (size_t)e * ly->out * ly->in;
    const float *bb = m->params + ly->b + (size_t)e * ly->out;
    double *o = l == L - 1 ? y : buf[l & 1];
    for (int i = 0; i < ly->out; i++) {
      double s = bb[i];
      for (int k = 0; k < ly->in; k++) s += (double)W[i * ly->in + k] * in[k];
      o[i] = l < L - 1 ? fmax(s, 0.0) : s;
    }
    in = o;
  }
}

static void test_critic_loss_vs_float64(void) {
  tdm_dev *d = cpu();
  enum { O = 3, A = 2, B = 32 };
  tdm_sac_cfg c = small_cfg();
  c.ent_coef_init = 0.3f;
  tdm_agent_dims dims = {O, A, 2};
  tdm_agent *a;
  const uint64_t seed = 5;
  CHECK_OK(tdm_sac_create(d, &c, &dims, seed, &a));
  CHECK_OK(feed(a, 60, 1));
  tdm_replay *r = tdm_sac_replay(a);
  tdm_replay_batch bt;
  CHECK_OK(tdm_replay_batch_create(r, B, &bt));
  tdm_rng_ctr ctr = {99, 0};
  CHECK_OK(tdm_replay_sample(r, &bt, B, &ctr, 0));
  // the agent's first update draws eps' from its update stream (seed, calls 0), sub-stream 1
  float eps[B * A];
  tdm_rng_ctr actr = {seed, 0};
  CHECK_OK(tdm_fill_normal(d, eps, B * A, 0.0f, 1.0f, &actr, 1));
  double loss = 0;
  const tdm_mlp *actor = tdm_sac_actor(a), *critic = tdm_sac_critic(a),
                *targ = tdm_sac_critic_target(a);
  double alpha = exp((double)*tdm_sac_log_alpha(a));
  CHECK(fabs(alpha - 0.3) < 1e-6);
  for (int b = 0; b < B; b++) {
    double x[O + A], head[2 * A], e[A], an[A], qt[2], q[2];
    for (int j = 0; j < O; j++) x[j] = bt.next_obs[b * O + j];
    ref_mlp(actor, 0, x, head);
    for (int j = 0; j < A; j++) e[j] = eps[b * A + j];
    double lp = ref_logp(head, e, A, -20, 2, an);
    for (int j = 0; j < A; j++) x[O + j] = an[j];
    ref_mlp(targ, 0, x, &qt[0]);
    ref_mlp(targ, 1, x, &qt[1]);
    double y = bt.reward[b] + 0.99 * (1 - bt.terminated[b]) * (fmin(qt[0], qt[1]) - alpha * lp);
    for (int j = 0; j < O; j++) x[j] = bt.obs[b * O + j];
    for (int j = 0; j < A; j++) x[O + j] = bt.act[b * A + j];
    ref_mlp(critic, 0, x, &q[0]);
    ref_mlp(critic, 1, x, &q[1]);
    loss += 0.5 * ((q[0] - y) * (q[0] - y) + (q[1] - y) * (q[1] - y)) / B;
  }
  float before[64];
  memcpy(before, critic->params, sizeof before);
  CHECK_OK(tdm_sac_update_on_batch(a, &bt, 1));
  tdm_agent_stats s;
  CHECK_OK(tdm_agent_update(a, 0, &s));  // n = 0: copy the statistics only
  CHECKF(fabs(s.critic_loss - loss) < 1e-5 * fmax(1.0, loss), "critic loss %.8g, float64 %.8g",
         s.critic_loss, loss);
  CHECK(fabsf(s.alpha - 0.3f) < 1e-6f && s.updates == 1);
  CHECK(memcmp(before, critic->params, sizeof before));  // the critic moved
  tdm_replay_batch_destroy(r, &bt);
  tdm_agent_destroy(a);
}

static void test_temperature_direction(void) {
  tdm_dev *d = cpu();
  for (int dir = 0; dir < 2; dir++) {
    tdm_sac_cfg c = small_cfg();
    c.target_entropy_auto = false;
    // entropy below the target -> alpha grows; far above -> alpha shrinks
    c.target_entropy = dir == 0 ? 50.0f : -50.0f;
    tdm_agent_dims dims = {3, 2, 2};
    tdm_agent *a;
    CHECK_OK(tdm_sac_create(d, &c, &dims, 7, &a));
    CHECK_OK(feed(a, 40, 2));
    float la0 = *tdm_sac_log_alpha(a);
    tdm_agent_stats s;
    CHECK_OK(tdm_agent_update(a, 3, &s));
    float la1 = *tdm_sac_log_alpha(a);
    CHECKF(dir == 0 ? la1 > la0 : la1 < la0, "target %g: log_alpha %g -> %g", c.target_entropy, la0,
           la1);
    // Adam's first steps move by about lr each
    CHECK(fabsf(la1 - la0) > 2.0f * c.lr && fabsf(la1 - la0) < 4.0f * c.lr);
    tdm_agent_destroy(a);
  }
  // fixed temperature: never moves
  tdm_sac_cfg c = small_cfg();
  c.ent_coef_auto = false;
  c.ent_coef_init = 0.2f;
  tdm_agent_dims dims = {3, 2, 2};
  tdm_agent *a;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 7, &a));
  CHECK_OK(feed(a, 40, 2));
  tdm_agent_stats s;
  CHECK_OK(tdm_agent_update(a, 3, &s));
  CHECK(*tdm_sac_log_alpha(a) == logf(0.2f) && fabsf(s.alpha - 0.2f) < 1e-6f);
  tdm_agent_destroy(a);
}

static bool net_same(tdm_mlp *m, const float *saved) {
  return !memcmp(m->params, saved, m->n_params * sizeof(float));
}

// policy_delay and target_update_interval skip the actor / temperature and the Polyak step on
// the updates in between; a batch smaller than batch_size works too.
static void test_policy_delay_and_target_interval(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = small_cfg();
  c.policy_delay = 2;
  c.target_update_interval = 3;
  tdm_agent_dims dims = {3, 2, 2};
  tdm_agent *a;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 31, &a));
  CHECK_OK(feed(a, 40, 5));
  tdm_mlp *ms[3] = {tdm_sac_actor(a), tdm_sac_critic(a), tdm_sac_critic_target(a)};
  float *saved[3];
  for (int i = 0; i < 3; i++) {
    saved[i] = malloc(ms[i]->n_params * sizeof(float));
    CHECK(saved[i]);
  }
  tdm_replay_batch bt;
  CHECK_OK(tdm_replay_batch_create(tdm_sac_replay(a), 20, &bt));
  tdm_rng_ctr ctr = {1, 0};
  CHECK_OK(tdm_replay_sample(tdm_sac_replay(a), &bt, 20, &ctr, 0));
  for (int k = 0; k < 7; k++) {
    for (int i = 0; i < 3; i++) memcpy(saved[i], ms[i]->params, ms[i]->n_params * sizeof(float));
    float la = *tdm_sac_log_alpha(a);
    if (k % 2)
      CHECK_OK(tdm_agent_update(a, 1, NULL));
    else
      CHECK_OK(tdm_sac_update_on_batch(a, &bt, 1));  // 20 rows < batch_size 32
    bool actor_step = k % 2 == 0, polyak_step = k % 3 == 0;
    CHECKF(net_same(ms[0], saved[0]) != actor_step, "update %d: actor moved %d", k, !actor_step);
    CHECKF((*tdm_sac_log_alpha(a) == la) != actor_step, "update %d: temperature", k);
    CHECKF(!net_same(ms[1], saved[1]), "update %d: the critic did not move", k);
    CHECKF(net_same(ms[2], saved[2]) != polyak_step, "update %d: target", k);
    for (size_t j = 0; j < ms[0]->n_params; j++) CHECK(isfinite(ms[0]->params[j]));
  }
  CHECK(a->n_updates == 7);
  for (int i = 0; i < 3; i++) free(saved[i]);
  tdm_replay_batch_destroy(tdm_sac_replay(a), &bt);
  tdm_agent_destroy(a);
}

static bool same_params(tdm_agent *a, tdm_agent *b) {
  tdm_mlp *ma[3] = {tdm_sac_actor(a), tdm_sac_critic(a), tdm_sac_critic_target(a)};
  tdm_mlp *mb[3] = {tdm_sac_actor(b), tdm_sac_critic(b), tdm_sac_critic_target(b)};
  for (int i = 0; i < 3; i++) {
    size_t n = ma[i]->n_params * sizeof(float);
    if (memcmp(ma[i]->params, mb[i]->params, n) || memcmp(ma[i]->adam_m, mb[i]->adam_m, n) ||
        memcmp(ma[i]->adam_v, mb[i]->adam_v, n))
      return false;
  }
  return *tdm_sac_log_alpha(a) == *tdm_sac_log_alpha(b);
}

static void test_determinism(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = small_cfg();
  c.policy_delay = 2;
  c.target_update_interval = 2;
  tdm_agent_dims dims = {3, 2, 2};
  tdm_agent *x, *y, *z;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 11, &x));
  CHECK_OK(tdm_sac_create(d, &c, &dims, 11, &y));
  CHECK_OK(tdm_sac_create(d, &c, &dims, 12, &z));
  CHECK(same_params(x, y) && !same_params(x, z));
  tdm_agent *all[3] = {x, y, z};
  tdm_agent_stats s[3];
  for (int i = 0; i < 3; i++) {
    CHECK_OK(feed(all[i], 50, 3));
    CHECK_OK(tdm_agent_update(all[i], 7, &s[i]));
  }
  CHECK(same_params(x, y) && !same_params(x, z));
  CHECK(s[0].critic_loss == s[1].critic_loss && s[0].actor_loss == s[1].actor_loss &&
        s[0].alpha == s[1].alpha && s[0].entropy == s[1].entropy && s[0].q_mean == s[1].q_mean);
  CHECK(s[0].updates == 7 && s[0].critic_loss != s[2].critic_loss);
  float o[6] = {0.1f, 0.2f, 0.3f, -0.1f, -0.2f, -0.3f}, ax[4], ay[4];
  CHECK_OK(tdm_agent_act(x, o, 2, true, ax));
  CHECK_OK(tdm_agent_act(y, o, 2, true, ay));
  CHECK(!memcmp(ax, ay, sizeof ax));
  for (int i = 0; i < 3; i++) tdm_agent_destroy(all[i]);
}

// One actor forward over [obs; next_obs] gives the same updates as two (GPU default, CPU option).
static void test_stacked_actor_same_updates(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = small_cfg();
  c.policy_delay = 2;
  tdm_agent_dims dims = {3, 2, 2};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 41, &x));
  CHECK_OK(tdm_sac_create(d, &c, &dims, 41, &y));
  CHECK_OK(tdm_sac_set_stacked_actor(y, true));
  CHECK_OK(feed(x, 50, 6));
  CHECK_OK(feed(y, 50, 6));
  tdm_agent_stats sx, sy;
  CHECK_OK(tdm_agent_update(x, 6, &sx));
  CHECK_OK(tdm_agent_update(y, 6, &sy));
  tdm_mlp *mx[3] = {tdm_sac_actor(x), tdm_sac_critic(x), tdm_sac_critic_target(x)};
  tdm_mlp *my[3] = {tdm_sac_actor(y), tdm_sac_critic(y), tdm_sac_critic_target(y)};
  for (int i = 0; i < 3; i++) {
    double e = tdm_t_relerr(my[i]->params, mx[i]->params, mx[i]->n_params);
    CHECKF(e < 1e-6, "network %d differs by %g", i, e);
  }
  CHECK(fabsf(sx.actor_loss - sy.actor_loss) <= 1e-5f * fmaxf(1.0f, fabsf(sx.actor_loss)));
  CHECK(fabsf(*tdm_sac_log_alpha(x) - *tdm_sac_log_alpha(y)) < 1e-6f);
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// A lane on the CPU checks only the call order: fork, back, join; anything else is refused.
static void test_lane_call_order(void) {
  tdm_dev *d = cpu();
  tdm_dev_lane *l = NULL;
  CHECK_OK(tdm_dev_lane_create(d, &l));
  CHECK(tdm_dev_back(d, l) == TDM_ERR_ARG);
  CHECK(tdm_dev_join(d, l) == TDM_ERR_ARG);
  CHECK_OK(tdm_dev_fork(d, l));
  CHECK(tdm_dev_fork(d, l) == TDM_ERR_ARG);
  CHECK(tdm_dev_join(d, l) == TDM_ERR_ARG && strstr(tdm_errmsg(), "tdm_dev_back"));
  CHECK_OK(tdm_dev_back(d, l));
  CHECK(tdm_dev_fork(d, l) == TDM_ERR_ARG && strstr(tdm_errmsg(), "not joined"));
  CHECK_OK(tdm_dev_join(d, l));
  CHECK_OK(tdm_dev_fork(d, l));
  tdm_dev_lane_abort(d, l);  // back to idle: a fresh fork is fine
  CHECK_OK(tdm_dev_fork(d, l));
  CHECK_OK(tdm_dev_back(d, l));
  CHECK_OK(tdm_dev_join(d, l));
  CHECK(tdm_dev_fork(NULL, l) == TDM_ERR_ARG);
  tdm_dev_lane_destroy(l);
  tdm_dev_lane_destroy(NULL);
}

// graph_streams = 2 (the update's fork/join sequence) gives the same updates as one stream, with
// and without the stacked actor (unstacked, the actor step's forward moves before the critic
// backward); out-of-range values are refused.
static void test_graph_streams_same_updates(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = small_cfg();
  c.policy_delay = 2;
  c.target_update_interval = 3;
  tdm_agent_dims dims = {3, 2, 2};
  for (int stacked = 0; stacked < 2; stacked++) {
    tdm_agent *x, *y;
    c.graph_streams = 1;
    CHECK_OK(tdm_sac_create(d, &c, &dims, 43, &x));
    c.graph_streams = 2;
    CHECK_OK(tdm_sac_create(d, &c, &dims, 43, &y));
    CHECK_OK(tdm_sac_set_stacked_actor(x, stacked));
    CHECK_OK(tdm_sac_set_stacked_actor(y, stacked));
    CHECK_OK(feed(x, 50, 7));
    CHECK_OK(feed(y, 50, 7));
    tdm_agent_stats sx, sy;
    CHECK_OK(tdm_agent_update(x, 7, &sx));
    CHECK_OK(tdm_agent_update(y, 7, &sy));
    CHECKF(same_params(x, y), "stacked %d: graph_streams 1 and 2 differ", stacked);
    CHECK(sx.critic_loss == sy.critic_loss && sx.actor_loss == sy.actor_loss);
    tdm_agent_destroy(x);
    tdm_agent_destroy(y);
  }
  tdm_agent *z = NULL;
  c.graph_streams = 3;
  CHECK(tdm_sac_create(d, &c, &dims, 1, &z) == TDM_ERR_CONFIG && !z);
  CHECK(strstr(tdm_errmsg(), "graph_streams"));
  CHECK(tdm_sac_defaults().graph_streams == 2);
}

static void test_checkpoint_resume_exact(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = small_cfg();
  tdm_agent_dims dims = {3, 2, 2};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 21, &x));
  CHECK_OK(tdm_sac_create(d, &c, &dims, 22, &y));
  CHECK_OK(feed(x, 50, 4));
  CHECK_OK(tdm_agent_update(x, 5, NULL));
  float o[3] = {0.3f, 0.1f, -0.4f}, a0[2], a1[2];
  CHECK_OK(tdm_agent_act(x, o, 1, true, a0));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_agent_write(x, f, true));
  fprintf(f, "TRAILER");
  rewind(f);
  CHECK_OK(tdm_agent_read(y, f, true, "ckpt"));
  CHECK(same_params(x, y) && y->n_updates == 5 && y->n_observed == 100);
  // both continue identically: same batches, same noise, same actions
  CHECK_OK(feed(x, 3, 8));
  CHECK_OK(feed(y, 3, 8));
  CHECK_OK(tdm_agent_update(x, 4, NULL));
  CHECK_OK(tdm_agent_update(y, 4, NULL));
  CHECK(same_params(x, y));
  CHECK_OK(tdm_agent_act(x, o, 1, true, a0));
  CHECK_OK(tdm_agent_act(y, o, 1, true, a1));
  CHECK(!memcmp(a0, a1, sizeof a0));
  // reading without the replay skips it: the stream ends right after the section
  tdm_agent *z;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 23, &z));
  rewind(f);
  CHECK_OK(tdm_agent_read(z, f, false, "ckpt"));
  char tail[8] = {0};
  CHECK(fread(tail, 1, 7, f) == 7 && !strcmp(tail, "TRAILER"));
  CHECK(tdm_replay_size(tdm_sac_replay(z)) == 0);
  // another network size is refused naming the shapes
  tdm_sac_cfg c2 = c;
  c2.hidden = 8;
  tdm_agent *w;
  CHECK_OK(tdm_sac_create(d, &c2, &dims, 23, &w));
  rewind(f);
  tdm_status st = tdm_agent_read(w, f, false, "ckpt");
  CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), "hidden"), "%s", tdm_errmsg());
  fclose(f);
  tdm_agent_destroy(w);
  tdm_agent_destroy(z);
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// agent.noise_corr: each env's exploration noise is an AR(1) process. With the network fixed, the
// pre-squash action atanh(a) = mean + std eps is affine in eps, so its statistics are eps's:
// successive acts correlate by about rho, and every act's noise stays standard normal (the
// across-env spread equals that of independent noise from the first act on). The noise state is
// part of the checkpoint.
static double lag1_corr(const double *x, int n) {
  double m = 0, v = 0, c = 0;
  for (int i = 0; i < n; i++) m += x[i];
  m /= n;
  for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
  for (int i = 1; i < n; i++) c += (x[i] - m) * (x[i - 1] - m);
  return c / v;
}

// Standard deviation of atanh(act) over the N x A entries of one act.
static double spread(const float *act, int n) {
  double m = 0, v = 0;
  for (int i = 0; i < n; i++) m += atanh((double)act[i]);
  m /= n;
  for (int i = 0; i < n; i++) v += (atanh((double)act[i]) - m) * (atanh((double)act[i]) - m);
  return sqrt(v / (n - 1));
}

// The noise restart touches exactly the env slots whose episodes ended, in runs of neighbours
// (copied together), apart, at either end, and through a permuted stream mapping.
static void test_noise_restart_envs(void) {
  tdm_sac_cfg c = small_cfg();
  c.noise_corr = 0.9f;
  static const int32_t reversed[7] = {6, 5, 4, 3, 2, 1, 0}, shuffled[7] = {3, 0, 6, 1, 5, 2, 4};
  static const struct {
    const char *ended;
    const int32_t *stream;
  } cases[] = {{"1101110", NULL},     {"0010001", NULL},    {"1000000", NULL},
               {"1111111", NULL},     {"0000000", NULL},    {"1110010", reversed},
               {"0110110", shuffled}, {"1001001", shuffled}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *why = noise_restart_check(cpu(), c, cases[k].ended, cases[k].stream);
    CHECKF(!why, "case %zu: %s", k, why);
  }
}

static void test_correlated_noise(void) {
  tdm_dev *d = cpu();
  enum { N = 64, A = 2, T = 600 };
  tdm_agent_dims dims = {3, A, N};
  float obs[N * 3], act[N * A];
  for (int i = 0; i < N * 3; i++) obs[i] = 0.1f * (float)(i % 3) - 0.1f;  // every env the same
  static double series[2][T];
  double first[2], later[2];
  const float rhos[2] = {0.0f, 0.99f};
  for (int k = 0; k < 2; k++) {
    tdm_sac_cfg c = small_cfg();
    c.noise_corr = rhos[k];
    tdm_agent *a;
    CHECK_OK(tdm_sac_create(d, &c, &dims, 5, &a));  // the same networks for both
    for (int t = 0; t < T; t++) {
      CHECK_OK(tdm_agent_act(a, obs, N, true, act));
      series[k][t] = atanh((double)act[0]);
      if (t == 0) first[k] = spread(act, N * A);
      if (t == T - 1) later[k] = spread(act, N * A);
    }
    tdm_agent_destroy(a);
  }
  double r0 = lag1_corr(series[0], T), r1 = lag1_corr(series[1], T);
  CHECKF(fabs(r0) < 0.15 && r1 > 0.9, "lag-1 correlation %.3f (rho 0), %.3f (rho 0.99)", r0, r1);
  CHECKF(first[1] > 0.75 * first[0] && first[1] < 1.33 * first[0] && later[1] > 0.75 * later[0] &&
             later[1] < 1.33 * later[0],
         "spread over envs: first act %.3f vs %.3f, last %.3f vs %.3f", first[1], first[0],
         later[1], later[0]);
  // every episode restarts the noise: with each env step terminal it is independent from step to
  // step again; model rollouts (synthetic transitions) end no episode of the env
  for (int synthetic = 0; synthetic < 2; synthetic++) {
    tdm_sac_cfg c1 = small_cfg();
    c1.noise_corr = 0.99f;
    tdm_agent_dims d1 = {3, A, 1};
    tdm_agent *a;
    CHECK_OK(tdm_sac_create(d, &c1, &d1, 5, &a));
    float o1[3] = {0.1f, -0.2f, 0.3f}, a1[A], r1 = 0;
    uint8_t te = 1, tr = 0;
    for (int t = 0; t < T; t++) {
      CHECK_OK(tdm_agent_act(a, o1, 1, true, a1));
      series[0][t] = atanh((double)a1[0]);
      tdm_transition_batch b = {
          1, o1, a1, &r1, o1, &te, &tr, NULL, synthetic ? TDM_SRC_SYNTHETIC : TDM_SRC_REAL};
      CHECK_OK(tdm_agent_observe(a, &b));
    }
    tdm_agent_destroy(a);
    double r = lag1_corr(series[0], T);
    CHECKF(synthetic ? r > 0.9 : fabs(r) < 0.15,
           "lag-1 correlation %.3f with every %s transition terminal", r,
           synthetic ? "synthetic" : "env");
  }
  // checkpoint: the noise state travels, so a reader continues with the same actions; an agent
  // without correlated noise refuses the section (and the reverse)
  tdm_sac_cfg c = small_cfg();
  c.noise_corr = 0.9f;
  tdm_agent *x, *y, *w;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 8, &x));
  CHECK_OK(tdm_sac_create(d, &c, &dims, 9, &y));
  for (int t = 0; t < 5; t++) CHECK_OK(tdm_agent_act(x, obs, N, true, act));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_agent_write(x, f, false));
  rewind(f);
  CHECK_OK(tdm_agent_read(y, f, false, "ckpt"));
  float ay[N * A];
  for (int t = 0; t < 3; t++) {
    CHECK_OK(tdm_agent_act(x, obs, N, true, act));
    CHECK_OK(tdm_agent_act(y, obs, N, true, ay));
    CHECK(!memcmp(act, ay, sizeof act));
  }
  tdm_sac_cfg c0 = small_cfg();
  CHECK_OK(tdm_sac_create(d, &c0, &dims, 9, &w));
  rewind(f);
  tdm_status st = tdm_agent_read(w, f, false, "ckpt");
  CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), "noise_corr"), "%s", tdm_errmsg());
  fclose(f);
  f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_agent_write(w, f, false));
  rewind(f);
  st = tdm_agent_read(x, f, false, "ckpt");
  CHECKF(st == TDM_ERR_FORMAT && strstr(tdm_errmsg(), "without correlated"), "%s", tdm_errmsg());
  fclose(f);
  c.noise_corr = 1.0f;
  tdm_agent *bad = NULL;
  CHECK(tdm_sac_create(d, &c, &dims, 1, &bad) == TDM_ERR_CONFIG && !bad);
  tdm_agent_destroy(w);
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// One-step episodes with reward -(a - 0.5)^2: the deterministic action must approach 0.5.
static void test_toy_learns_target_action(void) {
  tdm_dev *d = cpu();
  tdm_sac_cfg c = tdm_sac_defaults();
  c.hidden = 32;
  c.batch_size = 64;
  c.buffer_size = 5000;
  c.lr = 3e-3f;
  tdm_agent_dims dims = {2, 1, 4};
  tdm_agent *a;
  CHECK_OK(tdm_sac_create(d, &c, &dims, 3, &a));
  tdm_rng g;
  tdm_rng_init(&g, 3, 9);
  float obs[8], nobs[8] = {0}, act[4], rew[4];
  uint8_t te[4] = {1, 1, 1, 1};
  tdm_agent_stats s;
  for (int step = 0; step < 1500; step++) {
    for (int i = 0; i < 8; i++) obs[i] = 2.0f * tdm_rng_uniform(&g) - 1.0f;
    if (step < 25) {
      for (int i = 0; i < 4; i++) act[i] = 2.0f * tdm_rng_uniform(&g) - 1.0f;
    } else {
      CHECK_OK(tdm_agent_act(a, obs, 4, true, act));
    }
    for (int i = 0; i < 4; i++) rew[i] = -(act[i] - 0.5f) * (act[i] - 0.5f);
    tdm_transition_batch b = {4, obs, act, rew, nobs, te, NULL, NULL, TDM_SRC_REAL};
    CHECK_OK(tdm_agent_observe(a, &b));
    if (step >= 25) CHECK_OK(tdm_agent_update(a, 2, NULL));
  }
  CHECK_OK(tdm_agent_update(a, 1, &s));
  CHECK_OK(tdm_agent_act(a, obs, 4, false, act));
  for (int i = 0; i < 4; i++)
    CHECKF(fabsf(act[i] - 0.5f) < 0.1f,
           "deterministic action %g (obs %g %g), expected 0.5; "
           "critic loss %g alpha %g entropy %g",
           act[i], obs[2 * i], obs[2 * i + 1], s.critic_loss, s.alpha, s.entropy);
  CHECK(isfinite(s.critic_loss) && s.q_mean < 0.0f && s.q_mean > -0.5f);
  tdm_agent_destroy(a);
}

int main(void) {
  TDM_RUN(test_replay_wraparound);
  TDM_RUN(test_replay_sample_and_gather);
  TDM_RUN(test_replay_sequences_stay_in_episodes);
  TDM_RUN(test_replay_capacity_refused);
  TDM_RUN(test_replay_save_load);
  TDM_RUN(test_squash_logprob_vs_float64);
  TDM_RUN(test_squash_gradient_finite_differences);
  TDM_RUN(test_agent_registry);
  TDM_RUN(test_critic_loss_vs_float64);
  TDM_RUN(test_temperature_direction);
  TDM_RUN(test_policy_delay_and_target_interval);
  TDM_RUN(test_determinism);
  TDM_RUN(test_stacked_actor_same_updates);
  TDM_RUN(test_lane_call_order);
  TDM_RUN(test_graph_streams_same_updates);
  TDM_RUN(test_checkpoint_resume_exact);
  TDM_RUN(test_correlated_noise);
  TDM_RUN(test_noise_restart_envs);
  TDM_RUN(test_toy_learns_target_action);
  return tdm_test_end();
}
