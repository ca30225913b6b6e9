// Devices: the CPU backend and, when built with TDM_CUDA, one CUDA GPU with its stream, cuBLAS
// handle and workspace. Buffers, copies, graphs and timers for both.
#include "tandem/dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef TDM_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#define CU(call)                                                                       \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess)                                                             \
      return tdm_seterr(TDM_ERR_CUDA, __FILE__, __LINE__, "%s failed: %s (%s)", #call, \
                        cudaGetErrorString(e_), cudaGetErrorName(e_));                 \
  } while (0)

struct tdm_graph {
  cudaGraphExec_t exec;
  cudaGraph_t graph;
};
#endif

bool tdm_cuda_built(void) {
#ifdef TDM_CUDA
  return true;
#else
  return false;
#endif
}

int tdm_cuda_device_count(void) {
#ifdef TDM_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

tdm_status tdm_gpu_info_get(int ordinal, tdm_gpu_info *info) {
  memset(info, 0, sizeof *info);
#ifdef TDM_CUDA
  struct cudaDeviceProp prop;
  CU(cudaGetDeviceProperties(&prop, ordinal));
  snprintf(info->name, sizeof info->name, "%s", prop.name);
  info->cc_major = prop.major;
  info->cc_minor = prop.minor;
  info->sm_count = prop.multiProcessorCount;
  int prev = 0;
  CU(cudaGetDevice(&prev));
  CU(cudaSetDevice(ordinal));
  CU(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
  CU(cudaSetDevice(prev));
  return TDM_OK;
#else
  (void)ordinal;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                  "this build has no CUDA backend (rebuild with nvcc present)");
#endif
}

bool tdm_dev_parse(const char *spec, int *ordinal) {
  if (!strcmp(spec, "cpu")) {
    *ordinal = -1;
    return true;
  }
  if (!strcmp(spec, "cuda")) {
    *ordinal = 0;
    return true;
  }
  if (strncmp(spec, "cuda:", 5) || !spec[5]) return false;
  int n = 0;
  for (const char *p = spec + 5; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    n = n * 10 + (*p - '0');
    if (n >= 4096) return false;  // also keeps n from overflowing on long digit strings
  }
  *ordinal = n;
  return true;
}

tdm_status tdm_dev_open(const char *spec, int threads, tdm_dev **out) {
  *out = NULL;
  int want_cuda = -1;  // -1 cpu, >= 0 ordinal
  // a malformed string is refused before any CUDA call
  if (!spec || !strcmp(spec, "auto")) {
    want_cuda = tdm_cuda_device_count() > 0 ? 0 : -1;
  } else if (!tdm_dev_parse(spec, &want_cuda)) {
    return TDM_FAIL(TDM_ERR_ARG,
                    "device \"%s\": expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\" with N a "
                    "GPU index in 0..4095 written in digits only",
                    spec);
  } else if (want_cuda >= 0) {
    if (!tdm_cuda_built()) {
      return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                      "device \"%s\": this build has no CUDA backend (install the CUDA toolkit "
                      "and rebuild, or use device = \"cpu\")",
                      spec);
    }
    int n = tdm_cuda_device_count();
    if (n == 0) {
      return TDM_FAIL(TDM_ERR_ARG,
                      "device \"%s\": no GPU is visible (tandem devices lists them); "
                      "use \"cpu\" or \"auto\"",
                      spec);
    }
    if (want_cuda >= n) {
      return TDM_FAIL(TDM_ERR_ARG,
                      "device \"%s\": %d GPU(s) visible; use cuda:0..cuda:%d or \"cpu\"", spec, n,
                      n - 1);
    }
  }
  tdm_dev *d = calloc(1, sizeof *d);
  if (!d) return TDM_FAIL(TDM_ERR_OOM, "out of host memory opening a device");
  d->ordinal = -1;
  tdm_status st = tdm_pool_create(threads, &d->pool);
  if (st != TDM_OK) {
    free(d);
    return st;
  }
  if (want_cuda < 0) {
    d->kind = TDM_DEV_CPU;
    snprintf(d->name, sizeof d->name, "cpu (%d threads)", tdm_pool_size(d->pool));
    *out = d;
    return TDM_OK;
  }
#ifdef TDM_CUDA
  d->kind = TDM_DEV_CUDA;
  d->ordinal = want_cuda;
  struct cudaDeviceProp prop;
  cudaError_t e = cudaSetDevice(want_cuda);
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, want_cuda);
  if (e == cudaSuccess)
    e = cudaStreamCreateWithFlags((cudaStream_t *)&d->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    tdm_pool_destroy(d->pool);
    free(d);
    return TDM_FAIL(TDM_ERR_CUDA, "opening cuda:%d: %s", want_cuda, cudaGetErrorString(e));
  }
  d->sm_count = prop.multiProcessorCount;
  snprintf(d->name, sizeof d->name, "cuda:%d %s", want_cuda, prop.name);
  cublasStatus_t cs = cublasCreate((cublasHandle_t *)&d->cublas);
  if (cs == CUBLAS_STATUS_SUCCESS)
    cs = cublasSetStream((cublasHandle_t)d->cublas, (cudaStream_t)d->stream);
  d->workspace_bytes = 32u << 20;
  if (cs == CUBLAS_STATUS_SUCCESS && cudaMalloc(&d->workspace, d->workspace_bytes) != cudaSuccess) {
    cs = CUBLAS_STATUS_ALLOC_FAILED;
  }
  // a workspace set up front lets cuBLAS run inside graph capture
  if (cs == CUBLAS_STATUS_SUCCESS)
    cs = cublasSetWorkspace((cublasHandle_t)d->cublas, d->workspace, d->workspace_bytes);
  if (cs != CUBLAS_STATUS_SUCCESS) {
    tdm_dev_close(d);
    return TDM_FAIL(TDM_ERR_CUDA, "cuBLAS set-up on cuda:%d failed: %s", want_cuda,
                    cublasGetStatusString(cs));
  }
  *out = d;
  return TDM_OK;
#else
  tdm_pool_destroy(d->pool);
  free(d);
  return TDM_FAIL(TDM_ERR_UNSUPPORTED, "no CUDA backend in this build");
#endif
}

void tdm_dev_close(tdm_dev *d) {
  if (!d) return;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaSetDevice(d->ordinal);
    if (d->stream) cudaStreamSynchronize((cudaStream_t)d->stream);
    if (d->cublas) cublasDestroy((cublasHandle_t)d->cublas);
    if (d->workspace) cudaFree(d->workspace);
    if (d->stream) cudaStreamDestroy((cudaStream_t)d->stream);
  }
#endif
  tdm_pool_destroy(d->pool);
  free(d);
}

static size_t host_mem_free(size_t *total) {
  long pages = sysconf(_SC_AVPHYS_PAGES), all = sysconf(_SC_PHYS_PAGES), sz = sysconf(_SC_PAGESIZE);
  if (total) *total = (size_t)all * (size_t)sz;
  return (size_t)pages * (size_t)sz;
}

tdm_status tdm_dev_mem_info(tdm_dev *d, size_t *free_bytes, size_t *total_bytes) {
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaSetDevice(d->ordinal));
    CU(cudaMemGetInfo(free_bytes, total_bytes));
    return TDM_OK;
  }
#endif
  (void)d;
  *free_bytes = host_mem_free(total_bytes);
  return TDM_OK;
}

tdm_status tdm_dev_alloc(tdm_dev *d, size_t bytes, void **out) {
  *out = NULL;
  if (bytes == 0) bytes = 64;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      return TDM_FAIL(TDM_ERR_OOM, "out of GPU memory on %s: asked for %zu bytes, %zu of %zu free",
                      d->name, bytes, fr, tot);
    }
    return TDM_OK;
  }
#endif
  (void)d;
  *out = tdm_malloc_aligned(bytes);
  if (!*out) {
    size_t tot = 0, fr = host_mem_free(&tot);
    return TDM_FAIL(TDM_ERR_OOM, "out of host memory: asked for %zu bytes, %zu of %zu free", bytes,
                    fr, tot);
  }
  return TDM_OK;
}

void tdm_dev_free(tdm_dev *d, void *p) {
  if (!p) return;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaFree(p);
    return;
  }
#endif
  (void)d;
  tdm_free_aligned(p);
}

tdm_status tdm_host_alloc(tdm_dev *d, size_t bytes, void **out) {
  *out = NULL;
  if (bytes == 0) bytes = 64;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    if (cudaMallocHost(out, bytes) != cudaSuccess) {
      cudaGetLastError();
      return TDM_FAIL(TDM_ERR_OOM, "out of pinned host memory: asked for %zu bytes", bytes);
    }
    return TDM_OK;
  }
#endif
  (void)d;
  *out = tdm_malloc_aligned(bytes);
  if (!*out) return TDM_FAIL(TDM_ERR_OOM, "out of host memory: asked for %zu bytes", bytes);
  return TDM_OK;
}

void tdm_host_free(tdm_dev *d, void *p) {
  if (!p) return;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaFreeHost(p);
    return;
  }
#endif
  (void)d;
  tdm_free_aligned(p);
}

#ifdef TDM_CUDA
static tdm_status copy(tdm_dev *d, void *dst, const void *src, size_t bytes,
                       enum cudaMemcpyKind k) {
  if (bytes == 0) return TDM_OK;
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaMemcpyAsync(dst, src, bytes, k, (cudaStream_t)d->stream));
    return TDM_OK;
  }
  memmove(dst, src, bytes);
  return TDM_OK;
}
tdm_status tdm_dev_h2d(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n, cudaMemcpyHostToDevice);
}
tdm_status tdm_dev_d2h(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n, cudaMemcpyDeviceToHost);
}
tdm_status tdm_dev_d2d(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n, cudaMemcpyDeviceToDevice);
}
#else
static tdm_status copy(tdm_dev *d, void *dst, const void *src, size_t bytes) {
  (void)d;
  if (bytes) memmove(dst, src, bytes);
  return TDM_OK;
}
tdm_status tdm_dev_h2d(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n);
}
tdm_status tdm_dev_d2h(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n);
}
tdm_status tdm_dev_d2d(tdm_dev *d, void *dst, const void *src, size_t n) {
  return copy(d, dst, src, n);
}
#endif

tdm_status tdm_dev_memset(tdm_dev *d, void *dst, int byte, size_t bytes) {
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaMemsetAsync(dst, byte, bytes, (cudaStream_t)d->stream));
    return TDM_OK;
  }
#endif
  (void)d;
  memset(dst, byte, bytes);
  return TDM_OK;
}

tdm_status tdm_dev_sync(tdm_dev *d) {
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaStreamSynchronize((cudaStream_t)d->stream));
    d->syncs++;
    return TDM_OK;
  }
#endif
  (void)d;
  return TDM_OK;
}

tdm_status tdm_cuda_check_launch(const char *file, int line, const char *what) {
#ifdef TDM_CUDA
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return tdm_seterr(TDM_ERR_CUDA, file, line, "kernel %s failed to launch: %s", what,
                      cudaGetErrorString(e));
#else
  (void)file;
  (void)line;
  (void)what;
#endif
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// graphs

tdm_status tdm_graph_begin(tdm_dev *d) {
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    if (d->capturing)
      return TDM_FAIL(TDM_ERR_ARG, "graph capture already in progress on %s", d->name);
    CU(cudaStreamBeginCapture((cudaStream_t)d->stream, cudaStreamCaptureModeThreadLocal));
    d->capturing = 1;
    return TDM_OK;
  }
#endif
  (void)d;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                  "CUDA graphs need a GPU device; on the CPU call the code directly");
}

tdm_status tdm_graph_end(tdm_dev *d, tdm_graph **out) {
  *out = NULL;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    if (!d->capturing) return TDM_FAIL(TDM_ERR_ARG, "tdm_graph_end without tdm_graph_begin");
    d->capturing = 0;
    tdm_graph *g = calloc(1, sizeof *g);
    if (!g) return TDM_FAIL(TDM_ERR_OOM, "out of host memory");
    cudaError_t e = cudaStreamEndCapture((cudaStream_t)d->stream, &g->graph);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&g->exec, g->graph, 0);
    if (e != cudaSuccess) {
      if (g->graph) cudaGraphDestroy(g->graph);
      free(g);
      cudaGetLastError();
      return TDM_FAIL(TDM_ERR_CUDA,
                      "graph capture on %s failed: %s (an op in the captured region "
                      "synchronised or allocated)",
                      d->name, cudaGetErrorString(e));
    }
    *out = g;
    return TDM_OK;
  }
#endif
  (void)d;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED, "CUDA graphs need a GPU device");
}

tdm_status tdm_graph_launch(tdm_dev *d, tdm_graph *g) {
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA && g) {
    CU(cudaGraphLaunch(g->exec, (cudaStream_t)d->stream));
    return TDM_OK;
  }
#endif
  (void)d;
  (void)g;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED, "CUDA graphs need a GPU device");
}

tdm_status tdm_graph_num_nodes(const tdm_graph *g, int *nodes, int *kernels) {
  if (nodes) *nodes = 0;
  if (kernels) *kernels = 0;
#ifdef TDM_CUDA
  if (!g) return TDM_FAIL(TDM_ERR_ARG, "tdm_graph_num_nodes: g is NULL");
  size_t n = 0;
  CU(cudaGraphGetNodes(g->graph, NULL, &n));
  cudaGraphNode_t *list = calloc(n ? n : 1, sizeof *list);
  if (!list) return TDM_FAIL(TDM_ERR_OOM, "out of host memory for %zu graph nodes", n);
  cudaError_t e = cudaGraphGetNodes(g->graph, list, &n);
  int nk = 0;
  for (size_t i = 0; e == cudaSuccess && i < n; i++) {
    enum cudaGraphNodeType t;
    e = cudaGraphNodeGetType(list[i], &t);
    if (e == cudaSuccess && t == cudaGraphNodeTypeKernel) nk++;
  }
  free(list);
  CU(e);
  if (nodes) *nodes = (int)n;
  if (kernels) *kernels = nk;
  return TDM_OK;
#else
  (void)g;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED, "CUDA graphs need a GPU device");
#endif
}

void tdm_graph_destroy(tdm_graph *g) {
#ifdef TDM_CUDA
  if (!g) return;
  cudaGraphExecDestroy(g->exec);
  cudaGraphDestroy(g->graph);
  free(g);
#else
  (void)g;
#endif
}

tdm_status tdm_graph_critical_path(const tdm_graph *g, int *kernels) {
  if (kernels) *kernels = 0;
#ifdef TDM_CUDA
  if (!g) return TDM_FAIL(TDM_ERR_ARG, "tdm_graph_critical_path: g is NULL");
  size_t n = 0, ne = 0;
  CU(cudaGraphGetNodes(g->graph, NULL, &n));
#if CUDART_VERSION >= 13000
  CU(cudaGraphGetEdges(g->graph, NULL, NULL, NULL, &ne));
#else
  CU(cudaGraphGetEdges(g->graph, NULL, NULL, &ne));
#endif
  cudaGraphNode_t *nodes = calloc(n + 2 * ne + 1, sizeof *nodes);
  int *w = calloc(n + 1, sizeof *w), *len = calloc(n + 1, sizeof *len);
  int *from = calloc(ne + 1, sizeof *from), *to = calloc(ne + 1, sizeof *to);
  cudaError_t e = cudaSuccess;
  if (!nodes || !w || !len || !from || !to) {
    free(nodes), free(w), free(len), free(from), free(to);
    return TDM_FAIL(TDM_ERR_OOM, "out of host memory for %zu graph nodes", n);
  }
  cudaGraphNode_t *ef = nodes + n, *et = nodes + n + ne;
  e = cudaGraphGetNodes(g->graph, nodes, &n);
#if CUDART_VERSION >= 13000
  // edge data asked for too: without it, edges carrying any data make the query fail
  cudaGraphEdgeData *ed = calloc(ne + 1, sizeof *ed);
  if (!ed) e = cudaErrorMemoryAllocation;
  if (e == cudaSuccess) e = cudaGraphGetEdges(g->graph, ef, et, ed, &ne);
  free(ed);
#else
  if (e == cudaSuccess) e = cudaGraphGetEdges(g->graph, ef, et, &ne);
#endif
  for (size_t i = 0; e == cudaSuccess && i < n; i++) {
    enum cudaGraphNodeType t;
    e = cudaGraphNodeGetType(nodes[i], &t);
    w[i] = t == cudaGraphNodeTypeKernel;
  }
  // edges as node indices (quadratic lookup: graphs here have tens of nodes)
  for (size_t k = 0; e == cudaSuccess && k < ne; k++) {
    from[k] = to[k] = -1;
    for (size_t i = 0; i < n; i++) {
      if (nodes[i] == ef[k]) from[k] = (int)i;
      if (nodes[i] == et[k]) to[k] = (int)i;
    }
  }
  // longest path by relaxation, n rounds at most (a DAG settles in depth + 1 rounds)
  int best = 0;
  if (e == cudaSuccess) {
    for (size_t i = 0; i < n; i++) len[i] = w[i];
    for (size_t round = 0; round < n; round++) {
      int changed = 0;
      for (size_t k = 0; k < ne; k++) {
        if (from[k] < 0 || to[k] < 0) continue;
        int v = len[from[k]] + w[to[k]];
        if (v > len[to[k]]) len[to[k]] = v, changed = 1;
      }
      if (!changed) break;
    }
    for (size_t i = 0; i < n; i++)
      if (len[i] > best) best = len[i];
  }
  free(nodes), free(w), free(len), free(from), free(to);
  CU(e);
  if (kernels) *kernels = best;
  return TDM_OK;
#else
  (void)g;
  return TDM_FAIL(TDM_ERR_UNSUPPORTED, "CUDA graphs need a GPU device");
#endif
}

// ---------------------------------------------------------------------------------------------
// lanes

struct tdm_dev_lane {
  tdm_dev *dev;
  int state;  // 0 idle, 1 dev's ops go to the lane, 2 back on the main stream, join pending
  void *stream, *cublas, *workspace;  // the lane's (GPU)
  size_t workspace_bytes;
  void *ev_fork, *ev_join;                 // cudaEvent_t, timing off
  void *own_stream, *own_cublas, *own_ws;  // dev's, saved at fork
  size_t own_ws_bytes;
};

tdm_status tdm_dev_lane_create(tdm_dev *d, tdm_dev_lane **out) {
  *out = NULL;
  tdm_dev_lane *l = calloc(1, sizeof *l);
  if (!l) return TDM_FAIL(TDM_ERR_OOM, "out of host memory for a device lane");
  l->dev = d;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaError_t e = cudaSetDevice(d->ordinal);
    if (e == cudaSuccess)
      e = cudaStreamCreateWithFlags((cudaStream_t *)&l->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
      e = cudaEventCreateWithFlags((cudaEvent_t *)&l->ev_fork, cudaEventDisableTiming);
    if (e == cudaSuccess)
      e = cudaEventCreateWithFlags((cudaEvent_t *)&l->ev_join, cudaEventDisableTiming);
    // the same workspace size as the main handle: cuBLAS picks its algorithm from it, and the
    // lane must compute bit for bit what the main stream would
    l->workspace_bytes = d->workspace_bytes;
    if (e == cudaSuccess) e = cudaMalloc(&l->workspace, l->workspace_bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      tdm_dev_lane_destroy(l);
      return TDM_FAIL(TDM_ERR_CUDA, "creating a device lane on %s: %s", d->name,
                      cudaGetErrorString(e));
    }
    cublasStatus_t cs = cublasCreate((cublasHandle_t *)&l->cublas);
    // stream first: cublasSetStream resets the workspace
    if (cs == CUBLAS_STATUS_SUCCESS)
      cs = cublasSetStream((cublasHandle_t)l->cublas, (cudaStream_t)l->stream);
    if (cs == CUBLAS_STATUS_SUCCESS)
      cs = cublasSetWorkspace((cublasHandle_t)l->cublas, l->workspace, l->workspace_bytes);
    if (cs != CUBLAS_STATUS_SUCCESS) {
      tdm_dev_lane_destroy(l);
      return TDM_FAIL(TDM_ERR_CUDA, "cuBLAS set-up of a device lane on %s failed: %s", d->name,
                      cublasGetStatusString(cs));
    }
  }
#endif
  *out = l;
  return TDM_OK;
}

void tdm_dev_lane_destroy(tdm_dev_lane *l) {
  if (!l) return;
  if (l->state == 1) tdm_dev_lane_abort(l->dev, l);
#ifdef TDM_CUDA
  if (l->dev->kind == TDM_DEV_CUDA) {
    cudaSetDevice(l->dev->ordinal);
    if (l->stream) cudaStreamSynchronize((cudaStream_t)l->stream);
    if (l->cublas) cublasDestroy((cublasHandle_t)l->cublas);
    if (l->workspace) cudaFree(l->workspace);
    if (l->ev_fork) cudaEventDestroy((cudaEvent_t)l->ev_fork);
    if (l->ev_join) cudaEventDestroy((cudaEvent_t)l->ev_join);
    if (l->stream) cudaStreamDestroy((cudaStream_t)l->stream);
  }
#endif
  free(l);
}

tdm_status tdm_dev_fork(tdm_dev *d, tdm_dev_lane *l) {
  if (!l || l->dev != d)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_dev_fork: the lane is NULL or belongs to another device");
  if (l->state != 0)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_dev_fork: the lane is %s; join it before forking again",
                    l->state == 1 ? "already forked" : "not joined");
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaEventRecord((cudaEvent_t)l->ev_fork, (cudaStream_t)d->stream));
    CU(cudaStreamWaitEvent((cudaStream_t)l->stream, (cudaEvent_t)l->ev_fork, 0));
    l->own_stream = d->stream, l->own_cublas = d->cublas;
    l->own_ws = d->workspace, l->own_ws_bytes = d->workspace_bytes;
    d->stream = l->stream, d->cublas = l->cublas;
    d->workspace = l->workspace, d->workspace_bytes = l->workspace_bytes;
  }
#endif
  l->state = 1;
  return TDM_OK;
}

tdm_status tdm_dev_back(tdm_dev *d, tdm_dev_lane *l) {
  if (!l || l->dev != d || l->state != 1)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_dev_back: the lane is not forked on this device");
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    cudaError_t e = cudaEventRecord((cudaEvent_t)l->ev_join, (cudaStream_t)l->stream);
    d->stream = l->own_stream, d->cublas = l->own_cublas;
    d->workspace = l->own_ws, d->workspace_bytes = l->own_ws_bytes;
    if (e != cudaSuccess) {
      l->state = 0;
      return TDM_FAIL(TDM_ERR_CUDA, "tdm_dev_back: recording the lane's end: %s",
                      cudaGetErrorString(e));
    }
  }
#endif
  l->state = 2;
  return TDM_OK;
}

tdm_status tdm_dev_join(tdm_dev *d, tdm_dev_lane *l) {
  if (!l || l->dev != d || l->state != 2)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_dev_join: the lane is %s",
                    !l || l->dev != d ? "not this device's"
                    : l->state == 0   ? "not forked"
                                      : "still current (call tdm_dev_back first)");
  l->state = 0;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA)
    CU(cudaStreamWaitEvent((cudaStream_t)d->stream, (cudaEvent_t)l->ev_join, 0));
#endif
  return TDM_OK;
}

void tdm_dev_lane_abort(tdm_dev *d, tdm_dev_lane *l) {
  if (!l || l->dev != d) return;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA && l->state == 1) {
    d->stream = l->own_stream, d->cublas = l->own_cublas;
    d->workspace = l->own_ws, d->workspace_bytes = l->own_ws_bytes;
  }
#endif
  l->state = 0;
}

// ---------------------------------------------------------------------------------------------
// timers

tdm_status tdm_dev_timer_start(tdm_dev *d, tdm_dev_timer *t) {
  memset(t, 0, sizeof *t);
  t->dev = d;
#ifdef TDM_CUDA
  if (d->kind == TDM_DEV_CUDA) {
    CU(cudaEventCreate((cudaEvent_t *)&t->ev0));
    CU(cudaEventCreate((cudaEvent_t *)&t->ev1));
    CU(cudaEventRecord((cudaEvent_t)t->ev0, (cudaStream_t)d->stream));
    return TDM_OK;
  }
#endif
  t->t0 = tdm_now();
  return TDM_OK;
}

tdm_status tdm_dev_timer_stop(tdm_dev_timer *t, double *ms) {
#ifdef TDM_CUDA
  if (t->dev->kind == TDM_DEV_CUDA) {
    float f = 0;
    CU(cudaEventRecord((cudaEvent_t)t->ev1, (cudaStream_t)t->dev->stream));
    CU(cudaEventSynchronize((cudaEvent_t)t->ev1));
    CU(cudaEventElapsedTime(&f, (cudaEvent_t)t->ev0, (cudaEvent_t)t->ev1));
    *ms = f;
    return TDM_OK;
  }
#endif
  t->t1 = tdm_now();
  *ms = (t->t1 - t->t0) * 1e3;
  return TDM_OK;
}

void tdm_dev_timer_release(tdm_dev_timer *t) {
#ifdef TDM_CUDA
  if (t->ev0) cudaEventDestroy((cudaEvent_t)t->ev0);
  if (t->ev1) cudaEventDestroy((cudaEvent_t)t->ev1);
#endif
  t->ev0 = t->ev1 = NULL;
}
