// Backend entry points of the ops in tandem/ops.h: tdm_cpu_<op> (src/core/ops_cpu.c) and
// tdm_cuda_<op> (kernels/*.cu), each with exactly the signature of tdm_<op>. src/core/ops.c
// checks the arguments of tdm_<op> and dispatches on dev->kind, so backends may assume valid
// arguments (non-NULL pointers, sizes checked, V dividing D, nbins >= 2 ...). n == 0 or rows == 0
// never reaches a backend (ops.c returns TDM_OK). Not dispatched (live in ops.c): tdm_act_name,
// tdm_act_from_name, tdm_adam_defaults, tdm_adam_scratch_floats.
#ifndef TANDEM_OPS_INTERNAL_H
#define TANDEM_OPS_INTERNAL_H

#include "tandem/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// CPU backend (src/core/ops_cpu.c)

tdm_status tdm_cpu_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb, float beta, float *C,
                        int ldc);
tdm_status tdm_cpu_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                                float alpha, const float *A, int lda, long long sA, const float *B,
                                int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                                int batch);
tdm_status tdm_cpu_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M, int N);
tdm_status tdm_cpu_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M, int N,
                             float beta);
tdm_status tdm_cpu_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y, size_t n);
tdm_status tdm_cpu_act_backward(tdm_dev *dev, tdm_act act, const float *x, const float *y,
                                const float *dy, float *dx, size_t n);
tdm_status tdm_cpu_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b, float *Y,
                                    int E, int M, int N);
tdm_status tdm_cpu_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                     const float *dY, float *dZ, float *db, int E, int M, int N,
                                     float beta);
tdm_status tdm_cpu_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K,
                                      const float *X, int ldx, long long sX, const float *W,
                                      int ldw, long long sW, const float *b, float *Y, int batch);
tdm_status tdm_cpu_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                      const float *dY, float *dZ, float *db, int E, int M, int N,
                                      float beta, const float *dY2, float *db2, int N2);
tdm_status tdm_cpu_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X,
                                           const float *Y, const float *dY, float *dZ, int E, int M,
                                           int N);
tdm_status tdm_cpu_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups, int ngroups,
                                    const tdm_adam_cfg *cfg, uint32_t *sync);
tdm_status tdm_cpu_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                     const float *beta, float *y, float *mean, float *rstd, int E,
                                     int R, int D, float eps);
tdm_status tdm_cpu_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                      const float *mean, const float *rstd, const float *dy,
                                      float *dx, float *dgamma, float *dbeta, int E, int R, int D,
                                      float beta_acc);
tdm_status tdm_cpu_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows, int D,
                                   int V);
tdm_status tdm_cpu_simnorm_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                    size_t rows, int D, int V);
tdm_status tdm_cpu_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);
tdm_status tdm_cpu_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);
tdm_status tdm_cpu_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                        size_t rows, int D);
tdm_status tdm_cpu_symlog(tdm_dev *dev, const float *x, float *y, size_t n);
tdm_status tdm_cpu_symexp(tdm_dev *dev, const float *x, float *y, size_t n);
tdm_status tdm_cpu_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n, int nbins,
                                 float vmin, float vmax);
tdm_status tdm_cpu_twohot_decode(tdm_dev *dev, const float *logits, float *out, size_t n, int nbins,
                                 float vmin, float vmax);
tdm_status tdm_cpu_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t rows,
                               int D);
tdm_status tdm_cpu_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t n);
tdm_status tdm_cpu_fill(tdm_dev *dev, float *x, size_t n, float value);
tdm_status tdm_cpu_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b, float *y);
tdm_status tdm_cpu_scale(tdm_dev *dev, size_t n, float a, float *x);
tdm_status tdm_cpu_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x);
tdm_status tdm_cpu_mul(tdm_dev *dev, size_t n, const float *x, const float *y, float *z);
tdm_status tdm_cpu_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx, float *dst,
                               size_t nidx, int D);
tdm_status tdm_cpu_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                                const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cpu_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                               const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cpu_fill_randint(tdm_dev *dev, int32_t *x, size_t n, const int32_t *bound,
                                const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cpu_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask, size_t n,
                                   float p, const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cpu_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n);
tdm_status tdm_cpu_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v, size_t n,
                             const tdm_adam_cfg *cfg, int32_t *step, float *scratch);
tdm_status tdm_cpu_polyak(tdm_dev *dev, float *target, const float *src, size_t n, float tau);

// ---------------------------------------------------------------------------------------------
// CUDA backend (kernels/*.cu); only built and called when TDM_CUDA is defined.

tdm_status tdm_cuda_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);
tdm_status tdm_cuda_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                                 float alpha, const float *A, int lda, long long sA, const float *B,
                                 int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                                 int batch);
tdm_status tdm_cuda_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M, int N);
tdm_status tdm_cuda_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M, int N,
                              float beta);
tdm_status tdm_cuda_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y, size_t n);
tdm_status tdm_cuda_act_backward(tdm_dev *dev, tdm_act act, const float *x, const float *y,
                                 const float *dy, float *dx, size_t n);
tdm_status tdm_cuda_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b, float *Y,
                                     int E, int M, int N);
tdm_status tdm_cuda_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                      const float *dY, float *dZ, float *db, int E, int M, int N,
                                      float beta);
tdm_status tdm_cuda_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K,
                                       const float *X, int ldx, long long sX, const float *W,
                                       int ldw, long long sW, const float *b, float *Y, int batch);
size_t tdm_cuda_relu_mask_bytes(int M, int N);
tdm_status tdm_cuda_linear_relu_forward_mask(tdm_dev *dev, int M, int N, int K, const float *X,
                                             int ldx, long long sX, const float *W, int ldw,
                                             long long sW, const float *b, float *Y, int batch,
                                             void *mask, bool *have_mask);
tdm_status tdm_cuda_linear_drelu_bgrad(tdm_dev *dev, int M, int N, int K, const float *dY,
                                       long long sY, const float *W, long long sW,
                                       const void *mask, float *dX, int ldx, long long sX,
                                       float *db, int batch, bool *ran);
tdm_status tdm_cuda_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X, const float *Y,
                                       const float *dY, float *dZ, float *db, int E, int M, int N,
                                       float beta, const float *dY2, float *db2, int N2);
tdm_status tdm_cuda_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X,
                                            const float *Y, const float *dY, float *dZ, int E,
                                            int M, int N);
tdm_status tdm_cuda_adam_step_groups(tdm_dev *dev, const tdm_adam_group *groups, int ngroups,
                                     const tdm_adam_cfg *cfg, uint32_t *sync);
tdm_status tdm_cuda_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                      const float *beta, float *y, float *mean, float *rstd, int E,
                                      int R, int D, float eps);
tdm_status tdm_cuda_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                       const float *mean, const float *rstd, const float *dy,
                                       float *dx, float *dgamma, float *dbeta, int E, int R, int D,
                                       float beta_acc);
tdm_status tdm_cuda_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows, int D,
                                    int V);
tdm_status tdm_cuda_simnorm_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                     size_t rows, int D, int V);
tdm_status tdm_cuda_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);
tdm_status tdm_cuda_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D);
tdm_status tdm_cuda_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy, float *dx,
                                         size_t rows, int D);
tdm_status tdm_cuda_symlog(tdm_dev *dev, const float *x, float *y, size_t n);
tdm_status tdm_cuda_symexp(tdm_dev *dev, const float *x, float *y, size_t n);
tdm_status tdm_cuda_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n, int nbins,
                                  float vmin, float vmax);
tdm_status tdm_cuda_twohot_decode(tdm_dev *dev, const float *logits, float *out, size_t n,
                                  int nbins, float vmin, float vmax);
tdm_status tdm_cuda_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out,
                                size_t rows, int D);
tdm_status tdm_cuda_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out, size_t n);
tdm_status tdm_cuda_fill(tdm_dev *dev, float *x, size_t n, float value);
tdm_status tdm_cuda_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b, float *y);
tdm_status tdm_cuda_scale(tdm_dev *dev, size_t n, float a, float *x);
tdm_status tdm_cuda_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x);
tdm_status tdm_cuda_mul(tdm_dev *dev, size_t n, const float *x, const float *y, float *z);
tdm_status tdm_cuda_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx, float *dst,
                                size_t nidx, int D);
tdm_status tdm_cuda_fill_uniform(tdm_dev *dev, float *x, size_t n, float lo, float hi,
                                 const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cuda_fill_normal(tdm_dev *dev, float *x, size_t n, float mean, float std,
                                const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cuda_fill_randint(tdm_dev *dev, int32_t *x, size_t n, const int32_t *bound,
                                 const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cuda_dropout_forward(tdm_dev *dev, const float *x, float *y, float *mask, size_t n,
                                    float p, const tdm_rng_ctr *rng, uint32_t stream);
tdm_status tdm_cuda_rng_advance(tdm_dev *dev, tdm_rng_ctr *rng, uint64_t n);
tdm_status tdm_cuda_adam_step(tdm_dev *dev, float *p, const float *g, float *m, float *v, size_t n,
                              const tdm_adam_cfg *cfg, int32_t *step, float *scratch);
tdm_status tdm_cuda_polyak(tdm_dev *dev, float *target, const float *src, size_t n, float tau);

// Floats of device scratch tdm_cuda_adam_step needs for n parameters (the GPU kernel decides).
size_t tdm_cuda_adam_scratch_floats(size_t n);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_OPS_INTERNAL_H
