// CPU tests of the fused ops (tdm_bias_act_forward, tdm_act_bias_backward, tdm_adam_step_groups,
// and SAC's tdm_sac_squash_cat, tdm_sac_target_loss):
// equal bit for bit to the unfused ops they replace, close to float64 references written here,
// gradients against central finite differences, and argument refusals.
#include <stdint.h>

#include "../src/agents/sac_ops.h"
#include "test.h"

static tdm_dev *cpu_dev(void) {
  static tdm_dev *cpu = NULL;
  if (!cpu && tdm_dev_open("cpu", 2, &cpu) != TDM_OK) cpu = NULL;
  return cpu;
}

#define NACTS 6


// d act / dx in double by a central difference of ref_act (smooth away from 0 for relu / elu)
static double ref_dact(tdm_act a, double x) {
  const double h = 1e-6;
  return (tdm_t_ref_act(a, x + h) - tdm_t_ref_act(a, x - h)) / (2 * h);
}

// Inputs away from the kinks of relu and elu at 0: |x| >= 0.1.
static void rand_away_from_zero(float *x, size_t n, uint64_t seed) {
  tdm_t_rand(x, n, -2.0f, 2.0f, seed);
  for (size_t i = 0; i < n; i++)
    if (fabsf(x[i]) < 0.1f) x[i] = x[i] < 0 ? x[i] - 0.1f : x[i] + 0.1f;
}

static void test_bias_act_forward(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 2, M = 5, N = 7 };
  const size_t n = (size_t)E * M * N;
  float z0[E * M * N], b[E * N], z1[E * M * N], y1[E * M * N], z2[E * M * N], y2[E * M * N];
  for (int a = 0; a < NACTS; a++) {
    tdm_t_rand(z0, n, -2, 2, 10 + a);
    tdm_t_rand(b, (size_t)E * N, -1, 1, 20 + a);
    // the unfused pair
    memcpy(z1, z0, sizeof z0);
    CHECK_OK(tdm_bias_add(cpu, z1, b, E, M, N));
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, z1, y1, n));
    // fused
    memcpy(z2, z0, sizeof z0);
    CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, z2, b, y2, E, M, N));
    CHECKF(!memcmp(z1, z2, sizeof z1) && !memcmp(y1, y2, sizeof y1),
           "%s: fused forward differs from bias_add + act_forward", tdm_act_name((tdm_act)a));
    // against float64
    double worst = 0;
    for (int e = 0; e < E; e++)
      for (int m = 0; m < M; m++)
        for (int c = 0; c < N; c++) {
          size_t i = ((size_t)e * M + m) * N + c;
          double pre = (double)z0[i] + (double)b[e * N + c];
          double d1 = fabs(z2[i] - pre), d2 = fabs(y2[i] - tdm_t_ref_act((tdm_act)a, pre));
          if (d1 > worst) worst = d1;
          if (d2 > worst) worst = d2;
        }
    CHECKF(worst < 1e-5, "%s: fused forward off float64 by %g", tdm_act_name((tdm_act)a), worst);
    // Y aliasing Z keeps act(Z + b)
    memcpy(z2, z0, sizeof z0);
    CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, z2, b, z2, E, M, N));
    CHECKF(!memcmp(z2, y1, sizeof y1), "%s: aliased fused forward differs",
           tdm_act_name((tdm_act)a));
  }
}

static void test_act_bias_backward(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 3, M = 6, N = 5 };
  const size_t n = (size_t)E * M * N;
  float x[E * M * N], y[E * M * N], dy[E * M * N], dz1[E * M * N], dz2[E * M * N];
  float db0[E * N], db1[E * N], db2[E * N];
  for (int a = 0; a < NACTS; a++) {
    for (int beta = 0; beta <= 1; beta++) {
      rand_away_from_zero(x, n, 30 + a);
      CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
      tdm_t_rand(dy, n, -1, 1, 40 + a);
      tdm_t_rand(db0, (size_t)E * N, -1, 1, 50 + a);
      // the unfused pair
      memcpy(db1, db0, sizeof db0);
      CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, dy, dz1, n));
      CHECK_OK(tdm_bias_grad(cpu, db1, dz1, E, M, N, (float)beta));
      // fused
      memcpy(db2, db0, sizeof db0);
      CHECK_OK(tdm_act_bias_backward(cpu, (tdm_act)a, x, y, dy, dz2, db2, E, M, N, (float)beta));
      CHECKF(!memcmp(dz1, dz2, sizeof dz1) && !memcmp(db1, db2, sizeof db1),
             "%s beta %d: fused backward differs from act_backward + bias_grad",
             tdm_act_name((tdm_act)a), beta);
      // against float64: dz = dy act'(x), db = beta db0 + sum_m dz
      double worst = 0;
      for (int e = 0; e < E; e++)
        for (int c = 0; c < N; c++) {
          double s = beta ? db0[e * N + c] : 0.0;
          for (int m = 0; m < M; m++) {
            size_t i = ((size_t)e * M + m) * N + c;
            double want = (double)dy[i] * ref_dact((tdm_act)a, x[i]);
            s += want;
            if (fabs(dz2[i] - want) > worst) worst = fabs(dz2[i] - want);
          }
          if (fabs(db2[e * N + c] - s) > worst) worst = fabs(db2[e * N + c] - s);
        }
      CHECKF(worst < 1e-4, "%s beta %d: fused backward off float64 by %g", tdm_act_name((tdm_act)a),
             beta, worst);
    }
    // db NULL: dz only, in place over dy
    memcpy(dz2, dy, sizeof dy);
    CHECK_OK(tdm_act_bias_backward(cpu, (tdm_act)a, x, y, dz2, dz2, NULL, E, M, N, 0.0f));
    CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, dy, dz1, n));
    CHECKF(!memcmp(dz1, dz2, sizeof dz1), "%s: in-place fused backward without db differs",
           tdm_act_name((tdm_act)a));
  }
}

// act_bias_backward2 = act_bias_backward + bias_grad of the second gradient.
static void test_act_bias_backward2(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 2, M = 7, N = 5, N2 = 3 };
  const size_t n = (size_t)E * M * N;
  float x[E * M * N], y[E * M * N], dy[E * M * N], dz1[E * M * N], dz2[E * M * N];
  float dy2[E * M * N2], db1[E * N], db2[E * N], dbb1[E * N2], dbb2[E * N2];
  for (int beta = 0; beta <= 1; beta++) {
    rand_away_from_zero(x, n, 150 + beta);
    CHECK_OK(tdm_act_forward(cpu, TDM_ACT_SILU, x, y, n));
    tdm_t_rand(dy, n, -1, 1, 151);
    tdm_t_rand(dy2, (size_t)E * M * N2, -1, 1, 152);
    tdm_t_rand(db1, (size_t)E * N, -1, 1, 153);
    tdm_t_rand(dbb1, (size_t)E * N2, -1, 1, 154);
    memcpy(db2, db1, sizeof db1);
    memcpy(dbb2, dbb1, sizeof dbb1);
    CHECK_OK(tdm_act_bias_backward(cpu, TDM_ACT_SILU, x, y, dy, dz1, db1, E, M, N, (float)beta));
    CHECK_OK(tdm_bias_grad(cpu, dbb1, dy2, E, M, N2, (float)beta));
    CHECK_OK(tdm_act_bias_backward2(cpu, TDM_ACT_SILU, x, y, dy, dz2, db2, E, M, N, (float)beta,
                                    dy2, dbb2, N2));
    CHECKF(!memcmp(dz1, dz2, sizeof dz1) && !memcmp(db1, db2, sizeof db1) &&
               !memcmp(dbb1, dbb2, sizeof dbb1),
           "act_bias_backward2 beta %d differs from act_bias_backward + bias_grad", beta);
  }
  CHECK(tdm_act_bias_backward2(cpu, TDM_ACT_RELU, x, y, dy, dz2, db2, E, M, N, 0, NULL, dbb2, N2) ==
        TDM_ERR_ARG);
  CHECK(tdm_act_bias_backward2(cpu, TDM_ACT_RELU, x, y, dy, dz2, db2, E, M, N, 0, dy2, dbb2, 0) ==
        TDM_ERR_ARG);
}

// act_backward_interleave = act_backward with the member dimension moved inside; and an MLP with
// a shared input gives the same input gradient with TDM_GRAD_NONE (interleaved, one GEMM) as with
// TDM_GRAD_SET (per member, then summed).
static void test_interleave(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 3, M = 4, N = 5 };
  const size_t n = (size_t)E * M * N;
  float x[E * M * N], y[E * M * N], dy[E * M * N], dz[E * M * N], di[E * M * N];
  for (int a = 0; a < NACTS; a++) {
    rand_away_from_zero(x, n, 160 + a);
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
    tdm_t_rand(dy, n, -1, 1, 170 + a);
    CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, dy, dz, n));
    memset(di, 0xFF, sizeof di);
    CHECK_OK(tdm_act_backward_interleave(cpu, (tdm_act)a, x, y, dy, di, E, M, N));
    bool same = true;
    for (int e = 0; e < E; e++)
      for (int m = 0; m < M; m++)
        same = same && !memcmp(di + ((size_t)m * E + e) * N, dz + ((size_t)e * M + m) * N,
                               N * sizeof(float));
    CHECKF(same, "act_backward_interleave %s differs from act_backward", tdm_act_name((tdm_act)a));
  }
  CHECK(tdm_act_backward_interleave(cpu, TDM_ACT_RELU, x, y, dy, dy, E, M, N) == TDM_ERR_ARG);
  for (int a = TDM_ACT_RELU; a <= TDM_ACT_SILU; a += TDM_ACT_SILU - TDM_ACT_RELU) {
    tdm_mlp_spec s = tdm_mlp_spec_make(6, 16, 2, 1, 3, (tdm_act)a);
    tdm_mlp *m = NULL;
    tdm_mlp_acts *acts = NULL;
    CHECK_OK(tdm_mlp_create(cpu, &s, &m));
    tdm_status st = tdm_mlp_init(m, 9);
    if (st == TDM_OK) st = tdm_mlp_acts_create(m, 11, &acts);
    float xin[11 * 6], dout[3 * 11], dx1[11 * 6], dx2[11 * 6];
    tdm_t_rand(xin, 11 * 6, -1, 1, 180);
    tdm_t_rand(dout, 3 * 11, -1, 1, 181);
    if (st == TDM_OK) st = tdm_mlp_forward(m, acts, xin, 11, true, NULL, false);
    if (st == TDM_OK) st = tdm_mlp_backward(m, acts, dout, dx1, TDM_GRAD_SET);
    if (st == TDM_OK) st = tdm_mlp_backward(m, acts, dout, dx2, TDM_GRAD_NONE);
    tdm_mlp_acts_destroy(acts);
    tdm_mlp_destroy(m);
    CHECK_OK(st);
    double e = tdm_t_relerr(dx2, dx1, 11 * 6);
    CHECKF(e < 1e-6, "%s: shared-input dx, GRAD_NONE vs GRAD_SET relerr %.2e",
           tdm_act_name((tdm_act)a), e);
  }
}

// L(b) = sum_i w_i act(Z_i + b_col(i)); dL/db from the fused backward vs central differences.
static void test_bias_gradient_finite_differences(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 2, M = 4, N = 3 };
  const size_t n = (size_t)E * M * N;
  float z0[E * M * N], b[E * N], w[E * M * N], z[E * M * N], y[E * M * N], dz[E * M * N];
  float db[E * N];
  for (int a = 0; a < NACTS; a++) {
    rand_away_from_zero(z0, n, 60 + a);
    for (size_t i = 0; i < (size_t)E * N; i++) b[i] = 0.0f;  // pre-activations stay off 0
    tdm_t_rand(w, n, -1, 1, 70 + a);
    memcpy(z, z0, sizeof z0);
    CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, z, b, y, E, M, N));
    CHECK_OK(tdm_act_bias_backward(cpu, (tdm_act)a, z, y, w, dz, db, E, M, N, 0.0f));
    const float h = 1e-2f;
    for (int k = 0; k < E * N; k++) {
      double L[2];
      for (int sgn = 0; sgn < 2; sgn++) {
        float bb[E * N];
        memcpy(bb, b, sizeof b);
        bb[k] += sgn ? -h : h;
        memcpy(z, z0, sizeof z0);
        CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, z, bb, y, E, M, N));
        L[sgn] = 0;
        for (size_t i = 0; i < n; i++) L[sgn] += (double)w[i] * y[i];
      }
      double fd = (L[0] - L[1]) / (2.0 * h);
      CHECKF(fabs(fd - db[k]) < 2e-3 * (1 + fabs(fd)), "%s: db[%d] = %g, finite difference %g",
             tdm_act_name((tdm_act)a), k, db[k], fd);
    }
  }
}

static void test_adam_groups(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { NG = 3 };
  const size_t sz[NG] = {5, 17, 1};
  float p1[NG][17], m1[NG][17], v1[NG][17], p2[NG][17], m2[NG][17], v2[NG][17], g[NG][17];
  int32_t st1[NG] = {0, 3, 7}, st2[NG] = {0, 3, 7};
  float ema1[17], ema2[17];
  tdm_t_rand(ema1, 17, -1, 1, 79);
  memcpy(ema2, ema1, sizeof ema1);
  uint32_t sync = 0;
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-2f;
  cfg.weight_decay = 0.01f;
  for (int k = 0; k < NG; k++) {
    tdm_t_rand(p1[k], 17, -1, 1, 80 + k);
    tdm_t_rand(m1[k], 17, -0.1f, 0.1f, 90 + k);
    tdm_t_rand(v1[k], 17, 0.0f, 0.01f, 100 + k);
  }
  memcpy(p2, p1, sizeof p1);
  memcpy(m2, m1, sizeof m1);
  memcpy(v2, v1, sizeof v1);
  const float p_before = p2[1][3], m_before = m2[1][3], v_before = v2[1][3];
  for (int it = 0; it < 3; it++) {
    for (int k = 0; k < NG; k++) tdm_t_rand(g[k], 17, -1, 1, 110 + 10 * it + k);
    tdm_adam_group gr[NG];
    for (int k = 0; k < NG; k++) {
      CHECK_OK(tdm_adam_step(cpu, p1[k], g[k], m1[k], v1[k], sz[k], &cfg, &st1[k], NULL));
      gr[k] = (tdm_adam_group){p2[k], g[k], m2[k], v2[k], sz[k], &st2[k], NULL, 0.0f};
    }
    // group 1 also moves a Polyak copy: as tdm_polyak after the step
    CHECK_OK(tdm_polyak(cpu, ema1, p1[1], sz[1], 0.05f));
    gr[1].ema = ema2;
    gr[1].ema_tau = 0.05f;
    CHECK_OK(tdm_adam_step_groups(cpu, gr, NG, &cfg, &sync));
    if (it == 0) {
      // one element against the update written out in double (step 3 -> t = 4)
      double t = 4, gi = g[1][3];
      double mm = 0.9 * m_before + 0.1 * gi, vv = 0.999 * v_before + 0.001 * gi * gi;
      double want =
          p_before - (1e-2 * (mm / (1 - pow(0.9, t))) / (sqrt(vv / (1 - pow(0.999, t))) + 1e-8) +
                      1e-2 * 0.01 * p_before);
      CHECKF(fabs(p2[1][3] - want) < 1e-6, "adam groups: p = %.9g, float64 %.9g", p2[1][3], want);
    }
  }
  CHECK(!memcmp(p1, p2, sizeof p1) && !memcmp(m1, m2, sizeof m1) && !memcmp(v1, v2, sizeof v1));
  CHECK(!memcmp(ema1, ema2, sizeof ema1));
  CHECKF(st2[0] == 3 && st2[1] == 6 && st2[2] == 10 && sync == 0,
         "adam groups: steps %d %d %d (want 3 6 10), sync %u", st2[0], st2[1], st2[2], sync);
}

static void test_argument_checks(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  float a[8] = {0}, b[8] = {0}, c[8] = {0};
  int32_t s0 = 0, s1 = 0;
  uint32_t sync = 0;
  CHECK(tdm_bias_act_forward(cpu, TDM_ACT_RELU, NULL, b, c, 1, 2, 2) == TDM_ERR_ARG);
  CHECK(tdm_bias_act_forward(cpu, (tdm_act)99, a, b, c, 1, 2, 2) == TDM_ERR_ARG);
  CHECK(tdm_bias_act_forward(cpu, TDM_ACT_RELU, a, b, c, 0, 2, 2) == TDM_ERR_ARG);
  CHECK(tdm_act_bias_backward(cpu, TDM_ACT_RELU, a, b, NULL, c, c, 1, 2, 2, 0) == TDM_ERR_ARG);
  CHECK(tdm_act_bias_backward(cpu, TDM_ACT_RELU, a, b, c, c, NULL, 1, 0, 2, 0) == TDM_ERR_ARG);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  tdm_adam_group g2[2] = {{a, b, c, c, 4, &s0, NULL, 0.0f}, {b, a, c, c, 4, &s1, NULL, 0.0f}};
  CHECK(tdm_adam_step_groups(cpu, g2, 0, &cfg, &sync) == TDM_ERR_ARG);
  CHECK(tdm_adam_step_groups(cpu, g2, TDM_ADAM_MAX_GROUPS + 1, &cfg, &sync) == TDM_ERR_ARG);
  CHECK(tdm_adam_step_groups(cpu, g2, 1, &cfg, NULL) == TDM_ERR_ARG);
  cfg.max_grad_norm = 1.0f;
  CHECK(tdm_adam_step_groups(cpu, g2, 1, &cfg, &sync) == TDM_ERR_ARG);
  CHECK(strstr(tdm_errmsg(), "clip") != NULL);
  cfg.max_grad_norm = 0.0f;
  g2[1].step = &s0;
  CHECK(tdm_adam_step_groups(cpu, g2, 2, &cfg, &sync) == TDM_ERR_ARG);
  CHECK(strstr(tdm_errmsg(), "share") != NULL);
  g2[1].step = &s1;
  g2[1].n = 0;
  CHECK(tdm_adam_step_groups(cpu, g2, 2, &cfg, &sync) == TDM_ERR_ARG);
  CHECK(s0 == 0 && s1 == 0);
}

// linear_act_forward equals gemm_batched + bias_act_forward, and float64, shared input or not.
static void test_linear_act_forward(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { E = 3, M = 4, N = 5, K = 6, LDX = 7 };
  float x[E * M * LDX], w[E * N * K], b[E * N], y1[E * M * N], y2[E * M * N];
  tdm_t_rand(x, sizeof x / 4, -1, 1, 140);
  tdm_t_rand(w, sizeof w / 4, -1, 1, 141);
  tdm_t_rand(b, sizeof b / 4, -1, 1, 142);
  for (int shared = 0; shared < 2; shared++)
    for (int a = 0; a < NACTS; a++) {
      const long long sx = shared ? 0 : (long long)M * LDX;
      CHECK_OK(tdm_gemm_batched(cpu, TDM_NOTRANS, TDM_TRANS, M, N, K, 1.0f, x, LDX, sx, w, K,
                                (long long)N * K, 0.0f, y1, N, (long long)M * N, E));
      CHECK_OK(tdm_bias_act_forward(cpu, (tdm_act)a, y1, b, y1, E, M, N));
      memset(y2, 0xFF, sizeof y2);
      CHECK_OK(tdm_linear_act_forward(cpu, (tdm_act)a, M, N, K, x, LDX, sx, w, K, (long long)N * K,
                                      b, y2, E));
      CHECKF(!memcmp(y1, y2, sizeof y1), "linear_act %s shared %d differs from gemm + bias_act",
             tdm_act_name((tdm_act)a), shared);
      double worst = 0;
      for (int e = 0; e < E; e++)
        for (int m = 0; m < M; m++)
          for (int n = 0; n < N; n++) {
            double z = b[e * N + n];
            for (int k = 0; k < K; k++)
              z += (double)x[e * sx + m * LDX + k] * w[(e * N + n) * K + k];
            double d = fabs(y2[(e * M + m) * N + n] - tdm_t_ref_act((tdm_act)a, z));
            if (d > worst) worst = d;
          }
      CHECKF(worst < 1e-5, "linear_act %s shared %d: off float64 by %g", tdm_act_name((tdm_act)a),
             shared, worst);
    }
  CHECK(tdm_linear_act_forward(cpu, TDM_ACT_RELU, M, N, K, x, K - 1, 0, w, K, 0, b, y2, 1) ==
        TDM_ERR_ARG);
  CHECK(tdm_linear_act_forward(cpu, TDM_ACT_RELU, M, N, K, x, K, -1, w, K, 0, b, y2, 2) ==
        TDM_ERR_ARG);
}

// squash_cat equals squash_fwd + concat; target_loss equals target + critic_loss (+ RNG bump).
static void test_sac_fused_ops(void) {
  tdm_dev *cpu = cpu_dev();
  CHECK(cpu);
  enum { B = 9, O = 4, A = 3 };
  float head[B * 2 * A], eps[B * A], obs[B * O];
  float act1[B * A], lp1[B], xq1[B * (O + A)], act2[B * A], lp2[B], xq2[B * (O + A)];
  tdm_t_rand(head, B * 2 * A, -3, 3, 120);
  tdm_t_rand(eps, B * A, -2, 2, 121);
  tdm_t_rand(obs, B * O, -1, 1, 122);
  for (int det = 0; det < 2; det++) {
    const float *e = det ? NULL : eps;
    CHECK_OK(tdm_sac_squash_fwd(cpu, head, e, act1, lp1, B, A, -5.0f, 2.0f));
    CHECK_OK(tdm_sac_concat(cpu, obs, O, act1, A, A, xq1, B));
    memset(act2, 0xFF, sizeof act2);
    memset(xq2, 0xFF, sizeof xq2);
    float act_b[B * A], cat1[B * (O + A)], cat2[B * (O + A)];
    tdm_t_rand(act_b, B * A, -1, 1, 123);
    CHECK_OK(tdm_sac_concat(cpu, obs, O, act_b, A, A, cat1, B));
    memset(cat2, 0xFF, sizeof cat2);
    CHECK_OK(tdm_sac_squash_cat(cpu, head, e, obs, O, xq2, act2, lp2, B, A, -5.0f, 2.0f, obs, act_b,
                                cat2));
    CHECKF(!memcmp(cat1, cat2, sizeof cat1), "squash_cat det %d: second concat differs", det);
    CHECKF(!memcmp(act1, act2, sizeof act1) && !memcmp(lp1, lp2, sizeof lp1) &&
               !memcmp(xq1, xq2, sizeof xq1),
           "squash_cat det %d differs from squash_fwd + concat", det);
    memset(xq2, 0xFF, sizeof xq2);  // act and logp may be NULL
    CHECK_OK(tdm_sac_squash_cat(cpu, head, e, obs, O, xq2, NULL, NULL, B, A, -5.0f, 2.0f, NULL,
                                NULL, NULL));
    CHECK(!memcmp(xq1, xq2, sizeof xq1));
  }
  float qt[2 * B], logp[B], rew[B], term[B], q[2 * B], la = 0.3f;
  float y1[B], dq1[2 * B], st1[TDM_SAC_ST_N] = {0}, y2[B], dq2[2 * B], st2[TDM_SAC_ST_N] = {0};
  tdm_t_rand(qt, 2 * B, -5, 5, 130);
  tdm_t_rand(logp, B, -3, 1, 131);
  tdm_t_rand(rew, B, -1, 1, 132);
  tdm_t_rand(q, 2 * B, -5, 5, 133);
  for (int b = 0; b < B; b++) term[b] = b % 3 == 0 ? 1.0f : 0.0f;
  CHECK_OK(tdm_sac_target(cpu, qt, logp, rew, term, &la, 0.99f, y1, B));
  CHECK_OK(tdm_sac_critic_loss(cpu, q, y1, &la, dq1, st1, B));
  tdm_rng_ctr rng = {7, 41};
  CHECK_OK(tdm_sac_target_loss(cpu, qt, logp, rew, term, &la, 0.99f, q, y2, dq2, st2, B, &rng));
  CHECK(!memcmp(y1, y2, sizeof y1) && !memcmp(dq1, dq2, sizeof dq1) &&
        !memcmp(st1, st2, sizeof st1));
  CHECKF(rng.seed == 7 && rng.calls == 42, "target_loss: rng %llu/%llu, want 7/42",
         (unsigned long long)rng.seed, (unsigned long long)rng.calls);
  CHECK_OK(tdm_sac_target_loss(cpu, qt, logp, rew, term, &la, 0.99f, q, y2, dq2, st2, B, NULL));
  CHECK(!memcmp(y1, y2, sizeof y1));
}

int main(void) {
  TDM_RUN(test_bias_act_forward);
  TDM_RUN(test_act_bias_backward);
  TDM_RUN(test_act_bias_backward2);
  TDM_RUN(test_interleave);
  TDM_RUN(test_bias_gradient_finite_differences);
  TDM_RUN(test_adam_groups);
  TDM_RUN(test_argument_checks);
  TDM_RUN(test_sac_fused_ops);
  TDM_RUN(test_linear_act_forward);
  tdm_dev_close(cpu_dev());
  return tdm_test_end();
}
