// Prototype, not part of the build: a whole SAC update (batch 256, obs 17, act 6, twin critics
// and the actor at 256x2 ReLU) in the "slab" split, to measure whether that split can reach the
// 50 us of issue 4's goal before it is written into the engine (bench/NOTES-perf.md perf9).
//
// Split: 15 clusters of 8 blocks (the most an H100 or H200 holds with this much shared memory);
// cluster c owns a slab of 16 or 24 batch rows (the first two 24: 256 rows in all), block j of a
// cluster owns unit slice [32 j, 32 j + 32) of every hidden layer. Per network, block j keeps in
// shared memory the rows j of layer 0's weights, the columns j of layer 1's weights (W1[:, j]) and
// the columns j of the head (the target pair's and the actor's W1 columns are read from L2 in
// place: the rest is 227 KB). Layer 0's own units are computed locally (the inputs are all there);
// layer 1 is a partial product over the own units, reduce-scattered to the owner of each output
// slice (distributed shared memory, one cluster barrier); heads are partial dot products sent to
// every block (one barrier). Backward: dL/dz1 of the own units, all-gathered (one barrier), then
// dW1[:, j], dL/dz0 of the own units and dW0[j, :] are local. Products with the slab's rows as a
// dimension are computed transposed (rows are the MMA's n, in steps of 8). Weight gradients are
// written per cluster into a partial buffer; after a grid barrier every block reduces a share of
// the parameters over the clusters (fixed order) and applies Adam (and the Polyak step to the
// target); after a second grid barrier the blocks copy their new weight slices back.
// Per update: 10 cluster barriers and 4 grid barriers (SB3's order: critic step, actor step).
// (Commit 21f539a has the first version: 16-row slabs with rows as the MMA's m and the actor's W1
// in shared memory, which needs 16 clusters, so only 240 rows ran on these GPUs.)
//
// The row-local math is SAC's (tanh-Gaussian with the log-prob correction, min of twin targets,
// learned temperature), with the noise and the sample indices given per update by the host. The
// critic's batch gradient after the cross-cluster reduction and the critics' Q(s, a) are checked
// against a float64 CPU reference of the same update; the actor path is timed, not checked.
//   nvcc -O3 -arch=sm_90 -std=c++17 -o slab_update bench/proto/slab_update.cu
//   (build options: -DNCL=16, -DNOINLINE, -DONE_TF32)
//   ./slab_update [UPDATES [L2W [LOCAL]]]
// L2W (default: both): 1 = steps 4-5 read the updated critic's layer-1 weights from L2 while their
// copy into shared memory runs behind, 0 = they wait for the copy. LOCAL = 1 (timing only, wrong
// results): the reduce-scatter and all-gather stores go to the block's own shared memory.
// NOINLINE: the step helpers as called functions. ONE_TF32: one MMA per product (x rounded to TF32,
// no correction products; about 1e-3 relative error, so the check only reports it).
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vector>

#include "proto.cuh"
namespace cg = cooperative_groups;

#define H 256
#define CS 8
#define NC (H / CS)  // own units per block (32)
#define RM 24        // rows per slab at most (buffer sizes)
#ifndef NCL
#define NCL 15  // clusters (slabs): 15 fit an H100 / H200 (-DNCL=16: 16-row slabs, where they fit)
#endif
#define N24 ((256 - 16 * NCL) / 8)  // the first N24 clusters take 24 rows, the others 16
// rows of this block's slab (device code), its first row
#define R (16 + (N24 > 0 && (int)(blockIdx.x / CS) < N24 ? 8 : 0))
static __host__ __device__ int slab_row0(int c) {
  return 16 * c + 8 * (c < N24 ? c : N24);
}
#define NB (NCL * CS)  // blocks (120)
#define NTH 256
#define NW (NTH / 32)
#define OBS 17
#define ACT 6
#define K0P 24  // layer-0 inputs padded to a multiple of 8 (17 and 23)
#define LD 36   // row stride of 32-wide slices (no bank conflicts in the fragments)
#define LDD (H + 4)
#define GAMMA 0.99f
#define TAU 0.005f
#define LR 3e-4f
#define NSTAMP 25
#ifdef NOINLINE  // the step helpers as called functions (125 KB of code instead of 276 KB)
#define NOINL __noinline__
#else
#define NOINL
#endif
#define HPS 16  // head partials per row and block

// parameter layout of one MLP (K0 inputs, NH head outputs), offsets multiples of 4
struct NetOff {
  int K0, NH, w0, b0, w1, b1, wh, bh, size;
};
static __host__ __device__ int up4(int x) {
  return (x + 3) & ~3;
}
static __host__ __device__ NetOff net_off(int K0, int NH) {
  NetOff o;
  o.K0 = K0, o.NH = NH;
  o.w0 = 0, o.b0 = up4(H * K0), o.w1 = o.b0 + H, o.b1 = o.w1 + H * H, o.wh = o.b1 + H;
  o.bh = o.wh + NH * H, o.size = up4(o.bh + NH);
  return o;
}

// a network's slice in shared memory: w0 rows [NC][K0P], b0 [NC], w1 columns [H][LD] (when w1s),
// b1 [NC], head columns [NH][NC], bh [16]. Without w1s, layer 1's weights are read from global
// memory (L2) in place: w1 then points at W1[0][32 j] with row stride H.
static __host__ __device__ int slice_floats(int NH, bool w1s) {
  return NC * K0P + NC + (w1s ? H * LD : 0) + NC + NH * NC + 16;
}
struct Slice {
  float *w0, *b0, *w1, *b1, *wh, *bh;
  int ld;  // row stride of w1
};
static __device__ Slice slice_at(float *p, int NH, const float *w1g) {
  Slice s;
  s.w0 = p, s.b0 = p + NC * K0P, s.w1 = w1g ? (float *)w1g : s.b0 + NC;
  s.b1 = w1g ? s.b0 + NC : s.w1 + H * LD, s.wh = s.b1 + NC, s.bh = s.wh + NH * NC;
  s.ld = w1g ? H : LD;
  return s;
}

static __device__ __forceinline__ void cp4(void *dst, const void *src) {
  unsigned d = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(src));
}
static __device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
}
static __device__ __forceinline__ void cp_commit() {
  asm volatile("cp.async.commit_group;");
}
static __device__ __forceinline__ void cp_wait1() {  // all but the last committed group
  asm volatile("cp.async.wait_group 1;" ::: "memory");
}
#define split split_fast

// C[M x N] = A[M x K] B[K x N] on tensor cores (3xTF32), A(m, k) = a[m am + k ak],
// B(k, n) = b[n bn + k bk]; M % 16 == 0, N % 8 == 0, K % (8 KS) == 0. Jobs (16x8 tiles x KS k
// parts) go to the warps from warp wofs on. epi(m, n, v0, v1) gets C(m, n) and C(m, n + 1) (n
// even). KS == 1: epi straight from the registers (no block barrier: call it from every thread, or
// from none). KS > 1: partial tiles in scratch, a block barrier, then epi from every thread over
// the sums (fixed order).
template <int KS, class Epi>
static __device__ __forceinline__ void mm(int M, int N, int K, const float *a, int am, int ak,
                                          const float *b, int bn, int bk, int wofs, float *scratch,
                                          Epi epi) {
  const int warp = ((threadIdx.x >> 5) + wofs) % NW, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int nt = N / 8, jobs = (M / 16) * nt * KS, kl = K / KS;
  for (int j = warp; j < jobs; j += NW) {
    const int kp = j % KS, tile = j / KS, m0 = (tile / nt) * 16, n0 = (tile % nt) * 8;
    float acc[2][4] = {};  // [0]: hi x hi, [1]: the two correction products
    const float *pa = a + (size_t)(m0 + g) * am + (size_t)t * ak;
    const float *pb = b + (size_t)(n0 + g) * bn + (size_t)t * bk;
#pragma unroll 4
    for (int k = kp * kl; k < (kp + 1) * kl; k += 8) {
      uint32_t ah[4], al[4], bh0, bl0, bh1, bl1;
      split(pa[(size_t)k * ak], ah[0], al[0]);
      split(pa[(size_t)8 * am + (size_t)k * ak], ah[1], al[1]);
      split(pa[(size_t)(k + 4) * ak], ah[2], al[2]);
      split(pa[(size_t)8 * am + (size_t)(k + 4) * ak], ah[3], al[3]);
      split(pb[(size_t)k * bk], bh0, bl0);
      split(pb[(size_t)(k + 4) * bk], bh1, bl1);
#ifndef ONE_TF32
      mma(acc[1], al, bh0, bh1);
      mma(acc[1], ah, bl0, bl1);
#endif
      mma(acc[0], ah, bh0, bh1);
    }
    float v[4];
#pragma unroll
    for (int q = 0; q < 4; q++) v[q] = acc[1][q] + acc[0][q];
    const int r0 = m0 + g, c0 = n0 + 2 * t;
    if (KS == 1) {
      epi(r0, c0, v[0], v[1]), epi(r0 + 8, c0, v[2], v[3]);
    } else {
      float *s = scratch + (size_t)kp * M * N;
      s[r0 * N + c0] = v[0], s[r0 * N + c0 + 1] = v[1];
      s[(r0 + 8) * N + c0] = v[2], s[(r0 + 8) * N + c0 + 1] = v[3];
    }
  }
  if (KS > 1) {
    __syncthreads();
    for (int i = 2 * threadIdx.x; i < M * N; i += 2 * NTH) {
      float2 v = *reinterpret_cast<const float2 *>(scratch + i);
#pragma unroll
      for (int q = 1; q < KS; q++) {
        const float2 w = *reinterpret_cast<const float2 *>(scratch + (size_t)q * M * N + i);
        v.x += w.x, v.y += w.y;
      }
      epi(i / N, i % N, v.x, v.y);
    }
  }
}

// C[256 x R] = A[256 x 32] B[32 x R] (units x rows), A(m, k) = a[m am + k], B(k, n) = b[n bn + k]:
// warp w takes m tiles w, w + NW; B's fragments (all n tiles of the slab) are loaded once, A's for
// the next m tile before the MMAs of the current one; two accumulators per n tile.
template <class Epi>
static __device__ __forceinline__ void mm_t32(const float *a, int am, const float *b, int bn,
                                              int wofs, Epi epi) {
  const int warp = ((threadIdx.x >> 5) + wofs) % NW, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3, ntn = R / 8;
  float fb[3][4][2];
#pragma unroll
  for (int nt = 0; nt < 3; nt++)
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      const float *pb = b + (size_t)(nt * 8 + g) * bn + 8 * ks + t;
      fb[nt][ks][0] = nt < ntn ? pb[0] : 0.0f, fb[nt][ks][1] = nt < ntn ? pb[4] : 0.0f;
    }
  float fa[4][4];
  auto load_a = [&](int mt, float(&f)[4][4]) {
    const float *pa = a + (size_t)(mt * 16 + g) * am + t;
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      f[ks][0] = pa[8 * ks], f[ks][1] = pa[(size_t)8 * am + 8 * ks];
      f[ks][2] = pa[8 * ks + 4], f[ks][3] = pa[(size_t)8 * am + 8 * ks + 4];
    }
  };
  load_a(warp, fa);
  for (int mt = warp; mt < H / 16; mt += NW) {
    float fn[4][4];
    if (mt + NW < H / 16) load_a(mt + NW, fn);
    float acc[3][2][4] = {};  // [n tile][0]: hi x hi, [1]: the two correction products
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
      uint32_t ah[4], al[4];
#pragma unroll
      for (int q = 0; q < 4; q++) split(fa[ks][q], ah[q], al[q]);
#pragma unroll
      for (int nt = 0; nt < 3; nt++) {
        if (nt >= ntn) break;
        uint32_t bh0, bl0, bh1, bl1;
        split(fb[nt][ks][0], bh0, bl0);
        split(fb[nt][ks][1], bh1, bl1);
#ifndef ONE_TF32
        mma(acc[nt][1], al, bh0, bh1);
        mma(acc[nt][1], ah, bl0, bl1);
#endif
        mma(acc[nt][0], ah, bh0, bh1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < 3; nt++) {
      if (nt >= ntn) break;
      float v[4];
#pragma unroll
      for (int q = 0; q < 4; q++) v[q] = acc[nt][1][q] + acc[nt][0][q];
      const int r0 = mt * 16 + g, c0 = nt * 8 + 2 * t;
      epi(r0, c0, v[0], v[1]);
      epi(r0 + 8, c0, v[2], v[3]);
    }
#pragma unroll
    for (int ks = 0; ks < 4; ks++)
#pragma unroll
      for (int q = 0; q < 4; q++) fa[ks][q] = fn[ks][q];
  }
}

struct Params {
  float *pc, *pt, *pa;       // critic pair, target pair, actor (+ log alpha at the end)
  float *mc, *vc, *ma, *va;  // Adam moments
  float *gc, *ga;            // per-cluster partial gradients [NCL][size]
  float *dbg;                // reduced critic gradient of the last update, Q(s, a) [256][2]
  const float *obs, *act, *rew, *done, *obs2;  // replay [cap][...]
  const int *idx;                              // [updates][256]
  const float *eps;                            // [updates][2][256][ACT] noise for s' and s
  int updates, check;
  int l2w;  // 1: steps 4-5 read the updated critic's layer-1 weights from L2 while their copy
            // into shared memory (for the next update) runs behind
  unsigned long long *stamp;  // [NSTAMP] summed per-phase time (block 0)
};

struct Sh {  // pointers into the dynamic shared memory
  Slice q[2], t[2], a;
  Slice qg[2];           // q with layer 1's weights in global memory
  float *xa;             // [R][K0P] (s, a) critic input
  float *xs, *xs2;       // [R][K0P] actor inputs s, s' (then (s', a'), the target's input)
  float *xp;             // [R][K0P] (s, pi(s))
  float *x0[4], *x1[4];  // own activations [R][LD]: 0 actor(s), 1 actor(s'), 2, 3 critic pair
  float *y0[2], *y1[2];  // target pair / critic pair on (s, pi(s))
  float *T;              // reduce-scatter / all-gather buffer
  float *hp;             // head partials [CS][R][16 * 3]
  float *head;           // summed heads: actor s' [R][12], actor s [R][12], q [4][R]
  float *misc;           // r, done, y, logp', logp_pi, dq [4][R], a' [R][ACT], a_pi [R][ACT]
  float *scr;            // mm scratch
};

static __device__ __forceinline__ unsigned long long gtime() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// copy the own slice of a network's parameters p into s (cp.async; the caller commits and waits):
// parts 1 all but layer 1's weights, 2 layer 1's weights (where the slice keeps them), 3 both
static __device__ NOINL void load_slice(const Slice &s, const float *p, NetOff o, int rank,
                                        int parts = 3) {
  const int tid = threadIdx.x;
  if (parts & 2 && s.ld == LD)
    for (int i = tid; i < H * (NC / 4); i += NTH) {
      const int n = i / (NC / 4), k = (i % (NC / 4)) * 4;
      cp16(s.w1 + n * LD + k, p + o.w1 + n * H + rank * NC + k);
    }
  if (!(parts & 1)) return;
  for (int i = tid; i < NC * o.K0; i += NTH) {
    const int r = i / o.K0, k = i % o.K0;
    cp4(s.w0 + r * K0P + k, p + o.w0 + (rank * NC + r) * o.K0 + k);
  }
  for (int i = tid; i < NC; i += NTH) {
    cp4(s.b0 + i, p + o.b0 + rank * NC + i);
    cp4(s.b1 + i, p + o.b1 + rank * NC + i);
  }
  for (int i = tid; i < o.NH * NC; i += NTH)
    cp4(s.wh + i, p + o.wh + (i / NC) * H + rank * NC + i % NC);
  for (int i = tid; i < o.NH; i += NTH) cp4(s.bh + i, p + o.bh + i);
}

// layer 0 (own units) over R rows of input x [R][K0P]: y0 = relu(x W0[j]^T + b0[j]), computed
// transposed (units x rows: rows are the MMA's n, so a slab may have 16 or 24 rows)
static __device__ NOINL void l0(const Slice &s, const float *x, float *y0, int wofs) {
  mm<1>(NC, R, K0P, s.w0, K0P, 1, x, K0P, 1, wofs, nullptr, [&](int m, int n, float v0, float v1) {
    y0[n * LD + m] = fmaxf(v0 + s.b0[m], 0.0f), y0[(n + 1) * LD + m] = fmaxf(v1 + s.b0[m], 0.0f);
  });
}
// layer 1 partial over the own units (transposed: units x rows), reduce-scattered: unit u's rows
// go to slot [rank][u % NC][row] of block u / NC's T
__constant__ int c_local;
static __device__ NOINL void l1_part(cg::cluster_group &cl, const Slice &s, const float *y0,
                                     float *T, int rank, int wofs) {
  mm_t32(s.w1, s.ld, y0, LD, wofs, [&](int m, int n, float v0, float v1) {
    float *d = c_local ? T : cl.map_shared_rank(T, m / NC);
    *reinterpret_cast<float2 *>(d + (rank * NC + m % NC) * R + n) = make_float2(v0, v1);
  });
}
// layer 1's sums for the own units, then the head's partial dots sent to every block:
// hp[rank][m][hofs + h]
static __device__ NOINL void l1_fin_head(cg::cluster_group &cl, const Slice &s, const float *T,
                                         float *y1, int NH, float *hp, int hofs, int rank) {
  for (int i = threadIdx.x; i < R * NC; i += NTH) {
    const int c = i / R, m = i % R;  // lanes along the rows: T's rows are contiguous
    float v = s.b1[c];
#pragma unroll
    for (int q = 0; q < CS; q++) v += T[(q * NC + c) * R + m];
    y1[m * LD + c] = fmaxf(v, 0.0f);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < R * NH; i += NTH) {
    const int m = i / NH, h = i % NH;
    float v = 0.0f;
#pragma unroll 8
    for (int c = 0; c < NC; c++) v += y1[m * LD + c] * s.wh[h * NC + c];
#pragma unroll
    for (int q = 0; q < CS; q++) cl.map_shared_rank(hp, q)[(rank * R + m) * HPS + hofs + h] = v;
  }
}
static __device__ float head_sum(const float *hp, const float *bh, int m, int hofs, int h) {
  float v = bh[h];
#pragma unroll
  for (int q = 0; q < CS; q++) v += hp[(q * R + m) * HPS + hofs + h];
  return v;
}

// backward, first half: dz1 of the own units from dL/dhead (dh [R][NH], stride dhs), the head's
// and layer 1's bias gradients into the partial buffer g (when g), dz1 sent to every block:
// T[m][rank * NC + c] (row stride LDD)
static __device__ NOINL void bwd_a(cg::cluster_group &cl, const Slice &s, NetOff o, const float *dh,
                                   int dhs, const float *y1, float *T, float *g, int rank) {
  const int NH = o.NH;
  for (int i = threadIdx.x; i < R * NC / 4; i += NTH) {
    const int m = i / (NC / 4), c = (i % (NC / 4)) * 4;
    float v[4] = {};
    for (int h = 0; h < NH; h++) {
      const float d = dh[m * dhs + h];
#pragma unroll
      for (int e = 0; e < 4; e++) v[e] += d * s.wh[h * NC + c + e];
    }
#pragma unroll
    for (int e = 0; e < 4; e++) v[e] = y1[m * LD + c + e] > 0.0f ? v[e] : 0.0f;
    const float4 v4 = make_float4(v[0], v[1], v[2], v[3]);
#pragma unroll
    for (int q = 0; q < CS; q++)
      *reinterpret_cast<float4 *>((c_local ? T : cl.map_shared_rank(T, q)) + m * LDD + rank * NC +
                                  c) = v4;
  }
  if (!g) return;
  for (int i = threadIdx.x; i < NH * NC; i += NTH) {
    const int h = i / NC, c = i % NC;
    float v = 0.0f;
    for (int m = 0; m < R; m++) v += dh[m * dhs + h] * y1[m * LD + c];
    g[o.wh + h * H + rank * NC + c] = v;
  }
  if (rank == 0)
    for (int h = threadIdx.x; h < NH; h += NTH) {
      float v = 0.0f;
      for (int m = 0; m < R; m++) v += dh[m * dhs + h];
      g[o.bh + h] = v;
    }
}
// backward, second half (after the all-gather): db1[j], dW1[:, j] into g (when g); dz0 of the own
// units into d0; then (when g) dW0[j, :] and db0[j] over the input x [R][K0P]
static __device__ NOINL void bwd_b(const Slice &s, NetOff o, const float *T, const float *y0,
                                   const float *y1, const float *x, float *d0, float *g, int rank,
                                   float *scr, int parts = 3) {
  if (g && parts & 1) {
    for (int c = threadIdx.x; c < NC; c += NTH) {
      float v = 0.0f;
      for (int m = 0; m < R; m++) v += T[m * LDD + rank * NC + c];
      g[o.b1 + rank * NC + c] = v;
    }
    mm<1>(H, NC, R, T, 1, LDD, y0, 1, LD, 0, nullptr, [&](int m, int n, float v0, float v1) {
      *reinterpret_cast<float2 *>(g + o.w1 + rank * H * NC + m * NC + n) = make_float2(v0, v1);
    });
  }
  if (!(parts & 2)) return;
  // transposed (own units x rows); d0 may be y0 (each element is read, then written, by one thread)
  mm<2>(NC, R, H, s.w1, 1, s.ld, T, LDD, 1, 4, scr, [&](int m, int n, float v0, float v1) {
    d0[n * LD + m] = y0[n * LD + m] > 0.0f ? v0 : 0.0f;
    d0[(n + 1) * LD + m] = y0[(n + 1) * LD + m] > 0.0f ? v1 : 0.0f;
  });
  __syncthreads();
  if (!g) return;
  for (int c = threadIdx.x; c < NC; c += NTH) {
    float v = 0.0f;
    for (int m = 0; m < R; m++) v += d0[m * LD + c];
    g[o.b0 + rank * NC + c] = v;
  }
  mm<1>(NC, K0P, R, d0, 1, LD, x, 1, K0P, 2, nullptr, [&](int m, int n, float v0, float v1) {
    if (n < o.K0) g[o.w0 + (rank * NC + m) * o.K0 + n] = v0;
    if (n + 1 < o.K0) g[o.w0 + (rank * NC + m) * o.K0 + n + 1] = v1;
  });
}

static __device__ __forceinline__ void squash(float mean, float ls, float e, float *a,
                                              float *logp) {
  ls = fminf(fmaxf(ls, -20.0f), 2.0f);
  const float u = mean + expf(ls) * e, t = tanhf(u);
  *a = t;
  *logp += -0.5f * e * e - ls - 0.91893853f - logf(1.0f - t * t + 1e-6f);
}

// where parameter i (a multiple of 4) of a parameter array of nets of layout o has its partial
// gradient: W1's partials are stored as [rank][unit][32] (the order the tiles write them)
static __device__ __forceinline__ int part_index(int i, NetOff o) {
  const int nb = i / o.size * o.size, li = i - nb - o.w1;
  if (li < 0 || li >= H * H) return i;
  const int m = li / H, k = li % H;
  return nb + o.w1 + (k / NC) * H * NC + m * NC + k % NC;
}
// Adam step `step` on this block's share (multiples of 4) of a parameter array of size floats from
// the per-cluster partials (summed in cluster order), 4 parameters per thread; the Polyak step
// into tgt and the summed gradient into dbg where given
static __device__ NOINL void adam_share(float *p, float *m, float *v, const float *gp, int size,
                                        NetOff o, int step, float *tgt, float *dbg) {
  const float bc1 = 1.0f - powf(0.9f, (float)step), bc2 = 1.0f - powf(0.999f, (float)step);
  const int per = (size / 4 + NB - 1) / NB * 4, lo = min(size, (int)blockIdx.x * per),
            hi = min(size, lo + per);
  for (int i = lo + 4 * (int)threadIdx.x; i < hi; i += 4 * NTH) {
    const int pi = part_index(i, o);
    float4 gv[NCL];
#pragma unroll
    for (int c = 0; c < NCL; c++)
      gv[c] = *reinterpret_cast<const float4 *>(gp + (size_t)c * size + pi);
    const float4 p4 = *reinterpret_cast<const float4 *>(p + i),
                 m4 = *reinterpret_cast<const float4 *>(m + i),
                 v4 = *reinterpret_cast<const float4 *>(v + i);
    float4 t4 = tgt ? *reinterpret_cast<const float4 *>(tgt + i) : make_float4(0, 0, 0, 0);
    float g[4] = {0, 0, 0, 0}, pp[4] = {p4.x, p4.y, p4.z, p4.w}, mm_[4] = {m4.x, m4.y, m4.z, m4.w},
          vv[4] = {v4.x, v4.y, v4.z, v4.w}, tt[4] = {t4.x, t4.y, t4.z, t4.w};
#pragma unroll
    for (int c = 0; c < NCL; c++)
      g[0] += gv[c].x, g[1] += gv[c].y, g[2] += gv[c].z, g[3] += gv[c].w;
#pragma unroll
    for (int e = 0; e < 4; e++) {
      mm_[e] = 0.9f * mm_[e] + 0.1f * g[e], vv[e] = 0.999f * vv[e] + 0.001f * g[e] * g[e];
      pp[e] -= LR * (mm_[e] / bc1) / (sqrtf(vv[e] / bc2) + 1e-8f);
      tt[e] = (1.0f - TAU) * tt[e] + TAU * pp[e];
    }
    if (dbg) *reinterpret_cast<float4 *>(dbg + i) = make_float4(g[0], g[1], g[2], g[3]);
    *reinterpret_cast<float4 *>(m + i) = make_float4(mm_[0], mm_[1], mm_[2], mm_[3]);
    *reinterpret_cast<float4 *>(v + i) = make_float4(vv[0], vv[1], vv[2], vv[3]);
    *reinterpret_cast<float4 *>(p + i) = make_float4(pp[0], pp[1], pp[2], pp[3]);
    if (tgt) *reinterpret_cast<float4 *>(tgt + i) = make_float4(tt[0], tt[1], tt[2], tt[3]);
  }
}

__global__ void __launch_bounds__(NTH, 1) slab_update(Params P, int u0, int nu) {
  extern __shared__ __align__(16) float dyn[];
  cg::cluster_group cl = cg::this_cluster();
  cg::grid_group grid = cg::this_grid();
  const int rank = (int)cl.block_rank(), clu = blockIdx.x / CS, tid = threadIdx.x;
  const NetOff oc = net_off(OBS + ACT, 1), oa = net_off(OBS, 2 * ACT);
  const int csz = 2 * oc.size, asz = oa.size + 4;  // + log alpha
  Sh S;
  float *p = dyn;
#pragma unroll
  for (int i = 0; i < 2; i++) S.q[i] = slice_at(p, 1, nullptr), p += slice_floats(1, true);
#pragma unroll
  for (int i = 0; i < 2; i++)
    S.t[i] = slice_at(p, 1, P.pt + i * oc.size + oc.w1 + rank * NC), p += slice_floats(1, false);
  // the actor's W1 is read from L2 in place as well (shared memory holds 24-row slabs only so)
  S.a = slice_at(p, 2 * ACT, P.pa + oa.w1 + rank * NC), p += slice_floats(2 * ACT, false);
#pragma unroll
  for (int i = 0; i < 2; i++) {
    S.qg[i] = S.q[i];
    if (P.l2w) S.qg[i].w1 = P.pc + i * oc.size + oc.w1 + rank * NC, S.qg[i].ld = H;
  }
  S.xa = p, p += RM * K0P;
  S.xs = p, p += RM * K0P;
  S.xs2 = p, p += RM * K0P;
  S.xp = p, p += RM * K0P;
#pragma unroll
  for (int i = 0; i < 2; i++) S.y0[i] = p, p += RM * LD, S.y1[i] = p, p += RM * LD;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (i == 1) {  // actor(s') lives in steps 1a-1b only: with the target's buffers
      S.x0[i] = S.y0[0], S.x1[i] = S.y1[0];
      continue;
    }
    S.x0[i] = p, p += RM * LD, S.x1[i] = p, p += RM * LD;
  }
  S.T = p, p += 3 * CS * RM * NC;
  S.hp = p, p += CS * RM * HPS;
  S.head = p, p += 2 * RM * 12 + 4 * RM;
  S.misc = p, p += 24 * RM;
  // the tile scratch and the actor's dL/dhead live in T beyond two all-gathered dz1 blocks (T's
  // reduce-scatter slots are not in use while they are)
  S.scr = S.T + 2 * RM * LDD;
  float *dh = S.scr + 2 * NC * RM;  // [R][12]
  float *rw = S.misc, *dn = rw + R, *yv = dn + R, *lp2 = yv + R, *lpp = lp2 + R, *dq = lpp + R;
  float *a2 = dq + 4 * R, *api = a2 + R * ACT;  // dq [2][R] critic, [2][R] pi path
  float *headA2 = S.head, *headA = S.head + R * 12, *qh = S.head + 2 * R * 12;

  const int row0 = slab_row0(clu);
  float *gc = P.gc + (size_t)clu * csz, *ga = P.ga + (size_t)clu * asz;
  unsigned long long tl = 0;
  int st = 0;
  auto stamp = [&]() {
    if (blockIdx.x == 0 && tid == 0 && P.stamp) {
      const unsigned long long t = gtime();
      if (st > 0) atomicAdd(&P.stamp[st - 1], t - tl);
      tl = t, st++;
    }
  };

  // the initial slices (later updates copy them after the Adam steps)
  for (int i = tid; i < NC * K0P; i += NTH) {  // zero the padded layer-0 columns once
    S.q[0].w0[i] = 0.0f, S.q[1].w0[i] = 0.0f, S.t[0].w0[i] = 0.0f, S.t[1].w0[i] = 0.0f;
    S.a.w0[i] = 0.0f;
  }
  for (int i = tid; i < 4 * RM * K0P; i += NTH) S.xa[i] = 0.0f;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 2; i++) load_slice(S.q[i], P.pc + i * oc.size, oc, rank);
#pragma unroll
  for (int i = 0; i < 2; i++) load_slice(S.t[i], P.pt + i * oc.size, oc, rank);
  load_slice(S.a, P.pa, oa, rank);

  for (int u = u0; u < u0 + nu; u++) {
    st = 0;
    stamp();
    // 0: the slab's rows from the replay buffer
    const int *ix = P.idx + (size_t)u * 256 + row0;
    for (int i = tid; i < R * OBS; i += NTH) {
      const int m = i / OBS, k = i % OBS, j = ix[m];
      const float o = P.obs[(size_t)j * OBS + k];
      S.xa[m * K0P + k] = o, S.xs[m * K0P + k] = o;
      S.xs2[m * K0P + k] = P.obs2[(size_t)j * OBS + k];
    }
    for (int i = tid; i < R * ACT; i += NTH) {
      const int m = i / ACT, k = i % ACT;
      S.xa[m * K0P + OBS + k] = P.act[(size_t)ix[m] * ACT + k];
    }
    for (int m = tid; m < R; m += NTH) rw[m] = P.rew[ix[m]], dn[m] = P.done[ix[m]];
    const float alpha = expf(P.pa[oa.size]);
    cp_wait();
    __syncthreads();
    stamp();
    // 1a: layer 0 of actor(s'), critic pair on (s, a); layer-1 partials
    l0(S.a, S.xs2, S.x0[1], 0);
    l0(S.q[0], S.xa, S.x0[2], 4);
    l0(S.q[1], S.xa, S.x0[3], 2);
    __syncthreads();
    stamp();
    l1_part(cl, S.a, S.x0[1], S.T, rank, 0);
    l1_part(cl, S.q[0], S.x0[2], S.T + CS * R * NC, rank, 5);
    l1_part(cl, S.q[1], S.x0[3], S.T + 2 * CS * R * NC, rank, 2);
    __syncthreads();
    stamp();
    cl.sync();
    stamp();
    // 1b: layer 1's sums, head partials
    l1_fin_head(cl, S.a, S.T, S.x1[1], 2 * ACT, S.hp, 0, rank);
    l1_fin_head(cl, S.q[0], S.T + CS * R * NC, S.x1[2], 1, S.hp, 12, rank);
    l1_fin_head(cl, S.q[1], S.T + 2 * CS * R * NC, S.x1[3], 1, S.hp, 13, rank);
    cl.sync();
    stamp();
    // 2a: heads; a' ~ pi(s'); the target pair on (s', a') and actor(s)
    for (int i = tid; i < R * 12; i += NTH) headA2[i] = head_sum(S.hp, S.a.bh, i / 12, 0, i % 12);
    for (int i = tid; i < 2 * R; i += NTH)
      qh[i] = head_sum(S.hp, i < R ? S.q[0].bh : S.q[1].bh, i % R, 12 + i / R, 0);
    __syncthreads();
    for (int m = tid; m < R; m += NTH) {
      float lp = 0.0f;
      const float *e = P.eps + ((size_t)u * 2 * 256 + row0 + m) * ACT;
      for (int k = 0; k < ACT; k++) {
        squash(headA2[m * 12 + k], headA2[m * 12 + ACT + k], e[k], &a2[m * ACT + k], &lp);
        S.xs2[m * K0P + OBS + k] = a2[m * ACT + k];  // xs2 becomes the target's input
      }
      lp2[m] = lp;
      if (P.check && rank == 0) {
        P.dbg[csz + (row0 + m) * 2] = qh[m];
        P.dbg[csz + (row0 + m) * 2 + 1] = qh[R + m];
      }
    }
    __syncthreads();
    stamp();
    l0(S.t[0], S.xs2, S.y0[0], 0);
    l0(S.t[1], S.xs2, S.y0[1], 4);
    l0(S.a, S.xs, S.x0[0], 2);
    __syncthreads();
    stamp();
    l1_part(cl, S.t[0], S.y0[0], S.T, rank, 0);
    l1_part(cl, S.t[1], S.y0[1], S.T + CS * R * NC, rank, 5);
    l1_part(cl, S.a, S.x0[0], S.T + 2 * CS * R * NC, rank, 2);
    cl.sync();
    stamp();
    // 2b
    l1_fin_head(cl, S.t[0], S.T, S.y1[0], 1, S.hp, 0, rank);
    l1_fin_head(cl, S.t[1], S.T + CS * R * NC, S.y1[1], 1, S.hp, 1, rank);
    l1_fin_head(cl, S.a, S.T + 2 * CS * R * NC, S.x1[0], 2 * ACT, S.hp, 2, rank);
    cl.sync();
    stamp();
    // 3: target y, dL/dQ; pi(s); the critic pair's backward
    for (int i = tid; i < R * 12; i += NTH) headA[i] = head_sum(S.hp, S.a.bh, i / 12, 2, i % 12);
    for (int m = tid; m < R; m += NTH) {
      const float qt =
          fminf(head_sum(S.hp, S.t[0].bh, m, 0, 0), head_sum(S.hp, S.t[1].bh, m, 1, 0));
      yv[m] = rw[m] + GAMMA * (1.0f - dn[m]) * (qt - alpha * lp2[m]);
      dq[m] = (qh[m] - yv[m]) / 256.0f, dq[R + m] = (qh[R + m] - yv[m]) / 256.0f;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 2; i++)
      bwd_a(cl, S.q[i], oc, dq + i * R, 1, S.x1[2 + i], S.T + i * R * LDD, gc + i * oc.size, rank);
    for (int m = tid; m < R; m += NTH) {  // pi(s), its log-prob; xs becomes the (s, pi(s)) input
      float lp = 0.0f;
      const float *e = P.eps + ((size_t)u * 2 * 256 + 256 + row0 + m) * ACT;
      for (int k = 0; k < ACT; k++) {
        squash(headA[m * 12 + k], headA[m * 12 + ACT + k], e[k], &api[m * ACT + k], &lp);
        S.xp[m * K0P + OBS + k] = api[m * ACT + k];
      }
      for (int k = 0; k < OBS; k++) S.xp[m * K0P + k] = S.xs[m * K0P + k];
      lpp[m] = lp;
    }
    cl.sync();
    stamp();
#pragma unroll
    for (int i = 0; i < 2; i++)
      bwd_b(S.q[i], oc, S.T + i * R * LDD, S.x0[2 + i], S.x1[2 + i], S.xa, S.x0[2 + i],
            gc + i * oc.size, rank, S.scr, 1);
    stamp();
#pragma unroll
    for (int i = 0; i < 2; i++)
      bwd_b(S.q[i], oc, S.T + i * R * LDD, S.x0[2 + i], S.x1[2 + i], S.xa, S.x0[2 + i],
            gc + i * oc.size, rank, S.scr, 2);
    stamp();
    grid.sync();
    stamp();
    // G1: the critic pair's Adam step and the target's Polyak step
    adam_share(P.pc, P.mc, P.vc, P.gc, csz, oc, u + 1, P.pt,
               P.check && u == u0 + nu - 1 ? P.dbg : nullptr);
    stamp();
    grid.sync();
    stamp();
#pragma unroll
    for (int i = 0; i < 2; i++) load_slice(S.q[i], P.pc + i * oc.size, oc, rank, P.l2w ? 1 : 3);
    cp_commit();
#pragma unroll
    for (int i = 0; i < 2; i++) {  // for the next update
      if (P.l2w) load_slice(S.q[i], P.pc + i * oc.size, oc, rank, 2);
      load_slice(S.t[i], P.pt + i * oc.size, oc, rank);
    }
    cp_commit();
    cp_wait1();
    __syncthreads();
    stamp();
    // 4a: the updated critic pair on (s, pi(s))
    l0(S.q[0], S.xp, S.y0[0], 0);
    l0(S.q[1], S.xp, S.y0[1], 4);
    __syncthreads();
    l1_part(cl, S.qg[0], S.y0[0], S.T, rank, 0);
    l1_part(cl, S.qg[1], S.y0[1], S.T + CS * R * NC, rank, 4);
    cl.sync();
    stamp();
    l1_fin_head(cl, S.q[0], S.T, S.y1[0], 1, S.hp, 0, rank);
    l1_fin_head(cl, S.q[1], S.T + CS * R * NC, S.y1[1], 1, S.hp, 1, rank);
    cl.sync();
    stamp();
    // 5: dL/dQ of the min branch; backward to the actions
    float *dqp = dq + 2 * R;
    for (int m = tid; m < R; m += NTH) {
      const float q1 = head_sum(S.hp, S.q[0].bh, m, 0, 0), q2 = head_sum(S.hp, S.q[1].bh, m, 1, 0);
      dqp[m] = q1 <= q2 ? -1.0f / 256.0f : 0.0f, dqp[R + m] = q1 <= q2 ? 0.0f : -1.0f / 256.0f;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 2; i++)
      bwd_a(cl, S.q[i], oc, dqp + i * R, 1, S.y1[i], S.T + i * R * LDD, nullptr, rank);
    cl.sync();
    stamp();
#pragma unroll
    for (int i = 0; i < 2; i++)
      bwd_b(S.qg[i], oc, S.T + i * R * LDD, S.y0[i], S.y1[i], S.xp, S.y0[i], nullptr, rank, S.scr);
    for (int i = tid; i < R * ACT; i += NTH) {  // dL/da partial over the own units, to every block
      const int m = i / ACT, k = i % ACT;
      float v = 0.0f;
      for (int i2 = 0; i2 < 2; i2++)
        for (int c = 0; c < NC; c++) v += S.y0[i2][m * LD + c] * S.q[i2].w0[c * K0P + OBS + k];
#pragma unroll
      for (int q = 0; q < CS; q++) cl.map_shared_rank(S.hp, q)[(rank * R + m) * HPS + 2 + k] = v;
    }
    cl.sync();
    stamp();
    // 6: dL/dhead of the actor; the actor's backward
    for (int i = tid; i < R * ACT; i += NTH) {
      const int m = i / ACT, k = i % ACT;
      float dqa = 0.0f;
      for (int q = 0; q < CS; q++) dqa += S.hp[(q * R + m) * HPS + 2 + k];
      const float t = api[m * ACT + k], ls = fminf(fmaxf(headA[m * 12 + ACT + k], -20.0f), 2.0f);
      const float e = P.eps[((size_t)u * 2 * 256 + 256 + row0 + m) * ACT + k];
      const float du = dqa * (1.0f - t * t) +
                       alpha / 256.0f * 2.0f * t * (1.0f - t * t) / (1.0f - t * t + 1e-6f);
      dh[m * 12 + k] = du, dh[m * 12 + ACT + k] = du * expf(ls) * e - alpha / 256.0f;
    }
    __syncthreads();
    bwd_a(cl, S.a, oa, dh, 12, S.x1[0], S.T, ga, rank);
    if (rank == 0 && tid == 0) {  // the temperature's gradient (target entropy -ACT)
      float v = 0.0f;
      for (int m = 0; m < R; m++) v += -(lpp[m] - ACT) / 256.0f;
      ga[oa.size] = v;
    }
    cl.sync();
    stamp();
    bwd_b(S.a, oa, S.T, S.x0[0], S.x1[0], S.xs, S.x0[0], ga, rank, S.scr);
    stamp();
    grid.sync();
    stamp();
    adam_share(P.pa, P.ma, P.va, P.ga, asz, oa, u + 1, nullptr, nullptr);
    stamp();
    grid.sync();
    stamp();
    load_slice(S.a, P.pa, oa, rank);  // waited for at the top of the next update
  }
  cp_wait();
  cl.sync();  // peers stay alive while their shared memory may be written
}

// ----------------------------------------------------------------------------------------------
// CPU float64 reference of the critic's part of one update: Q(s, a) of both critics and the
// critic pair's batch gradient (the same row math as the kernel)
struct Mlp {
  NetOff o;
  const float *p;
};
static void fwd(const Mlp &n, const double *x, double *z0, double *z1, double *out) {
  for (int j = 0; j < H; j++) {
    double v = n.p[n.o.b0 + j];
    for (int k = 0; k < n.o.K0; k++) v += x[k] * n.p[n.o.w0 + j * n.o.K0 + k];
    z0[j] = v > 0 ? v : 0;
  }
  for (int j = 0; j < H; j++) {
    double v = n.p[n.o.b1 + j];
    for (int k = 0; k < H; k++) v += z0[k] * n.p[n.o.w1 + j * H + k];
    z1[j] = v > 0 ? v : 0;
  }
  for (int h = 0; h < n.o.NH; h++) {
    double v = n.p[n.o.bh + h];
    for (int k = 0; k < H; k++) v += z1[k] * n.p[n.o.wh + h * H + k];
    out[h] = v;
  }
}
static void bwd(const Mlp &n, const double *x, const double *z0, const double *z1, const double *dh,
                double *g) {
  std::vector<double> d1(H), d0(H);
  for (int h = 0; h < n.o.NH; h++) {
    g[n.o.bh + h] += dh[h];
    for (int k = 0; k < H; k++) g[n.o.wh + h * H + k] += dh[h] * z1[k];
  }
  for (int k = 0; k < H; k++) {
    double v = 0;
    for (int h = 0; h < n.o.NH; h++) v += dh[h] * n.p[n.o.wh + h * H + k];
    d1[k] = z1[k] > 0 ? v : 0;
    g[n.o.b1 + k] += d1[k];
    for (int i = 0; i < H; i++) g[n.o.w1 + k * H + i] += d1[k] * z0[i];
  }
  for (int i = 0; i < H; i++) {
    double v = 0;
    for (int k = 0; k < H; k++) v += d1[k] * n.p[n.o.w1 + k * H + i];
    d0[i] = z0[i] > 0 ? v : 0;
    g[n.o.b0 + i] += d0[i];
    for (int j = 0; j < n.o.K0; j++) g[n.o.w0 + i * n.o.K0 + j] += d0[i] * x[j];
  }
}

// cluster placement probe: a kernel with few registers, so that only the shared memory limits it
__global__ void probe_k(float *p) {
  extern __shared__ float d[];
  if (p) p[threadIdx.x] = d[threadIdx.x];
}
static void probe(int cs, int smem) {
  CK(cudaFuncSetAttribute(probe_k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  CK(cudaFuncSetAttribute(probe_k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(cs * 32), cfg.blockDim = dim3(NTH), cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeClusterDimension;
  at[0].val.clusterDim.x = cs, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
  cfg.attrs = at, cfg.numAttrs = 1;
  int n = 0;
  const cudaError_t e = cudaOccupancyMaxActiveClusters(&n, probe_k, &cfg);
  printf("  cluster %2d, %6d B shared memory per block: max active clusters %d (%d blocks)%s\n", cs,
         smem, n, n * cs, e ? cudaGetErrorString(e) : "");
  cudaGetLastError();
}

int main(int argc, char **argv) {
  {
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    printf("%s: %d SMs\n", pr.name, pr.multiProcessorCount);
    const int cs[] = {2, 4, 8, 16}, sm[] = {232448, 150000, 115000, 100000, 70000};
    for (int c : cs)
      for (int m : sm) probe(c, m);
  }
  const int nu = argc > 1 ? atoi(argv[1]) : 200, cap = 100000;
  const int l2w_only = argc > 2 ? atoi(argv[2]) : -1;
  const NetOff oc = net_off(OBS + ACT, 1), oa = net_off(OBS, 2 * ACT);
  const int csz = 2 * oc.size, asz = oa.size + 4;
  srand(7);
  auto U = [](float s) { return ((float)rand() / RAND_MAX * 2 - 1) * s; };
  std::vector<float> pc(csz), pa(asz, 0.0f);
#pragma unroll
  for (int i = 0; i < 2; i++) {
    float *p = pc.data() + i * oc.size;
    for (int k = 0; k < oc.size; k++) p[k] = 0.0f;
    for (int k = 0; k < H * oc.K0; k++) p[oc.w0 + k] = U(0.2f);
    for (int k = 0; k < H * H; k++) p[oc.w1 + k] = U(0.0625f);
    for (int k = 0; k < H; k++)
      p[oc.b0 + k] = U(0.1f), p[oc.b1 + k] = U(0.05f), p[oc.wh + k] = U(0.0625f);
  }
  for (int k = 0; k < H * oa.K0; k++) pa[oa.w0 + k] = U(0.24f);
  for (int k = 0; k < H * H; k++) pa[oa.w1 + k] = U(0.0625f);
  for (int k = 0; k < 2 * ACT * H; k++) pa[oa.wh + k] = U(0.0625f);
  for (int k = 0; k < H; k++) pa[oa.b0 + k] = U(0.1f), pa[oa.b1 + k] = U(0.05f);
  pa[oa.size] = 0.0f;  // log alpha
  std::vector<float> obs((size_t)cap * OBS), act((size_t)cap * ACT), rew(cap), done(cap),
      obs2((size_t)cap * OBS);
  for (auto &v : obs) v = U(1.0f);
  for (auto &v : obs2) v = U(1.0f);
  for (auto &v : act) v = U(1.0f);
  for (auto &v : rew) v = U(1.0f);
  for (int i = 0; i < cap; i++) done[i] = rand() % 50 == 0;
  const int tot = nu + 50;
  std::vector<int> idx((size_t)tot * 256);
  for (auto &v : idx) v = rand() % cap;
  std::vector<float> eps((size_t)tot * 2 * 256 * ACT);
  for (auto &v : eps) v = U(1.5f);

  Params P = {};
  auto dup = [](const void *h, size_t b) {
    void *d;
    CK(cudaMalloc(&d, b));
    CK(cudaMemcpy(d, h, b, cudaMemcpyHostToDevice));
    return d;
  };
  auto zeros = [](size_t b) {
    void *d;
    CK(cudaMalloc(&d, b));
    CK(cudaMemset(d, 0, b));
    return d;
  };
  P.pc = (float *)dup(pc.data(), csz * 4), P.pt = (float *)dup(pc.data(), csz * 4);
  P.pa = (float *)dup(pa.data(), asz * 4);
  P.mc = (float *)zeros(csz * 4), P.vc = (float *)zeros(csz * 4);
  P.ma = (float *)zeros(asz * 4), P.va = (float *)zeros(asz * 4);
  P.gc = (float *)zeros((size_t)NCL * csz * 4), P.ga = (float *)zeros((size_t)NCL * asz * 4);
  P.dbg = (float *)zeros((csz + 512) * 4);
  P.obs = (float *)dup(obs.data(), obs.size() * 4),
  P.obs2 = (float *)dup(obs2.data(), obs2.size() * 4);
  P.act = (float *)dup(act.data(), act.size() * 4);
  P.rew = (float *)dup(rew.data(), rew.size() * 4),
  P.done = (float *)dup(done.data(), done.size() * 4);
  P.idx = (int *)dup(idx.data(), idx.size() * 4), P.eps = (float *)dup(eps.data(), eps.size() * 4);
  P.stamp = (unsigned long long *)zeros(NSTAMP * 8);

  const int smem_floats = 2 * slice_floats(1, true) + 2 * slice_floats(1, false) +
                          slice_floats(2 * ACT, false) + 4 * RM * K0P + 6 * RM * LD + 4 * RM * LD +
                          3 * CS * RM * NC + CS * RM * HPS + 2 * RM * 12 + 4 * RM + 24 * RM;
  const int smem = smem_floats * 4;
  printf(
      "slab update: %d clusters of %d blocks (%d batch rows), %d threads, %d B shared memory per "
      "block\n",
      NCL, CS, slab_row0(NCL), NTH, smem);
  CK(cudaFuncSetAttribute(slab_update, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaLaunchAttribute at[2];
  const cudaLaunchConfig_t cfg = coop_cluster_config(NB, NTH, smem, CS, at);
  int ncl = 0;
  CK(cudaOccupancyMaxActiveClusters(&ncl, slab_update, &cfg));
  printf("max active clusters of %d: %d (need %d)\n", CS, ncl, NCL);
  if (ncl < NCL) return 1;

  // check: one update from the initial parameters against the CPU reference
  P.check = 1;
  CK(cudaLaunchKernelEx(&cfg, slab_update, P, 0, 1));
  CK(cudaDeviceSynchronize());
  {
    std::vector<float> dbg(csz + 512);
    CK(cudaMemcpy(dbg.data(), P.dbg, dbg.size() * 4, cudaMemcpyDeviceToHost));
    Mlp q[2] = {{oc, pc.data()}, {oc, pc.data() + oc.size}}, a = {oa, pa.data()};
    std::vector<double> g(csz, 0.0), z0(H), z1(H), y0(H), y1(H);
    double maxq = 0, errq = 0;
    const double alpha = exp((double)pa[oa.size]);
    for (int r = 0; r < slab_row0(NCL); r++) {
      const int j = idx[r];
      double xs2[OBS + ACT], xa[OBS + ACT], h[12], qv[2], qt[2];
      for (int k = 0; k < OBS; k++)
        xs2[k] = obs2[(size_t)j * OBS + k], xa[k] = obs[(size_t)j * OBS + k];
      for (int k = 0; k < ACT; k++) xa[OBS + k] = act[(size_t)j * ACT + k];
      fwd(a, xs2, y0.data(), y1.data(), h);
      double lp = 0;
      for (int k = 0; k < ACT; k++) {
        const double ls = fmin(fmax(h[ACT + k], -20.0), 2.0), e = eps[((size_t)r) * ACT + k];
        const double t = tanh(h[k] + exp(ls) * e);
        xs2[OBS + k] = t;
        lp += -0.5 * e * e - ls - 0.91893853320467274 - log(1 - t * t + 1e-6);
      }
#pragma unroll
      for (int i = 0; i < 2; i++) fwd(q[i], xs2, y0.data(), y1.data(), &qt[i]);  // target == critic
      const double y = rew[j] + 0.99 * (1 - done[j]) * (fmin(qt[0], qt[1]) - alpha * lp);
#pragma unroll
      for (int i = 0; i < 2; i++) {
        fwd(q[i], xa, z0.data(), z1.data(), &qv[i]);
        const double d = (qv[i] - y) / 256.0;
        bwd(q[i], xa, z0.data(), z1.data(), &d, g.data() + i * oc.size);
        errq = fmax(errq, fabs(qv[i] - dbg[csz + r * 2 + i])), maxq = fmax(maxq, fabs(qv[i]));
      }
    }
    double eg = 0, mg = 0;
    for (int i = 0; i < csz; i++) eg = fmax(eg, fabs(g[i] - dbg[i])), mg = fmax(mg, fabs(g[i]));
    const bool ok = errq <= 1e-5 * fmax(maxq, 1.0) && eg <= 1e-5 * fmax(mg, 1e-3);
    printf(
        "check: Q(s, a) max |gpu - cpu| %.3g (max |Q| %.3g); critic gradient max |gpu - cpu| "
        "%.3g (max |g| %.3g): %s\n",
        errq, maxq, eg, mg, ok ? "OK" : "MISMATCH");
#ifndef ONE_TF32
    if (!ok) return 1;
#else
    printf("ONE_TF32: one MMA per product (1xTF32), the error above is expected\n");
#endif
  }
  P.check = 0;
  const int local = argc > 3 ? atoi(argv[3]) : 0;
  CK(cudaMemcpyToSymbol(c_local, &local, sizeof local));
  if (local)
    printf("timing only: reduce-scatter and all-gather stores into the own shared memory\n");
  unsigned long long *stamps = P.stamp;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  // time launch() (nu updates) between two events; print it per update
  auto timed = [&](const char *what, auto launch) {
    cudaEventRecord(e0);
    launch();
    cudaEventRecord(e1);
    CK(cudaEventSynchronize(e1));
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    printf("%s: %.2f us per update (%.0f updates/s)\n", what, 1000.0 * ms / nu, nu / (ms / 1000.0));
  };
  char what[64];
  for (int l2w = 0; l2w < 2; l2w++) {
    if (l2w_only >= 0 && l2w != l2w_only) continue;
    P.l2w = l2w, P.stamp = stamps;
    printf("-- %s\n", l2w ? "steps 4-5 read the new critic's layer 1 from L2, copy behind"
                          : "steps 4-5 wait for the new critic's slices in shared memory");
    // timing: nu updates in one launch, and one update per launch
    for (int rep = 0; rep < 2; rep++) {
      CK(cudaLaunchKernelEx(&cfg, slab_update, P, 1, 20));  // warm-up
      CK(cudaMemset(P.stamp, 0, NSTAMP * 8));
      snprintf(what, sizeof what, "%d updates in one launch", nu);
      timed(what, [&] { CK(cudaLaunchKernelEx(&cfg, slab_update, P, 21, nu)); });
    }
    unsigned long long st[NSTAMP];
    CK(cudaMemcpy(st, P.stamp, sizeof st, cudaMemcpyDeviceToHost));
    const char *names[NSTAMP] = {
        "0 sample rows",    "1a l0 x3",       "1a l1 part x3", "1a cluster sync",
        "1b l1+heads+cs",   "2a heads, a'",   "2a l0 x3",      "2a l1 part x3+cs",
        "2b l1+heads+cs",   "3 y, bwd_a+cs",  "3 db1, dW1 x2", "3 dz0, dW0 x2",
        "G1 grid sync",     "critic adam",    "G2 grid sync",  "reload critic",
        "4a l0+l1 part+cs", "4b l1+heads+cs", "5 bwd_a+cs",    "5 bwd_b, dL/da+cs",
        "6 actor bwd_a+cs", "6 actor bwd_b",  "G3 grid sync",  "actor adam",
        "G4 grid sync"};
    double sum = 0;
    for (int i = 0; i < NSTAMP; i++) sum += st[i] / 1000.0 / nu;
    printf("per phase (block 0, us per update; sum %.2f):\n", sum);
    for (int i = 0; i < NSTAMP; i++) printf("  %-16s %6.2f\n", names[i], st[i] / 1000.0 / nu);
    P.stamp = nullptr;
    for (int rep = 0; rep < 2; rep++) {
      snprintf(what, sizeof what, "one update per launch, %d launches", nu);
      timed(what, [&] {
        for (int i = 0; i < nu; i++) CK(cudaLaunchKernelEx(&cfg, slab_update, P, 21 + i, 1));
      });
    }
  }
  return 0;
}
