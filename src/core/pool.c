// Thread pool with a blocking parallel-for. Each worker owns a fixed contiguous block of [0, n)
// and takes chunks from its front, then steals chunks from the other blocks; an item therefore
// stays on the same worker from call to call (its data stays in that core's cache) unless the
// load is uneven. Idle workers spin briefly on the job counter (pause, then sched_yield so that
// an oversubscribed machine still runs the thread with work) before sleeping on a condition
// variable, so back-to-back calls (env steps) pay no futex wake-up per worker (on a VM, waking
// a halted vCPU is an inter-processor interrupt through the hypervisor). A job with fewer chunks
// than workers (10 evaluation envs on 16 cores) runs on that many workers, the caller first.
// Environment knobs (read at tdm_pool_create, for A/B measurements): TDM_POOL_SPIN_US (spin
// time before sleeping, default 50; 0 = sleep at once), TDM_POOL_SCHED=dynamic (no owned blocks:
// every worker takes chunks from one shared counter in order, the previous scheduler).
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tandem/core.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

// One worker's block of the current job: chunks [next, end) in items. One cache line each, so
// a worker's claims do not bounce the lines of the others.
typedef struct {
  _Alignas(64) atomic_llong next;
  int64_t end;
} block;

struct tdm_pool {
  int size;  // workers including the caller
  pthread_t *threads;
  block *blocks;  // (size)
  int64_t spin_ns;
  int dynamic;  // 1 = all workers take chunks from blocks[0] (one shared counter)
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  atomic_ullong generation;  // job counter and workers taking part (GEN_ACTIVE)
  atomic_int sleepers;       // helpers blocked (or about to block) on wake
  atomic_int pending;        // helpers not yet finished with the current job
  atomic_int caller_waits;   // the caller is blocked (or about to block) on done
  atomic_int quit;
  // current job (written by the caller before the generation bump)
  tdm_range_fn fn;
  void *ctx;
  int64_t chunk;
};

// The generation word: (job counter << 16) | the number of workers taking part in the job
// (1..size; fewer than size when the job has fewer chunks). One atomic word, so that a helper
// that takes no part in a job and so need not finish before the next one starts never pairs one
// job's counter with another's count.
#define GEN_ACTIVE(g) ((int)((g)&0xffff))

typedef struct {
  tdm_pool *pool;
  int worker;
} worker_arg;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Own block first, then the others of the active workers in turn (stealing); returns when every
// block is drained.
static void run_chunks(tdm_pool *p, int worker, int active) {
  const int64_t chunk = p->chunk;
  const int nb = p->dynamic ? 1 : active;
  for (int k = 0; k < nb; k++) {
    block *b = &p->blocks[(worker + k) % nb];
    for (;;) {
      int64_t begin = atomic_fetch_add(&b->next, chunk);
      if (begin >= b->end) break;
      int64_t end = begin + chunk < b->end ? begin + chunk : b->end;
      p->fn(p->ctx, begin, end, worker);
    }
  }
}

// One spin iteration: pause, and after the first few hundred also yield the core, so that a
// pool thread waiting to run on it (more threads than free cores) is not kept off by the spin.
static void relax(unsigned i) {
  cpu_relax();
  if (i > 256) sched_yield();
}

// Spin up to spin_ns while *x == v; returns the last value read.
static unsigned long long spin_while_eq(tdm_pool *p, atomic_ullong *x, unsigned long long v) {
  unsigned long long g = atomic_load(x);
  if (g != v || p->spin_ns <= 0) return g;
  int64_t t0 = now_ns();
  for (unsigned i = 1;; i++) {
    relax(i);
    g = atomic_load(x);
    if (g != v || atomic_load(&p->quit)) return g;
    if ((i & 63) == 0 && now_ns() - t0 > p->spin_ns) return g;
  }
}

static void *worker_main(void *arg) {
  worker_arg *wa = (worker_arg *)arg;
  tdm_pool *p = wa->pool;
  int worker = wa->worker;
  free(wa);
  unsigned long long seen = 0;
  for (;;) {
    unsigned long long g = spin_while_eq(p, &p->generation, seen);
    if (g == seen && !atomic_load(&p->quit)) {
      // sleep; the caller reads sleepers after bumping generation (both seq_cst), so either it
      // sees us and broadcasts under the mutex, or we see its new generation here
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->quit))
        pthread_cond_wait(&p->wake, &p->mu);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->quit)) break;
    seen = g;
    if (worker >= GEN_ACTIVE(g)) continue;  // a job with fewer chunks than workers: not ours
    run_chunks(p, worker, GEN_ACTIVE(g));
    if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_waits)) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

int tdm_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

tdm_status tdm_pool_create(int nthreads, tdm_pool **out) {
  *out = NULL;
  if (nthreads < 0)
    return TDM_FAIL(TDM_ERR_ARG, "thread count %d is negative; use 0 for all cores", nthreads);
  if (nthreads == 0) nthreads = tdm_cpu_count();
  if (nthreads > 0xffff)
    return TDM_FAIL(TDM_ERR_ARG, "thread count %d is above the pool's limit of 65535", nthreads);
  tdm_pool *p = calloc(1, sizeof *p);
  if (!p) return TDM_FAIL(TDM_ERR_OOM, "out of host memory creating a thread pool");
  p->blocks = aligned_alloc(_Alignof(block), sizeof(block) * (size_t)nthreads);
  if (!p->blocks) {
    free(p);
    return TDM_FAIL(TDM_ERR_OOM, "out of host memory creating a thread pool");
  }
  for (int i = 0; i < nthreads; i++) {
    atomic_init(&p->blocks[i].next, 0);
    p->blocks[i].end = 0;
  }
  p->size = nthreads;
  p->spin_ns = 50000;
  const char *s = getenv("TDM_POOL_SPIN_US");
  if (s && *s) {
    long us = strtol(s, NULL, 10);
    p->spin_ns = us > 0 ? (us < 1000000 ? us : 1000000) * 1000 : 0;
  }
  s = getenv("TDM_POOL_SCHED");
  p->dynamic = s && !strcmp(s, "dynamic");
  atomic_init(&p->generation, 0);
  atomic_init(&p->sleepers, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->caller_waits, 0);
  atomic_init(&p->quit, 0);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  if (nthreads > 1) {
    p->threads = calloc((size_t)nthreads - 1, sizeof(pthread_t));
    if (!p->threads) {
      p->size = 1;
      tdm_pool_destroy(p);
      return TDM_FAIL(TDM_ERR_OOM, "out of host memory creating a thread pool");
    }
  }
  for (int i = 1; i < nthreads; i++) {
    worker_arg *wa = malloc(sizeof *wa);
    if (!wa) {
      p->size = i;
      tdm_pool_destroy(p);
      return TDM_FAIL(TDM_ERR_OOM, "out of host memory creating a thread pool");
    }
    wa->pool = p;
    wa->worker = i;
    if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
      free(wa);
      p->size = i;
      tdm_pool_destroy(p);
      return TDM_FAIL(TDM_ERR_ARG, "could not start thread %d of %d", i, nthreads);
    }
  }
  *out = p;
  return TDM_OK;
}

void tdm_pool_destroy(tdm_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->quit, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->size; i++) pthread_join(p->threads[i - 1], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p->threads);
  free(p->blocks);
  free(p);
}

int tdm_pool_size(const tdm_pool *p) {
  return p ? p->size : 1;
}

void tdm_pool_for(tdm_pool *p, int64_t n, int64_t grain, tdm_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (!p || p->size == 1 || n <= grain) {
    fn(ctx, 0, n, 0);
    return;
  }
  // about 16 chunks per worker, never below grain: a claim from a worker's own block is one
  // uncontended atomic add, and small chunks let the others steal the tail of a slow worker
  int64_t chunk = (n + 16 * (int64_t)p->size - 1) / (16 * (int64_t)p->size);
  if (chunk < grain) chunk = grain;
  // with fewer chunks than workers (a few envs on many cores) only as many workers as chunks take
  // part, the caller's own among them: the caller waits for every taking part helper to check in,
  // and a helper that has to be woken (futex, on a VM an interrupt through the hypervisor) for
  // nothing would make each call as slow as the slowest wake-up of all of them
  const int64_t nc = (n + chunk - 1) / chunk;
  const int P = nc < p->size ? (int)nc : p->size;
  p->fn = fn;
  p->ctx = ctx;
  p->chunk = chunk;
  if (p->dynamic) {
    atomic_store_explicit(&p->blocks[0].next, 0, memory_order_relaxed);
    p->blocks[0].end = n;
  } else {
    // worker w owns chunks [w * nc / P, (w + 1) * nc / P): the same items every call
    for (int w = 0; w < P; w++) {
      int64_t b = (int64_t)w * nc / P * chunk, e = (int64_t)(w + 1) * nc / P * chunk;
      atomic_store_explicit(&p->blocks[w].next, b, memory_order_relaxed);
      p->blocks[w].end = e < n ? e : n;
    }
  }
  // every helper taking part checks in, even one whose chunks were all stolen; the caller is the
  // only writer of generation, and publishes the job with it (seq_cst)
  atomic_store(&p->pending, P - 1);
  const unsigned long long g = atomic_load(&p->generation);
  atomic_store(&p->generation, (((g >> 16) + 1) << 16) | (unsigned long long)P);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
  }
  run_chunks(p, 0, P);
  // wait for the helpers: spin, then sleep (a helper that sees caller_waits signals done)
  if (atomic_load(&p->pending) > 0 && p->spin_ns > 0) {
    int64_t t0 = now_ns();
    for (unsigned i = 1; atomic_load(&p->pending) > 0; i++) {
      relax(i);
      if ((i & 63) == 0 && now_ns() - t0 > p->spin_ns) break;
    }
  }
  if (atomic_load(&p->pending) > 0) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_waits, 1);
    while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->caller_waits, 0);
    pthread_mutex_unlock(&p->mu);
  }
}
