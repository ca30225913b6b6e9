// Prototype, not part of the build: a measurement of the "slab" split of an MLP chain over
// thread-block clusters (bench/RESULTS.md, GPU session 9; bench/NOTES-perf.md perf7).
// A chain of NL 256 -> 256 ReLU layers over a batch of 256 rows, split into slabs of 16 rows, one
// cluster of 8 blocks per slab: block j of a cluster computes output columns [32 j, 32 j + 32) of
// each layer on tensor cores (3xTF32), its weight slice copied one layer ahead, the layer's input
// rows gathered from the cluster's blocks through distributed shared memory, a cluster barrier
// between layers. The output is checked against a float64 CPU reference.
//   nvcc -O3 -arch=sm_90 -std=c++17 -o slab_chain bench/proto/slab_chain.cu
//   (build options: -DFAST_SPLIT, -DFAST_SPLIT -DONE_TF32)
//   ./slab_chain NL [BULK [MODE]]
// FAST_SPLIT: the 3xTF32 split by integer operations instead of cvt.rna (as kernels/sac_fused.cu
// since 3922de6). ONE_TF32 (with FAST_SPLIT): one MMA per product, x rounded to TF32 (1xTF32, about
// 1e-3 relative; the reference check then reports the larger error). BULK = 1: weight slices by
// cp.async.bulk with an mbarrier (0: 16-byte cp.async). MODE (default: all): 0 cluster barrier per
// layer; 1 grid.sync + cluster barrier; 2 no gather, 3 no MMAs, 4 no cluster barrier (2-4: timing
// only, wrong results); 5, 6 a hand-written grid barrier (release add + acquire polls; threadfence
// + atomicAdd) + cluster barrier.
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
#define XS (H + 4)  // padded row stride in shared memory
#define CS 8
#define NC (H / CS)  // 32 columns per CTA
#define RS 16        // rows per slab
#define NT (NC / 8)  // n8 tiles per CTA (4)
#define KP (8 / NT)  // k parts (2)

#ifndef FAST_SPLIT
// x = hi + lo as two TF32 values (cvt.rna for both)
static __device__ __forceinline__ void split(float x, uint32_t &hi, uint32_t &lo) {
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(hi) : "f"(x));
  float r = x - __uint_as_float(hi);
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(lo) : "f"(r));
}
#else
#define split split_fast
#endif

struct Smem {
  float ws[2][NC * XS];  // weight slices (out rows, in) of this layer and the next
  float xs[RS * XS];     // the layer's input rows
  float os[2][RS * NC];  // this CTA's output slice, by layer parity (read by the peers)
  float part[KP][RS * NC];
  float bs[16][NC];  // bias slices of up to 16 layers
  unsigned long long bar[2];
};
static __device__ __forceinline__ unsigned sa(const void *p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

__global__ void __launch_bounds__(256, 1)
    slab_chain(const float *__restrict__ W, const float *__restrict__ bias,
               const float *__restrict__ X0, float *__restrict__ Y, int nl, int mode, int bulk,
               unsigned *bar_ctr, unsigned bar_base) {
  extern __shared__ __align__(16) unsigned char dyn[];
  Smem &s = *reinterpret_cast<Smem *>(dyn);
  cg::cluster_group cl = cg::this_cluster();
  const int rank = (int)cl.block_rank(), slab = blockIdx.x / CS, r0 = slab * RS;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  if (bulk && tid == 0) {
    for (int b = 0; b < 2; b++)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(sa(&s.bar[b])));
    asm volatile("fence.mbarrier_init.release.cluster;");
  }
  __syncthreads();
  auto load_w = [&](int l) {
    const float *src = W + (size_t)l * H * H + (size_t)rank * NC * H;
    float *dst = s.ws[l & 1];
    if (bulk) {
      if (warp == 0) {
        asm volatile("fence.proxy.async.shared::cta;");
        if (lane == 0)
          asm volatile(
              "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sa(&s.bar[l & 1])),
              "r"(NC * H * 4));
        __syncwarp();
        for (int n = lane; n < NC; n += 32)
          asm volatile(
              "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
              "[%3];" ::"r"(sa(dst + n * XS)),
              "l"(src + (size_t)n * H), "r"(H * 4), "r"(sa(&s.bar[l & 1]))
              : "memory");
      }
      return;
    }
    for (int i = tid; i < NC * H / 4; i += 256) {
      const int n = i / (H / 4), k = (i % (H / 4)) * 4;
      cp16(dst + n * XS + k, src + (size_t)n * H + k);
    }
    asm volatile("cp.async.commit_group;");
  };
  for (int i = tid; i < nl * NC && i < 16 * NC; i += 256)
    s.bs[i / NC][i % NC] = bias[(size_t)(i / NC) * H + rank * NC + i % NC];
  load_w(0);
  if (nl > 1) load_w(1);
  // layer 0's input from global
  for (int i = tid; i < RS * H / 4; i += 256) {
    const int r = i / (H / 4), k = (i % (H / 4)) * 4;
    *reinterpret_cast<float4 *>(&s.xs[r * XS + k]) =
        *reinterpret_cast<const float4 *>(&X0[(size_t)(r0 + r) * H + k]);
  }
  for (int l = 0; l < nl; l++) {
    if (l > 0 && mode != 2) {
      // gather the rows from the cluster's output slices of layer l - 1: all loads, then stores
      constexpr int PER = CS * RS * NC / 4 / 256;
      float4 v[PER];
#pragma unroll
      for (int q = 0; q < PER; q++) {
        const int i = tid + q * 256;
        const int p = i / (RS * NC / 4), j = (i % (RS * NC / 4)) * 4;
        const float *po = cl.map_shared_rank(s.os[(l - 1) & 1], p);
        v[q] = *reinterpret_cast<const float4 *>(&po[j]);
      }
#pragma unroll
      for (int q = 0; q < PER; q++) {
        const int i = tid + q * 256;
        const int p = i / (RS * NC / 4), j = (i % (RS * NC / 4)) * 4, r = j / NC, c = j % NC;
        *reinterpret_cast<float4 *>(&s.xs[r * XS + p * NC + c]) = v[q];
      }
    }
    if (bulk) {
      const unsigned par = (l >> 1) & 1;
      unsigned done = 0;
      while (!done)
        asm volatile(
            "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, "
            "0, p; }"
            : "=r"(done)
            : "r"(sa(&s.bar[l & 1])), "r"(par)
            : "memory");
    } else if (l + 1 < nl)
      asm volatile("cp.async.wait_group 1;");
    else
      asm volatile("cp.async.wait_group 0;");
    __syncthreads();
    const float *ws = s.ws[l & 1];
    const int nt = warp % NT, kp = warp / NT;
    float acc4[4][4] = {};
    if (mode != 3) {
#pragma unroll
      for (int ks0 = kp * (H / KP); ks0 < (kp + 1) * (H / KP); ks0 += 32) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
          const int ks = ks0 + 8 * u;
          uint32_t ah[4], al[4], bh0, bl0, bh1, bl1;
          split(s.xs[gid * XS + ks + tig], ah[0], al[0]);
          split(s.xs[(gid + 8) * XS + ks + tig], ah[1], al[1]);
          split(s.xs[gid * XS + ks + tig + 4], ah[2], al[2]);
          split(s.xs[(gid + 8) * XS + ks + tig + 4], ah[3], al[3]);
          split(ws[(nt * 8 + gid) * XS + ks + tig], bh0, bl0);
          split(ws[(nt * 8 + gid) * XS + ks + tig + 4], bh1, bl1);
#ifndef ONE_TF32
          mma(acc4[u], al, bh0, bh1);
          mma(acc4[u], ah, bl0, bl1);
#else
          (void)al, (void)bl0, (void)bl1;
#endif
          mma(acc4[u], ah, bh0, bh1);
        }
      }
    }
    float acc[4];
#pragma unroll
    for (int q = 0; q < 4; q++) acc[q] = (acc4[0][q] + acc4[1][q]) + (acc4[2][q] + acc4[3][q]);
    // c0, c1: row gid, cols 2 tig, 2 tig + 1; c2, c3: row gid + 8
    float *pp = s.part[kp];
    const int c = nt * 8 + 2 * tig;
    pp[gid * NC + c] = acc[0], pp[gid * NC + c + 1] = acc[1];
    pp[(gid + 8) * NC + c] = acc[2], pp[(gid + 8) * NC + c + 1] = acc[3];
    __syncthreads();
    if (l + 2 < nl) load_w(l + 2);  // ws[l & 1] is free now
    float *os = s.os[l & 1];
    for (int i = tid; i < RS * NC; i += 256) {
      float v = s.bs[l & 15][i % NC];
      for (int q = 0; q < KP; q++) v += s.part[q][i];
      os[i] = fmaxf(v, 0.0f);
    }
    if (l == nl - 1) {
      for (int i = tid; i < RS * NC; i += 256)
        Y[(size_t)(r0 + i / NC) * H + rank * NC + i % NC] = os[i];
    }
    if (mode == 1) cg::this_grid().sync();
    if (mode == 5 || mode == 6) {
      // custom grid barrier: a monotonic counter, release add, acquire polls
      __syncthreads();
      if (tid == 0) {
        const unsigned target = bar_base + (unsigned)(l + 1) * gridDim.x;
        if (mode == 5)
          asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(bar_ctr) : "memory");
        else {
          __threadfence();
          atomicAdd(bar_ctr, 1u);
        }
        unsigned v;
        do {
          asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(bar_ctr) : "memory");
        } while ((int)(v - target) < 0);
      }
      __syncthreads();
    }
    if (mode == 4) continue;  // no cluster barrier (wrong results: timing only)
    cl.sync();
  }
  cl.sync();  // peers stay alive while their shared memory may be read
}

int main(int argc, char **argv) {
  const int B = 256, nl = argc > 1 ? atoi(argv[1]) : 8;
  const size_t nw = (size_t)nl * H * H;
  std::vector<float> w(nw), b((size_t)nl * H), x((size_t)B * H), y((size_t)B * H);
  srand(1);
  for (auto &v : w) v = ((float)rand() / RAND_MAX * 2 - 1) * 0.11f;
  for (auto &v : b) v = ((float)rand() / RAND_MAX * 2 - 1) * 0.1f;
  for (auto &v : x) v = (float)rand() / RAND_MAX;
  float *dw, *db, *dx, *dy;
  CK(cudaMalloc(&dw, nw * 4));
  CK(cudaMalloc(&db, b.size() * 4));
  CK(cudaMalloc(&dx, x.size() * 4));
  CK(cudaMalloc(&dy, y.size() * 4));
  CK(cudaMemcpy(dw, w.data(), nw * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b.data(), b.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  const int smem = (int)sizeof(Smem);
  CK(cudaFuncSetAttribute(slab_chain, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const int grid = B / RS * CS;
  printf("grid %d blocks, cluster %d, smem %d B, %d layers\n", grid, CS, smem, nl);
  {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(grid), cfg.blockDim = dim3(256), cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = CS, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
    cfg.attrs = at, cfg.numAttrs = 1;
    int ncl = 0;
    CK(cudaOccupancyMaxActiveClusters(&ncl, slab_chain, &cfg));
    printf("max active clusters of %d: %d\n", CS, ncl);
  }
  const char *names[] = {"cluster.sync per layer",
                         "grid.sync + cluster.sync",
                         "no gather (timing only)",
                         "no MMA (timing only)",
                         "no cluster.sync (timing only)",
                         "custom barrier (red.release + ld.acquire) + cluster.sync",
                         "custom barrier (threadfence + atomicAdd) + cluster.sync"};
  const int bulk = argc > 2 ? atoi(argv[2]) : 0;
  printf("weight slices by %s\n", bulk ? "bulk copies (cp.async.bulk, one per weight row, mbarrier)"
                                       : "cp.async 16-byte copies");
  const int only = argc > 3 ? atoi(argv[3]) : -1;
  unsigned *ctr;
  CK(cudaMalloc(&ctr, 4));
  CK(cudaMemset(ctr, 0, 4));
  unsigned base = 0;
  for (int mode = 0; mode < 7; mode++) {
    if (only >= 0 && mode != only) continue;
    cudaLaunchAttribute at[2];
    const cudaLaunchConfig_t cfg = coop_cluster_config(grid, 256, smem, CS, at);
    for (int len = 1; len <= nl; len = len == 1 ? nl : nl + 1) {
      for (int i = 0; i < 20; i++) {
        CK(cudaLaunchKernelEx(&cfg, slab_chain, dw, db, dx, dy, len, mode, bulk, ctr, base));
        base += (mode == 5 || mode == 6) ? len * grid : 0;
      }
      CK(cudaDeviceSynchronize());
      cudaEvent_t e0, e1;
      cudaEventCreate(&e0), cudaEventCreate(&e1);
      const int reps = 200;
      cudaEventRecord(e0);
      for (int i = 0; i < reps; i++) {
        CK(cudaLaunchKernelEx(&cfg, slab_chain, dw, db, dx, dy, len, mode, bulk, ctr, base));
        base += (mode == 5 || mode == 6) ? len * grid : 0;
      }
      cudaEventRecord(e1);
      CK(cudaEventSynchronize(e1));
      float ms;
      cudaEventElapsedTime(&ms, e0, e1);
      printf("mode %d (%s), %d layers: %.2f us per launch\n", mode, names[mode], len,
             1000.0 * ms / reps);
    }
    CK(cudaMemcpy(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost));
    // CPU double reference
    std::vector<double> cur(x.begin(), x.end()), nxt((size_t)B * H);
    for (int l = 0; l < nl; l++) {
      for (int r = 0; r < B; r++)
        for (int n = 0; n < H; n++) {
          double v = b[(size_t)l * H + n];
          for (int k = 0; k < H; k++)
            v += cur[(size_t)r * H + k] * w[(size_t)l * H * H + (size_t)n * H + k];
          nxt[(size_t)r * H + n] = v > 0 ? v : 0;
        }
      cur.swap(nxt);
    }
    double md = 0, mx = 0;
    for (size_t i = 0; i < y.size(); i++)
      md = fmax(md, fabs(y[i] - cur[i])), mx = fmax(mx, fabs(cur[i]));
    printf("mode %d: max |gpu - cpu double| %.3g (max |ref| %.3g) %s\n", mode, md, mx,
           md <= 1e-4 * fmax(mx, 1.0) ? "OK" : "MISMATCH");
  }
  return 0;
}
