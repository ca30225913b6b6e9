// MLP backward on a lane (tdm_mlp_set_lane): the weight gradients on a second stream give bit for
// bit the gradients, input gradients and Adam steps of the one-stream backward, in every gradient
// mode, with and without dx, plain and captured in a CUDA graph, and nested inside another lane's
// fork (as SAC calls it). On the CPU the lane only checks the call order; the numbers must match
// there too, and the lane must be idle after every backward. ReLU layers' fused backward on the
// GPU (cuBLASLt DRELU_BGRAD on the input-gradient matmul) against the CPU's unfused pair.
#include "nn_side.h"
#include "test.h"

static tdm_dev *cpu;

// side_make, then the same NaN bytes in dx and the gradients: anything left unwritten shows.
static tdm_status side_make_poisoned(side *s, tdm_dev *dev, const tdm_mlp_spec *spec,
                                     uint64_t seed, int B, bool shared) {
  TDM_TRY(side_make(s, dev, spec, seed, B, shared));
  TDM_TRY(tdm_dev_memset(dev, s->dx, 0xFF, s->nx * 4));
  TDM_TRY(tdm_dev_memset(dev, s->m->grads, 0xFF, s->m->n_params * 4));
  return tdm_dev_sync(dev);
}

// Forward, backward in mode (dx when want_dx), then Adam when cfg.
static tdm_status step(side *s, bool train, tdm_grad_mode mode, bool want_dx,
                       const tdm_adam_cfg *cfg) {
  TDM_TRY(tdm_mlp_forward(s->m, s->acts, s->x, s->B, s->shared, s->y, train));
  TDM_TRY(tdm_mlp_backward(s->m, s->acts, s->dy, want_dx ? s->dx : NULL, mode));
  return cfg ? tdm_mlp_adam(s->m, cfg) : TDM_OK;
}

// Floats that differ bitwise between two buffers of one device (NaN bytes compare as bytes).
static size_t ndiff(tdm_dev *d, const float *a, const float *b, size_t n) {
  float *ha = malloc(n * 4 + 4), *hb = malloc(n * 4 + 4);
  size_t k = 0;
  if (tdm_dev_d2h(d, ha, a, n * 4) != TDM_OK || tdm_dev_d2h(d, hb, b, n * 4) != TDM_OK ||
      tdm_dev_sync(d) != TDM_OK) {
    k = n + 1;
  } else {
    for (size_t i = 0; i < n; i++) k += memcmp(ha + i, hb + i, 4) != 0;
  }
  free(ha), free(hb);
  return k;
}

// Both sides' params, grads, Adam moments, y and dx are bitwise equal.
static bool same(const side *a, const side *b, const char *label, const char *when) {
  const size_t np = a->m->n_params;
  size_t dp = ndiff(a->dev, a->m->params, b->m->params, np);
  size_t dg = ndiff(a->dev, a->m->grads, b->m->grads, np);
  size_t dm = ndiff(a->dev, a->m->adam_m, b->m->adam_m, np);
  size_t dy = ndiff(a->dev, a->y, b->y, a->ny);
  size_t dx = ndiff(a->dev, a->dx, b->dx, a->nx);
  if (dp || dg || dm || dy || dx) {
    snprintf(tdm_t_why, sizeof tdm_t_why,
             "%s, %s: floats differing with the lane: params %zu grads %zu adam_m %zu y %zu "
             "dx %zu (of %zu params)",
             label, when, dp, dg, dm, dy, dx, np);
    tdm_t_failed_now = 1;
    return false;
  }
  return true;
}

// The lane is idle: a fresh fork, back and join go through.
static tdm_status idle(tdm_dev *d, tdm_dev_lane *l) {
  TDM_TRY(tdm_dev_fork(d, l));
  TDM_TRY(tdm_dev_back(d, l));
  return tdm_dev_join(d, l);
}

typedef struct {
  tdm_mlp_spec spec;
  int B;
  bool shared, train;
  const char *label;
} lcase;

// The specs: SAC's critic shape (shared input, 2 members), a deep LayerNorm + dropout ensemble
// (gradient ping-pong past 3 layers, LayerNorm joins), a tanh output, a deep shared-input relu
// ensemble (members' input gradients summed), a single linear layer.
static int cases(lcase *c) {
  int n = 0;
  c[n] = (lcase){tdm_mlp_spec_make(23, 256, 2, 1, 2, TDM_ACT_RELU), 64, true, true, "critic"};
  n++;
  c[n] = (lcase){tdm_mlp_spec_make(10, 48, 4, 5, 3, TDM_ACT_MISH), 16, false, true, "LN+dropout"};
  c[n].spec.layernorm = true;
  c[n].spec.dropout = 0.1f;
  n++;
  c[n] = (lcase){tdm_mlp_spec_make(9, 32, 3, 4, 1, TDM_ACT_SILU), 12, false, false, "tanh out"};
  c[n].spec.out_act = TDM_OUT_TANH;
  n++;
  c[n] = (lcase){tdm_mlp_spec_make(7, 40, 3, 3, 4, TDM_ACT_RELU), 20, true, true, "deep shared"};
  n++;
  c[n] = (lcase){tdm_mlp_spec_make(5, 1, 0, 3, 2, TDM_ACT_RELU), 9, true, true, "one layer"};
  n++;
  return n;
}

// Plain (uncaptured) steps with and without the lane on dev: every mode, with and without dx.
static void plain_equal(tdm_dev *dev) {
  lcase cs[8];
  const int nc = cases(cs);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  tdm_dev_lane *lane = NULL;
  CHECK_OK(tdm_dev_lane_create(dev, &lane));
  for (int k = 0; k < nc && !tdm_t_failed_now; k++) {
    const lcase *c = &cs[k];
    side a, b;
    CHECK_OK(side_make_poisoned(&a, dev, &c->spec, 5 + k, c->B, c->shared));
    CHECK_OK(side_make_poisoned(&b, dev, &c->spec, 5 + k, c->B, c->shared));
    CHECK_OK(tdm_mlp_set_lane(b.m, lane));
    struct {
      tdm_grad_mode mode;
      bool dx;
      const char *when;
    } seq[] = {{TDM_GRAD_SET, true, "SET with dx"},
               {TDM_GRAD_ACC, true, "ACC with dx"},
               {TDM_GRAD_SET, false, "SET no dx"},
               {TDM_GRAD_ACC, false, "ACC no dx"},
               {TDM_GRAD_NONE, true, "NONE with dx"}};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
      CHECK_OK(step(&a, c->train, seq[i].mode, seq[i].dx, NULL));
      CHECK_OK(step(&b, c->train, seq[i].mode, seq[i].dx, NULL));
      if (!same(&a, &b, c->label, seq[i].when)) return;
      CHECK_OK(idle(dev, lane));
    }
    for (int t = 0; t < 2; t++) {
      CHECK_OK(step(&a, c->train, TDM_GRAD_SET, t == 0, &cfg));
      CHECK_OK(step(&b, c->train, TDM_GRAD_SET, t == 0, &cfg));
    }
    if (!same(&a, &b, c->label, "after 2 Adam steps")) return;
    side_free(&a);
    side_free(&b);
  }
  tdm_dev_lane_destroy(lane);
}

static void test_cpu_lane_equal(void) {
  plain_equal(cpu);
}

static void test_gpu_lane_equal(void) {
  NEED_GPU(gpu);
  plain_equal(gpu);
}

// Captured: fwd + bwd (+ Adam) with the lane, optionally nested inside an outer lane's fork,
// replayed 3 times = 3 plain one-stream steps, bit for bit; the graph has parallel branches.
static void graph_equal(bool nested) {
  NEED_GPU(gpu);
  lcase cs[8];
  const int nc = cases(cs);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  tdm_dev_lane *lane = NULL, *outer = NULL;
  CHECK_OK(tdm_dev_lane_create(gpu, &lane));
  CHECK_OK(tdm_dev_lane_create(gpu, &outer));
  for (int k = 0; k < nc && !tdm_t_failed_now; k++) {
    const lcase *c = &cs[k];
    side a, b;
    CHECK_OK(side_make_poisoned(&a, gpu, &c->spec, 11 + k, c->B, c->shared));
    CHECK_OK(side_make_poisoned(&b, gpu, &c->spec, 11 + k, c->B, c->shared));
    CHECK_OK(tdm_mlp_set_lane(b.m, lane));
    for (int t = 0; t < 3; t++) CHECK_OK(step(&a, c->train, TDM_GRAD_SET, true, &cfg));
    tdm_graph *g = NULL;
    CHECK_OK(tdm_graph_begin(gpu));
    tdm_status st = TDM_OK;
    if (nested) st = tdm_dev_fork(gpu, outer);
    if (st == TDM_OK) st = step(&b, c->train, TDM_GRAD_SET, true, &cfg);
    if (nested && st == TDM_OK) st = tdm_dev_back(gpu, outer);
    if (nested && st == TDM_OK) st = tdm_dev_join(gpu, outer);
    if (nested && st != TDM_OK) tdm_dev_lane_abort(gpu, outer);
    tdm_status st2 = tdm_graph_end(gpu, &g);
    CHECK_OK(st);
    CHECK_OK(st2);
    int kernels = 0, path = 0;
    CHECK_OK(tdm_graph_num_nodes(g, NULL, &kernels));
    CHECK_OK(tdm_graph_critical_path(g, &path));
    // at least one weight gradient ran beside the input-gradient chain
    CHECKF(path < kernels, "%s: graph of %d kernels has a chain of %d (no parallel branch)",
           c->label, kernels, path);
    for (int t = 0; t < 3; t++) CHECK_OK(tdm_graph_launch(gpu, g));
    CHECK_OK(tdm_dev_sync(gpu));
    tdm_graph_destroy(g);
    if (!same(&a, &b, c->label, nested ? "graph nested in a fork" : "graph")) return;
    // and the plain nested call (dev on the outer lane while the MLP forks its own)
    if (nested) {
      CHECK_OK(step(&a, c->train, TDM_GRAD_ACC, true, NULL));
      CHECK_OK(tdm_dev_fork(gpu, outer));
      CHECK_OK(step(&b, c->train, TDM_GRAD_ACC, true, NULL));
      CHECK_OK(tdm_dev_back(gpu, outer));
      CHECK_OK(tdm_dev_join(gpu, outer));
      if (!same(&a, &b, c->label, "plain nested in a fork")) return;
    }
    side_free(&a);
    side_free(&b);
  }
  tdm_dev_lane_destroy(lane);
  tdm_dev_lane_destroy(outer);
}

static void test_gpu_graph_equal(void) {
  graph_equal(false);
}
static void test_gpu_graph_nested_equal(void) {
  graph_equal(true);
}

// The critic's forward + backward (no dx) captured with and without the lane: the same kernels,
// and the two hidden-output layers' weight gradients (>= 1 kernel each) leave the longest chain.
static void test_gpu_chain_shorter(void) {
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(23, 256, 2, 1, 2, TDM_ACT_RELU);
  tdm_dev_lane *lane = NULL;
  CHECK_OK(tdm_dev_lane_create(gpu, &lane));
  int kern[2] = {0, 0}, path[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    side a;
    CHECK_OK(side_make_poisoned(&a, gpu, &s, 21, 256, true));
    CHECK_OK(tdm_mlp_set_lane(a.m, k ? lane : NULL));
    tdm_graph *g = NULL;
    CHECK_OK(tdm_graph_begin(gpu));
    tdm_status st = step(&a, true, TDM_GRAD_SET, false, NULL);
    tdm_status st2 = tdm_graph_end(gpu, &g);
    CHECK_OK(st);
    CHECK_OK(st2);
    CHECK_OK(tdm_graph_num_nodes(g, NULL, &kern[k]));
    CHECK_OK(tdm_graph_critical_path(g, &path[k]));
    tdm_graph_destroy(g);
    side_free(&a);
  }
  CHECKF(kern[0] == kern[1] && path[1] <= path[0] - 2,
         "critic fwd+bwd graph: one stream %d kernels, chain %d; lane %d kernels, chain %d "
         "(want the same kernels and a chain at least 2 shorter)",
         kern[0], path[0], kern[1], path[1]);
  tdm_dev_lane_destroy(lane);
}

// Relative error of a GPU buffer against a CPU buffer.
static double rel(tdm_dev *g, const float *a, const float *c, size_t n) {
  float *ha = malloc(n * 4 + 4), *hc = malloc(n * 4 + 4);
  tdm_dev_d2h(g, ha, a, n * 4);
  tdm_dev_sync(g);
  tdm_dev_d2h(cpu, hc, c, n * 4);
  double e = tdm_t_relerr(ha, hc, n);
  free(ha), free(hc);
  return e;
}

// ReLU layers on the GPU keep their masks and their activation + bias backward rides in the
// input-gradient matmul above them (cuBLASLt DRELU_BGRAD): the CPU (unfused pair) agrees to 1e-5
// on outputs, dx and every gradient in SET mode, ACC (unfused on both) and NONE (dx only). Shapes:
// SAC's critic (2 members, shared input) and actor (1 member), and a 3-hidden-layer ensemble.
static void test_gpu_drelu_parity(void) {
  NEED_GPU(gpu);
  struct {
    tdm_mlp_spec spec;
    int B;
    bool shared;
    const char *label;
  } cs[3] = {{tdm_mlp_spec_make(23, 256, 2, 1, 2, TDM_ACT_RELU), 64, true, "critic"},
             {tdm_mlp_spec_make(17, 256, 2, 12, 1, TDM_ACT_RELU), 64, false, "actor"},
             {tdm_mlp_spec_make(11, 72, 3, 5, 3, TDM_ACT_RELU), 40, false, "3 hidden E=3"}};
  tdm_dev_lane *lane = NULL;
  CHECK_OK(tdm_dev_lane_create(gpu, &lane));
  for (int k = 0; k < 3; k++) {
    side c, g;
    CHECK_OK(side_make_poisoned(&c, cpu, &cs[k].spec, 31 + k, cs[k].B, cs[k].shared));
    CHECK_OK(side_make_poisoned(&g, gpu, &cs[k].spec, 31 + k, cs[k].B, cs[k].shared));
    CHECK_OK(tdm_mlp_set_lane(g.m, lane));
    const tdm_grad_mode modes[3] = {TDM_GRAD_SET, TDM_GRAD_ACC, TDM_GRAD_NONE};
    const char *mname[3] = {"SET", "ACC", "NONE"};
    for (int t = 0; t < 3; t++) {
      CHECK_OK(step(&c, true, modes[t], true, NULL));
      CHECK_OK(step(&g, true, modes[t], true, NULL));
      double ey = rel(gpu, g.y, c.y, c.ny), ex = rel(gpu, g.dx, c.dx, c.nx);
      CHECKF(ey < 1e-5 && ex < 1e-5, "%s %s: relerr y %.2e dx %.2e", cs[k].label, mname[t], ey, ex);
      const tdm_mlp *m = c.m;
      for (int l = 0; l < m->spec.n_layers; l++) {
        const tdm_mlp_layer *ly = &m->layers[l];
        const size_t nw = (size_t)m->spec.members * ly->out * ly->in;
        const size_t nb = (size_t)m->spec.members * ly->out;
        double ew = rel(gpu, g.m->grads + ly->w, c.m->grads + ly->w, nw);
        double eb = rel(gpu, g.m->grads + ly->b, c.m->grads + ly->b, nb);
        CHECKF(ew < 1e-5 && eb < 1e-5, "%s %s: layer %d grad relerr W %.2e b %.2e", cs[k].label,
               mname[t], l, ew, eb);
      }
    }
    side_free(&c);
    side_free(&g);
  }
  tdm_dev_lane_destroy(lane);
}

// The masked forward is taken for SAC's shapes when asked for (main sets TDM_LT_DRELU=1; else
// cuBLASLt declined it on this GPU or TDM_NO_CUBLASLT is set, and the backward runs unfused).
static void test_gpu_drelu_taken(void) {
  NEED_GPU(gpu);
  const char *e2 = getenv("TDM_NO_CUBLASLT");
  if (e2 && *e2 && strcmp(e2, "0"))
    SKIP("switched off by the environment");
  tdm_mlp_spec s = tdm_mlp_spec_make(23, 256, 2, 1, 2, TDM_ACT_RELU);
  side g;
  CHECK_OK(side_make_poisoned(&g, gpu, &s, 41, 256, true));
  CHECK_OK(step(&g, true, TDM_GRAD_SET, false, NULL));
  CHECK_OK(tdm_dev_sync(gpu));
  CHECKF(g.acts->rmask[0] && g.acts->rmask_ok[0] && g.acts->rmask_ok[1],
         "critic shape: ReLU masks kept: layer 0 %d, layer 1 %d (cuBLASLt declined "
         "RELU_AUX_BIAS: the DRELU_BGRAD backward is off)",
         (int)g.acts->rmask_ok[0], (int)g.acts->rmask_ok[1]);
  side_free(&g);
}

// The fused ReLU backward's fallback: with the masks marked as kept (as when the GPU forward kept
// them) but the fused matmul declining (always on the CPU), the backward takes the unfused path
// and its deferred output bias gradient returns to the pending sums: bit for bit the plain
// backward, with and without a lane and dx, in SET and NONE mode.
static void test_cpu_drelu_declined_equal(void) {
  tdm_mlp_spec specs[2] = {tdm_mlp_spec_make(23, 64, 2, 1, 2, TDM_ACT_RELU),
                           tdm_mlp_spec_make(9, 24, 3, 4, 1, TDM_ACT_RELU)};
  tdm_dev_lane *lane = NULL;
  CHECK_OK(tdm_dev_lane_create(cpu, &lane));
  for (int k = 0; k < 2; k++)
    for (int v = 0; v < 8; v++) {
      const bool with_lane = v & 1, want_dx = v & 2;
      const tdm_grad_mode mode = v & 4 ? TDM_GRAD_NONE : TDM_GRAD_SET;
      side a, b;
      CHECK_OK(side_make_poisoned(&a, cpu, &specs[k], 51 + k, 16, k == 0));
      CHECK_OK(side_make_poisoned(&b, cpu, &specs[k], 51 + k, 16, k == 0));
      if (with_lane) CHECK_OK(tdm_mlp_set_lane(b.m, lane));
      CHECK_OK(tdm_mlp_forward(a.m, a.acts, a.x, a.B, a.shared, a.y, true));
      CHECK_OK(tdm_mlp_forward(b.m, b.acts, b.x, b.B, b.shared, b.y, true));
      for (int l = 0; l < specs[k].n_layers - 1; l++) b.acts->rmask_ok[l] = true;
      CHECK_OK(tdm_mlp_backward(a.m, a.acts, a.dy, want_dx ? a.dx : NULL, mode));
      CHECK_OK(tdm_mlp_backward(b.m, b.acts, b.dy, want_dx ? b.dx : NULL, mode));
      if (!same(&a, &b, k ? "3 hidden" : "critic", "fused backward declined")) return;
      CHECK_OK(idle(cpu, lane));
      side_free(&a);
      side_free(&b);
    }
  tdm_dev_lane_destroy(lane);
}

// A lane that is busy (forked by someone else) is refused with a message; the backward then puts
// the device back on its stream and leaves the lane idle, and the next backward matches.
static void test_cpu_busy_lane_refused(void) {
  tdm_mlp_spec s = tdm_mlp_spec_make(6, 16, 2, 3, 2, TDM_ACT_RELU);
  side a, b;
  CHECK_OK(side_make_poisoned(&a, cpu, &s, 3, 8, false));
  CHECK_OK(side_make_poisoned(&b, cpu, &s, 3, 8, false));
  tdm_dev_lane *lane = NULL;
  CHECK_OK(tdm_dev_lane_create(cpu, &lane));
  CHECK_OK(tdm_mlp_set_lane(b.m, lane));
  CHECK_OK(tdm_dev_fork(cpu, lane));
  CHECK(step(&b, false, TDM_GRAD_SET, true, NULL) == TDM_ERR_ARG);
  CHECKF(strstr(tdm_errmsg(), "fork") != NULL, "message: %s", tdm_errmsg());
  CHECK_OK(idle(cpu, lane));
  CHECK_OK(step(&a, false, TDM_GRAD_SET, true, NULL));
  CHECK_OK(step(&b, false, TDM_GRAD_SET, true, NULL));
  if (!same(&a, &b, "busy lane", "after the refusal")) return;
  CHECK(tdm_mlp_set_lane(NULL, lane) == TDM_ERR_ARG);
  CHECK_OK(tdm_mlp_set_lane(b.m, NULL));
  CHECK(b.m->lane == NULL);
  tdm_dev_lane_destroy(lane);
  side_free(&a);
  side_free(&b);
}

int main(void) {
  // the fused DRELU_BGRAD path is opt-in (slower on an H200); this file checks it, so turn it on
  // before any op reads the switch
  setenv("TDM_LT_DRELU", "1", 1);
  if (tdm_dev_open("cpu", 1, &cpu) != TDM_OK) {
    printf("FAIL mlp_lane_parity_test: cannot open the CPU device: %s\n", tdm_errmsg());
    return 1;
  }
  TDM_RUN(test_cpu_lane_equal);
  TDM_RUN(test_cpu_busy_lane_refused);
  TDM_RUN(test_cpu_drelu_declined_equal);
  TDM_RUN(test_gpu_lane_equal);
  TDM_RUN(test_gpu_graph_equal);
  TDM_RUN(test_gpu_graph_nested_equal);
  TDM_RUN(test_gpu_chain_shorter);
  TDM_RUN(test_gpu_drelu_parity);
  TDM_RUN(test_gpu_drelu_taken);
  tdm_dev_close(cpu);
  return tdm_test_end();
}
