// Elementwise GPU ops: bias add and bias gradient, activations and their backward, fill, axpby,
// scale, clamp, mul, gather_rows, Polyak averaging, symlog / symexp and the two-hot encoding.
// Grid-stride loops with 64-bit indices; pointers that the contract lets alias are not restrict.
#include "act.cuh"
#include "adam.cuh"
#include "cuda_common.cuh"

#define EW_THREADS 256

// ---------------------------------------------------------------------------------------------
// bias

// Y (E, M, N) += b (E, N)
static __global__ void bias_add_kernel(float *Y, const float *b, size_t MN, int N, size_t total) {
  TDM_GRID_LOOP(i, total) {
    size_t e = i / MN;
    size_t col = i % (size_t)N;
    Y[i] += b[e * (size_t)N + col];
  }
}

extern "C" tdm_status tdm_cuda_bias_add(tdm_dev *dev, float *Y, const float *b, int E, int M,
                                        int N) {
  size_t MN = (size_t)M * (size_t)N, total = (size_t)E * MN;
  bias_add_kernel<<<tdm_grid_for(dev, total, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(
      Y, b, MN, N, total);
  return TDM_LAUNCH_CHECK("bias_add_kernel");
}

#define BG_COLS 32
#define BG_ROWS 16

// db (E, N) = beta * db + sum_m dY (E, M, N). Block (32, 16): threadIdx.x picks a column,
// threadIdx.y a strided subset of rows; the 16 partial sums are added in a fixed order.
static __global__ void bias_grad_kernel(float *db, const float *dY, int E, int M, int N,
                                        float beta) {
  __shared__ float sh[BG_ROWS][BG_COLS + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int col = blockIdx.x * BG_COLS + tx;
  for (int e = blockIdx.y; e < E; e += gridDim.y) {
    const float *base = dY + (size_t)e * (size_t)M * (size_t)N;
    float s = 0.0f;
    if (col < N)
      for (int m = ty; m < M; m += BG_ROWS) s += base[(size_t)m * (size_t)N + col];
    sh[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && col < N) {
      float t = 0.0f;
      for (int r = 0; r < BG_ROWS; r++) t += sh[r][tx];
      size_t o = (size_t)e * (size_t)N + col;
      db[o] = beta == 0.0f ? t : beta * db[o] + t;  // beta = 0 never reads db
    }
    __syncthreads();
  }
}

extern "C" tdm_status tdm_cuda_bias_grad(tdm_dev *dev, float *db, const float *dY, int E, int M,
                                         int N, float beta) {
  dim3 block(BG_COLS, BG_ROWS);
  dim3 grid((unsigned)((N + BG_COLS - 1) / BG_COLS), (unsigned)(E < 65535 ? E : 65535));
  bias_grad_kernel<<<grid, block, 0, tdm_stream_of(dev)>>>(db, dY, E, M, N, beta);
  return TDM_LAUNCH_CHECK("bias_grad_kernel");
}

// ---------------------------------------------------------------------------------------------
// activations

template <int ACT>
static __global__ void act_forward_kernel(const float *x, float *y, size_t n) {
  TDM_GRID_LOOP(i, n) y[i] = act_f<ACT>(x[i]);
}

template <int ACT>
static __global__ void act_backward_kernel(const float *x, const float *y, const float *dy,
                                           float *dx, size_t n) {
  TDM_GRID_LOOP(i, n) dx[i] = dy[i] * act_df<ACT>(x[i], y[i]);
}

template <int ACT>
static tdm_status act_forward_launch(tdm_dev *dev, const float *x, float *y, size_t n) {
  act_forward_kernel<ACT>
      <<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, n);
  return TDM_LAUNCH_CHECK("act_forward_kernel");
}

template <int ACT>
static tdm_status act_backward_launch(tdm_dev *dev, const float *x, const float *y, const float *dy,
                                      float *dx, size_t n) {
  act_backward_kernel<ACT>
      <<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, dy, dx, n);
  return TDM_LAUNCH_CHECK("act_backward_kernel");
}

extern "C" tdm_status tdm_cuda_act_forward(tdm_dev *dev, tdm_act act, const float *x, float *y,
                                           size_t n) {
  switch (act) {
    case TDM_ACT_NONE:
      return act_forward_launch<TDM_ACT_NONE>(dev, x, y, n);
    case TDM_ACT_RELU:
      return act_forward_launch<TDM_ACT_RELU>(dev, x, y, n);
    case TDM_ACT_TANH:
      return act_forward_launch<TDM_ACT_TANH>(dev, x, y, n);
    case TDM_ACT_SILU:
      return act_forward_launch<TDM_ACT_SILU>(dev, x, y, n);
    case TDM_ACT_MISH:
      return act_forward_launch<TDM_ACT_MISH>(dev, x, y, n);
    case TDM_ACT_ELU:
      return act_forward_launch<TDM_ACT_ELU>(dev, x, y, n);
  }
  return TDM_FAIL(TDM_ERR_ARG, "act_forward: unknown activation %d", (int)act);
}

extern "C" tdm_status tdm_cuda_act_backward(tdm_dev *dev, tdm_act act, const float *x,
                                            const float *y, const float *dy, float *dx, size_t n) {
  switch (act) {
    case TDM_ACT_NONE:
      return act_backward_launch<TDM_ACT_NONE>(dev, x, y, dy, dx, n);
    case TDM_ACT_RELU:
      return act_backward_launch<TDM_ACT_RELU>(dev, x, y, dy, dx, n);
    case TDM_ACT_TANH:
      return act_backward_launch<TDM_ACT_TANH>(dev, x, y, dy, dx, n);
    case TDM_ACT_SILU:
      return act_backward_launch<TDM_ACT_SILU>(dev, x, y, dy, dx, n);
    case TDM_ACT_MISH:
      return act_backward_launch<TDM_ACT_MISH>(dev, x, y, dy, dx, n);
    case TDM_ACT_ELU:
      return act_backward_launch<TDM_ACT_ELU>(dev, x, y, dy, dx, n);
  }
  return TDM_FAIL(TDM_ERR_ARG, "act_backward: unknown activation %d", (int)act);
}

// ---------------------------------------------------------------------------------------------
// fused bias + activation

// Z (E, M, N) += b (E, N); Y = act(Z). Y may alias Z: each element is read before it is written.
template <int ACT>
static __global__ void bias_act_forward_kernel(float *Z, const float *b, float *Y, size_t MN, int N,
                                               size_t total) {
  TDM_GRID_LOOP(i, total) {
    size_t e = i / MN;
    size_t col = i % (size_t)N;
    float z = Z[i] + b[e * (size_t)N + col];
    Z[i] = z;
    Y[i] = act_f<ACT>(z);
  }
}

template <int ACT>
static tdm_status bias_act_forward_launch(tdm_dev *dev, float *Z, const float *b, float *Y, int E,
                                          int M, int N) {
  size_t MN = (size_t)M * (size_t)N, total = (size_t)E * MN;
  bias_act_forward_kernel<ACT>
      <<<tdm_grid_for(dev, total, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(Z, b, Y, MN, N,
                                                                                    total);
  return TDM_LAUNCH_CHECK("bias_act_forward_kernel");
}

extern "C" tdm_status tdm_cuda_bias_act_forward(tdm_dev *dev, tdm_act act, float *Z, const float *b,
                                                float *Y, int E, int M, int N) {
  switch (act) {
    case TDM_ACT_NONE:
      return bias_act_forward_launch<TDM_ACT_NONE>(dev, Z, b, Y, E, M, N);
    case TDM_ACT_RELU:
      return bias_act_forward_launch<TDM_ACT_RELU>(dev, Z, b, Y, E, M, N);
    case TDM_ACT_TANH:
      return bias_act_forward_launch<TDM_ACT_TANH>(dev, Z, b, Y, E, M, N);
    case TDM_ACT_SILU:
      return bias_act_forward_launch<TDM_ACT_SILU>(dev, Z, b, Y, E, M, N);
    case TDM_ACT_MISH:
      return bias_act_forward_launch<TDM_ACT_MISH>(dev, Z, b, Y, E, M, N);
    case TDM_ACT_ELU:
      return bias_act_forward_launch<TDM_ACT_ELU>(dev, Z, b, Y, E, M, N);
  }
  return TDM_FAIL(TDM_ERR_ARG, "bias_act_forward: unknown activation %d", (int)act);
}

#define AB_COLS 32
#define AB_ROWS 32

// dZ (E, M, N) = dY act'(X); db (E, N) = beta db + sum_m dZ. Block (32, 32): threadIdx.x picks a
// column, threadIdx.y a strided subset of rows (the elementwise part and the partial sums in one
// pass); the 32 partial sums are then added in a fixed order. dZ may alias dY (each element is
// read before it is written, by the same thread). Blocks with blockIdx.x >= tiles1 instead sum
// dY2 (E, M, N2) into db2 (the optional second bias gradient), in the same order.
template <int ACT>
static __global__ void act_bias_backward_kernel(const float *X, const float *Y, const float *dY,
                                                float *dZ, float *db, int E, int M, int N,
                                                float beta, int tiles1, const float *dY2,
                                                float *db2, int N2) {
  __shared__ float sh[AB_ROWS][AB_COLS + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  const bool second = (int)blockIdx.x >= tiles1;  // uniform over the block
  if (second) {
    db = db2;
    N = N2;
  }
  int col = (second ? (int)blockIdx.x - tiles1 : (int)blockIdx.x) * AB_COLS + tx;
  for (int e = blockIdx.y; e < E; e += gridDim.y) {
    size_t base = (size_t)e * (size_t)M * (size_t)N;
    float s = 0.0f;
    if (col < N) {
      if (second) {
        for (int m = ty; m < M; m += AB_ROWS) s += dY2[base + (size_t)m * (size_t)N + col];
      } else {
        for (int m = ty; m < M; m += AB_ROWS) {
          size_t i = base + (size_t)m * (size_t)N + col;
          float d = dY[i] * act_df<ACT>(X[i], Y[i]);
          dZ[i] = d;
          s += d;
        }
      }
    }
    sh[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && col < N) {
      float t = 0.0f;
      for (int r = 0; r < AB_ROWS; r++) t += sh[r][tx];
      size_t o = (size_t)e * (size_t)N + col;
      db[o] = beta == 0.0f ? t : beta * db[o] + t;  // beta = 0 never reads db
    }
    __syncthreads();
  }
}

template <int ACT>
static tdm_status act_bias_backward_launch(tdm_dev *dev, const float *X, const float *Y,
                                           const float *dY, float *dZ, float *db, int E, int M,
                                           int N, float beta, const float *dY2 = NULL,
                                           float *db2 = NULL, int N2 = 0) {
  if (!db) return act_backward_launch<ACT>(dev, X, Y, dY, dZ, (size_t)E * M * N);
  const int tiles1 = (N + AB_COLS - 1) / AB_COLS, tiles2 = dY2 ? (N2 + AB_COLS - 1) / AB_COLS : 0;
  dim3 block(AB_COLS, AB_ROWS);
  dim3 grid((unsigned)(tiles1 + tiles2), (unsigned)(E < 65535 ? E : 65535));
  act_bias_backward_kernel<ACT><<<grid, block, 0, tdm_stream_of(dev)>>>(X, Y, dY, dZ, db, E, M, N,
                                                                        beta, tiles1, dY2, db2, N2);
  return TDM_LAUNCH_CHECK("act_bias_backward_kernel");
}

extern "C" tdm_status tdm_cuda_act_bias_backward(tdm_dev *dev, tdm_act act, const float *X,
                                                 const float *Y, const float *dY, float *dZ,
                                                 float *db, int E, int M, int N, float beta) {
  switch (act) {
    case TDM_ACT_NONE:
      return act_bias_backward_launch<TDM_ACT_NONE>(dev, X, Y, dY, dZ, db, E, M, N, beta);
    case TDM_ACT_RELU:
      return act_bias_backward_launch<TDM_ACT_RELU>(dev, X, Y, dY, dZ, db, E, M, N, beta);
    case TDM_ACT_TANH:
      return act_bias_backward_launch<TDM_ACT_TANH>(dev, X, Y, dY, dZ, db, E, M, N, beta);
    case TDM_ACT_SILU:
      return act_bias_backward_launch<TDM_ACT_SILU>(dev, X, Y, dY, dZ, db, E, M, N, beta);
    case TDM_ACT_MISH:
      return act_bias_backward_launch<TDM_ACT_MISH>(dev, X, Y, dY, dZ, db, E, M, N, beta);
    case TDM_ACT_ELU:
      return act_bias_backward_launch<TDM_ACT_ELU>(dev, X, Y, dY, dZ, db, E, M, N, beta);
  }
  return TDM_FAIL(TDM_ERR_ARG, "act_bias_backward: unknown activation %d", (int)act);
}

// dZ (M, E, N) = dY (E, M, N) act'(X): reads in (E, M, N) order, writes each row of N into its
// member's slot of the interleaved row
template <int ACT>
static __global__ void act_backward_interleave_kernel(const float *X, const float *Y,
                                                      const float *dY, float *dZ, int E, int M,
                                                      int N, size_t total) {
  TDM_GRID_LOOP(i, total) {
    size_t row = i / (size_t)N, col = i % (size_t)N;  // row = e M + m
    size_t e = row / (size_t)M, m = row % (size_t)M;
    dZ[(m * (size_t)E + e) * (size_t)N + col] = dY[i] * act_df<ACT>(X[i], Y[i]);
  }
}

extern "C" tdm_status tdm_cuda_act_backward_interleave(tdm_dev *dev, tdm_act act, const float *X,
                                                       const float *Y, const float *dY, float *dZ,
                                                       int E, int M, int N) {
  const size_t total = (size_t)E * M * N;
  const unsigned grid = tdm_grid_for(dev, total, EW_THREADS);
  cudaStream_t st = tdm_stream_of(dev);
#define ABI(A)                                                                                  \
  act_backward_interleave_kernel<A><<<grid, EW_THREADS, 0, st>>>(X, Y, dY, dZ, E, M, N, total); \
  return TDM_LAUNCH_CHECK("act_backward_interleave_kernel")
  switch (act) {
    case TDM_ACT_NONE:
      ABI(TDM_ACT_NONE);
    case TDM_ACT_RELU:
      ABI(TDM_ACT_RELU);
    case TDM_ACT_TANH:
      ABI(TDM_ACT_TANH);
    case TDM_ACT_SILU:
      ABI(TDM_ACT_SILU);
    case TDM_ACT_MISH:
      ABI(TDM_ACT_MISH);
    case TDM_ACT_ELU:
      ABI(TDM_ACT_ELU);
  }
#undef ABI
  return TDM_FAIL(TDM_ERR_ARG, "act_backward_interleave: unknown activation %d", (int)act);
}

extern "C" tdm_status tdm_cuda_act_bias_backward2(tdm_dev *dev, tdm_act act, const float *X,
                                                  const float *Y, const float *dY, float *dZ,
                                                  float *db, int E, int M, int N, float beta,
                                                  const float *dY2, float *db2, int N2) {
#define AB2(A) act_bias_backward_launch<A>(dev, X, Y, dY, dZ, db, E, M, N, beta, dY2, db2, N2)
  switch (act) {
    case TDM_ACT_NONE:
      return AB2(TDM_ACT_NONE);
    case TDM_ACT_RELU:
      return AB2(TDM_ACT_RELU);
    case TDM_ACT_TANH:
      return AB2(TDM_ACT_TANH);
    case TDM_ACT_SILU:
      return AB2(TDM_ACT_SILU);
    case TDM_ACT_MISH:
      return AB2(TDM_ACT_MISH);
    case TDM_ACT_ELU:
      return AB2(TDM_ACT_ELU);
  }
#undef AB2
  return TDM_FAIL(TDM_ERR_ARG, "act_bias_backward2: unknown activation %d", (int)act);
}

// ---------------------------------------------------------------------------------------------
// simple elementwise

static __global__ void fill_kernel(float *x, size_t n, float value) {
  TDM_GRID_LOOP(i, n) x[i] = value;
}

extern "C" tdm_status tdm_cuda_fill(tdm_dev *dev, float *x, size_t n, float value) {
  fill_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(x, n, value);
  return TDM_LAUNCH_CHECK("fill_kernel");
}

// y = a x + b y; b = 0 overwrites y without reading it (as BLAS)
static __global__ void axpby_kernel(size_t n, float a, const float *x, float b, float *y) {
  if (b == 0.0f) {
    TDM_GRID_LOOP(i, n) y[i] = a * x[i];
  } else {
    TDM_GRID_LOOP(i, n) y[i] = a * x[i] + b * y[i];
  }
}

extern "C" tdm_status tdm_cuda_axpby(tdm_dev *dev, size_t n, float a, const float *x, float b,
                                     float *y) {
  axpby_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(n, a, x, b,
                                                                                        y);
  return TDM_LAUNCH_CHECK("axpby_kernel");
}

static __global__ void scale_kernel(size_t n, float a, float *x) {
  TDM_GRID_LOOP(i, n) x[i] = a * x[i];
}

extern "C" tdm_status tdm_cuda_scale(tdm_dev *dev, size_t n, float a, float *x) {
  scale_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(n, a, x);
  return TDM_LAUNCH_CHECK("scale_kernel");
}

static __global__ void clamp_kernel(size_t n, float lo, float hi, float *x) {
  TDM_GRID_LOOP(i, n) x[i] = fminf(fmaxf(x[i], lo), hi);
}

extern "C" tdm_status tdm_cuda_clamp(tdm_dev *dev, size_t n, float lo, float hi, float *x) {
  clamp_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(n, lo, hi,
                                                                                        x);
  return TDM_LAUNCH_CHECK("clamp_kernel");
}

static __global__ void mul_kernel(size_t n, const float *x, const float *y, float *z) {
  TDM_GRID_LOOP(i, n) z[i] = x[i] * y[i];
}

extern "C" tdm_status tdm_cuda_mul(tdm_dev *dev, size_t n, const float *x, const float *y,
                                   float *z) {
  mul_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(n, x, y, z);
  return TDM_LAUNCH_CHECK("mul_kernel");
}

// dst (nidx, D) = src[idx[r], :]
static __global__ void gather_rows_kernel(const float *src, const int32_t *idx, float *dst,
                                          size_t total, int D) {
  TDM_GRID_LOOP(i, total) {
    size_t r = i / (size_t)D, d = i % (size_t)D;
    dst[i] = src[(size_t)idx[r] * (size_t)D + d];
  }
}

extern "C" tdm_status tdm_cuda_gather_rows(tdm_dev *dev, const float *src, const int32_t *idx,
                                           float *dst, size_t nidx, int D) {
  size_t total = nidx * (size_t)D;
  gather_rows_kernel<<<tdm_grid_for(dev, total, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(
      src, idx, dst, total, D);
  return TDM_LAUNCH_CHECK("gather_rows_kernel");
}

// target = (1 - tau) target + tau src
static __global__ void polyak_kernel(float *target, const float *src, size_t n, float tau) {
  TDM_GRID_LOOP(i, n) target[i] = polyak_elem(target[i], src[i], tau);
}

extern "C" tdm_status tdm_cuda_polyak(tdm_dev *dev, float *target, const float *src, size_t n,
                                      float tau) {
  polyak_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(
      target, src, n, tau);
  return TDM_LAUNCH_CHECK("polyak_kernel");
}

// ---------------------------------------------------------------------------------------------
// symlog / symexp / two-hot

static __device__ __forceinline__ float symlogf_(float x) {
  return copysignf(log1pf(fabsf(x)), x);
}
static __device__ __forceinline__ float symexpf_(float x) {
  return copysignf(expm1f(fabsf(x)), x);
}

static __global__ void symlog_kernel(const float *x, float *y, size_t n) {
  TDM_GRID_LOOP(i, n) y[i] = symlogf_(x[i]);
}

static __global__ void symexp_kernel(const float *x, float *y, size_t n) {
  TDM_GRID_LOOP(i, n) y[i] = symexpf_(x[i]);
}

extern "C" tdm_status tdm_cuda_symlog(tdm_dev *dev, const float *x, float *y, size_t n) {
  symlog_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, n);
  return TDM_LAUNCH_CHECK("symlog_kernel");
}

extern "C" tdm_status tdm_cuda_symexp(tdm_dev *dev, const float *x, float *y, size_t n) {
  symexp_kernel<<<tdm_grid_for(dev, n, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, n);
  return TDM_LAUNCH_CHECK("symexp_kernel");
}

// out (n, nbins): one thread per output element; each recomputes its row's bin position, so the
// writes are coalesced and every element (zeros included) is written.
static __global__ void twohot_encode_kernel(const float *x, float *out, size_t total, int nbins,
                                            float vmin, float vmax, float delta) {
  TDM_GRID_LOOP(i, total) {
    size_t r = i / (size_t)nbins;
    int j = (int)(i % (size_t)nbins);
    float s = fminf(fmaxf(symlogf_(x[r]), vmin), vmax);
    float pos = (s - vmin) / delta;  // in [0, nbins - 1]
    int lo = (int)floorf(pos);
    if (lo < 0) lo = 0;
    float v;
    if (lo >= nbins - 1) {
      v = j == nbins - 1 ? 1.0f : 0.0f;  // at (or rounded past) vmax
    } else {
      float w = pos - (float)lo;  // weight of bin lo + 1
      v = j == lo ? 1.0f - w : (j == lo + 1 ? w : 0.0f);
    }
    out[i] = v;
  }
}

extern "C" tdm_status tdm_cuda_twohot_encode(tdm_dev *dev, const float *x, float *out, size_t n,
                                             int nbins, float vmin, float vmax) {
  size_t total = n * (size_t)nbins;
  float delta = (vmax - vmin) / (float)(nbins - 1);
  twohot_encode_kernel<<<tdm_grid_for(dev, total, EW_THREADS), EW_THREADS, 0, tdm_stream_of(dev)>>>(
      x, out, total, nbins, vmin, vmax, delta);
  return TDM_LAUNCH_CHECK("twohot_encode_kernel");
}
