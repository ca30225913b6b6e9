// Ops on the CPU: every op against a float64 reference on random inputs, finite-difference checks
// of every backward, the Philox stream convention, determinism across pool sizes, argument checks.
#include "test.h"

static tdm_dev *cpu;   // 2 pool threads
static tdm_dev *cpu1;  // 1 thread, for determinism checks

// ---------------------------------------------------------------------------------------------
// helpers: test buffers are freed after each test (a CHECK returns early)

#define MAXBUF 256
static void *bufs[MAXBUF];
static int nbufs;

static void *tbuf(size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p || nbufs == MAXBUF) abort();
  bufs[nbufs++] = p;
  return p;
}
static float *tf(size_t n) {
  return tbuf(n * sizeof(float));
}
static double *td(size_t n) {
  return tbuf(n * sizeof(double));
}
static float *trand(size_t n, float lo, float hi, uint64_t seed) {
  float *x = tf(n);
  tdm_t_rand(x, n, lo, hi, seed);
  return x;
}
static void tfree_all(void) {
  for (int i = 0; i < nbufs; i++) free(bufs[i]);
  nbufs = 0;
}
#define RUN(fn)  \
  do {           \
    TDM_RUN(fn); \
    tfree_all(); \
  } while (0)

// Relative error of float a against double b.
static double relerr_fd(const float *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

// Central-difference gradient of a scalar loss f(ctx) in x (double), written to grad.
typedef double (*loss_fn)(void *ctx);
static void fd_grad(loss_fn f, void *ctx, double *x, size_t n, double *grad) {
  const double h = 1e-6;
  for (size_t i = 0; i < n; i++) {
    double x0 = x[i];
    x[i] = x0 + h;
    double fp = f(ctx);
    x[i] = x0 - h;
    double fm = f(ctx);
    x[i] = x0;
    grad[i] = (fp - fm) / (2 * h);
  }
}

static double *to_d(const float *x, size_t n) {
  double *d = td(n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static int bitwise_eq(const void *a, const void *b, size_t bytes) {
  return !memcmp(a, b, bytes);
}

// ---------------------------------------------------------------------------------------------
// GEMM

// C = alpha op(A) op(B) + beta C in double
static void ref_gemm(int ta, int tb, int M, int N, int K, double alpha, const float *A, int lda,
                     const float *B, int ldb, double beta, const float *C0, int ldc, double *C) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < K; k++) {
        double a = ta ? A[k * lda + i] : A[i * lda + k];
        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      C[i * N + j] = alpha * s + (beta != 0 ? beta * C0[i * ldc + j] : 0);
    }
}

static void test_gemm_transposes(void) {
  const int M = 7, N = 5, K = 9;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int bz = 0; bz < 2; bz++) {
        // padded leading dimensions
        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
        float *A = trand((size_t)(ta ? K : M) * lda, -1, 1, 11 + ta);
        float *B = trand((size_t)(tb ? N : K) * ldb, -1, 1, 13 + tb);
        float *C = trand((size_t)M * ldc, -1, 1, 17);
        float beta = bz ? 0.0f : 0.3f;
        if (bz)
          for (int i = 0; i < M * ldc; i++) C[i] = NAN;  // beta = 0 must ignore C
        double *R = td((size_t)M * N);
        ref_gemm(ta, tb, M, N, K, 0.7, A, lda, B, ldb, beta, C, ldc, R);
        CHECK_OK(tdm_gemm(cpu, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C, ldc));
        float *Cp = tf((size_t)M * N);
        for (int i = 0; i < M; i++) memcpy(Cp + i * N, C + i * ldc, sizeof(float) * N);
        double e = relerr_fd(Cp, R, (size_t)M * N);
        CHECKF(e < 1e-6, "ta %d tb %d beta %g: relerr %g", ta, tb, beta, e);
      }
}

static void test_gemm_batched_shared(void) {
  const int M = 6, N = 4, K = 8, batch = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int lda = ta ? M : K, ldb = tb ? K : N;
      float *A = trand((size_t)M * K, -1, 1, 21);  // shared: sA = 0
      long long sB = (long long)K * N + 5, sC = (long long)M * N + 2;
      float *B = trand((size_t)sB * batch, -1, 1, 22);
      float *C = trand((size_t)sC * batch, -1, 1, 23);
      float *C0 = tf((size_t)sC * batch);
      memcpy(C0, C, sizeof(float) * sC * batch);
      CHECK_OK(tdm_gemm_batched(cpu, ta, tb, M, N, K, 1.3f, A, lda, 0, B, ldb, sB, -0.5f, C, N, sC,
                                batch));
      for (int b = 0; b < batch; b++) {
        double *R = td((size_t)M * N);
        ref_gemm(ta, tb, M, N, K, 1.3, A, lda, B + b * sB, ldb, -0.5, C0 + b * sC, N, R);
        double e = relerr_fd(C + b * sC, R, (size_t)M * N);
        CHECKF(e < 1e-6, "ta %d tb %d batch %d: relerr %g", ta, tb, b, e);
        // the gap between outputs is untouched
        CHECK(C[b * sC + M * N] == C0[b * sC + M * N]);
      }
    }
}

// GEMM gradients: L = sum W .* (A B); dA = W B^T, dB = A^T W, computed with the library's
// transposed products and checked by finite differences.
typedef struct {
  double *A, *B;
  const float *W;
  int M, N, K;
} mm_ctx;
static double mm_loss(void *p) {
  mm_ctx *c = p;
  double L = 0;
  for (int i = 0; i < c->M; i++)
    for (int j = 0; j < c->N; j++) {
      double s = 0;
      for (int k = 0; k < c->K; k++) s += c->A[i * c->K + k] * c->B[k * c->N + j];
      L += c->W[i * c->N + j] * s;
    }
  return L;
}

static void test_gemm_grad_fd(void) {
  const int M = 5, N = 4, K = 6;
  float *A = trand(M * K, -1, 1, 31), *B = trand(K * N, -1, 1, 32), *W = trand(M * N, -1, 1, 33);
  float *dA = tf(M * K), *dB = tf(K * N);
  CHECK_OK(tdm_gemm(cpu, TDM_NOTRANS, TDM_TRANS, M, K, N, 1.0f, W, N, B, N, 0.0f, dA, K));
  CHECK_OK(tdm_gemm(cpu, TDM_TRANS, TDM_NOTRANS, K, N, M, 1.0f, A, K, W, N, 0.0f, dB, N));
  mm_ctx c = {to_d(A, M * K), to_d(B, K * N), W, M, N, K};
  double *gA = td(M * K), *gB = td(K * N);
  fd_grad(mm_loss, &c, c.A, M * K, gA);
  fd_grad(mm_loss, &c, c.B, K * N, gB);
  double ea = relerr_fd(dA, gA, M * K), eb = relerr_fd(dB, gB, K * N);
  CHECKF(ea < 1e-5 && eb < 1e-5, "dA relerr %g, dB relerr %g", ea, eb);
}

// ---------------------------------------------------------------------------------------------
// bias

static void test_bias_add_grad(void) {
  const int E = 3, M = 5, N = 7;
  float *Y = trand(E * M * N, -1, 1, 41), *b = trand(E * N, -1, 1, 42);
  float *Y0 = tf(E * M * N);
  memcpy(Y0, Y, sizeof(float) * E * M * N);
  CHECK_OK(tdm_bias_add(cpu, Y, b, E, M, N));
  double *R = td(E * M * N);
  for (int e = 0; e < E; e++)
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++)
        R[(e * M + m) * N + n] = (double)Y0[(e * M + m) * N + n] + b[e * N + n];
  CHECKF(relerr_fd(Y, R, E * M * N) < 1e-7, "bias_add relerr %g", relerr_fd(Y, R, E * M * N));
  // bias_grad = d/db of L = sum dY .* (Y + b): finite differences on the reference forward
  float *dY = trand(E * M * N, -1, 1, 43), *db = tf(E * N);
  for (int i = 0; i < E * N; i++) db[i] = NAN;  // beta = 0 ignores the old value
  CHECK_OK(tdm_bias_grad(cpu, db, dY, E, M, N, 0.0f));
  double *gb = td(E * N), *bd = to_d(b, E * N);
  for (int i = 0; i < E * N; i++) {
    double L[2];
    for (int s = 0; s < 2; s++) {
      double h = s ? -1e-6 : 1e-6, acc = 0;
      for (int m = 0; m < M; m++) {
        int e = i / N, n = i % N;
        acc += dY[(e * M + m) * N + n] * ((double)Y0[(e * M + m) * N + n] + bd[i] + h);
      }
      L[s] = acc;
    }
    gb[i] = (L[0] - L[1]) / 2e-6;
  }
  CHECKF(relerr_fd(db, gb, E * N) < 1e-5, "bias_grad relerr %g", relerr_fd(db, gb, E * N));
  // beta = 0.5 accumulates
  float *db2 = tf(E * N);
  for (int i = 0; i < E * N; i++) db2[i] = 2.0f;
  CHECK_OK(tdm_bias_grad(cpu, db2, dY, E, M, N, 0.5f));
  for (int i = 0; i < E * N; i++) CHECK(fabsf(db2[i] - (1.0f + db[i])) < 1e-5f);
}

// ---------------------------------------------------------------------------------------------
// activations


static void test_act_forward(void) {
  const size_t n = 1000;
  float *x = trand(n, -5, 5, 51);
  x[0] = 40.0f;  // large inputs stay finite (softplus, sigmoid)
  x[1] = -40.0f;
  x[2] = 90.0f;
  x[3] = -90.0f;
  for (int a = TDM_ACT_NONE; a <= TDM_ACT_ELU; a++) {
    float *y = tf(n);
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
    double *r = td(n);
    for (size_t i = 0; i < n; i++) r[i] = tdm_t_ref_act((tdm_act)a, x[i]);
    double e = relerr_fd(y, r, n);
    CHECKF(e < 1e-6, "%s: relerr %g", tdm_act_name((tdm_act)a), e);
    // in place
    float *z = tf(n);
    memcpy(z, x, n * sizeof(float));
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, z, z, n));
    CHECK(bitwise_eq(z, y, n * sizeof(float)));
  }
}

typedef struct {
  tdm_act a;
  double *x;
  const float *w;
  size_t n;
} act_ctx;
static double act_loss(void *p) {
  act_ctx *c = p;
  double L = 0;
  for (size_t i = 0; i < c->n; i++) L += c->w[i] * tdm_t_ref_act(c->a, c->x[i]);
  return L;
}

static void test_act_backward_fd(void) {
  const size_t n = 300;
  float *x = trand(n, -4, 4, 52), *w = trand(n, -1, 1, 53);
  for (int a = TDM_ACT_NONE; a <= TDM_ACT_ELU; a++) {
    float *y = tf(n), *dx = tf(n);
    CHECK_OK(tdm_act_forward(cpu, (tdm_act)a, x, y, n));
    CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, w, dx, n));
    act_ctx c = {(tdm_act)a, to_d(x, n), w, n};
    double *g = td(n);
    fd_grad(act_loss, &c, c.x, n, g);
    double e = relerr_fd(dx, g, n);
    CHECKF(e < 1e-5, "%s: relerr %g", tdm_act_name((tdm_act)a), e);
    // dx may alias dy
    float *d2 = tf(n);
    memcpy(d2, w, n * sizeof(float));
    CHECK_OK(tdm_act_backward(cpu, (tdm_act)a, x, y, d2, d2, n));
    CHECK(bitwise_eq(d2, dx, n * sizeof(float)));
  }
}

static void test_act_names(void) {
  for (int a = TDM_ACT_NONE; a <= TDM_ACT_ELU; a++)
    CHECK(tdm_act_from_name(tdm_act_name((tdm_act)a)) == a);
  CHECK(!strcmp(tdm_act_name(TDM_ACT_MISH), "mish"));
  CHECK(tdm_act_from_name("gelu") == -1);
  CHECK(tdm_act_from_name(NULL) == -1);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

typedef struct {
  double *x, *g, *b;
  const float *w;
  int E, R, D;
  double eps;
} ln_ctx;

static void ref_ln(const ln_ctx *c, double *y, double *mean, double *rstd) {
  for (int e = 0; e < c->E; e++)
    for (int r = 0; r < c->R; r++) {
      const double *x = c->x + (e * c->R + r) * c->D;
      double mu = 0, v = 0;
      for (int d = 0; d < c->D; d++) mu += x[d];
      mu /= c->D;
      for (int d = 0; d < c->D; d++) v += (x[d] - mu) * (x[d] - mu);
      double rs = 1 / sqrt(v / c->D + c->eps);
      if (mean) mean[e * c->R + r] = mu;
      if (rstd) rstd[e * c->R + r] = rs;
      for (int d = 0; d < c->D; d++)
        y[(e * c->R + r) * c->D + d] = (x[d] - mu) * rs * c->g[e * c->D + d] + c->b[e * c->D + d];
    }
}

static double ln_loss(void *p) {
  ln_ctx *c = p;
  size_t n = (size_t)c->E * c->R * c->D;
  double *y = malloc(n * sizeof(double)), L = 0;
  ref_ln(c, y, NULL, NULL);
  for (size_t i = 0; i < n; i++) L += c->w[i] * y[i];
  free(y);
  return L;
}

static void test_layernorm(void) {
  const int E = 3, R = 4, D = 10;
  const size_t n = (size_t)E * R * D;
  float *x = trand(n, -2, 3, 61), *g = trand(E * D, 0.5f, 1.5f, 62), *b = trand(E * D, -1, 1, 63);
  float *y = tf(n), *mean = tf(E * R), *rstd = tf(E * R);
  CHECK_OK(tdm_layernorm_forward(cpu, x, g, b, y, mean, rstd, E, R, D, 1e-5f));
  ln_ctx c = {to_d(x, n), to_d(g, E * D), to_d(b, E * D), NULL, E, R, D, 1e-5};
  double *ry = td(n), *rm = td(E * R), *rr = td(E * R);
  ref_ln(&c, ry, rm, rr);
  CHECKF(relerr_fd(y, ry, n) < 1e-6, "y relerr %g", relerr_fd(y, ry, n));
  CHECKF(relerr_fd(mean, rm, E * R) < 1e-6, "mean relerr %g", relerr_fd(mean, rm, E * R));
  CHECKF(relerr_fd(rstd, rr, E * R) < 1e-6, "rstd relerr %g", relerr_fd(rstd, rr, E * R));
  // mean and rstd are optional
  float *y2 = tf(n);
  CHECK_OK(tdm_layernorm_forward(cpu, x, g, b, y2, NULL, NULL, E, R, D, 1e-5f));
  CHECK(bitwise_eq(y, y2, n * sizeof(float)));
}

static void test_layernorm_backward_fd(void) {
  const int E = 2, R = 3, D = 8;
  const size_t n = (size_t)E * R * D;
  float *x = trand(n, -2, 3, 64), *g = trand(E * D, 0.5f, 1.5f, 65), *b = trand(E * D, -1, 1, 66);
  float *w = trand(n, -1, 1, 67);  // dy
  float *y = tf(n), *mean = tf(E * R), *rstd = tf(E * R);
  CHECK_OK(tdm_layernorm_forward(cpu, x, g, b, y, mean, rstd, E, R, D, 1e-5f));
  float *dx = tf(n), *dg = tf(E * D), *db = tf(E * D);
  for (int i = 0; i < E * D; i++) dg[i] = db[i] = NAN;  // beta_acc = 0 overwrites
  CHECK_OK(tdm_layernorm_backward(cpu, x, g, mean, rstd, w, dx, dg, db, E, R, D, 0.0f));
  ln_ctx c = {to_d(x, n), to_d(g, E * D), to_d(b, E * D), w, E, R, D, 1e-5};
  double *gx = td(n), *gg = td(E * D), *gb = td(E * D);
  fd_grad(ln_loss, &c, c.x, n, gx);
  fd_grad(ln_loss, &c, c.g, E * D, gg);
  fd_grad(ln_loss, &c, c.b, E * D, gb);
  double ex = relerr_fd(dx, gx, n), eg = relerr_fd(dg, gg, E * D), eb = relerr_fd(db, gb, E * D);
  CHECKF(ex < 1e-4 && eg < 1e-5 && eb < 1e-5, "dx %g dgamma %g dbeta %g", ex, eg, eb);
  // beta_acc = 1 accumulates onto the old gradients
  float *dg2 = tf(E * D), *db2 = tf(E * D);
  for (int i = 0; i < E * D; i++) dg2[i] = db2[i] = 0.25f;
  CHECK_OK(tdm_layernorm_backward(cpu, x, g, mean, rstd, w, dx, dg2, db2, E, R, D, 1.0f));
  for (int i = 0; i < E * D; i++)
    CHECK(fabsf(dg2[i] - (dg[i] + 0.25f)) < 1e-5f && fabsf(db2[i] - (db[i] + 0.25f)) < 1e-5f);
}

// ---------------------------------------------------------------------------------------------
// SimNorm, softmax, log-softmax

// softmax (log = 0) or log-softmax (log = 1) over groups of V in double
static void ref_softmax(const double *x, double *y, size_t rows, int D, int V, int lg) {
  for (size_t r = 0; r < rows; r++)
    for (int k = 0; k < D; k += V) {
      const double *xi = x + r * D + k;
      double mx = xi[0], s = 0;
      for (int v = 1; v < V; v++) mx = fmax(mx, xi[v]);
      for (int v = 0; v < V; v++) s += exp(xi[v] - mx);
      for (int v = 0; v < V; v++) y[r * D + k + v] = lg ? xi[v] - mx - log(s) : exp(xi[v] - mx) / s;
    }
}

typedef struct {
  double *x;
  const float *w;
  size_t rows;
  int D, V, log;
} sm_ctx;
static double sm_loss(void *p) {
  sm_ctx *c = p;
  size_t n = c->rows * c->D;
  double *y = malloc(n * sizeof(double)), L = 0;
  ref_softmax(c->x, y, c->rows, c->D, c->V, c->log);
  for (size_t i = 0; i < n; i++) L += c->w[i] * y[i];
  free(y);
  return L;
}

static void test_simnorm(void) {
  const size_t rows = 5;
  const int D = 24, V = 8;
  const size_t n = rows * D;
  float *x = trand(n, -4, 4, 71), *y = tf(n);
  CHECK_OK(tdm_simnorm_forward(cpu, x, y, rows, D, V));
  double *r = td(n);
  ref_softmax(to_d(x, n), r, rows, D, V, 0);
  CHECKF(relerr_fd(y, r, n) < 1e-6, "forward relerr %g", relerr_fd(y, r, n));
  for (size_t i = 0; i < n; i += V) {
    double s = 0;
    for (int v = 0; v < V; v++) s += y[i + v];
    CHECKF(fabs(s - 1) < 1e-6, "group %zu sums to %g", i / V, s);
  }
  float *w = trand(n, -1, 1, 72), *dx = tf(n);
  CHECK_OK(tdm_simnorm_backward(cpu, y, w, dx, rows, D, V));
  sm_ctx c = {to_d(x, n), w, rows, D, V, 0};
  double *g = td(n);
  fd_grad(sm_loss, &c, c.x, n, g);
  CHECKF(relerr_fd(dx, g, n) < 1e-5, "backward relerr %g", relerr_fd(dx, g, n));
}

static void test_softmax_log_softmax(void) {
  const size_t rows = 6;
  const int D = 13;
  const size_t n = rows * D;
  float *x = trand(n, -6, 6, 73), *y = tf(n), *ly = tf(n);
  x[0] = 80.0f;  // max subtraction keeps large logits finite
  CHECK_OK(tdm_softmax(cpu, x, y, rows, D));
  CHECK_OK(tdm_log_softmax(cpu, x, ly, rows, D));
  double *xd = to_d(x, n), *r = td(n), *lr = td(n);
  ref_softmax(xd, r, rows, D, D, 0);
  ref_softmax(xd, lr, rows, D, D, 1);
  CHECKF(relerr_fd(y, r, n) < 1e-6, "softmax relerr %g", relerr_fd(y, r, n));
  CHECKF(relerr_fd(ly, lr, n) < 1e-6, "log_softmax relerr %g", relerr_fd(ly, lr, n));
  float *w = trand(n, -1, 1, 74), *dx = tf(n);
  CHECK_OK(tdm_log_softmax_backward(cpu, ly, w, dx, rows, D));
  x[0] = 1.5f;  // finite differences need moderate logits
  CHECK_OK(tdm_log_softmax(cpu, x, ly, rows, D));
  CHECK_OK(tdm_log_softmax_backward(cpu, ly, w, dx, rows, D));
  sm_ctx c = {to_d(x, n), w, rows, D, D, 1};
  double *g = td(n);
  fd_grad(sm_loss, &c, c.x, n, g);
  CHECKF(relerr_fd(dx, g, n) < 1e-5, "log_softmax backward relerr %g", relerr_fd(dx, g, n));
}

// ---------------------------------------------------------------------------------------------
// symlog, symexp, two-hot

static double ref_symlog(double x) {
  return x < 0 ? -log1p(-x) : log1p(x);
}
static double ref_symexp(double x) {
  return x < 0 ? -expm1(-x) : expm1(x);
}

static void test_symlog_symexp(void) {
  const size_t n = 500;
  float *x = trand(n, -50, 50, 81), *y = tf(n), *z = tf(n);
  CHECK_OK(tdm_symlog(cpu, x, y, n));
  CHECK_OK(tdm_symexp(cpu, y, z, n));
  double *r = td(n), *rz = td(n);
  for (size_t i = 0; i < n; i++) r[i] = ref_symlog(x[i]), rz[i] = ref_symexp(y[i]);
  CHECKF(relerr_fd(y, r, n) < 1e-6, "symlog relerr %g", relerr_fd(y, r, n));
  CHECKF(relerr_fd(z, rz, n) < 1e-6, "symexp relerr %g", relerr_fd(z, rz, n));
  CHECKF(tdm_t_relerr(z, x, n) < 1e-5, "round trip relerr %g", tdm_t_relerr(z, x, n));
  CHECK_OK(tdm_symlog(cpu, x, x, n));  // in place
  CHECK(bitwise_eq(x, y, n * sizeof(float)));
}

static void test_twohot_encode(void) {
  const int nb = 11;
  const float vmin = -5, vmax = 5;
  const size_t n = 200;
  float *x = trand(n, -200, 200, 82);
  x[0] = 1e6f;                    // clamps to vmax
  x[1] = -1e6f;                   // clamps to vmin
  x[2] = (float)ref_symexp(2.0);  // exactly bin 7 (up to float rounding of symlog)
  float *o = tf(n * nb);
  CHECK_OK(tdm_twohot_encode(cpu, x, o, n, nb, vmin, vmax));
  double w = (vmax - vmin) / (double)(nb - 1);
  for (size_t i = 0; i < n; i++) {
    double s = fmin(fmax(ref_symlog(x[i]), vmin), vmax), sum = 0, mean = 0;
    int nz = 0;
    for (int k = 0; k < nb; k++) {
      float p = o[i * nb + k];
      CHECK(p >= 0.0f && p <= 1.0f);
      sum += p;
      mean += p * (vmin + k * w);
      if (p > 0) {
        nz++;
        CHECKF(fabs(vmin + k * w - s) < w + 1e-5, "row %zu: weight on bin %d far from %g", i, k, s);
      }
    }
    CHECKF(nz >= 1 && nz <= 2, "row %zu: %d bins set", i, nz);
    CHECKF(fabs(sum - 1) < 1e-6, "row %zu sums to %g", i, sum);
    CHECKF(fabs(mean - s) < 1e-5, "row %zu: bin mean %g, symlog %g", i, mean, s);
  }
  CHECK(o[0 * nb + nb - 1] == 1.0f && o[1 * nb + 0] == 1.0f);
  CHECKF(fabsf(o[2 * nb + 7] - 1.0f) < 1e-5f, "exact hit: %g on bin 7", o[2 * nb + 7]);
  // exact bin values put 1.0 on one bin
  float e[3] = {0.0f, (float)ref_symexp(1.0), (float)ref_symexp(-4.0)};
  int ebin[3] = {5, 6, 1};
  float *oe = tf(3 * nb);
  CHECK_OK(tdm_twohot_encode(cpu, e, oe, 3, nb, vmin, vmax));
  for (int i = 0; i < 3; i++) CHECKF(oe[i * nb + ebin[i]] > 0.9999f, "value %g", e[i]);
  CHECK(oe[5] == 1.0f);  // x = 0 is exactly the middle bin
}

static void test_twohot_decode(void) {
  const int nb = 101;
  const float vmin = -10, vmax = 10;
  const size_t n = 64;
  // reference decode of random logits
  float *l = trand(n * nb, -3, 3, 83), *out = tf(n);
  CHECK_OK(tdm_twohot_decode(cpu, l, out, n, nb, vmin, vmax));
  double *r = td(n), *p = td(nb), *ld = to_d(l, n * nb);
  for (size_t i = 0; i < n; i++) {
    ref_softmax(ld + i * nb, p, 1, nb, nb, 0);
    double s = 0;
    for (int k = 0; k < nb; k++) s += p[k] * (vmin + k * (vmax - vmin) / (double)(nb - 1));
    r[i] = ref_symexp(s);
  }
  CHECKF(relerr_fd(out, r, n) < 1e-5, "decode relerr %g", relerr_fd(out, r, n));
  // round trip: decode(log(encode(x))) = x inside the range
  float *x = trand(n, -500, 500, 84), *enc = tf(n * nb), *dec = tf(n);
  CHECK_OK(tdm_twohot_encode(cpu, x, enc, n, nb, vmin, vmax));
  for (size_t i = 0; i < n * nb; i++) enc[i] = enc[i] > 0 ? logf(enc[i]) : -1e30f;
  CHECK_OK(tdm_twohot_decode(cpu, enc, dec, n, nb, vmin, vmax));
  for (size_t i = 0; i < n; i++)
    CHECKF(fabsf(dec[i] - x[i]) < 1e-4f * fmaxf(1.0f, fabsf(x[i])), "x %g decoded %g", x[i],
           dec[i]);
}

// ---------------------------------------------------------------------------------------------
// reductions

static void test_reduce_rows(void) {
  const size_t rows = 9;
  const int D = 37;
  float *x = trand(rows * D, -3, 5, 91), *o = tf(rows);
  for (int op = TDM_REDUCE_SUM; op <= TDM_REDUCE_MAX; op++) {
    CHECK_OK(tdm_reduce_rows(cpu, (tdm_reduce)op, x, o, rows, D));
    double *r = td(rows);
    for (size_t i = 0; i < rows; i++) {
      double s = 0, m = -INFINITY;
      for (int d = 0; d < D; d++) s += x[i * D + d], m = fmax(m, x[i * D + d]);
      r[i] = op == TDM_REDUCE_SUM ? s : op == TDM_REDUCE_MEAN ? s / D : m;
    }
    CHECKF(relerr_fd(o, r, rows) < 1e-6, "op %d relerr %g", op, relerr_fd(o, r, rows));
  }
}

static void test_reduce_all_deterministic(void) {
  const size_t ns[3] = {5, 4097, 1000003};
  for (int k = 0; k < 3; k++) {
    size_t n = ns[k];
    float *x = trand(n, -1, 1.2f, 92 + k);
    for (int op = TDM_REDUCE_SUM; op <= TDM_REDUCE_MAX; op++) {
      float o1, o2;
      CHECK_OK(tdm_reduce_all(cpu1, (tdm_reduce)op, x, &o1, n));
      double s = 0, m = -INFINITY;
      for (size_t i = 0; i < n; i++) s += x[i], m = fmax(m, x[i]);
      double r = op == TDM_REDUCE_SUM ? s : op == TDM_REDUCE_MEAN ? s / n : m;
      CHECKF(fabs(o1 - r) <= 1e-6 * fmax(1, fabs(r)), "n %zu op %d: %.9g vs %.9g", n, op, o1, r);
      for (int rep = 0; rep < 5; rep++) {
        CHECK_OK(tdm_reduce_all(cpu, (tdm_reduce)op, x, &o2, n));
        CHECKF(bitwise_eq(&o1, &o2, sizeof o1), "n %zu op %d: 1 thread %.9g, 2 threads %.9g", n, op,
               o1, o2);
      }
    }
  }
}

// Row and member ops give bit-identical results with 1 and 2 pool threads (large inputs).
static void test_threads_bitwise(void) {
  const int E = 2, R = 3000, D = 16;
  const size_t n = (size_t)E * R * D;
  float *x = trand(n, -2, 2, 95), *g = trand(E * D, 0.5f, 1.5f, 96), *b = trand(E * D, -1, 1, 97);
  float *dy = trand(n, -1, 1, 98);
  float *out[2][5];
  for (int t = 0; t < 2; t++) {
    tdm_dev *d = t ? cpu : cpu1;
    float *y = tf(n), *mean = tf(E * R), *rstd = tf(E * R), *dx = tf(n), *dg = tf(E * D);
    float *db = tf(E * D);
    CHECK_OK(tdm_layernorm_forward(d, x, g, b, y, mean, rstd, E, R, D, 1e-5f));
    CHECK_OK(tdm_layernorm_backward(d, x, g, mean, rstd, dy, dx, dg, db, E, R, D, 0.0f));
    float *bg = tf(E * D), *sm = tf(n);
    CHECK_OK(tdm_bias_grad(d, bg, dy, E, R, D, 0.0f));
    CHECK_OK(tdm_simnorm_forward(d, x, sm, (size_t)E * R, D, 8));
    out[t][0] = y, out[t][1] = dx, out[t][2] = dg, out[t][3] = bg, out[t][4] = sm;
  }
  size_t sz[5] = {n, n, (size_t)E * D, (size_t)E * D, n};
  for (int k = 0; k < 5; k++)
    CHECKF(bitwise_eq(out[0][k], out[1][k], sz[k] * sizeof(float)), "output %d differs", k);
}

// ---------------------------------------------------------------------------------------------
// elementwise

static void test_elementwise(void) {
  const size_t n = 40000;  // above the pool grain
  float *x = trand(n, -2, 2, 101), *y = trand(n, -2, 2, 102), *z = tf(n);
  CHECK_OK(tdm_fill(cpu, z, n, 1.25f));
  for (size_t i = 0; i < n; i++) CHECK(z[i] == 1.25f);
  memcpy(z, y, n * sizeof(float));
  CHECK_OK(tdm_axpby(cpu, n, 0.3f, x, -1.5f, z));
  for (size_t i = 0; i < n; i++) CHECK(fabs(z[i] - (0.3 * x[i] - 1.5 * y[i])) < 1e-6);
  for (size_t i = 0; i < n; i++) z[i] = NAN;
  CHECK_OK(tdm_axpby(cpu, n, 2.0f, x, 0.0f, z));  // b = 0 ignores y
  for (size_t i = 0; i < n; i++) CHECK(z[i] == 2.0f * x[i]);
  memcpy(z, x, n * sizeof(float));
  CHECK_OK(tdm_scale(cpu, n, -0.75f, z));
  for (size_t i = 0; i < n; i++) CHECK(z[i] == -0.75f * x[i]);
  memcpy(z, x, n * sizeof(float));
  CHECK_OK(tdm_clamp(cpu, n, -0.5f, 1.0f, z));
  for (size_t i = 0; i < n; i++) CHECK(z[i] == fminf(fmaxf(x[i], -0.5f), 1.0f));
  CHECK_OK(tdm_mul(cpu, n, x, y, z));
  for (size_t i = 0; i < n; i++) CHECK(z[i] == x[i] * y[i]);
  memcpy(z, x, n * sizeof(float));
  CHECK_OK(tdm_mul(cpu, n, z, y, z));  // z may alias x
  for (size_t i = 0; i < n; i++) CHECK(z[i] == x[i] * y[i]);
  memcpy(z, y, n * sizeof(float));
  CHECK_OK(tdm_polyak(cpu, z, x, n, 0.005f));
  for (size_t i = 0; i < n; i++) CHECK(fabs(z[i] - (0.995 * y[i] + 0.005 * x[i])) < 1e-6);
}

static void test_gather_rows(void) {
  const int D = 6;
  const size_t rows = 10, nidx = 7;
  float *src = trand(rows * D, -1, 1, 103), *dst = tf(nidx * D);
  int32_t idx[7] = {3, 0, 9, 3, 5, 1, 8};
  CHECK_OK(tdm_gather_rows(cpu, src, idx, dst, nidx, D));
  for (size_t i = 0; i < nidx; i++) CHECK(bitwise_eq(dst + i * D, src + idx[i] * D, D * 4));
  idx[2] = -1;
  CHECK(tdm_gather_rows(cpu, src, idx, dst, nidx, D) == TDM_ERR_ARG);
  CHECK(strstr(tdm_errmsg(), "gather_rows"));
}

// ---------------------------------------------------------------------------------------------
// random numbers

// Expected value of element i under the stream convention of core.h (0 uniform, 1 normal).
static float conv_draw(const tdm_rng_ctr *rng, uint32_t stream, size_t i, int normal) {
  uint64_t g = i / 4, sub = tdm_rng_sub(rng->calls, stream);
  uint32_t ctr[4] = {(uint32_t)g, (uint32_t)(g >> 32), (uint32_t)sub, (uint32_t)(sub >> 32)};
  uint32_t key[2] = {(uint32_t)rng->seed, (uint32_t)(rng->seed >> 32)}, r[4];
  tdm_philox4x32_10(ctr, key, r);
  int lane = (int)(i % 4);
  if (!normal) return tdm_u32_uniform(r[lane]);
  float a, b;
  tdm_box_muller(r[lane & 2], r[(lane & 2) + 1], &a, &b);
  return lane & 1 ? b : a;
}

static void test_random_convention(void) {
  // seed and sub-stream with high words set, n not a multiple of 4
  tdm_rng_ctr rng = {0x123456789abcdef1ull, (1ull << 25) + 3};
  const size_t n = 1003;
  float *u = tf(n), *z = tf(n);
  CHECK_OK(tdm_fill_uniform(cpu, u, n, -1.0f, 3.0f, &rng, 17));
  CHECK_OK(tdm_fill_normal(cpu, z, n, 2.0f, 0.5f, &rng, 17));
  for (size_t i = 0; i < n; i++) {
    float eu = -1.0f + 4.0f * conv_draw(&rng, 17, i, 0);
    float ez = 2.0f + 0.5f * conv_draw(&rng, 17, i, 1);
    CHECKF(u[i] == eu, "uniform %zu: %.9g vs %.9g", i, u[i], eu);
    CHECKF(z[i] == ez, "normal %zu: %.9g vs %.9g", i, z[i], ez);
  }
}

static void test_random_determinism(void) {
  tdm_rng_ctr rng = {42, 7};
  const size_t n = 50001;  // several pool chunks
  float *a = tf(n), *b = tf(n), *c = tf(n), *d = tf(n), *e = tf(n);
  CHECK_OK(tdm_fill_normal(cpu, a, n, 0, 1, &rng, 3));
  CHECK_OK(tdm_fill_normal(cpu, b, n, 0, 1, &rng, 3));
  CHECK_OK(tdm_fill_normal(cpu1, e, n, 0, 1, &rng, 3));
  CHECK(bitwise_eq(a, b, n * 4));
  CHECK(bitwise_eq(a, e, n * 4));                       // any pool size
  CHECK_OK(tdm_fill_normal(cpu, c, n, 0, 1, &rng, 4));  // other stream
  CHECK_OK(tdm_rng_advance(cpu, &rng, 1));
  CHECK(rng.calls == 8 && rng.seed == 42);
  CHECK_OK(tdm_fill_normal(cpu, d, n, 0, 1, &rng, 3));  // next call
  int same_c = 0, same_d = 0;
  for (size_t i = 0; i < n; i++) same_c += a[i] == c[i], same_d += a[i] == d[i];
  CHECKF(same_c < 5 && same_d < 5, "same as stream 3 / call 7: %d, %d", same_c, same_d);
  // element i does not depend on n
  float *s = tf(10);
  CHECK_OK(tdm_rng_advance(cpu, &rng, (uint64_t)-1));
  CHECK_OK(tdm_fill_normal(cpu, s, 10, 0, 1, &rng, 3));
  CHECK(bitwise_eq(s, a, 10 * 4));
}

static void test_random_moments(void) {
  tdm_rng_ctr rng = {2024, 0};
  const size_t n = 200000;
  float *u = tf(n), *z = tf(n);
  CHECK_OK(tdm_fill_uniform(cpu, u, n, -1.0f, 3.0f, &rng, 0));
  CHECK_OK(tdm_fill_normal(cpu, z, n, 2.0f, 0.5f, &rng, 1));
  double su = 0, su2 = 0, sz = 0, sz2 = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK(u[i] > -1.0f && u[i] <= 3.0f);
    su += u[i], su2 += (double)u[i] * u[i], sz += z[i], sz2 += (double)z[i] * z[i];
  }
  double mu = su / n, vu = su2 / n - mu * mu, mz = sz / n, vz = sz2 / n - mz * mz;
  CHECKF(fabs(mu - 1.0) < 0.02 && fabs(vu - 16.0 / 12) < 0.02, "uniform mean %g var %g", mu, vu);
  CHECKF(fabs(mz - 2.0) < 0.005 && fabs(vz - 0.25) < 0.005, "normal mean %g var %g", mz, vz);
}

static void test_randint(void) {
  tdm_rng_ctr rng = {5, 11};
  const size_t n = 70000;
  int32_t *x = tbuf(n * sizeof(int32_t)), bound = 7;
  CHECK_OK(tdm_fill_randint(cpu, x, n, &bound, &rng, 2));
  int hist[7] = {0};
  for (size_t i = 0; i < n; i++) {
    CHECKF(x[i] >= 0 && x[i] < 7, "x[%zu] = %d", i, x[i]);
    hist[x[i]]++;
    int32_t e = (int32_t)floorf(conv_draw(&rng, 2, i, 0) * 7.0f);
    CHECK(x[i] == (e > 6 ? 6 : e));
  }
  for (int k = 0; k < 7; k++) CHECKF(hist[k] > 9500 && hist[k] < 10500, "bin %d: %d", k, hist[k]);
  bound = 1;  // bound is read when the op runs
  CHECK_OK(tdm_fill_randint(cpu, x, n, &bound, &rng, 2));
  for (size_t i = 0; i < n; i++) CHECK(x[i] == 0);
  bound = 0;
  CHECK(tdm_fill_randint(cpu, x, n, &bound, &rng, 2) == TDM_ERR_ARG);
}

static void test_dropout(void) {
  tdm_rng_ctr rng = {77, 1};
  const size_t n = 100000;
  const float p = 0.3f, keep = 1.0f / (1.0f - p);
  float *x = trand(n, 0.5f, 2, 111), *y = tf(n), *mask = tf(n);
  CHECK_OK(tdm_dropout_forward(cpu, x, y, mask, n, p, &rng, 9));
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK(mask[i] == 0.0f || mask[i] == keep);
    CHECK(y[i] == x[i] * mask[i]);
    CHECK((mask[i] != 0.0f) == (conv_draw(&rng, 9, i, 0) > p));
    kept += mask[i] != 0.0f;
  }
  CHECKF(fabs((double)kept / n - 0.7) < 0.01, "kept fraction %g", (double)kept / n);
  float *m2 = tf(n);
  CHECK_OK(tdm_dropout_forward(cpu, x, x, m2, n, p, &rng, 9));  // y may alias x
  CHECK(bitwise_eq(x, y, n * 4) && bitwise_eq(mask, m2, n * 4));
  CHECK_OK(tdm_dropout_forward(cpu, y, y, m2, n, 0.0f, &rng, 9));  // p = 0 keeps everything
  for (size_t i = 0; i < n; i++) CHECK(m2[i] == 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Adam

static void test_adam_step(void) {
  const size_t n = 1000;
  float *p = trand(n, -1, 1, 121), *g = trand(n, -1, 1, 122), *m = trand(n, -0.1f, 0.1f, 123);
  float *v = trand(n, 0.001f, 0.01f, 124);
  tdm_adam_cfg cfg = tdm_adam_defaults();
  CHECK(cfg.lr == 3e-4f && cfg.beta1 == 0.9f && cfg.beta2 == 0.999f && cfg.eps == 1e-8f);
  CHECK(cfg.weight_decay == 0.0f && cfg.max_grad_norm == 0.0f);
  cfg.lr = 1e-2f;
  cfg.weight_decay = 0.1f;
  cfg.max_grad_norm = 0.5f;  // ||g|| is about 18: clipping is active
  CHECK(tdm_adam_scratch_floats(cpu, n) == 0);
  int32_t step = 4;
  for (int rep = 0; rep < 2; rep++) {
    double *rp = to_d(p, n), *rm = to_d(m, n), *rv = to_d(v, n), norm = 0;
    float *g0 = tf(n);
    memcpy(g0, g, n * 4);
    for (size_t i = 0; i < n; i++) norm += (double)g[i] * g[i];
    norm = sqrt(norm);
    double clip = rep == 0 ? fmin(1.0, cfg.max_grad_norm / norm) : 1.0;
    int t = step + 1;
    double b1 = cfg.beta1, b2 = cfg.beta2;
    for (size_t i = 0; i < n; i++) {
      double gi = g[i] * clip;
      rm[i] = b1 * rm[i] + (1 - b1) * gi;
      rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
      double mh = rm[i] / (1 - pow(b1, t)), vh = rv[i] / (1 - pow(b2, t));
      double lr = cfg.lr, wd = cfg.weight_decay;
      rp[i] -= lr * mh / (sqrt(vh) + cfg.eps) + lr * wd * rp[i];
    }
    double *dp = td(n);  // compare the update, not p itself
    float *p0 = tf(n), *dpl = tf(n);
    memcpy(p0, p, n * 4);
    for (size_t i = 0; i < n; i++) dp[i] = rp[i] - p0[i];
    if (rep == 1) cfg.max_grad_norm = 0.0f;  // second step: no clipping
    CHECK_OK(tdm_adam_step(cpu, p, g, m, v, n, &cfg, &step, NULL));
    CHECK(step == t);
    CHECK(bitwise_eq(g, g0, n * 4));  // g is not modified
    for (size_t i = 0; i < n; i++) dpl[i] = p[i] - p0[i];
    double ep = relerr_fd(dpl, dp, n), em = relerr_fd(m, rm, n), ev = relerr_fd(v, rv, n);
    CHECKF(ep < 1e-4 && em < 1e-6 && ev < 1e-6, "step %d: dp %g m %g v %g", t, ep, em, ev);
  }
}

// ---------------------------------------------------------------------------------------------
// argument checks

#define CHECK_ARG(expr, name)                                                            \
  do {                                                                                   \
    tdm_clearerr();                                                                      \
    tdm_status s_ = (expr);                                                              \
    CHECKF(s_ == TDM_ERR_ARG, "%s returned %s", #expr, tdm_status_name(s_));             \
    CHECKF(strstr(tdm_errmsg(), name) != NULL, "%s: message \"%s\" lacks \"%s\"", #expr, \
           tdm_errmsg(), name);                                                          \
  } while (0)

static void test_argument_checks(void) {
  float a[64] = {1}, b[64] = {1}, c[64] = {1};
  tdm_rng_ctr rng = {1, 0};
  int32_t step = 0, idx[2] = {0, 1};
  tdm_adam_cfg cfg = tdm_adam_defaults();
  CHECK_ARG(tdm_gemm(NULL, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "dev");
  CHECK_ARG(tdm_gemm(cpu, 0, 0, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2), "A is NULL");
  CHECK_ARG(tdm_gemm(cpu, 0, 0, 0, 2, 2, 1, a, 2, b, 2, 0, c, 2), "M = 0");
  CHECK_ARG(tdm_gemm(cpu, 0, 0, 2, 3, 4, 1, a, 3, b, 3, 0, c, 3), "lda = 3");
  CHECK_ARG(tdm_gemm(cpu, 0, TDM_TRANS, 2, 3, 4, 1, a, 4, b, 3, 0, c, 3), "ldb = 3");
  CHECK_ARG(tdm_gemm(cpu, 0, 0, 2, 3, 4, 1, a, 4, b, 3, 0, c, 2), "ldc = 2");
  CHECK_ARG(tdm_gemm(cpu, 2, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), "ta = 2");
  CHECK_ARG(tdm_gemm_batched(cpu, 0, 0, 2, 2, 2, 1, a, 2, 0, b, 2, 4, 0, c, 2, 0, 3), "sC");
  CHECK_ARG(tdm_gemm_batched(cpu, 0, 0, 2, 2, 2, 1, a, 2, 0, b, 2, 4, 0, c, 2, 4, 0), "batch");
  CHECK_ARG(tdm_bias_add(cpu, a, NULL, 1, 2, 2), "tdm_bias_add: b is NULL");
  CHECK_ARG(tdm_bias_grad(cpu, a, b, 1, -2, 2, 0), "tdm_bias_grad: M = -2");
  CHECK_ARG(tdm_act_forward(cpu, (tdm_act)9, a, b, 4), "activation 9");
  CHECK_ARG(tdm_act_backward(cpu, TDM_ACT_TANH, a, b, NULL, c, 4), "dy is NULL");
  CHECK_ARG(tdm_layernorm_forward(cpu, a, b, c, a, NULL, NULL, 1, 2, 4, 0), "eps");
  CHECK_ARG(tdm_layernorm_backward(cpu, a, b, c, c, c, a, b, NULL, 1, 2, 4, 0), "dbeta");
  CHECK_ARG(tdm_simnorm_forward(cpu, a, b, 2, 12, 5), "V = 5 does not divide D = 12");
  CHECK_ARG(tdm_simnorm_backward(cpu, a, b, c, 2, 12, 0), "V = 0");
  CHECK_ARG(tdm_softmax(cpu, a, b, 2, 0), "tdm_softmax: D = 0");
  CHECK_ARG(tdm_log_softmax_backward(cpu, a, b, NULL, 2, 4), "dx is NULL");
  CHECK_ARG(tdm_twohot_encode(cpu, a, b, 2, 1, -1, 1), "nbins = 1");
  CHECK_ARG(tdm_twohot_decode(cpu, a, b, 2, 5, 1, 1), "vmin");
  CHECK_ARG(tdm_reduce_all(cpu, TDM_REDUCE_SUM, a, b, 0), "n = 0");
  CHECK_ARG(tdm_reduce_rows(cpu, (tdm_reduce)5, a, b, 2, 2), "reduction 5");
  CHECK_ARG(tdm_clamp(cpu, 4, 1, -1, a), "lo = 1");
  CHECK_ARG(tdm_gather_rows(cpu, a, NULL, b, 2, 2), "idx is NULL");
  CHECK_ARG(tdm_fill_uniform(cpu, a, 4, 0, 1, NULL, 0), "rng is NULL");
  CHECK_ARG(tdm_fill_normal(cpu, a, 4, 0, 1, &rng, 256), "stream = 256");
  CHECK_ARG(tdm_fill_randint(cpu, idx, 2, NULL, &rng, 0), "bound is NULL");
  CHECK_ARG(tdm_dropout_forward(cpu, a, b, c, 4, 1.0f, &rng, 0), "p = 1");
  CHECK_ARG(tdm_adam_step(cpu, a, b, c, c, 4, NULL, &step, NULL), "cfg is NULL");
  cfg.beta2 = 1.0f;
  CHECK_ARG(tdm_adam_step(cpu, a, b, c, c, 4, &cfg, &step, NULL), "beta2");
  CHECK(step == 0);
  CHECK_ARG(tdm_polyak(cpu, a, b, 4, 1.5f), "tau = 1.5");
  // size_t counts of 0 are a no-op, not an error
  CHECK_OK(tdm_fill(cpu, NULL, 0, 1.0f));
  CHECK_OK(tdm_softmax(cpu, NULL, NULL, 0, 4));
}

int main(void) {
  if (tdm_dev_open("cpu", 2, &cpu) != TDM_OK || tdm_dev_open("cpu", 1, &cpu1) != TDM_OK) {
    printf("FAIL ops_test: cannot open the CPU device: %s\n", tdm_errmsg());
    return 1;
  }
  RUN(test_gemm_transposes);
  RUN(test_gemm_batched_shared);
  RUN(test_gemm_grad_fd);
  RUN(test_bias_add_grad);
  RUN(test_act_forward);
  RUN(test_act_backward_fd);
  RUN(test_act_names);
  RUN(test_layernorm);
  RUN(test_layernorm_backward_fd);
  RUN(test_simnorm);
  RUN(test_softmax_log_softmax);
  RUN(test_symlog_symexp);
  RUN(test_twohot_encode);
  RUN(test_twohot_decode);
  RUN(test_reduce_rows);
  RUN(test_reduce_all_deterministic);
  RUN(test_threads_bitwise);
  RUN(test_elementwise);
  RUN(test_gather_rows);
  RUN(test_random_convention);
  RUN(test_random_determinism);
  RUN(test_random_moments);
  RUN(test_randint);
  RUN(test_dropout);
  RUN(test_adam_step);
  RUN(test_argument_checks);
  tdm_dev_close(cpu1);
  tdm_dev_close(cpu);
  return tdm_test_end();
}
