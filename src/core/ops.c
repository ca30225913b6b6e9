// Public ops: check the arguments, then dispatch to the CPU (ops_cpu.c) or CUDA (kernels/*.cu)
// backend on dev->kind. Backends may assume what is checked here. Counts given as size_t may be 0
// (the op does nothing); int dimensions must be at least 1.
#include <string.h>

#include "ops_internal.h"

#define NEED(cond, ...)                                     \
  do {                                                      \
    if (!(cond)) return TDM_FAIL(TDM_ERR_ARG, __VA_ARGS__); \
  } while (0)
// a non-NULL pointer argument p of op
#define PTR(op, p) NEED((p) != NULL, "tdm_" op ": " #p " is NULL (pass a buffer in device memory)")
// a dimension d >= 1 of op
#define DIM(op, d) \
  NEED((d) >= 1, "tdm_" op ": " #d " = %lld; it must be at least 1", (long long)(d))
#define DEV(op) NEED(dev != NULL, "tdm_" op ": dev is NULL (open one with tdm_dev_open)")

#ifdef TDM_CUDA
#define DISPATCH(op, ...)                                             \
  do {                                                                \
    if (dev->kind == TDM_DEV_CUDA) return tdm_cuda_##op(__VA_ARGS__); \
    return tdm_cpu_##op(__VA_ARGS__);                                 \
  } while (0)
#else
#define DISPATCH(op, ...) return tdm_cpu_##op(__VA_ARGS__)
#endif

// ---------------------------------------------------------------------------------------------
// matrix products

// Check op's GEMM shapes: storage of A is M x K (K x M transposed), B is K x N (N x K), C M x N.
static tdm_status gemm_check(const char *op, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                             const float *A, int lda, const float *B, int ldb, const float *C,
                             int ldc) {
  NEED(ta == TDM_NOTRANS || ta == TDM_TRANS, "%s: ta = %d is not TDM_NOTRANS or TDM_TRANS", op,
       (int)ta);
  NEED(tb == TDM_NOTRANS || tb == TDM_TRANS, "%s: tb = %d is not TDM_NOTRANS or TDM_TRANS", op,
       (int)tb);
  NEED(M >= 1 && N >= 1 && K >= 1, "%s: M = %d, N = %d, K = %d; all must be at least 1", op, M, N,
       K);
  NEED(A && B && C, "%s: %s is NULL (pass a buffer in device memory)", op,
       !A   ? "A"
       : !B ? "B"
            : "C");
  int acols = ta == TDM_TRANS ? M : K, bcols = tb == TDM_TRANS ? K : N;
  NEED(lda >= acols, "%s: lda = %d is less than the %d columns of A as stored (%s)", op, lda, acols,
       ta == TDM_TRANS ? "K x M, transposed" : "M x K");
  NEED(ldb >= bcols, "%s: ldb = %d is less than the %d columns of B as stored (%s)", op, ldb, bcols,
       tb == TDM_TRANS ? "N x K, transposed" : "K x N");
  NEED(ldc >= N, "%s: ldc = %d is less than N = %d", op, ldc, N);
  return TDM_OK;
}

tdm_status tdm_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc) {
  DEV("gemm");
  TDM_TRY(gemm_check("tdm_gemm", ta, tb, M, N, K, A, lda, B, ldb, C, ldc));
  DISPATCH(gemm, dev, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

tdm_status tdm_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                            float alpha, const float *A, int lda, long long sA, const float *B,
                            int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                            int batch) {
  DEV("gemm_batched");
  TDM_TRY(gemm_check("tdm_gemm_batched", ta, tb, M, N, K, A, lda, B, ldb, C, ldc));
  DIM("gemm_batched", batch);
  NEED(sA >= 0 && sB >= 0, "tdm_gemm_batched: strides sA = %lld, sB = %lld must be >= 0", sA, sB);
  NEED(sC >= 1 || batch == 1, "tdm_gemm_batched: sC = %lld; the %d outputs need a stride > 0", sC,
       batch);
  DISPATCH(gemm_batched, dev, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC,
           batch);
}

// ---------------------------------------------------------------------------------------------
// bias and activations

tdm_status tdm_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M, int N) {
  DEV("bias_add");
  PTR("bias_add", Y);
  PTR("bias_add", b);
  DIM("bias_add", E);
  DIM("bias_add", M);
  DIM("bias_add", N);
  DISPATCH(bias_add, dev, Y, b, E, M, N);
}

tdm_status tdm_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M, int N,
                         float beta) {
  DEV("bias_grad");
  PTR("bias_grad", db);
  PTR("bias_grad", dY);
  DIM("bias_grad", E);
  DIM("bias_grad", M);
  DIM("bias_grad", N);
  DISPATCH(bias_grad, dev, db, dY, E, M, N, beta);
}

static const char *const act_names[] = {"none", "relu", "tanh", "silu", "mish", "elu"};
#define NACT ((int)(sizeof act_names / sizeof act_names[0]))

const char *tdm_act_name(tdm_act a) {
  return (int)a >= 0 && (int)a < NACT ? act_names[a] : "unknown";
}

int tdm_act_from_name(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < NACT; i++)
    if (!strcmp(name, act_names[i])) return i;
  return -1;
}

#define ACT_OK(op, act)                                                                  \
  NEED((int)(act) >= 0 && (int)(act) < NACT,                                             \
       "tdm_" op ": activation %d is unknown (use none, relu, tanh, silu, mish or elu)", \
       (int)(act))

tdm_status tdm_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y, size_t n) {
  DEV("act_forward");
  ACT_OK("act_forward", act);
  if (n == 0) return TDM_OK;
  PTR("act_forward", x);
  PTR("act_forward", y);
  DISPATCH(act_forward, dev, act, x, y, n);
}

tdm_status tdm_act_backward(tdm_dev *dev, tdm_act act, const float *x, const float *y,
                            const float *dy, float *dx, size_t n) {
  DEV("act_backward");
  ACT_OK("act_backward", act);
  if (n == 0) return TDM_OK;
  PTR("act_backward", x);
  PTR("act_backward", y);
  PTR("act_backward", dy);
  PTR("act_backward", dx);
  DISPATCH(act_backward, dev, act, x, y, dy, dx, n);
}

tdm_status tdm_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b, float *Y,
                                int E, int M, int N) {
  DEV("bias_act_forward");
  ACT_OK("bias_act_forward", act);
  PTR("bias_act_forward", Z);
  PTR("bias_act_forward", b);
  PTR("bias_act_forward", Y);
  DIM("bias_act_forward", E);
  DIM("bias_act_forward", M);
  DIM("bias_act_forward", N);
  DISPATCH(bias_act_forward, dev, act, Z, b, Y, E, M, N);
}

tdm_status tdm_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                 const float *dY, float *dZ, float *db, int E, int M, int N,
                                 float beta) {
  DEV("act_bias_backward");
  ACT_OK("act_bias_backward", act);
  PTR("act_bias_backward", X);
  PTR("act_bias_backward", Y);
  PTR("act_bias_backward", dY);
  PTR("act_bias_backward", dZ);
  DIM("act_bias_backward", E);
  DIM("act_bias_backward", M);
  DIM("act_bias_backward", N);
  DISPATCH(act_bias_backward, dev, act, X, Y, dY, dZ, db, E, M, N, beta);
}

tdm_status tdm_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                       const float *dY, float *dZ, int E, int M, int N) {
  DEV("act_backward_interleave");
  ACT_OK("act_backward_interleave", act);
  PTR("act_backward_interleave", X);
  PTR("act_backward_interleave", Y);
  PTR("act_backward_interleave", dY);
  PTR("act_backward_interleave", dZ);
  DIM("act_backward_interleave", E);
  DIM("act_backward_interleave", M);
  DIM("act_backward_interleave", N);
  NEED(dZ != dY, "tdm_act_backward_interleave: dZ must not alias dY (the layouts differ)");
  DISPATCH(act_backward_interleave, dev, act, X, Y, dY, dZ, E, M, N);
}

tdm_status tdm_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                  const float *dY, float *dZ, float *db, int E, int M, int N,
                                  float beta, const float *dY2, float *db2, int N2) {
  DEV("act_bias_backward2");
  ACT_OK("act_bias_backward2", act);
  PTR("act_bias_backward2", X);
  PTR("act_bias_backward2", Y);
  PTR("act_bias_backward2", dY);
  PTR("act_bias_backward2", dZ);
  PTR("act_bias_backward2", db);
  PTR("act_bias_backward2", dY2);
  PTR("act_bias_backward2", db2);
  DIM("act_bias_backward2", E);
  DIM("act_bias_backward2", M);
  DIM("act_bias_backward2", N);
  DIM("act_bias_backward2", N2);
  DISPATCH(act_bias_backward2, dev, act, X, Y, dY, dZ, db, E, M, N, beta, dY2, db2, N2);
}

tdm_status tdm_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K, const float *X,
                                  int ldx, long long sX, const float *W, int ldw, long long sW,
                                  const float *b, float *Y, int batch) {
  DEV("linear_act_forward");
  ACT_OK("linear_act_forward", act);
  PTR("linear_act_forward", X);
  PTR("linear_act_forward", W);
  PTR("linear_act_forward", b);
  PTR("linear_act_forward", Y);
  NEED(M >= 1 && N >= 1 && K >= 1 && batch >= 1,
       "tdm_linear_act_forward: M = %d, N = %d, K = %d, batch = %d; all must be at least 1", M, N,
       K, batch);
  NEED(
      ldx >= K && ldw >= K,
      "tdm_linear_act_forward: ldx = %d and ldw = %d must be at least K = %d (row strides of X, W)",
      ldx, ldw, K);
  NEED(sX >= 0 && sW >= 0, "tdm_linear_act_forward: strides sX = %lld, sW = %lld must be >= 0", sX,
       sW);
  DISPATCH(linear_act_forward, dev, act, M, N, K, X, ldx, sX, W, ldw, sW, b, Y, batch);
}

size_t tdm_relu_mask_bytes(tdm_dev *dev, int M, int N) {
#ifdef TDM_CUDA
  if (dev && dev->kind == TDM_DEV_CUDA && M >= 1 && N >= 1) return tdm_cuda_relu_mask_bytes(M, N);
#endif
  (void)dev, (void)M, (void)N;
  return 0;
}

tdm_status tdm_linear_relu_forward_mask(tdm_dev *dev, int M, int N, int K, const float *X, int ldx,
                                        long long sX, const float *W, int ldw, long long sW,
                                        const float *b, float *Y, int batch, void *mask,
                                        bool *have_mask) {
  DEV("linear_relu_forward_mask");
  PTR("linear_relu_forward_mask", have_mask);
  *have_mask = false;
#ifdef TDM_CUDA
  if (dev->kind == TDM_DEV_CUDA) {
    // the checks of tdm_linear_act_forward, then the masked matmul
    NEED(M >= 1 && N >= 1 && K >= 1 && batch >= 1 && ldx >= K && ldw >= K && sX >= 0 && sW >= 0,
         "tdm_linear_relu_forward_mask: M = %d, N = %d, K = %d, batch = %d, ldx = %d, ldw = %d, "
         "sX = %lld, sW = %lld: sizes must be >= 1, row strides >= K, member strides >= 0",
         M, N, K, batch, ldx, ldw, sX, sW);
    PTR("linear_relu_forward_mask", X);
    PTR("linear_relu_forward_mask", W);
    PTR("linear_relu_forward_mask", b);
    PTR("linear_relu_forward_mask", Y);
    PTR("linear_relu_forward_mask", mask);
    NEED(((uintptr_t)mask & 15u) == 0,
         "tdm_linear_relu_forward_mask: mask must be 16-byte aligned");
    return tdm_cuda_linear_relu_forward_mask(dev, M, N, K, X, ldx, sX, W, ldw, sW, b, Y, batch,
                                             mask, have_mask);
  }
#endif
  (void)mask;  // the CPU keeps no mask
  return tdm_linear_act_forward(dev, TDM_ACT_RELU, M, N, K, X, ldx, sX, W, ldw, sW, b, Y, batch);
}

tdm_status tdm_linear_drelu_bgrad(tdm_dev *dev, int M, int N, int K, const float *dY, long long sY,
                                  const float *W, long long sW, const void *mask, float *dX,
                                  int ldx, long long sX, float *db, int batch, bool *ran) {
  DEV("linear_drelu_bgrad");
  PTR("linear_drelu_bgrad", dY);
  PTR("linear_drelu_bgrad", W);
  PTR("linear_drelu_bgrad", dX);
  PTR("linear_drelu_bgrad", db);
  PTR("linear_drelu_bgrad", ran);
  NEED(M >= 1 && N >= 1 && K >= 1 && batch >= 1 && sY >= 0 && sW >= 0,
       "tdm_linear_drelu_bgrad: M = %d, N = %d, K = %d, batch = %d, sY = %lld, sW = %lld: sizes "
       "must be >= 1, strides >= 0",
       M, N, K, batch, sY, sW);
  NEED(ldx >= N && sX >= 0, "tdm_linear_drelu_bgrad: ldx = %d must be >= N = %d, sX = %lld >= 0",
       ldx, N, sX);
  *ran = false;
#ifdef TDM_CUDA
  if (dev->kind == TDM_DEV_CUDA) {
    PTR("linear_drelu_bgrad", mask);
    return tdm_cuda_linear_drelu_bgrad(dev, M, N, K, dY, sY, W, sW, mask, dX, ldx, sX, db, batch,
                                       ran);
  }
#endif
  (void)mask;
  return TDM_OK;  // the CPU keeps no masks: the caller runs the unfused pair
}

// ---------------------------------------------------------------------------------------------
// normalisation

tdm_status tdm_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                 const float *beta, float *y, float *mean, float *rstd, int E,
                                 int R, int D, float eps) {
  DEV("layernorm_forward");
  PTR("layernorm_forward", x);
  PTR("layernorm_forward", gamma);
  PTR("layernorm_forward", beta);
  PTR("layernorm_forward", y);
  DIM("layernorm_forward", E);
  DIM("layernorm_forward", R);
  DIM("layernorm_forward", D);
  NEED(eps > 0.0f, "tdm_layernorm_forward: eps = %g; it must be > 0 (1e-5 is usual)", eps);
  DISPATCH(layernorm_forward, dev, x, gamma, beta, y, mean, rstd, E, R, D, eps);
}

tdm_status tdm_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                  const float *mean, const float *rstd, const float *dy, float *dx,
                                  float *dgamma, float *dbeta, int E, int R, int D,
                                  float beta_acc) {
  DEV("layernorm_backward");
  PTR("layernorm_backward", x);
  PTR("layernorm_backward", gamma);
  PTR("layernorm_backward", mean);
  PTR("layernorm_backward", rstd);
  PTR("layernorm_backward", dy);
  PTR("layernorm_backward", dx);
  PTR("layernorm_backward", dgamma);
  PTR("layernorm_backward", dbeta);
  DIM("layernorm_backward", E);
  DIM("layernorm_backward", R);
  DIM("layernorm_backward", D);
  DISPATCH(layernorm_backward, dev, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, E, R, D, beta_acc);
}

#define SIMNORM_DIMS(op) \
  DIM(op, D);            \
  DIM(op, V);            \
  NEED(D % V == 0, "tdm_" op ": V = %d does not divide D = %d (SimNorm groups of V)", V, D)

tdm_status tdm_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows, int D, int V) {
  DEV("simnorm_forward");
  SIMNORM_DIMS("simnorm_forward");
  if (rows == 0) return TDM_OK;
  PTR("simnorm_forward", x);
  PTR("simnorm_forward", y);
  DISPATCH(simnorm_forward, dev, x, y, rows, D, V);
}

tdm_status tdm_simnorm_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                size_t rows, int D, int V) {
  DEV("simnorm_backward");
  SIMNORM_DIMS("simnorm_backward");
  if (rows == 0) return TDM_OK;
  PTR("simnorm_backward", y);
  PTR("simnorm_backward", dy);
  PTR("simnorm_backward", dx);
  DISPATCH(simnorm_backward, dev, y, dy, dx, rows, D, V);
}

tdm_status tdm_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D) {
  DEV("softmax");
  DIM("softmax", D);
  if (rows == 0) return TDM_OK;
  PTR("softmax", x);
  PTR("softmax", y);
  DISPATCH(softmax, dev, x, y, rows, D);
}

tdm_status tdm_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D) {
  DEV("log_softmax");
  DIM("log_softmax", D);
  if (rows == 0) return TDM_OK;
  PTR("log_softmax", x);
  PTR("log_softmax", y);
  DISPATCH(log_softmax, dev, x, y, rows, D);
}

tdm_status tdm_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                    size_t rows, int D) {
  DEV("log_softmax_backward");
  DIM("log_softmax_backward", D);
  if (rows == 0) return TDM_OK;
  PTR("log_softmax_backward", y);
  PTR("log_softmax_backward", dy);
  PTR("log_softmax_backward", dx);
  DISPATCH(log_softmax_backward, dev, y, dy, dx, rows, D);
}

// ---------------------------------------------------------------------------------------------
// two-hot

tdm_status tdm_symlog(tdm_dev *dev, const float *x, float *y, size_t n) {
  DEV("symlog");
  if (n == 0) return TDM_OK;
  PTR("symlog", x);
  PTR("symlog", y);
  DISPATCH(symlog, dev, x, y, n);
}

tdm_status tdm_symexp(tdm_dev *dev, const float *x, float *y, size_t n) {
  DEV("symexp");
  if (n == 0) return TDM_OK;
  PTR("symexp", x);
  PTR("symexp", y);
  DISPATCH(symexp, dev, x, y, n);
}

#define TWOHOT_BINS(op)                                                     \
  NEED(nbins >= 2, "tdm_" op ": nbins = %d; it must be at least 2", nbins); \
  NEED(vmin < vmax, "tdm_" op ": vmin = %g must be less than vmax = %g", vmin, vmax)

tdm_status tdm_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n, int nbins,
                             float vmin, float vmax) {
  DEV("twohot_encode");
  TWOHOT_BINS("twohot_encode");
  if (n == 0) return TDM_OK;
  PTR("twohot_encode", x);
  PTR("twohot_encode", out);
  DISPATCH(twohot_encode, dev, x, out, n, nbins, vmin, vmax);
}

tdm_status tdm_twohot_decode(tdm_dev *dev, const float *logits, float *out, size_t n, int nbins,
                             float vmin, float vmax) {
  DEV("twohot_decode");
  TWOHOT_BINS("twohot_decode");
  if (n == 0) return TDM_OK;
  PTR("twohot_decode", logits);
  PTR("twohot_decode", out);
  DISPATCH(twohot_decode, dev, logits, out, n, nbins, vmin, vmax);
}

// ---------------------------------------------------------------------------------------------
// reductions

#define REDUCE_OK(op, r)                                                         \
  NEED((r) == TDM_REDUCE_SUM || (r) == TDM_REDUCE_MEAN || (r) == TDM_REDUCE_MAX, \
       "tdm_" op ": reduction %d is unknown (use TDM_REDUCE_SUM, _MEAN or _MAX)", (int)(r))

tdm_status tdm_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t rows,
                           int D) {
  DEV("reduce_rows");
  REDUCE_OK("reduce_rows", op);
  DIM("reduce_rows", D);
  if (rows == 0) return TDM_OK;
  PTR("reduce_rows", x);
  PTR("reduce_rows", out);
  DISPATCH(reduce_rows, dev, op, x, out, rows, D);
}

tdm_status tdm_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t n) {
  DEV("reduce_all");
  REDUCE_OK("reduce_all", op);
  NEED(n >= 1, "tdm_reduce_all: n = 0; there is nothing to reduce");
  PTR("reduce_all", x);
  PTR("reduce_all", out);
  DISPATCH(reduce_all, dev, op, x, out, n);
}

// ---------------------------------------------------------------------------------------------
// elementwise

tdm_status tdm_fill(tdm_dev *dev, float *x, size_t n, float value) {
  DEV("fill");
  if (n == 0) return TDM_OK;
  PTR("fill", x);
  DISPATCH(fill, dev, x, n, value);
}

tdm_status tdm_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b, float *y) {
  DEV("axpby");
  if (n == 0) return TDM_OK;
  PTR("axpby", x);
  PTR("axpby", y);
  DISPATCH(axpby, dev, n, a, x, b, y);
}

tdm_status tdm_scale(tdm_dev *dev, size_t n, float a, float *x) {
  DEV("scale");
  if (n == 0) return TDM_OK;
  PTR("scale", x);
  DISPATCH(scale, dev, n, a, x);
}

tdm_status tdm_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x) {
  DEV("clamp");
  NEED(lo <= hi, "tdm_clamp: lo = %g is greater than hi = %g", lo, hi);
  if (n == 0) return TDM_OK;
  PTR("clamp", x);
  DISPATCH(clamp, dev, n, lo, hi, x);
}

tdm_status tdm_mul(tdm_dev *dev, size_t n, const float *x, const float *y, float *z) {
  DEV("mul");
  if (n == 0) return TDM_OK;
  PTR("mul", x);
  PTR("mul", y);
  PTR("mul", z);
  DISPATCH(mul, dev, n, x, y, z);
}

tdm_status tdm_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx, float *dst,
                           size_t nidx, int D) {
  DEV("gather_rows");
  DIM("gather_rows", D);
  if (nidx == 0) return TDM_OK;
  PTR("gather_rows", src);
  PTR("gather_rows", idx);
  PTR("gather_rows", dst);
  DISPATCH(gather_rows, dev, src, idx, dst, nidx, D);
}

// ---------------------------------------------------------------------------------------------
// random numbers

#define RNG_OK(op)                                                                    \
  PTR(op, rng);                                                                       \
  NEED(stream < 256, "tdm_" op ": stream = %u; streams are 0..255 (see tdm_rng_sub)", \
       (unsigned)stream)

tdm_status tdm_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                            const tdm_rng_ctr *rng, uint32_t stream) {
  DEV("fill_uniform");
  RNG_OK("fill_uniform");
  NEED(lo <= hi, "tdm_fill_uniform: lo = %g is greater than hi = %g", lo, hi);
  if (n == 0) return TDM_OK;
  PTR("fill_uniform", x);
  DISPATCH(fill_uniform, dev, x, n, lo, hi, rng, stream);
}

tdm_status tdm_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                           const tdm_rng_ctr *rng, uint32_t stream) {
  DEV("fill_normal");
  RNG_OK("fill_normal");
  NEED(std >= 0.0f, "tdm_fill_normal: std = %g is negative", std);
  if (n == 0) return TDM_OK;
  PTR("fill_normal", x);
  DISPATCH(fill_normal, dev, x, n, mean, std, rng, stream);
}

tdm_status tdm_fill_randint(tdm_dev *dev, int32_t *x, size_t n, const int32_t *bound,
                            const tdm_rng_ctr *rng, uint32_t stream) {
  DEV("fill_randint");
  RNG_OK("fill_randint");
  PTR("fill_randint", bound);
  if (n == 0) return TDM_OK;
  PTR("fill_randint", x);
  DISPATCH(fill_randint, dev, x, n, bound, rng, stream);
}

tdm_status tdm_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask, size_t n,
                               float p, const tdm_rng_ctr *rng, uint32_t stream) {
  DEV("dropout_forward");
  RNG_OK("dropout_forward");
  NEED(p >= 0.0f && p < 1.0f, "tdm_dropout_forward: p = %g; the drop rate must be in [0, 1)", p);
  if (n == 0) return TDM_OK;
  PTR("dropout_forward", x);
  PTR("dropout_forward", y);
  PTR("dropout_forward", mask);
  DISPATCH(dropout_forward, dev, x, y, mask, n, p, rng, stream);
}

tdm_status tdm_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n) {
  DEV("rng_advance");
  PTR("rng_advance", rng);
  DISPATCH(rng_advance, dev, rng, n);
}

// ---------------------------------------------------------------------------------------------
// optimiser

tdm_adam_cfg tdm_adam_defaults(void) {
  return (tdm_adam_cfg){.lr = 3e-4f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f,
                        .weight_decay = 0.0f,
                        .max_grad_norm = 0.0f};
}

size_t tdm_adam_scratch_floats(tdm_dev *dev, size_t n) {
#ifdef TDM_CUDA
  if (dev && dev->kind == TDM_DEV_CUDA) return tdm_cuda_adam_scratch_floats(n);
#endif
  (void)dev;
  (void)n;
  return 0;  // the CPU needs none
}

tdm_status tdm_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v, size_t n,
                         const tdm_adam_cfg *cfg, int32_t *step, float *scratch) {
  DEV("adam_step");
  PTR("adam_step", cfg);
  PTR("adam_step", step);
  NEED(cfg->lr >= 0.0f, "tdm_adam_step: lr = %g is negative", cfg->lr);
  NEED(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f && cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f,
       "tdm_adam_step: beta1 = %g, beta2 = %g; both must be in [0, 1)", cfg->beta1, cfg->beta2);
  NEED(cfg->eps > 0.0f, "tdm_adam_step: eps = %g; it must be > 0 (1e-8 is usual)", cfg->eps);
  NEED(cfg->weight_decay >= 0.0f, "tdm_adam_step: weight_decay = %g is negative",
       cfg->weight_decay);
  NEED(cfg->max_grad_norm >= 0.0f, "tdm_adam_step: max_grad_norm = %g is negative (0 = off)",
       cfg->max_grad_norm);
  if (n == 0) return TDM_OK;
  PTR("adam_step", p);
  PTR("adam_step", g);
  PTR("adam_step", m);
  PTR("adam_step", v);
  NEED(scratch || tdm_adam_scratch_floats(dev, n) == 0,
       "tdm_adam_step: scratch is NULL; allocate tdm_adam_scratch_floats(dev, n) = %zu floats",
       tdm_adam_scratch_floats(dev, n));
  DISPATCH(adam_step, dev, p, g, m, v, n, cfg, step, scratch);
}

tdm_status tdm_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups, int ngroups,
                                const tdm_adam_cfg *cfg, uint32_t *sync) {
  DEV("adam_step_groups");
  PTR("adam_step_groups", groups);
  PTR("adam_step_groups", cfg);
  PTR("adam_step_groups", sync);
  NEED(ngroups >= 1 && ngroups <= TDM_ADAM_MAX_GROUPS,
       "tdm_adam_step_groups: ngroups = %d must be in 1..%d", ngroups, TDM_ADAM_MAX_GROUPS);
  NEED(cfg->lr >= 0.0f, "tdm_adam_step_groups: lr = %g is negative", cfg->lr);
  NEED(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f && cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f,
       "tdm_adam_step_groups: beta1 = %g, beta2 = %g; both must be in [0, 1)", cfg->beta1,
       cfg->beta2);
  NEED(cfg->eps > 0.0f, "tdm_adam_step_groups: eps = %g; it must be > 0 (1e-8 is usual)", cfg->eps);
  NEED(cfg->weight_decay >= 0.0f, "tdm_adam_step_groups: weight_decay = %g is negative",
       cfg->weight_decay);
  NEED(cfg->max_grad_norm == 0.0f,
       "tdm_adam_step_groups: max_grad_norm = %g; this op does not clip (use tdm_adam_step)",
       cfg->max_grad_norm);
  for (int k = 0; k < ngroups; k++) {
    const tdm_adam_group *gr = &groups[k];
    NEED(gr->n >= 1, "tdm_adam_step_groups: group %d has n = 0", k);
    NEED(gr->p && gr->g && gr->m && gr->v && gr->step,
         "tdm_adam_step_groups: group %d has a NULL p, g, m, v or step", k);
    NEED(!gr->ema || (gr->ema_tau >= 0.0f && gr->ema_tau <= 1.0f),
         "tdm_adam_step_groups: group %d: ema_tau = %g must be in [0, 1]", k, gr->ema_tau);
    for (int j = 0; j < k; j++)
      NEED(groups[j].step != gr->step && groups[j].p != gr->p,
           "tdm_adam_step_groups: groups %d and %d share parameters or a step counter", j, k);
  }
  DISPATCH(adam_step_groups, dev, groups, ngroups, cfg, sync);
}

tdm_status tdm_polyak(tdm_dev *dev, float *target, const float *src, size_t n, float tau) {
  DEV("polyak");
  NEED(tau >= 0.0f && tau <= 1.0f, "tdm_polyak: tau = %g; it must be in [0, 1]", tau);
  if (n == 0) return TDM_OK;
  PTR("polyak", target);
  PTR("polyak", src);
  DISPATCH(polyak, dev, target, src, n, tau);
}
