// Envs: Gymnasium-exact classic control against pinned trajectories, the vector env contract
// (seeds, masks, truncation, episode stats, threads), config handling, and the MuJoCo tasks
// (determinism, truncation, rewards recomputed from positions, state round trips, Jacobians,
// bad MJCF errors, instability recovery).
#include "tandem/env.h"

#include <libconfig.h>
#include <unistd.h>

#include "env_classic_ref.h"
#include "test.h"

// ---- helpers ----------------------------------------------------------------------------------

static config_t t_cfg;
static int t_cfg_live;

// Parse a libconfig string and return its root group (valid until the next call).
static const config_setting_t *cfg_of(const char *text) {
  if (t_cfg_live) config_destroy(&t_cfg);
  config_init(&t_cfg);
  t_cfg_live = 1;
  if (!config_read_string(&t_cfg, text)) {
    fprintf(stderr, "test config parse error line %d: %s\n", config_error_line(&t_cfg),
            config_error_text(&t_cfg));
    return NULL;
  }
  return config_root_setting(&t_cfg);
}

// Path of a built-in asset: ./assets or next to the test binary (BUILD/tests/../../assets).
static int asset_path(const char *file, char *out, size_t n) {
  snprintf(out, n, "assets/%s", file);
  if (access(out, R_OK) == 0) return 1;
  char exe[700];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) return 0;
  exe[len] = 0;
  char *slash = strrchr(exe, '/');
  if (slash) *slash = 0;
  snprintf(out, n, "%s/../../assets/%s", exe, file);
  return access(out, R_OK) == 0;
}

static int close_to(double got, double want, double tol) {
  return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

// ---- registry and config -----------------------------------------------------------------------

static void test_registry_and_unknown_task(void) {
  const char *const *names = tdm_env_names();
  int has_p = 0, has_mc = 0, n = 0;
  for (; names[n]; n++) {
    has_p |= !strcmp(names[n], "pendulum");
    has_mc |= !strcmp(names[n], "mountain_car");
  }
  CHECK(has_p && has_mc);
  tdm_env *e = NULL;
  CHECK(tdm_env_create("pendulm", 1, NULL, NULL, &e) == TDM_ERR_ARG);
  CHECK(e == NULL);
  CHECKF(strstr(tdm_errmsg(), "pendulm") && strstr(tdm_errmsg(), "pendulum") &&
             strstr(tdm_errmsg(), "mountain_car"),
         "message: %s", tdm_errmsg());
  CHECK(tdm_env_create("pendulum", 0, NULL, NULL, &e) == TDM_ERR_ARG);
#ifndef TDM_MUJOCO
  // a build without MuJoCo says so for the MuJoCo tasks
  CHECK(tdm_env_create("hopper", 1, NULL, NULL, &e) == TDM_ERR_UNSUPPORTED);
  CHECKF(strstr(tdm_errmsg(), "MuJoCo tasks are unavailable"), "message: %s", tdm_errmsg());
#endif
}

static void test_config_keys_and_errors(void) {
  tdm_env *e = NULL;
  const config_setting_t *c = cfg_of("task = \"pendulum\";\ng = 9.81;\nmax_episode_steps = 7;\n");
  CHECK(c);
  CHECK_OK(tdm_env_create(NULL, 2, c, NULL, &e));
  CHECK(tdm_env_get_spec(e)->max_episode_steps == 7);
  CHECK(!strcmp(tdm_env_get_spec(e)->name, "pendulum"));
  tdm_env_destroy(e);
  c = cfg_of("g = 9.81;\n\nmax_episode_stepz = 7;\n");
  CHECK(tdm_env_create("pendulum", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "max_episode_stepz") && strstr(tdm_errmsg(), "line 3"), "message: %s",
         tdm_errmsg());
  c = cfg_of("g = \"ten\";\n");
  CHECK(tdm_env_create("pendulum", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "g must be a number"), "message: %s", tdm_errmsg());
  c = cfg_of("max_episode_steps = 0;\n");
  CHECK(tdm_env_create("mountain_car", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  c = cfg_of("max_episode_steps = 1.5;\n");
  CHECK(tdm_env_create("mountain_car", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  c = cfg_of("max_episode_steps = 1e2;\ngoal_velocity = 0;\n");  // integral float, int float key
  CHECK_OK(tdm_env_create("mountain_car", 1, c, NULL, &e));
  CHECK(tdm_env_get_spec(e)->max_episode_steps == 100);
  tdm_env_destroy(e);
  c = cfg_of("task = \"pendulum\";\n");
  CHECK(tdm_env_create("mountain_car", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "contradicts"), "message: %s", tdm_errmsg());
}

// ---- classic control: pinned trajectories -------------------------------------------------------

static void run_pendulum(const double (*ref)[5], int steps, double th0, double thdot0,
                         int constant) {
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("pendulum", 1, NULL, NULL, &e));
  float obs[3], r;
  uint8_t te, tr;
  double s0[2] = {th0, thdot0};
  CHECK_OK(tdm_env_set_state(e, 0, s0, obs));
  CHECK(obs[0] == (float)cos(th0) && obs[1] == (float)sin(th0) && obs[2] == (float)thdot0);
  for (int k = 0; k < steps; k++) {
    float a = constant ? 1.2f : (float)(1.3 * sin(0.7 * k));
    CHECK_OK(tdm_env_step(e, &a, obs, &r, &te, &tr));
    for (int j = 0; j < 3; j++)
      CHECKF(close_to(obs[j], ref[k][j], 1e-6), "step %d obs[%d] %.9g want %.9g", k, j, obs[j],
             ref[k][j]);
    CHECKF(close_to(r, ref[k][3], 1e-6), "step %d reward %.9g want %.9g", k, r, ref[k][3]);
    CHECK(te == 0 && tr == 0);
  }
  tdm_env_destroy(e);
}

static void test_pendulum_pinned(void) {
  run_pendulum(pend_ref, (int)(sizeof pend_ref / sizeof pend_ref[0]), 2.9, -0.4, 0);
}

static void test_pendulum_speed_and_torque_clip(void) {
  run_pendulum(pend_ref_b, (int)(sizeof pend_ref_b / sizeof pend_ref_b[0]), -3.1, 7.5, 1);
}

static float mc_action(int k) {
  if (k < 25) return -1.5f;
  if (k < 60) return 1.25f;
  if (k < 95) return -1.0f;
  return (float)(0.9 + 0.3 * sin(0.1 * k));
}

static void test_mountain_car_pinned(void) {
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("mountain_car", 1, NULL, NULL, &e));
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  CHECK(sp->obs_dim == 2 && sp->act_dim == 1 && sp->max_episode_steps == 999);
  CHECK(sp->act_low[0] == -1.0f && sp->act_high[0] == 1.0f);
  float obs[2], r;
  uint8_t te, tr;
  double s0[2] = {-0.5234, 0.0};
  CHECK_OK(tdm_env_set_state(e, 0, s0, obs));
  const int n = (int)(sizeof mc_ref / sizeof mc_ref[0]);
  double ret = 0;
  for (int k = 0; k < n; k++) {
    float a = mc_action(k);
    CHECK_OK(tdm_env_step(e, &a, obs, &r, &te, &tr));
    ret += r;
    CHECKF(obs[0] == (float)mc_ref[k][0] && obs[1] == (float)mc_ref[k][1],
           "step %d obs (%.9g, %.9g) want (%.9g, %.9g)", k, obs[0], obs[1], mc_ref[k][0],
           mc_ref[k][1]);
    CHECKF(close_to(r, mc_ref[k][2], 1e-6), "step %d reward %.9g want %.9g", k, r, mc_ref[k][2]);
    CHECKF(te == (uint8_t)mc_ref[k][3] && tr == 0, "step %d flags %d %d", k, te, tr);
  }
  CHECK(te == 1);  // the sequence reaches the goal
  CHECK(tdm_env_episode_length(e)[0] == n);
  CHECK(close_to(tdm_env_episode_return(e)[0], ret, 1e-9));
  // stepping a finished instance without a reset is refused
  float a = 0.0f;
  CHECK(tdm_env_step(e, &a, obs, &r, &te, &tr) == TDM_ERR_ARG);
  uint8_t m = 1;
  CHECK_OK(tdm_env_reset(e, TDM_ENV_CONTINUE, &m, obs));
  CHECK(obs[0] >= -0.6f && obs[0] <= -0.4f && obs[1] == 0.0f);
  CHECK(tdm_env_episode_length(e)[0] == 0 && tdm_env_episode_return(e)[0] == 0.0);
  CHECK_OK(tdm_env_step(e, &a, obs, &r, &te, &tr));
  tdm_env_destroy(e);
}

static void test_classic_truncation_and_stats(void) {
  tdm_env *e = NULL;
  const int N = 3;
  CHECK_OK(tdm_env_create("pendulum", N, NULL, NULL, &e));
  CHECK(tdm_env_get_spec(e)->max_episode_steps == 200);
  float obs[9], act[3] = {0.1f, -0.5f, 1.0f}, r[3];
  uint8_t te[3], tr[3];
  double ret[3] = {0, 0, 0};
  CHECK_OK(tdm_env_reset(e, 5, NULL, obs));
  for (int k = 1; k <= 200; k++) {
    CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
    for (int i = 0; i < N; i++) {
      ret[i] += r[i];
      CHECK(te[i] == 0);
      CHECKF(tr[i] == (k == 200), "step %d truncated %d", k, tr[i]);
    }
  }
  for (int i = 0; i < N; i++) {
    CHECK(tdm_env_episode_length(e)[i] == 200);
    CHECK(close_to(tdm_env_episode_return(e)[i], ret[i], 1e-9));
  }
  tdm_env_destroy(e);
}

static void test_reset_seed_mask_threads(void) {
  const int N = 37;
  tdm_env *a = NULL, *b = NULL;
  tdm_pool *pool = NULL;
  CHECK_OK(tdm_pool_create(2, &pool));
  CHECK_OK(tdm_env_create("pendulum", N, NULL, NULL, &a));
  CHECK_OK(tdm_env_create("pendulum", N, NULL, pool, &b));
  float oa[N * 3], ob[N * 3], oc[N * 3];
  CHECK_OK(tdm_env_reset(a, 123, NULL, oa));
  CHECK_OK(tdm_env_reset(b, 123, NULL, ob));
  CHECK(!memcmp(oa, ob, sizeof oa));
  // reset distribution: theta in [-pi, pi), theta_dot in [-1, 1)
  for (int i = 0; i < N; i++) CHECK(fabsf(oa[3 * i + 2]) <= 1.0f);
  int differ = 0;
  for (int i = 1; i < N; i++) differ += oa[3 * i + 2] != oa[2];
  CHECK(differ == N - 1);
  CHECK_OK(tdm_env_reset(b, 124, NULL, oc));
  CHECK(memcmp(oa, oc, sizeof oa) != 0);
  // mask: only masked rows are rewritten
  uint8_t mask[N];
  for (int i = 0; i < N; i++) mask[i] = (uint8_t)(i % 3 == 0);
  memcpy(oc, oa, sizeof oa);
  CHECK_OK(tdm_env_reset(a, TDM_ENV_CONTINUE, mask, oc));
  for (int i = 0; i < N; i++) {
    int same = !memcmp(oc + 3 * i, oa + 3 * i, 3 * sizeof(float));
    CHECKF(mask[i] ? !same : same, "row %d mask %d same %d", i, mask[i], same);
  }
  // stepping on 1 or 2 threads gives the same numbers
  CHECK_OK(tdm_env_reset(a, 9, NULL, oa));
  CHECK_OK(tdm_env_reset(b, 9, NULL, ob));
  float act[N], ra[N], rb[N];
  uint8_t t1[N], t2[N], u1[N], u2[N];
  tdm_t_rand(act, N, -1, 1, 3);
  for (int k = 0; k < 20; k++) {
    CHECK_OK(tdm_env_step(a, act, oa, ra, t1, u1));
    CHECK_OK(tdm_env_step(b, act, ob, rb, t2, u2));
    CHECK(!memcmp(oa, ob, sizeof oa) && !memcmp(ra, rb, sizeof ra));
  }
  tdm_env_destroy(a);
  tdm_env_destroy(b);
  tdm_pool_destroy(pool);
}

// tdm_env_reset_each is the per-slot loop of tdm_env_reset calls (one-hot masks) in one pass: same
// observations, and the same streams afterwards (a further CONTINUE reset matches too).
static void test_reset_each_matches_per_slot_resets(void) {
  const int N = 11;
  tdm_env *a = NULL, *b = NULL;
  tdm_pool *pool = NULL;
  CHECK_OK(tdm_pool_create(2, &pool));
  CHECK_OK(tdm_env_create("pendulum", N, NULL, NULL, &a));
  CHECK_OK(tdm_env_create("pendulum", N, NULL, pool, &b));
  float oa[N * 3], ob[N * 3];
  CHECK_OK(tdm_env_reset(a, 5, NULL, oa));
  CHECK_OK(tdm_env_reset(b, 5, NULL, ob));
  uint8_t mask[N], one[N];
  uint64_t seeds[N];
  for (int i = 0; i < N; i++) {
    mask[i] = (uint8_t)(i % 4 != 1);
    seeds[i] = i % 4 == 3 ? TDM_ENV_CONTINUE : 1000 + 7 * (uint64_t)i;
  }
  for (int i = 0; i < N; i++) {
    if (!mask[i]) continue;
    memset(one, 0, sizeof one);
    one[i] = 1;
    CHECK_OK(tdm_env_reset(a, seeds[i], one, oa));
  }
  CHECK_OK(tdm_env_reset_each(b, seeds, mask, ob));
  CHECK(!memcmp(oa, ob, sizeof oa));
  CHECK_OK(tdm_env_reset(a, TDM_ENV_CONTINUE, NULL, oa));
  CHECK_OK(tdm_env_reset(b, TDM_ENV_CONTINUE, NULL, ob));
  CHECK(!memcmp(oa, ob, sizeof oa));
  CHECK(tdm_env_reset_each(b, NULL, mask, ob) == TDM_ERR_ARG);
  tdm_env_destroy(a);
  tdm_env_destroy(b);
  tdm_pool_destroy(pool);
}

static void test_classic_nan_action_recovers(void) {
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("pendulum", 2, NULL, NULL, &e));
  float obs[6], o0[6], act[2] = {NAN, 0.5f}, r[2];
  uint8_t te[2], tr[2];
  CHECK_OK(tdm_env_reset(e, 1, NULL, o0));
  CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
  CHECK(tdm_env_unstable_count(e) == 1);
  CHECK(tr[0] == 1 && te[0] == 0 && r[0] == 0.0f && !memcmp(obs, o0, 3 * sizeof(float)));
  CHECK(tr[1] == 0 && isfinite(r[1]));
  double x[2];
  CHECK_OK(tdm_env_get_state(e, 0, x));
  CHECK(isfinite(x[0]) && isfinite(x[1]));
  tdm_env_destroy(e);
}

static void test_classic_sim_and_linearize(void) {
  tdm_env *e = NULL;
  tdm_sim *s = NULL;
  CHECK_OK(tdm_env_create("pendulum", 1, NULL, NULL, &e));
  CHECK_OK(tdm_sim_create(e, &s));
  double x[2] = {0.7, -1.1}, nx[2], A[4], B[2], cost;
  float a = 0.3f, obs[3], r;
  uint8_t t;
  CHECK_OK(tdm_sim_step(s, x, &a, nx, obs, &r, &t));
  // the published equations, by hand
  double u = 0.6, thd = -1.1 + (15.0 * sin(0.7) + 3.0 * u) * 0.05;
  CHECK(close_to(nx[1], thd, 1e-6) && close_to(nx[0], 0.7 + thd * 0.05, 1e-9));
  CHECK_OK(tdm_sim_cost(s, x, &a, &cost));
  CHECK(close_to(cost, -r, 1e-6));
  CHECK_OK(tdm_sim_linearize(s, x, &a, 1e-4, true, A, B));
  // analytic: thd' = thd + (15 sin th + 3 u) dt, th' = th + thd' dt, u = 2 a
  double dt = 0.05;
  CHECK(close_to(A[2], 15.0 * cos(0.7) * dt, 1e-5) && close_to(A[3], 1.0, 1e-6));
  CHECK(close_to(A[0], 1.0 + 15.0 * cos(0.7) * dt * dt, 1e-5) && close_to(A[1], dt, 1e-6));
  CHECK(close_to(B[1], 3.0 * dt * 2.0, 1e-3) && close_to(B[0], 3.0 * dt * dt * 2.0, 1e-3));
  tdm_sim_destroy(s);
  tdm_env_destroy(e);
}

// ---- MuJoCo ------------------------------------------------------------------------------------

#ifdef TDM_MUJOCO
#define NEED_MUJOCO
#else
#define NEED_MUJOCO SKIP("built without MuJoCo")
#endif

static void test_mj_specs(void) {
  NEED_MUJOCO;
  struct {
    const char *name;
    int O, A, T;
    double dt;
    float lo, hi;
  } want[] = {
      {"half_cheetah", 17, 6, 1000, 0.05, -1, 1},    {"hopper", 11, 3, 1000, 0.008, -1, 1},
      {"walker2d", 17, 6, 1000, 0.008, -1, 1},       {"inverted_pendulum", 4, 1, 1000, 0.04, -3, 3},
      {"cartpole_balance", 5, 1, 1000, 0.01, -1, 1}, {"cartpole_swingup", 5, 1, 1000, 0.01, -1, 1},
      {"reacher", 10, 2, 50, 0.02, -1, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    tdm_env *e = NULL;
    CHECK_OK(tdm_env_create(want[i].name, 2, NULL, NULL, &e));
    const tdm_env_spec *sp = tdm_env_get_spec(e);
    CHECKF(sp->obs_dim == want[i].O && sp->act_dim == want[i].A &&
               sp->max_episode_steps == want[i].T && fabs(sp->dt - want[i].dt) < 1e-12 &&
               sp->act_low[0] == want[i].lo && sp->act_high[0] == want[i].hi && sp->mujoco,
           "%s: O %d A %d T %d dt %g", want[i].name, sp->obs_dim, sp->act_dim,
           sp->max_episode_steps, sp->dt);
    float obs[2 * 17];
    CHECK_OK(tdm_env_reset(e, 1, NULL, obs));
    for (int j = 0; j < 2 * sp->obs_dim; j++) CHECK(isfinite(obs[j]));
    tdm_env_destroy(e);
  }
}

static void test_mj_reset_determinism(void) {
  NEED_MUJOCO;
  const int N = 5;
  tdm_env *a = NULL, *b = NULL;
  tdm_pool *pool = NULL;
  CHECK_OK(tdm_pool_create(2, &pool));
  CHECK_OK(tdm_env_create("half_cheetah", N, NULL, NULL, &a));
  CHECK_OK(tdm_env_create("half_cheetah", N, NULL, pool, &b));
  float oa[N * 17], ob[N * 17], act[N * 6], ra[N], rb[N];
  uint8_t te[N], tr[N];
  CHECK_OK(tdm_env_reset(a, 77, NULL, oa));
  CHECK_OK(tdm_env_reset(b, 77, NULL, ob));
  CHECK(!memcmp(oa, ob, sizeof oa));
  CHECK(memcmp(oa, oa + 17, 17 * sizeof(float)) != 0);  // instances differ
  // reset noise: qpos within 0.1 of the initial pose (obs[0] is rootz = 0 initially)
  for (int i = 0; i < N; i++) CHECK(fabsf(oa[17 * i]) <= 0.1f);
  tdm_t_rand(act, N * 6, -1, 1, 11);
  for (int k = 0; k < 30; k++) {
    CHECK_OK(tdm_env_step(a, act, oa, ra, te, tr));
    CHECK_OK(tdm_env_step(b, act, ob, rb, te, tr));
  }
  CHECK(!memcmp(oa, ob, sizeof oa) && !memcmp(ra, rb, sizeof ra));
  CHECK_OK(tdm_env_reset(b, 78, NULL, ob));
  CHECK_OK(tdm_env_reset(a, 77, NULL, oa));
  CHECK(memcmp(oa, ob, sizeof oa) != 0);
  tdm_env_destroy(a);
  tdm_env_destroy(b);
  tdm_pool_destroy(pool);
}

// A reset of a used instance (contacts, solver warm start, many steps behind it) and a step of a
// used simulator from a given state are bit for bit those of fresh ones: nothing stale leaks in.
static void test_mj_used_instance_resets_like_fresh(void) {
  NEED_MUJOCO;
  const char *tasks[] = {"half_cheetah",      "hopper",           "walker2d",
                         "inverted_pendulum", "cartpole_swingup", "reacher"};
  enum { N = 3, MAXO = 17, MAXA = 6, MAXS = 32 };
  for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++) {
    tdm_env *a = NULL, *b = NULL;
    CHECK_OK(tdm_env_create(tasks[t], N, NULL, NULL, &a));
    const tdm_env_spec *sp = tdm_env_get_spec(a);
    const int O = sp->obs_dim, A = sp->act_dim, S = sp->state_dim;
    CHECK(O <= MAXO && A <= MAXA && S <= MAXS);
    float oa[N * MAXO], ob[N * MAXO], act[N * MAXA], ra[N], rb[N];
    uint8_t ta[N], tb[N], ua[N], ub[N], done[N];
    // use a: random actions, finished episodes reset
    CHECK_OK(tdm_env_reset(a, 5, NULL, oa));
    for (int k = 0; k < 300; k++) {
      tdm_t_rand(act, N * A, -1, 1, 100 + (uint64_t)k);
      CHECK_OK(tdm_env_step(a, act, oa, ra, ta, ua));
      int any = 0;
      for (int i = 0; i < N; i++) any |= done[i] = ta[i] | ua[i];
      if (any) CHECK_OK(tdm_env_reset(a, TDM_ENV_CONTINUE, done, oa));
    }
    // a simulator used from a's states against a fresh one, from the same state
    double x[MAXS], na[MAXS], nb[MAXS];
    tdm_sim *sa = NULL, *sb = NULL;
    CHECK_OK(tdm_sim_create(a, &sa));
    for (int i = 0; i < N; i++) {
      CHECK_OK(tdm_env_get_state(a, i, x));
      CHECK_OK(tdm_sim_step(sa, x, act + i * A, na, NULL, NULL, NULL));
    }
    CHECK_OK(tdm_sim_create(a, &sb));
    CHECK_OK(tdm_env_get_state(a, 0, x));
    float r1, r2, o1[MAXO], o2[MAXO];
    CHECK_OK(tdm_sim_step(sa, x, act, na, o1, &r1, NULL));
    CHECK_OK(tdm_sim_step(sb, x, act, nb, o2, &r2, NULL));
    CHECKF(!memcmp(na, nb, sizeof(double) * (size_t)S) && !memcmp(o1, o2, sizeof(float) * O) &&
               r1 == r2,
           "%s: a used simulator steps differently from a fresh one", tasks[t]);
    tdm_sim_destroy(sa);
    tdm_sim_destroy(sb);
    // same seed on the used env and a fresh one: identical episodes
    CHECK_OK(tdm_env_create(tasks[t], N, NULL, NULL, &b));
    CHECK_OK(tdm_env_reset(a, 42, NULL, oa));
    CHECK_OK(tdm_env_reset(b, 42, NULL, ob));
    int same = !memcmp(oa, ob, sizeof(float) * N * O);
    for (int k = 0; k < 200 && same; k++) {
      tdm_t_rand(act, N * A, -1, 1, 900 + (uint64_t)k);
      CHECK_OK(tdm_env_step(a, act, oa, ra, ta, ua));
      CHECK_OK(tdm_env_step(b, act, ob, rb, tb, ub));
      same = !memcmp(oa, ob, sizeof(float) * N * O) && !memcmp(ra, rb, sizeof ra) &&
             !memcmp(ta, tb, N) && !memcmp(ua, ub, N);
      int any = 0;
      for (int i = 0; i < N; i++) any |= done[i] = ta[i] | ua[i];
      if (any) {
        CHECK_OK(tdm_env_reset(a, TDM_ENV_CONTINUE, done, oa));
        CHECK_OK(tdm_env_reset(b, TDM_ENV_CONTINUE, done, ob));
      }
    }
    for (int i = 0; i < N && same; i++) {
      CHECK_OK(tdm_env_get_state(a, i, na));
      CHECK_OK(tdm_env_get_state(b, i, nb));
      same = !memcmp(na, nb, sizeof(double) * (size_t)S);
    }
    CHECKF(same, "%s: episodes after a reset of used instances differ from fresh ones", tasks[t]);
    tdm_env_destroy(a);
    tdm_env_destroy(b);
  }
}

static void test_mj_truncation(void) {
  NEED_MUJOCO;
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("reacher", 2, NULL, NULL, &e));
  float obs[20], act[4] = {0.3f, -0.2f, 1.0f, 0.5f}, r[2];
  uint8_t te[2], tr[2];
  CHECK_OK(tdm_env_reset(e, 3, NULL, obs));
  for (int k = 1; k <= 50; k++) {
    CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
    CHECK(te[0] == 0 && te[1] == 0);
    CHECKF(tr[0] == (k == 50) && tr[1] == (k == 50), "step %d", k);
  }
  CHECK(tdm_env_episode_length(e)[1] == 50);
  tdm_env_destroy(e);
  const config_setting_t *c = cfg_of("max_episode_steps = 12;");
  CHECK_OK(tdm_env_create("half_cheetah", 1, c, NULL, &e));
  float o2[17], a2[6] = {0};
  CHECK_OK(tdm_env_reset(e, 3, NULL, o2));
  for (int k = 1; k <= 12; k++) {
    CHECK_OK(tdm_env_step(e, a2, o2, r, te, tr));
    CHECK(tr[0] == (k == 12));
  }
  tdm_env_destroy(e);
}

// steps instance 0 with act; returns state before / after
static void step_states(tdm_env *e, const float *act, double *s0, double *s1, float *obs, float *r,
                        uint8_t *te, uint8_t *tr) {
  tdm_env_get_state(e, 0, s0);
  tdm_env_step(e, act, obs, r, te, tr);
  tdm_env_get_state(e, 0, s1);
}

static void test_mj_rewards_from_positions(void) {
  NEED_MUJOCO;
  double s0[64], s1[64];
  float obs[32], r, act[8];
  uint8_t te, tr;
  // half_cheetah: forward velocity from rootx minus 0.1 |a|^2
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("half_cheetah", 1, NULL, NULL, &e));
  CHECK_OK(tdm_env_reset(e, 4, NULL, obs));
  for (int k = 0; k < 20; k++) {
    tdm_t_rand(act, 6, -1.2f, 1.2f, 100 + k);
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    double c = 0;
    for (int j = 0; j < 6; j++) c += (double)act[j] * act[j];
    double want = (s1[0] - s0[0]) / 0.05 - 0.1 * c;
    CHECKF(close_to(r, want, 1e-5), "cheetah step %d reward %g want %g", k, r, want);
    // obs = qpos[1:] then qvel
    CHECK(obs[0] == (float)s1[1] && obs[8] == (float)s1[9]);
  }
  tdm_env_destroy(e);
  // hopper: forward velocity + healthy bonus - 1e-3 |a|^2, terminated when unhealthy
  CHECK_OK(tdm_env_create("hopper", 1, NULL, NULL, &e));
  CHECK_OK(tdm_env_reset(e, 4, NULL, obs));
  int terminated = 0;
  for (int k = 0; k < 400 && !terminated; k++) {
    tdm_t_rand(act, 3, -1, 1, 200 + k);
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    double c = 0;
    for (int j = 0; j < 3; j++) c += (double)act[j] * act[j];
    const int nq = 6;
    int ok = s1[1] > 0.7 && s1[2] > -0.2 && s1[2] < 0.2;
    for (int j = 2; j < 2 * nq; j++) ok = ok && fabs(s1[j]) < 100;
    double want = (s1[0] - s0[0]) / 0.008 + (ok ? 1.0 : 0.0) - 1e-3 * c;
    CHECKF(close_to(r, want, 1e-5), "hopper step %d reward %g want %g", k, r, want);
    CHECK(te == !ok);
    terminated = te;
  }
  CHECK(terminated);  // random actions make the hopper fall
  tdm_env_destroy(e);
  // reacher: -|fingertip - target| - |a|^2, fingertip from the arm angles
  CHECK_OK(tdm_env_create("reacher", 1, NULL, NULL, &e));
  CHECK_OK(tdm_env_reset(e, 4, NULL, obs));
  for (int k = 0; k < 10; k++) {
    tdm_t_rand(act, 2, -1, 1, 300 + k);
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    double q0 = s1[0], q1 = s1[1];
    double fx = 0.1 * cos(q0) + 0.11 * cos(q0 + q1), fy = 0.1 * sin(q0) + 0.11 * sin(q0 + q1);
    double dist = hypot(fx - s1[2], fy - s1[3]);
    double want = -dist - ((double)act[0] * act[0] + (double)act[1] * act[1]);
    CHECKF(close_to(r, want, 1e-5), "reacher step %d reward %g want %g", k, r, want);
    CHECK(fabsf(obs[8] - (float)(fx - s1[2])) < 1e-5f);
  }
  tdm_env_destroy(e);
  // cartpole: DeepMind Control's smooth reward of the post-step state
  CHECK_OK(tdm_env_create("cartpole_swingup", 1, NULL, NULL, &e));
  CHECK_OK(tdm_env_reset(e, 4, NULL, obs));
  CHECK(obs[1] < -0.99f);  // pole starts pointing down
  for (int k = 0; k < 10; k++) {
    act[0] = 0.7f;
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    double upright = (cos(s1[1]) + 1) / 2;
    double centered = (1 + exp(-0.5 * pow(fabs(s1[0]) / 2 * sqrt(-2 * log(0.1)), 2))) / 2;
    double small_control = (4 + (1 - 0.7 * 0.7)) / 5;
    double small_vel = (1 + exp(-0.5 * pow(fabs(s1[3]) / 5 * sqrt(-2 * log(0.1)), 2))) / 2;
    double want = upright * centered * small_control * small_vel;
    CHECKF(close_to(r, want, 1e-6), "cartpole step %d reward %g want %g", k, r, want);
  }
  tdm_env_destroy(e);
  // inverted pendulum: 1 per step while |angle| <= 0.2, terminated beyond
  CHECK_OK(tdm_env_create("inverted_pendulum", 1, NULL, NULL, &e));
  CHECK_OK(tdm_env_reset(e, 4, NULL, obs));
  terminated = 0;
  for (int k = 0; k < 200 && !terminated; k++) {
    act[0] = 1.0f;  // push hard one way: the pole falls
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    CHECK(te == (fabs(s1[1]) > 0.2));
    CHECK(r == (te ? 0.0f : 1.0f));
    terminated = te;
  }
  CHECK(terminated);
  tdm_env_destroy(e);
}

static void test_mj_state_roundtrip(void) {
  NEED_MUJOCO;
  tdm_env *e = NULL;
  tdm_sim *s = NULL;
  CHECK_OK(tdm_env_create("walker2d", 2, NULL, NULL, &e));
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  CHECK(sp->state_dim == 9 + 9 + 0 + 1 && sp->tangent_dim == 18);
  CHECK_OK(tdm_sim_create(e, &s));
  float obs[34], act[12], r[2], o1[17], o2[17], r1, r2;
  uint8_t te[2], tr[2], t1, t2;
  CHECK_OK(tdm_env_reset(e, 5, NULL, obs));
  tdm_t_rand(act, 12, -1, 1, 5);
  for (int k = 0; k < 15; k++) CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
  double x[19], y[19], n1[19], n2[19];
  CHECK_OK(tdm_env_get_state(e, 0, x));
  CHECK_OK(tdm_env_set_state(e, 0, x, o1));
  CHECK_OK(tdm_env_get_state(e, 0, y));
  CHECK(!memcmp(x, y, sizeof x));
  CHECK(!memcmp(o1, obs, sizeof o1));  // the observation of a state does not depend on history
  // stepping a copy from the state: repeatable, and equal to stepping the env from that state
  CHECK_OK(tdm_sim_step(s, x, act, n1, o1, &r1, &t1));
  CHECK_OK(tdm_sim_step(s, x, act, n2, o2, &r2, &t2));
  CHECK(!memcmp(n1, n2, sizeof n1) && !memcmp(o1, o2, sizeof o1) && r1 == r2 && t1 == t2);
  CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
  CHECK_OK(tdm_env_get_state(e, 0, y));
  CHECK(!memcmp(n1, y, sizeof y) && !memcmp(o1, obs, sizeof o1) && r1 == r[0]);
  CHECK(n1[18] > x[18]);  // time advanced
  float o3[17];
  CHECK_OK(tdm_sim_observe(s, n1, o3));
  CHECK(!memcmp(o3, o1, sizeof o3));
  x[3] = NAN;
  CHECK(tdm_env_set_state(e, 0, x, NULL) == TDM_ERR_NUMERIC);
  tdm_sim_destroy(s);
  tdm_env_destroy(e);
}

static void check_jacobians(const char *task, const config_setting_t *cfg, double tol,
                            double tol1) {
  tdm_env *e = NULL;
  tdm_sim *s = NULL;
  CHECK_OK(tdm_env_create(task, 1, cfg, NULL, &e));
  CHECK_OK(tdm_sim_create(e, &s));
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  const int S = sp->state_dim, T = sp->tangent_dim, U = sp->act_dim, nv = T / 2;
  CHECK(S == T + 1);  // hinge / slide joints only, no actuator activations: tangent = state
  float obs[32], act[8], r;
  uint8_t te, tr;
  CHECK_OK(tdm_env_reset(e, 6, NULL, obs));
  tdm_t_rand(act, (size_t)U, -0.5f, 0.5f, 6);
  for (int k = 0; k < 3; k++) CHECK_OK(tdm_env_step(e, act, obs, &r, &te, &tr));
  double x[64], xp[64], xm[64], A[32 * 32], B[32 * 8], A1[32 * 32], B1[32 * 8];
  CHECK_OK(tdm_env_get_state(e, 0, x));
  CHECK_OK(tdm_sim_linearize(s, x, act, 1e-6, true, A, B));
  CHECK_OK(tdm_sim_linearize(s, x, act, 1e-6, false, A1, B1));
  const double h = 1e-5;
  double amax = 0, err = 0, err1 = 0;
  for (int j = 0; j < T; j++) {
    double y[64];
    memcpy(y, x, sizeof(double) * (size_t)S);
    y[j] = x[j] + h;
    CHECK_OK(tdm_sim_step(s, y, act, xp, NULL, NULL, NULL));
    y[j] = x[j] - h;
    CHECK_OK(tdm_sim_step(s, y, act, xm, NULL, NULL, NULL));
    for (int i = 0; i < T; i++) {
      double fd = (xp[i] - xm[i]) / (2 * h);
      amax = fmax(amax, fabs(fd));
      err = fmax(err, fabs(fd - A[i * T + j]));
      err1 = fmax(err1, fabs(fd - A1[i * T + j]));
    }
  }
  CHECKF(err <= tol * amax && err1 <= tol1 * amax, "%s: A error %g (one-sided %g) of max %g", task,
         err, err1, amax);
  double bmax = 0, berr = 0;
  const float ha = 1e-2f;
  for (int j = 0; j < U; j++) {
    float ap[8], am[8];
    memcpy(ap, act, sizeof ap);
    memcpy(am, act, sizeof am);
    ap[j] += ha;
    am[j] -= ha;
    CHECK_OK(tdm_sim_step(s, x, ap, xp, NULL, NULL, NULL));
    CHECK_OK(tdm_sim_step(s, x, am, xm, NULL, NULL, NULL));
    for (int i = 0; i < T; i++) {
      double fd = (xp[i] - xm[i]) / ((double)ap[j] - am[j]);
      bmax = fmax(bmax, fabs(fd));
      berr = fmax(berr, fabs(fd - B[i * U + j]));
    }
  }
  CHECKF(bmax > 0 && berr <= tol * bmax, "%s: B error %g of max %g", task, berr, bmax);
  (void)nv;
  tdm_sim_destroy(s);
  tdm_env_destroy(e);
}

static void test_mj_linearize_vs_finite_differences(void) {
  NEED_MUJOCO;
  // RK4 models (MuJoCo 2.2's transitionFD is a little off the exact RK4 step there)
  check_jacobians("cartpole_swingup", NULL, 1e-3, 1e-3);
  if (tdm_t_failed_now) return;
  check_jacobians("inverted_pendulum", NULL, 1e-3, 1e-3);
  if (tdm_t_failed_now) return;
  check_jacobians("reacher", NULL, 1e-3, 1e-3);
  if (tdm_t_failed_now) return;
  // an Euler double pendulum without contacts, frame skip 3 (the chain over sub-steps)
  char path[] = "/tmp/tandem_env_dpend_XXXXXX.xml";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  const char *xml =
      "<mujoco model=\"dpend\">\n"
      "  <option timestep=\"0.004\" integrator=\"Euler\"><flag contact=\"disable\"/></option>\n"
      "  <worldbody>\n"
      "    <body name=\"l1\" pos=\"0 0 2\">\n"
      "      <joint name=\"j1\" type=\"hinge\" axis=\"0 1 0\" damping=\"0.05\"/>\n"
      "      <geom type=\"capsule\" fromto=\"0 0 0 0 0 -0.5\" size=\"0.04\"/>\n"
      "      <body name=\"l2\" pos=\"0 0 -0.5\">\n"
      "        <joint name=\"j2\" type=\"hinge\" axis=\"0 1 0\" damping=\"0.05\"/>\n"
      "        <geom type=\"capsule\" fromto=\"0 0 0 0 0 -0.5\" size=\"0.04\"/>\n"
      "      </body>\n"
      "    </body>\n"
      "  </worldbody>\n"
      "  <actuator>\n"
      "    <motor joint=\"j1\" gear=\"2\" ctrllimited=\"true\" ctrlrange=\"-1 1\"/>\n"
      "    <motor joint=\"j2\" gear=\"1\" ctrllimited=\"true\" ctrlrange=\"-1 1\"/>\n"
      "  </actuator>\n"
      "</mujoco>\n";
  CHECK(write(fd, xml, strlen(xml)) == (ssize_t)strlen(xml));
  close(fd);
  char text[256];
  snprintf(text, sizeof text, "model = \"%s\";\nframe_skip = 3;\nreset_noise_scale = 0.5;", path);
  const config_setting_t *c = cfg_of(text);
  check_jacobians("mujoco", c, 1e-6, 1e-4);
  unlink(path);
}

static void test_mj_cost(void) {
  NEED_MUJOCO;
  tdm_env *e = NULL;
  tdm_sim *s = NULL;
  CHECK_OK(tdm_env_create("half_cheetah", 1, NULL, NULL, &e));
  CHECK_OK(tdm_sim_create(e, &s));
  float obs[17], act[6];
  double x[19], cost;
  CHECK_OK(tdm_env_reset(e, 2, NULL, obs));
  CHECK_OK(tdm_env_get_state(e, 0, x));
  x[9] = 2.5;  // rootx velocity
  tdm_t_rand(act, 6, -1, 1, 8);
  CHECK_OK(tdm_sim_cost(s, x, act, &cost));
  double c = 0;
  for (int j = 0; j < 6; j++) c += (double)act[j] * act[j];
  CHECK(close_to(cost, -2.5 + 0.1 * c, 1e-9));
  tdm_sim_destroy(s);
  tdm_env_destroy(e);
}

static void test_mj_bad_mjcf(void) {
  NEED_MUJOCO;
  tdm_env *e = NULL;
  const config_setting_t *c = cfg_of("model = \"/nonexistent/dir/robot.xml\";");
  tdm_status st = tdm_env_create("mujoco", 1, c, NULL, &e);
  CHECK(st == TDM_ERR_IO && e == NULL);
  CHECKF(strstr(tdm_errmsg(), "/nonexistent/dir/robot.xml") && strstr(tdm_errmsg(), "MuJoCo:"),
         "message: %s", tdm_errmsg());
  char path[] = "/tmp/tandem_env_test_XXXXXX.xml";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  const char *bad = "<mujoco>\n  <worldbody>\n    <body name=\"a\">\n  </worldbody>\n</mujoco>\n";
  CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
  close(fd);
  char text[256];
  snprintf(text, sizeof text, "model = \"%s\";", path);
  c = cfg_of(text);
  st = tdm_env_create("mujoco", 1, c, NULL, &e);
  unlink(path);
  CHECK(st == TDM_ERR_MUJOCO);
  const char *msg = tdm_errmsg();
  const char *p = strstr(msg, path);
  CHECKF(p && strlen(p) > strlen(path) + 4, "message: %s", msg);  // MuJoCo's text follows
}

static void test_mj_instability_reset(void) {
  NEED_MUJOCO;
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create("hopper", 2, NULL, NULL, &e));
  float obs[22], act[6] = {0}, r[2];
  uint8_t te[2], tr[2];
  CHECK_OK(tdm_env_reset(e, 1, NULL, obs));
  long before = tdm_warn_count("env.unstable");
  double x[13];
  CHECK_OK(tdm_env_get_state(e, 0, x));
  x[6 + 2] = 1e11;  // a velocity MuJoCo rejects as a bad number
  float o0[11];
  CHECK_OK(tdm_env_set_state(e, 0, x, o0));
  CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
  CHECK(tdm_env_unstable_count(e) == 1);
  CHECK(tdm_warn_count("env.unstable") == before + 1);
  CHECK(tr[0] == 1 && te[0] == 0 && r[0] == 0.0f);
  CHECK(!memcmp(obs, o0, sizeof o0));  // the last finite observation
  CHECK(tr[1] == 0 && r[1] != 0.0f);   // the other instance stepped normally
  CHECK_OK(tdm_env_get_state(e, 0, x));
  for (int j = 0; j < 13; j++) CHECK(isfinite(x[j]) && fabs(x[j]) < 10);  // restored
  // a NaN action is a MuJoCo warning too: counted, the run goes on
  uint8_t m[2] = {1, 0};
  CHECK_OK(tdm_env_reset(e, TDM_ENV_CONTINUE, m, obs));
  act[1] = NAN;
  CHECK_OK(tdm_env_step(e, act, obs, r, te, tr));
  CHECK(tdm_env_unstable_count(e) == 2 && tr[0] == 1);
  for (int j = 0; j < 22; j++) CHECK(isfinite(obs[j]));
  tdm_env_destroy(e);
}

static void test_mj_config_task(void) {
  NEED_MUJOCO;
  char hop[800], text[2400];
  if (!asset_path("hopper.xml", hop, sizeof hop)) SKIP("assets/hopper.xml not found");
  snprintf(text, sizeof text,
           "task = \"mujoco\";\n"
           "model = \"%s\";\n"
           "frame_skip = 4;\n"
           "max_episode_steps = 300;\n"
           "reset_noise_scale = 0.005;\n"
           "exclude_root = 1;\n"
           "reward = (\n"
           "  { term = \"forward_velocity\"; body = \"torso\"; weight = 1.0; },\n"
           "  { term = \"control\"; weight = 0.001; },\n"
           "  { term = \"alive\"; weight = 1.0; },\n"
           "  { term = \"upright\"; body = \"torso\"; weight = 0.5; },\n"
           "  { term = \"residual\"; joint = \"foot_joint\"; target = 0.1; weight = 2.0;\n"
           "    norm = \"quadratic\"; }\n"
           ");\n"
           "terminate = { body = \"torso\"; min_height = 0.7; max_tilt = 0.2; };\n",
           hop);
  const config_setting_t *c = cfg_of(text);
  CHECK(c);
  tdm_env *e = NULL;
  CHECK_OK(tdm_env_create(NULL, 1, c, NULL, &e));
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  CHECK(sp->obs_dim == 11 && sp->act_dim == 3 && sp->max_episode_steps == 300);
  CHECK(!strcmp(sp->name, "mujoco"));
  float obs[11], act[3], r;
  uint8_t te, tr;
  double s0[13], s1[13];
  CHECK_OK(tdm_env_reset(e, 2, NULL, obs));
  int ended = 0;
  for (int k = 0; k < 300 && !ended; k++) {
    tdm_t_rand(act, 3, -1, 1, 40 + k);
    step_states(e, act, s0, s1, obs, &r, &te, &tr);
    // torso frame: x = rootx, height = rootz, tilt = |rooty|
    int alive = s1[1] > 0.7 && fabs(s1[2]) < 0.2;
    double c2 = (double)act[0] * act[0] + (double)act[1] * act[1] + (double)act[2] * act[2];
    double want = (s1[0] - s0[0]) / 0.008 - 0.001 * c2 + (alive ? 1.0 : 0.0) + 0.5 * cos(s1[2]) -
                  2.0 * (s1[5] - 0.1) * (s1[5] - 0.1);
    CHECKF(close_to(r, want, 1e-5), "step %d reward %g want %g", k, r, want);
    CHECK(te == !alive);
    ended = te || tr;
  }
  tdm_env_destroy(e);
  snprintf(text, sizeof text, "model = \"%s\";\nreward = ({ term = \"speed\"; });\n", hop);
  c = cfg_of(text);
  CHECK(tdm_env_create("mujoco", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "speed") && strstr(tdm_errmsg(), "forward_velocity"), "message: %s",
         tdm_errmsg());
  snprintf(text, sizeof text,
           "model = \"%s\";\nreward = ({ term = \"height\"; body = \"nose\"; });\n", hop);
  c = cfg_of(text);
  CHECK(tdm_env_create("mujoco", 1, c, NULL, &e) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "nose"), "message: %s", tdm_errmsg());
  // terminate: a group, with a body, min_height below max_height
  static const char *const bad_term[][2] = {
      {"terminate = 5;", "must be a group"},
      {"terminate = { min_height = 0.7; };", "terminate needs body"},
      {"terminate = { body = \"torso\"; min_height = 3.0; max_height = 2.0; };",
       "min_height = 3 is not below max_height = 2"},
  };
  for (int i = 0; i < 3; i++) {
    snprintf(text, sizeof text, "model = \"%s\";\n%s\n", hop, bad_term[i][0]);
    c = cfg_of(text);
    tdm_status st = tdm_env_create("mujoco", 1, c, NULL, &e);
    CHECKF(st == TDM_ERR_CONFIG && strstr(tdm_errmsg(), bad_term[i][1]), "%s: %s %s",
           bad_term[i][0], tdm_status_name(st), tdm_errmsg());
  }
}

static void test_mj_config_sensors(void) {
  NEED_MUJOCO;
  char path[] = "/tmp/tandem_env_sens_XXXXXX.xml";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0);
  const char *xml =
      "<mujoco>\n"
      "  <option timestep=\"0.01\"/>\n"
      "  <worldbody>\n"
      "    <body name=\"arm\" pos=\"0 0 1\">\n"
      "      <joint name=\"hinge\" type=\"hinge\" axis=\"0 1 0\" damping=\"0.1\"/>\n"
      "      <geom type=\"capsule\" fromto=\"0 0 0 0.5 0 0\" size=\"0.05\"/>\n"
      "      <site name=\"tip\" pos=\"0.5 0 0\"/>\n"
      "    </body>\n"
      "  </worldbody>\n"
      "  <actuator><motor joint=\"hinge\" gear=\"1\" ctrllimited=\"true\" "
      "ctrlrange=\"-2 2\"/></actuator>\n"
      "  <sensor>\n"
      "    <jointpos name=\"angle\" joint=\"hinge\"/>\n"
      "    <framepos name=\"tip_pos\" objtype=\"site\" objname=\"tip\"/>\n"
      "  </sensor>\n"
      "</mujoco>\n";
  CHECK(write(fd, xml, strlen(xml)) == (ssize_t)strlen(xml));
  close(fd);
  char text[1024];
  snprintf(text, sizeof text,
           "model = \"%s\";\nframe_skip = 2;\nmax_episode_steps = 30;\nobs_qpos = false;\n"
           "obs_sensors = true;\nreward = ( { term = \"residual\"; sensor = \"tip_pos\"; "
           "target = 0.5; weight = 3.0; } );\n",
           path);
  const config_setting_t *c = cfg_of(text);
  tdm_env *e = NULL;
  tdm_status st = tdm_env_create("mujoco", 1, c, NULL, &e);
  unlink(path);
  CHECK_OK(st);
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  CHECK(sp->obs_dim == 1 + 1 + 3 && sp->act_dim == 1);  // qvel, angle sensor, tip position
  CHECK(sp->act_low[0] == -2.0f && sp->act_high[0] == 2.0f);
  float obs[5], a = 0.5f, r;
  uint8_t te, tr;
  double x[4];
  CHECK_OK(tdm_env_reset(e, 3, NULL, obs));
  for (int k = 0; k < 30; k++) {
    CHECK_OK(tdm_env_step(e, &a, obs, &r, &te, &tr));
    CHECK_OK(tdm_env_get_state(e, 0, x));
    // sensors of the final state: angle, tip = (0.5 cos q, 0, 1 - 0.5 sin q) for rotation about y
    double q = x[0];
    double tx = 0.5 * cos(q), tz = 1.0 - 0.5 * sin(q);
    CHECKF(fabs(obs[1] - q) < 1e-6 && fabs(obs[2] - tx) < 1e-6 && fabs(obs[4] - tz) < 1e-6,
           "step %d sensors %g %g %g want %g %g %g", k, obs[1], obs[2], obs[4], q, tx, tz);
    double want = -3.0 * sqrt((tx - 0.5) * (tx - 0.5) + 0.25 + (tz - 0.5) * (tz - 0.5));
    CHECKF(close_to(r, want, 1e-5), "step %d reward %g want %g", k, r, want);
    CHECK(tr == (k == 29));
  }
  tdm_env_destroy(e);
}

int main(void) {
  tdm_log_set_level(TDM_LOG_ERROR);  // instability tests warn on purpose
  TDM_RUN(test_registry_and_unknown_task);
  TDM_RUN(test_config_keys_and_errors);
  TDM_RUN(test_pendulum_pinned);
  TDM_RUN(test_pendulum_speed_and_torque_clip);
  TDM_RUN(test_mountain_car_pinned);
  TDM_RUN(test_classic_truncation_and_stats);
  TDM_RUN(test_reset_seed_mask_threads);
  TDM_RUN(test_reset_each_matches_per_slot_resets);
  TDM_RUN(test_classic_nan_action_recovers);
  TDM_RUN(test_classic_sim_and_linearize);
  TDM_RUN(test_mj_specs);
  TDM_RUN(test_mj_reset_determinism);
  TDM_RUN(test_mj_used_instance_resets_like_fresh);
  TDM_RUN(test_mj_truncation);
  TDM_RUN(test_mj_rewards_from_positions);
  TDM_RUN(test_mj_state_roundtrip);
  TDM_RUN(test_mj_linearize_vs_finite_differences);
  TDM_RUN(test_mj_cost);
  TDM_RUN(test_mj_bad_mjcf);
  TDM_RUN(test_mj_instability_reset);
  TDM_RUN(test_mj_config_task);
  TDM_RUN(test_mj_config_sensors);
  if (t_cfg_live) config_destroy(&t_cfg);
  return tdm_test_end();
}
