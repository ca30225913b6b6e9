// GEMM on the GPU through cuBLAS. Our matrices are row-major and cuBLAS's are column-major: a
// row-major X (r x c, row stride ld) is the column-major X^T with the same ld. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, that is cuBLAS called
// with the operands swapped (B first, then A) and M, N swapped; the transpose flags carry over.
// dev->tf32 selects TF32 tensor-core math; otherwise plain fp32 compute (CUBLAS_COMPUTE_32F,
// which never uses TF32 whatever the handle's math mode).
#include "cuda_common.cuh"

static cublasOperation_t to_op(tdm_trans t) {
  return t == TDM_TRANS ? CUBLAS_OP_T : CUBLAS_OP_N;
}

static cublasComputeType_t compute_of(const tdm_dev *dev) {
  return dev->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

extern "C" tdm_status tdm_cuda_gemm(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N, int K,
                                    float alpha, const float *A, int lda, const float *B, int ldb,
                                    float beta, float *C, int ldc) {
  cublasHandle_t h = (cublasHandle_t)dev->cublas;
  // alpha and beta are host values (baked into a captured graph)
  TDM_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  // column-major: C^T (N x M) = op(B)^T (N x K) * op(A)^T (K x M)
  TDM_CUBLAS_CHECK(cublasGemmEx(h, to_op(tb), to_op(ta), N, M, K, &alpha, B, CUDA_R_32F, ldb, A,
                                CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, compute_of(dev),
                                CUBLAS_GEMM_DEFAULT));
  return TDM_LAUNCH_CHECK("cublasGemmEx");
}

extern "C" tdm_status tdm_cuda_gemm_batched(tdm_dev *dev, tdm_trans ta, tdm_trans tb, int M, int N,
                                            int K, float alpha, const float *A, int lda,
                                            long long sA, const float *B, int ldb, long long sB,
                                            float beta, float *C, int ldc, long long sC,
                                            int batch) {
  cublasHandle_t h = (cublasHandle_t)dev->cublas;
  TDM_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  // same swap as tdm_cuda_gemm, per batch member; a zero stride shares one matrix
  TDM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, to_op(tb), to_op(ta), N, M, K, &alpha, B, CUDA_R_32F, ldb, sB, A, CUDA_R_32F, lda, sA,
      &beta, C, CUDA_R_32F, ldc, sC, batch, compute_of(dev), CUBLAS_GEMM_DEFAULT));
  return TDM_LAUNCH_CHECK("cublasGemmStridedBatchedEx");
}
