// The fused SAC update (one persistent cooperative kernel per update, kernels/sac_fused.cu)
// against the CPU agent and the op-graph GPU agent from the same seed and transitions, its
// determinism (bitwise repeatable), when it is active, checkpoints written by a fused agent and
// read by the other paths, and a long run doing real work. GPU tests SKIP without a GPU.
#include "sac_side.h"

// whether array `which` of m and of ref hold the same bits (any devices)
static bool arr_same(tdm_mlp *m, tdm_mlp *ref, int which) {
  float *a = fetch(m, which), *b = fetch(ref, which);
  bool same = a && b && m->n_params == ref->n_params && !memcmp(a, b, m->n_params * sizeof(float));
  free(a);
  free(b);
  return same;
}

// log(alpha) of a on the host (NAN on failure)
static float log_alpha(tdm_agent *a) {
  float v = NAN;
  if (down(a->dev, &v, tdm_sac_log_alpha(a), 1) != TDM_OK) return NAN;
  return v;
}

static void nets(tdm_agent *a, tdm_mlp *m[3]) {
  m[0] = tdm_sac_actor(a);
  m[1] = tdm_sac_critic(a);
  m[2] = tdm_sac_critic_target(a);
}

static const char *const NET_NAME[3] = {"actor", "critic", "target"};

// |a - b| <= tol * max(1, |b|)
static bool close_to(float a, float b, float tol) {
  return isfinite(a) && isfinite(b) && fabsf(a - b) <= tol * fmaxf(1.0f, fabsf(b));
}

// The statistics of two agents agree within a relative tol; the first that does not is named in
// why.
static bool stats_close(const tdm_agent_stats *x, const tdm_agent_stats *y, float tol, char *why,
                        size_t nwhy) {
  const float a[5] = {x->critic_loss, x->actor_loss, x->alpha, x->entropy, x->q_mean};
  const float b[5] = {y->critic_loss, y->actor_loss, y->alpha, y->entropy, y->q_mean};
  const char *name[5] = {"critic_loss", "actor_loss", "alpha", "entropy", "q_mean"};
  for (int k = 0; k < 5; k++)
    if (!close_to(a[k], b[k], tol)) {
      snprintf(why, nwhy, "%s %.9g vs %.9g", name[k], a[k], b[k]);
      return false;
    }
  return true;
}

static bool stats_same(const tdm_agent_stats *x, const tdm_agent_stats *y) {
  return x->critic_loss == y->critic_loss && x->actor_loss == y->actor_loss &&
         x->alpha == y->alpha && x->entropy == y->entropy && x->q_mean == y->q_mean &&
         x->updates == y->updates;
}

// Bitwise equality of two agents (any devices): parameters of actor, critic and target, Adam
// moments of actor and critic (and of the target when target_adam), log_alpha. The first
// difference is named in why.
static bool agents_same(tdm_agent *x, tdm_agent *y, bool target_adam, char *why, size_t nwhy) {
  tdm_mlp *mx[3], *my[3];
  nets(x, mx);
  nets(y, my);
  static const char *const arr[3] = {"params", "adam_m", "adam_v"};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < (i < 2 || target_adam ? 3 : 1); k++)
      if (!arr_same(mx[i], my[i], k)) {
        snprintf(why, nwhy, "%s %s differ (relative %g)", NET_NAME[i], arr[k],
                 arr_err(mx[i], my[i], k));
        return false;
      }
  float la = log_alpha(x), lb = log_alpha(y);
  if (!(la == lb)) {
    snprintf(why, nwhy, "log_alpha %.9g vs %.9g", la, lb);
    return false;
  }
  return true;
}

// A network shape and the SAC settings that pick the update's variants.
typedef struct {
  int obs, act, hidden, layers, batch;
  tdm_act hact;
  int policy_delay, target_update_interval;
  bool ent_coef_auto;
} shape;

static tdm_sac_cfg shape_cfg(const shape *s) {
  tdm_sac_cfg c = tdm_sac_defaults();
  c.fused_update = true;  // the default, set here all the same
  c.hidden = s->hidden;
  c.layers = s->layers;
  c.act = s->hact;
  c.batch_size = s->batch;
  c.buffer_size = 4000;
  c.policy_delay = s->policy_delay;
  c.target_update_interval = s->target_update_interval;
  c.ent_coef_auto = s->ent_coef_auto;
  return c;
}

static void shape_str(const shape *s, char *out, size_t n) {
  snprintf(out, n, "obs %d act %d %dx%d %s batch %d delay %d tui %d auto %d", s->obs, s->act,
           s->hidden, s->layers, tdm_act_name(s->hact), s->batch, s->policy_delay,
           s->target_update_interval, (int)s->ent_coef_auto);
}

// Shapes of the parity tests: the benchmark's, odd sizes, every hidden activation, one action and
// the most actions the kernel takes (32), 1 to 7 hidden layers, critic-only updates
// (policy_delay 2, 3), delayed Polyak, a fixed temperature, and a batch whose phases have more
// GEMM tiles than the grid has blocks (a block's second tile: fz_locate).
static const shape SHAPES[] = {
    {17, 6, 64, 2, 128, TDM_ACT_RELU, 2, 1, true},                    // the parity test's
    {5, 3, 50, 1, 100, TDM_ACT_TANH, 2, 1, true},                     // one hidden layer
    {11, 1, 33, 3, 77, TDM_ACT_SILU, 2, 3, false},                    // one action, fixed alpha
    {17, 6, 256, 2, 256, TDM_ACT_RELU, 2, 1, true},                   // the benchmark's
    {8, 4, 96, 2, 64, TDM_ACT_MISH, 3, 2, true},                      // mish, policy_delay 3
    {6, 2, 40, 2, 90, TDM_ACT_ELU, 2, 1, true},                       // elu
    {9, TDM_SAC_FUSED_MAX_ACT, 64, 2, 64, TDM_ACT_RELU, 2, 1, true},  // the most actions
    {4, 2, 24, 7, 50, TDM_ACT_TANH, 2, 1, true},                      // the most layers
    {17, 6, 256, 2, 512, TDM_ACT_RELU, 2, 1, true},  // more GEMM tiles than blocks (H100: 132)
    // a 256-wide middle layer: its backward phase has 128 tiles, so on 132 blocks the Adam step
    // of the layer above goes to every block rather than the 4 free ones; 16 rows of its fused act
    // need 102 KB of shared memory per block
    {17, 6, 256, 3, 256, TDM_ACT_RELU, 2, 1, true},
};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0] };

// Fused GPU agent against the CPU agent (the reference), same seed and transitions: 6 updates
// (3, new transitions, 3) of every shape; parameters of actor, critic and target within 2e-4
// relative, log_alpha within 1e-5, the last update's statistics within 1e-3.
static void test_fused_vs_cpu(void) {
  NEED_GPU(g);
  for (int i = 0; i < N_SHAPES; i++) {
    const shape *sh = &SHAPES[i];
    char name[160];
    shape_str(sh, name, sizeof name);
    tdm_sac_cfg c = shape_cfg(sh);
    tdm_agent_dims dims = {sh->obs, sh->act, 2};
    tdm_agent *x, *y;
    CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 9 + i, &x));
    CHECK_OK(tdm_sac_create(g, &c, &dims, 9 + i, &y));
    CHECKF(tdm_sac_fused_active(y), "%s: the GPU agent is not fused", name);
    CHECKF(!tdm_sac_fused_active(x), "%s: the CPU agent says fused", name);
    CHECK_OK(feed2(x, y, 300, 6 + i));
    tdm_agent_stats sx, sy;
    CHECK_OK(tdm_agent_update(x, 3, NULL));
    CHECK_OK(tdm_agent_update(y, 3, NULL));
    CHECK_OK(feed2(x, y, 3, 40 + i));  // the fused update must see the new replay size
    CHECK_OK(tdm_agent_update(x, 3, &sx));
    CHECK_OK(tdm_agent_update(y, 3, &sy));
    tdm_mlp *mx[3], *my[3];
    nets(x, mx);
    nets(y, my);
    for (int k = 0; k < 3; k++) {
      double e = arr_err(my[k], mx[k], 0);
      CHECKF(e < 2e-4, "%s: %s parameters relative error %g", name, NET_NAME[k], e);
    }
    float lx = log_alpha(x), ly = log_alpha(y);
    CHECKF(fabsf(lx - ly) < 1e-5f, "%s: log_alpha gpu %.9g cpu %.9g", name, ly, lx);
    char why[160];
    CHECKF(stats_close(&sy, &sx, 1e-3f, why, sizeof why), "%s: stats gpu vs cpu: %s", name, why);
    CHECK(sx.updates == 6 && sy.updates == 6);
    tdm_agent_destroy(x);
    tdm_agent_destroy(y);
  }
}

// Fused against the op graph (fused_update = false) on the GPU, same seed and transitions: the
// same batches and noise, so after 8 updates the parameters agree within 2e-4 relative, the
// statistics within 1e-3, and the next actions (deterministic and sampled) within 5e-4.
static void test_fused_vs_op_graph(void) {
  NEED_GPU(g);
  const shape sh2[2] = {SHAPES[3], {5, 3, 50, 1, 100, TDM_ACT_TANH, 2, 2, true}};
  for (int i = 0; i < 2; i++) {
    const shape *sh = &sh2[i];
    char name[160];
    shape_str(sh, name, sizeof name);
    tdm_sac_cfg c = shape_cfg(sh);
    tdm_agent_dims dims = {sh->obs, sh->act, 2};
    tdm_agent *x, *y;
    CHECK_OK(tdm_sac_create(g, &c, &dims, 23 + i, &x));
    c.fused_update = false;
    CHECK_OK(tdm_sac_create(g, &c, &dims, 23 + i, &y));
    CHECKF(tdm_sac_fused_active(x) && !tdm_sac_fused_active(y), "%s: fused %d and %d", name,
           (int)tdm_sac_fused_active(x), (int)tdm_sac_fused_active(y));
    CHECK_OK(feed2(x, y, 300, 11 + i));
    tdm_agent_stats sx, sy;
    for (int k = 0; k < 2; k++) {
      CHECK_OK(tdm_agent_update(x, 4, &sx));
      CHECK_OK(tdm_agent_update(y, 4, &sy));
      CHECK_OK(feed2(x, y, 3, 50 + k));
    }
    tdm_mlp *mx[3], *my[3];
    nets(x, mx);
    nets(y, my);
    for (int k = 0; k < 3; k++) {
      double e = arr_err(mx[k], my[k], 0);
      CHECKF(e < 2e-4, "%s: %s parameters fused vs op graph relative error %g", name, NET_NAME[k],
             e);
    }
    float lx = log_alpha(x), ly = log_alpha(y);
    CHECKF(fabsf(lx - ly) < 1e-5f, "%s: log_alpha fused %.9g op graph %.9g", name, lx, ly);
    char why[160];
    CHECKF(stats_close(&sx, &sy, 1e-3f, why, sizeof why), "%s: stats fused vs op graph: %s", name,
           why);
    float o[2 * 17], ax[2 * 6], ay[2 * 6];
    tdm_t_rand(o, (size_t)2 * sh->obs, -1, 1, 3);
    for (int explore = 0; explore < 2; explore++) {
      CHECK_OK(tdm_agent_act(x, o, 2, explore, ax));
      CHECK_OK(tdm_agent_act(y, o, 2, explore, ay));
      double e = tdm_t_relerr(ax, ay, (size_t)2 * sh->act);
      CHECKF(e < 5e-4, "%s: act (explore %d) fused vs op graph relative error %g", name, explore,
             e);
    }
    tdm_agent_destroy(x);
    tdm_agent_destroy(y);
  }
}

// Two fused agents with the same seed and transitions: after 10 updates (4, new transitions, 6)
// every network's parameters and Adam moments, log_alpha and the statistics are equal bit for
// bit (the kernel has no float atomics).
static void test_fused_deterministic(void) {
  NEED_GPU(g);
  const shape sh2[2] = {{17, 6, 256, 2, 256, TDM_ACT_RELU, 2, 2, true},
                        {11, 1, 33, 3, 77, TDM_ACT_SILU, 3, 3, true}};
  for (int i = 0; i < 2; i++) {
    const shape *sh = &sh2[i];
    char name[160];
    shape_str(sh, name, sizeof name);
    tdm_sac_cfg c = shape_cfg(sh);
    tdm_agent_dims dims = {sh->obs, sh->act, 2};
    tdm_agent *x, *y;
    CHECK_OK(tdm_sac_create(g, &c, &dims, 31 + i, &x));
    CHECK_OK(tdm_sac_create(g, &c, &dims, 31 + i, &y));
    CHECK(tdm_sac_fused_active(x) && tdm_sac_fused_active(y));
    CHECK_OK(feed2(x, y, 300, 14 + i));
    tdm_agent_stats sx, sy;
    CHECK_OK(tdm_agent_update(x, 4, NULL));
    CHECK_OK(tdm_agent_update(y, 4, NULL));
    CHECK_OK(feed2(x, y, 3, 60 + i));
    CHECK_OK(tdm_agent_update(x, 6, &sx));
    CHECK_OK(tdm_agent_update(y, 6, &sy));
    char why[200] = "";
    CHECKF(agents_same(x, y, true, why, sizeof why), "%s: two fused agents differ: %s", name, why);
    CHECKF(stats_same(&sx, &sy), "%s: statistics differ (critic loss %.9g vs %.9g)", name,
           sx.critic_loss, sy.critic_loss);
    tdm_agent_destroy(x);
    tdm_agent_destroy(y);
  }
}

// The fused act (one kernel: the actor's forward, the noise, the squash) against the op path's
// act (fused_update false), same seed so the same parameters and noise counters: actions within
// 1e-5 relative for every shape, deterministic and sampled, for all envs at once (a graph
// replay) and for one row (plain launches), over several calls (the noise counter advanced alike);
// 65 envs exceed the fused act's rows and take the op path in both agents. On sm_90 the fused act
// must be the one that ran (tdm_sac_fused_act_active), for up to 64 rows (17 and 64: more than one
// group of 16 row registers). Half of the cases draw
// correlated noise (agent.noise_corr 0.9: the kernel
// updates each row's AR(1) state as the op path's axpby does), alternating over shapes and env
// counts.
static void test_fused_act(void) {
  NEED_GPU(g);
  tdm_gpu_info info;
  CHECK_OK(tdm_gpu_info_get(g->ordinal, &info));
  const bool sm90 = info.cc_major >= 9;
  const int envs[6] = {1, 3, 16, 17, 64, 65};
  for (int i = 0; i < N_SHAPES; i++) {
    for (int ei = 0; ei < 6; ei++) {
      const shape *sh = &SHAPES[i];
      char name[160];
      shape_str(sh, name, sizeof name);
      tdm_sac_cfg c = shape_cfg(sh);
      c.noise_corr = (i + ei) % 2 ? 0.9f : 0.0f;
      const int N = envs[ei];
      tdm_agent_dims dims = {sh->obs, sh->act, N};
      tdm_agent *x, *y;
      CHECK_OK(tdm_sac_create(g, &c, &dims, 31 + i, &x));
      c.fused_update = false;
      CHECK_OK(tdm_sac_create(g, &c, &dims, 31 + i, &y));
      CHECK(tdm_sac_fused_active(x) && !tdm_sac_fused_active(y));
      CHECKF(tdm_sac_fused_act_active(x, N) == (sm90 && N <= 64) && !tdm_sac_fused_act_active(y, 1),
             "%s, %d envs: fused act %d (sm_90: %d)", name, N, (int)tdm_sac_fused_act_active(x, N),
             (int)sm90);
      float *o = malloc(sizeof(float) * N * sh->obs), *ax = malloc(sizeof(float) * N * sh->act),
            *ay = malloc(sizeof(float) * N * sh->act);
      CHECK(o && ax && ay);
      for (int call = 0; call < 6; call++) {
        const int n = call < 4 ? N : 1;  // all envs (the graph), then one row (plain launches)
        const bool explore = call % 2 == 0;
        tdm_t_rand(o, n * sh->obs, -1, 1, 100 + call);
        CHECK_OK(tdm_agent_act(x, o, n, explore, ax));
        CHECK_OK(tdm_agent_act(y, o, n, explore, ay));
        const double e = tdm_t_relerr(ax, ay, (size_t)n * sh->act);
        CHECKF(e < 1e-5,
               "%s, %d envs, noise_corr %g, call %d (%d rows, explore %d): fused act vs op path %g",
               name, N, c.noise_corr, call, n, (int)explore, e);
      }
      free(o);
      free(ax);
      free(ay);
      tdm_agent_destroy(x);
      tdm_agent_destroy(y);
    }
  }
  // one hidden layer of 4096 units: a slice of 512 outputs per block of the cluster, more than its
  // threads (one env fits; the op path is the reference)
  const shape wide = {3, 2, 4096, 1, 64, TDM_ACT_RELU, 1, 1, true};
  tdm_sac_cfg c = shape_cfg(&wide);
  tdm_agent_dims dims = {wide.obs, wide.act, 1};
  tdm_agent *x, *y;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 41, &x));
  c.fused_update = false;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 41, &y));
  CHECKF(tdm_sac_fused_act_active(x, 1) == sm90, "4096 wide: fused act %d",
         (int)tdm_sac_fused_act_active(x, 1));
  for (int call = 0; call < 4; call++) {
    float o[3], ax[2], ay[2];
    tdm_t_rand(o, 3, -1, 1, 200 + call);
    CHECK_OK(tdm_agent_act(x, o, 1, call % 2 == 0, ax));
    CHECK_OK(tdm_agent_act(y, o, 1, call % 2 == 0, ay));
    CHECKF(tdm_t_relerr(ax, ay, 2) < 1e-5, "4096 wide, call %d: fused act vs op path %g", call,
           tdm_t_relerr(ax, ay, 2));
  }
  tdm_agent_destroy(x);
  tdm_agent_destroy(y);
}

// The fused update is on by default and never active on the CPU: a CPU agent with use_graph and
// fused_update true reports it inactive and still updates.
static void test_fused_inactive_on_cpu(void) {
  tdm_sac_cfg c = tdm_sac_defaults();
  CHECK(c.fused_update && c.use_graph);
  c.hidden = 32;
  c.batch_size = 64;
  c.buffer_size = 1000;
  tdm_agent_dims dims = {5, 3, 2};
  tdm_agent *x;
  CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 1, &x));
  CHECK(!tdm_sac_fused_active(x));
  CHECK_OK(feed2(x, NULL, 50, 1));
  tdm_agent_stats s;
  CHECK_OK(tdm_agent_update(x, 2, &s));
  CHECK(isfinite(s.critic_loss) && s.updates == 2);
  tdm_agent_destroy(x);
}

// tdm_sac_fused_active on the GPU: true with fused_update on and act_dim up to
// TDM_SAC_FUSED_MAX_ACT (32); false with use_graph false, with fused_update false, with act_dim 33
// (which then updates on the op path).
static void test_fused_active_conditions(void) {
  NEED_GPU(g);
  tdm_sac_cfg c = tdm_sac_defaults();
  c.fused_update = true;
  c.hidden = 32;
  c.batch_size = 64;
  c.buffer_size = 1000;
  tdm_agent_dims dims = {5, 3, 2};
  tdm_agent *a;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 1, &a));
  CHECK(tdm_sac_fused_active(a));
  tdm_agent_destroy(a);
  c.use_graph = false;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 1, &a));
  CHECK(!tdm_sac_fused_active(a));
  tdm_agent_destroy(a);
  c.use_graph = true;
  c.fused_update = false;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 1, &a));
  CHECK(!tdm_sac_fused_active(a));
  tdm_agent_destroy(a);
  c.fused_update = true;
  CHECK(TDM_SAC_FUSED_MAX_ACT == 32);
  dims.act_dim = TDM_SAC_FUSED_MAX_ACT;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 1, &a));
  CHECKF(tdm_sac_fused_active(a), "act_dim %d: not fused", dims.act_dim);
  CHECK_OK(feed2(a, NULL, 50, 2));
  tdm_agent_stats s;
  CHECK_OK(tdm_agent_update(a, 2, &s));
  CHECK(isfinite(s.critic_loss) && isfinite(s.actor_loss) && s.updates == 2);
  tdm_agent_destroy(a);
  dims.act_dim = TDM_SAC_FUSED_MAX_ACT + 1;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 1, &a));
  CHECKF(!tdm_sac_fused_active(a), "act_dim %d: fused", dims.act_dim);
  CHECK_OK(feed2(a, NULL, 50, 3));
  CHECK_OK(tdm_agent_update(a, 2, &s));
  CHECK(isfinite(s.critic_loss) && isfinite(s.actor_loss) && s.updates == 2);
  tdm_agent_destroy(a);
}

// A fused agent's checkpoint (with the replay) read into a fresh op-path GPU agent, a CPU agent
// and a fresh fused agent (other seeds): parameters, Adam moments (actor, critic) and log_alpha
// equal bit for bit, the update count carried; the fused reader then continues exactly like the
// writer (5 more updates after new transitions: bitwise equal, statistics too).
static void test_fused_checkpoint(void) {
  NEED_GPU(g);
  const shape sh = {17, 6, 64, 2, 128, TDM_ACT_RELU, 2, 1, true};
  tdm_sac_cfg c = shape_cfg(&sh);
  tdm_agent_dims dims = {sh.obs, sh.act, 2};
  tdm_agent *x, *y, *z, *w;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 17, &x));
  CHECK(tdm_sac_fused_active(x));
  CHECK_OK(feed2(x, NULL, 200, 8));
  CHECK_OK(tdm_agent_update(x, 7, NULL));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_agent_write(x, f, true));
  CHECK_OK(tdm_sac_create(cpu(), &c, &dims, 19, &z));
  CHECK_OK(tdm_sac_create(g, &c, &dims, 20, &w));
  c.fused_update = false;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 18, &y));
  CHECK(!tdm_sac_fused_active(y) && tdm_sac_fused_active(w));
  tdm_agent *rd[3] = {y, z, w};
  const char *rd_name[3] = {"op-path GPU", "CPU", "fused GPU"};
  for (int i = 0; i < 3; i++) {
    rewind(f);
    CHECK_OK(tdm_agent_read(rd[i], f, true, "fused checkpoint"));
    char why[200] = "";
    CHECKF(agents_same(x, rd[i], false, why, sizeof why), "%s reader: %s", rd_name[i], why);
    CHECK(rd[i]->n_updates == 7 && rd[i]->n_observed == x->n_observed);
  }
  fclose(f);
  CHECK_OK(feed2(x, w, 3, 70));
  tdm_agent_stats sx, sw;
  CHECK_OK(tdm_agent_update(x, 5, &sx));
  CHECK_OK(tdm_agent_update(w, 5, &sw));
  char why[200] = "";
  CHECKF(agents_same(x, w, false, why, sizeof why), "after resuming: %s", why);
  CHECK(stats_same(&sx, &sw) && sx.updates == 12);
  for (int i = 0; i < 3; i++) tdm_agent_destroy(rd[i]);
  tdm_agent_destroy(x);
}

// 200 fused updates of the benchmark shape from a filled buffer: the statistics stay finite, the
// critic loss and the temperature move, and actor and critic parameters move far from their
// initial values (the kernel did the work).
static void test_fused_long_run(void) {
  NEED_GPU(g);
  const shape sh = {17, 6, 256, 2, 256, TDM_ACT_RELU, 1, 1, true};
  tdm_sac_cfg c = shape_cfg(&sh);
  tdm_agent_dims dims = {sh.obs, sh.act, 2};
  tdm_agent *x;
  CHECK_OK(tdm_sac_create(g, &c, &dims, 41, &x));
  CHECK(tdm_sac_fused_active(x));
  CHECK_OK(feed2(x, NULL, 1000, 9));
  tdm_mlp *m[3];
  nets(x, m);
  float *a0 = fetch(m[0], 0), *c0 = fetch(m[1], 0);
  CHECK(a0 && c0);
  tdm_agent_stats s0, s1;
  CHECK_OK(tdm_agent_update(x, 1, &s0));
  CHECK_OK(tdm_agent_update(x, 199, &s1));
  float v[10] = {s0.critic_loss, s0.actor_loss, s0.alpha, s0.entropy, s0.q_mean,
                 s1.critic_loss, s1.actor_loss, s1.alpha, s1.entropy, s1.q_mean};
  for (int k = 0; k < 10; k++)
    CHECKF(isfinite(v[k]), "statistic %d of %s is %g", k % 5,
           k < 5 ? "the first update" : "update 200", v[k]);
  CHECK(s1.updates == 200);
  CHECKF(s1.critic_loss != s0.critic_loss && fabsf(s1.alpha - s0.alpha) > 1e-3f,
         "critic loss %g -> %g, alpha %g -> %g", s0.critic_loss, s1.critic_loss, s0.alpha,
         s1.alpha);
  float *a1 = fetch(m[0], 0), *c1 = fetch(m[1], 0);
  CHECK(a1 && c1);
  double da = tdm_t_relerr(a1, a0, m[0]->n_params), dc = tdm_t_relerr(c1, c0, m[1]->n_params);
  free(a0);
  free(a1);
  free(c0);
  free(c1);
  CHECKF(da > 1e-2 && dc > 1e-2 && isfinite(da) && isfinite(dc),
         "parameters moved by %g (actor), %g (critic) relative in 200 updates", da, dc);
  tdm_agent_destroy(x);
}

int main(void) {
  TDM_RUN(test_fused_inactive_on_cpu);
  TDM_RUN(test_fused_active_conditions);
  TDM_RUN(test_fused_vs_cpu);
  TDM_RUN(test_fused_vs_op_graph);
  TDM_RUN(test_fused_act);
  TDM_RUN(test_fused_deterministic);
  TDM_RUN(test_fused_checkpoint);
  TDM_RUN(test_fused_long_run);
  return tdm_test_end();
}
