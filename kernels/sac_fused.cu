// The fused SAC update: one persistent cooperative kernel per update (src/agents/sac_fused.h has
// the phases and the contract). Work inside a phase is a list of tasks shared out over the blocks
// (task t runs on block t mod grid): GEMM tiles, row tasks (one warp per batch row) and
// elementwise items (grid-stride over all threads). Phases are separated by grid.sync().
//
// GEMM tiles are FZ_BM x FZ_BN outputs of C = A B per member, FZ_THREADS threads each computing
// 4 x 4 outputs from shared-memory slices of FZ_BK; A is read row-major (A[m lda + k]) or
// transposed (A[k lda + m]), B likewise; one fixed summation order per output: deterministic.
#include <cooperative_groups.h>

#include "../src/agents/sac_fused.h"
#include "tandem/agent.h"
#include "act.cuh"
#include "cuda_common.cuh"
#include "philox.cuh"
#include "replay_dev.cuh"
#include "sac_math.cuh"

namespace cg = cooperative_groups;

#define FZ_THREADS 128
#define FZ_WARPS (FZ_THREADS / 32)
#define FZ_BM 32
#define FZ_BN 64
#define FZ_BK 32
#define FZ_CHUNK 8  // outputs per pass in row dot products

enum { FZ_EPI_FWD = 0, FZ_EPI_DX, FZ_EPI_DW };

// One batched GEMM of a phase: C_e (M, N) = A_e (M, K) B_e (K, N) for e < E, with an epilogue.
struct fz_gemm {
  int M, N, K, E;
  const float *A, *A2;  // A2: rows m >= msplit come from A2 (row-major A only)
  int msplit, lda, ta;  // ta: 0 A(m, k) = A[m lda + k], 1 A(m, k) = A[k lda + m]
  long long sA;         // member stride of A
  const float *Bm;
  int ldb, tb;  // tb: 0 B(k, n) = B[k ldb + n], 1 B(k, n) = B[n ldb + k]
  long long sB;
  int epi;
  // FWD: z = acc + bias, h = act(z) (bias member stride N; z, h member stride M N)
  // DX: out = acc * act'(zin, hin)
  // DW: g = acc, Adam on p (with Polyak into ema) when adam
  const float *bias, *zin, *hin;
  float *z, *h, *out;
  float *p, *m, *v, *ema;
  int adam, critic;  // critic: the critic's Adam bias corrections (else the actor's)
  // DW: bias gradient sum_k A(m, k) (the column sums of dz) into bg (member stride M) with Adam
  // on bp (+ Polyak into bema), by the tiles of column block 0; NULL: none
  float *bg, *bp, *bm, *bv, *bema;
};

// Per-block copies of the values the update reads before anything changes them.
struct fz_ctx {
  tdm_rng_ctr rng;  // the update counter as this update found it
  int32_t size;     // replay size
  float alpha;      // exp(log_alpha) before this update's temperature step
  float bc1c, bc2c, bc1a, bc2a;  // Adam bias corrections, critic and actor
};

struct fz_smem {
  union {
    struct {
      float As[FZ_BK][FZ_BM + 4];
      float Bs[FZ_BK][FZ_BN + 4];
    } g;
    struct {
      float v[FZ_WARPS][4 * TDM_SAC_FUSED_MAX_ACT];  // per warp: head / dL/da, dhead
    } r;
  };
  double red[32];
};

static __device__ __forceinline__ int fz_tiles(const fz_gemm &g) {
  return g.E * ((g.M + FZ_BM - 1) / FZ_BM) * ((g.N + FZ_BN - 1) / FZ_BN);
}

// Adam (+ Polyak) on element i, the arithmetic of adam_groups_kernel (kernels/ops_adam.cu).
static __device__ __forceinline__ void fz_adam(const tdm_sacf_args &a, float *p, float *m,
                                               float *v, float *ema, size_t i, float gi, float bc1,
                                               float bc2) {
  const float ob1 = 1.0f - a.b1, ob2 = 1.0f - a.b2;
  float mi = a.b1 * m[i] + ob1 * gi;
  float vi = a.b2 * v[i] + ob2 * gi * gi;
  m[i] = mi;
  v[i] = vi;
  float pi = p[i];
  float pn = pi - (a.lr * ((mi / bc1) / (sqrtf(vi / bc2) + a.eps)) + a.lr * a.wd * pi);
  p[i] = pn;
  if (ema) ema[i] = (1.0f - a.tau) * ema[i] + a.tau * pn;
}

static __device__ __forceinline__ float fz_load_a(const fz_gemm &g, const float *A, int m, int k) {
  if (m >= g.M || k >= g.K) return 0.0f;
  if (g.ta) return A[(size_t)k * g.lda + m];
  if (g.A2 && m >= g.msplit) return g.A2[(size_t)(m - g.msplit) * g.lda + k];
  return A[(size_t)m * g.lda + k];
}

static __device__ __forceinline__ float fz_load_b(const fz_gemm &g, const float *Bm, int k, int n) {
  if (k >= g.K || n >= g.N) return 0.0f;
  return g.tb ? Bm[(size_t)n * g.ldb + k] : Bm[(size_t)k * g.ldb + n];
}

// Tile t of job g (all threads of the block).
static __device__ __noinline__ void fz_tile(const tdm_sacf_args &a, const fz_ctx &c,
                                            const fz_gemm &gj, int t, fz_smem &sm) {
  const fz_gemm g = gj;  // into registers: the loops below read its fields
  const int tm = (g.M + FZ_BM - 1) / FZ_BM, tn = (g.N + FZ_BN - 1) / FZ_BN;
  const int e = t / (tm * tn), r = t % (tm * tn);
  const int m0 = (r / tn) * FZ_BM, n0 = (r % tn) * FZ_BN;
  const float *A = g.A + e * g.sA, *Bm = g.Bm + e * g.sB;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
  constexpr int NA = FZ_BM * FZ_BK / FZ_THREADS, NB = FZ_BK * FZ_BN / FZ_THREADS;
  float ra[NA], rb[NB];
  // bias gradient: the threads of column group 0 sum their four rows of each A slice
  const bool bsum = g.epi == FZ_EPI_DW && g.bg && n0 == 0 && tx == 0;
  float bacc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  // element q of the thread's share of an A slice (BM x BK) / B slice (BK x BN)
#define FZ_A_MK(q, mm, kk)                    \
  int idx_ = tid + (q) * FZ_THREADS;          \
  int mm = g.ta ? idx_ % FZ_BM : idx_ / FZ_BK; \
  int kk = g.ta ? idx_ / FZ_BM : idx_ % FZ_BK
#define FZ_B_KN(q, kk, nn)                    \
  int idx_ = tid + (q) * FZ_THREADS;          \
  int kk = g.tb ? idx_ % FZ_BK : idx_ / FZ_BN; \
  int nn = g.tb ? idx_ / FZ_BK : idx_ % FZ_BN
  auto load = [&](int k0) {
#pragma unroll
    for (int q = 0; q < NA; q++) {
      FZ_A_MK(q, mm, kk);
      ra[q] = fz_load_a(g, A, m0 + mm, k0 + kk);
    }
#pragma unroll
    for (int q = 0; q < NB; q++) {
      FZ_B_KN(q, kk, nn);
      rb[q] = fz_load_b(g, Bm, k0 + kk, n0 + nn);
    }
  };
  load(0);
  for (int k0 = 0; k0 < g.K; k0 += FZ_BK) {
    __syncthreads();  // the previous slice is consumed (and the previous task's smem)
#pragma unroll
    for (int q = 0; q < NA; q++) {
      FZ_A_MK(q, mm, kk);
      sm.g.As[kk][mm] = ra[q];
    }
#pragma unroll
    for (int q = 0; q < NB; q++) {
      FZ_B_KN(q, kk, nn);
      sm.g.Bs[kk][nn] = rb[q];
    }
    __syncthreads();
    if (k0 + FZ_BK < g.K) load(k0 + FZ_BK);
#pragma unroll
    for (int kk = 0; kk < FZ_BK; kk++) {
      float4 av = *reinterpret_cast<const float4 *>(&sm.g.As[kk][ty * 4]);
      float4 bv = *reinterpret_cast<const float4 *>(&sm.g.Bs[kk][tx * 4]);
      float ax[4] = {av.x, av.y, av.z, av.w}, bx[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ax[i], bx[j], acc[i][j]);
      if (bsum)
#pragma unroll
        for (int i = 0; i < 4; i++) bacc[i] += ax[i];
    }
  }
  if (bsum) {
    const float bc1 = g.critic ? c.bc1c : c.bc1a, bc2 = g.critic ? c.bc2c : c.bc2a;
    for (int i = 0; i < 4; i++) {
      int m = m0 + ty * 4 + i;
      if (m >= g.M) break;
      size_t o = (size_t)e * g.M + m;
      g.bg[o] = bacc[i];
      fz_adam(a, g.bp, g.bm, g.bv, g.bema, o, bacc[i], bc1, bc2);
    }
  }
#undef FZ_A_MK
#undef FZ_B_KN
  const size_t base = (size_t)e * g.M * g.N;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int m = m0 + ty * 4 + i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      int n = n0 + tx * 4 + j;
      if (n >= g.N) continue;
      size_t o = base + (size_t)m * g.N + n;
      float s = acc[i][j];
      if (g.epi == FZ_EPI_FWD) {
        float zz = s + g.bias[(size_t)e * g.N + n];
        g.z[o] = zz;
        g.h[o] = act_f_rt(a.act, zz);
      } else if (g.epi == FZ_EPI_DX) {
        g.out[o] = s * act_df_rt(a.act, g.zin[o], g.hin[o]);
      } else {
        g.out[o] = s;
        if (g.adam)
          fz_adam(a, g.p, g.m, g.v, g.ema, o, s, g.critic ? c.bc1c : c.bc1a,
                  g.critic ? c.bc2c : c.bc2a);
      }
    }
  }
}

// Run the phase's GEMM tiles and nrow row tasks (row(t) for t < nrow, all threads of the block)
// over the blocks; every thread then runs elem(i, stride) over the grid's threads.
template <typename RowF, typename ElemF>
static __device__ void fz_phase(const tdm_sacf_args &a, const fz_ctx &c, const fz_gemm *jobs,
                                int nj, int nrow, fz_smem &sm, RowF row, ElemF elem) {
  __syncthreads();  // jobs (shared memory) written by thread 0
  int tiles[4], total = 0;
  for (int j = 0; j < nj; j++) total += (tiles[j] = fz_tiles(jobs[j]));
  for (int t = blockIdx.x; t < total + nrow; t += gridDim.x) {
    if (t < total) {
      int j = 0, u = t;
      while (u >= tiles[j]) u -= tiles[j++];
      fz_tile(a, c, jobs[j], u, sm);
    } else {
      __syncthreads();  // smem of the previous task
      row(t - total);
    }
  }
  elem((size_t)blockIdx.x * blockDim.x + threadIdx.x, (size_t)gridDim.x * blockDim.x);
}

// ---------------------------------------------------------------------------------------------
// job builders

// Forward of hidden layer l of net n over X (M rows per member; member stride sX of X).
static __device__ fz_gemm fz_fwd(const tdm_sacf_net &n, const float *P, int l, int E, int M,
                                 const float *X, const float *X2, int msplit, long long sX,
                                 float *z, float *h) {
  fz_gemm g = {};
  g.M = M, g.N = n.out[l], g.K = n.in[l], g.E = E;
  g.A = X, g.A2 = X2, g.msplit = msplit, g.lda = n.in[l], g.ta = 0, g.sA = sX;
  g.Bm = P + n.w[l], g.ldb = n.in[l], g.tb = 1, g.sB = (long long)n.out[l] * n.in[l];
  g.epi = FZ_EPI_FWD, g.bias = P + n.b[l], g.z = z, g.h = h;
  return g;
}

// dz of layer l - 1 from dz of layer l (M rows per member): (dz_l W_l) * act'(z_{l-1}).
static __device__ fz_gemm fz_dx(const tdm_sacf_net &n, int l, int E, int M, const float *dz,
                                const float *zin, const float *hin, float *out) {
  fz_gemm g = {};
  g.M = M, g.N = n.in[l], g.K = n.out[l], g.E = E;
  g.A = dz, g.lda = n.out[l], g.ta = 0, g.sA = (long long)M * n.out[l];
  g.Bm = n.p + n.w[l], g.ldb = n.in[l], g.tb = 0, g.sB = (long long)n.out[l] * n.in[l];
  g.epi = FZ_EPI_DX, g.zin = zin, g.hin = hin, g.out = out;
  return g;
}

// Weight gradient of layer l: dz_l^T X_l over K rows (member stride sX of X), Adam on W when adam;
// the bias gradient (column sums of dz_l) with its Adam always (nothing reads b_l in the phase).
static __device__ fz_gemm fz_dw(const tdm_sacf_net &n, int l, int E, int K, const float *dz,
                                const float *X, long long sX, int adam, float *ema, float *bema,
                                int critic) {
  fz_gemm g = {};
  g.M = n.out[l], g.N = n.in[l], g.K = K, g.E = E;
  g.A = dz, g.lda = n.out[l], g.ta = 1, g.sA = (long long)K * n.out[l];
  g.Bm = X, g.ldb = n.in[l], g.tb = 0, g.sB = sX;
  g.epi = FZ_EPI_DW, g.out = n.g + n.w[l];
  g.p = n.p + n.w[l], g.m = n.m + n.w[l], g.v = n.v + n.w[l], g.ema = ema, g.adam = adam;
  g.critic = critic;
  g.bg = n.g + n.b[l], g.bp = n.p + n.b[l], g.bm = n.m + n.b[l], g.bv = n.v + n.b[l];
  g.bema = bema;
  return g;
}

// ---------------------------------------------------------------------------------------------
// row helpers (one warp)

// out[k] = dot(x, W[k, :]) + b[k] for k < nk into shared memory (lane 0 writes), x of length n.
static __device__ __forceinline__ void fz_row_dots(const float *x, const float *W, const float *b,
                                                   int n, int nk, float *out) {
  const int lane = threadIdx.x & 31;
  for (int k0 = 0; k0 < nk; k0 += FZ_CHUNK) {
    float s[FZ_CHUNK];
#pragma unroll
    for (int q = 0; q < FZ_CHUNK; q++) s[q] = 0.0f;
#pragma unroll 4
    for (int i = lane; i < n; i += 32) {
      float xi = x[i];
#pragma unroll
      for (int q = 0; q < FZ_CHUNK; q++)
        if (k0 + q < nk) s[q] = fmaf(xi, W[(size_t)(k0 + q) * n + i], s[q]);
    }
#pragma unroll
    for (int q = 0; q < FZ_CHUNK; q++) {
      float v = tdm_warp_sum(s[q]);
      if (lane == 0 && k0 + q < nk) out[k0 + q] = v + (b ? b[k0 + q] : 0.0f);
    }
  }
  __syncwarp();
}

// Deterministic block sum of part[0 .. n) (all threads; result in every thread).
static __device__ double fz_block_sum(const double *part, int n, fz_smem &sm) {
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  __syncthreads();
  return tdm_block_sum_d(s, sm.red);
}

// ---------------------------------------------------------------------------------------------
// backward of one network: the phase of hidden layer l (dz_l known, dz buffers by parity)

struct fz_bwd {
  const tdm_sacf_net *n;
  int E, M;                 // members, rows
  float *const *dz;         // dz[l & 1]: (E, M, out_l)
  float *const *z, *const *h;  // hidden activations of the forward (member stride M... see ld)
  long long szh;            // member stride of z / h (rows x width)
  const float *X0;          // layer 0's input (M rows), member stride sX0
  long long sX0;
  const float *dlast;       // (E, M, out_{L-1}) gradient of the head's output
  float *ema;               // Polyak target (critic) or NULL
  bool critic;
};

// GEMM jobs of the phase of layer l into jobs when write (dz of layer l - 1, the weight and bias
// gradients of layer l, with Adam on W when l = 0, and of the head when l = L - 2); returns their
// count either way.
static __device__ int fz_bwd_jobs(const tdm_sacf_args &a, const fz_bwd &w, int l, fz_gemm *jobs,
                                  bool write) {
  if (!write) return (l >= 1) + 1 + (l == a.L - 2);
  const tdm_sacf_net &n = *w.n;
  int nj = 0;
  if (l >= 1) jobs[nj++] = fz_dx(n, l, w.E, w.M, w.dz[l & 1], w.z[l - 1], w.h[l - 1],
                                 w.dz[(l - 1) & 1]);
  const float *X = l == 0 ? w.X0 : w.h[l - 1];
  long long sX = l == 0 ? w.sX0 : w.szh;
  float *ew = w.ema ? w.ema + n.w[l] : NULL, *eb = w.ema ? w.ema + n.b[l] : NULL;
  jobs[nj++] = fz_dw(n, l, w.E, w.M, w.dz[l & 1], X, sX, l == 0, ew, eb, w.critic);
  if (l == a.L - 2) {
    const int h = a.L - 1;
    ew = w.ema ? w.ema + n.w[h] : NULL, eb = w.ema ? w.ema + n.b[h] : NULL;
    jobs[nj++] = fz_dw(n, h, w.E, w.M, w.dlast, w.h[l], w.szh, 1, ew, eb, w.critic);
  }
  return nj;
}

// Elementwise work of the phase of layer l: Adam on W_{l+1} when layer l + 1 is hidden (its
// gradient is from the previous phase; nothing reads it in this one).
static __device__ void fz_bwd_elem(const tdm_sacf_args &a, const fz_ctx &c, const fz_bwd &w,
                                   int l, size_t i0, size_t st) {
  const tdm_sacf_net &n = *w.n;
  const float bc1 = w.critic ? c.bc1c : c.bc1a, bc2 = w.critic ? c.bc2c : c.bc2a;
  if (l + 1 <= a.L - 2) {
    const size_t nw = (size_t)w.E * n.out[l + 1] * n.in[l + 1];
    for (size_t i = i0; i < nw; i += st) {
      size_t o = n.w[l + 1] + i;
      fz_adam(a, n.p, n.m, n.v, w.ema, o, n.g[o], bc1, bc2);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the kernel

static __device__ __forceinline__ unsigned long long fz_now(void) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

static __global__ void __launch_bounds__(FZ_THREADS)
    fz_kernel(const __grid_constant__ tdm_sacf_args a) {
  cg::grid_group grid = cg::this_grid();
  // with a.prof, block 0 stamps the time (ns) at the start and after every barrier
  int nprof = 0;
  const bool stamp = a.prof && blockIdx.x == 0 && threadIdx.x == 0;
#define FZ_SYNC()                                   \
  do {                                              \
    grid.sync();                                    \
    if (stamp && nprof < TDM_SACF_PROF) a.prof[nprof++] = fz_now(); \
  } while (0)
  if (stamp) a.prof[nprof++] = fz_now();
  __shared__ __align__(16) fz_smem sm;
  const int B = a.B, O = a.O, A = a.A, L = a.L, W = O + A;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float inv = 1.0f / (float)B;
  // the block's copies of the counters (shared memory), the phase's GEMM jobs (written by thread 0)
  __shared__ fz_ctx c;
  __shared__ fz_gemm jobs[4];
  const bool t0 = threadIdx.x == 0;
  if (t0) {
    c.rng = *a.rng;
    c.size = *a.size_dev;
    c.alpha = expf(a.log_alpha[0]);
    int32_t tc = *a.critic.step + 1, ta = *a.actor.step + 1;
    c.bc1c = (float)(1.0 - pow((double)a.b1, (double)tc));
    c.bc2c = (float)(1.0 - pow((double)a.b2, (double)tc));
    c.bc1a = (float)(1.0 - pow((double)a.b1, (double)ta));
    c.bc2a = (float)(1.0 - pow((double)a.b2, (double)ta));
  }
  __syncthreads();
  const tdm_sacf_net &an = a.actor, &cn = a.critic;
  const tdm_replay_cols &cols = a.cols;
  const float *obs = cols.batch[0], *rew = cols.batch[2], *nobs = cols.batch[3],
              *term = cols.batch[4];
  auto no_row = [](int) {};
  auto no_elem = [](size_t, size_t) {};

  // ---- phase 0: sample, xq = [s | a], noise
  fz_phase(a, c, jobs, 0, 0, sm, no_row, [&](size_t i0, size_t st) {
    const int Wt = cols.total_width;
    for (size_t i = i0; i < (size_t)B * Wt; i += st) {
      int r = (int)(i / Wt), j = (int)(i % Wt), col;
      int32_t row = sample_index(&c.rng, a.rs_sample, r, c.size);
      if (j == 0) a.idx[r] = row;
      int k = col_of(cols, j, &col);
      int w = cols.width[k];
      cols.batch[k][(size_t)r * w + col] = cols.ring[k][(size_t)row * w + col];
    }
    for (size_t i = i0; i < (size_t)B * W; i += st) {
      int r = (int)(i / W), j = (int)(i % W);
      int32_t row = sample_index(&c.rng, a.rs_sample, r, c.size);
      a.xq[i] = j < O ? cols.ring[0][(size_t)row * O + j] : cols.ring[1][(size_t)row * A + j - O];
    }
    const size_t ne = (size_t)2 * B * A;
    for (size_t g = i0; g < (ne + 3) / 4; g += st) {
      curandStatePhilox4_32_10_t s4;
      rng_block_init(&c.rng, a.rs_eps, g, &s4);
      float4 zv = curand_normal4(&s4);
      for (int k = 0; k < 4; k++)
        if (4 * g + k < ne) a.epsn[4 * g + k] = __fadd_rn(0.0f, __fmul_rn(1.0f, lane_f(zv, k)));
    }
  });
  FZ_SYNC();

  // ---- hidden layers of the actor over [s; s'] and the critic over xq
  for (int l = 0; l < L - 1; l++) {
    if (t0) {
      jobs[0] = fz_fwd(an, an.p, l, 1, 2 * B, l == 0 ? obs : a.ha[l - 1], l == 0 ? nobs : NULL, B,
                       0, a.za[l], a.ha[l]);
      jobs[1] = fz_fwd(cn, cn.p, l, 2, B, l == 0 ? a.xq : a.hc[l - 1], NULL, 0,
                       l == 0 ? 0 : (long long)B * cn.in[l], a.zc[l], a.hc[l]);
    }
    fz_phase(a, c, jobs, 2, 0, sm, no_row, no_elem);
    FZ_SYNC();
  }

  // ---- heads: actor (2B rows: s then s') with the squash, critic Q(s, a) (B rows)
  const int Hc = cn.in[L - 1], Ha = an.in[L - 1];
  fz_phase(a, c, jobs, 0, (2 * B + B + FZ_WARPS - 1) / FZ_WARPS, sm,
           [&](int t) {
             int r = t * FZ_WARPS + warp;
             float *hv = sm.r.v[warp];
             if (r < 2 * B) {
               fz_row_dots(a.ha[L - 2] + (size_t)r * Ha, an.p + an.w[L - 1], an.p + an.b[L - 1],
                           Ha, 2 * A, hv);
               bool pi = r < B;
               int rb = pi ? r : r - B;
               const float *ev = a.epsn + (pi ? (size_t)B * A : 0) + (size_t)rb * A;
               const float *src = (pi ? obs : nobs) + (size_t)rb * O;
               float *xo = (pi ? a.xq_pi : a.xq_next) + (size_t)rb * W;
               for (int j = lane; j < 2 * A; j += 32) a.head[(size_t)r * 2 * A + j] = hv[j];
               for (int j = lane; j < O; j += 32) xo[j] = src[j];
               if (lane == 0) {
                 float lp = 0.0f;
                 for (int j = 0; j < A; j++) {
                   float act;
                   lp += squash_elem(hv[j], hv[A + j], ev[j], a.lo, a.hi, &act);
                   xo[O + j] = act;
                   if (pi) a.a_pi[(size_t)rb * A + j] = act;
                 }
                 (pi ? a.logp : a.logp_next)[rb] = lp;
               }
             } else if (r < 3 * B) {
               int rb = r - 2 * B;
               for (int e = 0; e < 2; e++)
                 fz_row_dots(a.hc[L - 2] + ((size_t)e * B + rb) * Hc,
                             cn.p + cn.w[L - 1] + (size_t)e * Hc, cn.p + cn.b[L - 1] + e, Hc, 1,
                             hv + e);
               if (lane == 0) {
                 a.q[rb] = hv[0];
                 a.q[B + rb] = hv[1];
               }
             }
             __syncwarp();
           },
           no_elem);
  FZ_SYNC();

  // ---- the target over xq_next
  for (int l = 0; l < L - 1; l++) {
    if (t0)
      jobs[0] = fz_fwd(cn, a.target, l, 2, B, l == 0 ? a.xq_next : a.ht[l - 1], NULL, 0,
                       l == 0 ? 0 : (long long)B * cn.in[l], a.zt[l], a.ht[l]);
    fz_phase(a, c, jobs, 1, 0, sm, no_row, no_elem);
    FZ_SYNC();
  }

  // dz of the critic's last hidden layer for row r from dq (both members; one warp)
  auto critic_dz_last = [&](int r) {
    float *dz = a.dzc[(L - 2) & 1];
    for (int e = 0; e < 2; e++) {
      float d = a.dq[(size_t)e * B + r];
      const float *wl = cn.p + cn.w[L - 1] + (size_t)e * Hc;
      size_t o = ((size_t)e * B + r) * Hc;
#pragma unroll 4
      for (int j = lane; j < Hc; j += 32)
        dz[o + j] = d * wl[j] * act_df_rt(a.act, a.zc[L - 2][o + j], a.hc[L - 2][o + j]);
    }
  };

  // ---- target head, y, critic loss, dQ, dz of the last hidden layer
  fz_phase(a, c, jobs, 0, (B + FZ_WARPS - 1) / FZ_WARPS, sm,
           [&](int t) {
             int r = t * FZ_WARPS + warp;
             if (r < B) {
               float *hv = sm.r.v[warp];
               for (int e = 0; e < 2; e++)
                 fz_row_dots(a.ht[L - 2] + ((size_t)e * B + r) * Hc,
                             a.target + cn.w[L - 1] + (size_t)e * Hc, a.target + cn.b[L - 1] + e,
                             Hc, 1, hv + e);
               float mn = fminf(hv[0], hv[1]);
               float yb = rew[r] + a.gamma * (1.0f - term[r]) * (mn - c.alpha * a.logp_next[r]);
               float q0 = a.q[r], q1 = a.q[B + r], d0 = q0 - yb, d1 = q1 - yb;
               if (lane == 0) {
                 a.dq[r] = d0 * inv;
                 a.dq[B + r] = d1 * inv;
                 a.part[r] = (double)d0 * d0 + (double)d1 * d1;
                 a.part[B + r] = (double)q0 + (double)q1;
               }
               __syncwarp();
               critic_dz_last(r);
             }
             __syncwarp();
           },
           no_elem);
  FZ_SYNC();

  // ---- critic backward and Adam (+ Polyak)
  fz_bwd cb;
  cb.n = &cn, cb.E = 2, cb.M = B, cb.dz = a.dzc, cb.z = a.zc, cb.h = a.hc;
  cb.szh = (long long)B * Hc;  // hidden widths are all equal (the SAC networks)
  cb.X0 = a.xq, cb.sX0 = 0, cb.dlast = a.dq, cb.ema = a.polyak_step ? a.target : NULL;
  cb.critic = true;
  for (int l = L - 2; l >= 0; l--) {
    int nj = fz_bwd_jobs(a, cb, l, jobs, t0);
    bool stats = l == 0;
    fz_phase(a, c, jobs, nj, stats ? 1 : 0, sm,
             [&](int) {
               double loss = fz_block_sum(a.part, B, sm);
               double qs = fz_block_sum(a.part + B, B, sm);
               if (threadIdx.x == 0) {
                 a.stats[TDM_SAC_ST_CRITIC] = (float)(0.5 * loss / B);
                 a.stats[TDM_SAC_ST_QMEAN] = (float)(qs / (2.0 * B));
                 a.stats[TDM_SAC_ST_ALPHA] = c.alpha;
               }
             },
             [&](size_t i0, size_t st) { fz_bwd_elem(a, c, cb, l, i0, st); });
    if (l > 0 || a.actor_step) FZ_SYNC();
  }

  if (a.actor_step) {
    // ---- the updated critic over xq_pi
    for (int l = 0; l < L - 1; l++) {
      if (t0)
        jobs[0] = fz_fwd(cn, cn.p, l, 2, B, l == 0 ? a.xq_pi : a.hc[l - 1], NULL, 0,
                         l == 0 ? 0 : (long long)B * cn.in[l], a.zc[l], a.hc[l]);
      fz_phase(a, c, jobs, 1, 0, sm, no_row, no_elem);
      FZ_SYNC();
    }
    // ---- Q(s, pi(s)), the actor loss, dQ, dz of the critic's last hidden layer
    fz_phase(a, c, jobs, 0, (B + FZ_WARPS - 1) / FZ_WARPS, sm,
             [&](int t) {
               int r = t * FZ_WARPS + warp;
               if (r < B) {
                 float *hv = sm.r.v[warp];
                 for (int e = 0; e < 2; e++)
                   fz_row_dots(a.hc[L - 2] + ((size_t)e * B + r) * Hc,
                               cn.p + cn.w[L - 1] + (size_t)e * Hc, cn.p + cn.b[L - 1] + e, Hc, 1,
                               hv + e);
                 float q0 = hv[0], q1 = hv[1];
                 bool first = q0 <= q1;
                 float mn = first ? q0 : q1, lp = a.logp[r];
                 if (lane == 0) {
                   a.dq[r] = first ? -inv : 0.0f;
                   a.dq[B + r] = first ? 0.0f : -inv;
                   a.dlogp[r] = c.alpha * inv;
                   a.part[2 * B + r] = (double)(c.alpha * lp - mn);
                   a.part[3 * B + r] = (double)lp;
                 }
                 __syncwarp();
                 critic_dz_last(r);
               }
               __syncwarp();
             },
             no_elem);
    FZ_SYNC();
    // ---- the critic's input gradient down to layer 0
    for (int l = L - 2; l >= 1; l--) {
      if (t0)
        jobs[0] = fz_dx(cn, l, 2, B, a.dzc[l & 1], a.zc[l - 1], a.hc[l - 1], a.dzc[(l - 1) & 1]);
      fz_phase(a, c, jobs, 1, 0, sm, no_row, no_elem);
      FZ_SYNC();
    }
    // ---- per row: dL/da through layer 0 of both critics, the squash backward, the actor head's
    // backward into dz of the actor's last hidden layer; one extra task reduces the statistics
    fz_phase(a, c, jobs, 0, (B + FZ_WARPS - 1) / FZ_WARPS + 1, sm,
             [&](int t) {
               if (t == (B + FZ_WARPS - 1) / FZ_WARPS) {
                 double loss = fz_block_sum(a.part + 2 * B, B, sm);
                 double ls = fz_block_sum(a.part + 3 * B, B, sm);
                 if (threadIdx.x == 0) {
                   float mean_logp = (float)(ls / B);
                   if (a.ent_auto) a.g_log_alpha[0] = -(mean_logp + a.target_entropy);
                   a.stats[TDM_SAC_ST_ACTOR] = (float)(loss / B);
                   a.stats[TDM_SAC_ST_ENTROPY] = -mean_logp;
                 }
                 return;
               }
               int r = t * FZ_WARPS + warp;
               if (r < B) {
                 float *da = sm.r.v[warp], *dh = da + TDM_SAC_FUSED_MAX_ACT;
                 const int H0 = cn.out[0];
                 const float *dz0 = a.dzc[0];
                 for (int k0 = 0; k0 < A; k0 += FZ_CHUNK) {
                   float s[FZ_CHUNK];
#pragma unroll
                   for (int q = 0; q < FZ_CHUNK; q++) s[q] = 0.0f;
                   for (int e = 0; e < 2; e++) {
                     const float *w0 = cn.p + cn.w[0] + (size_t)e * H0 * W;
                     const float *dzr = dz0 + ((size_t)e * B + r) * H0;
#pragma unroll 4
                     for (int i = lane; i < H0; i += 32) {
                       float d = dzr[i];
#pragma unroll
                       for (int q = 0; q < FZ_CHUNK; q++)
                         if (k0 + q < A) s[q] = fmaf(d, w0[(size_t)i * W + O + k0 + q], s[q]);
                     }
                   }
#pragma unroll
                   for (int q = 0; q < FZ_CHUNK; q++) {
                     float v = tdm_warp_sum(s[q]);
                     if (lane == 0 && k0 + q < A) da[k0 + q] = v;
                   }
                 }
                 __syncwarp();
                 const float *hd = a.head + (size_t)r * 2 * A;
                 const float *ev = a.epsn + (size_t)B * A + (size_t)r * A;
                 for (int j = lane; j < A; j += 32) {
                   float dm, ds;
                   squash_bwd_elem(hd[j], hd[A + j], ev[j], a.a_pi[(size_t)r * A + j], da[j],
                                   a.dlogp[r], a.lo, a.hi, &dm, &ds);
                   dh[j] = dm;
                   dh[A + j] = ds;
                   a.dhead[(size_t)r * 2 * A + j] = dm;
                   a.dhead[(size_t)r * 2 * A + A + j] = ds;
                 }
                 __syncwarp();
                 float *dz = a.dza[(L - 2) & 1];
                 const float *wh = an.p + an.w[L - 1];  // (2A, Ha)
                 size_t o = (size_t)r * Ha;
                 for (int i = lane; i < Ha; i += 32) {
                   float s = 0.0f;
#pragma unroll 4
                   for (int k = 0; k < 2 * A; k++) s = fmaf(dh[k], wh[(size_t)k * Ha + i], s);
                   dz[o + i] = s * act_df_rt(a.act, a.za[L - 2][o + i], a.ha[L - 2][o + i]);
                 }
               }
               __syncwarp();
             },
             no_elem);
    FZ_SYNC();
    // ---- actor backward and Adam; the temperature's Adam in the last phase
    fz_bwd ab;
    ab.n = &an, ab.E = 1, ab.M = B, ab.dz = a.dza, ab.z = a.za, ab.h = a.ha;
    ab.szh = (long long)2 * B * Ha;
    ab.X0 = obs, ab.sX0 = 0, ab.dlast = a.dhead, ab.ema = NULL, ab.critic = false;
    for (int l = L - 2; l >= 0; l--) {
      int nj = fz_bwd_jobs(a, ab, l, jobs, t0);
      fz_phase(a, c, jobs, nj, 0, sm, no_row, [&](size_t i0, size_t st) {
        fz_bwd_elem(a, c, ab, l, i0, st);
        if (l == 0 && a.ent_auto && i0 == 0) {
          int32_t t = *a.alpha_step + 1;
          float bc1 = (float)(1.0 - pow((double)a.b1, (double)t));
          float bc2 = (float)(1.0 - pow((double)a.b2, (double)t));
          fz_adam(a, a.log_alpha, a.alpha_m, a.alpha_v, NULL, 0, a.g_log_alpha[0], bc1, bc2);
        }
      });
      if (l > 0) FZ_SYNC();
    }
  }
  // counters: every block read them before the first barrier
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    *a.critic.step += 1;
    if (a.actor_step) {
      *a.actor.step += 1;
      if (a.ent_auto) *a.alpha_step += 1;
    }
    a.rng->calls += 1;
  }
  if (stamp) {
    if (nprof < TDM_SACF_PROF) a.prof[nprof++] = fz_now();
    a.prof[TDM_SACF_PROF] = (unsigned long long)nprof;
  }
#undef FZ_SYNC
}

// ---------------------------------------------------------------------------------------------
// host side

static int fz_blocks_per_sm(void) {
  const char *s = getenv("TDM_FUSED_BPS");
  int v = s ? atoi(s) : 2;
  return v < 1 ? 1 : (v > 16 ? 16 : v);
}

extern "C" bool tdm_sacf_supported(tdm_dev *dev) {
  if (!dev || dev->kind != TDM_DEV_CUDA) return false;
  int coop = 0, nb = 0;
  if (cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev->ordinal) != cudaSuccess)
    return false;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, fz_kernel, FZ_THREADS, 0) != cudaSuccess)
    return false;
  return coop && nb >= 1;
}

extern "C" tdm_status tdm_sacf_launch(tdm_dev *dev, const tdm_sacf_args *a) {
  int nb = 0;
  TDM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, fz_kernel, FZ_THREADS, 0));
  int bps = fz_blocks_per_sm();
  if (nb > bps) nb = bps;
  if (nb < 1)
    return TDM_FAIL(TDM_ERR_CUDA, "fused SAC update: the kernel does not fit on an SM");
  int blocks = nb * (dev->sm_count > 0 ? dev->sm_count : 1);
  void *args[] = {(void *)a};
  TDM_CUDA_CHECK(cudaLaunchCooperativeKernel((const void *)fz_kernel, dim3(blocks),
                                             dim3(FZ_THREADS), args, 0, tdm_stream_of(dev)));
  return TDM_OK;
}
