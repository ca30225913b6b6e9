// CPU vs GPU parity for every op in ops.h. Each test opens the CPU device and the GPU, draws
// random inputs (never zeros), fills GPU outputs with NaN (0xFF bytes) first so that an element
// the kernel forgot stays NaN, runs both backends and compares: relative error under 1e-5 in
// fp32 (GEMM with TF32 under 5e-3), random uniforms / integers / dropout masks bit for bit.
// Also: CUDA-graph replays of fill_normal + rng_advance and of adam_step draw and count afresh.
// Every test SKIPs when no GPU is visible.
#include <stdint.h>

#include "test.h"

#define TOL 1e-5
#define TOL_TF32 5e-3

// ---------------------------------------------------------------------------------------------
// helpers: buffers are tracked and freed between tests (a failed CHECK returns early)

static tdm_dev *cpu_dev(void) {
  static tdm_dev *cpu = NULL;
  if (!cpu && tdm_dev_open("cpu", 2, &cpu) != TDM_OK) cpu = NULL;
  return cpu;
}


// Host floats (uninitialised).
static float *hbuf(size_t n) {
  return tdm_t_track(NULL, malloc((n ? n : 1) * sizeof(float)));
}

// Host floats, uniform in [lo, hi) from seed.
static float *hrand(size_t n, float lo, float hi, uint64_t seed) {
  float *x = hbuf(n);
  if (x) tdm_t_rand(x, n, lo, hi, seed);
  return x;
}

// Host copy of a host array.
static float *hdup(const float *x, size_t n) {
  float *y = hbuf(n);
  if (y) memcpy(y, x, n * sizeof(float));
  return y;
}

// Device bytes filled with 0xFF (NaN as floats, -1 as int32).
static void *gpoison(tdm_dev *g, size_t bytes) {
  void *p = NULL;
  if (tdm_dev_alloc(g, bytes, &p) != TDM_OK) return NULL;
  if (!tdm_t_track(g, p)) return NULL;
  if (tdm_dev_memset(g, p, 0xFF, bytes) != TDM_OK) return NULL;
  return p;
}

// Device copy of host bytes.
static void *gup(tdm_dev *g, const void *h, size_t bytes) {
  void *p = NULL;
  if (tdm_dev_alloc(g, bytes, &p) != TDM_OK) return NULL;
  if (!tdm_t_track(g, p)) return NULL;
  if (tdm_dev_h2d(g, p, h, bytes) != TDM_OK) return NULL;
  return p;
}

// Device floats copied from host floats.
static float *gupf(tdm_dev *g, const float *h, size_t n) {
  return gup(g, h, n * sizeof(float));
}
static float *gpoisonf(tdm_dev *g, size_t n) {
  return gpoison(g, n * sizeof(float));
}

// Copy device bytes to a host buffer and wait.
static tdm_status down(tdm_dev *g, void *h, const void *d, size_t bytes) {
  TDM_TRY(tdm_dev_d2h(g, h, d, bytes));
  return tdm_dev_sync(g);
}

// New host floats holding a device array.
static float *gdownf(tdm_dev *g, const float *d, size_t n) {
  float *h = hbuf(n);
  if (!h || down(g, h, d, n * sizeof(float)) != TDM_OK) return NULL;
  return h;
}

// Index of the first NaN in x, or -1.
static long first_nan(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (isnan(x[i])) return (long)i;
  return -1;
}

// (M, N) block of a (M, ld) array, packed.
static float *pack(const float *x, int M, int N, int ld) {
  float *y = hbuf((size_t)M * N);
  if (!y) return NULL;
  for (int r = 0; r < M; r++) memcpy(y + (size_t)r * N, x + (size_t)r * ld, sizeof(float) * N);
  return y;
}

// Every GPU element written (no NaN) and relative error under tol against the CPU.
#define CHECK_CLOSE(what, gpu_h, cpu_h, n, tol)                                               \
  do {                                                                                        \
    const float *g_ = (gpu_h), *c_ = (cpu_h);                                                 \
    size_t n_ = (n);                                                                          \
    CHECKF(g_ != NULL && c_ != NULL, "%s: no host copy", (what));                             \
    long nan_at_ = first_nan(g_, n_);                                                         \
    CHECKF(nan_at_ < 0, "%s: GPU element %ld of %zu not written (NaN)", (what), nan_at_, n_); \
    double re_ = tdm_t_relerr(g_, c_, n_);                                                    \
    CHECKF(re_ < (tol), "%s: relative error %.3g >= %.3g", (what), re_, (double)(tol));       \
  } while (0)

// Download a device float array and CHECK_CLOSE it.
#define CHECK_GPU(what, g, dptr, cpu_h, n, tol)                           \
  do {                                                                    \
    float *h_ = gdownf((g), (dptr), (n));                                 \
    CHECKF(h_ != NULL, "%s: copy back failed: %s", (what), tdm_errmsg()); \
    CHECK_CLOSE((what), h_, (cpu_h), (n), (tol));                         \
  } while (0)

#define OPEN_BOTH(cpu, gpu) \
  NEED_GPU(gpu);            \
  tdm_dev *cpu = cpu_dev(); \
  CHECKF(cpu != NULL, "opening the CPU device: %s", tdm_errmsg())

// ---------------------------------------------------------------------------------------------
// GEMM

static void test_gemm(void) {
  OPEN_BOTH(cpu, gpu);
  const int shapes[][3] = {{37, 53, 29}, {1, 17, 64}, {128, 96, 300}};
  char what[128];
  for (int s = 0; s < 3; s++) {
    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
    for (int t = 0; t < 4; t++) {
      tdm_trans ta = (t & 1) ? TDM_TRANS : TDM_NOTRANS, tb = (t & 2) ? TDM_TRANS : TDM_NOTRANS;
      int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
      int lda = acols + 3, ldb = bcols + 2, ldc = N + 5;
      size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)M * ldc;
      float *A = hrand(na, -1, 1, 100 + s * 8 + t), *B = hrand(nb, -1, 1, 200 + s * 8 + t);
      float *C0 = hrand(nc, -1, 1, 300 + s * 8 + t);
      CHECK(A && B && C0);
      float *gA = gupf(gpu, A, na), *gB = gupf(gpu, B, nb);
      CHECK(gA && gB);
      for (int tf = 0; tf < 2; tf++) {
        for (int bi = 0; bi < 2; bi++) {
          float beta = bi ? 0.5f : 0.0f;
          // beta = 0: the GPU C starts as NaN and must not be read
          float *Cc = hdup(C0, nc);
          float *gC = bi ? gupf(gpu, C0, nc) : gpoisonf(gpu, nc);
          CHECK(Cc && gC);
          CHECK_OK(tdm_gemm(cpu, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, Cc, ldc));
          gpu->tf32 = tf == 1;
          tdm_status st = tdm_gemm(gpu, ta, tb, M, N, K, 0.7f, gA, lda, gB, ldb, beta, gC, ldc);
          gpu->tf32 = false;
          CHECK_OK(st);
          float *Cg = gdownf(gpu, gC, nc);
          CHECK(Cg);
          snprintf(what, sizeof what, "gemm %dx%dx%d ta=%d tb=%d beta=%g%s", M, N, K, (int)ta,
                   (int)tb, beta, tf ? " tf32" : "");
          CHECK_CLOSE(what, pack(Cg, M, N, ldc), pack(Cc, M, N, ldc), (size_t)M * N,
                      tf ? TOL_TF32 : TOL);
        }
      }
    }
  }
}

static void test_gemm_batched(void) {
  OPEN_BOTH(cpu, gpu);
  const int M = 19, N = 23, K = 31, batch = 4;
  char what[128];
  for (int t = 0; t < 4; t++) {
    tdm_trans ta = (t & 1) ? TDM_TRANS : TDM_NOTRANS, tb = (t & 2) ? TDM_TRANS : TDM_NOTRANS;
    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + 1, ldb = bcols + 4, ldc = N + 2;
    // share: 0 none, 1 A shared (sA = 0), 2 B shared (sB = 0)
    for (int share = 0; share < 3; share++) {
      long long sA = share == 1 ? 0 : (long long)arows * lda + 7;
      long long sB = share == 2 ? 0 : (long long)brows * ldb + 5;
      long long sC = (long long)M * ldc + 3;
      size_t na = (size_t)(sA ? sA * batch : (long long)arows * lda);
      size_t nb = (size_t)(sB ? sB * batch : (long long)brows * ldb);
      size_t nc = (size_t)(sC * batch);
      float *A = hrand(na, -1, 1, 400 + t * 4 + share), *B = hrand(nb, -1, 1, 500 + t * 4 + share);
      float *C0 = hrand(nc, -1, 1, 600 + t * 4 + share);
      CHECK(A && B && C0);
      float *gA = gupf(gpu, A, na), *gB = gupf(gpu, B, nb);
      CHECK(gA && gB);
      for (int tf = 0; tf < 2; tf++) {
        for (int bi = 0; bi < 2; bi++) {
          float beta = bi ? -0.3f : 0.0f;
          float *Cc = hdup(C0, nc);
          float *gC = bi ? gupf(gpu, C0, nc) : gpoisonf(gpu, nc);
          CHECK(Cc && gC);
          CHECK_OK(tdm_gemm_batched(cpu, ta, tb, M, N, K, 1.3f, A, lda, sA, B, ldb, sB, beta, Cc,
                                    ldc, sC, batch));
          gpu->tf32 = tf == 1;
          tdm_status st = tdm_gemm_batched(gpu, ta, tb, M, N, K, 1.3f, gA, lda, sA, gB, ldb, sB,
                                           beta, gC, ldc, sC, batch);
          gpu->tf32 = false;
          CHECK_OK(st);
          float *Cg = gdownf(gpu, gC, nc);
          CHECK(Cg);
          for (int b = 0; b < batch; b++) {
            snprintf(what, sizeof what, "gemm_batched ta=%d tb=%d share=%d beta=%g%s member %d",
                     (int)ta, (int)tb, share, beta, tf ? " tf32" : "", b);
            CHECK_CLOSE(what, pack(Cg + b * sC, M, N, ldc), pack(Cc + b * sC, M, N, ldc),
                        (size_t)M * N, tf ? TOL_TF32 : TOL);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// bias and activations

static void test_bias_add_grad(void) {
  OPEN_BOTH(cpu, gpu);
  const int E = 3, M = 17, N = 45, M2 = 300;
  size_t ny = (size_t)E * M * N, nbias = (size_t)E * N;
  float *Y = hrand(ny, -1, 1, 1), *b = hrand(nbias, -1, 1, 2);
  CHECK(Y && b);
  float *gY = gupf(gpu, Y, ny), *gb = gupf(gpu, b, nbias);
  CHECK(gY && gb);
  CHECK_OK(tdm_bias_add(cpu, Y, b, E, M, N));
  CHECK_OK(tdm_bias_add(gpu, gY, gb, E, M, N));
  CHECK_GPU("bias_add", gpu, gY, Y, ny, TOL);

  size_t nd = (size_t)E * M2 * N;
  float *dY = hrand(nd, -1, 1, 3), *db0 = hrand(nbias, -1, 1, 4);
  CHECK(dY && db0);
  float *gdY = gupf(gpu, dY, nd);
  CHECK(gdY);
  for (int bi = 0; bi < 2; bi++) {
    float beta = bi ? 0.9f : 0.0f;
    float *db = hdup(db0, nbias);
    float *gdb = bi ? gupf(gpu, db0, nbias) : gpoisonf(gpu, nbias);
    CHECK(db && gdb);
    CHECK_OK(tdm_bias_grad(cpu, db, dY, E, M2, N, beta));
    CHECK_OK(tdm_bias_grad(gpu, gdb, gdY, E, M2, N, beta));
    CHECK_GPU(bi ? "bias_grad beta=0.9" : "bias_grad beta=0", gpu, gdb, db, nbias, TOL);
  }
}

static void test_activations(void) {
  OPEN_BOTH(cpu, gpu);
  const size_t n = 10007;
  char what[96];
  float *x = hrand(n, -6, 6, 10), *dy = hrand(n, -1, 1, 11);
  CHECK(x && dy);
  float *gx = gupf(gpu, x, n), *gdy = gupf(gpu, dy, n);
  CHECK(gx && gdy);
  for (int a = TDM_ACT_NONE; a <= TDM_ACT_ELU; a++) {
    const char *name = tdm_act_name((tdm_act)a);
    float *y = hbuf(n), *dx = hbuf(n);
    float *gy = gpoisonf(gpu, n), *gdx = gpoisonf(gpu, n);
    CHECK(y && dx && gy && gdx);
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
    CHECK_OK(tdm_act_forward(gpu, (tdm_act)a, gx, gy, n));
    snprintf(what, sizeof what, "act_forward %s", name);
    CHECK_GPU(what, gpu, gy, y, n, TOL);
    // backward from the same y on both sides
    float *gyc = gupf(gpu, y, n);
    CHECK(gyc);
    CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, dy, dx, n));
    CHECK_OK(tdm_act_backward(gpu, (tdm_act)a, gx, gyc, gdy, gdx, n));
    snprintf(what, sizeof what, "act_backward %s", name);
    CHECK_GPU(what, gpu, gdx, dx, n, TOL);
    // in place: y aliases x, dx aliases dy
    float *gxi = gupf(gpu, x, n), *gdyi = gupf(gpu, dy, n);
    CHECK(gxi && gdyi);
    CHECK_OK(tdm_act_forward(gpu, (tdm_act)a, gxi, gxi, n));
    snprintf(what, sizeof what, "act_forward %s in place", name);
    CHECK_GPU(what, gpu, gxi, y, n, TOL);
    CHECK_OK(tdm_act_backward(gpu, (tdm_act)a, gx, gyc, gdyi, gdyi, n));
    snprintf(what, sizeof what, "act_backward %s in place", name);
    CHECK_GPU(what, gpu, gdyi, dx, n, TOL);
  }
}

// ---------------------------------------------------------------------------------------------
// normalisation

static void test_layernorm(void) {
  OPEN_BOTH(cpu, gpu);
  const int shapes[][3] = {{2, 33, 96}, {3, 5, 7}, {1, 4, 1000}};
  const float eps = 1e-5f;
  char what[128];
  for (int s = 0; s < 3; s++) {
    int E = shapes[s][0], R = shapes[s][1], D = shapes[s][2];
    size_t nx = (size_t)E * R * D, np = (size_t)E * D, nr = (size_t)E * R;
    float *x = hrand(nx, -1, 3, 20 + s), *gam = hrand(np, 0.5f, 1.5f, 30 + s);
    float *bet = hrand(np, -0.5f, 0.5f, 40 + s), *dy = hrand(nx, -1, 1, 50 + s);
    float *y = hbuf(nx), *mean = hbuf(nr), *rstd = hbuf(nr), *dx = hbuf(nx);
    CHECK(x && gam && bet && dy && y && mean && rstd && dx);
    float *gx = gupf(gpu, x, nx), *gg = gupf(gpu, gam, np), *gb = gupf(gpu, bet, np);
    float *gdy = gupf(gpu, dy, nx);
    float *gy = gpoisonf(gpu, nx), *gmean = gpoisonf(gpu, nr), *grstd = gpoisonf(gpu, nr);
    float *gdx = gpoisonf(gpu, nx);
    CHECK(gx && gg && gb && gdy && gy && gmean && grstd && gdx);
    CHECK_OK(tdm_layernorm_forward(cpu, x, gam, bet, y, mean, rstd, E, R, D, eps));
    CHECK_OK(tdm_layernorm_forward(gpu, gx, gg, gb, gy, gmean, grstd, E, R, D, eps));
    snprintf(what, sizeof what, "layernorm_forward (%d,%d,%d) y", E, R, D);
    CHECK_GPU(what, gpu, gy, y, nx, TOL);
    snprintf(what, sizeof what, "layernorm_forward (%d,%d,%d) mean", E, R, D);
    CHECK_GPU(what, gpu, gmean, mean, nr, TOL);
    snprintf(what, sizeof what, "layernorm_forward (%d,%d,%d) rstd", E, R, D);
    CHECK_GPU(what, gpu, grstd, rstd, nr, TOL);
    // without mean / rstd outputs
    float *gy2 = gpoisonf(gpu, nx);
    CHECK(gy2);
    CHECK_OK(tdm_layernorm_forward(gpu, gx, gg, gb, gy2, NULL, NULL, E, R, D, eps));
    snprintf(what, sizeof what, "layernorm_forward (%d,%d,%d) no stats", E, R, D);
    CHECK_GPU(what, gpu, gy2, y, nx, TOL);

    // backward from the CPU's statistics on both sides
    float *gmc = gupf(gpu, mean, nr), *grc = gupf(gpu, rstd, nr);
    float *dg0 = hrand(np, -1, 1, 60 + s), *db0 = hrand(np, -1, 1, 70 + s);
    CHECK(gmc && grc && dg0 && db0);
    for (int bi = 0; bi < 2; bi++) {
      float acc = bi ? 1.0f : 0.0f;
      float *dg = hdup(dg0, np), *db = hdup(db0, np);
      float *gdg = bi ? gupf(gpu, dg0, np) : gpoisonf(gpu, np);
      float *gdb = bi ? gupf(gpu, db0, np) : gpoisonf(gpu, np);
      float *gdx2 = gpoisonf(gpu, nx);
      CHECK(dg && db && gdg && gdb && gdx2);
      CHECK_OK(tdm_layernorm_backward(cpu, x, gam, mean, rstd, dy, dx, dg, db, E, R, D, acc));
      CHECK_OK(tdm_layernorm_backward(gpu, gx, gg, gmc, grc, gdy, gdx2, gdg, gdb, E, R, D, acc));
      snprintf(what, sizeof what, "layernorm_backward (%d,%d,%d) acc=%g dx", E, R, D, acc);
      CHECK_GPU(what, gpu, gdx2, dx, nx, TOL);
      snprintf(what, sizeof what, "layernorm_backward (%d,%d,%d) acc=%g dgamma", E, R, D, acc);
      CHECK_GPU(what, gpu, gdg, dg, np, TOL);
      snprintf(what, sizeof what, "layernorm_backward (%d,%d,%d) acc=%g dbeta", E, R, D, acc);
      CHECK_GPU(what, gpu, gdb, db, np, TOL);
    }
  }
}

static void test_simnorm(void) {
  OPEN_BOTH(cpu, gpu);
  const int shapes[][3] = {{50, 64, 8}, {7, 30, 5}, {3, 12, 12}};
  char what[96];
  for (int s = 0; s < 3; s++) {
    size_t rows = (size_t)shapes[s][0];
    int D = shapes[s][1], V = shapes[s][2];
    size_t n = rows * (size_t)D;
    float *x = hrand(n, -3, 3, 80 + s), *dy = hrand(n, -1, 1, 90 + s);
    float *y = hbuf(n), *dx = hbuf(n);
    CHECK(x && dy && y && dx);
    float *gx = gupf(gpu, x, n), *gdy = gupf(gpu, dy, n), *gy = gpoisonf(gpu, n);
    float *gdx = gpoisonf(gpu, n);
    CHECK(gx && gdy && gy && gdx);
    CHECK_OK(tdm_simnorm_forward(cpu, x, y, rows, D, V));
    CHECK_OK(tdm_simnorm_forward(gpu, gx, gy, rows, D, V));
    snprintf(what, sizeof what, "simnorm_forward rows=%zu D=%d V=%d", rows, D, V);
    CHECK_GPU(what, gpu, gy, y, n, TOL);
    float *gyc = gupf(gpu, y, n);
    CHECK(gyc);
    CHECK_OK(tdm_simnorm_backward(cpu, y, dy, dx, rows, D, V));
    CHECK_OK(tdm_simnorm_backward(gpu, gyc, gdy, gdx, rows, D, V));
    snprintf(what, sizeof what, "simnorm_backward rows=%zu D=%d V=%d", rows, D, V);
    CHECK_GPU(what, gpu, gdx, dx, n, TOL);
  }
}

static void test_softmax(void) {
  OPEN_BOTH(cpu, gpu);
  const int shapes[][2] = {{33, 7}, {100, 101}, {5, 2000}, {9, 1}};
  char what[96];
  for (int s = 0; s < 4; s++) {
    size_t rows = (size_t)shapes[s][0];
    int D = shapes[s][1];
    size_t n = rows * (size_t)D;
    float *x = hrand(n, -5, 5, 110 + s), *dy = hrand(n, -1, 1, 120 + s);
    float *y = hbuf(n), *ly = hbuf(n), *dx = hbuf(n);
    CHECK(x && dy && y && ly && dx);
    float *gx = gupf(gpu, x, n), *gdy = gupf(gpu, dy, n);
    float *gy = gpoisonf(gpu, n), *gly = gpoisonf(gpu, n), *gdx = gpoisonf(gpu, n);
    CHECK(gx && gdy && gy && gly && gdx);
    CHECK_OK(tdm_softmax(cpu, x, y, rows, D));
    CHECK_OK(tdm_softmax(gpu, gx, gy, rows, D));
    snprintf(what, sizeof what, "softmax rows=%zu D=%d", rows, D);
    CHECK_GPU(what, gpu, gy, y, n, TOL);
    CHECK_OK(tdm_log_softmax(cpu, x, ly, rows, D));
    CHECK_OK(tdm_log_softmax(gpu, gx, gly, rows, D));
    snprintf(what, sizeof what, "log_softmax rows=%zu D=%d", rows, D);
    CHECK_GPU(what, gpu, gly, ly, n, TOL);
    float *glyc = gupf(gpu, ly, n);
    CHECK(glyc);
    CHECK_OK(tdm_log_softmax_backward(cpu, ly, dy, dx, rows, D));
    CHECK_OK(tdm_log_softmax_backward(gpu, glyc, gdy, gdx, rows, D));
    snprintf(what, sizeof what, "log_softmax_backward rows=%zu D=%d", rows, D);
    CHECK_GPU(what, gpu, gdx, dx, n, TOL);
  }
}

// ---------------------------------------------------------------------------------------------
// two-hot

static void test_symlog_twohot(void) {
  OPEN_BOTH(cpu, gpu);
  const size_t n = 1001;
  float *x = hrand(n, -20, 20, 130), *xe = hrand(n, -8, 8, 131), *y = hbuf(n), *ye = hbuf(n);
  CHECK(x && xe && y && ye);
  float *gx = gupf(gpu, x, n), *gxe = gupf(gpu, xe, n);
  float *gy = gpoisonf(gpu, n), *gye = gpoisonf(gpu, n);
  CHECK(gx && gxe && gy && gye);
  CHECK_OK(tdm_symlog(cpu, x, y, n));
  CHECK_OK(tdm_symlog(gpu, gx, gy, n));
  CHECK_GPU("symlog", gpu, gy, y, n, TOL);
  CHECK_OK(tdm_symexp(cpu, xe, ye, n));
  CHECK_OK(tdm_symexp(gpu, gxe, gye, n));
  CHECK_GPU("symexp", gpu, gye, ye, n, TOL);

  // encode: half the values inside [vmin, vmax] in symlog space, half far outside (clamped)
  const int cfgs[][1] = {{101}, {2}};
  const float ranges[][2] = {{-10, 10}, {-1, 2}};
  char what[96];
  for (int c = 0; c < 2; c++) {
    int nb = cfgs[c][0];
    float vmin = ranges[c][0], vmax = ranges[c][1];
    const size_t m = 300;
    float *v = hrand(m, -50, 50, 140 + c);
    CHECK(v);
    tdm_t_rand(v + m / 2, m - m / 2, -1e5f, 1e5f, 150 + c);
    v[0] = 0.5f;
    v[1] = 1e30f;
    v[2] = -1e30f;
    size_t no = m * (size_t)nb;
    float *o = hbuf(no);
    float *gv = gupf(gpu, v, m), *go = gpoisonf(gpu, no);
    CHECK(o && gv && go);
    CHECK_OK(tdm_twohot_encode(cpu, v, o, m, nb, vmin, vmax));
    CHECK_OK(tdm_twohot_encode(gpu, gv, go, m, nb, vmin, vmax));
    snprintf(what, sizeof what, "twohot_encode nbins=%d [%g, %g]", nb, vmin, vmax);
    CHECK_GPU(what, gpu, go, o, no, TOL);
    // decode peaked random logits
    float *lg = hrand(no, -8, 8, 160 + c), *d = hbuf(m);
    float *glg = gupf(gpu, lg, no), *gd = gpoisonf(gpu, m);
    CHECK(lg && d && glg && gd);
    CHECK_OK(tdm_twohot_decode(cpu, lg, d, m, nb, vmin, vmax));
    CHECK_OK(tdm_twohot_decode(gpu, glg, gd, m, nb, vmin, vmax));
    snprintf(what, sizeof what, "twohot_decode nbins=%d [%g, %g]", nb, vmin, vmax);
    CHECK_GPU(what, gpu, gd, d, m, TOL);
  }
}

// ---------------------------------------------------------------------------------------------
// reductions

static void test_reductions(void) {
  OPEN_BOTH(cpu, gpu);
  // the last shape has more rows than one grid of warps covers: the row loop must go round
  const int shapes[][2] = {{64, 37}, {5, 3000}, {1000, 1}, {100000, 3}};
  const char *names[] = {"sum", "mean", "max"};
  char what[96];
  for (int s = 0; s < 4; s++) {
    size_t rows = (size_t)shapes[s][0];
    int D = shapes[s][1];
    size_t n = rows * (size_t)D;
    float *x = hrand(n, -1, 2, 170 + s);
    float *gx = gupf(gpu, x, n);
    CHECK(x && gx);
    for (int op = TDM_REDUCE_SUM; op <= TDM_REDUCE_MAX; op++) {
      float *o = hbuf(rows), *go = gpoisonf(gpu, rows);
      CHECK(o && go);
      CHECK_OK(tdm_reduce_rows(cpu, (tdm_reduce)op, x, o, rows, D));
      CHECK_OK(tdm_reduce_rows(gpu, (tdm_reduce)op, gx, go, rows, D));
      snprintf(what, sizeof what, "reduce_rows %s rows=%zu D=%d", names[op], rows, D);
      CHECK_GPU(what, gpu, go, o, rows, TOL);
    }
  }
  const size_t sizes[] = {1, 1000, ((size_t)1 << 20) + 3};
  for (int s = 0; s < 3; s++) {
    size_t n = sizes[s];
    float *x = hrand(n, -1, 2, 180 + s);
    float *gx = gupf(gpu, x, n);
    CHECK(x && gx);
    for (int op = TDM_REDUCE_SUM; op <= TDM_REDUCE_MAX; op++) {
      float o = 0;
      float *go = gpoisonf(gpu, 1);
      CHECK(go);
      CHECK_OK(tdm_reduce_all(cpu, (tdm_reduce)op, x, &o, n));
      CHECK_OK(tdm_reduce_all(gpu, (tdm_reduce)op, gx, go, n));
      snprintf(what, sizeof what, "reduce_all %s n=%zu", names[op], n);
      CHECK_GPU(what, gpu, go, &o, 1, TOL);
      // deterministic: the same bits again
      float a = 0, b = 0;
      CHECK_OK(down(gpu, &a, go, sizeof a));
      CHECK_OK(tdm_reduce_all(gpu, (tdm_reduce)op, gx, go, n));
      CHECK_OK(down(gpu, &b, go, sizeof b));
      CHECKF(memcmp(&a, &b, sizeof a) == 0, "reduce_all %s n=%zu: %.9g then %.9g", names[op], n, a,
             b);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// elementwise

static void test_elementwise(void) {
  OPEN_BOTH(cpu, gpu);
  const size_t n = 10007;
  float *x = hrand(n, -1, 1, 190), *y0 = hrand(n, -1, 1, 191);
  CHECK(x && y0);
  float *gx = gupf(gpu, x, n);
  CHECK(gx);

  float *f = hbuf(n), *gf = gpoisonf(gpu, n);
  CHECK(f && gf);
  CHECK_OK(tdm_fill(cpu, f, n, 3.25f));
  CHECK_OK(tdm_fill(gpu, gf, n, 3.25f));
  CHECK_GPU("fill", gpu, gf, f, n, TOL);

  for (int bi = 0; bi < 2; bi++) {
    float b = bi ? -1.3f : 0.0f;
    float *y = hdup(y0, n), *gy = bi ? gupf(gpu, y0, n) : gpoisonf(gpu, n);
    CHECK(y && gy);
    CHECK_OK(tdm_axpby(cpu, n, 0.7f, x, b, y));
    CHECK_OK(tdm_axpby(gpu, n, 0.7f, gx, b, gy));
    CHECK_GPU(bi ? "axpby b=-1.3" : "axpby b=0", gpu, gy, y, n, TOL);
  }

  float *sc = hdup(x, n), *gsc = gupf(gpu, x, n);
  CHECK(sc && gsc);
  CHECK_OK(tdm_scale(cpu, n, -2.5f, sc));
  CHECK_OK(tdm_scale(gpu, n, -2.5f, gsc));
  CHECK_GPU("scale", gpu, gsc, sc, n, TOL);

  float *cl = hdup(x, n), *gcl = gupf(gpu, x, n);
  CHECK(cl && gcl);
  CHECK_OK(tdm_clamp(cpu, n, -0.3f, 0.4f, cl));
  CHECK_OK(tdm_clamp(gpu, n, -0.3f, 0.4f, gcl));
  CHECK_GPU("clamp", gpu, gcl, cl, n, TOL);

  float *z = hbuf(n), *gy0 = gupf(gpu, y0, n), *gz = gpoisonf(gpu, n);
  CHECK(z && gy0 && gz);
  CHECK_OK(tdm_mul(cpu, n, x, y0, z));
  CHECK_OK(tdm_mul(gpu, n, gx, gy0, gz));
  CHECK_GPU("mul", gpu, gz, z, n, TOL);
  float *gxa = gupf(gpu, x, n);
  CHECK(gxa);
  CHECK_OK(tdm_mul(gpu, n, gxa, gy0, gxa));  // z aliases x
  CHECK_GPU("mul in place", gpu, gxa, z, n, TOL);

  const int srows = 100, D = 37;
  const size_t nidx = 250;
  float *src = hrand((size_t)srows * D, -1, 1, 192);
  int32_t *idx = tdm_t_track(NULL, malloc(nidx * sizeof(int32_t)));
  CHECK(src && idx);
  tdm_rng r;
  tdm_rng_init(&r, 193, 0);
  for (size_t i = 0; i < nidx; i++) idx[i] = (int32_t)tdm_rng_below(&r, srows);
  float *dst = hbuf(nidx * D);
  float *gsrc = gupf(gpu, src, (size_t)srows * D), *gdst = gpoisonf(gpu, nidx * D);
  int32_t *gidx = gup(gpu, idx, nidx * sizeof(int32_t));
  CHECK(dst && gsrc && gdst && gidx);
  CHECK_OK(tdm_gather_rows(cpu, src, idx, dst, nidx, D));
  CHECK_OK(tdm_gather_rows(gpu, gsrc, gidx, gdst, nidx, D));
  CHECK_GPU("gather_rows", gpu, gdst, dst, nidx * D, TOL);

  float *tg = hdup(y0, n), *gtg = gupf(gpu, y0, n);
  CHECK(tg && gtg);
  CHECK_OK(tdm_polyak(cpu, tg, x, n, 0.005f));
  CHECK_OK(tdm_polyak(gpu, gtg, gx, n, 0.005f));
  CHECK_GPU("polyak", gpu, gtg, tg, n, TOL);

  // more elements than one grid covers: every element must still be written once
  const size_t nb = ((size_t)1 << 23) + 5;
  float *bx = hrand(nb, -1, 1, 194), *by = hbuf(nb);
  float *gbx = gupf(gpu, bx, nb), *gby = gpoisonf(gpu, nb);
  CHECK(bx && by && gbx && gby);
  CHECK_OK(tdm_axpby(cpu, nb, 1.5f, bx, 0.0f, by));
  CHECK_OK(tdm_axpby(gpu, nb, 1.5f, gbx, 0.0f, gby));
  CHECK_GPU("axpby n=2^23+5", gpu, gby, by, nb, TOL);
}

// ---------------------------------------------------------------------------------------------
// random numbers

static void test_random(void) {
  OPEN_BOTH(cpu, gpu);
  const size_t n = 10003;  // not a multiple of 4: the last Philox block is partial
  const uint32_t stream = 5;
  tdm_rng_ctr ctr = {0x9E3779B97F4A7C15ull, 3};
  tdm_rng_ctr *gctr = gup(gpu, &ctr, sizeof ctr);
  CHECK(gctr);

  float *u = hbuf(n), *gu = gpoisonf(gpu, n);
  CHECK(u && gu);
  CHECK_OK(tdm_fill_uniform(cpu, u, n, -2.0f, 3.0f, &ctr, stream));
  CHECK_OK(tdm_fill_uniform(gpu, gu, n, -2.0f, 3.0f, gctr, stream));
  float *hu = gdownf(gpu, gu, n);
  CHECK(hu);
  CHECKF(memcmp(hu, u, n * sizeof(float)) == 0, "fill_uniform: GPU and CPU differ in bits");
  for (size_t i = 0; i < n; i++)
    CHECKF(u[i] >= -2.0f && u[i] <= 3.0f, "uniform[%zu] = %g", i, u[i]);

  float *z = hbuf(n), *gz = gpoisonf(gpu, n);
  CHECK(z && gz);
  CHECK_OK(tdm_fill_normal(cpu, z, n, 0.5f, 2.0f, &ctr, stream));
  CHECK_OK(tdm_fill_normal(gpu, gz, n, 0.5f, 2.0f, gctr, stream));
  CHECK_GPU("fill_normal", gpu, gz, z, n, TOL);

  int32_t bound = 1000;
  int32_t *gbound = gup(gpu, &bound, sizeof bound);
  int32_t *ri = tdm_t_track(NULL, malloc(n * sizeof(int32_t))), *hri = tdm_t_track(NULL, malloc(n * 4));
  int32_t *gri = gpoison(gpu, n * sizeof(int32_t));
  CHECK(gbound && ri && hri && gri);
  CHECK_OK(tdm_fill_randint(cpu, ri, n, &bound, &ctr, stream));
  CHECK_OK(tdm_fill_randint(gpu, gri, n, gbound, gctr, stream));
  CHECK_OK(down(gpu, hri, gri, n * sizeof(int32_t)));
  CHECKF(memcmp(hri, ri, n * sizeof(int32_t)) == 0, "fill_randint: GPU and CPU differ");
  for (size_t i = 0; i < n; i++) CHECKF(ri[i] >= 0 && ri[i] < bound, "randint[%zu] = %d", i, ri[i]);

  const float p = 0.3f;
  float *x = hrand(n, -1, 1, 200), *y = hbuf(n), *mask = hbuf(n);
  CHECK(x && y && mask);
  float *gx = gupf(gpu, x, n), *gy = gpoisonf(gpu, n), *gmask = gpoisonf(gpu, n);
  CHECK(gx && gy && gmask);
  CHECK_OK(tdm_dropout_forward(cpu, x, y, mask, n, p, &ctr, stream));
  CHECK_OK(tdm_dropout_forward(gpu, gx, gy, gmask, n, p, gctr, stream));
  float *hy = gdownf(gpu, gy, n), *hmask = gdownf(gpu, gmask, n);
  CHECK(hy && hmask);
  CHECKF(memcmp(hmask, mask, n * sizeof(float)) == 0, "dropout mask: GPU and CPU differ");
  CHECKF(memcmp(hy, y, n * sizeof(float)) == 0, "dropout y: GPU and CPU differ");
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) kept += mask[i] != 0.0f;
  CHECKF(kept > n * 0.65 && kept < n * 0.75, "dropout kept %zu of %zu at p = 0.3", kept, n);
  // in place: y aliases x
  CHECK_OK(tdm_dropout_forward(gpu, gx, gx, gmask, n, p, gctr, stream));
  float *hyi = gdownf(gpu, gx, n);
  CHECK(hyi);
  CHECKF(memcmp(hyi, y, n * sizeof(float)) == 0, "dropout in place: GPU and CPU differ");

  // advance on the device: calls 3 -> 5, and the next draw matches the CPU at calls = 5
  CHECK_OK(tdm_rng_advance(gpu, gctr, 2));
  tdm_rng_ctr back;
  CHECK_OK(down(gpu, &back, gctr, sizeof back));
  CHECKF(back.seed == ctr.seed && back.calls == 5, "rng_advance: seed %llx calls %llu",
         (unsigned long long)back.seed, (unsigned long long)back.calls);
  CHECK_OK(tdm_rng_advance(cpu, &ctr, 2));
  CHECK(ctr.calls == 5);
  float *u5 = hbuf(n), *gu5 = gpoisonf(gpu, n);
  CHECK(u5 && gu5);
  CHECK_OK(tdm_fill_uniform(cpu, u5, n, -2.0f, 3.0f, &ctr, stream));
  CHECK_OK(tdm_fill_uniform(gpu, gu5, n, -2.0f, 3.0f, gctr, stream));
  float *hu5 = gdownf(gpu, gu5, n);
  CHECK(hu5);
  CHECKF(memcmp(hu5, u5, n * sizeof(float)) == 0, "fill_uniform after advance: differ");
  CHECKF(memcmp(hu5, u, n * sizeof(float)) != 0, "fill_uniform: same numbers after advance");

  // more Philox blocks than one grid covers (the block loop goes round); another stream
  const size_t nb = ((size_t)1 << 23) + 3;
  float *ub = hbuf(nb), *gub = gpoisonf(gpu, nb);
  CHECK(ub && gub);
  CHECK_OK(tdm_fill_uniform(cpu, ub, nb, 0.0f, 1.0f, &ctr, 200));
  CHECK_OK(tdm_fill_uniform(gpu, gub, nb, 0.0f, 1.0f, gctr, 200));
  float *hub = gdownf(gpu, gub, nb);
  CHECK(hub);
  CHECKF(memcmp(hub, ub, nb * sizeof(float)) == 0, "fill_uniform n=2^23+3: GPU and CPU differ");
  CHECKF(memcmp(hub, u5, n * sizeof(float)) != 0, "fill_uniform: stream 200 equals stream 5");
}

// ---------------------------------------------------------------------------------------------
// Adam

// Run steps Adam steps on both devices from the same start and compare p, m, v, step and the
// update itself (p - p0, looser: it is a difference of nearby floats).
static void adam_case(tdm_dev *cpu, tdm_dev *gpu, size_t n, tdm_adam_cfg cfg, int steps,
                      int use_graph, const char *tag) {
  char what[128];
  float *p0 = hrand(n, -1, 1, 210), *m = hrand(n, -0.01f, 0.01f, 211);
  float *v = hrand(n, 0.0f, 1e-4f, 212);
  CHECK(p0 && m && v);
  float *p = hdup(p0, n);
  int32_t step = 0;
  float *gp = gupf(gpu, p0, n), *gm = gupf(gpu, m, n), *gv = gupf(gpu, v, n);
  int32_t *gstep = gup(gpu, &step, sizeof step);
  size_t ns = tdm_adam_scratch_floats(gpu, n), nsc = tdm_adam_scratch_floats(cpu, n);
  float *gscr = gpoisonf(gpu, ns > 0 ? ns : 1), *scr = hbuf(nsc > 0 ? nsc : 1);
  CHECK(p && gp && gm && gv && gstep && gscr && scr);
  // gradients: one buffer per step on the CPU; the GPU reads them from one device buffer that
  // is refilled between steps (also between graph replays)
  float *gg = gpoisonf(gpu, n);
  CHECK(gg);
  tdm_graph *graph = NULL;
  if (use_graph) {
    CHECK_OK(tdm_graph_begin(gpu));
    tdm_status st = tdm_adam_step(gpu, gp, gg, gm, gv, n, &cfg, gstep, gscr);
    tdm_status st_end = tdm_graph_end(gpu, &graph);
    CHECK_OK(st);
    CHECK_OK(st_end);
  }
  for (int k = 0; k < steps; k++) {
    float *g = hrand(n, -1, 1, 220 + k);
    CHECK(g);
    CHECK_OK(tdm_dev_h2d(gpu, gg, g, n * sizeof(float)));
    CHECK_OK(tdm_adam_step(cpu, p, g, m, v, n, &cfg, &step, scr));
    tdm_status st = use_graph ? tdm_graph_launch(gpu, graph)
                              : tdm_adam_step(gpu, gp, gg, gm, gv, n, &cfg, gstep, gscr);
    if (st != TDM_OK) tdm_graph_destroy(graph);
    CHECK_OK(st);
    CHECK_OK(tdm_dev_sync(gpu));  // g is refilled next step
  }
  tdm_graph_destroy(graph);
  int32_t gstep_h = -1;
  CHECK_OK(down(gpu, &gstep_h, gstep, sizeof gstep_h));
  CHECKF(step == steps && gstep_h == steps, "adam %s: step counter cpu %d gpu %d, want %d", tag,
         (int)step, (int)gstep_h, steps);
  snprintf(what, sizeof what, "adam %s m", tag);
  CHECK_GPU(what, gpu, gm, m, n, TOL);
  snprintf(what, sizeof what, "adam %s v", tag);
  CHECK_GPU(what, gpu, gv, v, n, TOL);
  float *hp = gdownf(gpu, gp, n);
  CHECK(hp);
  snprintf(what, sizeof what, "adam %s p", tag);
  CHECK_CLOSE(what, hp, p, n, TOL);
  float *du = hbuf(n), *dc = hbuf(n);
  CHECK(du && dc);
  for (size_t i = 0; i < n; i++) {
    du[i] = hp[i] - p0[i];
    dc[i] = p[i] - p0[i];
  }
  snprintf(what, sizeof what, "adam %s update p - p0", tag);
  CHECK_CLOSE(what, du, dc, n, 1e-3);
}

static void test_adam(void) {
  OPEN_BOTH(cpu, gpu);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  cfg.weight_decay = 0.01f;
  cfg.max_grad_norm = 50.0f;  // ||g|| is about sqrt(n / 3) = 183: clipping is active
  adam_case(cpu, gpu, 100003, cfg, 5, 0, "clip+wd");
  if (tdm_t_failed_now) return;
  cfg.weight_decay = 0.0f;
  cfg.max_grad_norm = 0.0f;
  adam_case(cpu, gpu, 4099, cfg, 3, 0, "plain");
  if (tdm_t_failed_now) return;
  cfg.max_grad_norm = 1e6f;  // clipping on but inactive
  adam_case(cpu, gpu, 777, cfg, 2, 0, "clip inactive");
}

// adam_step captured once and replayed: the step counter and bias corrections advance
static void test_adam_graph(void) {
  OPEN_BOTH(cpu, gpu);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  cfg.lr = 1e-3f;
  cfg.weight_decay = 0.01f;
  cfg.max_grad_norm = 20.0f;
  adam_case(cpu, gpu, 30011, cfg, 4, 1, "graph");
}

// ---------------------------------------------------------------------------------------------
// CUDA graph with random numbers

static void test_graph_rng(void) {
  OPEN_BOTH(cpu, gpu);
  const size_t n = 4099;
  const uint32_t stream = 3;
  tdm_rng_ctr ctr0 = {12345, 0};
  tdm_rng_ctr *gctr = gup(gpu, &ctr0, sizeof ctr0);
  float *gx = gpoisonf(gpu, n);
  CHECK(gctr && gx);
  tdm_graph *graph = NULL;
  CHECK_OK(tdm_graph_begin(gpu));
  tdm_status s1 = tdm_fill_normal(gpu, gx, n, 0.0f, 1.0f, gctr, stream);
  tdm_status s2 = tdm_rng_advance(gpu, gctr, 1);
  tdm_status s3 = tdm_graph_end(gpu, &graph);
  CHECK_OK(s1);
  CHECK_OK(s2);
  CHECK_OK(s3);
  float *h[2];
  for (int k = 0; k < 2; k++) {
    tdm_status st = tdm_graph_launch(gpu, graph);
    h[k] = st == TDM_OK ? gdownf(gpu, gx, n) : NULL;
    if (!h[k]) tdm_graph_destroy(graph);
    CHECK_OK(st);
    CHECK(h[k]);
  }
  tdm_graph_destroy(graph);
  tdm_rng_ctr back;
  CHECK_OK(down(gpu, &back, gctr, sizeof back));
  CHECKF(back.calls == 2, "graph replays advanced calls to %llu, want 2",
         (unsigned long long)back.calls);
  CHECKF(tdm_t_relerr(h[0], h[1], n) > 0.5, "two replays drew the same numbers");
  for (int k = 0; k < 2; k++) {
    tdm_rng_ctr c = {12345, (uint64_t)k};
    float *want = hbuf(n);
    CHECK(want);
    CHECK_OK(tdm_fill_normal(cpu, want, n, 0.0f, 1.0f, &c, stream));
    CHECK_CLOSE(k ? "graph replay 2 vs CPU calls=1" : "graph replay 1 vs CPU calls=0", h[k], want,
                n, TOL);
  }
}

#define RUN(fn)    \
  do {             \
    tdm_t_release_all(); \
    TDM_RUN(fn);   \
    tdm_t_release_all(); \
  } while (0)

int main(void) {
  RUN(test_gemm);
  RUN(test_gemm_batched);
  RUN(test_bias_add_grad);
  RUN(test_activations);
  RUN(test_layernorm);
  RUN(test_simnorm);
  RUN(test_softmax);
  RUN(test_symlog_twohot);
  RUN(test_reductions);
  RUN(test_elementwise);
  RUN(test_random);
  RUN(test_adam);
  RUN(test_adam_graph);
  RUN(test_graph_rng);
  tdm_dev_close(cpu_dev());
  return tdm_test_end();
}
