// The fused SAC update: one persistent cooperative kernel per update (src/agents/sac_fused.h has
// the phases and the contract). Work inside a phase is a list of tasks shared out over the blocks
// (task t runs on block t mod grid): GEMM tiles, row tasks (one warp per batch row) and
// elementwise items (grid-stride over the threads of the blocks without a task). Phases are
// separated by grid.sync(). A GEMM phase's jobs and each block's first tile come from a plan built
// once per agent (fz_plan, tdm_sacf_prepare).
//
// GEMM tiles are FZ_BM x FZ_BN outputs of C = A B per member on tensor cores (fz_tile_w): the
// warps split the tile's K, each copies its own operand pieces to shared memory (cp.async) and
// multiplies them with m16n8k8 TF32 MMAs in 3xTF32 (about fp32 accuracy), and the partial tiles
// are added in a fixed order: deterministic. A is read row-major (A[m lda + k]) or transposed
// (A[k lda + m]), B likewise. In a GEMM phase with at most half as many tiles as blocks, on GPUs
// with thread-block clusters (sm_90), the two blocks of a cluster share each tile: each takes half
// of its k blocks, and the second adds its partial tile into the first's shared memory (a pair,
// fz_plan.pair).
#include <cooperative_groups.h>
#include <stdlib.h>
#include <string.h>

#include "../src/agents/sac_fused.h"
#include "act.cuh"
#include "adam.cuh"
#include "cuda_common.cuh"
#include "philox.cuh"
#include "replay_dev.cuh"
#include "sac_math.cuh"
#include "tandem/agent.h"

namespace cg = cooperative_groups;

#define FZ_THREADS 256
#define FZ_WARPS (FZ_THREADS / 32)
#define FZ_BM 32
#define FZ_BN 64
#define FZ_CHUNK 12  // outputs per pass in row dot products (2 A = 12 at A = 6: one pass)
#define FZ_RQ 4      // warps per batch row in the dL/da phase (each a quarter of the outputs)
#define FZ_SROWS 2   // batch rows per task of the sample phase
// most elements per thread of a phase's elementwise work on the blocks without a task (fz_phase)
#define FZ_FREE_ELEMS 8

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
  int bpad;          // B (tb = 0) has zero columns from N up to ldb (read, multiplied, dropped)
  // DW: bias gradient sum_k A(m, k) (the column sums of dz) into bg (member stride M) with Adam
  // on bp (+ Polyak into bema), by the tiles of column block 0; NULL: none
  float *bg, *bp, *bm, *bv, *bema;
  int vecA, vecB;  // 16-byte copies possible: stride 1 along k / n, aligned (set by fz_plan_build)
};

// Per-block copies of the values the update reads before anything changes them.
struct fz_ctx {
  tdm_rng_ctr rng;               // the update counter as this update found it
  int32_t size;                  // replay size
  float alpha;                   // exp(log_alpha) before this update's temperature step
  float bc1c, bc2c, bc1a, bc2a;  // Adam bias corrections, critic and actor
};

struct fz_smem {
  struct {
    // per warp: Q values; or a share of dL/da, dL/da, dhead
    float v[FZ_WARPS][4 * TDM_SAC_FUSED_MAX_ACT];
  } r;
  double red[32];
};

// Dynamic shared memory of the kernel (the tiles' buffers and the plans, asserted below).
#define FZ_DYN_BYTES (136 * 1024)

// Asynchronous 4-byte copy global -> shared, zero-filled when !valid (src is not read then).
static __device__ __forceinline__ void fz_cp4(float *dst, const float *src, bool valid) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src),
               "r"(valid ? 4 : 0));
}
// Asynchronous 16-byte copy global -> shared (both 16-byte aligned), not kept in L1.
static __device__ __forceinline__ void fz_cp16(void *dst, const void *src) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src));
}
static __device__ __forceinline__ void fz_cp_commit(void) {
  asm volatile("cp.async.commit_group;");
}
template <int N>
static __device__ __forceinline__ void fz_cp_wait(void) {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

static __device__ __forceinline__ int fz_tiles(const fz_gemm &g) {
  return g.E * ((g.M + FZ_BM - 1) / FZ_BM) * ((g.N + FZ_BN - 1) / FZ_BN);
}

// The Polyak target p when this update has a Polyak step, else NULL (the plans carry the target's
// pointers in every update).
static __device__ __forceinline__ float *fz_ema(const tdm_sacf_args &a, float *p) {
  return a.polyak_step ? p : NULL;
}

// One Adam step of a parameter p with gradient g and moments m, v (updated in place); returns the
// new parameter (adam.cuh: the arithmetic of the Adam kernels).
static __device__ __forceinline__ float fz_adam_step(const tdm_sacf_args &a, float p, float &m,
                                                     float &v, float g, float bc1, float bc2) {
  return adam_elem(p, g, m, v, a.lr, a.b1, a.b2, a.eps, a.wd, bc1, bc2);
}

// Adam (+ Polyak into ema when not NULL) on element i of p, m, v with gradient gi.
static __device__ __forceinline__ void fz_adam(const tdm_sacf_args &a, float *p, float *m, float *v,
                                               float *ema, size_t i, float gi, float bc1,
                                               float bc2) {
  // every load before the first store (the stores could alias them for the compiler): one round
  // trip, not two
  float mi = m[i], vi = v[i], pi = p[i], ei = ema ? ema[i] : 0.0f;
  float pn = fz_adam_step(a, pi, mi, vi, gi, bc1, bc2);
  m[i] = mi;
  v[i] = vi;
  p[i] = pn;
  if (ema) ema[i] = polyak_elem(ei, pn, a.tau);
}

// x split into two TF32 operands, hi + lo = x to about 2^-21 relative (3xTF32). hi is x rounded
// to TF32's 10 mantissa bits, to nearest with ties away from zero (what cvt.rna.tf32.f32 gives for
// finite x), by integer operations on the bits: half a TF32 unit added to the magnitude, the 13 low
// bits cleared. lo = x - hi is exact in fp32 and is passed as it is: the tensor core reads only the
// TF32 bits of an operand, so lo is truncated there. Two cvt instructions per value (a
// conversion runs at a sixteenth of the FMA rate) had cost about 1 us of a 16 x 32 x 256 tile
// step (scratch prototype, RESULTS.md session 9). NaN stays NaN through lo; inf gives NaN as with
// cvt.
static __device__ __forceinline__ void fz_split(float x, uint32_t &hi, uint32_t &lo) {
  hi = (__float_as_uint(x) + 0x1000u) & 0xffffe000u;
  lo = __float_as_uint(x - __uint_as_float(hi));
}

// d += a b for one m16n8k8 TF32 tile (warp-wide; PTX fragment layout)
static __device__ __forceinline__ void fz_mma(float *d, const uint32_t *a, uint32_t b0,
                                              uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The activation and its derivative, out of line: the kernel is large, and inlining the five
// activations at every use costs more in instruction fetch than the calls.
static __device__ __noinline__ float fz_act(int act, float x) {
  return act_f_rt(act, x);
}
static __device__ __noinline__ float fz_dact(int act, float x, float y) {
  return act_df_rt(act, x, y);
}

// Normals 4 g .. 4 g + 3 of sub-stream stream into x (n elements in all), as fill_normal_kernel
// (out of line: small code).
static __device__ __noinline__ void fz_normals(const tdm_rng_ctr *rng, uint32_t stream, size_t g,
                                               float *x, size_t n) {
  normals_block(rng, stream, g, x, n, 0.0f, 1.0f);
}

static __device__ __host__ __forceinline__ int fz_pad4(int n) {
  return (n + 3) & ~3;
}
static __device__ __forceinline__ bool fz_al16(const void *p) {
  return ((uintptr_t)p & 15) == 0;
}

// Epilogue of 8 consecutive outputs v[0..8) of job g at member e, row m, columns n.. (nv of them
// inside N): the job's FWD / DX / DW work (see fz_gemm), 16-byte accesses when vec (a template
// argument: every load of the path is then issued before the first use).
template <bool vec>
static __device__ __forceinline__ void fz_epi8(const tdm_sacf_args &a, const fz_ctx &c,
                                               const fz_gemm &g, int e, int m, int n, int nv,
                                               const float *v) {
  const size_t o = (size_t)e * g.M * g.N + (size_t)m * g.N + n;
  const int epi = g.epi, act = a.act;
  float x[8], y[8], w[8];
  auto ld8 = [&](const float *p, float *d) {
    if (vec) {
      float4 u0 = *reinterpret_cast<const float4 *>(p),
             u1 = *reinterpret_cast<const float4 *>(p + 4);
      d[0] = u0.x, d[1] = u0.y, d[2] = u0.z, d[3] = u0.w, d[4] = u1.x, d[5] = u1.y, d[6] = u1.z,
      d[7] = u1.w;
    } else {
#pragma unroll
      for (int q = 0; q < 8; q++) d[q] = q < nv ? p[q] : 0.0f;
    }
  };
  auto st8 = [&](float *p, const float *d) {
    if (vec) {
      *reinterpret_cast<float4 *>(p) = make_float4(d[0], d[1], d[2], d[3]);
      *reinterpret_cast<float4 *>(p + 4) = make_float4(d[4], d[5], d[6], d[7]);
    } else {
#pragma unroll
      for (int q = 0; q < 8; q++)
        if (q < nv) p[q] = d[q];
    }
  };
  if (epi == FZ_EPI_FWD) {
    ld8(g.bias + (size_t)e * g.N + n, x);
#pragma unroll
    for (int q = 0; q < 8; q++) {
      x[q] += v[q];
      y[q] = act == TDM_ACT_RELU ? act_f<TDM_ACT_RELU>(x[q]) : fz_act(act, x[q]);
    }
    st8(g.z + o, x);
    st8(g.h + o, y);
  } else if (epi == FZ_EPI_DX) {
    ld8(g.zin + o, x);
    ld8(g.hin + o, y);
#pragma unroll
    for (int q = 0; q < 8; q++)
      w[q] = v[q] *
             (act == TDM_ACT_RELU ? act_df<TDM_ACT_RELU>(x[q], y[q]) : fz_dact(act, x[q], y[q]));
    st8(g.out + o, w);
  } else {  // DW without Adam (with Adam: fz_epi_adam)
    st8(g.out + o, v);
  }
}

// The epilogue of a thread's 8 outputs (fz_epi8), out of line: one copy for the three tile
// layouts (the kernel's code is large; its instruction fetches cost more than the call).
static __device__ __noinline__ void fz_epi_out(const tdm_sacf_args &a, const fz_ctx &c,
                                               const fz_gemm &g, int e, int m, int n, int nv,
                                               const float *v) {
  if (nv == 8 && g.N % 4 == 0)
    fz_epi8<true>(a, c, g, e, m, n, 8, v);
  else
    fz_epi8<false>(a, c, g, e, m, n, nv, v);
}

#define FZ_PS (FZ_BN + 4)     // row stride of a partial tile in shared memory
#define FZ_KQ (FZ_WARPS / 2)  // k quarters

// The epilogue of a tile of a DW job with Adam (layer 0 and the head: few outputs per tile, long
// Adam arithmetic): every thread takes outputs threadIdx.x, threadIdx.x + FZ_THREADS, ... of the
// tile's rows x cols (then the bias elements when bias), the gradient summed from the k quarters'
// partial tiles in part (and bpart) in the same order as the vector epilogue, all of its loads
// issued before its first store. (8 consecutive outputs per thread left most threads idle and the
// rest with 8 Adam steps in a row.)
#define FZ_EPI_IT 4  // outputs per thread and pass (all of a pass's loads in flight together)
static __device__ __noinline__ void fz_epi_adam(const tdm_sacf_args &a, const fz_ctx &c,
                                                const fz_gemm &g, int e, int m0, int n0,
                                                const float *part, const float *bpart,
                                                const float *rpart, bool bias) {
  const int M = g.M, N = g.N;
  const int rows = min(FZ_BM, M - m0), cols = min(FZ_BN, N - n0);
  const int nout = rows * cols, nall = nout + (bias ? rows : 0);
  const float bc1 = g.critic ? c.bc1c : c.bc1a, bc2 = g.critic ? c.bc2c : c.bc2a;
#pragma unroll 1
  for (int i0 = threadIdx.x; i0 < nall; i0 += FZ_EPI_IT * FZ_THREADS) {
    float gr[FZ_EPI_IT], pv[FZ_EPI_IT], mv[FZ_EPI_IT], vv[FZ_EPI_IT], ev[FZ_EPI_IT];
    size_t off[FZ_EPI_IT];
#pragma unroll
    for (int it = 0; it < FZ_EPI_IT; it++) {
      const int i = i0 + it * FZ_THREADS;
      if (i >= nall) break;
      const bool b = i >= nout;
      const int mm = b ? i - nout : i / cols, nn = b ? 0 : i % cols;
      const float *ps = b ? bpart + mm : part + mm * FZ_PS + nn;
      const int st = b ? FZ_BM : FZ_BM * FZ_PS;
      float s = ps[0];
#pragma unroll
      for (int w = 1; w < FZ_KQ; w++) s += ps[w * st];
      if (rpart) s += b ? rpart[FZ_BM * FZ_PS + mm] : rpart[mm * FZ_PS + nn];
      gr[it] = s;
      off[it] = b ? (size_t)e * M + m0 + mm : (size_t)e * M * N + (size_t)(m0 + mm) * N + n0 + nn;
      const float *P = b ? g.bp : g.p, *Mo = b ? g.bm : g.m, *V = b ? g.bv : g.v,
                  *E = fz_ema(a, b ? g.bema : g.ema);
      pv[it] = P[off[it]], mv[it] = Mo[off[it]], vv[it] = V[off[it]];
      ev[it] = E ? E[off[it]] : 0.0f;
    }
#pragma unroll
    for (int it = 0; it < FZ_EPI_IT; it++) {
      const int i = i0 + it * FZ_THREADS;
      if (i >= nall) break;
      const bool b = i >= nout;
      float *G = b ? g.bg : g.out, *P = b ? g.bp : g.p, *Mo = b ? g.bm : g.m, *V = b ? g.bv : g.v,
            *E = fz_ema(a, b ? g.bema : g.ema);
      const size_t o = off[it];
      const float pn = fz_adam_step(a, pv[it], mv[it], vv[it], gr[it], bc1, bc2);
      G[o] = gr[it];
      P[o] = pn;
      Mo[o] = mv[it];
      V[o] = vv[it];
      if (E) E[o] = polyak_elem(ev[it], pn, a.tau);
    }
  }
}

// The tile at member e, rows m0.., columns n0.. of job g on tensor cores, split over the warps.
// Warp w takes the half w % 2 of the tile's BN columns and the 16-wide k blocks w / 2, w / 2 +
// FZ_KQ, ... of K; its threads copy their operand pieces of the next two k blocks into
// shared-memory staging slots (cp.async) while the current block is multiplied (see the loop).
// Fixed permutations make a thread's four values of an operand contiguous in memory: in k block kb,
// mma step s (0, 1) uses k = kb + 4 tig + 2 s (slot tig) and kb + 4 tig + 2 s + 1 (slot tig + 4);
// fragment row r of m16 tile i is tile row 4 (r % 8) + 2 i + r / 8; fragment column c of n8 tile j
// is column 4 c + j of the warp's half. A thread so holds rows 4 gid .. 4 gid + 3 and columns 8 tig
// .. 8 tig + 7 of its half. 3xTF32 (about fp32 accuracy). The partial tiles of the k quarters are
// summed in shared memory in a fixed order (deterministic), then the epilogue, 8 outputs per
// thread. ta, tb: the layouts of A and B (fz_gemm), template arguments so that a staged block is
// placed in registers without run-time selects.
// pair: the tile is shared by the two blocks of a cluster; this block (half 0 or 1) takes the
// k blocks 2 i + half of each warp's; half 1 adds its quarters' partial tiles (in order) and
// writes the sum to half 0's rpart, and half 0 runs the epilogue with rpart added last.
#define FZ_WSTG 3  // staging slots per thread (k blocks in flight + 1)
// dynamic shared memory of fz_tile_w: the partial tiles and bias sums, the pair's partial tile and
// bias sums, then the staging slots
#define FZ_PART_FLOATS (FZ_KQ * FZ_BM * FZ_PS + FZ_KQ * FZ_BM)
#define FZ_R_FLOATS (FZ_BM * FZ_PS + FZ_BM)
#define FZ_W_DYN_BYTES \
  ((FZ_PART_FLOATS + FZ_R_FLOATS + (FZ_KQ + FZ_WARPS) * FZ_WSTG * 4 * 32 * 4) * sizeof(float))
template <int ta, int tb>
static __device__ __noinline__ void fz_tile_w(const tdm_sacf_args &a, const fz_ctx &c,
                                              const fz_gemm &g, int e, int m0, int n0, int pair,
                                              int half) {
  extern __shared__ __align__(16) float fz_dyn[];
  float *part = fz_dyn;                           // (FZ_KQ, BM, FZ_PS)
  float *bpart = fz_dyn + FZ_KQ * FZ_BM * FZ_PS;  // (FZ_KQ, BM) bias partial sums
  float *rpart = fz_dyn + FZ_PART_FLOATS;         // (BM, FZ_PS) then (BM): half 1's sums
  const int M = g.M, N = g.N, K = g.K, lda = g.lda, ldb = g.ldb;
  const float *A = g.A + e * g.sA, *Bm = g.Bm + e * g.sB, *A2 = ta ? NULL : g.A2;
  const int msplit = g.msplit;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int nh = warp & 1, kq = warp >> 1;
  constexpr int MT = FZ_BM / 16, NT = FZ_BN / 16;  // m16 tiles, n8 tiles of a half
  static_assert(MT == 2 && NT == 4, "the permutations assume 32 x 64 tiles");
  const int mb = m0 + 4 * gid, nb = n0 + 32 * nh + 4 * gid;  // this thread's first row / column
  const bool avec = g.vecA, bvec = g.vecB;
  const float *pa[4];  // ta = 0: the rows mb + q
#pragma unroll
  for (int q = 0; q < 4; q++) {
    const int m = mb + q;
    pa[q] = m >= M                ? A
            : (A2 && m >= msplit) ? A2 + (size_t)(m - msplit) * lda
                                  : A + (size_t)m * lda;
  }
  const bool bsum = g.epi == FZ_EPI_DW && g.bg && n0 == 0 && nh == 0;
  float acc[MT][NT][4], bacc[4];
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;
#pragma unroll
  for (int q = 0; q < 4; q++) bacc[q] = 0.0f;
  __syncthreads();  // the previous task is done with the shared buffers
  // 16-byte copies of an operand (fast): aligned, K a multiple of 16 and the thread's four rows /
  // columns inside the job (or inside B's zero padding)
  const bool fa = avec && K % 16 == 0 && mb + 3 < M;
  const bool fb = bvec && K % 16 == 0 && (nb + 3 < N || (!tb && g.bpad && nb + 3 < ldb));
  // slots of a k block (k4 = kb + 4 tig): ta = 0: ua[q] = row mb + q at k4 .. k4 + 3; ta = 1:
  // ua[kk] = rows mb .. mb + 3 at k4 + kk; tb = 1: ub[j] = column nb + j at k4 .. k4 + 3; tb = 0:
  // ub[kk] = columns nb .. nb + 3 at k4 + kk
  // av[q][kk] = A(row mb + q, k4 + kk), bv[j][kk] = B(k4 + kk, column nb + j) of a loaded block
  auto place = [&](const float4 *ua, const float4 *ub, float(*av)[4], float(*bv)[4]) {
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const float wa[4] = {ua[q].x, ua[q].y, ua[q].z, ua[q].w};
      const float wb[4] = {ub[q].x, ub[q].y, ub[q].z, ub[q].w};
#pragma unroll
      for (int x = 0; x < 4; x++) {
        if (!ta)
          av[q][x] = wa[x];
        else
          av[x][q] = wa[x];
        if (tb)
          bv[q][x] = wb[x];
        else
          bv[x][q] = wb[x];
      }
    }
  };
  // the two mma steps of a loaded k block (3xTF32: each operand split into two TF32 halves, the
  // three larger products summed)
  auto compute = [&](float(*av)[4], float(*bv)[4]) {
    if (bsum)
#pragma unroll
      for (int q = 0; q < 4; q++) bacc[q] += (av[q][0] + av[q][1]) + (av[q][2] + av[q][3]);
#pragma unroll
    for (int s2 = 0; s2 < 2; s2++) {
      uint32_t ah[MT][4], al[MT][4];
#pragma unroll
      for (int i = 0; i < MT; i++) {
        // a0 (row gid, slot tig), a1 (gid + 8, tig), a2 (gid, tig + 4), a3 (gid + 8, tig + 4)
        const float ax[4] = {av[2 * i][2 * s2], av[2 * i + 1][2 * s2], av[2 * i][2 * s2 + 1],
                             av[2 * i + 1][2 * s2 + 1]};
#pragma unroll
        for (int q = 0; q < 4; q++) fz_split(ax[q], ah[i][q], al[i][q]);
      }
#pragma unroll
      for (int j = 0; j < NT; j++) {
        uint32_t bh0, bl0, bh1, bl1;
        fz_split(bv[j][2 * s2], bh0, bl0);
        fz_split(bv[j][2 * s2 + 1], bh1, bl1);
#pragma unroll
        for (int i = 0; i < MT; i++) {
          fz_mma(acc[i][j], al[i], bh0, bh1);
          fz_mma(acc[i][j], ah[i], bl0, bl1);
          fz_mma(acc[i][j], ah[i], bh0, bh1);
        }
      }
    }
  };
  // the warp's k blocks 16 kq + i KS (i < nblk): each thread copies its pieces of blocks i + 1 and
  // i + 2 into staging slots (cp.async, FZ_WSTG stages) while block i is multiplied. B's pieces are
  // the thread's own; A's are the same for the two warps of a k quarter (same rows, same k), so
  // each of the pair copies half of them into the pair's slots and the pair meets at a named
  // barrier before reading (no block barrier in the loop). 16-byte copies on the fast path
  // (aligned, K a multiple of 16, the thread's rows and columns inside the job), else 4-byte
  // copies with zero fill. One call site per helper, so that the arrays stay in registers.
  constexpr int KS = 16 * FZ_KQ;
  const int k0 = 16 * kq + half * KS, KSt = KS << pair;  // the warp's first k, its k step
  const int nblk = K > k0 ? (K - k0 + KSt - 1) / KSt : 0;
  constexpr int SL = 4 * 32;  // float4 of one stage of a thread group's slots
  float4 *stg = reinterpret_cast<float4 *>(fz_dyn + FZ_PART_FLOATS + FZ_R_FLOATS);
  float4 *stga = stg + kq * (FZ_WSTG * SL) + lane;
  float4 *stgb = stg + FZ_KQ * FZ_WSTG * SL + warp * (FZ_WSTG * SL) + lane;
  // per operand: 0 nothing of it inside the job (zeros, nothing copied), 1 16-byte copies, 2 4-byte
  // copies with zero fill
  const int moda = mb >= M ? 0 : fa ? 1 : 2, modb = nb >= N ? 0 : fb ? 1 : 2;
  auto issue = [&](int i) {  // block i into stage i % FZ_WSTG (an empty group past the end)
    if (i < nblk) {
      const int k4 = k0 + i * KSt + 4 * tig;
      float4 *da = stga + (i % FZ_WSTG) * SL, *d = stgb + (i % FZ_WSTG) * SL;
      if (moda == 1) {
#pragma unroll
        for (int q = 2 * nh; q < 2 * nh + 2; q++)
          fz_cp16(da + q * 32, !ta ? pa[q] + k4 : A + (size_t)(k4 + q) * lda + mb);
      } else if (moda == 2) {
        // element x of slot q: ta = 0 A(mb + q, k4 + x), ta = 1 A(mb + x, k4 + q) (loops, not
        // unrolled: ragged jobs are rare and the kernel's code is large)
#pragma unroll 1
        for (int q = 2 * nh; q < 2 * nh + 2; q++)
#pragma unroll 1
          for (int x = 0; x < 4; x++) {
            const int am = !ta ? mb + q : mb + x, ak = !ta ? k4 + x : k4 + q;
            const bool ok = am < M && ak < K;
            fz_cp4(reinterpret_cast<float *>(da + q * 32) + x,
                   !ok   ? A
                   : !ta ? pa[q] + ak
                         : A + (size_t)ak * lda + am,
                   ok);
          }
      }
      if (modb == 1) {
#pragma unroll
        for (int q = 0; q < 4; q++)
          fz_cp16(d + q * 32,
                  tb ? Bm + (size_t)(nb + q) * ldb + k4 : Bm + (size_t)(k4 + q) * ldb + nb);
      } else if (modb == 2) {
        // element x of slot q: tb = 1 B(k4 + x, nb + q), tb = 0 B(k4 + q, nb + x)
#pragma unroll 1
        for (int q = 0; q < 4; q++)
#pragma unroll 1
          for (int x = 0; x < 4; x++) {
            const int bn = tb ? nb + q : nb + x, bk = tb ? k4 + x : k4 + q;
            const bool ok = bn < N && bk < K;
            fz_cp4(reinterpret_cast<float *>(d + q * 32) + x,
                   !ok  ? Bm
                   : tb ? Bm + (size_t)bn * ldb + bk
                        : Bm + (size_t)bk * ldb + bn,
                   ok);
          }
      }
    }
    fz_cp_commit();
  };
  float4 ua[4], ub[4];
  float av[4][4], bv[NT][4];
  const float4 z4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  // iterations i < 0 only start the copies (one call site of issue: small code). Built with
  // -DFZ_EVEN_BARRIERS (a racecheck build), every k quarter runs as many iterations as quarter 0,
  // the extra ones only meeting at the named barrier: compute-sanitizer's racecheck reports false
  // hazards after warps have run different numbers of named barriers (bench/RESULTS.md, session 12).
#ifdef FZ_EVEN_BARRIERS
  const int nloop = K > half * KS ? (K - half * KS + KSt - 1) / KSt : 0;  // quarter 0's nblk
#else
  const int nloop = nblk;
#endif
#pragma unroll 1
  for (int i = 1 - FZ_WSTG; i < nloop; i++) {
    if (i >= 0 && i < nblk) fz_cp_wait<FZ_WSTG - 2>();  // block i has landed (own copies)
    // the pair's copies of A too, and both are done reading the stage that issue overwrites
    asm volatile("bar.sync %0, 64;" ::"r"(1 + kq) : "memory");
    issue(i + FZ_WSTG - 1);
    if (i < 0 || i >= nblk) continue;
    const float4 *da = stga + (i % FZ_WSTG) * SL, *d = stgb + (i % FZ_WSTG) * SL;
#pragma unroll
    for (int q = 0; q < 4; q++) {
      ua[q] = moda ? da[q * 32] : z4;
      ub[q] = modb ? d[q * 32] : z4;
    }
    place(ua, ub, av, bv);
    compute(av, bv);
  }
  fz_cp_wait<0>();
  // the partial tile of quarter kq: acc[i][j][2 h + u] is tile row 4 gid + 2 i + h, column
  // 32 nh + 8 tig + 4 u + j
  float *pw = part + kq * FZ_BM * FZ_PS + 32 * nh + 8 * tig;
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int h = 0; h < 2; h++)
#pragma unroll
      for (int u = 0; u < 2; u++) {
        const int c2 = 2 * h + u;
        *reinterpret_cast<float4 *>(&pw[(4 * gid + 2 * i + h) * FZ_PS + 4 * u]) =
            make_float4(acc[i][0][c2], acc[i][1][c2], acc[i][2][c2], acc[i][3][c2]);
      }
  if (bsum) {
    // the row sums over the warp's k (lanes tig = 0..3 of a row), then per quarter to shared memory
#pragma unroll
    for (int q = 0; q < 4; q++) {
      float v = bacc[q];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (tig == 0) bpart[kq * FZ_BM + 4 * gid + q] = v;
    }
  }
  __syncthreads();
  // 8 outputs per thread: row mm, columns nn .. nn + 7 of the tile; the quarters' sum (in order)
  const int mm = threadIdx.x >> 3, nn = (threadIdx.x & 7) * 8;
  auto sum8 = [&](float *v) {
    const float *p0 = part + mm * FZ_PS + nn;
    float4 u0 = *reinterpret_cast<const float4 *>(p0),
           u1 = *reinterpret_cast<const float4 *>(p0 + 4);
    v[0] = u0.x, v[1] = u0.y, v[2] = u0.z, v[3] = u0.w, v[4] = u1.x, v[5] = u1.y, v[6] = u1.z,
    v[7] = u1.w;
#pragma unroll
    for (int w = 1; w < FZ_KQ; w++) {
      const float *pw2 = p0 + w * FZ_BM * FZ_PS;
      u0 = *reinterpret_cast<const float4 *>(pw2), u1 = *reinterpret_cast<const float4 *>(pw2 + 4);
      v[0] += u0.x, v[1] += u0.y, v[2] += u0.z, v[3] += u0.w, v[4] += u1.x, v[5] += u1.y,
          v[6] += u1.z, v[7] += u1.w;
    }
  };
  auto sumb = [&]() {  // thread < FZ_BM: its row's bias sum over the quarters
    float gb = bpart[threadIdx.x];
#pragma unroll
    for (int w = 1; w < FZ_KQ; w++) gb += bpart[w * FZ_BM + threadIdx.x];
    return gb;
  };
  if (pair) {
#if __CUDA_ARCH__ >= 900
    cg::cluster_group cl = cg::this_cluster();
    if (half == 1) {  // this half's sums into half 0's rpart
      const bool hasb = g.epi == FZ_EPI_DW && g.bg && n0 == 0;  // bias sums in bpart
      float v[8];
      sum8(v);
      float *rp = cl.map_shared_rank(rpart, 0);
      *reinterpret_cast<float4 *>(rp + mm * FZ_PS + nn) = make_float4(v[0], v[1], v[2], v[3]);
      *reinterpret_cast<float4 *>(rp + mm * FZ_PS + nn + 4) = make_float4(v[4], v[5], v[6], v[7]);
      if (hasb && threadIdx.x < FZ_BM) rp[FZ_BM * FZ_PS + threadIdx.x] = sumb();
    }
    cl.sync();  // half 1's writes are visible to half 0
    if (half == 1) return;
#else
    __trap();  // pairs only on sm_90 (tdm_sacf_supported)
#endif
  }
  const float *rp = pair ? rpart : NULL;
  if (g.epi == FZ_EPI_DW && g.adam) {
    fz_epi_adam(a, c, g, e, m0, n0, part, bpart, rp, g.bg && n0 == 0);
    return;
  }
  float v[8];
  sum8(v);
  if (rp) {
    const float *r0 = rp + mm * FZ_PS + nn;
#pragma unroll
    for (int q = 0; q < 8; q++) v[q] += r0[q];
  }
  if (bsum && threadIdx.x < FZ_BM && m0 + (int)threadIdx.x < M) {
    float gb = sumb();
    if (rp) gb += rp[FZ_BM * FZ_PS + threadIdx.x];
    size_t o = (size_t)e * M + m0 + threadIdx.x;
    g.bg[o] = gb;
    fz_adam(a, g.bp, g.bm, g.bv, fz_ema(a, g.bema), o, gb, g.critic ? c.bc1c : c.bc1a,
            g.critic ? c.bc2c : c.bc2a);
  }
  const int m = m0 + mm, n = n0 + nn;
  if (m < M && n < N) {
    const int nv = N - n < 8 ? N - n : 8;
    fz_epi_out(a, c, g, e, m, n, nv, v);
  }
}

// A GEMM phase's jobs (at most 2) with their tile count, and a block's first tile in it (when the
// block's index is below total). Built once (fz_plan_kernel, when the fused update is set up), for
// every block and GEMM phase, into global memory; each update copies its block's plans to shared
// memory during the sample phase, so that a GEMM phase starts its tile without the job builders
// and the tile index arithmetic on its path.
#define FZ_MAXJ 2
struct __align__(16) fz_plan {
  fz_gemm jobs[FZ_MAXJ];
  int total;
  int pair;          // tile t on the blocks 2 t and 2 t + 1 (a cluster), half of K each
  int j, e, m0, n0;  // the block's first tile: job, member, first row and column
};
// GEMM phases of one update at most: 5 per hidden layer (forward, target forward, critic
// backward, critic forward on pi(s), actor backward), then the critic's input gradient but layer 0
#define FZ_MAXG (6 * (TDM_SACF_MAXL - 1) - 1)
static_assert(FZ_W_DYN_BYTES + FZ_MAXG * sizeof(fz_plan) <= FZ_DYN_BYTES,
              "the tiles' buffers and the plans must fit in the dynamic shared memory");

// Tile t of a phase (t < pl.total): its job, member, first row and first column.
static __device__ void fz_locate(const fz_plan &pl, int t, int &j, int &e, int &m0, int &n0) {
  j = 0;
  for (;;) {
    const fz_gemm &g = pl.jobs[j];
    const int tm = (g.M + FZ_BM - 1) / FZ_BM, tn = (g.N + FZ_BN - 1) / FZ_BN;
    if (t < g.E * tm * tn) {
      e = t / (tm * tn);
      const int r = t % (tm * tn);
      m0 = (r / tn) * FZ_BM, n0 = (r % tn) * FZ_BN;
      return;
    }
    t -= g.E * tm * tn, j++;
  }
}

// Run the phase's GEMM tiles (pl: NULL for none) and nrow row tasks (row(t) for t < nrow, all
// threads of the block) over the blocks; then elem(i, stride), whose loops cover nelem elements,
// over the threads of the blocks that had no task, or over all the grid's threads when every block
// had one or when the free blocks are too few for nelem.
template <typename RowF, typename ElemF>
static __device__ void fz_phase(const tdm_sacf_args &a, const fz_ctx &c, const fz_plan *pl,
                                int nrow, fz_smem &sm, RowF row, ElemF elem, size_t nelem = 0) {
  // tile tasks: one per tile, or two (the halves of a pair: task 2 t + h is half h of tile t)
  const int pair = pl ? pl->pair : 0, ntile = pl ? pl->total << pair : 0;
  for (int t = blockIdx.x; t < ntile + nrow; t += gridDim.x) {
    if (t < ntile) {
      int j, e, m0, n0;
      if (t == (int)blockIdx.x)
        j = pl->j, e = pl->e, m0 = pl->m0, n0 = pl->n0;
      else
        fz_locate(*pl, t >> pair, j, e, m0, n0);
      const fz_gemm &g = pl->jobs[j];
      const int lay = g.ta * 2 + g.tb, half = t & pair;  // layouts: FWD 1, DX 0, DW 2
      if (lay == 1)
        fz_tile_w<0, 1>(a, c, g, e, m0, n0, pair, half);
      else if (lay == 0)
        fz_tile_w<0, 0>(a, c, g, e, m0, n0, pair, half);
      else
        fz_tile_w<1, 0>(a, c, g, e, m0, n0, pair, half);
    } else {
      __syncthreads();  // smem of the previous task
      row(t - ntile);
    }
  }
  // the elementwise work on the blocks without a task when there are enough of them (a block with a
  // tile would otherwise add it to the phase's longest path); a few free blocks with much work
  // would be the longest path instead (the Adam step of a 256-wide middle layer beside 128 tiles
  // on 132 blocks: 128 elements per thread, 120 us), so then every block takes a share after its
  // task (which thread updates an element does not change its value)
  const int ntask = ntile + nrow, free = (int)gridDim.x - ntask;
  if (free <= 0 || nelem > (size_t)free * blockDim.x * FZ_FREE_ELEMS)
    elem((size_t)blockIdx.x * blockDim.x + threadIdx.x, (size_t)gridDim.x * blockDim.x);
  else if ((int)blockIdx.x >= ntask)
    elem((size_t)(blockIdx.x - ntask) * blockDim.x + threadIdx.x, (size_t)free * blockDim.x);
}

// ---------------------------------------------------------------------------------------------
// job builders

// Forward of hidden layer l of net n over X (M rows per member, row stride ldx or in_l when 0;
// member stride sX of X).
static __device__ fz_gemm fz_fwd(const tdm_sacf_net &n, const float *P, int l, int E, int M,
                                 const float *X, const float *X2, int msplit, long long sX,
                                 float *z, float *h, int ldx = 0) {
  fz_gemm g = {};
  g.M = M, g.N = n.out[l], g.K = n.in[l], g.E = E;
  g.A = X, g.A2 = X2, g.msplit = msplit, g.lda = ldx ? ldx : n.in[l], g.ta = 0, g.sA = sX;
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

// Weight gradient of layer l: dz_l^T X_l over K rows (row stride ldx >= in_l, zero columns past
// in_l; member stride sX of X), Adam on W when adam;
// the bias gradient (column sums of dz_l) with its Adam always (nothing reads b_l in the phase).
static __device__ fz_gemm fz_dw(const tdm_sacf_net &n, int l, int E, int K, const float *dz,
                                const float *X, long long sX, int ldx, int adam, float *ema,
                                float *bema, int critic) {
  fz_gemm g = {};
  g.M = n.out[l], g.N = n.in[l], g.K = K, g.E = E;
  g.A = dz, g.lda = n.out[l], g.ta = 1, g.sA = (long long)K * n.out[l];
  g.Bm = X, g.ldb = ldx, g.tb = 0, g.sB = sX, g.bpad = ldx > n.in[l];
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
static __device__ __noinline__ void fz_row_dots(const float *x, const float *W, const float *b,
                                                int n, int nk, float *out) {
  const int lane = threadIdx.x & 31;
  if (nk == 1) {  // one output (a Q head): one sum, all of the row's loads in flight together
    const float bb = b ? b[0] : 0.0f;
    float s0 = 0.0f;
#pragma unroll 8
    for (int i = lane; i < n; i += 32) s0 = fmaf(x[i], W[i], s0);
    const float v = tdm_warp_sum(s0);
    if (lane == 0) out[0] = v + bb;
    __syncwarp();
    return;
  }
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
      if (k0 + q >= nk) break;  // warp-uniform
      float v = tdm_warp_sum(s[q]);
      if (lane == 0) out[k0 + q] = v + (b ? b[k0 + q] : 0.0f);
    }
  }
  __syncwarp();
}

// dz[j] = d w[j] act'(z[j], h[j]) for j0 <= j < j1 over the warp's lanes (restrict: the loads of
// later j need not wait for earlier stores). RELU: the derivative inline, so that the loads of
// several j are in flight together (a call inside the loop made every iteration wait for its
// loads).
template <bool RELU>
static __device__ __forceinline__ void fz_dz_row_t(float *__restrict__ dz,
                                                   const float *__restrict__ w,
                                                   const float *__restrict__ z,
                                                   const float *__restrict__ h, float d, int j0,
                                                   int j1, int act) {
#pragma unroll 8
  for (int j = j0 + (threadIdx.x & 31); j < j1; j += 32)
    dz[j] = d * w[j] * (RELU ? act_df<TDM_ACT_RELU>(z[j], h[j]) : fz_dact(act, z[j], h[j]));
}
static __device__ __forceinline__ void fz_dz_row(float *dz, const float *w, const float *z,
                                                 const float *h, float d, int j0, int j1, int act) {
  if (act == TDM_ACT_RELU)
    fz_dz_row_t<true>(dz, w, z, h, d, j0, j1, act);
  else
    fz_dz_row_t<false>(dz, w, z, h, d, j0, j1, act);
}

// dz[i] = (sum_k dh[k] W[k, i]) act'(z[i], h[i]) for i0 <= i < i1, k < nk (W (nk, n)), over the
// lanes.
template <bool RELU>
static __device__ __forceinline__ void fz_dz_from_head_t(float *__restrict__ dz,
                                                         const float *__restrict__ W,
                                                         const float *__restrict__ dh,
                                                         const float *__restrict__ z,
                                                         const float *__restrict__ h, int nk, int n,
                                                         int i0, int i1, int act) {
#pragma unroll 4
  for (int i = i0 + (threadIdx.x & 31); i < i1; i += 32) {
    float s = 0.0f;
#pragma unroll 4
    for (int k = 0; k < nk; k++) s = fmaf(dh[k], W[(size_t)k * n + i], s);
    dz[i] = s * (RELU ? act_df<TDM_ACT_RELU>(z[i], h[i]) : fz_dact(act, z[i], h[i]));
  }
}
static __device__ __forceinline__ void fz_dz_from_head(float *dz, const float *W, const float *dh,
                                                       const float *z, const float *h, int nk,
                                                       int n, int i0, int i1, int act) {
  if (act == TDM_ACT_RELU)
    fz_dz_from_head_t<true>(dz, W, dh, z, h, nk, n, i0, i1, act);
  else
    fz_dz_from_head_t<false>(dz, W, dh, z, h, nk, n, i0, i1, act);
}

// out[j] = sum over both critics e and hidden units i0 <= i < i1 of dz0[e, r, i] W0_e[i, O + j],
// for j < A, into shared memory (one warp; lane 0 writes): a share of dL/da of row r.
static __device__ __noinline__ void fz_da_part(const tdm_sacf_args &a, const tdm_sacf_net &cn,
                                               const float *dz0, int r, int i0, int i1,
                                               float *out) {
  const int lane = threadIdx.x & 31, H0 = cn.out[0], W = a.O + a.A, A = a.A, B = a.B;
  for (int k0 = 0; k0 < A; k0 += FZ_CHUNK) {
    float s[FZ_CHUNK];
#pragma unroll
    for (int q = 0; q < FZ_CHUNK; q++) s[q] = 0.0f;
#pragma unroll
    for (int e = 0; e < 2; e++) {  // unrolled: both critics' loads in flight together
      const float *w0 = cn.p + cn.w[0] + (size_t)e * H0 * W + a.O;
      const float *dzr = dz0 + ((size_t)e * B + r) * H0;
#pragma unroll 2
      for (int i = i0 + lane; i < i1; i += 32) {
        const float d = dzr[i];
#pragma unroll
        for (int q = 0; q < FZ_CHUNK; q++)
          if (k0 + q < A) s[q] = fmaf(d, w0[(size_t)i * W + k0 + q], s[q]);
      }
    }
#pragma unroll
    for (int q = 0; q < FZ_CHUNK; q++) {
      const float v = tdm_warp_sum(s[q]);
      if (lane == 0 && k0 + q < A) out[k0 + q] = v;
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
  int E, M;                    // members, rows
  float *const *dz;            // dz[l & 1]: (E, M, out_l)
  float *const *z, *const *h;  // hidden activations of the forward (member stride M... see ld)
  long long szh;               // member stride of z / h (rows x width)
  const float *X0;             // layer 0's input (M rows, row stride ldX0), member stride sX0
  long long sX0;
  int ldX0;
  const float *dlast;  // (E, M, out_{L-1}) gradient of the head's output
  float *ema;          // Polyak target (critic) or NULL
  bool critic;
};

// dz of layer l - 1 (l >= 1) from dz of layer l in backward w.
static __device__ fz_gemm fz_bwd_dx(const fz_bwd &w, int l) {
  return fz_dx(*w.n, l, w.E, w.M, w.dz[l & 1], w.z[l - 1], w.h[l - 1], w.dz[(l - 1) & 1]);
}

// GEMM jobs of the phase of layer l into jobs (dz of layer l - 1, the weight and bias gradients
// of layer l, with Adam on W when l = 0, and of the head when l = 0: its tiles would overflow the
// grid in the phase of layer L - 2, which already has two full jobs); returns their count (2).
static __device__ int fz_bwd_jobs(const tdm_sacf_args &a, const fz_bwd &w, int l, fz_gemm *jobs) {
  const tdm_sacf_net &n = *w.n;
  int nj = 0;
  if (l >= 1) jobs[nj++] = fz_bwd_dx(w, l);
  const float *X = l == 0 ? w.X0 : w.h[l - 1];
  long long sX = l == 0 ? w.sX0 : w.szh;
  float *ew = w.ema ? w.ema + n.w[l] : NULL, *eb = w.ema ? w.ema + n.b[l] : NULL;
  jobs[nj++] = fz_dw(n, l, w.E, w.M, w.dz[l & 1], X, sX, l == 0 ? w.ldX0 : n.in[l], l == 0, ew, eb,
                     w.critic);
  if (l == 0) {  // the head's weight gradient: with layer 0's (a small job beside a small job)
    const int h = a.L - 1;
    ew = w.ema ? w.ema + n.w[h] : NULL, eb = w.ema ? w.ema + n.b[h] : NULL;
    jobs[nj++] = fz_dw(n, h, w.E, w.M, w.dlast, w.h[a.L - 2], w.szh, n.in[h], 1, ew, eb, w.critic);
  }
  return nj;
}

// The backward of the critic (both members, with the Polyak target) and of the actor.
static __device__ fz_bwd fz_critic_bwd(const tdm_sacf_args &a) {
  fz_bwd w;
  const tdm_sacf_net &cn = a.critic;
  w.n = &cn, w.E = 2, w.M = a.B, w.dz = a.dzc, w.z = a.zc, w.h = a.hc;
  w.szh = (long long)a.B * cn.in[a.L - 1];  // hidden widths are all equal (the SAC networks)
  w.X0 = a.xq_pad, w.sX0 = 0, w.ldX0 = fz_pad4(a.O + a.A);
  w.dlast = a.dq, w.ema = a.target;  // used only in updates with a Polyak step (fz_ema)
  w.critic = true;
  return w;
}
static __device__ fz_bwd fz_actor_bwd(const tdm_sacf_args &a) {
  fz_bwd w;
  const tdm_sacf_net &an = a.actor;
  w.n = &an, w.E = 1, w.M = a.B, w.dz = a.dza, w.z = a.za, w.h = a.ha;
  w.szh = (long long)2 * a.B * an.in[a.L - 1];
  w.X0 = a.obs_pad, w.sX0 = 0, w.ldX0 = fz_pad4(a.O);
  w.dlast = a.dhead, w.ema = NULL, w.critic = false;
  return w;
}

// GEMM phases of an update with an actor step (the kernel runs them in this order, between its row
// phases; an update without one runs the first 3 (L - 1)).
static __host__ __device__ int fz_nphases(int L) {
  return 6 * (L - 1) - 1;
}

// Forward of hidden layer l of both critics with parameters P (the critic or its target) over B
// rows: layer 0 reads X0 (row stride ldx0, 0: in_0; shared by the members), layer l > 0 the
// members' h[l - 1]; into z[l], h[l].
static __device__ fz_gemm fz_critic_fwd(const tdm_sacf_args &a, const float *P, int l,
                                        const float *X0, int ldx0, float *const *z,
                                        float *const *h) {
  const tdm_sacf_net &cn = a.critic;
  return l == 0
             ? fz_fwd(cn, P, 0, 2, a.B, X0, NULL, 0, 0, z[0], h[0], ldx0)
             : fz_fwd(cn, P, l, 2, a.B, h[l - 1], NULL, 0, (long long)a.B * cn.in[l], z[l], h[l]);
}

// The jobs of GEMM phase gp into jobs; returns their count.
static __device__ int fz_plan_jobs(const tdm_sacf_args &a, int gp, fz_gemm *jobs) {
  const int L = a.L, H = L - 1, B = a.B;
  const tdm_sacf_net &an = a.actor, &cn = a.critic;
  const float *obs = a.cols.batch[0], *nobs = a.cols.batch[3];
  if (gp < H) {  // hidden layer l of the actor over [s; s'] and of the critic over xq
    const int l = gp;
    jobs[0] = fz_fwd(an, an.p, l, 1, 2 * B, l == 0 ? obs : a.ha[l - 1], l == 0 ? nobs : NULL, B, 0,
                     a.za[l], a.ha[l]);
    jobs[1] = fz_critic_fwd(a, cn.p, l, a.xq_pad, fz_pad4(a.O + a.A), a.zc, a.hc);
    return 2;
  }
  if ((gp -= H) < H) {  // hidden layer l of the target over xq_next
    jobs[0] = fz_critic_fwd(a, a.target, gp, a.xq_next, 0, a.zt, a.ht);
    return 1;
  }
  if ((gp -= H) < H) return fz_bwd_jobs(a, fz_critic_bwd(a), L - 2 - gp, jobs);
  if ((gp -= H) < H) {  // hidden layer l of the updated critic over xq_pi
    jobs[0] = fz_critic_fwd(a, cn.p, gp, a.xq_pi, 0, a.zc, a.hc);
    return 1;
  }
  if ((gp -= H) < H - 1) {  // the critic's input gradient, layer l >= 1
    jobs[0] = fz_bwd_dx(fz_critic_bwd(a), L - 2 - gp);
    return 1;
  }
  gp -= H - 1;
  return fz_bwd_jobs(a, fz_actor_bwd(a), L - 2 - gp, jobs);
}

// GEMM phase gp's plan for block blk of grid blocks (one thread). The phase's tiles are shared by
// pairs when pairs are on (a.pair), every tile has a pair of blocks, and each half of every job
// has at least two k blocks per warp (K >= 4 KS).
static __device__ void fz_plan_build(const tdm_sacf_args &a, int gp, int blk, int grid,
                                     fz_plan &pl) {
  const int nj = fz_plan_jobs(a, gp, pl.jobs);
  int kmin = 1 << 30;
  pl.total = 0;
  for (int j = 0; j < nj; j++) {
    fz_gemm &g = pl.jobs[j];
    // 16-byte loads: the contiguous direction's stride is 1 and every start is aligned
    g.vecA = g.lda % 4 == 0 && g.sA % 4 == 0 && fz_al16(g.A) && (g.ta || !g.A2 || fz_al16(g.A2));
    g.vecB = g.ldb % 4 == 0 && g.sB % 4 == 0 && fz_al16(g.Bm);
    pl.total += fz_tiles(g);
    kmin = min(kmin, g.K);
  }
  pl.pair = a.pair && 2 * pl.total <= grid && kmin >= 2 * 2 * 16 * FZ_KQ;
  pl.j = -1, pl.e = pl.m0 = pl.n0 = 0;
  const int t = blk >> pl.pair;
  if (t < pl.total) fz_locate(pl, t, pl.j, pl.e, pl.m0, pl.n0);
}

// The plans of every GEMM phase (threads) for every block (blocks) into a.plan (block b's at
// a.plan + b fz_nphases(L)).
static __global__ void fz_plan_kernel(const __grid_constant__ tdm_sacf_args a) {
  const int np = fz_nphases(a.L);
  fz_plan *out = reinterpret_cast<fz_plan *>(a.plan) + (size_t)blockIdx.x * np;
  for (int p = threadIdx.x; p < np; p += blockDim.x) {
    fz_plan pl;
    fz_plan_build(a, p, blockIdx.x, gridDim.x, pl);
    out[p] = pl;
  }
}

// Elements of the elementwise work of the phase of layer l (fz_bwd_elem).
static __device__ size_t fz_bwd_nelem(const tdm_sacf_args &a, const fz_bwd &w, int l) {
  const tdm_sacf_net &n = *w.n;
  return l + 1 <= a.L - 2 ? (size_t)w.E * n.out[l + 1] * n.in[l + 1] : 0;
}

// Elementwise work of the phase of layer l: Adam on W_{l+1} when layer l + 1 is hidden (its
// gradient is from the previous phase; nothing reads it in this one).
static __device__ void fz_bwd_elem(const tdm_sacf_args &a, const fz_ctx &c, const fz_bwd &w, int l,
                                   size_t i0, size_t st) {
  const tdm_sacf_net &n = *w.n;
  const float bc1 = w.critic ? c.bc1c : c.bc1a, bc2 = w.critic ? c.bc2c : c.bc2a;
  const size_t nw = fz_bwd_nelem(a, w, l);  // 0 when layer l + 1 is the head
  for (size_t i = i0; i < nw; i += st) {
    size_t o = n.w[l + 1] + i;
    fz_adam(a, n.p, n.m, n.v, fz_ema(a, w.ema), o, n.g[o], bc1, bc2);
  }
}

// ---------------------------------------------------------------------------------------------
// the kernel

static __device__ __forceinline__ unsigned long long fz_now(void) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

static __global__ void __launch_bounds__(FZ_THREADS, 1)
    fz_kernel(const __grid_constant__ tdm_sacf_args a) {
  cg::grid_group grid = cg::this_grid();
  // with a.prof, block 0 stamps the time (ns) at the start and after every barrier
  int nprof = 0, nwork = 0;
  const bool stamp = a.prof && blockIdx.x == 0 && threadIdx.x == 0;
#define FZ_SYNC()                                                   \
  do {                                                              \
    if (a.prof) {                                                   \
      __syncthreads();                                              \
      if (threadIdx.x == 0 && nwork < TDM_SACF_PROF)                \
        atomicMax(&a.prof[TDM_SACF_PROF + 1 + nwork], fz_now());    \
      nwork++;                                                      \
    }                                                               \
    grid.sync();                                                    \
    if (stamp && nprof < TDM_SACF_PROF) a.prof[nprof++] = fz_now(); \
  } while (0)
  if (stamp) a.prof[nprof++] = fz_now();
  __shared__ __align__(16) fz_smem sm;
  const int B = a.B, O = a.O, A = a.A, L = a.L, W = O + A;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float inv = 1.0f / (float)B;
  // the block's copies of the counters (shared memory, written by thread 0)
  __shared__ fz_ctx c;
  // this block's plans (fz_plan_kernel) into shared memory past the tiles' buffers, during the
  // sample phase (waited for before its barrier)
  extern __shared__ __align__(16) float fz_dyn[];
  fz_plan *plan = reinterpret_cast<fz_plan *>(reinterpret_cast<char *>(fz_dyn) + FZ_W_DYN_BYTES);
  {
    const int np = fz_nphases(L), n16 = np * (int)(sizeof(fz_plan) / 16);
    const char *src =
        reinterpret_cast<const char *>(a.plan) + (size_t)blockIdx.x * np * sizeof(fz_plan);
    for (int i = threadIdx.x; i < n16; i += blockDim.x)
      fz_cp16(reinterpret_cast<char *>(plan) + 16 * i, src + 16 * i);
    fz_cp_commit();
  }
#if __CUDA_ARCH__ >= 900
  // every block arrives at a cluster barrier on entry and waits after the first grid barrier, so
  // that no block of a pair stores into the shared memory of a peer that has not started (the grid
  // barrier implies it; the cluster barrier states it to compute-sanitizer, at no cost)
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
#endif
  int gp = 0;  // the next GEMM phase
  if (threadIdx.x == 0) {
    c.rng = *a.rng;
    c.size = *a.size_dev;
    c.alpha = expf(a.log_alpha[0]);
    int32_t tc = *a.critic.step + 1, ta = *a.actor.step + 1;
    c.bc1c = adam_bc(a.b1, tc), c.bc2c = adam_bc(a.b2, tc);
    c.bc1a = adam_bc(a.b1, ta), c.bc2a = adam_bc(a.b2, ta);
  }
  __syncthreads();
  const tdm_sacf_net &an = a.actor, &cn = a.critic;
  const tdm_replay_cols &cols = a.cols;
  const float *obs = cols.batch[0], *rew = cols.batch[2], *nobs = cols.batch[3],
              *term = cols.batch[4];
  auto no_row = [](int) {};
  auto no_elem = [](size_t, size_t) {};

  // ---- phase 0: sample the batch, xq = [s | a] and s with zero columns up to a multiple of 4
  // (layer 0 of the critic and the weight gradients of layer 0 read them), the noise. Row tasks of
  // FZ_SROWS batch rows: the ring rows drawn once per row (shared memory), then one item per
  // thread over the rows' columns of the three; the noise on the blocks without a task.
  {
    const int Wt = cols.total_width, Wp = fz_pad4(W), Op = fz_pad4(O), per = Wt + Wp + Op;
    const size_t ne = (size_t)2 * B * A;
    fz_phase(
        a, c, nullptr, (B + FZ_SROWS - 1) / FZ_SROWS, sm,
        [&](int t) {
          __shared__ int32_t ring_row[FZ_SROWS];
          const int r0 = t * FZ_SROWS;
          if (threadIdx.x < FZ_SROWS && r0 + (int)threadIdx.x < B) {
            const int r = r0 + threadIdx.x;
            ring_row[threadIdx.x] = a.idx[r] = sample_index(&c.rng, a.rs_sample, r, c.size);
          }
          __syncthreads();
          for (int i = threadIdx.x; i < FZ_SROWS * per; i += FZ_THREADS) {
            const int rr = i / per, r = r0 + rr;
            if (r >= B) break;
            const int32_t row = ring_row[rr];
            int j = i % per;
            if (j < Wt) {  // the batch columns
              int col, k = col_of(cols, j, &col);
              const int w = cols.width[k];
              cols.batch[k][(size_t)r * w + col] = cols.ring[k][(size_t)row * w + col];
            } else if ((j -= Wt) < Wp) {  // xq with zero columns up to Wp
              a.xq_pad[(size_t)r * Wp + j] = j < O   ? cols.ring[0][(size_t)row * O + j]
                                             : j < W ? cols.ring[1][(size_t)row * A + j - O]
                                                     : 0.0f;
            } else {  // s with zero columns up to Op
              j -= Wp;
              a.obs_pad[(size_t)r * Op + j] = j < O ? cols.ring[0][(size_t)row * O + j] : 0.0f;
            }
          }
          __syncthreads();  // ring_row before the next task
        },
        [&](size_t i0, size_t st) {
          for (size_t g = i0; g < (ne + 3) / 4; g += st)
            fz_normals(&c.rng, a.rs_eps, g, a.epsn, ne);
        });
  }
  fz_cp_wait<0>();  // the plans (the barrier makes them visible to the block)
  FZ_SYNC();
#if __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");  // (the arrival on entry)
#endif

  // ---- hidden layers of the actor over [s; s'] and the critic over xq
  for (int l = 0; l < L - 1; l++) {
    fz_phase(a, c, &plan[gp++], 0, sm, no_row, no_elem);
    FZ_SYNC();
  }

  // ---- the actor's head over [s; s'] (2B rows: s then s') with the squash (Q(s, a) of the critic:
  // in the target's loss phase)
  const int Hc = cn.in[L - 1], Ha = an.in[L - 1];
  // Q of both critics for row r of the last hidden activations H (2, B, Hc) with parameters P (the
  // critic's layout: the critic or its target) into hv[0], hv[1] (one warp)
  auto q_row = [&](const float *H, const float *P, int r, float *hv) {
    for (int e = 0; e < 2; e++)
      fz_row_dots(H + ((size_t)e * B + r) * Hc, P + cn.w[L - 1] + (size_t)e * Hc,
                  P + cn.b[L - 1] + e, Hc, 1, hv + e);
  };
  // two warps per row: the means (0 .. A - 1) and the log-stds (A .. 2A - 1) into the pair's
  // shared buffer, then after the block barrier the squash on the first of them
  fz_phase(
      a, c, nullptr, (2 * B + FZ_WARPS / 2 - 1) / (FZ_WARPS / 2), sm,
      [&](int t) {
        const int r = t * (FZ_WARPS / 2) + warp / 2, half = warp & 1;
        float *hv = sm.r.v[warp & ~1];
        if (r < 2 * B)
          fz_row_dots(a.ha[L - 2] + (size_t)r * Ha, an.p + an.w[L - 1] + (size_t)half * A * Ha,
                      an.p + an.b[L - 1] + half * A, Ha, A, hv + half * A);
        __syncthreads();
        if (r < 2 * B) {
          const bool pi = r < B;
          const int rb = pi ? r : r - B;
          const float *src = (pi ? obs : nobs) + (size_t)rb * O;
          float *xo = (pi ? a.xq_pi : a.xq_next) + (size_t)rb * W;
          if (half == 1) {
            for (int j = lane; j < 2 * A; j += 32) a.head[(size_t)r * 2 * A + j] = hv[j];
            for (int j = lane; j < O; j += 32) xo[j] = src[j];
          } else {
            // the squash of action j on lane j (A <= 32), the log-prob summed over the warp
            const float *ev = a.epsn + (pi ? (size_t)B * A : 0) + (size_t)rb * A;
            float lp = 0.0f;
            if (lane < A) {
              float act;
              lp = squash_elem(hv[lane], hv[A + lane], ev[lane], a.lo, a.hi, &act);
              xo[O + lane] = act;
              if (pi) a.a_pi[(size_t)rb * A + lane] = act;
            }
            lp = tdm_warp_sum(lp);
            if (lane == 0) (pi ? a.logp : a.logp_next)[rb] = lp;
          }
        }
        __syncwarp();
      },
      no_elem);
  FZ_SYNC();

  // ---- the target over xq_next
  for (int l = 0; l < L - 1; l++) {
    fz_phase(a, c, &plan[gp++], 0, sm, no_row, no_elem);
    FZ_SYNC();
  }

  // A Q-head phase: per batch row r, Q of both critics from the last hidden activations H with
  // parameters P (hv), then loss(r, hv, write, dq) sets dq[0..1] = dL/dQ (and writes the row's
  // other outputs when write), then dz of the critic's last hidden layer. FZ_RQ warps per row: each
  // computes Q and dq itself (no block barrier) and a quarter of dz; the first one writes dq and
  // the loss's outputs.
  auto q_phase = [&](const float *H, const float *P, auto loss) {
    const int rpt = FZ_WARPS / FZ_RQ;
    fz_phase(
        a, c, nullptr, (B + rpt - 1) / rpt, sm,
        [&](int t) {
          const int r = t * rpt + warp / FZ_RQ, qtr = warp % FZ_RQ;
          if (r < B) {
            float *hv = sm.r.v[warp], d[2];
            q_row(H, P, r, hv);
            const bool write = lane == 0 && qtr == 0;
            loss(r, hv, write, d);
            if (write) a.dq[r] = d[0], a.dq[B + r] = d[1];
            float *dz = a.dzc[(L - 2) & 1];
            const int i0 = qtr * Hc / FZ_RQ, i1 = (qtr + 1) * Hc / FZ_RQ;
            for (int e = 0; e < 2; e++) {
              const float *wl = cn.p + cn.w[L - 1] + (size_t)e * Hc;
              const size_t o = ((size_t)e * B + r) * Hc;
              fz_dz_row(dz + o, wl, a.zc[L - 2] + o, a.hc[L - 2] + o, d[e], i0, i1, a.act);
            }
          }
          __syncwarp();
        },
        no_elem);
  };

  // ---- target head, Q(s, a), y, critic loss, dQ, dz of the last hidden layer
  q_phase(a.ht[L - 2], a.target, [&](int r, const float *hv, bool write, float *d) {
    const float mn = fminf(hv[0], hv[1]);
    const float yb = rew[r] + a.gamma * (1.0f - term[r]) * (mn - c.alpha * a.logp_next[r]);
    float *qv = sm.r.v[warp] + 2;  // Q(s, a) of both critics
    q_row(a.hc[L - 2], cn.p, r, qv);
    const float q0 = qv[0], q1 = qv[1], d0 = q0 - yb, d1 = q1 - yb;
    d[0] = d0 * inv, d[1] = d1 * inv;
    if (write) {
      a.part[r] = (double)d0 * d0 + (double)d1 * d1;
      a.part[B + r] = (double)q0 + (double)q1;
    }
  });
  FZ_SYNC();

  // ---- critic backward and Adam (+ Polyak)
  const fz_bwd cb = fz_critic_bwd(a);
  for (int l = L - 2; l >= 0; l--) {
    bool stats = l == 0;
    fz_phase(
        a, c, &plan[gp++], stats ? 1 : 0, sm,
        [&](int) {
          double loss = fz_block_sum(a.part, B, sm);
          double qs = fz_block_sum(a.part + B, B, sm);
          if (threadIdx.x == 0) {
            a.stats[TDM_SAC_ST_CRITIC] = (float)(0.5 * loss / B);
            a.stats[TDM_SAC_ST_QMEAN] = (float)(qs / (2.0 * B));
            a.stats[TDM_SAC_ST_ALPHA] = c.alpha;
          }
        },
        [&](size_t i0, size_t st) { fz_bwd_elem(a, c, cb, l, i0, st); }, fz_bwd_nelem(a, cb, l));
    if (l > 0 || a.actor_step) FZ_SYNC();
  }

  if (a.actor_step) {
    // ---- the updated critic over xq_pi
    for (int l = 0; l < L - 1; l++) {
      fz_phase(a, c, &plan[gp++], 0, sm, no_row, no_elem);
      FZ_SYNC();
    }
    // ---- Q(s, pi(s)), the actor loss, dQ, dz of the critic's last hidden layer
    q_phase(a.hc[L - 2], cn.p, [&](int r, const float *hv, bool write, float *d) {
      const float q0 = hv[0], q1 = hv[1];
      const bool first = q0 <= q1;
      const float mn = first ? q0 : q1, lp = a.logp[r];
      d[0] = first ? -inv : 0.0f, d[1] = first ? 0.0f : -inv;
      if (write) {
        a.dlogp[r] = c.alpha * inv;
        a.part[2 * B + r] = (double)(c.alpha * lp - mn);
        a.part[3 * B + r] = (double)lp;
      }
    });
    FZ_SYNC();
    // ---- the critic's input gradient down to layer 0
    for (int l = L - 2; l >= 1; l--) {
      fz_phase(a, c, &plan[gp++], 0, sm, no_row, no_elem);
      FZ_SYNC();
    }
    // ---- per row: dL/da through layer 0 of both critics, the squash backward, the actor head's
    // backward into dz of the actor's last hidden layer; FZ_RQ warps per row, each with a quarter
    // of the hidden units (dL/da: summed over the row's warps after a block barrier; the head's
    // backward: a quarter of its outputs); one extra task reduces the statistics
    {
      const int rpt = FZ_WARPS / FZ_RQ, ntr = (B + rpt - 1) / rpt;
      fz_phase(
          a, c, nullptr, ntr + 1, sm,
          [&](int t) {
            if (t == ntr) {
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
            // warp (row, quarter): its quarter of the hidden units' share of dL/da, then (after
            // the block barrier) the sum of the row's four in order
            const int r = t * rpt + warp / FZ_RQ, qtr = warp % FZ_RQ, H0 = cn.out[0];
            float *pd = sm.r.v[warp], *da = pd + TDM_SAC_FUSED_MAX_ACT,
                  *dh = da + TDM_SAC_FUSED_MAX_ACT;
            if (r < B) fz_da_part(a, cn, a.dzc[0], r, qtr * H0 / FZ_RQ, (qtr + 1) * H0 / FZ_RQ, pd);
            __syncthreads();
            if (r < B) {
              if (lane < A) {
                const float *p0 = sm.r.v[warp - qtr];
                float s = p0[lane];
                for (int w = 1; w < FZ_RQ; w++) s += p0[w * 4 * TDM_SAC_FUSED_MAX_ACT + lane];
                da[lane] = s;
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
                if (qtr == 0) {
                  a.dhead[(size_t)r * 2 * A + j] = dm;
                  a.dhead[(size_t)r * 2 * A + A + j] = ds;
                }
              }
              __syncwarp();
              float *dz = a.dza[(L - 2) & 1];
              const float *wh = an.p + an.w[L - 1];  // (2A, Ha)
              const size_t o = (size_t)r * Ha;
              const int q0 = qtr * Ha / FZ_RQ, q1 = (qtr + 1) * Ha / FZ_RQ;
              fz_dz_from_head(dz + o, wh, dh, a.za[L - 2] + o, a.ha[L - 2] + o, 2 * A, Ha, q0, q1,
                              a.act);
            }
            __syncwarp();
          },
          no_elem);
    }
    FZ_SYNC();
    // ---- actor backward and Adam; the temperature's Adam in the last phase
    const fz_bwd ab = fz_actor_bwd(a);
    for (int l = L - 2; l >= 0; l--) {
      fz_phase(
          a, c, &plan[gp++], 0, sm, no_row,
          [&](size_t i0, size_t st) {
            fz_bwd_elem(a, c, ab, l, i0, st);
            if (l == 0 && a.ent_auto && i0 == 0) {
              int32_t t = *a.alpha_step + 1;
              const float bc1 = adam_bc(a.b1, t), bc2 = adam_bc(a.b2, t);
              fz_adam(a, a.log_alpha, a.alpha_m, a.alpha_v, NULL, 0, a.g_log_alpha[0], bc1, bc2);
            }
          },
          fz_bwd_nelem(a, ab, l));
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
  if (a.prof) {
    __syncthreads();
    if (threadIdx.x == 0 && nwork < TDM_SACF_PROF)
      atomicMax(&a.prof[TDM_SACF_PROF + 1 + nwork], fz_now());
  }
  if (stamp) {
    if (nprof < TDM_SACF_PROF) a.prof[nprof++] = fz_now();
    a.prof[TDM_SACF_PROF] = (unsigned long long)nprof;
  }
#undef FZ_SYNC
}

// ---------------------------------------------------------------------------------------------
// host side

// Whether dev (a CUDA device) has thread-block clusters (compute capability 9 or later).
static bool fz_has_clusters(const tdm_dev *dev) {
  int major = 0;
  return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev->ordinal) ==
             cudaSuccess &&
         major >= 9;
}

// The launch configuration of fz_kernel: cooperative, in clusters of 2 blocks when pair.
static cudaLaunchConfig_t fz_config(int grid, int pair, cudaStream_t st, cudaLaunchAttribute *at) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(grid), cfg.blockDim = dim3(FZ_THREADS), cfg.dynamicSmemBytes = FZ_DYN_BYTES;
  cfg.stream = st;
  at[0].id = cudaLaunchAttributeCooperative;
  at[0].val.cooperative = 1;
  at[1].id = cudaLaunchAttributeClusterDimension;
  at[1].val.clusterDim.x = 2, at[1].val.clusterDim.y = 1, at[1].val.clusterDim.z = 1;
  cfg.attrs = at, cfg.numAttrs = pair ? 2 : 1;
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// the fused act: the actor's forward over n rows, the noise and the squash in one cluster of
// FZA_CS blocks (sm_90): block b computes the b-th slice of every layer's outputs from its copy of
// the layer's input rows and stores each output into every block's copy of the next layer's input
// rows (distributed shared memory; the head's outputs into block 0's), a cluster barrier per
// layer; every weight and bias slice is copied into shared memory at the start.

#define FZA_CS 8
#define FZA_THREADS 256
#define FZA_WARPS (FZA_THREADS / 32)

// This block's share of a layer of N outputs: S = ceil(N / FZA_CS) per block.
static __host__ __device__ __forceinline__ int fza_share(int N) {
  return (N + FZA_CS - 1) / FZA_CS;
}

// The slices of the act's shared memory for actor an (L layers): per layer this block's weight
// slice (S rows padded to a multiple of 4 floats) and its bias slice, layer l's at woff[l] (when
// woff is given; the kernel runs only where everything fits, so its offsets fit an int); *maxk =
// the widest layer. Returns the floats of all slices. The launch's size (fza_floats) and the
// kernel's layout both come from here.
static __host__ __device__ __forceinline__ long long fza_slices(const tdm_sacf_net &an, int L,
                                                                int *woff, int *maxk) {
  long long w = 0;
  int mk = 0;
  for (int l = 0; l < L; l++) {
    const int S = fza_share(an.out[l]);
    if (woff) woff[l] = (int)w;
    w += (long long)S * ((an.in[l] + 3) & ~3) + ((S + 3) & ~3);
    mk = max(mk, max(an.in[l], an.out[l]));
  }
  *maxk = mk;
  return w;
}

// Floats of the act's shared memory for n rows of actor an (L layers, A actions): the slices, two
// buffers of input rows (the widest layer), the head and the noise.
static __host__ __device__ size_t fza_floats(const tdm_sacf_net &an, int L, int A, int n) {
  int maxk;
  const size_t w = (size_t)fza_slices(an, L, nullptr, &maxk);
  return w + 2 * (size_t)n * maxk + (size_t)n * 2 * A + (size_t)n * A + 4;
}

template <int NR>
static __global__ void __launch_bounds__(FZA_THREADS, 1)
    fza_kernel(const tdm_sacf_net an, int L, int act, int O, int A, float lo, float hi,
               const float *__restrict__ obs, int n, tdm_rng_ctr *rng, uint32_t stream,
               float *__restrict__ state, float rho, float mix, float *__restrict__ out) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(16) float fza_dyn[];
  cg::cluster_group cl = cg::this_cluster();
  const int b = (int)cl.block_rank(), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // layout: the slices (fza_slices), then x[2], head, eps
  int woff[TDM_SACF_MAXL], maxk;
  const int wtot = (int)fza_slices(an, L, woff, &maxk);
  float *wsl = fza_dyn, *x0 = wsl + wtot, *x1 = x0 + n * maxk, *head = x1 + n * maxk,
        *eps = head + n * 2 * A;
  // every slice in flight at once: row o of a slice by warp o % FZA_WARPS, 16-byte copies where
  // the rows allow them (rows past the layer's outputs are not copied, and not read)
  for (int l = 0; l < L; l++) {
    const int K = an.in[l], KP = (K + 3) & ~3, N = an.out[l], S = fza_share(N), o0 = b * S,
              cnt = min(S, N - o0);
    const float *W = an.p + an.w[l], *bias = an.p + an.b[l];
    float *d = wsl + woff[l];
    const bool v16 = K % 4 == 0 && an.w[l] % 4 == 0;
    for (int o = warp; o < cnt; o += FZA_WARPS) {
      const float *wr = W + (size_t)(o0 + o) * K;
      if (v16)
        for (int k = 4 * lane; k < K; k += 128) fz_cp16(d + o * KP + k, wr + k);
      else
        for (int k = lane; k < K; k += 32) fz_cp4(d + o * KP + k, wr + k, true);
    }
    for (int t = threadIdx.x; t < cnt; t += FZA_THREADS)
      fz_cp4(d + S * KP + t, bias + o0 + t, true);
  }
  fz_cp_commit();
  const int ne = n * A;
  if (rng && b == 0)
    for (int g = threadIdx.x; g < (ne + 3) / 4; g += FZA_THREADS)
      normals_block(rng, stream, (size_t)g, eps, (size_t)ne, 0.0f, 1.0f);
  for (int i = threadIdx.x; i < n * O; i += FZA_THREADS) x0[i] = obs[i];
  fz_cp_wait<0>();
  cl.sync();  // this block's copies are in; every block of the cluster has started (before the
              // first store into a peer's shared memory)
  for (int l = 0; l < L; l++) {
    const int K = an.in[l], KP = (K + 3) & ~3, N = an.out[l], S = fza_share(N), o0 = b * S,
              cnt = min(S, N - o0);
    const bool hidden = l < L - 1;
    const float *xin = l & 1 ? x1 : x0, *w = wsl + woff[l], *bs = w + S * KP;
    float *xout = l & 1 ? x0 : x1;  // in every block of the cluster (the head: block 0's head)
    // outputs o of this block's slice: warp w takes o = w, w + FZA_WARPS, ...; lanes split k;
    // rows in groups of NR (the accumulators in registers); each output is stored into every
    // block's next input rows (the head's into block 0's)
    for (int o = warp; o < cnt; o += FZA_WARPS) {
      const float *wr = w + o * KP;
      for (int r0 = 0; r0 < n; r0 += NR) {
        const float *xr = xin + r0 * K;
        const int nr = min(NR, n - r0);
        float acc[NR];
#pragma unroll
        for (int r = 0; r < NR; r++) acc[r] = 0.0f;
        for (int k = lane; k < K; k += 32) {
          const float wv = wr[k];
#pragma unroll
          for (int r = 0; r < NR; r++)
            if (r < nr) acc[r] = fmaf(xr[r * K + k], wv, acc[r]);
        }
#pragma unroll
        for (int r = 0; r < NR; r++) {
          if (r >= nr) break;
          const float z = tdm_warp_sum(acc[r]) + bs[o];
          const float y = !hidden               ? z
                          : act == TDM_ACT_RELU ? act_f<TDM_ACT_RELU>(z)
                                                : fz_act(act, z);
          if (hidden) {
            if (lane < FZA_CS) cl.map_shared_rank(xout, lane)[(r0 + r) * N + o0 + o] = y;
          } else if (lane == 0) {
            cl.map_shared_rank(head, 0)[(r0 + r) * N + o0 + o] = y;
          }
        }
      }
    }
    cl.sync();  // every block's outputs of layer l are in place
  }
  if (b == 0) {
    for (int i = threadIdx.x; i < ne; i += FZA_THREADS) {
      const int r = i / A, j = i % A;
      float e = rng ? eps[i] : 0.0f, a;
      if (rng && state) {  // correlated noise: as tdm_axpby(mix, draw, rho, state)
        e = mix * e + rho * state[i];
        state[i] = e;
      }
      squash_elem(head[r * 2 * A + j], head[r * 2 * A + A + j], e, lo, hi, &a);
      out[i] = a;
    }
    if (rng && threadIdx.x == 0) rng->calls += 1;  // its readers are behind the barriers above
  }
#else
  __trap();    // sm_90 only (tdm_sacf_act_setup)
#endif
}

template <int NR>
static bool fza_setup_one(size_t bytes) {
  return cudaFuncSetAttribute(fza_kernel<NR>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              (int)bytes) == cudaSuccess;
}

extern "C" bool tdm_sacf_act_setup(tdm_dev *dev) {
  if (!dev || dev->kind != TDM_DEV_CUDA || !fz_has_clusters(dev)) return false;
  const size_t bytes = TDM_SACF_ACT_FLOATS * sizeof(float);
  bool ok = fza_setup_one<1>(bytes) && fza_setup_one<4>(bytes) && fza_setup_one<16>(bytes);
  cudaGetLastError();
  return ok;
}

extern "C" bool tdm_sacf_act_fits(const tdm_sacf_net *an, int L, int A, int n) {
  if (n < 1 || n > TDM_SACF_ACT_MAXN || A > TDM_SAC_FUSED_MAX_ACT || L < 1 || L > TDM_SACF_MAXL)
    return false;
  return an->out[L - 1] == 2 * A && fza_floats(*an, L, A, n) <= TDM_SACF_ACT_FLOATS;
}

extern "C" tdm_status tdm_sacf_act(tdm_dev *dev, const tdm_sacf_args *a, const float *obs, int n,
                                   tdm_rng_ctr *rng, uint32_t stream, float *state, float rho,
                                   float *out) {
  if (!tdm_sacf_act_fits(&a->actor, a->L, a->A, n))
    return TDM_FAIL(TDM_ERR_ARG, "fused act: %d rows do not fit (tdm_sacf_act_fits)", n);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(FZA_CS), cfg.blockDim = dim3(FZA_THREADS);
  cfg.dynamicSmemBytes = fza_floats(a->actor, a->L, a->A, n) * sizeof(float);
  cfg.stream = tdm_stream_of(dev);
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = FZA_CS, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
  cfg.attrs = at, cfg.numAttrs = 1;
  // the instance with the fewest row registers that hold n rows (more rows: groups of 16)
  auto *kernel = n <= 1 ? fza_kernel<1> : n <= 4 ? fza_kernel<4> : fza_kernel<16>;
  TDM_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, a->actor, a->L, a->act, a->O, a->A, a->lo, a->hi,
                                    obs, n, rng, stream, state, rho, sqrtf(1.0f - rho * rho), out));
  return TDM_OK;
}

extern "C" bool tdm_sacf_supported(tdm_dev *dev, int *grid, int *pair) {
  *grid = 0, *pair = 0;
  if (!dev || dev->kind != TDM_DEV_CUDA) return false;
  int coop = 0, nb = 0;
  if (cudaFuncSetAttribute(fz_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           (int)FZ_DYN_BYTES) != cudaSuccess)
    return false;
  if (cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev->ordinal) != cudaSuccess)
    return false;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, fz_kernel, FZ_THREADS, FZ_DYN_BYTES) !=
      cudaSuccess)
    return false;
  if (!coop || nb < 1) return false;
  *grid = dev->sm_count > 0 ? dev->sm_count : 1;  // one block per SM: more only add to barriers
  // pairs (clusters of 2) on sm_90 and later when every pair of SMs (all but an odd one) can hold
  // a cluster at once, as a cooperative launch needs; TDM_FUSED_PAIR=0 turns them off
  const char *env = getenv("TDM_FUSED_PAIR");
  int ncl = 0;
  const int g2 = *grid & ~1;
  if ((!env || strcmp(env, "0") != 0) && g2 >= 2 && fz_has_clusters(dev)) {
    cudaLaunchAttribute at[2];
    cudaLaunchConfig_t cfg = fz_config(g2, 1, 0, at);
    if (cudaOccupancyMaxActiveClusters(&ncl, fz_kernel, &cfg) == cudaSuccess && 2 * ncl >= g2)
      *grid = g2, *pair = 1;
    cudaGetLastError();  // a refused query leaves no error behind
  }
  return true;
}

extern "C" size_t tdm_sacf_plan_bytes(int grid, int L) {
  return (size_t)grid * fz_nphases(L) * sizeof(fz_plan);
}

extern "C" tdm_status tdm_sacf_prepare(tdm_dev *dev, const tdm_sacf_args *a) {
  if (a->grid < 1 || !a->plan)
    return TDM_FAIL(TDM_ERR_ARG, "fused SAC update: no grid size or no plan buffer");
  fz_plan_kernel<<<a->grid, 64, 0, tdm_stream_of(dev)>>>(*a);
  TDM_CUDA_CHECK(cudaGetLastError());
  return TDM_OK;
}

extern "C" tdm_status tdm_sacf_launch(tdm_dev *dev, const tdm_sacf_args *a) {
  if (a->grid < 1)
    return TDM_FAIL(TDM_ERR_ARG, "fused SAC update: no grid size (tdm_sacf_supported not run)");
  cudaLaunchAttribute at[2];
  cudaLaunchConfig_t cfg = fz_config(a->grid, a->pair, tdm_stream_of(dev), at);
  TDM_CUDA_CHECK(cudaLaunchKernelEx(&cfg, fz_kernel, *a));
  return TDM_OK;
}
