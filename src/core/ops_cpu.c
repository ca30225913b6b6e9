// CPU implementation of every op in tandem/ops.h (the twin of kernels/*.cu). Arguments were
// checked by src/core/ops.c. Large elementwise and row ops run on dev->pool; every output element
// is written by exactly one worker and every sum runs in a fixed order, so results do not depend
// on the number of threads. GEMMs call OpenBLAS (cblas_sgemm, row-major) from the calling thread
// (batched products one after the other), so the two thread pools never nest; blas_threads below
// sets how many threads OpenBLAS uses for each product.
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ops_internal.h"

#define ELEM_GRAIN 16384  // elements per pool chunk at least (smaller jobs run on the caller)

// Rows per pool chunk so that a chunk holds about ELEM_GRAIN elements.
static int64_t row_grain(int64_t D) {
  return D >= ELEM_GRAIN ? 1 : ELEM_GRAIN / (D > 0 ? D : 1);
}

static void par(tdm_dev *dev, size_t n, int64_t grain, tdm_range_fn fn, void *ctx) {
  tdm_pool_for(dev->pool, (int64_t)n, grain, fn, ctx);
}

// ---------------------------------------------------------------------------------------------
// matrix products

// OpenBLAS threads. OpenBLAS keeps its own thread pool (one thread per core by default) beside
// tandem's; on the small products of training its threads cost more than they give and contend
// with the pool's (both spin briefly after each job). Measured on 2 cores with SkylakeX kernels:
// 3000 steps of the quickstart (64 wide) took 4.6 s with one OpenBLAS thread and 5.5 s with two
// (medians of 4; 30% less CPU time); a 256-wide critic step 1.9 ms with one and 1.7 ms with two
// (but 2.0 vs 2.7 ms with the machine loaded); a 7 x 200-wide ensemble step was no faster with
// two; a 1024^3 product took half the time with two. So a product gets one OpenBLAS thread per
// grain of multiply-adds (M N K; 256 x 256 x 256 is two grains), at least 1 and at most the
// device's thread count (its pool: the config's `threads`) and the machine's cores. OpenBLAS's
// Prescott kernels (its SSE3 fallback for a CPU it does not recognise, e.g. behind a VM's generic
// CPUID) are 4-5x slower per core; with them even the 64-wide products gain from a second thread
// (quickstart 7.2 s with two, 7.9 s with one), so their grain is 16 times smaller. An explicit
// OPENBLAS_NUM_THREADS (or GOTO_NUM_THREADS) in the environment is left alone. The count is
// process-wide and set only when it changes; CPU GEMMs of one process are expected to come from
// one thread at a time (OpenBLAS's setting is not per thread).
#define BLAS_GRAIN (1LL << 23)  // ~0.1 ms of one core's work (SkylakeX kernels)

static void blas_threads(tdm_dev *dev, int M, int N, int K) {
#ifdef OPENBLAS_VERSION
  static atomic_int user_set = -1;  // -1: not looked at yet; 1: the environment sets it
  static atomic_int current = 0;    // the count last given to OpenBLAS (0: none yet)
  static atomic_int grain_shift = 0;
  int u = atomic_load_explicit(&user_set, memory_order_relaxed);
  if (u < 0) {
    const char *e1 = getenv("OPENBLAS_NUM_THREADS"), *e2 = getenv("GOTO_NUM_THREADS");
    u = (e1 && e1[0]) || (e2 && e2[0]);
    const char *core = openblas_get_corename();
    atomic_store_explicit(&grain_shift, core && !strcasecmp(core, "prescott") ? 4 : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&user_set, u, memory_order_relaxed);
  }
  if (u) return;
  long long grain = BLAS_GRAIN >> atomic_load_explicit(&grain_shift, memory_order_relaxed);
  long long want = (long long)M * N * K / grain;
  int n = 1;
  if (want > 1) {
    static atomic_int cores = 0;  // tdm_cpu_count reads /sys: once
    int c = atomic_load_explicit(&cores, memory_order_relaxed);
    if (c < 1) {
      c = tdm_cpu_count();
      atomic_store_explicit(&cores, c, memory_order_relaxed);
    }
    int cap = dev && dev->pool ? tdm_pool_size(dev->pool) : 1;
    if (cap > c) cap = c;
    n = want > cap ? cap : (int)want;
    if (n < 1) n = 1;
  }
  if (atomic_exchange_explicit(&current, n, memory_order_relaxed) != n) openblas_set_num_threads(n);
#else
  (void)dev, (void)M, (void)N, (void)K;  // another CBLAS: its own threading
#endif
}

const char *tdm_blas_kernels(void) {
#ifdef OPENBLAS_VERSION
  const char *c = openblas_get_corename();
  return c ? c : "";
#else
  return "";
#endif
}

void tdm_blas_pick_kernels(void) {
#if defined(OPENBLAS_VERSION) && (defined(__x86_64__) || defined(__i386__))
  if (getenv("OPENBLAS_CORETYPE")) return;
  const char *core = openblas_get_corename();
  if (!core || strcasecmp(core, "prescott")) return;
  __builtin_cpu_init();
  const char *want = NULL;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    want = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    want = "Haswell";
  if (!want) return;
  // the arguments as the kernel has them: NUL-separated in /proc/self/cmdline
  FILE *f = fopen("/proc/self/cmdline", "rb");
  if (!f) return;
  size_t n = 0;
  char *buf = tdm_read_all(f, SIZE_MAX, &n);
  fclose(f);
  if (!buf || n == 0) {
    free(buf);
    return;
  }
  int argc = 0;
  for (size_t i = 0; i < n; i++) argc += buf[i] == 0;
  if (buf[n - 1] != 0) argc++;
  char **argv = calloc((size_t)argc + 1, sizeof *argv);
  if (!argv) {
    free(buf);
    return;
  }
  for (size_t i = 0, k = 0; i < n && (int)k < argc; k++) {
    argv[k] = buf + i;
    i += strlen(buf + i) + 1;
  }
  if (setenv("OPENBLAS_CORETYPE", want, 1) == 0 && setenv("TDM_BLAS_PICKED", "Prescott", 1) == 0) {
    fflush(NULL);
    execv("/proc/self/exe", argv);
  }
  unsetenv("OPENBLAS_CORETYPE");  // the exec failed: go on with the fallback kernels
  unsetenv("TDM_BLAS_PICKED");
  free(argv);
  free(buf);
#endif
}

tdm_status tdm_cpu_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc) {
  return tdm_cpu_gemm_batched(dev, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0,
                              1);
}

tdm_status tdm_cpu_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                                float alpha, const float *A, int lda, long long sA, const float *B,
                                int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                                int batch) {
  blas_threads(dev, M, N, K);
  enum CBLAS_TRANSPOSE cta = ta == TDM_TRANS ? CblasTrans : CblasNoTrans;
  enum CBLAS_TRANSPOSE ctb = tb == TDM_TRANS ? CblasTrans : CblasNoTrans;
  for (int i = 0; i < batch; i++) {
    float *Ci = C + (long long)i * sC;
    if (beta == 0.0f) {
      // beta = 0 ignores C, even when it holds NaN or Inf
      for (int r = 0; r < M; r++) memset(Ci + (size_t)r * ldc, 0, sizeof(float) * (size_t)N);
    }
    cblas_sgemm(CblasRowMajor, cta, ctb, M, N, K, alpha, A + (long long)i * sA, lda,
                B + (long long)i * sB, ldb, beta, Ci, ldc);
  }
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// bias

typedef struct {
  float *Y, *db;
  const float *b, *dY;
  int E, M, N;
  float beta;
} bias_job;

static void bias_add_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const bias_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {  // r indexes the E * M rows
    const float *b = j->b + (r / j->M) * j->N;
    float *y = j->Y + r * j->N;
    for (int c = 0; c < j->N; c++) y[c] += b[c];
  }
}

tdm_status tdm_cpu_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M, int N) {
  bias_job j = {.Y = Y, .b = b, .E = E, .M = M, .N = N};
  par(dev, (size_t)E * M, row_grain(N), bias_add_fn, &j);
  return TDM_OK;
}

// Column sums of dY (each in double, rows in order) for outputs [c0, c1) of the E * N: the columns
// of one member in blocks of BG_COLS, the rows walked along memory (the same sums as one column at
// a time down its stride).
enum { BG_COLS = 64 };
static void bias_grad_fn(void *ctx, int64_t c0, int64_t c1, int w) {
  (void)w;
  const bias_job *j = ctx;
  const int64_t N = j->N;
  for (int64_t c = c0; c < c1;) {
    const int64_t e = c / N, col = c % N;
    int64_t nb = N - col < c1 - c ? N - col : c1 - c;  // this member's columns left in the range
    if (nb > BG_COLS) nb = BG_COLS;
    double s[BG_COLS] = {0};
    const float *d = j->dY + e * j->M * N + col;
    for (int r = 0; r < j->M; r++) {
      const float *row = d + (int64_t)r * N;
      for (int64_t k = 0; k < nb; k++) s[k] += row[k];
    }
    for (int64_t k = 0; k < nb; k++)
      j->db[c + k] = (float)(j->beta == 0.0f ? s[k] : j->beta * (double)j->db[c + k] + s[k]);
    c += nb;
  }
}

tdm_status tdm_cpu_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M, int N,
                             float beta) {
  bias_job j = {.db = db, .dY = dY, .E = E, .M = M, .N = N, .beta = beta};
  par(dev, (size_t)E * N, row_grain(M), bias_grad_fn, &j);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// activations

static inline float sigmoidf_(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

// log(1 + exp(x)) without overflow
static inline float softplusf_(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

typedef struct {
  tdm_act act;
  const float *x, *y, *dy;
  float *out;
} act_job;

// An elementwise loop whose output may be one of its inputs (in place) but never overlaps one
// otherwise: GCC may vectorize it without checking for overlap (which in-place calls would fail).
#if defined(__GNUC__) && !defined(__clang__)
#define TDM_ELEMENTWISE _Pragma("GCC ivdep")
#else
#define TDM_ELEMENTWISE
#endif

static void act_fwd_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const act_job *j = ctx;
  const float *x = j->x;
  float *y = j->out;
  switch (j->act) {
    case TDM_ACT_NONE:
      if (y != x) memcpy(y + i0, x + i0, sizeof(float) * (size_t)(i1 - i0));
      break;
    case TDM_ACT_RELU:
      TDM_ELEMENTWISE
      for (int64_t i = i0; i < i1; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case TDM_ACT_TANH:
      for (int64_t i = i0; i < i1; i++) y[i] = tanhf(x[i]);
      break;
    case TDM_ACT_SILU:
      for (int64_t i = i0; i < i1; i++) y[i] = x[i] * sigmoidf_(x[i]);
      break;
    case TDM_ACT_MISH:
      for (int64_t i = i0; i < i1; i++) y[i] = x[i] * tanhf(softplusf_(x[i]));
      break;
    case TDM_ACT_ELU:
      for (int64_t i = i0; i < i1; i++) y[i] = x[i] > 0.0f ? x[i] : expm1f(x[i]);
      break;
  }
}

static void act_bwd_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const act_job *j = ctx;
  const float *x = j->x, *y = j->y, *dy = j->dy;
  float *dx = j->out;  // may alias dy: each element reads dy[i] before writing dx[i]
  switch (j->act) {
    case TDM_ACT_NONE:
      if (dx != dy) memcpy(dx + i0, dy + i0, sizeof(float) * (size_t)(i1 - i0));
      break;
    case TDM_ACT_RELU:
      // both loaded, so that the choice is a select rather than a branch on each sign
      TDM_ELEMENTWISE
      for (int64_t i = i0; i < i1; i++) {
        const float d = dy[i];
        dx[i] = x[i] > 0.0f ? d : 0.0f;
      }
      break;
    case TDM_ACT_TANH:
      for (int64_t i = i0; i < i1; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
      break;
    case TDM_ACT_SILU:
      for (int64_t i = i0; i < i1; i++) {
        float s = sigmoidf_(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      }
      break;
    case TDM_ACT_MISH:
      // d/dx x tanh(sp(x)) = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)
      for (int64_t i = i0; i < i1; i++) {
        float t = tanhf(softplusf_(x[i]));
        dx[i] = dy[i] * (t + x[i] * (1.0f - t * t) * sigmoidf_(x[i]));
      }
      break;
    case TDM_ACT_ELU:
      for (int64_t i = i0; i < i1; i++) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * expf(x[i]);
      break;
  }
}

tdm_status tdm_cpu_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y, size_t n) {
  act_job j = {.act = act, .x = x, .out = y};
  par(dev, n, ELEM_GRAIN, act_fwd_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_act_backward(tdm_dev *dev, tdm_act act, const float *x, const float *y,
                                const float *dy, float *dx, size_t n) {
  act_job j = {.act = act, .x = x, .y = y, .dy = dy, .out = dx};
  par(dev, n, ELEM_GRAIN, act_bwd_fn, &j);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// fused bias + activation: the unfused pair, so the CPU results equal them bit for bit

tdm_status tdm_cpu_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b, float *Y,
                                    int E, int M, int N) {
  TDM_TRY(tdm_cpu_bias_add(dev, Z, b, E, M, N));
  return tdm_cpu_act_forward(dev, act, Z, Y, (size_t)E * M * N);
}

tdm_status tdm_cpu_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                     const float *dY, float *dZ, float *db, int E, int M, int N,
                                     float beta) {
  TDM_TRY(tdm_cpu_act_backward(dev, act, X, Y, dY, dZ, (size_t)E * M * N));
  if (!db) return TDM_OK;
  return tdm_cpu_bias_grad(dev, db, dZ, E, M, N, beta);
}

tdm_status tdm_cpu_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K,
                                      const float *X, int ldx, long long sX, const float *W,
                                      int ldw, long long sW, const float *b, float *Y, int batch) {
  // Y = X W^T per member, then Y = act(Y + b) in place
  TDM_TRY(tdm_cpu_gemm_batched(dev, TDM_NOTRANS, TDM_TRANS, M, N, K, 1.0f, X, ldx, sX, W, ldw, sW,
                               0.0f, Y, N, (long long)M * N, batch));
  return tdm_cpu_bias_act_forward(dev, act, Y, b, Y, batch, M, N);
}

tdm_status tdm_cpu_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X,
                                           const float *Y, const float *dY, float *dZ, int E, int M,
                                           int N) {
  // one row of N at a time, from member e's row m to row m's slot e (the math of act_backward)
  for (int e = 0; e < E; e++)
    for (int m = 0; m < M; m++) {
      const size_t src = ((size_t)e * M + m) * (size_t)N, dst = ((size_t)m * E + e) * (size_t)N;
      act_job j = {.act = act, .x = X + src, .y = Y + src, .dy = dY + src, .out = dZ + dst};
      act_bwd_fn(&j, 0, N, 0);
    }
  (void)dev;
  return TDM_OK;
}

tdm_status tdm_cpu_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                      const float *dY, float *dZ, float *db, int E, int M, int N,
                                      float beta, const float *dY2, float *db2, int N2) {
  TDM_TRY(tdm_cpu_act_bias_backward(dev, act, X, Y, dY, dZ, db, E, M, N, beta));
  return tdm_cpu_bias_grad(dev, db2, dY2, E, M, N2, beta);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

typedef struct {
  const float *x, *gamma, *beta, *mean, *rstd, *dy;
  float *y, *mean_out, *rstd_out, *dx, *dgamma, *dbeta;
  int E, R, D;
  float eps, beta_acc;
} ln_job;

static void ln_fwd_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const ln_job *j = ctx;
  const int D = j->D;
  for (int64_t r = r0; r < r1; r++) {  // r indexes the E * R rows
    const float *x = j->x + r * D;
    const float *g = j->gamma + (r / j->R) * D, *b = j->beta + (r / j->R) * D;
    float *y = j->y + r * D;
    double s = 0;
    for (int d = 0; d < D; d++) s += x[d];
    double mu = s / D, v = 0;
    for (int d = 0; d < D; d++) v += (x[d] - mu) * (x[d] - mu);
    float m = (float)mu, rs = (float)(1.0 / sqrt(v / D + (double)j->eps));
    for (int d = 0; d < D; d++) y[d] = (x[d] - m) * rs * g[d] + b[d];
    if (j->mean_out) j->mean_out[r] = m;
    if (j->rstd_out) j->rstd_out[r] = rs;
  }
}

tdm_status tdm_cpu_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                     const float *beta, float *y, float *mean, float *rstd, int E,
                                     int R, int D, float eps) {
  ln_job j = {.x = x,
              .gamma = gamma,
              .beta = beta,
              .y = y,
              .mean_out = mean,
              .rstd_out = rstd,
              .E = E,
              .R = R,
              .D = D,
              .eps = eps};
  par(dev, (size_t)E * R, row_grain(D), ln_fwd_fn, &j);
  return TDM_OK;
}

// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma
static void ln_bwd_dx_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const ln_job *j = ctx;
  const int D = j->D;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = j->x + r * D, *dy = j->dy + r * D, *g = j->gamma + (r / j->R) * D;
    float *dx = j->dx + r * D;
    float m = j->mean[r], rs = j->rstd[r];
    double s1 = 0, s2 = 0;
    for (int d = 0; d < D; d++) {
      double dxh = (double)dy[d] * g[d];
      s1 += dxh;
      s2 += dxh * ((x[d] - m) * rs);
    }
    float a = (float)(s1 / D), c = (float)(s2 / D);
    for (int d = 0; d < D; d++) {
      float xh = (x[d] - m) * rs;
      dx[d] = rs * (dy[d] * g[d] - a - xh * c);  // =
    }
  }
}

// dgamma[e, d] = sum_r dy * xhat, dbeta[e, d] = sum_r dy, one output column per item
static void ln_bwd_param_fn(void *ctx, int64_t c0, int64_t c1, int w) {
  (void)w;
  const ln_job *j = ctx;
  const int D = j->D;
  for (int64_t c = c0; c < c1; c++) {  // c indexes the E * D outputs
    int64_t e = c / D, d = c % D;
    double sg = 0, sb = 0;
    for (int r = 0; r < j->R; r++) {
      int64_t row = e * j->R + r;
      float dy = j->dy[row * D + d];
      float xh = (j->x[row * D + d] - j->mean[row]) * j->rstd[row];
      sg += (double)dy * xh;
      sb += dy;
    }
    if (j->beta_acc != 0.0f) {
      sg += (double)j->beta_acc * j->dgamma[c];
      sb += (double)j->beta_acc * j->dbeta[c];
    }
    j->dgamma[c] = (float)sg;  // = beta_acc * old + new
    j->dbeta[c] = (float)sb;
  }
}

tdm_status tdm_cpu_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                      const float *mean, const float *rstd, const float *dy,
                                      float *dx, float *dgamma, float *dbeta, int E, int R, int D,
                                      float beta_acc) {
  ln_job j = {.x = x,
              .gamma = gamma,
              .mean = mean,
              .rstd = rstd,
              .dy = dy,
              .dx = dx,
              .dgamma = dgamma,
              .dbeta = dbeta,
              .E = E,
              .R = R,
              .D = D,
              .beta_acc = beta_acc};
  par(dev, (size_t)E * R, row_grain(D), ln_bwd_dx_fn, &j);
  par(dev, (size_t)E * D, row_grain(R), ln_bwd_param_fn, &j);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// softmax family: a row of D is G groups of V (SimNorm), or one group of D (softmax)

typedef struct {
  const float *x, *y, *dy;
  float *out;
  int D, V;
  int log;  // log-softmax
} sm_job;

// softmax (or log-softmax) of one group of V values
static void softmax_group(const float *x, float *y, int V, int log) {
  float mx = x[0];
  for (int k = 1; k < V; k++) mx = fmaxf(mx, x[k]);
  double s = 0;
  for (int k = 0; k < V; k++) s += expf(x[k] - mx);
  if (log) {
    float ls = (float)log1p(s - 1.0);  // log(s), s >= 1
    for (int k = 0; k < V; k++) y[k] = x[k] - mx - ls;
  } else {
    float inv = (float)(1.0 / s);
    for (int k = 0; k < V; k++) y[k] = expf(x[k] - mx) * inv;
  }
}

static void sm_fwd_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const sm_job *j = ctx;
  for (int64_t r = r0; r < r1; r++)
    for (int k = 0; k < j->D; k += j->V)
      softmax_group(j->x + r * j->D + k, j->out + r * j->D + k, j->V, j->log);
}

// SimNorm / softmax backward: dx = y * (dy - sum(dy * y)); log-softmax: dx = dy - exp(y) sum(dy)
static void sm_bwd_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const sm_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    for (int k = 0; k < j->D; k += j->V) {
      const float *y = j->y + r * j->D + k, *dy = j->dy + r * j->D + k;
      float *dx = j->out + r * j->D + k;
      double s = 0;
      if (j->log) {
        for (int v = 0; v < j->V; v++) s += dy[v];
        for (int v = 0; v < j->V; v++) dx[v] = dy[v] - expf(y[v]) * (float)s;
      } else {
        for (int v = 0; v < j->V; v++) s += (double)dy[v] * y[v];
        for (int v = 0; v < j->V; v++) dx[v] = y[v] * (dy[v] - (float)s);
      }
    }
  }
}

tdm_status tdm_cpu_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows, int D,
                                   int V) {
  sm_job j = {.x = x, .out = y, .D = D, .V = V};
  par(dev, rows, row_grain(D), sm_fwd_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_simnorm_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                    size_t rows, int D, int V) {
  sm_job j = {.y = y, .dy = dy, .out = dx, .D = D, .V = V};
  par(dev, rows, row_grain(D), sm_bwd_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D) {
  sm_job j = {.x = x, .out = y, .D = D, .V = D};
  par(dev, rows, row_grain(D), sm_fwd_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D) {
  sm_job j = {.x = x, .out = y, .D = D, .V = D, .log = 1};
  par(dev, rows, row_grain(D), sm_fwd_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                        size_t rows, int D) {
  sm_job j = {.y = y, .dy = dy, .out = dx, .D = D, .V = D, .log = 1};
  par(dev, rows, row_grain(D), sm_bwd_fn, &j);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// symlog / symexp / two-hot

static inline float symlogf_(float x) {
  return copysignf(log1pf(fabsf(x)), x);
}
static inline float symexpf_(float x) {
  return copysignf(expm1f(fabsf(x)), x);
}

typedef struct {
  const float *x;
  float *out;
  int nbins, inv;  // inv: symexp
  float vmin, vmax;
} th_job;

static void symlog_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const th_job *j = ctx;
  for (int64_t i = i0; i < i1; i++) j->out[i] = j->inv ? symexpf_(j->x[i]) : symlogf_(j->x[i]);
}

tdm_status tdm_cpu_symlog(tdm_dev *dev, const float *x, float *y, size_t n) {
  th_job j = {.x = x, .out = y};
  par(dev, n, ELEM_GRAIN, symlog_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_symexp(tdm_dev *dev, const float *x, float *y, size_t n) {
  th_job j = {.x = x, .out = y, .inv = 1};
  par(dev, n, ELEM_GRAIN, symlog_fn, &j);
  return TDM_OK;
}

static void twohot_enc_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const th_job *j = ctx;
  const int nb = j->nbins;
  const float width = (j->vmax - j->vmin) / (float)(nb - 1);
  for (int64_t i = i0; i < i1; i++) {
    float *o = j->out + i * nb;
    memset(o, 0, sizeof(float) * (size_t)nb);
    float s = fminf(fmaxf(symlogf_(j->x[i]), j->vmin), j->vmax);
    float pos = (s - j->vmin) / width;
    int lo = (int)floorf(pos);
    if (lo < 0) lo = 0;
    if (lo >= nb - 1) {
      o[nb - 1] = 1.0f;  // at (or rounded past) vmax
      continue;
    }
    float frac = pos - (float)lo;
    o[lo] = 1.0f - frac;
    o[lo + 1] = frac;
  }
}

static void twohot_dec_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const th_job *j = ctx;
  const int nb = j->nbins;
  const float width = (j->vmax - j->vmin) / (float)(nb - 1);
  for (int64_t i = i0; i < i1; i++) {
    const float *l = j->x + i * nb;
    float mx = l[0];
    for (int k = 1; k < nb; k++) mx = fmaxf(mx, l[k]);
    double s = 0, sv = 0;
    for (int k = 0; k < nb; k++) {
      double e = expf(l[k] - mx);
      s += e;
      sv += e * (j->vmin + (float)k * width);
    }
    j->out[i] = symexpf_((float)(sv / s));
  }
}

tdm_status tdm_cpu_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n, int nbins,
                                 float vmin, float vmax) {
  th_job j = {.x = x, .out = out, .nbins = nbins, .vmin = vmin, .vmax = vmax};
  par(dev, n, row_grain(nbins), twohot_enc_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_twohot_decode(tdm_dev *dev, const float *logits, float *out, size_t n, int nbins,
                                 float vmin, float vmax) {
  th_job j = {.x = logits, .out = out, .nbins = nbins, .vmin = vmin, .vmax = vmax};
  par(dev, n, row_grain(nbins), twohot_dec_fn, &j);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// reductions

typedef struct {
  tdm_reduce op;
  const float *x;
  float *out;
  double *part;
  size_t n, blk;
  int D;
  int sumsq;  // sum of squares (Adam's gradient norm)
} red_job;

static void reduce_rows_fn(void *ctx, int64_t r0, int64_t r1, int w) {
  (void)w;
  const red_job *j = ctx;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = j->x + r * j->D;
    if (j->op == TDM_REDUCE_MAX) {
      float m = x[0];
      for (int d = 1; d < j->D; d++) m = fmaxf(m, x[d]);
      j->out[r] = m;
    } else {
      double s = 0;
      for (int d = 0; d < j->D; d++) s += x[d];
      j->out[r] = (float)(j->op == TDM_REDUCE_MEAN ? s / j->D : s);
    }
  }
}

tdm_status tdm_cpu_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t rows,
                               int D) {
  red_job j = {.op = op, .x = x, .out = out, .D = D};
  par(dev, rows, row_grain(D), reduce_rows_fn, &j);
  return TDM_OK;
}

// The whole-array reduction is split by n alone into at most RED_BLOCKS blocks of at least
// RED_MIN elements; block sums (double, sequential) are then added in block order, so the result
// is the same for any pool size.
#define RED_BLOCKS 64
#define RED_MIN 4096

static void reduce_blocks_fn(void *ctx, int64_t b0, int64_t b1, int w) {
  (void)w;
  const red_job *j = ctx;
  for (int64_t b = b0; b < b1; b++) {
    size_t i0 = (size_t)b * j->blk, i1 = i0 + j->blk < j->n ? i0 + j->blk : j->n;
    const float *x = j->x;
    if (j->op == TDM_REDUCE_MAX) {
      float m = x[i0];
      for (size_t i = i0 + 1; i < i1; i++) m = fmaxf(m, x[i]);
      j->part[b] = m;
    } else {
      double s = 0;
      if (j->sumsq)
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
      else
        for (size_t i = i0; i < i1; i++) s += x[i];
      j->part[b] = s;
    }
  }
}

// Deterministic reduction of x (n > 0) in double; sumsq adds squares.
static double reduce_all_d(tdm_dev *dev, tdm_reduce op, const float *x, size_t n, int sumsq) {
  double part[RED_BLOCKS];
  size_t nblk = (n + RED_MIN - 1) / RED_MIN;
  if (nblk > RED_BLOCKS) nblk = RED_BLOCKS;
  size_t blk = (n + nblk - 1) / nblk;
  nblk = (n + blk - 1) / blk;
  red_job j = {.op = op, .x = x, .part = part, .n = n, .blk = blk, .sumsq = sumsq};
  par(dev, nblk, 1, reduce_blocks_fn, &j);
  double r = part[0];
  for (size_t b = 1; b < nblk; b++) r = op == TDM_REDUCE_MAX ? fmax(r, part[b]) : r + part[b];
  return op == TDM_REDUCE_MEAN ? r / (double)n : r;
}

tdm_status tdm_cpu_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t n) {
  out[0] = (float)reduce_all_d(dev, op, x, n, 0);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// elementwise

typedef enum { EW_FILL, EW_AXPBY, EW_SCALE, EW_CLAMP, EW_MUL, EW_POLYAK } ew_kind;

typedef struct {
  ew_kind kind;
  const float *x, *y;
  float *out;
  float a, b;
} ew_job;

static void ew_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const ew_job *j = ctx;
  float *o = j->out;
  const float a = j->a, b = j->b;
  switch (j->kind) {
    case EW_FILL:
      for (int64_t i = i0; i < i1; i++) o[i] = a;
      break;
    case EW_AXPBY:  // o = y
      if (b == 0.0f)
        for (int64_t i = i0; i < i1; i++) o[i] = a * j->x[i];
      else
        for (int64_t i = i0; i < i1; i++) o[i] = a * j->x[i] + b * o[i];
      break;
    case EW_SCALE:
      for (int64_t i = i0; i < i1; i++) o[i] *= a;
      break;
    case EW_CLAMP:
      for (int64_t i = i0; i < i1; i++) o[i] = fminf(fmaxf(o[i], a), b);
      break;
    case EW_MUL:
      for (int64_t i = i0; i < i1; i++) o[i] = j->x[i] * j->y[i];
      break;
    case EW_POLYAK:  // a = tau, b = 1 - tau
      for (int64_t i = i0; i < i1; i++) o[i] = b * o[i] + a * j->x[i];
      break;
  }
}

static tdm_status ew(tdm_dev *dev, size_t n, ew_kind kind, const float *x, const float *y,
                     float *out, float a, float b) {
  ew_job j = {.kind = kind, .x = x, .y = y, .out = out, .a = a, .b = b};
  par(dev, n, ELEM_GRAIN, ew_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_fill(tdm_dev *dev, float *x, size_t n, float value) {
  return ew(dev, n, EW_FILL, NULL, NULL, x, value, 0.0f);
}

tdm_status tdm_cpu_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b, float *y) {
  return ew(dev, n, EW_AXPBY, x, NULL, y, a, b);
}

tdm_status tdm_cpu_scale(tdm_dev *dev, size_t n, float a, float *x) {
  return ew(dev, n, EW_SCALE, NULL, NULL, x, a, 0.0f);
}

tdm_status tdm_cpu_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x) {
  return ew(dev, n, EW_CLAMP, NULL, NULL, x, lo, hi);
}

tdm_status tdm_cpu_mul(tdm_dev *dev, size_t n, const float *x, const float *y, float *z) {
  return ew(dev, n, EW_MUL, x, y, z, 0.0f, 0.0f);
}

tdm_status tdm_cpu_polyak(tdm_dev *dev, float *target, const float *src, size_t n, float tau) {
  return ew(dev, n, EW_POLYAK, src, NULL, target, tau, 1.0f - tau);
}

tdm_status tdm_cpu_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx, float *dst,
                               size_t nidx, int D) {
  (void)dev;
  for (size_t i = 0; i < nidx; i++) {
    if (idx[i] < 0)
      return TDM_FAIL(TDM_ERR_ARG, "tdm_gather_rows: idx[%zu] = %d is negative", i, (int)idx[i]);
    memcpy(dst + i * (size_t)D, src + (size_t)idx[i] * D, sizeof(float) * (size_t)D);
  }
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// random numbers: element i is lane i % 4 of Philox block g = i / 4 with counter
// (g lo, g hi, sub lo, sub hi) and key (seed lo, seed hi), sub = tdm_rng_sub(calls, stream)

typedef enum { RND_UNIFORM, RND_NORMAL, RND_RANDINT, RND_DROPOUT } rnd_kind;

typedef struct {
  rnd_kind kind;
  size_t n;
  uint64_t seed, sub;
  float a, b;  // uniform: lo, hi - lo; normal: mean, std; dropout: p, 1 / (1 - p)
  int32_t bound;
  const float *x;
  float *out, *mask;
  int32_t *iout;
} rnd_job;

static void rnd_fn(void *ctx, int64_t g0, int64_t g1, int w) {
  (void)w;
  const rnd_job *j = ctx;
  const uint32_t key[2] = {(uint32_t)j->seed, (uint32_t)(j->seed >> 32)};
  for (int64_t g = g0; g < g1; g++) {
    uint32_t ctr[4] = {(uint32_t)g, (uint32_t)((uint64_t)g >> 32), (uint32_t)j->sub,
                       (uint32_t)(j->sub >> 32)};
    uint32_t r[4];
    tdm_philox4x32_10(ctr, key, r);
    size_t i0 = (size_t)g * 4, cnt = j->n - i0 < 4 ? j->n - i0 : 4;
    float v[4];
    if (j->kind == RND_NORMAL) {
      tdm_box_muller(r[0], r[1], &v[0], &v[1]);
      tdm_box_muller(r[2], r[3], &v[2], &v[3]);
    } else {
      for (int k = 0; k < 4; k++) v[k] = tdm_u32_uniform(r[k]);
    }
    for (size_t k = 0; k < cnt; k++) {
      size_t i = i0 + k;
      switch (j->kind) {
        case RND_UNIFORM:
          j->out[i] = j->a + j->b * v[k];
          break;
        case RND_NORMAL:
          j->out[i] = j->a + j->b * v[k];
          break;
        case RND_RANDINT: {
          int32_t q = (int32_t)floorf(v[k] * (float)j->bound);
          j->iout[i] = q < 0 ? 0 : q > j->bound - 1 ? j->bound - 1 : q;
          break;
        }
        case RND_DROPOUT: {
          float m = v[k] > j->a ? j->b : 0.0f;
          j->mask[i] = m;
          j->out[i] = j->x[i] * m;
          break;
        }
      }
    }
  }
}

static tdm_status rnd(tdm_dev *dev, rnd_job *j, size_t n, const tdm_rng_ctr *rng, uint32_t stream) {
  j->n = n;
  j->seed = rng->seed;
  j->sub = tdm_rng_sub(rng->calls, stream);
  par(dev, (n + 3) / 4, ELEM_GRAIN / 4, rnd_fn, j);
  return TDM_OK;
}

tdm_status tdm_cpu_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                                const tdm_rng_ctr *rng, uint32_t stream) {
  rnd_job j = {.kind = RND_UNIFORM, .a = lo, .b = hi - lo, .out = x};
  return rnd(dev, &j, n, rng, stream);
}

tdm_status tdm_cpu_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                               const tdm_rng_ctr *rng, uint32_t stream) {
  rnd_job j = {.kind = RND_NORMAL, .a = mean, .b = std, .out = x};
  return rnd(dev, &j, n, rng, stream);
}

tdm_status tdm_cpu_fill_randint(tdm_dev *dev, int32_t *x, size_t n, const int32_t *bound,
                                const tdm_rng_ctr *rng, uint32_t stream) {
  if (*bound < 1)
    return TDM_FAIL(TDM_ERR_ARG,
                    "tdm_fill_randint: bound = %d; it must be at least 1 (sample "
                    "only once the buffer holds data)",
                    (int)*bound);
  rnd_job j = {.kind = RND_RANDINT, .bound = *bound, .iout = x};
  return rnd(dev, &j, n, rng, stream);
}

tdm_status tdm_cpu_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask, size_t n,
                                   float p, const tdm_rng_ctr *rng, uint32_t stream) {
  rnd_job j = {.kind = RND_DROPOUT, .a = p, .b = 1.0f / (1.0f - p), .x = x, .out = y, .mask = mask};
  return rnd(dev, &j, n, rng, stream);
}

tdm_status tdm_cpu_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n) {
  (void)dev;
  rng->calls += n;
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// Adam

typedef struct {
  float *p, *m, *v;
  const float *g;
  float clip, lr, b1, b2, eps, wd, bc1, bc2;
} adam_job;

static void adam_fn(void *ctx, int64_t i0, int64_t i1, int w) {
  (void)w;
  const adam_job *j = ctx;
  for (int64_t i = i0; i < i1; i++) {
    float g = j->g[i] * j->clip;
    float m = j->b1 * j->m[i] + (1.0f - j->b1) * g;
    float v = j->b2 * j->v[i] + (1.0f - j->b2) * g * g;
    j->m[i] = m;
    j->v[i] = v;
    float mh = m / j->bc1, vh = v / j->bc2;
    j->p[i] -= j->lr * (mh / (sqrtf(vh) + j->eps)) + j->lr * j->wd * j->p[i];
  }
}

tdm_status tdm_cpu_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v, size_t n,
                             const tdm_adam_cfg *cfg, int32_t *step, float *scratch) {
  (void)scratch;  // the CPU keeps the norm on the stack
  float clip = 1.0f;
  if (cfg->max_grad_norm > 0.0f) {
    double norm = sqrt(reduce_all_d(dev, TDM_REDUCE_SUM, g, n, 1));
    if (norm > cfg->max_grad_norm) clip = (float)(cfg->max_grad_norm / norm);
  }
  int32_t t = *step + 1;
  *step = t;
  adam_job j = {.p = p,
                .m = m,
                .v = v,
                .g = g,
                .clip = clip,
                .lr = cfg->lr,
                .b1 = cfg->beta1,
                .b2 = cfg->beta2,
                .eps = cfg->eps,
                .wd = cfg->weight_decay,
                .bc1 = (float)(1.0 - pow(cfg->beta1, t)),
                .bc2 = (float)(1.0 - pow(cfg->beta2, t))};
  par(dev, n, ELEM_GRAIN, adam_fn, &j);
  return TDM_OK;
}

tdm_status tdm_cpu_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups, int ngroups,
                                    const tdm_adam_cfg *cfg, uint32_t *sync) {
  (void)sync;  // the CPU runs the groups one after the other
  for (int k = 0; k < ngroups; k++) {
    const tdm_adam_group *gr = &groups[k];
    TDM_TRY(tdm_cpu_adam_step(dev, gr->p, gr->g, gr->m, gr->v, gr->n, cfg, gr->step, NULL));
    if (gr->ema) TDM_TRY(tdm_cpu_polyak(dev, gr->ema, gr->p, gr->n, gr->ema_tau));
  }
  return TDM_OK;
}
