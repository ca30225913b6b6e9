// GEMM on the GPU through cuBLAS. Our matrices are row-major and cuBLAS's are column-major: a
// row-major X (r x c, row stride ld) is the column-major X^T with the same ld. So the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T, that is cuBLAS called
// with the operands swapped (B first, then A) and M, N swapped; the transpose flags carry over.
// dev->tf32 selects TF32 tensor-core math; otherwise plain fp32 compute (CUBLAS_COMPUTE_32F,
// which never uses TF32 whatever the handle's math mode).
// tdm_cuda_linear_act_forward runs the layer's GEMM, bias and ReLU as one cuBLASLt matmul with an
// epilogue, through the device's cuBLAS handle (a cuBLAS handle is a valid cuBLASLt handle) and
// its workspace (set before any capture, so the matmul is graph-safe).
#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

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

// ---------------------------------------------------------------------------------------------
// linear layer + bias + activation

// TDM_NO_CUBLASLT set to anything but "" or "0" turns the cuBLASLt path off (read once).
static bool lt_off(void) {
  static int off = -1;
  if (off < 0) {
    const char *e = getenv("TDM_NO_CUBLASLT");
    off = e && *e && strcmp(e, "0") != 0 ? 1 : 0;
  }
  return off == 1;
}

// Largest power of two, at most 256, dividing the address and the byte strides ld and stride.
static uint32_t align_bytes(const void *p, long long ld, long long stride) {
  uint64_t v = (uint64_t)(uintptr_t)p | (uint64_t)ld * 4u | (uint64_t)stride * 4u | 256u;
  return (uint32_t)(v & (~v + 1u));  // the lowest set bit
}

// ReLU bit-mask leading dimension in bits: the rows (N) rounded up to 128 (cuBLASLt's rule).
static int64_t mask_ld(int N) {
  return ((int64_t)N + 127) / 128 * 128;
}

// Heuristic results by problem (the query costs host time; a graph replays without it).
typedef struct {
  void *handle;
  int compute, epilogue, M, N, K, ldx, ldw, batch;
  long long sX, sW;
  uint32_t aX, aW, aY, aB, aAux;
  int ldd;       // output row stride (DRELU_BGRAD; 0 otherwise)
  long long sD;  // output member stride (DRELU_BGRAD; 0 otherwise)
  size_t workspace;
} lt_key;
typedef struct {
  lt_key key;
  bool ok;
  cublasLtMatmulAlgo_t algo;
} lt_entry;
#define LT_CACHE 128
static lt_entry lt_cache[LT_CACHE];
static int lt_cached;
static std::mutex lt_mu;

// One cuBLASLt setup call, made only while the calls before it (status cs, in the caller)
// succeeded.
#define LT(call)                                  \
  do {                                            \
    if (cs == CUBLAS_STATUS_SUCCESS) cs = (call); \
  } while (0)

// Batch count nb and stride (elements) of a matrix layout of a strided batched matmul.
static cublasStatus_t lt_batch(cublasLtMatrixLayout_t l, int32_t nb, int64_t stride) {
  cublasStatus_t cs = CUBLAS_STATUS_SUCCESS;
  LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb));
  LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                      sizeof stride));
  return cs;
}

// Run the prepared matmul D = op(A) op(B) (+ the descriptor's epilogue; C = D, beta 0) with the
// algorithm cached for key, asking cuBLASLt once per key with the real alignments and workspace.
// cs carries an earlier descriptor error (then nothing runs). *ok: an algorithm was known or found;
// *ran: the matmul ran. A refusal (no algorithm, or not supported before launching) is remembered
// and is not an error: the caller takes the two-kernel path. Returns the matmul's status.
static cublasStatus_t lt_run(tdm_dev *dev, cublasStatus_t cs, const lt_key *key,
                             cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la,
                             cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld, const void *A,
                             const void *B, void *D, bool *ok, bool *ran) {
  cublasLtHandle_t h = (cublasLtHandle_t)dev->cublas;
  cublasLtMatmulPreference_t pref = NULL;
  bool found = false;
  *ok = false;
  cublasLtMatmulAlgo_t algo;
  memset(&algo, 0, sizeof algo);
  {
    std::lock_guard<std::mutex> lock(lt_mu);
    for (int i = 0; i < lt_cached && !found; i++)
      if (!memcmp(&lt_cache[i].key, key, sizeof *key)) {
        found = true;
        *ok = lt_cache[i].ok;
        algo = lt_cache[i].algo;
      }
  }
  if (!found && cs == CUBLAS_STATUS_SUCCESS) {
    const uint64_t ws = dev->workspace_bytes;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                            sizeof ws));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                            &key->aW, sizeof key->aW));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                            &key->aX, sizeof key->aX));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                            &key->aY, sizeof key->aY));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                            &key->aY, sizeof key->aY));
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int got = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, ld, ld, pref, 1, &res, &got));
    *ok = cs == CUBLAS_STATUS_SUCCESS && got >= 1 && res.state == CUBLAS_STATUS_SUCCESS &&
          res.workspaceSize <= dev->workspace_bytes;
    if (*ok) algo = res.algo;
    cs = CUBLAS_STATUS_SUCCESS;  // no algorithm is an answer, not an error
    std::lock_guard<std::mutex> lock(lt_mu);
    if (lt_cached < LT_CACHE) {
      lt_cache[lt_cached].key = *key;
      lt_cache[lt_cached].ok = *ok;
      lt_cache[lt_cached].algo = algo;
      lt_cached++;
    }
  }
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (*ok && cs == CUBLAS_STATUS_SUCCESS) {
    const float one = 1.0f, zero = 0.0f;
    cs = cublasLtMatmul(h, op, &one, A, la, B, lb, &zero, D, ld, D, ld, &algo, dev->workspace,
                        dev->workspace_bytes, tdm_stream_of(dev));
    if (cs == CUBLAS_STATUS_SUCCESS) {
      *ran = true;
    } else if (cs == CUBLAS_STATUS_NOT_SUPPORTED || cs == CUBLAS_STATUS_INVALID_VALUE ||
               cs == CUBLAS_STATUS_ARCH_MISMATCH) {
      // refused before launching: remember, and let the caller take the two-kernel path
      std::lock_guard<std::mutex> lock(lt_mu);
      for (int i = 0; i < lt_cached; i++)
        if (!memcmp(&lt_cache[i].key, key, sizeof *key)) lt_cache[i].ok = false;
      cs = CUBLAS_STATUS_SUCCESS;
    }
  }
  return cs;
}

// Y = epilogue(X W^T + b) as one cuBLASLt matmul; *ran stays false when cuBLASLt offers no
// algorithm for it (the caller then takes the two-kernel path). Column-major view, as tdm_gemm:
// Y^T (N x M, ld N) = W (stored K x N col-major, ld ldw, transposed) * X^T (K x M, ld ldx); the
// bias runs along the N rows of Y^T and is broadcast over its M columns.
// With aux (relu only), the ReLU bit mask goes there too (RELU_AUX_BIAS; layout of tdm_relu_mask).
static tdm_status lt_linear(tdm_dev *dev, tdm_act act, int M, int N, int K, const float *X, int ldx,
                            long long sX, const float *W, int ldw, long long sW, const float *b,
                            float *Y, int batch, void *aux, bool *ran) {
  *ran = false;
  const cublasComputeType_t ct = compute_of(dev);
  const uint32_t epi = act == TDM_ACT_RELU ? (aux ? (uint32_t)CUBLASLT_EPILOGUE_RELU_AUX_BIAS
                                                  : (uint32_t)CUBLASLT_EPILOGUE_RELU_BIAS)
                                           : (uint32_t)CUBLASLT_EPILOGUE_BIAS;
  const int64_t aux_ld = mask_ld(N), aux_s = mask_ld(N) * (int64_t)M;
  const int32_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N, nb = batch;
  const int64_t s_w = sW, s_x = sX, s_y = (int64_t)M * N, s_b = N;
  const void *bias = b;
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, ly = NULL;
  cublasStatus_t cs = CUBLAS_STATUS_SUCCESS;
  LT(cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, (uint64_t)K, (uint64_t)N, ldw));
  LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, (uint64_t)K, (uint64_t)M, ldx));
  LT(cublasLtMatrixLayoutCreate(&ly, CUDA_R_32F, (uint64_t)N, (uint64_t)M, N));
  if (aux && act == TDM_ACT_RELU) {
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                      sizeof aux));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                      sizeof aux_ld));
    if (batch > 1)
      LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, &aux_s,
                                        sizeof aux_s));
  }
  if (batch > 1) {
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &s_b,
                                      sizeof s_b));
    LT(lt_batch(la, nb, s_w));
    LT(lt_batch(lb, nb, s_x));
    LT(lt_batch(ly, nb, s_y));
  }
  // the algorithm: cached, else asked for with the real alignments and workspace
  lt_key key;
  memset(&key, 0, sizeof key);
  key.handle = dev->cublas;
  key.compute = (int)ct;
  key.epilogue = (int)epi;
  key.M = M, key.N = N, key.K = K, key.ldx = ldx, key.ldw = ldw, key.batch = batch;
  key.sX = batch > 1 ? sX : 0, key.sW = batch > 1 ? sW : 0;
  key.aX = align_bytes(X, ldx, key.sX);
  key.aW = align_bytes(W, ldw, key.sW);
  key.aY = align_bytes(Y, N, batch > 1 ? s_y : 0);
  key.aB = align_bytes(b, 0, batch > 1 ? s_b : 0);
  key.aAux = aux ? align_bytes(aux, 0, 0) : 0;
  key.workspace = dev->workspace_bytes;
  bool ok = false;
  cs = lt_run(dev, cs, &key, op, la, lb, ly, W, X, Y, &ok, ran);
  if (ly) cublasLtMatrixLayoutDestroy(ly);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  // a descriptor or problem cuBLASLt refuses means "not this way": the caller falls back; a
  // matmul that fails otherwise is an error
  if (cs != CUBLAS_STATUS_SUCCESS && ok)
    return tdm_seterr(TDM_ERR_CUDA, __FILE__, __LINE__, "cublasLtMatmul failed: %s (%s)",
                      cublasGetStatusString(cs), cublasGetStatusName(cs));
  return *ran ? TDM_LAUNCH_CHECK("cublasLtMatmul") : TDM_OK;
}

extern "C" tdm_status tdm_cuda_linear_act_forward(tdm_dev *dev, tdm_act act, int M, int N, int K,
                                                  const float *X, int ldx, long long sX,
                                                  const float *W, int ldw, long long sW,
                                                  const float *b, float *Y, int batch) {
  if ((act == TDM_ACT_NONE || act == TDM_ACT_RELU) && !lt_off()) {
    bool ran = false;
    TDM_TRY(lt_linear(dev, act, M, N, K, X, ldx, sX, W, ldw, sW, b, Y, batch, NULL, &ran));
    if (ran) return TDM_OK;
  }
  // two kernels: Y = X W^T, then Y = act(Y + b)
  TDM_TRY(tdm_cuda_gemm_batched(dev, TDM_NOTRANS, TDM_TRANS, M, N, K, 1.0f, X, ldx, sX, W, ldw, sW,
                                0.0f, Y, N, (long long)M * N, batch));
  return tdm_cuda_bias_act_forward(dev, act, Y, b, Y, batch, M, N);
}

// ---------------------------------------------------------------------------------------------
// linear layer backward through the ReLU below it (cuBLASLt DRELU_BGRAD epilogue)

// The ReLU-mask path is opt-in: TDM_LT_DRELU set to anything but "" or "0" turns it on (read
// once). Measured on an H200 (bench/RESULTS.md, session 5) it made a SAC update slower (202 vs
// 158 us: the masked matmuls launch extra kernels), so it stays off unless asked for.
static bool drelu_off(void) {
  static int off = -1;
  if (off < 0) {
    const char *e = getenv("TDM_LT_DRELU");
    off = e && *e && strcmp(e, "0") != 0 ? 0 : 1;
  }
  return off == 1 || lt_off();
}

extern "C" size_t tdm_cuda_relu_mask_bytes(int M, int N) {
  return (size_t)(mask_ld(N) * (int64_t)M / 8);  // a multiple of 16 bytes
}

extern "C" tdm_status tdm_cuda_linear_relu_forward_mask(tdm_dev *dev, int M, int N, int K,
                                                        const float *X, int ldx, long long sX,
                                                        const float *W, int ldw, long long sW,
                                                        const float *b, float *Y, int batch,
                                                        void *mask, bool *have_mask) {
  *have_mask = false;
  if (!drelu_off()) {
    bool ran = false;
    TDM_TRY(lt_linear(dev, TDM_ACT_RELU, M, N, K, X, ldx, sX, W, ldw, sW, b, Y, batch, mask, &ran));
    if (ran) {
      *have_mask = true;
      return TDM_OK;
    }
  }
  return tdm_cuda_linear_act_forward(dev, TDM_ACT_RELU, M, N, K, X, ldx, sX, W, ldw, sW, b, Y,
                                     batch);
}

// Column-major view: dX^T (N x M, ld ldx) = W (N x K, ld N) * dY^T (K x M, ld K), then the ReLU
// gradient from the mask (N x M bits, ld mask_ld(N)) and db (N) = sums along the M columns.
extern "C" tdm_status tdm_cuda_linear_drelu_bgrad(tdm_dev *dev, int M, int N, int K,
                                                  const float *dY, long long sY, const float *W,
                                                  long long sW, const void *mask, float *dX,
                                                  int ldx, long long sX, float *db, int batch,
                                                  bool *ran) {
  *ran = false;
  if (drelu_off()) return TDM_OK;
  const cublasComputeType_t ct = compute_of(dev);
  const uint32_t epi = (uint32_t)CUBLASLT_EPILOGUE_DRELU_BGRAD;
  const int32_t tN = CUBLAS_OP_N, nb = batch;
  const int64_t s_w = sW, s_y = sY, s_x = sX, s_b = N;
  const int64_t aux_ld = mask_ld(N), aux_s = mask_ld(N) * (int64_t)M;
  void *bias = db;
  const void *aux = mask;
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
  cublasStatus_t cs = CUBLAS_STATUS_SUCCESS;
  LT(cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tN, sizeof tN));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tN, sizeof tN));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                    sizeof aux));
  LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                    sizeof aux_ld));
  LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, (uint64_t)N, (uint64_t)K, N));
  LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, (uint64_t)K, (uint64_t)M, K));
  LT(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, (uint64_t)N, (uint64_t)M, ldx));
  if (batch > 1) {
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &s_b,
                                      sizeof s_b));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, &aux_s,
                                      sizeof aux_s));
    LT(lt_batch(la, nb, s_w));
    LT(lt_batch(lb, nb, s_y));
    LT(lt_batch(ld, nb, s_x));
  }
  lt_key key;
  memset(&key, 0, sizeof key);
  key.handle = dev->cublas;
  key.compute = (int)ct;
  key.epilogue = (int)epi;
  key.M = M, key.N = N, key.K = K, key.ldx = K, key.ldw = N, key.batch = batch;
  key.sX = batch > 1 ? sY : 0, key.sW = batch > 1 ? sW : 0;
  key.aX = align_bytes(dY, K, key.sX);
  key.aW = align_bytes(W, N, key.sW);
  key.aY = align_bytes(dX, ldx, batch > 1 ? s_x : 0);
  key.aB = align_bytes(db, 0, batch > 1 ? s_b : 0);
  key.aAux = align_bytes(mask, 0, 0);
  key.ldd = ldx, key.sD = batch > 1 ? sX : 0;
  key.workspace = dev->workspace_bytes;
  bool ok = false;
  cs = lt_run(dev, cs, &key, op, la, lb, ld, W, dY, dX, &ok, ran);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  if (cs != CUBLAS_STATUS_SUCCESS && ok)
    return tdm_seterr(TDM_ERR_CUDA, __FILE__, __LINE__,
                      "cublasLtMatmul (DRELU_BGRAD) failed: %s (%s)", cublasGetStatusString(cs),
                      cublasGetStatusName(cs));
  return *ran ? TDM_LAUNCH_CHECK("cublasLtMatmul DRELU_BGRAD") : TDM_OK;
}
