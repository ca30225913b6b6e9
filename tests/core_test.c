// Core: Philox known answers, host streams, thread pool, arena, CRC, errors, atomic files,
// devices.
#include <stdatomic.h>
#include <strings.h>
#include <unistd.h>

#include "test.h"

static void test_philox_known_answers(void) {
  // Random123 known-answer vectors for philox4x32-10
  uint32_t out[4];
  uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
  tdm_philox4x32_10(c0, k0, out);
  CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu &&
        out[3] == 0x9b00dbd8u);
  uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  uint32_t k1[2] = {0xffffffffu, 0xffffffffu};
  tdm_philox4x32_10(c1, k1, out);
  CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u &&
        out[3] == 0x6d5451fdu);
  uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  uint32_t k2[2] = {0xa4093822u, 0x299f31d0u};
  tdm_philox4x32_10(c2, k2, out);
  CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u &&
        out[3] == 0x24126ea1u);
}

static void test_rng_stream_moments(void) {
  tdm_rng r;
  tdm_rng_init(&r, 42, 0);
  double s = 0, s2 = 0, u = 0;
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    float z = tdm_rng_normal(&r);
    s += z;
    s2 += (double)z * z;
  }
  for (int i = 0; i < n; i++) {
    float x = tdm_rng_uniform(&r);
    CHECK(x > 0.0f && x <= 1.0f);
    u += x;
  }
  CHECKF(fabs(s / n) < 0.01, "normal mean %g", s / n);
  CHECKF(fabs(s2 / n - 1.0) < 0.02, "normal var %g", s2 / n);
  CHECKF(fabs(u / n - 0.5) < 0.005, "uniform mean %g", u / n);
  uint32_t hist[7] = {0};
  for (int i = 0; i < 70000; i++) hist[tdm_rng_below(&r, 7)]++;
  for (int i = 0; i < 7; i++) CHECKF(hist[i] > 9500 && hist[i] < 10500, "bin %d: %u", i, hist[i]);
}

static void test_rng_determinism(void) {
  tdm_rng a, b, c;
  tdm_rng_init(&a, 123, 5);
  tdm_rng_init(&b, 123, 5);
  tdm_rng_init(&c, 123, 6);
  int same_c = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t x = tdm_rng_u32(&a), y = tdm_rng_u32(&b), z = tdm_rng_u32(&c);
    CHECK(x == y);
    same_c += x == z;
  }
  CHECK(same_c < 5);
}

typedef struct {
  double *out;
} sq_ctx;
static void sq_fn(void *ctx, int64_t b, int64_t e, int w) {
  (void)w;
  sq_ctx *c = ctx;
  for (int64_t i = b; i < e; i++) c->out[i] = (double)i * (double)i;
}

static void test_pool_parallel_for(void) {
  tdm_pool *p;
  CHECK_OK(tdm_pool_create(4, &p));
  CHECK(tdm_pool_size(p) == 4);
  enum { N = 100003 };
  static double out[N];
  sq_ctx c = {out};
  for (int rep = 0; rep < 50; rep++) {
    memset(out, 0, sizeof out);
    tdm_pool_for(p, N, 16, sq_fn, &c);
    for (int i = 0; i < N; i += 997) CHECK(out[i] == (double)i * i);
    CHECK(out[N - 1] == (double)(N - 1) * (N - 1));
  }
  tdm_pool_for(p, 3, 1, sq_fn, &c);  // fewer items than workers
  CHECK(out[2] == 4.0);
  tdm_pool_destroy(p);
}

// every item exactly once, worker ids in range, uneven work (stealing), n below and around the
// worker count, back-to-back calls (a job with fewer chunks than workers, where only that many
// workers take part, next to larger ones); for both schedulers and with and without spinning
typedef struct {
  _Atomic int *hits;  // (n)
  _Atomic int bad_worker, max_worker;
  int size;
} once_ctx;
static void once_fn(void *ctx, int64_t b, int64_t e, int w) {
  once_ctx *c = ctx;
  if (w < 0 || w >= c->size) atomic_store(&c->bad_worker, 1);
  for (int m = atomic_load(&c->max_worker);
       w > m && !atomic_compare_exchange_weak(&c->max_worker, &m, w);) {
  }
  for (int64_t i = b; i < e; i++) {
    atomic_fetch_add(&c->hits[i], 1);
    if (i % 7 == 0) {  // uneven cost
      volatile double x = 0;
      for (int k = 0; k < 2000; k++) x += k;
    }
  }
}

static void test_pool_schedulers(void) {
  const char *modes[][2] = {{"", ""}, {"0", ""}, {"", "dynamic"}, {"0", "dynamic"}};
  enum { NMAX = 1000 };
  static _Atomic int hits[NMAX];
  const int64_t sizes[] = {1, 2, 3, 5, 7, 64, 65, 257, NMAX};
  for (int m = 0; m < 4; m++) {
    setenv("TDM_POOL_SPIN_US", modes[m][0], 1);
    setenv("TDM_POOL_SCHED", modes[m][1], 1);
    tdm_pool *p;
    CHECK_OK(tdm_pool_create(6, &p));  // more workers than this machine's cores is fine
    once_ctx c = {.hits = hits, .size = 6};
    atomic_init(&c.bad_worker, 0);
    for (int rep = 0; rep < 20; rep++)
      for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int64_t n = sizes[k], grain = 1 + rep % 3, chunks = (n + grain - 1) / grain;
        for (int64_t i = 0; i < n; i++) atomic_store(&hits[i], 0);
        atomic_store(&c.max_worker, 0);
        tdm_pool_for(p, n, grain, once_fn, &c);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= atomic_load(&hits[i]) == 1;
        CHECKF(ok, "mode %d n %lld: an item ran other than once", m, (long long)n);
        // fewer chunks than workers: workers 0 .. chunks - 1 only
        if (chunks < 6)
          CHECKF(atomic_load(&c.max_worker) < chunks, "mode %d n %lld grain %lld: worker %d ran", m,
                 (long long)n, (long long)grain, atomic_load(&c.max_worker));
      }
    CHECK(atomic_load(&c.bad_worker) == 0);
    tdm_pool_destroy(p);
  }
  unsetenv("TDM_POOL_SPIN_US");
  unsetenv("TDM_POOL_SCHED");
}

static void test_arena_mark_reset(void) {
  tdm_arena a;
  CHECK_OK(tdm_arena_init(&a, 1 << 16));
  void *x = tdm_arena_alloc(&a, 100);
  CHECK(x && ((uintptr_t)x & 63) == 0);
  size_t m = tdm_arena_mark(&a);
  void *y = tdm_arena_alloc(&a, 1000);
  CHECK(y && (uint8_t *)y >= (uint8_t *)x + 100);
  tdm_arena_reset(&a, m);
  void *z = tdm_arena_alloc(&a, 1000);
  CHECK(z == y);
  CHECK(tdm_arena_alloc(&a, 1 << 17) == NULL);
  tdm_arena_release(&a);
}

static void test_crc32_and_errors(void) {
  CHECK(tdm_crc32(0, "123456789", 9) == 0xCBF43926u);
  tdm_status s = TDM_FAIL(TDM_ERR_CONFIG, "key %s", "lr");
  CHECK(s == TDM_ERR_CONFIG);
  CHECK(strstr(tdm_errmsg(), "core_test.c:") && strstr(tdm_errmsg(), "key lr"));
  tdm_adderr(s, "in %s: ", "file.cfg");
  CHECK(!strncmp(tdm_errmsg(), "in file.cfg: ", 13));
  CHECK(tdm_warn_once("test-key", "first warning (expected in test output)") == 1);
  CHECK(tdm_warn_once("test-key", "second") == 2);
  CHECK(tdm_warn_count("test-key") == 2);
}

// Read a whole small file into buf (NUL-terminated); -1 when it cannot be opened.
static long slurp(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t k = fread(buf, 1, n - 1, f);
  buf[k] = 0;
  fclose(f);
  return (long)k;
}

static void test_afile_commit_abort(void) {
  char dir[64] = "/tmp/tdm_core_test_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128], tmp[160], got[64];
  snprintf(path, sizeof path, "%s/f.bin", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  tdm_afile a;
  // commit: the new content, no temporary left
  CHECK_OK(tdm_afile_open(&a, path));
  CHECK(!strcmp(a.tmp, tmp) && access(tmp, F_OK) == 0 && access(path, F_OK) != 0);
  fputs("old content", a.f);
  CHECK_OK(tdm_afile_commit(&a));
  CHECK(a.f == NULL);
  CHECK(slurp(path, got, sizeof got) == 11 && !strcmp(got, "old content"));
  CHECK(access(tmp, F_OK) != 0);
  // abort: the old content stays, the temporary is removed
  CHECK_OK(tdm_afile_open(&a, path));
  fputs("new, longer content", a.f);
  fflush(a.f);
  CHECK(access(tmp, F_OK) == 0);
  CHECK(slurp(path, got, sizeof got) == 11 && !strcmp(got, "old content"));  // not yet replaced
  tdm_afile_abort(&a);
  CHECK(slurp(path, got, sizeof got) == 11 && !strcmp(got, "old content"));
  CHECK(access(tmp, F_OK) != 0);
  tdm_afile_abort(&a);  // a second abort is harmless
  // commit over an existing file replaces it
  CHECK_OK(tdm_afile_open(&a, path));
  fputs("new", a.f);
  CHECK_OK(tdm_afile_commit(&a));
  CHECK(slurp(path, got, sizeof got) == 3 && !strcmp(got, "new"));
  CHECK(access(tmp, F_OK) != 0);
  // a commit of a closed afile is refused naming the path
  CHECK(tdm_afile_commit(&a) == TDM_ERR_ARG);
  CHECK(strstr(tdm_errmsg(), path));
  // a missing directory: TDM_ERR_IO naming the path, nothing created
  char bad[160];
  snprintf(bad, sizeof bad, "%s/no/such/dir/x.bin", dir);
  CHECK(tdm_afile_open(&a, bad) == TDM_ERR_IO);
  CHECKF(strstr(tdm_errmsg(), bad), "message does not name %s: %s", bad, tdm_errmsg());
  CHECK(a.f == NULL);
  tdm_afile_abort(&a);  // safe on a failed open
  // nothing else was left in dir
  CHECK(unlink(path) == 0 && rmdir(dir) == 0);
}

// tdm_blas_pick_kernels (run by test.h's constructor before main): OpenBLAS's Prescott fallback is
// replaced where the CPU has AVX2 and FMA, unless OPENBLAS_CORETYPE came from outside.
static void test_blas_kernels_picked(void) {
  const char *k = tdm_blas_kernels(), *picked = getenv("TDM_BLAS_PICKED"),
             *set = getenv("OPENBLAS_CORETYPE");
  if (!k[0]) {
    SKIP("the build uses another BLAS than OpenBLAS");
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  bool capable = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  bool capable = false;
#endif
  if (picked) {
    CHECKF(set && !strcasecmp(set, k) && strcasecmp(k, "prescott"),
           "tandem chose the kernels, but OpenBLAS runs %s (OPENBLAS_CORETYPE %s)", k,
           set ? set : "unset");
    return;
  }
  CHECKF(
      set || !capable || strcasecmp(k, "prescott"),
      "OpenBLAS runs its Prescott kernels on a CPU with AVX2 and FMA, and nothing replaced them");
}

static void test_dev_cpu(void) {
  tdm_dev *d;
  CHECK_OK(tdm_dev_open("cpu", 2, &d));
  CHECK(d->kind == TDM_DEV_CPU);
  float *buf;
  CHECK_OK(tdm_dev_alloc(d, 1024 * sizeof(float), (void **)&buf));
  float h[1024], g[1024];
  for (int i = 0; i < 1024; i++) h[i] = (float)i;
  CHECK_OK(tdm_dev_h2d(d, buf, h, sizeof h));
  CHECK_OK(tdm_dev_d2h(d, g, buf, sizeof g));
  CHECK(!memcmp(h, g, sizeof h));
  tdm_graph *gr;
  CHECK(tdm_graph_begin(d) == TDM_ERR_UNSUPPORTED);
  CHECK(tdm_graph_end(d, &gr) == TDM_ERR_UNSUPPORTED);
  tdm_dev_free(d, buf);
  tdm_dev_close(d);
  CHECK(tdm_dev_open("gpu7", 0, &d) == TDM_ERR_ARG);
  CHECK(strstr(tdm_errmsg(), "gpu7"));
  if (tdm_cuda_built() && tdm_cuda_device_count() == 0) {
    CHECK(tdm_dev_open("cuda:0", 0, &d) == TDM_ERR_ARG);
    CHECK(strstr(tdm_errmsg(), "no GPU is visible"));
  }
}

// Device strings: exactly "auto", "cpu", "cuda" and "cuda:N" (N digits only, below 4096); a
// malformed one is refused with TDM_ERR_ARG naming it and the accepted forms, before any CUDA call
// (so even where a GPU is visible), while a well-formed one is only then checked against the build
// and the visible GPUs.
static void test_dev_open_spec(void) {
  static const char *bad[] = {
      "cuda: 1",  "cuda:+1", "cuda:-1",  "cuda:",     "cuda:1 ",       " cuda:0",
      "cuda:0x1", "cuda:1a", "cuda:1.0", "cuda:4096", "cuda:00004096", "cuda:99999999999999999999",
      "cuda0",    "cudax",   "cuda ",    "CPU",       "cpu:0",         "Auto",
      "",         "gpu7"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    tdm_dev *d = (tdm_dev *)&d;  // must come back NULL
    tdm_status st = tdm_dev_open(bad[i], 1, &d);
    CHECKF(st == TDM_ERR_ARG, "\"%s\" gave status %d, expected TDM_ERR_ARG", bad[i], (int)st);
    CHECKF(d == NULL, "\"%s\": *out not NULL after a refusal", bad[i]);
    char named[64];
    snprintf(named, sizeof named, "device \"%s\"", bad[i]);
    CHECKF(strstr(tdm_errmsg(), named) && strstr(tdm_errmsg(), "\"cuda:N\"") &&
               strstr(tdm_errmsg(), "\"cpu\"") && strstr(tdm_errmsg(), "0..4095"),
           "\"%s\": message does not name the string and the accepted forms: %s", bad[i],
           tdm_errmsg());
  }
  // well-formed strings pass the parser: they open, or fail on the build / the visible GPUs
  static const char *good[] = {"cuda", "cuda:0", "cuda:4095", "cuda:007"};
  const int gpus = tdm_cuda_device_count();
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    tdm_dev *d = NULL;
    tdm_status st = tdm_dev_open(good[i], 1, &d);
    if (st == TDM_OK) {
      CHECK(d != NULL && d->kind == TDM_DEV_CUDA);
      tdm_dev_close(d);
      continue;
    }
    CHECKF(d == NULL && !strstr(tdm_errmsg(), "0..4095 written"),
           "\"%s\" was refused as malformed: %s", good[i], tdm_errmsg());
    if (!tdm_cuda_built()) {
      CHECKF(st == TDM_ERR_UNSUPPORTED && strstr(tdm_errmsg(), "no CUDA backend"), "\"%s\": %s",
             good[i], tdm_errmsg());
    } else if (gpus == 0) {
      CHECKF(st == TDM_ERR_ARG && strstr(tdm_errmsg(), "no GPU is visible"), "\"%s\": %s", good[i],
             tdm_errmsg());
    } else {
      CHECKF(st == TDM_ERR_ARG && strstr(tdm_errmsg(), "GPU(s) visible"), "\"%s\": %s", good[i],
             tdm_errmsg());
    }
  }
  // "auto" (the trainer's default device key, passed through as is) and NULL: the first GPU, else
  // the CPU
  const char *autos[] = {"auto", NULL};
  for (int i = 0; i < 2; i++) {
    tdm_dev *d = NULL;
    CHECK_OK(tdm_dev_open(autos[i], 1, &d));
    CHECK(d->kind == (gpus > 0 ? TDM_DEV_CUDA : TDM_DEV_CPU));
    tdm_dev_close(d);
  }
}

static void test_dev_gpu_copy_and_graph(void) {
  NEED_GPU(d);
  float *buf;
  CHECK_OK(tdm_dev_alloc(d, 4096 * sizeof(float), (void **)&buf));
  float *h;
  CHECK_OK(tdm_host_alloc(d, 4096 * sizeof(float), (void **)&h));
  for (int i = 0; i < 4096; i++) h[i] = (float)i * 0.5f;
  CHECK_OK(tdm_dev_h2d(d, buf, h, 4096 * sizeof(float)));
  memset(h, 0, 4096 * sizeof(float));
  CHECK_OK(tdm_dev_d2h(d, h, buf, 4096 * sizeof(float)));
  CHECK_OK(tdm_dev_sync(d));
  for (int i = 0; i < 4096; i++) CHECK(h[i] == (float)i * 0.5f);
  size_t fr, tot;
  CHECK_OK(tdm_dev_mem_info(d, &fr, &tot));
  CHECK(fr > 0 && tot >= fr);
  void *huge;
  CHECK(tdm_dev_alloc(d, tot * 2, &huge) == TDM_ERR_OOM);
  CHECK(strstr(tdm_errmsg(), "asked for"));
  tdm_host_free(d, h);
  tdm_dev_free(d, buf);
}

int main(void) {
  TDM_RUN(test_philox_known_answers);
  TDM_RUN(test_rng_stream_moments);
  TDM_RUN(test_rng_determinism);
  TDM_RUN(test_pool_parallel_for);
  TDM_RUN(test_pool_schedulers);
  TDM_RUN(test_arena_mark_reset);
  TDM_RUN(test_crc32_and_errors);
  TDM_RUN(test_afile_commit_abort);
  TDM_RUN(test_blas_kernels_picked);
  TDM_RUN(test_dev_cpu);
  TDM_RUN(test_dev_open_spec);
  TDM_RUN(test_dev_gpu_copy_and_graph);
  return tdm_test_end();
}
