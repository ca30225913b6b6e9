// Not part of the build: shows that compute-sanitizer's racecheck reports a hazard that is not
// there once the warps of a block have run different numbers of named barriers (bar.sync id, 64),
// as the fused update's k quarters do when K does not split evenly. Each warp pair p meets at
// named barrier 1 + p n times, then every thread writes its shared element, __syncthreads, and
// reads another warp's element: ordered by the block barrier in both modes. Mode 0 (every pair 2
// times): no hazard. Mode 1 (pairs 0-1 3 times, pairs 2-3 once): racecheck reports a race on the
// write. (H100, compute-sanitizer 2025.3.1, CUDA 13; bench/RESULTS.md GPU session 12.) This is
// why `make RACECHECK=1` builds the kernels with equal named-barrier counts for racecheck runs.
//   nvcc -O2 -arch=sm_90 -lineinfo -o racecheck_named bench/proto/racecheck_named.cu
//   compute-sanitizer --tool racecheck ./racecheck_named 0   (and 1)
#include <cstdio>
#include <cstdlib>

__global__ void named_then_block(int *out, int mode) {
  __shared__ int buf[256];
  const int pair = (threadIdx.x >> 5) >> 1;
  const int n = mode == 0 ? 2 : (pair < 2 ? 3 : 1);
  for (int i = 0; i < n; i++) asm volatile("bar.sync %0, 64;" ::"r"(1 + pair) : "memory");
  buf[threadIdx.x] = threadIdx.x + blockIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[(threadIdx.x + 37) % 256];
}

int main(int argc, char **argv) {
  const int mode = argc > 1 ? atoi(argv[1]) : 0;
  int *out;
  if (cudaMalloc(&out, 4 * 256 * sizeof(int)) != cudaSuccess) return 1;
  named_then_block<<<4, 256>>>(out, mode);
  printf("mode %d: %s\n", mode, cudaGetErrorString(cudaDeviceSynchronize()));
  cudaFree(out);
  return 0;
}
