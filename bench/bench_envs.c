// tandem bench envs: vector-env steps per second for MuJoCo tasks on 1, 2 and all threads (or
// --threads), beside plain mj_step loops on the same model in the same run: one thread alone and
// T pthreads at once, each on its own mjData (the machine's own parallel rate). Table last.
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/cli.h"
#include "tandem/env.h"

#ifdef TDM_MUJOCO
#include <mujoco/mujoco.h>

typedef struct {
  char task[32];
  int threads, envs;
  double rate;     // env steps per second (all instances)
  double plain;    // plain mj_step loop, env steps per second, one thread
  double plain_t;  // plain mj_step loops on `threads` threads at once, env steps per second (sum)
  double step_us;  // one tdm_env_step of all instances, microseconds (envs / rate)
  double pool_us;  // one empty parallel-for over the instances on the env's pool, microseconds
  double scaling;  // rate / rate at one thread
} row;

// uniform actions in [-1, 1], (n, A)
static void rand_actions(float *a, size_t n, uint64_t seed) {
  tdm_rng r;
  tdm_rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) a[i] = 2.0f * (float)tdm_rng_uniform_d(&r) - 1.0f;
}

#define NTABLE 64  // rows of pre-drawn random actions cycled through

typedef struct {
  const mjModel *m;
  const tdm_env_spec *sp;
  double seconds;
  pthread_barrier_t *start;
  uint64_t seed;
  double rate;  // out: env steps per second of this thread (0 on failure)
} plain_arg;

// Plain loop on one thread: its own mjData (allocated by this thread), random controls, frame
// skip mj_steps per env step, reset every episode; starts when all threads reach the barrier.
static void *plain_thread(void *arg) {
  plain_arg *pa = arg;
  const mjModel *m = pa->m;
  const tdm_env_spec *sp = pa->sp;
  const int A = sp->act_dim;
  const int fs = (int)lround(sp->dt / m->opt.timestep);
  mjData *d = mj_makeData(m);
  float *act = malloc(sizeof(float) * (size_t)(NTABLE * A));
  pa->rate = 0.0;
  if (d && act) {
    rand_actions(act, (size_t)NTABLE * A, pa->seed);
    mj_forward(m, d);
  }
  pthread_barrier_wait(pa->start);  // every thread arrives, even one that failed to allocate
  if (!d || !act) goto out;
  long steps = 0;
  int ep = 0;
  double t0 = tdm_now(), t = t0;
  while (t - t0 < pa->seconds) {
    for (int b = 0; b < 64; b++) {
      const float *a = act + (size_t)(steps % NTABLE) * A;
      for (int k = 0; k < A; k++)
        d->ctrl[k] = 0.5 * (sp->act_low[k] + sp->act_high[k]) +
                     a[k] * 0.5 * (sp->act_high[k] - sp->act_low[k]);
      for (int k = 0; k < fs; k++) mj_step(m, d);
      steps++;
      if (++ep == sp->max_episode_steps) {
        mj_resetData(m, d);
        mj_forward(m, d);
        ep = 0;
      }
    }
    t = tdm_now();
  }
  pa->rate = steps / (t - t0);
out:
  free(act);
  if (d) mj_deleteData(d);
  return NULL;
}

// Plain loops on `threads` pthreads started together, each on its own mjData of the same model:
// the machine's own parallel rate for this model (sum of the threads' env steps per second).
static double plain_rate(const mjModel *m, const tdm_env_spec *sp, int threads, double seconds) {
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  plain_arg *pa = calloc((size_t)threads, sizeof *pa);
  pthread_barrier_t start;
  double sum = 0.0;
  if (!th || !pa || pthread_barrier_init(&start, NULL, (unsigned)threads) != 0) goto out;
  int started = 0;
  for (int i = 0; i < threads; i++) {
    pa[i] =
        (plain_arg){.m = m, .sp = sp, .seconds = seconds, .start = &start, .seed = 5 + (uint64_t)i};
    if (pthread_create(&th[i], NULL, plain_thread, &pa[i]) != 0) break;
    started++;
  }
  if (started < threads) {  // cannot happen in practice; the barrier would never open
    fprintf(stderr, "tandem bench envs: could not start %d plain threads\n", threads);
    exit(1);
  }
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&start);
  for (int i = 0; i < threads; i++) {
    if (pa[i].rate <= 0) {
      sum = 0.0;
      break;
    }
    sum += pa[i].rate;
  }
out:
  free(th);
  free(pa);
  return sum;
}

static void noop_range(void *ctx, int64_t b, int64_t e, int w) {
  (void)ctx, (void)b, (void)e, (void)w;
}

// Vector env on a pool of `threads`, N = threads * per_thread instances; also the pool's own cost
// of one parallel-for over N items that do nothing (wake-up, claims, join), in microseconds.
static int env_rate(const char *task, int threads, int per_thread, double seconds, double *rate,
                    double *pool_us) {
  tdm_pool *pool = NULL;
  tdm_env *e = NULL;
  float *act = NULL, *obs = NULL, *r = NULL;
  uint8_t *te = NULL, *tr = NULL, *done = NULL;
  int rc = 1;
  if (tdm_pool_create(threads, &pool) != TDM_OK) goto done;
  const int N = threads * per_thread;
  if (tdm_env_create(task, N, NULL, pool, &e) != TDM_OK) goto done;
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  const int A = sp->act_dim, O = sp->obs_dim;
  act = malloc(sizeof(float) * (size_t)NTABLE * N * A);
  obs = malloc(sizeof(float) * (size_t)N * O);
  r = malloc(sizeof(float) * (size_t)N);
  te = malloc((size_t)N);
  tr = malloc((size_t)N);
  done = malloc((size_t)N);
  if (!act || !obs || !r || !te || !tr || !done) {
    tdm_seterr(TDM_ERR_OOM, __FILE__, __LINE__, "bench envs: out of memory");
    goto done;
  }
  rand_actions(act, (size_t)NTABLE * N * A, 7);
  if (tdm_env_reset(e, 1, NULL, obs) != TDM_OK) goto done;
  long steps = 0;
  double t0 = tdm_now(), t = t0;
  while (t - t0 < seconds) {
    for (int b = 0; b < 16; b++) {
      if (tdm_env_step(e, act + (size_t)(steps % NTABLE) * N * A, obs, r, te, tr) != TDM_OK)
        goto done;
      int any = 0;
      for (int i = 0; i < N; i++) any |= done[i] = te[i] | tr[i];
      if (any && tdm_env_reset(e, TDM_ENV_CONTINUE, done, obs) != TDM_OK) goto done;
      steps++;
    }
    t = tdm_now();
  }
  *rate = (double)steps * N / (t - t0);
  const int reps = 2000;
  t0 = tdm_now();
  for (int k = 0; k < reps; k++) tdm_pool_for(pool, N, 1, noop_range, NULL);
  *pool_us = 1e6 * (tdm_now() - t0) / reps;
  rc = 0;
done:
  free(act);
  free(obs);
  free(r);
  free(te);
  free(tr);
  free(done);
  tdm_env_destroy(e);
  tdm_pool_destroy(pool);
  return rc;
}

int tdm_bench_envs(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    printf(
        "usage: tandem bench envs [--seconds S] [--per-thread K] [--tasks a,b] [--threads LIST]\n"
        "                         [--repeats R] [--json FILE]\n"
        "  env steps per second (random actions, N = threads x K instances, finished episodes\n"
        "  reset) for each thread count T, beside plain mj_step loops on the same model (frame\n"
        "  skip mj_steps per env step, random controls, reset every episode): one thread alone,\n"
        "  and T pthreads at once, each on its own mjData (the machine's own parallel rate)\n"
        "  ratio = per-thread env rate / plain one-thread rate; vs plain xT = env rate / plain\n"
        "  rate on T threads (the pool's and env's own overhead at T threads); step us = one\n"
        "  step of all instances; pool us = one empty parallel-for over them on the same pool\n"
        "  (TDM_POOL_SCHED=dynamic TDM_POOL_SPIN_US=0 give the previous pool, for A/B)\n"
        "  --seconds S     time per measurement (default 1)\n"
        "  --per-thread K  instances per thread (default 16)\n"
        "  --tasks LIST    1 to 8 comma-separated MuJoCo tasks (default half_cheetah,hopper)\n"
        "  --threads LIST  1 to 16 comma-separated thread counts (default 1,2,all cores)\n"
        "  --repeats R     interleaved repeats, best kept (default 3)\n"
        "  --json FILE     also write the results as JSON\n");
    return 0;
  }
  double seconds = 1.0;
  int per_thread = 16, repeats = 3;
  const char *json = NULL;
  char tasks[256] = "half_cheetah,hopper";
  const int ncpu = tdm_cpu_count();
  enum { MAXT = 16 };
  int tc[MAXT], nt = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--seconds") && strcmp(a, "--per-thread") && strcmp(a, "--repeats") &&
        strcmp(a, "--threads") && strcmp(a, "--tasks") && strcmp(a, "--json")) {
      fprintf(stderr, "tandem bench envs: error: unknown option %s\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "tandem bench envs: error: %s needs a value\n", a);
      return 2;
    }
    const char *v = argv[++i];
    long k;
    if (!strcmp(a, "--seconds")) {
      if (!tdm_cli_parse_real(a, v, 0, 600, true, &seconds)) return 2;
    } else if (!strcmp(a, "--per-thread")) {
      if (!tdm_cli_parse_int(a, v, 1, 4096, &k)) return 2;
      per_thread = (int)k;
    } else if (!strcmp(a, "--repeats")) {
      if (!tdm_cli_parse_int(a, v, 1, 100, &k)) return 2;
      repeats = (int)k;
    } else if (!strcmp(a, "--threads")) {
      long list[MAXT];
      int n;
      if (!tdm_cli_parse_int_list(a, v, 1, 1024, MAXT, list, &n)) return 2;
      nt = 0;  // a repeated count is measured once
      for (int q = 0; q < n; q++) {
        int dup = 0;
        for (int j = 0; j < nt; j++) dup |= tc[j] == (int)list[q];
        if (!dup) tc[nt++] = (int)list[q];
      }
    } else if (!strcmp(a, "--tasks")) {
      // 1..8 names (the table holds 8 tasks x 16 thread counts), none empty
      int nn = 1, empty = v[0] == 0 || v[0] == ',' || v[strlen(v) - 1] == ',';
      for (const char *q = v; *q; q++)
        if (*q == ',') nn++, empty |= q[1] == ',';
      if (empty || nn > 8 || strlen(v) >= sizeof tasks) {
        fprintf(stderr,
                "tandem: --tasks \"%s\": expected 1 to 8 comma-separated MuJoCo task names "
                "(e.g. half_cheetah,hopper), none empty, %zu characters at most\n",
                v, sizeof tasks - 1);
        return 2;
      }
      snprintf(tasks, sizeof tasks, "%s", v);
    } else {
      json = v;
    }
  }
  tdm_log_set_level(TDM_LOG_ERROR);
  if (nt == 0) {
    int tcounts[3] = {1, 2, ncpu};
    for (int k = 0; k < 3; k++) {
      int dup = 0;
      for (int j = 0; j < nt; j++) dup |= tc[j] == tcounts[k];
      if (!dup) tc[nt++] = tcounts[k];
    }
  }
  int t1 = -1;  // index of T = 1 in tc: its plain xT is the one-thread plain loop
  for (int k = 0; k < nt; k++)
    if (tc[k] == 1) t1 = k;
  row rows[128];
  int nrows = 0;
  char *save = NULL;
  for (char *task = strtok_r(tasks, ",", &save); task; task = strtok_r(NULL, ",", &save)) {
    tdm_env *e = NULL;
    if (tdm_env_create(task, 1, NULL, NULL, &e) != TDM_OK) {
      tdm_cli_error("bench envs");
      return 1;
    }
    const mjModel *m = tdm_env_mj_model(e);
    if (!m) {
      fprintf(stderr, "tandem bench envs: error: %s is not a MuJoCo task\n", task);
      tdm_env_destroy(e);
      return 2;
    }
    const tdm_env_spec *sp = tdm_env_get_spec(e);
    // interleave the measurements and keep the best of `repeats`: robust to a busy machine
    double plain = 0, rate[MAXT] = {0}, plain_t[MAXT] = {0}, pool_us[MAXT];
    for (int k = 0; k < nt; k++) pool_us[k] = INFINITY;
    for (int rep = 0; rep < repeats; rep++) {
      if (t1 < 0) plain = fmax(plain, plain_rate(m, sp, 1, seconds));
      for (int k = 0; k < nt; k++) {
        plain_t[k] = fmax(plain_t[k], plain_rate(m, sp, tc[k], seconds));
        double r = 0, pu = INFINITY;
        if (env_rate(task, tc[k], per_thread, seconds, &r, &pu) != 0) {
          tdm_cli_error("bench envs");
          tdm_env_destroy(e);
          return 1;
        }
        rate[k] = fmax(rate[k], r);
        pool_us[k] = fmin(pool_us[k], pu);
      }
    }
    if (t1 >= 0) plain = plain_t[t1];
    tdm_env_destroy(e);
    fprintf(stderr, "%s: plain mj_step loop %.0f env steps/s\n", task, plain);
    for (int k = 0; k < nt && nrows < 128; k++) {
      row *w = &rows[nrows++];
      snprintf(w->task, sizeof w->task, "%s", task);
      w->threads = tc[k];
      w->envs = tc[k] * per_thread;
      w->rate = rate[k];
      w->plain = plain;
      w->plain_t = plain_t[k];
      w->scaling = rate[0] > 0 ? rate[k] / rate[0] : 0;
      w->step_us = rate[k] > 0 ? 1e6 * w->envs / rate[k] : 0;
      w->pool_us = pool_us[k];
      fprintf(stderr, "%s: %d threads, %d envs: %.0f env steps/s; plain x%d %.0f\n", task,
              w->threads, w->envs, rate[k], tc[k], plain_t[k]);
    }
  }
  printf("\nenv steps per second (random actions; MuJoCo %s; %d CPU cores)\n", mj_versionString(),
         ncpu);
  printf("%-14s %7s %6s %14s %12s %14s %8s %8s %14s %11s %8s %9s %8s\n", "task", "threads", "envs",
         "env steps/s", "per thread", "plain loop/s", "ratio", "scaling", "plain xT/s",
         "vs plain xT", "plain xT", "step us", "pool us");
  for (int i = 0; i < nrows; i++) {
    const row *w = &rows[i];
    printf("%-14s %7d %6d %14.0f %12.0f %14.0f %7.1f%% %7.2fx %14.0f %10.1f%% %7.2fx %9.1f %8.2f\n",
           w->task, w->threads, w->envs, w->rate, w->rate / w->threads, w->plain,
           100.0 * w->rate / w->threads / w->plain, w->scaling, w->plain_t,
           w->plain_t > 0 ? 100.0 * w->rate / w->plain_t : 0.0,
           w->plain > 0 ? w->plain_t / w->plain : 0.0, w->step_us, w->pool_us);
  }
  printf(
      "ratio = per-thread env rate / plain one-thread mj_step loop; scaling = rate / rate on "
      "the first thread count\n"
      "plain xT/s = T plain mj_step loops at once (own mjData each); vs plain xT = env rate / "
      "that; plain xT = that / plain one-thread loop (the machine's own scaling)\n"
      "step us = one step of all envs; pool us = one empty parallel-for over them (best of "
      "repeats): the pool's share of a step\n");
  if (json) {
    FILE *f = fopen(json, "w");
    if (!f) {
      perror(json);
      return 1;
    }
    fprintf(f, "{\"bench\": \"envs\", \"mujoco\": \"%s\", \"cpus\": %d, \"results\": [",
            mj_versionString(), ncpu);
    for (int i = 0; i < nrows; i++) {
      const row *w = &rows[i];
      fprintf(f,
              "%s\n  {\"task\": \"%s\", \"threads\": %d, \"envs\": %d, \"env_steps_per_s\": %.1f, "
              "\"plain_steps_per_s\": %.1f, \"ratio_per_thread\": %.4f, \"scaling\": %.4f, "
              "\"plain_xT_steps_per_s\": %.1f, \"vs_plain_xT\": %.4f, \"plain_xT_scaling\": %.4f, "
              "\"step_us\": %.2f, \"pool_us\": %.3f}",
              i ? "," : "", w->task, w->threads, w->envs, w->rate, w->plain,
              w->rate / w->threads / w->plain, w->scaling, w->plain_t,
              w->plain_t > 0 ? w->rate / w->plain_t : 0.0,
              w->plain > 0 ? w->plain_t / w->plain : 0.0, w->step_us, w->pool_us);
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0) {
      perror(json);
      return 1;
    }
    fprintf(stderr, "wrote %s\n", json);
  }
  return 0;
}

#else

int tdm_bench_envs(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr,
          "tandem bench envs: MuJoCo tasks are unavailable: this build has no MuJoCo "
          "(install libmujoco-dev and rebuild)\n");
  return 1;
}

#endif
