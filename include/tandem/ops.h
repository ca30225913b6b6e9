// tandem ops: every op runs on the CPU (src/core/ops_cpu.c) or the GPU (kernels/*.cu) with the
// same signature; tdm_* dispatches on dev->kind. All arrays are float32, row-major, and live in
// the device's memory (host memory for the CPU). Sizes are element counts. Outputs may not alias
// inputs unless the comment says so. Every function returns TDM_OK or an error with a message.
// GPU reductions use no atomics, so results repeat bit for bit on one device.
#ifndef TANDEM_OPS_H
#define TANDEM_OPS_H

#include "tandem/dev.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// matrix products

typedef enum { TDM_NOTRANS = 0, TDM_TRANS = 1 } tdm_trans;

// C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C. Row-major; lda, ldb, ldc are row
// strides of A, B, C as stored (A stored M x K when NOTRANS, K x M when TRANS). beta = 0 ignores C.
tdm_status tdm_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb, float beta, float *C,
                    int ldc);

// The same for batch independent products; matrix i starts at A + i * sA (sA may be 0 to share
// one matrix across the batch), likewise B and C (sC > 0).
tdm_status tdm_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                            float alpha, const float *A, int lda, long long sA, const float *B,
                            int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                            int batch);

// ---------------------------------------------------------------------------------------------
// bias and activations

// Y (E, M, N) += b (E, N), broadcast over the M rows of each member.
tdm_status tdm_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M, int N);

// db (E, N) = beta * db + sum over the M rows of dY (E, M, N).
tdm_status tdm_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M, int N,
                         float beta);

typedef enum {
  TDM_ACT_NONE = 0,
  TDM_ACT_RELU,
  TDM_ACT_TANH,
  TDM_ACT_SILU,  // x * sigmoid(x)
  TDM_ACT_MISH,  // x * tanh(softplus(x))
  TDM_ACT_ELU,   // alpha = 1
} tdm_act;

// Name of an activation ("relu") and lookup by name (-1 when unknown).
const char *tdm_act_name(tdm_act a);
int tdm_act_from_name(const char *name);

// y = act(x) elementwise; y may alias x.
tdm_status tdm_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y, size_t n);

// dx = dy * act'(x); x is the pre-activation input, y = act(x) its output (both given so that
// each activation uses the cheaper one). dx may alias dy.
tdm_status tdm_act_backward(tdm_dev *dev, tdm_act act, const float *x, const float *y,
                            const float *dy, float *dx, size_t n);

// Fused bias + activation (one kernel on the GPU): Z (E, M, N) += b (E, N) broadcast over the M
// rows of each member (Z then holds the pre-activation the backward needs), Y (E, M, N) =
// act(Z). Y may alias Z (then only act(Z + b) is kept). Same result as tdm_bias_add followed by
// tdm_act_forward.
tdm_status tdm_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b, float *Y,
                                int E, int M, int N);

// Fused activation backward + bias gradient (one kernel on the GPU): dZ (E, M, N) = dY *
// act'(X), X the pre-activation and Y = act(X); db (E, N) = beta * db + sum over the M rows of
// dZ, or nothing when db is NULL. dZ may alias dY. Same result as tdm_act_backward followed by
// tdm_bias_grad (the GPU column sums run in a fixed order, without atomics).
tdm_status tdm_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                 const float *dY, float *dZ, float *db, int E, int M, int N,
                                 float beta);

// tdm_act_bias_backward (db not NULL) and, in the same launch, a second bias gradient db2 (E, N2)
// = beta * db2 + sum over the M rows of dY2 (E, M, N2): that of the layer above, when it has no
// activation. dY2 and db2 must not overlap dZ or db.
tdm_status tdm_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                  const float *dY, float *dZ, float *db, int E, int M, int N,
                                  float beta, const float *dY2, float *db2, int N2);

// dZ (M, E, N) = dY (E, M, N) * act'(X), X and Y (E, M, N) as tdm_act_backward: the member
// dimension moves inside, so that the gradient of an input shared by the E members, sum_e dZ_e
// W_e, is one GEMM [dZ_0 .. dZ_E-1] (M, E N) x W (E N, K) with W stored (E, N, K).
tdm_status tdm_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                       const float *dY, float *dZ, int E, int M, int N);

// Linear layer, bias and activation for batch members at once: Y_i (M, N) = act(X_i (M, K) W_i^T
// + b_i) for i < batch, X_i = X + i sX with row stride ldx (sX = 0: one input for all members),
// W_i = W + i sW stored (N, K) with row stride ldw, b (batch, N), Y (batch, M, N) packed. The
// pre-activation is not kept. On the GPU, act none and relu run as one cuBLASLt matmul with a
// bias (+ ReLU) epilogue; other activations (or a shape cuBLASLt declines) run a GEMM and then
// tdm_bias_act_forward, as does every call when the environment sets TDM_NO_CUBLASLT=1.
tdm_status tdm_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K, const float *X,
                                  int ldx, long long sX, const float *W, int ldw, long long sW,
                                  const float *b, float *Y, int batch);

// ReLU masks for the fused backward below: bytes of one member's mask of an (M, N) output (0 on
// the CPU, which keeps none).
size_t tdm_relu_mask_bytes(tdm_dev *dev, int M, int N);
// tdm_linear_act_forward with act relu that also writes the ReLU bit mask of Y (batch members of
// tdm_relu_mask_bytes(dev, M, N) bytes each, 16-byte aligned) for tdm_linear_drelu_bgrad, as one
// cuBLASLt matmul. *have_mask says whether it did: false on the CPU, when cuBLASLt declines (Y is
// then computed as tdm_linear_act_forward does), unless the environment sets TDM_LT_DRELU=1
// (opt-in: measured slower on an H200), and with TDM_NO_CUBLASLT=1.
tdm_status tdm_linear_relu_forward_mask(tdm_dev *dev, int M, int N, int K, const float *X, int ldx,
                                        long long sX, const float *W, int ldw, long long sW,
                                        const float *b, float *Y, int batch, void *mask,
                                        bool *have_mask);
// Backward of a linear layer through the ReLU layer below it, as one cuBLASLt matmul:
// dX_i (M, N) = (dY_i (M, K) W_i (K, N)) relu'(mask_i), db_i (N) = column sums of dX_i (written,
// not accumulated). dY packed with member stride sY, W_i = W + i sW packed (K, N), dX_i = dX +
// i sX with row stride ldx >= N (N and M N: packed; N and E N: members side by side), db (batch,
// N) packed; mask from tdm_linear_relu_forward_mask of that ReLU layer's (M, N) output. *ran
// false (nothing written): the CPU, cuBLASLt declined, or switched off as above; the caller then
// runs a GEMM and tdm_act_bias_backward (the CPU twin of this op).
tdm_status tdm_linear_drelu_bgrad(tdm_dev *dev, int M, int N, int K, const float *dY, long long sY,
                                  const float *W, long long sW, const void *mask, float *dX,
                                  int ldx, long long sX, float *db, int batch, bool *ran);

// ---------------------------------------------------------------------------------------------
// normalisation

// LayerNorm over the last dim D of x (E, R, D) with per-member gamma, beta (E, D):
// y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps) (biased variance).
// mean, rstd (E, R) are written for backward (either may be NULL when not needed).
tdm_status tdm_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                 const float *beta, float *y, float *mean, float *rstd, int E,
                                 int R, int D, float eps);

// Backward of LayerNorm: dx (E, R, D) = (overwrite); dgamma, dbeta (E, D) = beta_acc * old + new.
tdm_status tdm_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                  const float *mean, const float *rstd, const float *dy,
                                  float *dx, float *dgamma, float *dbeta, int E, int R, int D,
                                  float beta_acc);

// SimNorm: each row of D is split into D / V groups of V, softmax over each group.
tdm_status tdm_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows, int D, int V);

// dx = y * (dy - sum_group(dy * y)), from the forward output y.
tdm_status tdm_simnorm_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                size_t rows, int D, int V);

// Row softmax and log-softmax over D (numerically stable, max subtracted).
tdm_status tdm_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);
tdm_status tdm_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);

// Backward of log-softmax: dx = dy - softmax(x) * sum(dy), from y = log_softmax(x).
tdm_status tdm_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                    size_t rows, int D);

// ---------------------------------------------------------------------------------------------
// two-hot (TD-MPC2): bins are nbins evenly spaced points on [vmin, vmax] in symlog space.

// symlog(x) = sign(x) log(1 + |x|); symexp(x) = sign(x) (exp(|x|) - 1). y may alias x.
tdm_status tdm_symlog(tdm_dev *dev, const float *x, float *y, size_t n);
tdm_status tdm_symexp(tdm_dev *dev, const float *x, float *y, size_t n);

// out (n, nbins) = two-hot encoding of symlog(x) clamped to [vmin, vmax].
tdm_status tdm_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n, int nbins,
                             float vmin, float vmax);

// out (n) = symexp(sum_j softmax(logits)_j * bin_j) for logits (n, nbins).
tdm_status tdm_twohot_decode(tdm_dev *dev, const float *logits, float *out, size_t n, int nbins,
                             float vmin, float vmax);

// ---------------------------------------------------------------------------------------------
// reductions

typedef enum { TDM_REDUCE_SUM = 0, TDM_REDUCE_MEAN, TDM_REDUCE_MAX } tdm_reduce;

// out (rows) = reduce over each row of x (rows, D).
tdm_status tdm_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t rows,
                           int D);

// out[0] = reduce over all n elements of x (out is device memory). Sums accumulate in a fixed
// order (pairwise / tree), so the result is deterministic.
tdm_status tdm_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t n);

// ---------------------------------------------------------------------------------------------
// elementwise

tdm_status tdm_fill(tdm_dev *dev, float *x, size_t n, float value);
// y = a * x + b * y
tdm_status tdm_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b, float *y);
// x = a * x
tdm_status tdm_scale(tdm_dev *dev, size_t n, float a, float *x);
// x = min(max(x, lo), hi)
tdm_status tdm_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x);
// z = x * y elementwise; z may alias x or y.
tdm_status tdm_mul(tdm_dev *dev, size_t n, const float *x, const float *y, float *z);
// dst (nidx, D) = src[idx[i], :]; indices must be in range (not checked on the GPU).
tdm_status tdm_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx, float *dst,
                           size_t nidx, int D);

// ---------------------------------------------------------------------------------------------
// random numbers (Philox4x32-10; see core.h for the stream convention). rng points to device
// memory; the op reads seed and calls there and uses sub-stream tdm_rng_sub(calls, stream).
// The caller advances calls (tdm_rng_advance) once per step, so a graph replays fresh numbers.

// x = uniform in (lo, hi]
tdm_status tdm_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                            const tdm_rng_ctr *rng, uint32_t stream);
// x = mean + std * standard normal (Box-Muller on lane pairs (0,1), (2,3))
tdm_status tdm_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                           const tdm_rng_ctr *rng, uint32_t stream);
// x = floor(u * bound) clamped to [0, bound - 1], u uniform (0, 1]; bound is an int32 in device
// memory (a replay buffer's current size, say), read when the op runs.
tdm_status tdm_fill_randint(tdm_dev *dev, int32_t *x, size_t n, const int32_t *bound,
                            const tdm_rng_ctr *rng, uint32_t stream);
// Dropout: mask = (u > p) / (1 - p) with u uniform, y = x * mask. y may alias x.
tdm_status tdm_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask, size_t n,
                               float p, const tdm_rng_ctr *rng, uint32_t stream);
// rng->calls += n, on the device stream.
tdm_status tdm_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n);

// ---------------------------------------------------------------------------------------------
// optimiser

typedef struct {
  float lr;             // learning rate (default 3e-4)
  float beta1, beta2;   // (0.9, 0.999)
  float eps;            // 1e-8
  float weight_decay;   // decoupled (AdamW); 0 = off
  float max_grad_norm;  // clip the global L2 norm of g to this; 0 = off
} tdm_adam_cfg;

// Defaults above.
tdm_adam_cfg tdm_adam_defaults(void);

// Floats of scratch memory tdm_adam_step needs for n parameters.
size_t tdm_adam_scratch_floats(tdm_dev *dev, size_t n);

// One Adam step over n parameters with bias correction:
//   g' = g * min(1, max_grad_norm / ||g||)  (when clipping), t = *step + 1,
//   m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2,
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr * wd * p.
// step is an int32 counter in device memory, incremented by the op (graph-safe). scratch holds
// tdm_adam_scratch_floats floats of device memory. g is not modified.
tdm_status tdm_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v, size_t n,
                         const tdm_adam_cfg *cfg, int32_t *step, float *scratch);

// Several parameter buffers updated by one Adam launch (no clipping).
#define TDM_ADAM_MAX_GROUPS 4
typedef struct {
  float *p;        // (n) parameters
  const float *g;  // (n) gradients (not modified)
  float *m, *v;    // (n) moments
  size_t n;
  int32_t *step;   // the group's own int32 step counter in device memory
  float *ema;      // (n) or NULL: after the update ema = (1 - ema_tau) ema + ema_tau p (tdm_polyak)
  float ema_tau;
} tdm_adam_group;

// One Adam step (the update of tdm_adam_step, max_grad_norm must be 0) on each of ngroups
// (1..TDM_ADAM_MAX_GROUPS) groups, each with its own step counter, incremented in the same launch
// (graph-safe), and each group's Polyak copy ema updated from the new parameters when given.
// sync is a uint32 in device memory, zeroed once when allocated; the op uses it to find the last
// block of its launch and leaves it at zero. Groups must not share memory.
tdm_status tdm_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups, int ngroups,
                                const tdm_adam_cfg *cfg, uint32_t *sync);

// Polyak update: target = (1 - tau) * target + tau * src.
tdm_status tdm_polyak(tdm_dev *dev, float *target, const float *src, size_t n, float tau);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_OPS_H
