// nn parity (GPU): the same MLP spec and seed on the CPU and the GPU give the same outputs, input
// and parameter gradients, and parameters after Adam steps (relative error < 1e-5, fp32, TF32
// off); a CUDA graph of forward + backward + Adam replays the uncaptured GPU numbers.
#include "nn_side.h"
#include "test.h"

static tdm_dev *cpu;

#define TOL 1e-5

// NaN bytes over the outputs and gradients, so that anything left unwritten shows.
static tdm_status poison(side *s) {
  TDM_TRY(tdm_dev_memset(s->dev, s->y, 0xFF, s->ny * 4));
  TDM_TRY(tdm_dev_memset(s->dev, s->dx, 0xFF, s->nx * 4));
  return tdm_dev_memset(s->dev, s->m->grads, 0xFF, s->m->n_params * 4);
}

static tdm_status fwd_bwd(side *s, bool train) {
  TDM_TRY(tdm_mlp_forward(s->m, s->acts, s->x, s->B, s->shared, s->y, train));
  return tdm_mlp_backward(s->m, s->acts, s->dy, s->dx, TDM_GRAD_SET);
}

static tdm_status train_step(side *s, const tdm_adam_cfg *cfg) {
  TDM_TRY(fwd_bwd(s, true));
  return tdm_mlp_adam(s->m, cfg);
}

// Host copy of n floats of device memory (caller frees).
static float *host(tdm_dev *dev, const float *d, size_t n) {
  float *h = malloc(n * 4 + 4);
  tdm_dev_d2h(dev, h, d, n * 4);
  tdm_dev_sync(dev);
  return h;
}

// relerr of one device buffer against another (possibly on other devices)
static double cmp(tdm_dev *da, const float *a, tdm_dev *db, const float *b, size_t n) {
  float *ha = host(da, a, n), *hb = host(db, b, n);
  double e = tdm_t_relerr(ha, hb, n);
  free(ha), free(hb);
  return e;
}

// Compare per tensor; the message names the layer and tensor.
static void cmp_params(const side *g, const float *pg, const side *c, const float *pc,
                       const char *what, const char *label) {
  const tdm_mlp *m = c->m;
  for (int l = 0; l < m->spec.n_layers; l++) {
    const tdm_mlp_layer *ly = &m->layers[l];
    const size_t nw = (size_t)m->spec.members * ly->out * ly->in;
    const size_t nb = (size_t)m->spec.members * ly->out;
    double ew = cmp(g->dev, pg + ly->w, c->dev, pc + ly->w, nw);
    double eb = cmp(g->dev, pg + ly->b, c->dev, pc + ly->b, nb);
    CHECKF(ew < TOL && eb < TOL, "%s: %s layer %d relerr W %.2e b %.2e", label, what, l, ew, eb);
    if (ly->ln_g) {
      double e1 = cmp(g->dev, pg + ly->ln_g, c->dev, pc + ly->ln_g, nb);
      double e2 = cmp(g->dev, pg + ly->ln_b, c->dev, pc + ly->ln_b, nb);
      CHECKF(e1 < TOL && e2 < TOL, "%s: %s layer %d relerr gamma %.2e beta %.2e", label, what, l,
             e1, e2);
    }
  }
}

// CPU vs GPU for one spec: forward, backward, then 3 Adam steps.
static void parity_case(tdm_dev *gpu, const tdm_mlp_spec *spec, int B, bool shared, bool train,
                        const char *label) {
  side c, g;
  CHECK_OK(side_make(&c, cpu, spec, 42, B, shared));
  CHECK_OK(side_make(&g, gpu, spec, 42, B, shared));
  const size_t np = c.m->n_params;
  double e = cmp(gpu, g.m->params, cpu, c.m->params, np);
  CHECKF(e == 0, "%s: initial parameters differ (%.2e): init must be device independent", label, e);
  CHECK_OK(poison(&g));
  CHECK_OK(fwd_bwd(&c, train));
  CHECK_OK(fwd_bwd(&g, train));
  e = cmp(gpu, g.y, cpu, c.y, c.ny);
  CHECKF(e < TOL, "%s: forward output relerr %.2e", label, e);
  e = cmp(gpu, g.dx, cpu, c.dx, c.nx);
  CHECKF(e < TOL, "%s: input gradient relerr %.2e", label, e);
  cmp_params(&g, g.m->grads, &c, c.m->grads, "param grad", label);
  if (tdm_t_failed_now) return;
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  for (int t = 0; t < 3; t++) {
    CHECK_OK(poison(&g));
    CHECK_OK(train_step(&c, &cfg));
    CHECK_OK(train_step(&g, &cfg));
  }
  cmp_params(&g, g.m->params, &c, c.m->params, "params after 3 Adam steps", label);
  if (tdm_t_failed_now) return;
  e = cmp(gpu, g.m->adam_v, cpu, c.m->adam_v, np);
  CHECKF(e < TOL, "%s: Adam v relerr %.2e", label, e);
  e = cmp(gpu, g.y, cpu, c.y, c.ny);
  CHECKF(e < TOL, "%s: output after 3 steps relerr %.2e", label, e);
  side_free(&c);
  side_free(&g);
}

static void test_parity_relu_plain(void) {
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(17, 64, 2, 6, 1, TDM_ACT_RELU);
  parity_case(gpu, &s, 32, false, false, "relu plain");
}

static void test_parity_mish_ln_simnorm_e5(void) {
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(12, 96, 2, 32, 5, TDM_ACT_MISH);
  s.layernorm = true;
  s.out_act = TDM_OUT_SIMNORM;
  s.simnorm_group = 8;
  parity_case(gpu, &s, 24, false, false, "mish+LN simnorm E=5");
}

static void test_parity_tanh_out(void) {
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(10, 48, 3, 4, 2, TDM_ACT_SILU);
  s.out_act = TDM_OUT_TANH;
  s.dropout = 0.0f;
  parity_case(gpu, &s, 16, false, true, "silu tanh-out E=2");
}

static void test_parity_shared_input(void) {
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(9, 40, 2, 5, 4, TDM_ACT_ELU);
  s.layernorm = true;
  parity_case(gpu, &s, 20, true, false, "shared elu+LN E=4");
}

static void test_parity_dropout(void) {
  // the CPU twin draws the same Philox streams, so even dropout masks agree
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(8, 64, 2, 3, 3, TDM_ACT_TANH);
  s.dropout = 0.2f;
  parity_case(gpu, &s, 16, false, true, "dropout 0.2 E=3");
}

static void test_graph_matches_plain(void) {
  // forward + backward + Adam captured once and replayed 3 times = 3 uncaptured GPU steps;
  // dropout on, so a graph that replayed the same masks would differ
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(12, 96, 2, 32, 5, TDM_ACT_MISH);
  s.layernorm = true;
  s.out_act = TDM_OUT_SIMNORM;
  s.dropout = 0.1f;
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  cfg.max_grad_norm = 1.0f;
  side a, b;
  CHECK_OK(side_make(&a, gpu, &s, 7, 24, false));
  CHECK_OK(side_make(&b, gpu, &s, 7, 24, false));
  CHECK_OK(poison(&a));
  CHECK_OK(poison(&b));
  for (int t = 0; t < 3; t++) CHECK_OK(train_step(&a, &cfg));
  tdm_graph *g = NULL;
  CHECK_OK(tdm_graph_begin(gpu));
  tdm_status st = train_step(&b, &cfg);
  tdm_status st2 = tdm_graph_end(gpu, &g);
  CHECK_OK(st);
  CHECK_OK(st2);
  for (int t = 0; t < 3; t++) CHECK_OK(tdm_graph_launch(gpu, g));
  CHECK_OK(tdm_dev_sync(gpu));
  const size_t np = a.m->n_params;
  double ep = cmp(gpu, b.m->params, gpu, a.m->params, np);
  double eg = cmp(gpu, b.m->grads, gpu, a.m->grads, np);
  double ey = cmp(gpu, b.y, gpu, a.y, a.ny);
  double ex = cmp(gpu, b.dx, gpu, a.dx, a.nx);
  CHECKF(ep < 1e-6 && eg < 1e-6 && ey < 1e-6 && ex < 1e-6,
         "graph vs plain relerr: params %.2e grads %.2e y %.2e dx %.2e", ep, eg, ey, ex);
  int32_t sa = 0, sb = 0;
  tdm_dev_d2h(gpu, &sa, a.m->adam_step, 4);
  tdm_dev_d2h(gpu, &sb, b.m->adam_step, 4);
  tdm_dev_sync(gpu);
  CHECKF(sa == 3 && sb == 3, "Adam steps: plain %d, graph %d", sa, sb);
  // and a 4th replay moves on (fresh dropout masks, new parameters)
  float *p3 = host(gpu, b.m->params, np);
  CHECK_OK(tdm_graph_launch(gpu, g));
  float *p4 = host(gpu, b.m->params, np);
  CHECK(memcmp(p3, p4, np * 4) != 0);
  free(p3), free(p4);
  tdm_graph_destroy(g);
  side_free(&a);
  side_free(&b);
}

static void test_file_across_devices(void) {
  // written from the GPU, read on the CPU: bitwise the same parameters and Adam state
  NEED_GPU(gpu);
  tdm_mlp_spec s = tdm_mlp_spec_make(6, 32, 2, 3, 2, TDM_ACT_RELU);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  side g, c;
  CHECK_OK(side_make(&g, gpu, &s, 3, 8, false));
  CHECK_OK(side_make(&c, cpu, &s, 4, 8, false));
  for (int t = 0; t < 2; t++) CHECK_OK(train_step(&g, &cfg));
  FILE *f = tmpfile();
  CHECK(f);
  CHECK_OK(tdm_mlp_write(g.m, f, true));
  rewind(f);
  CHECK_OK(tdm_mlp_read(c.m, f, true, "gpu net"));
  fclose(f);
  const size_t np = g.m->n_params;
  CHECK(cmp(gpu, g.m->params, cpu, c.m->params, np) == 0);
  CHECK(cmp(gpu, g.m->adam_m, cpu, c.m->adam_m, np) == 0);
  side_free(&g);
  side_free(&c);
}

int main(void) {
  if (tdm_dev_open("cpu", 1, &cpu) != TDM_OK) {
    printf("FAIL nn_parity_test: cannot open the CPU device: %s\n", tdm_errmsg());
    return 1;
  }
  TDM_RUN(test_parity_relu_plain);
  TDM_RUN(test_parity_mish_ln_simnorm_e5);
  TDM_RUN(test_parity_tanh_out);
  TDM_RUN(test_parity_shared_input);
  TDM_RUN(test_parity_dropout);
  TDM_RUN(test_graph_matches_plain);
  TDM_RUN(test_file_across_devices);
  tdm_dev_close(cpu);
  return tdm_test_end();
}
