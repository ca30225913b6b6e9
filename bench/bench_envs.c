// tandem bench envs: vector-env steps per second for MuJoCo tasks on 1, 2 and all threads, beside
// a plain single-threaded mj_step loop on the same model in the same run. Prints a table last.
#include <math.h>
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
  double scaling;  // rate / rate at one thread
} row;

// uniform actions in [-1, 1], (n, A)
static void rand_actions(float *a, size_t n, uint64_t seed) {
  tdm_rng r;
  tdm_rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) a[i] = 2.0f * (float)tdm_rng_uniform_d(&r) - 1.0f;
}

#define NTABLE 64  // rows of pre-drawn random actions cycled through

// Plain loop: one mjData, random controls, frame skip mj_steps per env step, reset every episode.
static double plain_rate(const mjModel *m, const tdm_env_spec *sp, double seconds) {
  mjData *d = mj_makeData(m);
  if (!d) return 0.0;
  const int A = sp->act_dim;
  const int fs = (int)lround(sp->dt / m->opt.timestep);
  float *act = malloc(sizeof(float) * (size_t)(NTABLE * A));
  if (!act) {
    mj_deleteData(d);
    return 0.0;
  }
  rand_actions(act, (size_t)NTABLE * A, 5);
  mj_forward(m, d);
  long steps = 0;
  int ep = 0;
  double t0 = tdm_now(), t = t0;
  while (t - t0 < seconds) {
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
  free(act);
  mj_deleteData(d);
  return steps / (t - t0);
}

// Vector env on a pool of `threads`, N = threads * per_thread instances.
static int env_rate(const char *task, int threads, int per_thread, double seconds, double *rate) {
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
        "usage: tandem bench envs [--seconds S] [--per-thread K] [--tasks a,b] [--json FILE]\n"
        "  env steps per second (random actions, N = threads x K instances, finished episodes\n"
        "  reset) for 1, 2 and all threads, beside a plain one-thread mj_step loop on the same\n"
        "  model (frame skip mj_steps per env step); ratio = per-thread env rate / plain rate\n"
        "  --seconds S     time per measurement (default 1.5)\n"
        "  --per-thread K  instances per thread (default 16)\n"
        "  --tasks LIST    comma-separated MuJoCo tasks (default half_cheetah,hopper)\n"
        "  --json FILE     also write the results as JSON\n");
    return 0;
  }
  double seconds = 1.0;
  int per_thread = 16, repeats = 3;
  const char *json = NULL;
  char tasks[256] = "half_cheetah,hopper";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "tandem bench envs: error: %s needs a value (or is unknown)\n", a);
      return 2;
    }
    const char *v = argv[++i];
    char *end;
    if (!strcmp(a, "--seconds")) {
      seconds = strtod(v, &end);
      if (*end || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "tandem bench envs: error: --seconds %s must be in (0, 600]\n", v);
        return 2;
      }
    } else if (!strcmp(a, "--per-thread")) {
      long k = strtol(v, &end, 10);
      if (*end || k < 1 || k > 4096) {
        fprintf(stderr, "tandem bench envs: error: --per-thread %s must be in [1, 4096]\n", v);
        return 2;
      }
      per_thread = (int)k;
    } else if (!strcmp(a, "--repeats")) {
      long k = strtol(v, &end, 10);
      if (*end || k < 1 || k > 100) {
        fprintf(stderr, "tandem bench envs: error: --repeats %s must be in [1, 100]\n", v);
        return 2;
      }
      repeats = (int)k;
    } else if (!strcmp(a, "--tasks")) {
      snprintf(tasks, sizeof tasks, "%s", v);
    } else if (!strcmp(a, "--json")) {
      json = v;
    } else {
      fprintf(stderr, "tandem bench envs: error: unknown option %s\n", a);
      return 2;
    }
  }
  tdm_log_set_level(TDM_LOG_ERROR);
  const int ncpu = tdm_cpu_count();
  int tcounts[3] = {1, 2, ncpu}, nt = 0, tc[3];
  for (int k = 0; k < 3; k++) {
    int dup = 0;
    for (int j = 0; j < nt; j++) dup |= tc[j] == tcounts[k];
    if (!dup && tcounts[k] >= 1) tc[nt++] = tcounts[k];
  }
  row rows[64];
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
    // interleave the measurements and keep the best of `repeats`: robust to a busy machine
    double plain = 0, rate[3] = {0, 0, 0};
    for (int rep = 0; rep < repeats; rep++) {
      plain = fmax(plain, plain_rate(m, tdm_env_get_spec(e), seconds));
      for (int k = 0; k < nt; k++) {
        double r = 0;
        if (env_rate(task, tc[k], per_thread, seconds, &r) != 0) {
          tdm_cli_error("bench envs");
          tdm_env_destroy(e);
          return 1;
        }
        rate[k] = fmax(rate[k], r);
      }
    }
    tdm_env_destroy(e);
    fprintf(stderr, "%s: plain mj_step loop %.0f env steps/s\n", task, plain);
    for (int k = 0; k < nt && nrows < 64; k++) {
      row *w = &rows[nrows++];
      snprintf(w->task, sizeof w->task, "%s", task);
      w->threads = tc[k];
      w->envs = tc[k] * per_thread;
      w->rate = rate[k];
      w->plain = plain;
      w->scaling = rate[0] > 0 ? rate[k] / rate[0] : 0;
      fprintf(stderr, "%s: %d threads, %d envs: %.0f env steps/s\n", task, w->threads, w->envs,
              rate[k]);
    }
  }
  printf("\nenv steps per second (random actions; MuJoCo %s; %d CPU cores)\n", mj_versionString(),
         ncpu);
  printf("%-14s %7s %6s %14s %12s %14s %8s %8s\n", "task", "threads", "envs", "env steps/s",
         "per thread", "plain loop/s", "ratio", "scaling");
  for (int i = 0; i < nrows; i++) {
    const row *w = &rows[i];
    printf("%-14s %7d %6d %14.0f %12.0f %14.0f %7.1f%% %7.2fx\n", w->task, w->threads, w->envs,
           w->rate, w->rate / w->threads, w->plain, 100.0 * w->rate / w->threads / w->plain,
           w->scaling);
  }
  printf(
      "ratio = per-thread env rate / plain one-thread mj_step loop; scaling = rate / rate on "
      "1 thread\n");
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
              "\"plain_steps_per_s\": %.1f, \"ratio_per_thread\": %.4f, \"scaling\": %.4f}",
              i ? "," : "", w->task, w->threads, w->envs, w->rate, w->plain,
              w->rate / w->threads / w->plain, w->scaling);
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
