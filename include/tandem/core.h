// tandem core: status codes and errors, logging, Philox RNG, thread pool, arena, timers.
#ifndef TANDEM_CORE_H
#define TANDEM_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_VERSION "0.1.0"

// ---------------------------------------------------------------------------------------------
// status and errors

typedef enum {
  TDM_OK = 0,
  TDM_ERR_ARG,          // an argument is out of range or inconsistent
  TDM_ERR_OOM,          // host or device allocation failed
  TDM_ERR_IO,           // file could not be opened, read, written or renamed
  TDM_ERR_FORMAT,       // file content is malformed (magic, version, checksum, shape)
  TDM_ERR_CONFIG,       // configuration key missing, unknown, wrong type or out of range
  TDM_ERR_CUDA,         // CUDA runtime, cuBLAS or cuRAND call failed
  TDM_ERR_MUJOCO,       // MuJoCo refused a model or reported an error
  TDM_ERR_UNSUPPORTED,  // feature not built in (no CUDA, no MuJoCo) or not available on the device
  TDM_ERR_NUMERIC,      // NaN or Inf where a finite value is required
  TDM_ERR_INTERRUPTED,  // stopped by a signal
} tdm_status;

// Short name of a status code ("ARG", "OOM", ...).
const char *tdm_status_name(tdm_status s);

// Record an error message for the calling thread and return s; the message is "file:line: text".
tdm_status tdm_seterr(tdm_status s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Prepend context ("while loading x: ") to the calling thread's error message; return s.
tdm_status tdm_adderr(tdm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Message of the last error recorded on the calling thread ("" if none).
const char *tdm_errmsg(void);

// Forget the calling thread's last error.
void tdm_clearerr(void);

#define TDM_FAIL(st, ...) tdm_seterr((st), __FILE__, __LINE__, __VA_ARGS__)
#define TDM_TRY(expr)                   \
  do {                                  \
    tdm_status tdm_s_ = (expr);         \
    if (tdm_s_ != TDM_OK) return tdm_s_; \
  } while (0)
// inside a function with a `tdm_status st;` and a `fail:` label
#define TDM_TRYG(expr)          \
  do {                          \
    st = (expr);                \
    if (st != TDM_OK) goto fail; \
  } while (0)

// ---------------------------------------------------------------------------------------------
// logging

typedef enum { TDM_LOG_ERROR = 0, TDM_LOG_WARN, TDM_LOG_INFO, TDM_LOG_DEBUG } tdm_log_level;

// Set the most verbose level printed (default INFO; TDM_LOG=debug|info|warn|error overrides).
void tdm_log_set_level(tdm_log_level level);
tdm_log_level tdm_log_get_level(void);

// Print one line to stderr when level is enabled.
void tdm_log(tdm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Count a warning under key; print it the first time only. Returns the count so far.
long tdm_warn_once(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Number of times tdm_warn_once was called with key.
long tdm_warn_count(const char *key);

// ---------------------------------------------------------------------------------------------
// Philox4x32-10, bit-compatible with cuRAND's curandStatePhilox4_32_10_t.
//
// Stream convention used by every random op (CPU and GPU draw the same numbers):
//   key = (seed lo, seed hi), counter = (g lo, g hi, sub lo, sub hi)
// where g = element index / 4 and sub = calls * 256 + stream. On the GPU this is
// curand_init(seed, sub, 4 * g, &st) followed by curand4 / curand_uniform4 / curand_normal4.
// Element i takes lane i % 4 of block g.

// One Philox4x32-10 block: out = philox(ctr, key).
void tdm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// Uniform in (0, 1] from a 32-bit word, as curand_uniform.
static inline float tdm_u32_uniform(uint32_t x) {
  return (float)x * 2.3283064e-10f + (2.3283064e-10f / 2.0f);
}

// Two standard normals from two words, as cuRAND's Box-Muller (sin first, then cos).
void tdm_box_muller(uint32_t x, uint32_t y, float *n0, float *n1);

// Sub-stream index for (calls, stream); stream < 256.
static inline uint64_t tdm_rng_sub(uint64_t calls, uint32_t stream) {
  return calls * 256u + (stream & 255u);
}

// Random counter that random ops read from device memory (host memory on the CPU), so that a
// captured CUDA graph draws fresh numbers each replay once `calls` is advanced in-graph.
typedef struct {
  uint64_t seed;
  uint64_t calls;
} tdm_rng_ctr;

// Sequential host generator for host-side draws (env resets, initialisation, shuffles).
typedef struct {
  uint64_t seed, sub;  // key and sub-stream
  uint64_t block;      // next block index
  uint32_t buf[4];
  int pos;             // next lane in buf; 4 = empty
  int has_spare;
  float spare;
} tdm_rng;

// Start a host stream for (seed, sub).
void tdm_rng_init(tdm_rng *r, uint64_t seed, uint64_t sub);
uint32_t tdm_rng_u32(tdm_rng *r);
// Uniform float in (0, 1].
float tdm_rng_uniform(tdm_rng *r);
// Uniform double in [0, 1) with 53 random bits.
double tdm_rng_uniform_d(tdm_rng *r);
// Standard normal (Box-Muller, pairs as cuRAND).
float tdm_rng_normal(tdm_rng *r);
// Integer uniform in [0, n); n > 0.
uint32_t tdm_rng_below(tdm_rng *r, uint32_t n);

// ---------------------------------------------------------------------------------------------
// thread pool

typedef struct tdm_pool tdm_pool;

// Work function for a half-open range [begin, end) run by worker w (0 <= w < size).
typedef void (*tdm_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

// Create a pool of nthreads workers (0 = all online cores). The caller thread is worker 0.
tdm_status tdm_pool_create(int nthreads, tdm_pool **out);
void tdm_pool_destroy(tdm_pool *pool);
int tdm_pool_size(const tdm_pool *pool);

// Split [0, n) into chunks of at least grain items and run them on the pool; returns when done.
// A NULL pool runs everything on the caller. Not reentrant: do not call from inside fn.
void tdm_pool_for(tdm_pool *pool, int64_t n, int64_t grain, tdm_range_fn fn, void *ctx);

// Number of online CPU cores.
int tdm_cpu_count(void);

// OpenBLAS picks its GEMM kernels when the library loads. Behind a VM's generic CPUID it may not
// recognise the processor and fall back to its Prescott (SSE3) kernels, about 4x slower per core
// on an AVX-512 machine. Called first thing in main, this re-executes the program
// (/proc/self/exe, the same arguments) with OPENBLAS_CORETYPE set to the kernels the CPU's
// features allow: SkylakeX with AVX-512 F, BW, DQ and VL, Haswell with AVX2 and FMA. It returns
// without doing anything when OPENBLAS_CORETYPE is already set (by the user: any value keeps
// OpenBLAS's choice; or by the first execution, which also sets TDM_BLAS_PICKED to the kernels
// OpenBLAS had picked), when OpenBLAS did not fall back, when the CPU lacks the features, when the
// build has another BLAS, or when the exec fails.
void tdm_blas_pick_kernels(void);

// The kernels OpenBLAS runs ("SkylakeX", "Prescott", ...), or "" with another BLAS.
const char *tdm_blas_kernels(void);

// ---------------------------------------------------------------------------------------------
// arena: a stack of 64-byte aligned scratch blocks, freed by resetting to a mark

typedef struct {
  uint8_t *base;
  size_t cap, top, peak;
} tdm_arena;

tdm_status tdm_arena_init(tdm_arena *a, size_t cap);
void tdm_arena_release(tdm_arena *a);
// Allocate bytes (64-byte aligned); NULL when the arena is full.
void *tdm_arena_alloc(tdm_arena *a, size_t bytes);
static inline size_t tdm_arena_mark(const tdm_arena *a) { return a->top; }
static inline void tdm_arena_reset(tdm_arena *a, size_t mark) { a->top = mark; }

// ---------------------------------------------------------------------------------------------
// timers and small helpers

// Monotonic seconds.
double tdm_now(void);

// 64-byte aligned host allocation (free with tdm_free_aligned); NULL on failure.
void *tdm_malloc_aligned(size_t bytes);
void tdm_free_aligned(void *p);

// CRC-32 (IEEE) of a byte range, continuing from crc (start with 0).
uint32_t tdm_crc32(uint32_t crc, const void *data, size_t n);

// The rest of f, at most max bytes of it, in a malloc'd buffer with a NUL after the *len bytes
// read; NULL when out of memory. Reading stops at end of file, at a read error (ferror(f) tells)
// or after max bytes.
char *tdm_read_all(FILE *f, size_t max, size_t *len);

// ---------------------------------------------------------------------------------------------
// atomic file writes: data goes to "<path>.tmp"; commit flushes and fsyncs it, renames it over
// path and fsyncs the directory; abort removes the temporary file and leaves path untouched.

typedef struct {
  FILE *f;          // write through this between open and commit / abort
  char path[4096];  // the file to replace
  char tmp[4100];   // path + ".tmp"
} tdm_afile;

// Open path's temporary file for writing (TDM_ERR_IO naming it when it cannot be created).
tdm_status tdm_afile_open(tdm_afile *a, const char *path);
// Flush, fsync, close and rename the temporary file over path (removed again on failure).
tdm_status tdm_afile_commit(tdm_afile *a);
// Close and remove the temporary file (safe after a failed commit or on a closed afile).
void tdm_afile_abort(tdm_afile *a);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_CORE_H
