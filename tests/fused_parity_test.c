// CPU vs GPU parity of the fused ops (tdm_bias_act_forward, tdm_act_bias_backward,
// tdm_adam_step_groups, SAC's tdm_sac_squash_cat and tdm_sac_target_loss). GPU outputs start as NaN
// (0xFF bytes), so an element a kernel forgot stays NaN; relative error under 1e-5 in fp32. The
// grouped Adam also runs replayed in a CUDA graph (step counters bumped in-graph, the sync counter
// back at zero). Skips without a GPU.
#include <stdint.h>

#include "../src/agents/sac_ops.h"
#include "test.h"

#define TOL 1e-5
#define NACTS 6

static tdm_dev *cpu_dev(void) {
  static tdm_dev *cpu = NULL;
  if (!cpu && tdm_dev_open("cpu", 2, &cpu) != TDM_OK) cpu = NULL;
  return cpu;
}

// buffers freed between tests

static float *hrand(size_t n, float lo, float hi, uint64_t seed) {
  float *x = tdm_t_track(NULL, malloc((n ? n : 1) * sizeof(float)));
  if (x) tdm_t_rand(x, n, lo, hi, seed);
  return x;
}

// device bytes: a copy of h, or 0xFF (NaN) when h is NULL
static void *gbuf(tdm_dev *g, const void *h, size_t bytes) {
  void *p = NULL;
  if (tdm_dev_alloc(g, bytes, &p) != TDM_OK || !tdm_t_track(g, p)) return NULL;
  tdm_status st = h ? tdm_dev_h2d(g, p, h, bytes) : tdm_dev_memset(g, p, 0xFF, bytes);
  return st == TDM_OK ? p : NULL;
}

// host copy of device floats
static float *gdown(tdm_dev *g, const float *d, size_t n) {
  float *h = tdm_t_track(NULL, malloc(n * sizeof(float)));
  if (!h || tdm_dev_d2h(g, h, d, n * sizeof(float)) != TDM_OK || tdm_dev_sync(g) != TDM_OK)
    return NULL;
  return h;
}

static long first_nan(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (isnan(x[i])) return (long)i;
  return -1;
}

#define CHECK_GPU(what, gpu, dptr, cpu_h, n)                                                  \
  do {                                                                                        \
    size_t n_ = (n);                                                                          \
    const float *g_ = gdown((gpu), (dptr), n_);                                               \
    CHECKF(g_ != NULL, "%s: download failed", (what));                                        \
    long nan_at_ = first_nan(g_, n_);                                                         \
    CHECKF(nan_at_ < 0, "%s: GPU element %ld of %zu not written (NaN)", (what), nan_at_, n_); \
    double re_ = tdm_t_relerr(g_, (cpu_h), n_);                                               \
    CHECKF(re_ < TOL, "%s: relative error %.3g >= %.3g", (what), re_, (double)TOL);           \
  } while (0)

#define RUN(fn)    \
  do {             \
    TDM_RUN(fn);   \
    tdm_t_release_all(); \
  } while (0)

static const int shapes[][3] = {{1, 256, 256}, {3, 67, 45}, {2, 512, 1}, {7, 33, 200}};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static void test_bias_act_forward(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  char what[128];
  for (int s = 0; s < NSHAPES; s++) {
    const int E = shapes[s][0], M = shapes[s][1], N = shapes[s][2];
    const size_t n = (size_t)E * M * N, nb = (size_t)E * N;
    for (int a = 0; a < NACTS; a++) {
      float *z = hrand(n, -3, 3, 100 + a), *b = hrand(nb, -1, 1, 200 + a), *y = hrand(n, 0, 1, 1);
      CHECK(z && b && y);
      float *gz = gbuf(gpu, z, n * 4), *gb = gbuf(gpu, b, nb * 4), *gy = gbuf(gpu, NULL, n * 4);
      float *gz2 = gbuf(gpu, z, n * 4);
      CHECK(gz && gb && gy && gz2);
      CHECK_OK(tdm_bias_act_forward(gpu, (tdm_act)a, gz, gb, gy, E, M, N));
      CHECK_OK(tdm_bias_act_forward(gpu, (tdm_act)a, gz2, gb, gz2, E, M, N));  // aliased
      CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, z, b, y, E, M, N));
      snprintf(what, sizeof what, "bias_act_forward %s %dx%dx%d z", tdm_act_name((tdm_act)a), E, M,
               N);
      CHECK_GPU(what, gpu, gz, z, n);
      snprintf(what, sizeof what, "bias_act_forward %s %dx%dx%d y", tdm_act_name((tdm_act)a), E, M,
               N);
      CHECK_GPU(what, gpu, gy, y, n);
      snprintf(what, sizeof what, "bias_act_forward %s %dx%dx%d aliased", tdm_act_name((tdm_act)a),
               E, M, N);
      CHECK_GPU(what, gpu, gz2, y, n);
    }
  }
}

static void test_act_bias_backward(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  char what[128];
  for (int s = 0; s < NSHAPES; s++) {
    const int E = shapes[s][0], M = shapes[s][1], N = shapes[s][2];
    const size_t n = (size_t)E * M * N, nb = (size_t)E * N;
    for (int a = 0; a < NACTS; a++) {
      for (int mode = 0; mode < 3; mode++) {  // beta 0, beta 1, no db (in place over dy)
        const float beta = mode == 1 ? 1.0f : 0.0f;
        float *x = hrand(n, -3, 3, 300 + a), *y = hrand(n, 0, 1, 2), *dy = hrand(n, -1, 1, 400 + a);
        float *db = hrand(nb, -1, 1, 500 + a), *dz = hrand(n, 0, 1, 3);
        CHECK(x && y && dy && db && dz);
        CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
        float *gx = gbuf(gpu, x, n * 4), *gy = gbuf(gpu, y, n * 4), *gdy = gbuf(gpu, dy, n * 4);
        // beta = 0 must not read db: it starts as NaN then
        float *gdb = gbuf(gpu, mode == 1 ? db : NULL, nb * 4);
        float *gdz = mode == 2 ? gdy : gbuf(gpu, NULL, n * 4);
        CHECK(gx && gy && gdy && gdb && gdz);
        CHECK_OK(tdm_act_bias_backward(gpu, (tdm_act)a, gx, gy, gdy, gdz, mode == 2 ? NULL : gdb, E,
                                       M, N, beta));
        float *cdz = mode == 2 ? dy : dz;
        CHECK_OK(tdm_act_bias_backward(cpu, (tdm_act)a, x, y, dy, cdz, mode == 2 ? NULL : db, E, M,
                                       N, beta));
        snprintf(what, sizeof what, "act_bias_backward %s %dx%dx%d mode %d dz",
                 tdm_act_name((tdm_act)a), E, M, N, mode);
        CHECK_GPU(what, gpu, gdz, cdz, n);
        if (mode < 2) {
          snprintf(what, sizeof what, "act_bias_backward %s %dx%dx%d mode %d db",
                   tdm_act_name((tdm_act)a), E, M, N, mode);
          CHECK_GPU(what, gpu, gdb, db, nb);
        }
      }
    }
  }
}

// The second bias gradient of act_bias_backward2 (NaN-poisoned with beta 0, widths not a
// multiple of 32).
static void test_act_bias_backward2(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  const int E = 2, M = 256, N = 256;
  const int widths[3] = {1, 45, 64};
  char what[96];
  for (int k = 0; k < 3; k++)
    for (int beta = 0; beta <= 1; beta++) {
      const int N2 = widths[k];
      const size_t n = (size_t)E * M * N, n2 = (size_t)E * M * N2;
      float *x = hrand(n, -3, 3, 1100), *y = hrand(n, 0, 1, 12), *dy = hrand(n, -1, 1, 1101);
      float *dz = hrand(n, 0, 1, 13), *db = hrand((size_t)E * N, -1, 1, 1102);
      float *dy2 = hrand(n2, -1, 1, 1103), *db2 = hrand((size_t)E * N2, -1, 1, 1104);
      CHECK(x && y && dy && dz && db && dy2 && db2);
      CHECK_OK(tdm_act_forward(cpu, TDM_ACT_RELU, x, y, n));
      float *gx = gbuf(gpu, x, n * 4), *gy = gbuf(gpu, y, n * 4), *gdy = gbuf(gpu, dy, n * 4);
      float *gdz = gbuf(gpu, NULL, n * 4), *gdy2 = gbuf(gpu, dy2, n2 * 4);
      float *gdb = gbuf(gpu, beta ? db : NULL, (size_t)E * N * 4);
      float *gdb2 = gbuf(gpu, beta ? db2 : NULL, (size_t)E * N2 * 4);
      CHECK(gx && gy && gdy && gdz && gdy2 && gdb && gdb2);
      CHECK_OK(tdm_act_bias_backward2(gpu, TDM_ACT_RELU, gx, gy, gdy, gdz, gdb, E, M, N,
                                      (float)beta, gdy2, gdb2, N2));
      CHECK_OK(tdm_act_bias_backward2(cpu, TDM_ACT_RELU, x, y, dy, dz, db, E, M, N, (float)beta,
                                      dy2, db2, N2));
      snprintf(what, sizeof what, "act_bias_backward2 N2 %d beta %d dz", N2, beta);
      CHECK_GPU(what, gpu, gdz, dz, n);
      snprintf(what, sizeof what, "act_bias_backward2 N2 %d beta %d db", N2, beta);
      CHECK_GPU(what, gpu, gdb, db, (size_t)E * N);
      snprintf(what, sizeof what, "act_bias_backward2 N2 %d beta %d db2", N2, beta);
      CHECK_GPU(what, gpu, gdb2, db2, (size_t)E * N2);
    }
}

static void test_act_backward_interleave(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  const int E = 2, M = 256, N = 256;
  const size_t n = (size_t)E * M * N;
  char what[96];
  for (int a = 0; a < NACTS; a++) {
    float *x = hrand(n, -3, 3, 1200 + a), *y = hrand(n, 0, 1, 14), *dy = hrand(n, -1, 1, 1210 + a);
    float *dz = hrand(n, 0, 1, 15);
    CHECK(x && y && dy && dz);
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
    float *gx = gbuf(gpu, x, n * 4), *gy = gbuf(gpu, y, n * 4), *gdy = gbuf(gpu, dy, n * 4);
    float *gdz = gbuf(gpu, NULL, n * 4);
    CHECK(gx && gy && gdy && gdz);
    CHECK_OK(tdm_act_backward_interleave(gpu, (tdm_act)a, gx, gy, gdy, gdz, E, M, N));
    CHECK_OK(tdm_act_backward_interleave(cpu, (tdm_act)a, x, y, dy, dz, E, M, N));
    snprintf(what, sizeof what, "act_backward_interleave %s", tdm_act_name((tdm_act)a));
    CHECK_GPU(what, gpu, gdz, dz, n);
  }
}

// Adam over 3 groups (one much larger than a block), plain or replayed in a graph, 3 steps.
static void adam_groups_case(int use_graph) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { NG = 3, STEPS = 3 };
  const size_t sz[NG] = {150001, 1, 3000};
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  cfg.weight_decay = 0.01f;
  float *p[NG], *m[NG], *v[NG], *gp[NG], *gm[NG], *gv[NG], *gg[NG], *ema[NG], *gema[NG];
  int32_t st[NG] = {0, 5, 2}, *gst[NG];
  tdm_adam_group gr[NG];
  for (int k = 0; k < NG; k++) {
    p[k] = hrand(sz[k], -1, 1, 600 + k);
    m[k] = hrand(sz[k], -0.01f, 0.01f, 610 + k);
    v[k] = hrand(sz[k], 0, 1e-4f, 620 + k);
    CHECK(p[k] && m[k] && v[k]);
    gp[k] = gbuf(gpu, p[k], sz[k] * 4);
    gm[k] = gbuf(gpu, m[k], sz[k] * 4);
    gv[k] = gbuf(gpu, v[k], sz[k] * 4);
    gg[k] = gbuf(gpu, NULL, sz[k] * 4);
    gst[k] = gbuf(gpu, &st[k], 4);
    CHECK(gp[k] && gm[k] && gv[k] && gg[k] && gst[k]);
    // the large group also moves a Polyak copy
    ema[k] = k == 0 ? hrand(sz[k], -1, 1, 630) : NULL;
    gema[k] = k == 0 ? gbuf(gpu, ema[k], sz[k] * 4) : NULL;
    CHECK(k != 0 || (ema[k] && gema[k]));
    gr[k] = (tdm_adam_group){gp[k], gg[k], gm[k], gv[k], sz[k], gst[k], gema[k], 0.01f};
  }
  uint32_t zero = 0, sync_h = 1;
  uint32_t *gsync = gbuf(gpu, &zero, 4);
  CHECK(gsync);
  tdm_graph *graph = NULL;
  if (use_graph) {
    CHECK_OK(tdm_graph_begin(gpu));
    tdm_status s1 = tdm_adam_step_groups(gpu, gr, NG, &cfg, gsync);
    tdm_status s2 = tdm_graph_end(gpu, &graph);
    CHECK_OK(s1);
    CHECK_OK(s2);
  }
  tdm_status st_run = TDM_OK;
  for (int it = 0; it < STEPS && st_run == TDM_OK; it++) {
    tdm_adam_group cg[NG];
    for (int k = 0; k < NG; k++) {
      float *g = hrand(sz[k], -1, 1, 700 + 10 * it + k);
      CHECK(g);
      CHECK_OK(tdm_dev_h2d(gpu, gg[k], g, sz[k] * 4));
      cg[k] = (tdm_adam_group){p[k], g, m[k], v[k], sz[k], &st[k], ema[k], 0.01f};
    }
    CHECK_OK(tdm_adam_step_groups(cpu, cg, NG, &cfg, &zero));
    st_run =
        use_graph ? tdm_graph_launch(gpu, graph) : tdm_adam_step_groups(gpu, gr, NG, &cfg, gsync);
    if (st_run == TDM_OK) st_run = tdm_dev_sync(gpu);  // the gradients are refilled next step
  }
  tdm_graph_destroy(graph);
  CHECK_OK(st_run);
  char what[96];
  for (int k = 0; k < NG; k++) {
    int32_t gs = -1;
    CHECK_OK(tdm_dev_d2h(gpu, &gs, gst[k], 4));
    CHECK_OK(tdm_dev_sync(gpu));
    CHECKF(gs == st[k], "adam groups%s: group %d step gpu %d cpu %d", use_graph ? " graph" : "", k,
           (int)gs, (int)st[k]);
    snprintf(what, sizeof what, "adam groups%s group %d p", use_graph ? " graph" : "", k);
    CHECK_GPU(what, gpu, gp[k], p[k], sz[k]);
    snprintf(what, sizeof what, "adam groups%s group %d m", use_graph ? " graph" : "", k);
    CHECK_GPU(what, gpu, gm[k], m[k], sz[k]);
    snprintf(what, sizeof what, "adam groups%s group %d v", use_graph ? " graph" : "", k);
    CHECK_GPU(what, gpu, gv[k], v[k], sz[k]);
    if (ema[k]) {
      snprintf(what, sizeof what, "adam groups%s group %d ema", use_graph ? " graph" : "", k);
      CHECK_GPU(what, gpu, gema[k], ema[k], sz[k]);
    }
  }
  CHECK(st[0] == STEPS && st[1] == 5 + STEPS && st[2] == 2 + STEPS);
  CHECK_OK(tdm_dev_d2h(gpu, &sync_h, gsync, 4));
  CHECK_OK(tdm_dev_sync(gpu));
  CHECKF(sync_h == 0, "adam groups: sync counter left at %u", sync_h);
}

static void test_adam_groups(void) {
  adam_groups_case(0);
}
static void test_adam_groups_graph(void) {
  adam_groups_case(1);
}

// An MLP training step with the fused ops (relu hidden, tanh output, E = 2) on both devices.
static void test_mlp_step(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(23, 64, 2, 5, 2, TDM_ACT_RELU);
  s.out_act = TDM_OUT_TANH;
  const int B = 37;
  tdm_mlp *mc = NULL, *mg = NULL;
  tdm_mlp_acts *ac = NULL, *ag = NULL;
  CHECK_OK(tdm_mlp_create(cpu, &s, &mc));
  CHECK_OK(tdm_mlp_create(gpu, &s, &mg));
  tdm_status st = tdm_mlp_init(mc, 5);
  if (st == TDM_OK) st = tdm_mlp_init(mg, 5);
  if (st == TDM_OK) st = tdm_mlp_acts_create(mc, B, &ac);
  if (st == TDM_OK) st = tdm_mlp_acts_create(mg, B, &ag);
  const size_t nx = (size_t)2 * B * 23, ny = (size_t)2 * B * 5;
  float *x = hrand(nx, -1, 1, 800), *dy = hrand(ny, -1, 1, 801), *dx = hrand(nx, 0, 1, 802);
  float *gx = gbuf(gpu, x, nx * 4), *gdy = gbuf(gpu, dy, ny * 4), *gdx = gbuf(gpu, NULL, nx * 4);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  for (int it = 0; it < 2 && st == TDM_OK; it++) {
    st = tdm_mlp_forward(mc, ac, x, B, false, NULL, true);
    if (st == TDM_OK) st = tdm_mlp_backward(mc, ac, dy, dx, TDM_GRAD_SET);
    if (st == TDM_OK) st = tdm_mlp_adam(mc, &cfg);
    if (st == TDM_OK) st = tdm_mlp_forward(mg, ag, gx, B, false, NULL, true);
    if (st == TDM_OK) st = tdm_mlp_backward(mg, ag, gdy, gdx, TDM_GRAD_SET);
    if (st == TDM_OK) st = tdm_mlp_adam(mg, &cfg);
  }
  if (st == TDM_OK && x && dy && dx && gx && gdy && gdx) {
    CHECK_GPU("mlp step dx", gpu, gdx, dx, nx);
    CHECK_GPU("mlp step grads", gpu, mg->grads, mc->grads, mc->n_params);
    CHECK_GPU("mlp step params", gpu, mg->params, mc->params, mc->n_params);
    CHECK_GPU("mlp step output", gpu, ag->a[2], ac->a[2], ny);
  }
  tdm_mlp_acts_destroy(ac);
  tdm_mlp_acts_destroy(ag);
  tdm_mlp_destroy(mc);
  tdm_mlp_destroy(mg);
  CHECK_OK(st);
  CHECK(x && dy && dx && gx && gdy && gdx);
}

// Every activation (none and relu take the cuBLASLt epilogue), shared and per-member inputs,
// and pointers only 4-byte aligned (offset by one float).
static void test_linear_act_forward(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  const int dims[][4] = {{1, 256, 256, 23}, {2, 256, 1, 256}, {2, 37, 45, 29}, {7, 64, 200, 23}};
  char what[128];
  for (int s = 0; s < 4; s++)
    for (int shared = 0; shared < 2; shared++)
      for (int off = 0; off < 2; off++)
        for (int a = 0; a < NACTS; a++) {
          const int E = dims[s][0], M = dims[s][1], N = dims[s][2], K = dims[s][3];
          const long long sx = shared ? 0 : (long long)M * K;
          const size_t nx = (size_t)(shared ? 1 : E) * M * K + 1, nw = (size_t)E * N * K + 1;
          const size_t nb = (size_t)E * N + 1, ny = (size_t)E * M * N + 1;
          float *x = hrand(nx, -1, 1, 1000 + s), *w = hrand(nw, -0.3f, 0.3f, 1010 + s);
          float *b = hrand(nb, -1, 1, 1020 + s), *y = hrand(ny, 0, 1, 10);
          CHECK(x && w && b && y);
          float *gx = gbuf(gpu, x, nx * 4), *gw = gbuf(gpu, w, nw * 4), *gb = gbuf(gpu, b, nb * 4);
          float *gy = gbuf(gpu, NULL, ny * 4);
          CHECK(gx && gw && gb && gy);
          CHECK_OK(tdm_linear_act_forward(gpu, (tdm_act)a, M, N, K, gx + off, K, sx, gw + off, K,
                                          (long long)N * K, gb + off, gy + off, E));
          CHECK_OK(tdm_linear_act_forward(cpu, (tdm_act)a, M, N, K, x + off, K, sx, w + off, K,
                                          (long long)N * K, b + off, y + off, E));
          snprintf(what, sizeof what, "linear_act %s E %d M %d N %d K %d shared %d offset %d",
                   tdm_act_name((tdm_act)a), E, M, N, K, shared, off);
          CHECK_GPU(what, gpu, gy + off, y + off, ny - 1);
        }
}

static void test_sac_fused_ops(void) {
  NEED_GPU(gpu);
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  const int B = 300, O = 17, A = 6, W = O + A;
  float *head = hrand((size_t)B * 2 * A, -3, 3, 900), *eps = hrand((size_t)B * A, -2, 2, 901);
  float *obs = hrand((size_t)B * O, -1, 1, 902);
  float *xq = hrand((size_t)B * W, 0, 1, 4), *act = hrand((size_t)B * A, 0, 1, 5);
  float *lp = hrand(B, 0, 1, 6);
  CHECK(head && eps && obs && xq && act && lp);
  float *ghead = gbuf(gpu, head, (size_t)B * 2 * A * 4), *geps = gbuf(gpu, eps, (size_t)B * A * 4);
  float *gobs = gbuf(gpu, obs, (size_t)B * O * 4);
  float *actb = hrand((size_t)B * A, -1, 1, 903), *cat = hrand((size_t)B * W, 0, 1, 11);
  float *gactb = actb ? gbuf(gpu, actb, (size_t)B * A * 4) : NULL;
  CHECK(ghead && geps && gobs && actb && cat && gactb);
  for (int det = 0; det < 2; det++) {
    float *gxq = gbuf(gpu, NULL, (size_t)B * W * 4), *gact = gbuf(gpu, NULL, (size_t)B * A * 4);
    float *glp = gbuf(gpu, NULL, (size_t)B * 4), *gcat = gbuf(gpu, NULL, (size_t)B * W * 4);
    CHECK(gxq && gact && glp && gcat);
    // the second concatenation rides along in the deterministic case
    CHECK_OK(tdm_sac_squash_cat(gpu, ghead, det ? NULL : geps, gobs, O, gxq, gact, glp, B, A,
                                -20.0f, 2.0f, det ? gobs : NULL, det ? gactb : NULL,
                                det ? gcat : NULL));
    CHECK_OK(tdm_sac_squash_cat(cpu, head, det ? NULL : eps, obs, O, xq, act, lp, B, A, -20.0f,
                                2.0f, det ? obs : NULL, det ? actb : NULL, det ? cat : NULL));
    if (det) CHECK_GPU("squash_cat second concat", gpu, gcat, cat, (size_t)B * W);
    CHECK_GPU(det ? "squash_cat det xq" : "squash_cat xq", gpu, gxq, xq, (size_t)B * W);
    CHECK_GPU(det ? "squash_cat det act" : "squash_cat act", gpu, gact, act, (size_t)B * A);
    CHECK_GPU(det ? "squash_cat det logp" : "squash_cat logp", gpu, glp, lp, (size_t)B);
  }
  float *qt = hrand(2 * (size_t)B, -5, 5, 910), *logp = hrand(B, -3, 1, 911);
  float *rew = hrand(B, -1, 1, 912), *term = hrand(B, 0, 1, 913),
        *q = hrand(2 * (size_t)B, -5, 5, 914);
  float *y = hrand(B, 0, 1, 7), *dq = hrand(2 * (size_t)B, 0, 1, 8);
  float *stats = hrand(TDM_SAC_ST_N, 0, 1, 9), la = -0.7f;
  CHECK(qt && logp && rew && term && q && y && dq && stats);
  for (int b = 0; b < B; b++) term[b] = term[b] < 0.2f ? 1.0f : 0.0f;
  tdm_rng_ctr rng = {3, 10}, grng_h = {0, 0};
  float *gqt = gbuf(gpu, qt, 2 * (size_t)B * 4), *glogp = gbuf(gpu, logp, (size_t)B * 4);
  float *grew = gbuf(gpu, rew, (size_t)B * 4), *gterm = gbuf(gpu, term, (size_t)B * 4);
  float *gq = gbuf(gpu, q, 2 * (size_t)B * 4), *gla = gbuf(gpu, &la, 4);
  float *gy = gbuf(gpu, NULL, (size_t)B * 4), *gdq = gbuf(gpu, NULL, 2 * (size_t)B * 4);
  float *gst = gbuf(gpu, NULL, TDM_SAC_ST_N * 4);
  tdm_rng_ctr *grng = gbuf(gpu, &rng, sizeof rng);
  CHECK(gqt && glogp && grew && gterm && gq && gla && gy && gdq && gst && grng);
  CHECK_OK(
      tdm_sac_target_loss(gpu, gqt, glogp, grew, gterm, gla, 0.99f, gq, gy, gdq, gst, B, grng));
  CHECK_OK(tdm_sac_target_loss(cpu, qt, logp, rew, term, &la, 0.99f, q, y, dq, stats, B, &rng));
  CHECK_GPU("target_loss y", gpu, gy, y, (size_t)B);
  CHECK_GPU("target_loss dq", gpu, gdq, dq, 2 * (size_t)B);
  // the slots the op writes: critic loss, alpha, mean q (the others stay NaN on the GPU)
  float *hst = gdown(gpu, gst, TDM_SAC_ST_N);
  CHECK(hst);
  const int slots[3] = {TDM_SAC_ST_CRITIC, TDM_SAC_ST_ALPHA, TDM_SAC_ST_QMEAN};
  for (int k = 0; k < 3; k++) {
    float g = hst[slots[k]], c = stats[slots[k]];
    CHECKF(fabsf(g - c) <= 1e-5f * (1.0f + fabsf(c)), "target_loss stats[%d]: gpu %g cpu %g",
           slots[k], g, c);
  }
  CHECK_OK(tdm_dev_d2h(gpu, &grng_h, grng, sizeof grng_h));
  CHECK_OK(tdm_dev_sync(gpu));
  CHECKF(grng_h.seed == 3 && grng_h.calls == 11 && rng.calls == 11,
         "target_loss rng: gpu calls %llu, cpu %llu, want 11", (unsigned long long)grng_h.calls,
         (unsigned long long)rng.calls);
}

int main(void) {
  RUN(test_bias_act_forward);
  RUN(test_act_bias_backward);
  RUN(test_act_bias_backward2);
  RUN(test_act_backward_interleave);
  RUN(test_adam_groups);
  RUN(test_adam_groups_graph);
  RUN(test_mlp_step);
  RUN(test_sac_fused_ops);
  RUN(test_linear_act_forward);
  tdm_dev_close(cpu_dev());
  return tdm_test_end();
}
