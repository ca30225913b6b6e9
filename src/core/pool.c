// Thread pool with a blocking parallel-for; workers grab chunks from an atomic counter.
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "tandem/core.h"

struct tdm_pool {
  int size;  // workers including the caller
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  uint64_t generation;
  int active;  // helper threads still working on this generation
  int quit;
  // current job
  tdm_range_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_llong next;
};

typedef struct {
  tdm_pool *pool;
  int worker;
} worker_arg;

static void run_chunks(tdm_pool *p, int worker) {
  for (;;) {
    int64_t begin = atomic_fetch_add(&p->next, p->chunk);
    if (begin >= p->n) break;
    int64_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    p->fn(p->ctx, begin, end, worker);
  }
}

static void *worker_main(void *arg) {
  worker_arg *wa = (worker_arg *)arg;
  tdm_pool *p = wa->pool;
  int worker = wa->worker;
  free(wa);
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, worker);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int tdm_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

tdm_status tdm_pool_create(int nthreads, tdm_pool **out) {
  *out = NULL;
  if (nthreads < 0) return TDM_FAIL(TDM_ERR_ARG, "thread count %d is negative; use 0 for all cores", nthreads);
  if (nthreads == 0) nthreads = tdm_cpu_count();
  tdm_pool *p = calloc(1, sizeof *p);
  if (!p) return TDM_FAIL(TDM_ERR_OOM, "out of host memory creating a thread pool");
  p->size = nthreads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  if (nthreads > 1) {
    p->threads = calloc((size_t)nthreads - 1, sizeof(pthread_t));
    if (!p->threads) {
      free(p);
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
  p->quit = 1;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->size; i++) pthread_join(p->threads[i - 1], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  free(p->threads);
  free(p);
}

int tdm_pool_size(const tdm_pool *p) { return p ? p->size : 1; }

void tdm_pool_for(tdm_pool *p, int64_t n, int64_t grain, tdm_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (!p || p->size == 1 || n <= grain) {
    fn(ctx, 0, n, 0);
    return;
  }
  // about 4 chunks per worker for balance, never below grain
  int64_t chunk = (n + 4 * p->size - 1) / (4 * p->size);
  if (chunk < grain) chunk = grain;
  int helpers = p->size - 1;
  int64_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks - 1 < helpers) helpers = (int)(nchunks - 1);
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->chunk = chunk;
  atomic_store(&p->next, 0);
  p->active = p->size - 1;  // every helper wakes and checks in, even with no chunk left
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  (void)helpers;
  run_chunks(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
