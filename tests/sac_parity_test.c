// GPU against CPU for the replay buffer and SAC: every fused SAC kernel on random inputs, replay
// sampling and gathers, SAC parameters after a few updates from the same seed and transitions,
// the CUDA-graph update and act against the plain ones, and GPU checkpoints read on the CPU. SKIPs
// without a GPU.
#include "../src/agents/sac_ops.h"
#include "sac_side.h"

// device copy of n host floats (freed by the caller with tdm_dev_free)
static float *up(tdm_dev *g, const float *h, size_t n) {
  void *p = NULL;
  if (tdm_dev_alloc(g, n * 4 + 4, &p) != TDM_OK) return NULL;
  if (h && tdm_dev_h2d(g, p, h, n * 4) != TDM_OK) return NULL;
  if (!h && tdm_dev_memset(g, p, 0, n * 4 + 4) != TDM_OK) return NULL;
  return p;
}

static void test_sac_kernels_parity(void) {
  NEED_GPU(g);
  tdm_dev *c = cpu();
  enum { B = 300, A = 6, O = 17 };
  static float head[B * 2 * A], eps[B * A], obs[B * O], act[B * A], dact[B * (O + A)], dlogp[B],
      q[2 * B], y[B], rew[B], term[B], la[1] = {-0.7f};
  tdm_t_rand(head, B * 2 * A, -3.0f, 2.5f, 1);
  tdm_t_rand(eps, B * A, -2.5f, 2.5f, 2);
  tdm_t_rand(obs, B * O, -1.0f, 1.0f, 3);
  tdm_t_rand(act, B * A, -1.0f, 1.0f, 4);
  tdm_t_rand(dact, B * (O + A), -1.0f, 1.0f, 5);
  tdm_t_rand(dlogp, B, 0.0f, 0.1f, 6);
  tdm_t_rand(q, 2 * B, -5.0f, 5.0f, 7);
  tdm_t_rand(y, B, -5.0f, 5.0f, 8);
  tdm_t_rand(rew, B, -1.0f, 1.0f, 9);
  for (int b = 0; b < B; b++) term[b] = (b % 7 == 0) ? 1.0f : 0.0f;
  head[5] = 3.0f;  // some log_std outside [-5, 2]
  head[2 * A + 8] = -9.0f;
  const float lo = -5.0f, hi = 2.0f;
  float *d_head = up(g, head, B * 2 * A), *d_eps = up(g, eps, B * A), *d_obs = up(g, obs, B * O);
  float *d_act = up(g, act, B * A), *d_dact = up(g, dact, B * (O + A)), *d_dlogp = up(g, dlogp, B);
  float *d_q = up(g, q, 2 * B), *d_y = up(g, y, B), *d_rew = up(g, rew, B);
  float *d_term = up(g, term, B), *d_la = up(g, la, 1);
  float *d_o1 = up(g, NULL, B * (O + A)), *d_o2 = up(g, NULL, 2 * B * A),
        *d_o3 = up(g, NULL, 2 * B), *d_st = up(g, NULL, 8);
  CHECK(d_head && d_eps && d_obs && d_act && d_dact && d_dlogp && d_q && d_y && d_rew && d_term &&
        d_la && d_o1 && d_o2 && d_o3 && d_st);
  static float h1[B * (O + A)], h2[2 * B * A], h3[2 * B], st[8], r1[B * (O + A)], r2[2 * B * A],
      r3[2 * B], rst[8];

  // concat
  CHECK_OK(tdm_sac_concat(g, d_obs, O, d_dact + 3, A, O + A, d_o1, B));
  CHECK_OK(tdm_sac_concat(c, obs, O, dact + 3, A, O + A, r1, B));
  CHECK_OK(down(g, h1, d_o1, B * (O + A)));
  CHECK(!memcmp(h1, r1, sizeof(float) * B * (O + A)));
  // squash forward, sampled and deterministic
  for (int det = 0; det < 2; det++) {
    CHECK_OK(tdm_sac_squash_fwd(g, d_head, det ? NULL : d_eps, d_o2, d_o3, B, A, lo, hi));
    CHECK_OK(tdm_sac_squash_fwd(c, head, det ? NULL : eps, r2, r3, B, A, lo, hi));
    CHECK_OK(down(g, h2, d_o2, B * A));
    CHECK_OK(down(g, h3, d_o3, B));
    double e1 = tdm_t_relerr(h2, r2, B * A), e2 = tdm_t_relerr(h3, r3, B);
    CHECKF(e1 < 1e-5 && e2 < 1e-5, "squash_fwd det %d: act %g logp %g", det, e1, e2);
  }
  // squash backward from the sampled forward (r2 holds the CPU actions of the last, det, pass)
  CHECK_OK(tdm_sac_squash_fwd(c, head, eps, r2, r3, B, A, lo, hi));
  CHECK_OK(tdm_sac_squash_fwd(g, d_head, d_eps, d_act, d_o3, B, A, lo, hi));
  CHECK_OK(
      tdm_sac_squash_bwd(g, d_head, d_eps, d_act, d_dact + O, O + A, d_dlogp, d_o2, B, A, lo, hi));
  static float ract[B * A];
  memcpy(ract, r2, sizeof ract);
  CHECK_OK(tdm_sac_squash_bwd(c, head, eps, ract, dact + O, O + A, dlogp, r2, B, A, lo, hi));
  CHECK_OK(down(g, h2, d_o2, 2 * B * A));
  CHECKF(tdm_t_relerr(h2, r2, 2 * B * A) < 1e-5, "squash_bwd %g", tdm_t_relerr(h2, r2, 2 * B * A));
  // target
  CHECK_OK(tdm_sac_target(g, d_q, d_dlogp, d_rew, d_term, d_la, 0.99f, d_o3, B));
  CHECK_OK(tdm_sac_target(c, q, dlogp, rew, term, la, 0.99f, r3, B));
  CHECK_OK(down(g, h3, d_o3, B));
  CHECKF(tdm_t_relerr(h3, r3, B) < 1e-6, "target %g", tdm_t_relerr(h3, r3, B));
  // critic loss
  CHECK_OK(tdm_sac_critic_loss(g, d_q, d_y, d_la, d_o3, d_st, B));
  CHECK_OK(tdm_sac_critic_loss(c, q, y, la, r3, rst, B));
  CHECK_OK(down(g, h3, d_o3, 2 * B));
  CHECK_OK(down(g, st, d_st, TDM_SAC_ST_N));
  CHECK(tdm_t_relerr(h3, r3, 2 * B) < 1e-6);
  for (int k = 0; k < 5; k++)
    if (k != TDM_SAC_ST_ACTOR && k != TDM_SAC_ST_ENTROPY)
      CHECKF(fabsf(st[k] - rst[k]) <= 1e-5f * fmaxf(1.0f, fabsf(rst[k])), "stat %d: %g vs %g", k,
             st[k], rst[k]);
  // actor loss
  float *d_g = d_st + 6, hg, rg;
  CHECK_OK(tdm_sac_actor_loss(g, d_q, d_dlogp, d_la, -6.0f, d_o3, d_o2, d_g, d_st, B));
  CHECK_OK(tdm_sac_actor_loss(c, q, dlogp, la, -6.0f, r3, r2, &rg, rst, B));
  CHECK_OK(down(g, h3, d_o3, 2 * B));
  CHECK_OK(down(g, h2, d_o2, B));
  CHECK_OK(down(g, st, d_st, TDM_SAC_ST_N));
  CHECK_OK(down(g, &hg, d_g, 1));
  CHECK(!memcmp(h3, r3, sizeof(float) * 2 * B));
  CHECK(tdm_t_relerr(h2, r2, B) < 1e-6 && fabsf(hg - rg) < 1e-5f);
  CHECK(fabsf(st[TDM_SAC_ST_ACTOR] - rst[TDM_SAC_ST_ACTOR]) < 1e-5f * fmaxf(1, fabsf(rst[1])));
  CHECK(fabsf(st[TDM_SAC_ST_ENTROPY] - rst[TDM_SAC_ST_ENTROPY]) < 1e-5f);
  float *all[] = {d_head, d_eps,  d_obs, d_act, d_dact, d_dlogp, d_q, d_y,
                  d_rew,  d_term, d_la,  d_o1,  d_o2,   d_o3,    d_st};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tdm_dev_free(g, all[i]);
}

static tdm_sac_cfg parity_cfg(void) {
  tdm_sac_cfg c = tdm_sac_defaults();
  c.hidden = 64;
  c.batch_size = 128;
  c.buffer_size = 4000;
  c.policy_delay = 2;
  return c;
}

static void test_replay_parity(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  c.max_seq_rows = 400;
  tdm_agent_dims dims = {5, 3, 4};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 3, &x));
  CHECK_OK(tdm_sac_create(g, &c, &dims, 3, &y));
  CHECK_OK(feed2(x, y, 1100, 4));  // 4400 transitions into 4000 rows: wrapped
  tdm_replay *rc = tdm_sac_replay(x), *rg = tdm_sac_replay(y);
  tdm_replay_batch bc, bg;
  CHECK_OK(tdm_replay_batch_create(rc, 400, &bc));
  CHECK_OK(tdm_replay_batch_create(rg, 400, &bg));
  tdm_rng_ctr hc = {5, 3};
  tdm_rng_ctr *dc = (tdm_rng_ctr *)up(g, NULL, 4);
  CHECK(dc);
  CHECK_OK(tdm_dev_h2d(g, dc, &hc, sizeof hc));
  CHECK_OK(tdm_replay_sample(rc, &bc, 400, &hc, 1));
  CHECK_OK(tdm_replay_sample(rg, &bg, 400, dc, 1));
  static float h[400 * 5];
  static int32_t idx[400];
  CHECK_OK(tdm_dev_d2h(g, idx, bg.idx, sizeof idx));
  CHECK_OK(down(g, h, bg.obs, 400 * 5));
  CHECK(!memcmp(idx, bc.idx, sizeof idx));
  CHECK(!memcmp(h, bc.obs, sizeof h));
  tdm_rng h1, h2;
  tdm_rng_init(&h1, 8, 0);
  tdm_rng_init(&h2, 8, 0);
  CHECK_OK(tdm_replay_sample_seq(rc, &bc, 4, 100, &h1));
  CHECK_OK(tdm_replay_sample_seq(rg, &bg, 4, 100, &h2));
  CHECK_OK(down(g, h, bg.next_obs, 400 * 5));
  CHECK(!memcmp(h, bc.next_obs, sizeof h));
  tdm_dev_free(g, dc);
  tdm_replay_batch_destroy(rc, &bc);
  tdm_replay_batch_destroy(rg, &bg);
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// The fused GPU sample (draws + gather in one launch) equals tdm_fill_randint followed by
// tdm_replay_gather bit for bit: indices and every gathered array, a row count not a multiple of
// four, a wrapped buffer.
static void test_replay_sample_fused(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  tdm_agent_dims dims = {5, 3, 4};
  tdm_agent *y;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 3, &y));
  CHECK_OK(feed2(y, NULL, 1100, 5));
  tdm_replay *r = tdm_sac_replay(y);
  enum { R = 203 };
  tdm_replay_batch b1, b2;
  CHECK_OK(tdm_replay_batch_create(r, R, &b1));
  CHECK_OK(tdm_replay_batch_create(r, R, &b2));
  tdm_rng_ctr hc = {77, 12};
  tdm_rng_ctr *dc = (tdm_rng_ctr *)up(g, NULL, 4);
  int32_t *size_dev = (int32_t *)up(g, NULL, 1);
  int32_t size = (int32_t)tdm_replay_size(r);
  CHECK(dc && size_dev && size == 4000);
  CHECK_OK(tdm_dev_h2d(g, dc, &hc, sizeof hc));
  CHECK_OK(tdm_dev_h2d(g, size_dev, &size, 4));
  CHECK_OK(tdm_replay_sample(r, &b1, R, dc, 2));
  CHECK_OK(tdm_fill_randint(g, b2.idx, R, size_dev, dc, 2));
  CHECK_OK(tdm_replay_gather(r, &b2, R));
  static int32_t i1[R], i2[R];
  CHECK_OK(tdm_dev_d2h(g, i1, b1.idx, sizeof i1));
  CHECK_OK(tdm_dev_d2h(g, i2, b2.idx, sizeof i2));
  CHECK_OK(tdm_dev_sync(g));
  CHECK(!memcmp(i1, i2, sizeof i1));
  int distinct = 0;
  for (int i = 1; i < R; i++) distinct += i1[i] != i1[0];
  CHECK(distinct > R / 2);
  const float *a1[6] = {b1.obs, b1.act, b1.reward, b1.next_obs, b1.terminated, b1.source};
  const float *a2[6] = {b2.obs, b2.act, b2.reward, b2.next_obs, b2.terminated, b2.source};
  const int w[6] = {5, 3, 1, 5, 1, 1};
  static float h1[R * 5], h2[R * 5];
  for (int k = 0; k < 6; k++) {
    CHECK_OK(down(g, h1, a1[k], (size_t)R * w[k]));
    CHECK_OK(down(g, h2, a2[k], (size_t)R * w[k]));
    CHECKF(!memcmp(h1, h2, (size_t)R * w[k] * 4), "array %d differs", k);
  }
  tdm_dev_free(g, dc);
  tdm_dev_free(g, size_dev);
  tdm_replay_batch_destroy(r, &b1);
  tdm_replay_batch_destroy(r, &b2);
  tdm_agent_destroy(y);
}

// The GPU agent's update (the fused kernel, the default, then the graph of ops) against the CPU
// agent: parameters, temperature, losses and actions after 4 updates on the same transitions.
static void test_sac_update_parity(void) {
  NEED_GPU(g);
  for (int fused = 1; fused >= 0; fused--) {
    tdm_sac_cfg c = parity_cfg();
    c.fused_update = fused;  // use_graph defaults to true
    tdm_agent_dims dims = {17, 6, 2};
    tdm_agent *x, *y;
    CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 9, &x));
    CHECK_OK(tdm_sac_create(g, &c, &dims, 9, &y));
    CHECKF(tdm_sac_fused_active(y) == (fused == 1), "fused_update %d: fused active %d", fused,
           tdm_sac_fused_active(y));
    CHECK_OK(feed2(x, y, 300, 6));
    tdm_agent_stats sx, sy;
    CHECK_OK(tdm_agent_update(x, 4, &sx));
    CHECK_OK(tdm_agent_update(y, 4, &sy));
    double ea = arr_err(tdm_sac_actor(y), tdm_sac_actor(x), 0);
    double ec = arr_err(tdm_sac_critic(y), tdm_sac_critic(x), 0);
    double et = arr_err(tdm_sac_critic_target(y), tdm_sac_critic_target(x), 0);
    CHECKF(ea < 1e-4 && ec < 1e-4 && et < 1e-4, "fused %d: actor %g critic %g target %g", fused, ea,
           ec, et);
    float lag;
    CHECK_OK(down(g, &lag, tdm_sac_log_alpha(y), 1));
    CHECKF(fabsf(lag - *tdm_sac_log_alpha(x)) < 1e-5f, "fused %d: log_alpha %g vs %g", fused, lag,
           *tdm_sac_log_alpha(x));
    CHECKF(fabsf(sx.critic_loss - sy.critic_loss) < 1e-3f * fmaxf(1, fabsf(sx.critic_loss)),
           "fused %d: critic loss %g vs %g", fused, sx.critic_loss, sy.critic_loss);
    CHECK(fabsf(sx.actor_loss - sy.actor_loss) < 1e-3f * fmaxf(1, fabsf(sx.actor_loss)));
    // actions: deterministic and sampled (same Philox noise)
    float o[2 * 17], ax[12], ay[12];
    tdm_t_rand(o, 34, -1, 1, 3);
    for (int explore = 0; explore < 2; explore++) {
      CHECK_OK(tdm_agent_act(x, o, 2, explore, ax));
      CHECK_OK(tdm_agent_act(y, o, 2, explore, ay));
      CHECKF(tdm_t_relerr(ay, ax, 12) < 1e-4, "fused %d: act explore %d: %g", fused, explore,
             tdm_t_relerr(ay, ax, 12));
    }
    tdm_agent_destroy(x);
    tdm_agent_destroy(y);
  }
}

// agent.noise_corr on the GPU (the fused act on sm_90, else the op path): its AR(1) noise, first
// state included, follows the CPU agent's: the full-batch act as a graph, one row plainly, after
// episode ends (the state's restart) and after a checkpoint round trip through the CPU agent.
static void test_correlated_noise_parity(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  c.noise_corr = 0.95f;
  tdm_agent_dims dims = {17, 6, 2};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 19, &x));
  CHECK_OK(tdm_sac_create(g, &c, &dims, 19, &y));
  tdm_gpu_info info;
  CHECK_OK(tdm_gpu_info_get(g->ordinal, &info));
  CHECK(tdm_sac_fused_act_active(y, 2) == (info.cc_major >= 9));
  float o[2 * 17], ax[12], ay[12];
  for (int call = 0; call < 8; call++) {
    const int n = call < 6 ? 2 : 1;
    tdm_t_rand(o, 34, -1, 1, 40 + call);
    if (call == 2 || call == 6) {  // env 1's episode ends (then env 0's): its noise restarts
      float r2[2] = {0.5f, -0.5f};
      uint8_t te[2] = {0, 0}, tr[2] = {0, 0};
      if (call == 2)
        te[1] = 1;
      else
        tr[0] = 1;
      tdm_transition_batch b = {2, o, ax, r2, o, te, tr, NULL, TDM_SRC_REAL};
      CHECK_OK(tdm_agent_observe(x, &b));
      CHECK_OK(tdm_agent_observe(y, &b));
    }
    if (call == 4) {  // the GPU agent's state into the CPU agent and back: the acts go on alike
      FILE *f = tmpfile();
      CHECK(f);
      CHECK_OK(tdm_agent_write(y, f, false));
      rewind(f);
      CHECK_OK(tdm_agent_read(x, f, false, "gpu ckpt"));
      rewind(f);
      CHECK_OK(tdm_agent_write(x, f, false));
      rewind(f);
      CHECK_OK(tdm_agent_read(y, f, false, "cpu ckpt"));
      fclose(f);
    }
    CHECK_OK(tdm_agent_act(x, o, n, true, ax));
    CHECK_OK(tdm_agent_act(y, o, n, true, ay));
    double e = tdm_t_relerr(ay, ax, (size_t)n * 6);
    CHECKF(e < 1e-4, "call %d (%d rows): GPU vs CPU act with noise_corr %g", call, n, e);
  }
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// The noise restart on the GPU, with the fused act (sm_90) and with the graph of ops: exactly the
// ended envs restart (tests/sac_side.h), in runs of neighbours and through a stream mapping.
static void test_noise_restart_envs_gpu(void) {
  NEED_GPU(g);
  static const int32_t shuffled[7] = {3, 0, 6, 1, 5, 2, 4};
  for (int fused = 0; fused < 2; fused++) {
    tdm_sac_cfg c = parity_cfg();
    c.noise_corr = 0.9f;
    c.fused_update = fused;
    const char *why = noise_restart_check(g, c, "1101110", NULL);
    CHECKF(!why, "fused %d: %s", fused, why);
    why = noise_restart_check(g, c, "0110110", shuffled);
    CHECKF(!why, "fused %d, shuffled: %s", fused, why);
  }
}

static void test_graph_equals_plain(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  c.target_update_interval = 3;  // three graph variants in play
  c.fused_update = false;  // the op graph: bitwise equal to plain launches (the fused kernel sums
                           // in another order; tests/sac_fused_test.c covers it)
  tdm_agent_dims dims = {17, 6, 2};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 13, &x));
  c.use_graph = false;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 13, &y));
  CHECK_OK(feed2(x, y, 300, 7));
  for (int k = 0; k < 3; k++) {
    CHECK_OK(tdm_agent_update(x, 5, NULL));
    CHECK_OK(tdm_agent_update(y, 5, NULL));
    CHECK_OK(feed2(x, y, 3, 20 + k));  // the graph must see the new size
  }
  // act on num_envs rows replays a graph on x, launches plainly on y: same actions
  float o[2 * 17], ax[12], ay[12];
  tdm_t_rand(o, 34, -1, 1, 5);
  for (int k = 0; k < 3; k++) {
    bool explore = k != 1;
    CHECK_OK(tdm_agent_act(x, o, 2, explore, ax));
    CHECK_OK(tdm_agent_act(y, o, 2, explore, ay));
    CHECKF(!memcmp(ax, ay, sizeof ax), "act %d (explore %d): graph and plain differ", k, explore);
  }
  CHECK_OK(tdm_agent_act(x, o, 1, true, ax));  // another size: plain on both
  CHECK_OK(tdm_agent_act(y, o, 1, true, ay));
  CHECK(!memcmp(ax, ay, 6 * sizeof(float)));
  tdm_mlp *mx[3] = {tdm_sac_actor(x), tdm_sac_critic(x), tdm_sac_critic_target(x)};
  tdm_mlp *my[3] = {tdm_sac_actor(y), tdm_sac_critic(y), tdm_sac_critic_target(y)};
  for (int i = 0; i < 3; i++) {
    size_t n = mx[i]->n_params;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    CHECK(a && b);
    CHECK_OK(down(g, a, mx[i]->params, n));
    CHECK_OK(down(g, b, my[i]->params, n));
    int same = !memcmp(a, b, n * 4);
    double e = tdm_t_relerr(a, b, n);
    free(a);
    free(b);
    CHECKF(same, "network %d: graph and plain updates differ (relative %g)", i, e);
  }
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// bitwise equality of parameters, Adam moments and log_alpha of two GPU agents
static bool gpu_same(tdm_dev *g, tdm_agent *x, tdm_agent *y, char *why, size_t nwhy) {
  tdm_mlp *mx[3] = {tdm_sac_actor(x), tdm_sac_critic(x), tdm_sac_critic_target(x)};
  tdm_mlp *my[3] = {tdm_sac_actor(y), tdm_sac_critic(y), tdm_sac_critic_target(y)};
  bool same = true;
  for (int i = 0; i < 3 && same; i++) {
    size_t n = mx[i]->n_params;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    const float *px[3] = {mx[i]->params, mx[i]->adam_m, mx[i]->adam_v};
    const float *py[3] = {my[i]->params, my[i]->adam_m, my[i]->adam_v};
    for (int k = 0; k < 3 && same; k++) {
      same = a && b && down(g, a, px[k], n) == TDM_OK && down(g, b, py[k], n) == TDM_OK &&
             !memcmp(a, b, n * 4);
      if (!same)
        snprintf(why, nwhy, "network %d array %d (relative %g)", i, k,
                 a && b ? tdm_t_relerr(a, b, n) : -1.0);
    }
    free(a);
    free(b);
  }
  float la[2] = {0, 0};
  if (same && (down(g, la, tdm_sac_log_alpha(x), 1) != TDM_OK ||
               down(g, la + 1, tdm_sac_log_alpha(y), 1) != TDM_OK || la[0] != la[1])) {
    same = false;
    snprintf(why, nwhy, "log_alpha %g vs %g", la[0], la[1]);
  }
  return same;
}

// The forked update (graph_streams = 2: parallel graph branches, or a second stream when launched
// plainly) gives bit for bit the parameters of the one-stream update, stacked actor or not.
static void test_streams_equal_one_stream(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  c.target_update_interval = 3;
  c.fused_update = false;  // the op graph's streams (the fused kernel is one launch, not bitwise
                           // equal to the op path; tests/sac_fused_test.c covers it)
  tdm_agent_dims dims = {17, 6, 2};
  for (int stacked = 0; stacked < 2; stacked++) {
    tdm_agent *x, *y, *z;
    c.graph_streams = 2;  // graph, forked
    CHECK_OK(tdm_sac_create(g, &c, &dims, 21, &x));
    c.graph_streams = 1;  // graph, one stream
    CHECK_OK(tdm_sac_create(g, &c, &dims, 21, &y));
    c.graph_streams = 2;  // plain launches on two streams
    c.use_graph = false;
    CHECK_OK(tdm_sac_create(g, &c, &dims, 21, &z));
    c.use_graph = true;
    tdm_agent *all[3] = {x, y, z};
    for (int i = 0; i < 3; i++) CHECK_OK(tdm_sac_set_stacked_actor(all[i], stacked));
    CHECK_OK(feed2(x, y, 300, 9));
    CHECK_OK(feed2(z, NULL, 300, 9));
    tdm_agent_stats st[3];
    for (int k = 0; k < 3; k++) {
      for (int i = 0; i < 3; i++) CHECK_OK(tdm_agent_update(all[i], 4, &st[i]));
      CHECK_OK(feed2(x, y, 2, 30 + k));
      CHECK_OK(feed2(z, NULL, 2, 30 + k));
    }
    char why[160] = "";
    CHECKF(gpu_same(g, x, y, why, sizeof why), "stacked %d, forked graph vs one stream: %s",
           stacked, why);
    CHECKF(gpu_same(g, z, y, why, sizeof why), "stacked %d, forked plain vs one stream: %s",
           stacked, why);
    CHECK(st[0].critic_loss == st[1].critic_loss && st[0].actor_loss == st[1].actor_loss);
    CHECK(st[2].critic_loss == st[1].critic_loss && st[2].q_mean == st[1].q_mean);
    for (int i = 0; i < 3; i++) tdm_agent_destroy(all[i]);
  }
}

// A lane runs a GEMM beside the main stream with its own handle: the same bits as on the main
// stream, and a join orders the lane's result before the main stream's next reader.
static void test_lane_gemm(void) {
  NEED_GPU(g);
  enum { M = 64, N = 96, K = 80 };
  static float ha[M * K], hb[N * K], h0[M * N], h1[M * N];
  tdm_t_rand(ha, M * K, -1, 1, 31);
  tdm_t_rand(hb, N * K, -1, 1, 32);
  float *a = up(g, ha, M * K), *b = up(g, hb, N * K), *c0 = up(g, NULL, M * N),
        *c1 = up(g, NULL, M * N), *c2 = up(g, NULL, M * N);
  CHECK(a && b && c0 && c1 && c2);
  tdm_dev_lane *l = NULL;
  CHECK_OK(tdm_dev_lane_create(g, &l));
  void *main_stream = g->stream;
  CHECK_OK(tdm_gemm(g, TDM_NOTRANS, TDM_TRANS, M, N, K, 1.0f, a, K, b, K, 0.0f, c0, N));
  CHECK_OK(tdm_dev_fork(g, l));
  CHECK(g->stream != main_stream);
  CHECK_OK(tdm_gemm(g, TDM_NOTRANS, TDM_TRANS, M, N, K, 1.0f, a, K, b, K, 0.0f, c1, N));
  CHECK_OK(tdm_dev_back(g, l));
  CHECK(g->stream == main_stream);
  CHECK_OK(tdm_dev_memset(g, c2, 0, M * N * 4));
  CHECK_OK(tdm_dev_join(g, l));
  CHECK_OK(tdm_dev_d2d(g, c2, c1, M * N * 4));  // after the join: reads the lane's result
  CHECK_OK(down(g, h0, c0, M * N));
  CHECK_OK(down(g, h1, c2, M * N));
  CHECK(!memcmp(h0, h1, sizeof h0));
  tdm_dev_lane_destroy(l);
  float *all[] = {a, b, c0, c1, c2};
  for (int i = 0; i < 5; i++) tdm_dev_free(g, all[i]);
}

// A fork captured in a graph becomes a parallel branch: 6 kernels, 4 on the longest chain (main:
// fill, scale, scale, then after the join one more; lane: fill, scale), and replaying
// it computes what the plain sequence computes.
static void test_lane_in_graph(void) {
  NEED_GPU(g);
  enum { N = 1000 };
  float *x = up(g, NULL, N), *y = up(g, NULL, N);
  CHECK(x && y);
  tdm_dev_lane *l = NULL;
  CHECK_OK(tdm_dev_lane_create(g, &l));
  CHECK_OK(tdm_graph_begin(g));
  tdm_status st = tdm_fill(g, x, N, 1.0f);  // main: x = 1
  if (st == TDM_OK) st = tdm_dev_fork(g, l);
  if (st == TDM_OK) st = tdm_fill(g, y, N, 2.0f);  // lane: y = 2, y *= 3
  if (st == TDM_OK) st = tdm_scale(g, N, 3.0f, y);
  if (st == TDM_OK) st = tdm_dev_back(g, l);
  if (st == TDM_OK) st = tdm_scale(g, N, 5.0f, x);  // main: x *= 5, x *= 7
  if (st == TDM_OK) st = tdm_scale(g, N, 7.0f, x);
  if (st == TDM_OK) st = tdm_dev_join(g, l);
  if (st == TDM_OK) st = tdm_axpby(g, N, 1.0f, y, 1.0f, x);  // x = y + x after the join
  tdm_graph *gr = NULL;
  tdm_status st2 = tdm_graph_end(g, &gr);
  CHECK_OK(st);
  CHECK_OK(st2);
  int nodes = 0, kernels = 0, path = 0;
  CHECK_OK(tdm_graph_num_nodes(gr, &nodes, &kernels));
  CHECK_OK(tdm_graph_critical_path(gr, &path));
  CHECKF(kernels == 6 && path == 4, "%d nodes, %d kernels, longest chain %d", nodes, kernels, path);
  CHECK_OK(tdm_graph_launch(g, gr));
  static float h[N];
  CHECK_OK(down(g, h, x, N));
  int ok = 1;
  for (int i = 0; i < N; i++) ok &= h[i] == 41.0f;
  CHECKF(ok, "x[0] = %g, expected 41", h[0]);
  tdm_graph_destroy(gr);
  tdm_dev_lane_destroy(l);
  tdm_dev_free(g, x);
  tdm_dev_free(g, y);
}

static void test_gpu_checkpoint_on_cpu(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = parity_cfg();
  tdm_agent_dims dims = {17, 6, 2};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 17, &x));
  CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 18, &y));
  CHECK_OK(feed2(x, NULL, 200, 8));
  CHECK_OK(tdm_agent_update(x, 6, NULL));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_agent_write(x, f, true));
  rewind(f);
  CHECK_OK(tdm_agent_read(y, f, true, "gpu checkpoint"));
  fclose(f);
  CHECK(arr_err(tdm_sac_actor(x), tdm_sac_actor(y), 0) == 0.0);
  CHECK(arr_err(tdm_sac_critic(x), tdm_sac_critic(y), 0) == 0.0);
  CHECK(tdm_replay_size(tdm_sac_replay(y)) == 400 && y->n_updates == 6);
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

static void test_gpu_capacity_refused(void) {
  NEED_GPU(g);
  tdm_replay_cfg c = {4096, 4096, 2000000000, 1, 0, 0};
  tdm_replay *r = NULL;
  tdm_status st = tdm_replay_create(g, &c, &r);
  CHECKF(st == TDM_ERR_OOM && strstr(tdm_errmsg(), "bytes") && strstr(tdm_errmsg(), "device"),
         "%s: %s", tdm_status_name(st), tdm_errmsg());
}

int main(void) {
  TDM_RUN(test_sac_kernels_parity);
  TDM_RUN(test_replay_parity);
  TDM_RUN(test_replay_sample_fused);
  TDM_RUN(test_sac_update_parity);
  TDM_RUN(test_correlated_noise_parity);
  TDM_RUN(test_noise_restart_envs_gpu);
  TDM_RUN(test_graph_equals_plain);
  TDM_RUN(test_streams_equal_one_stream);
  TDM_RUN(test_lane_gemm);
  TDM_RUN(test_lane_in_graph);
  TDM_RUN(test_gpu_checkpoint_on_cpu);
  TDM_RUN(test_gpu_capacity_refused);
  return tdm_test_end();
}
