// Row-wise GPU ops: LayerNorm forward / backward, SimNorm, softmax and log-softmax (+ backward),
// two-hot decoding, row and whole-array reductions. One warp per row for row ops; reductions are
// warp butterflies and fixed-order shared-memory trees (no atomics), so results repeat bit for
// bit. Parameter gradients over rows (dgamma, dbeta) use a column-parallel kernel.
#include "cuda_common.cuh"

#define ROW_THREADS 256
#define ROW_WARPS (ROW_THREADS / 32)

// Blocks for a warp-per-row kernel over `rows` rows.
static unsigned row_grid(const tdm_dev *dev, size_t rows) {
  return tdm_grid_for(dev, rows * 32, ROW_THREADS);
}

// Loop over rows, one warp each: `row` is this warp's current row, `lane` its lane.
#define TDM_ROW_LOOP(row, rows)                                                        \
  for (size_t row = (size_t)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5); row < (rows); \
       row += (size_t)gridDim.x * ROW_WARPS)

// ---------------------------------------------------------------------------------------------
// LayerNorm

// x, y (E*R, D); gamma, beta (E, D); mean, rstd (E*R) or NULL
static __global__ void layernorm_forward_kernel(const float *x, const float *gamma,
                                                const float *beta, float *y, float *mean,
                                                float *rstd, size_t rows, int R, int D, float eps) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    const float *xr = x + row * (size_t)D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += xr[d];
    float mu = tdm_warp_sum(s) / (float)D;
    float q = 0.0f;
    for (int d = lane; d < D; d += 32) {
      float c = xr[d] - mu;
      q += c * c;
    }
    float var = tdm_warp_sum(q) / (float)D;
    float rs = 1.0f / sqrtf(var + eps);
    size_t e = row / (size_t)R;
    const float *g = gamma + e * (size_t)D, *b = beta + e * (size_t)D;
    float *yr = y + row * (size_t)D;
    for (int d = lane; d < D; d += 32) yr[d] = (xr[d] - mu) * rs * g[d] + b[d];
    if (lane == 0) {
      if (mean) mean[row] = mu;
      if (rstd) rstd[row] = rs;
    }
  }
}

extern "C" tdm_status tdm_cuda_layernorm_forward(tdm_dev *dev, const float *x, const float *gamma,
                                                 const float *beta, float *y, float *mean,
                                                 float *rstd, int E, int R, int D, float eps) {
  size_t rows = (size_t)E * (size_t)R;
  layernorm_forward_kernel<<<row_grid(dev, rows), ROW_THREADS, 0, tdm_stream_of(dev)>>>(
      x, gamma, beta, y, mean, rstd, rows, R, D, eps);
  return TDM_LAUNCH_CHECK("layernorm_forward_kernel");
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma, per row
static __global__ void layernorm_backward_dx_kernel(const float *x, const float *gamma,
                                                    const float *mean, const float *rstd,
                                                    const float *dy, float *dx, size_t rows, int R,
                                                    int D) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    const float *xr = x + row * (size_t)D, *dyr = dy + row * (size_t)D;
    const float *g = gamma + (row / (size_t)R) * (size_t)D;
    float mu = mean[row], rs = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int d = lane; d < D; d += 32) {
      float gd = dyr[d] * g[d];
      sg += gd;
      sgx += gd * ((xr[d] - mu) * rs);
    }
    sg = tdm_warp_sum(sg) / (float)D;
    sgx = tdm_warp_sum(sgx) / (float)D;
    float *dxr = dx + row * (size_t)D;
    for (int d = lane; d < D; d += 32) {
      float xhat = (xr[d] - mu) * rs;
      dxr[d] = rs * (dyr[d] * g[d] - sg - xhat * sgx);
    }
  }
}

#define CP_COLS 32
#define CP_ROWS 16

// dgamma (E, D) = beta_acc * dgamma + sum_r dy * xhat; dbeta = beta_acc * dbeta + sum_r dy.
// Block (32, 16): threadIdx.x a column, threadIdx.y a strided subset of the R rows; the partial
// sums are added in a fixed order.
static __global__ void layernorm_backward_params_kernel(const float *x, const float *mean,
                                                        const float *rstd, const float *dy,
                                                        float *dgamma, float *dbeta, int E, int R,
                                                        int D, float beta_acc) {
  __shared__ float shg[CP_ROWS][CP_COLS + 1], shb[CP_ROWS][CP_COLS + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int col = blockIdx.x * CP_COLS + tx;
  for (int e = blockIdx.y; e < E; e += gridDim.y) {
    float sg = 0.0f, sb = 0.0f;
    if (col < D) {
      for (int r = ty; r < R; r += CP_ROWS) {
        size_t row = (size_t)e * (size_t)R + (size_t)r;
        size_t o = row * (size_t)D + (size_t)col;
        float xhat = (x[o] - mean[row]) * rstd[row];
        sg += dy[o] * xhat;
        sb += dy[o];
      }
    }
    shg[ty][tx] = sg;
    shb[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && col < D) {
      float tg = 0.0f, tb = 0.0f;
      for (int k = 0; k < CP_ROWS; k++) {
        tg += shg[k][tx];
        tb += shb[k][tx];
      }
      size_t o = (size_t)e * (size_t)D + (size_t)col;
      // beta_acc = 0 overwrites without reading the old values
      dgamma[o] = beta_acc == 0.0f ? tg : beta_acc * dgamma[o] + tg;
      dbeta[o] = beta_acc == 0.0f ? tb : beta_acc * dbeta[o] + tb;
    }
    __syncthreads();
  }
}

extern "C" tdm_status tdm_cuda_layernorm_backward(tdm_dev *dev, const float *x, const float *gamma,
                                                  const float *mean, const float *rstd,
                                                  const float *dy, float *dx, float *dgamma,
                                                  float *dbeta, int E, int R, int D,
                                                  float beta_acc) {
  size_t rows = (size_t)E * (size_t)R;
  cudaStream_t st = tdm_stream_of(dev);
  layernorm_backward_dx_kernel<<<row_grid(dev, rows), ROW_THREADS, 0, st>>>(x, gamma, mean, rstd,
                                                                            dy, dx, rows, R, D);
  TDM_TRY(TDM_LAUNCH_CHECK("layernorm_backward_dx_kernel"));
  dim3 block(CP_COLS, CP_ROWS);
  dim3 grid((unsigned)((D + CP_COLS - 1) / CP_COLS), (unsigned)(E < 65535 ? E : 65535));
  layernorm_backward_params_kernel<<<grid, block, 0, st>>>(x, mean, rstd, dy, dgamma, dbeta, E, R,
                                                           D, beta_acc);
  return TDM_LAUNCH_CHECK("layernorm_backward_params_kernel");
}

// ---------------------------------------------------------------------------------------------
// SimNorm: softmax over contiguous groups of V; one thread per group

static __global__ void simnorm_forward_kernel(const float *x, float *y, size_t groups, int V) {
  TDM_GRID_LOOP(gi, groups) {
    const float *xg = x + gi * (size_t)V;
    float *yg = y + gi * (size_t)V;
    float m = -INFINITY;
    for (int k = 0; k < V; k++) m = fmaxf(m, xg[k]);
    float s = 0.0f;
    for (int k = 0; k < V; k++) s += expf(xg[k] - m);
    for (int k = 0; k < V; k++) yg[k] = expf(xg[k] - m) / s;
  }
}

static __global__ void simnorm_backward_kernel(const float *y, const float *dy, float *dx,
                                               size_t groups, int V) {
  TDM_GRID_LOOP(gi, groups) {
    size_t o = gi * (size_t)V;
    float dot = 0.0f;
    for (int k = 0; k < V; k++) dot += dy[o + k] * y[o + k];
    for (int k = 0; k < V; k++) dx[o + k] = y[o + k] * (dy[o + k] - dot);
  }
}

extern "C" tdm_status tdm_cuda_simnorm_forward(tdm_dev *dev, const float *x, float *y, size_t rows,
                                               int D, int V) {
  size_t groups = rows * (size_t)(D / V);
  simnorm_forward_kernel<<<tdm_grid_for(dev, groups, ROW_THREADS), ROW_THREADS, 0,
                           tdm_stream_of(dev)>>>(x, y, groups, V);
  return TDM_LAUNCH_CHECK("simnorm_forward_kernel");
}

extern "C" tdm_status tdm_cuda_simnorm_backward(tdm_dev *dev, const float *y, const float *dy,
                                                float *dx, size_t rows, int D, int V) {
  size_t groups = rows * (size_t)(D / V);
  simnorm_backward_kernel<<<tdm_grid_for(dev, groups, ROW_THREADS), ROW_THREADS, 0,
                            tdm_stream_of(dev)>>>(y, dy, dx, groups, V);
  return TDM_LAUNCH_CHECK("simnorm_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// softmax, log-softmax

// LOG = 0: y = exp(x - max) / sum; LOG = 1: y = x - max - log(sum)
template <int LOG>
static __global__ void softmax_kernel(const float *x, float *y, size_t rows, int D) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    const float *xr = x + row * (size_t)D;
    float *yr = y + row * (size_t)D;
    float m = -INFINITY;
    for (int d = lane; d < D; d += 32) m = fmaxf(m, xr[d]);
    m = tdm_warp_max(m);
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += expf(xr[d] - m);
    s = tdm_warp_sum(s);
    if (LOG) {
      float ls = logf(s);
      for (int d = lane; d < D; d += 32) yr[d] = xr[d] - m - ls;
    } else {
      for (int d = lane; d < D; d += 32) yr[d] = expf(xr[d] - m) / s;
    }
  }
}

extern "C" tdm_status tdm_cuda_softmax(tdm_dev *dev, const float *x, float *y, size_t rows, int D) {
  softmax_kernel<0><<<row_grid(dev, rows), ROW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, rows, D);
  return TDM_LAUNCH_CHECK("softmax_kernel");
}

extern "C" tdm_status tdm_cuda_log_softmax(tdm_dev *dev, const float *x, float *y, size_t rows,
                                           int D) {
  softmax_kernel<1><<<row_grid(dev, rows), ROW_THREADS, 0, tdm_stream_of(dev)>>>(x, y, rows, D);
  return TDM_LAUNCH_CHECK("log_softmax_kernel");
}

// dx = dy - exp(y) * sum(dy)
static __global__ void log_softmax_backward_kernel(const float *y, const float *dy, float *dx,
                                                   size_t rows, int D) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    size_t o = row * (size_t)D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += dy[o + d];
    s = tdm_warp_sum(s);
    for (int d = lane; d < D; d += 32) dx[o + d] = dy[o + d] - expf(y[o + d]) * s;
  }
}

extern "C" tdm_status tdm_cuda_log_softmax_backward(tdm_dev *dev, const float *y, const float *dy,
                                                    float *dx, size_t rows, int D) {
  log_softmax_backward_kernel<<<row_grid(dev, rows), ROW_THREADS, 0, tdm_stream_of(dev)>>>(
      y, dy, dx, rows, D);
  return TDM_LAUNCH_CHECK("log_softmax_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// two-hot decode: out = symexp(sum_j softmax(logits)_j * bin_j), bin_j = vmin + j * delta

static __global__ void twohot_decode_kernel(const float *logits, float *out, size_t rows, int nbins,
                                            float vmin, float delta) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    const float *lr = logits + row * (size_t)nbins;
    float m = -INFINITY;
    for (int j = lane; j < nbins; j += 32) m = fmaxf(m, lr[j]);
    m = tdm_warp_max(m);
    // double sums: the weighted mean of bins of both signs cancels, and symexp amplifies
    double s = 0.0, a = 0.0;
    for (int j = lane; j < nbins; j += 32) {
      double p = (double)expf(lr[j] - m);
      s += p;
      a += p * (double)(vmin + (float)j * delta);
    }
    s = tdm_warp_sum_d(s);
    a = tdm_warp_sum_d(a);
    float v = (float)(a / s);
    if (lane == 0) out[row] = copysignf(expm1f(fabsf(v)), v);
  }
}

extern "C" tdm_status tdm_cuda_twohot_decode(tdm_dev *dev, const float *logits, float *out,
                                             size_t n, int nbins, float vmin, float vmax) {
  float delta = (vmax - vmin) / (float)(nbins - 1);
  twohot_decode_kernel<<<row_grid(dev, n), ROW_THREADS, 0, tdm_stream_of(dev)>>>(
      logits, out, n, nbins, vmin, delta);
  return TDM_LAUNCH_CHECK("twohot_decode_kernel");
}

// ---------------------------------------------------------------------------------------------
// reductions

static __global__ void reduce_rows_kernel(int op, const float *x, float *out, size_t rows, int D) {
  int lane = threadIdx.x & 31;
  TDM_ROW_LOOP(row, rows) {
    const float *xr = x + row * (size_t)D;
    float r;
    if (op == TDM_REDUCE_MAX) {
      float m = -INFINITY;
      for (int d = lane; d < D; d += 32) m = fmaxf(m, xr[d]);
      r = tdm_warp_max(m);
    } else {
      float s = 0.0f;
      for (int d = lane; d < D; d += 32) s += xr[d];
      r = tdm_warp_sum(s);
      if (op == TDM_REDUCE_MEAN) r /= (float)D;
    }
    if (lane == 0) out[row] = r;
  }
}

extern "C" tdm_status tdm_cuda_reduce_rows(tdm_dev *dev, tdm_reduce op, const float *x, float *out,
                                           size_t rows, int D) {
  reduce_rows_kernel<<<row_grid(dev, rows), ROW_THREADS, 0, tdm_stream_of(dev)>>>((int)op, x, out,
                                                                                  rows, D);
  return TDM_LAUNCH_CHECK("reduce_rows_kernel");
}

#define ALL_THREADS 1024

// One block: thread t takes elements t, t + 1024, ... (coalesced), then a fixed block tree.
// Sums accumulate in double. One block keeps it graph-safe without scratch memory.
static __global__ void __launch_bounds__(ALL_THREADS)
    reduce_all_kernel(int op, const float *x, float *out, size_t n) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  if (op == TDM_REDUCE_MAX) {
    float m = -INFINITY;
    for (size_t i = threadIdx.x; i < n; i += ALL_THREADS) m = fmaxf(m, x[i]);
    m = tdm_block_max(m, shf);
    if (threadIdx.x == 0) out[0] = m;
  } else {
    double s = 0.0;
    for (size_t i = threadIdx.x; i < n; i += ALL_THREADS) s += (double)x[i];
    s = tdm_block_sum_d(s, shd);
    if (threadIdx.x == 0) out[0] = op == TDM_REDUCE_MEAN ? (float)(s / (double)n) : (float)s;
  }
}

extern "C" tdm_status tdm_cuda_reduce_all(tdm_dev *dev, tdm_reduce op, const float *x, float *out,
                                          size_t n) {
  reduce_all_kernel<<<1, ALL_THREADS, 0, tdm_stream_of(dev)>>>((int)op, x, out, n);
  return TDM_LAUNCH_CHECK("reduce_all_kernel");
}
