// tandem devices: the CPU or one CUDA GPU, its stream and library handles, buffers, graphs.
#ifndef TANDEM_DEV_H
#define TANDEM_DEV_H

#include "tandem/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TDM_DEV_CPU = 0, TDM_DEV_CUDA = 1 } tdm_dev_kind;

typedef struct tdm_dev {
  tdm_dev_kind kind;
  int ordinal;           // CUDA device index (-1 for the CPU)
  char name[160];        // "cpu (16 threads)" or "cuda:0 NVIDIA H100 80GB HBM3"
  tdm_pool *pool;        // CPU ops run on this pool (owned); NULL = single-threaded
  bool tf32;             // allow TF32 tensor-core math in GEMMs (GPU only)
  // CUDA handles (opaque here so C callers need no CUDA headers)
  void *stream;          // cudaStream_t
  void *cublas;          // cublasHandle_t
  void *workspace;       // cuBLAS workspace (device)
  size_t workspace_bytes;
  int capturing;         // inside tdm_graph_begin / tdm_graph_end
  int sm_count;
  uint64_t syncs;        // completed tdm_dev_sync calls: work enqueued before the k-th is done
                         // once syncs >= k
} tdm_dev;

// True when this build has the CUDA backend.
bool tdm_cuda_built(void);

// Number of visible CUDA devices (0 when none or when built without CUDA).
int tdm_cuda_device_count(void);

typedef struct {
  char name[256];
  int cc_major, cc_minor;
  int sm_count;
  size_t free_bytes, total_bytes;
} tdm_gpu_info;

// Describe CUDA device ordinal.
tdm_status tdm_gpu_info_get(int ordinal, tdm_gpu_info *info);

// Parse a device string "cpu" (*ordinal -1), "cuda" (0) or "cuda:N" (N one or more decimal digits,
// below 4096) and nothing else: no sign, spaces or trailing characters ("auto" is not taken here).
// False when malformed. No CUDA call.
bool tdm_dev_parse(const char *spec, int *ordinal);

// Open a device from "cpu", "cuda", "cuda:N" or "auto" (first GPU if any, else the CPU).
// threads: CPU threads for the CPU backend (0 = all cores, 1 = none extra).
tdm_status tdm_dev_open(const char *spec, int threads, tdm_dev **out);
void tdm_dev_close(tdm_dev *dev);

// Allocate bytes of device memory (64-byte aligned host memory on the CPU). The error names the
// size asked for and the free memory.
tdm_status tdm_dev_alloc(tdm_dev *dev, size_t bytes, void **out);
void tdm_dev_free(tdm_dev *dev, void *p);

// Pinned host memory on a GPU device, plain aligned memory on the CPU.
tdm_status tdm_host_alloc(tdm_dev *dev, size_t bytes, void **out);
void tdm_host_free(tdm_dev *dev, void *p);

// Copies, asynchronous on the device stream (synchronous on the CPU).
tdm_status tdm_dev_h2d(tdm_dev *dev, void *dst, const void *src, size_t bytes);
tdm_status tdm_dev_d2h(tdm_dev *dev, void *dst, const void *src, size_t bytes);
tdm_status tdm_dev_d2d(tdm_dev *dev, void *dst, const void *src, size_t bytes);
tdm_status tdm_dev_memset(tdm_dev *dev, void *dst, int byte, size_t bytes);

// Wait for all work queued on the device stream.
tdm_status tdm_dev_sync(tdm_dev *dev);

// Free and total device memory (host memory for the CPU).
tdm_status tdm_dev_mem_info(tdm_dev *dev, size_t *free_bytes, size_t *total_bytes);

// Check the last CUDA launch error; used by every kernel launcher after each launch.
tdm_status tdm_cuda_check_launch(const char *file, int line, const char *what);
#define TDM_LAUNCH_CHECK(what) tdm_cuda_check_launch(__FILE__, __LINE__, (what))

// ---------------------------------------------------------------------------------------------
// CUDA graphs: capture the ops queued on dev's stream between begin and end, replay many times.
// On the CPU, begin/end/launch are refused (TDM_ERR_UNSUPPORTED): call the code directly.

typedef struct tdm_graph tdm_graph;
tdm_status tdm_graph_begin(tdm_dev *dev);
tdm_status tdm_graph_end(tdm_dev *dev, tdm_graph **out);
tdm_status tdm_graph_launch(tdm_dev *dev, tdm_graph *g);
void tdm_graph_destroy(tdm_graph *g);
// Nodes of a captured graph: all of them, and the kernel launches among them (either pointer may
// be NULL). Refused on the CPU (no graphs there).
tdm_status tdm_graph_num_nodes(const tdm_graph *g, int *nodes, int *kernels);

// Longest chain of kernel nodes through a captured graph's dependencies (the serial kernel
// launches a replay waits for, whatever runs beside them). Refused on the CPU.
tdm_status tdm_graph_critical_path(const tdm_graph *g, int *kernels);

// ---------------------------------------------------------------------------------------------
// lanes: a side stream with its own cuBLAS handle and workspace, to run independent work beside
// the main stream; inside a graph capture the forked work becomes parallel graph branches.
//   tdm_dev_fork(dev, l);  // the lane waits for all queued so far; dev's ops now go to the lane
//   ... ops ...            // queued on the lane
//   tdm_dev_back(dev, l);  // dev's ops go to the main stream again (which does not wait)
//   ... ops ...            // queued on the main stream, concurrent with the lane's
//   tdm_dev_join(dev, l);  // the main stream waits for the lane's ops
// Create lanes (events, stream, handle, workspace) before any capture. On the CPU a lane only
// checks the call order (fork, back, join); ops run in issue order.

typedef struct tdm_dev_lane tdm_dev_lane;
// Create a lane on dev (a stream, a cuBLAS handle with its own workspace, two events on a GPU).
tdm_status tdm_dev_lane_create(tdm_dev *dev, tdm_dev_lane **out);
// Free the lane (NULL is fine); its dev must not be on it.
void tdm_dev_lane_destroy(tdm_dev_lane *l);
// Fork: the lane waits for the work queued on dev so far, then dev's ops go to the lane.
tdm_status tdm_dev_fork(tdm_dev *dev, tdm_dev_lane *l);
// Back: dev's ops go to the stream it had before the fork; the lane's end is recorded.
tdm_status tdm_dev_back(tdm_dev *dev, tdm_dev_lane *l);
// Join: dev's current stream waits for the lane's work (up to its back).
tdm_status tdm_dev_join(tdm_dev *dev, tdm_dev_lane *l);
// After an error between fork and join: put dev back on its own stream (no wait), lane idle.
void tdm_dev_lane_abort(tdm_dev *dev, tdm_dev_lane *l);

// ---------------------------------------------------------------------------------------------
// device timers (CUDA events on the GPU, host clock on the CPU)

typedef struct {
  tdm_dev *dev;
  void *ev0, *ev1;
  double t0, t1;
} tdm_dev_timer;
tdm_status tdm_dev_timer_start(tdm_dev *dev, tdm_dev_timer *t);
// Stop and return elapsed milliseconds (synchronises).
tdm_status tdm_dev_timer_stop(tdm_dev_timer *t, double *ms);
void tdm_dev_timer_release(tdm_dev_timer *t);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_DEV_H
