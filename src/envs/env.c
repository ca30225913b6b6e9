// Vector env: N instances of one task stepped on a thread pool, the task registry, config helpers
// and simulator access for planners (include/tandem/env.h).
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env_internal.h"

// ---------------------------------------------------------------------------------------------
// registry

static const tdm_task_info registry[] = {
    {"pendulum", "classic", "Gymnasium Pendulum-v1: swing up and hold a pendulum"},
    {"mountain_car", "classic", "Gymnasium MountainCarContinuous-v0: drive up the right hill"},
    {"inverted_pendulum", "mujoco", "Gymnasium InvertedPendulum-v5: balance a pole on a cart"},
    {"cartpole_balance", "mujoco", "DeepMind Control cartpole-balance: keep the pole upright"},
    {"cartpole_swingup", "mujoco", "DeepMind Control cartpole-swingup: swing up, then balance"},
    {"half_cheetah", "mujoco", "Gymnasium HalfCheetah-v5: run forward"},
    {"hopper", "mujoco", "Gymnasium Hopper-v5: hop forward without falling"},
    {"walker2d", "mujoco", "Gymnasium Walker2d-v5: walk forward without falling"},
    {"reacher", "mujoco", "Gymnasium Reacher-v5: reach a random target with a 2-link arm"},
    {"mujoco", "mujoco", "a user MJCF (config key model) with reward, termination from config"},
};
static const int n_registry = (int)(sizeof registry / sizeof registry[0]);

#ifdef TDM_MUJOCO
#define TDM_HAVE_MJ 1
#else
#define TDM_HAVE_MJ 0
#endif

static const char *names_list[sizeof registry / sizeof registry[0] + 1];

const char *const *tdm_env_names(void) {
  if (!names_list[0]) {  // idempotent: every caller writes the same values
    int k = 0;
    for (int i = 0; i < n_registry; i++)
      if (TDM_HAVE_MJ || strcmp(registry[i].family, "mujoco")) names_list[k++] = registry[i].name;
    names_list[k] = NULL;
  }
  return names_list;
}

const char *tdm_env_describe(const char *task) {
  for (int i = 0; i < n_registry; i++)
    if (task && !strcmp(task, registry[i].name)) return registry[i].about;
  return NULL;
}

// ---------------------------------------------------------------------------------------------
// config helpers

const char *tdm_envcfg_where(const config_setting_t *s, char *buf, size_t n) {
  const char *f = s ? config_setting_source_file(s) : NULL;
  int line = s ? (int)config_setting_source_line(s) : 0;
  if (f)
    snprintf(buf, n, "%s:%d", f, line);
  else if (line > 0)
    snprintf(buf, n, "config line %d", line);
  else
    snprintf(buf, n, "config");
  return buf;
}

static const config_setting_t *member(const config_setting_t *cfg, const char *key) {
  return cfg ? config_setting_get_member(cfg, key) : NULL;
}

tdm_status tdm_envcfg_num(const config_setting_t *cfg, const char *key, double lo, double hi,
                          double *v) {
  const config_setting_t *s = member(cfg, key);
  if (!s) return TDM_OK;
  char w[300];
  if (!config_setting_is_number(s))
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s must be a number", tdm_envcfg_where(s, w, sizeof w),
                    key);
  double x = config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                         : (double)config_setting_get_int64(s);
  if (!(x >= lo && x <= hi))
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s = %g is out of range [%g, %g]",
                    tdm_envcfg_where(s, w, sizeof w), key, x, lo, hi);
  *v = x;
  return TDM_OK;
}

tdm_status tdm_envcfg_int(const config_setting_t *cfg, const char *key, long lo, long hi, int *v) {
  const config_setting_t *s = member(cfg, key);
  if (!s) return TDM_OK;
  char w[300];
  int t = config_setting_type(s);
  long long x;
  if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
    x = config_setting_get_int64(s);
  } else if (t == CONFIG_TYPE_FLOAT &&
             config_setting_get_float(s) == floor(config_setting_get_float(s)) &&
             fabs(config_setting_get_float(s)) < 9e18) {
    x = (long long)config_setting_get_float(s);  // 1e6 is a valid integer
  } else {
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s must be an integer",
                    tdm_envcfg_where(s, w, sizeof w), key);
  }
  if (x < lo || x > hi)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s = %lld is out of range [%ld, %ld]",
                    tdm_envcfg_where(s, w, sizeof w), key, x, lo, hi);
  *v = (int)x;
  return TDM_OK;
}

tdm_status tdm_envcfg_bool(const config_setting_t *cfg, const char *key, bool *v) {
  const config_setting_t *s = member(cfg, key);
  if (!s) return TDM_OK;
  char w[300];
  if (config_setting_type(s) != CONFIG_TYPE_BOOL)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s must be true or false",
                    tdm_envcfg_where(s, w, sizeof w), key);
  *v = config_setting_get_bool(s) != 0;
  return TDM_OK;
}

tdm_status tdm_envcfg_str(const config_setting_t *cfg, const char *key, const char **v) {
  const config_setting_t *s = member(cfg, key);
  if (!s) return TDM_OK;
  char w[300];
  if (config_setting_type(s) != CONFIG_TYPE_STRING)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key %s must be a string", tdm_envcfg_where(s, w, sizeof w),
                    key);
  *v = config_setting_get_string(s);
  return TDM_OK;
}

tdm_status tdm_envcfg_check_keys(const config_setting_t *cfg, const char *what,
                                 const char *const *allowed) {
  if (!cfg) return TDM_OK;
  int n = config_setting_length(cfg);
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(cfg, (unsigned)i);
    const char *name = config_setting_name(s);
    if (!name) continue;
    int ok = 0;
    for (int k = 0; allowed[k]; k++) ok |= !strcmp(allowed[k], name);
    if (!ok) {
      char list[512] = "", w[300];
      size_t len = 0;
      for (int k = 0; allowed[k] && len < sizeof list - 40; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "", allowed[k]);
      return TDM_FAIL(TDM_ERR_CONFIG, "%s: unknown key \"%s\" for env %s; valid keys: %s",
                      tdm_envcfg_where(s, w, sizeof w), name, what, list);
    }
  }
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// the vector env

struct tdm_env {
  tdm_env_spec spec;
  const tdm_task_ops *ops;
  void *task;
  tdm_pool *pool;
  int n;
  void **inst;           // (N)
  tdm_rng *rng;          // (N) reset noise streams
  float *center, *half;  // (A) action map u = center + a * half
  float *u;              // (N, A) task-unit actions
  float *last_obs;       // (N, O) last finite observation
  float *scratch_obs;    // (N, O)
  double *ep_return;     // (N)
  int64_t *ep_len;       // (N)
  uint8_t *done;         // (N) finished and not reset yet
  atomic_long unstable;
  const void *mj_model;
};

// Make instances [b, end) that do not exist yet (one that fails stays NULL) and reset them:
// a fresh env starts seeded with 0 and all instances reset, so stepping right away is defined.
static void create_range(void *ctx, int64_t b, int64_t end, int w) {
  (void)w;
  tdm_env *e = ctx;
  const int O = e->spec.obs_dim;
  for (int64_t i = b; i < end; i++) {
    if (!e->inst[i] && e->ops->inst_create(e->task, &e->inst[i]) != TDM_OK) {
      e->inst[i] = NULL;
      continue;
    }
    tdm_rng_init(&e->rng[i], 0, (uint64_t)i);
    e->ops->reset(e->task, e->inst[i], &e->rng[i], e->last_obs + i * O);
  }
}

static tdm_status lookup(const char *task, const tdm_task_info **out) {
  for (int i = 0; i < n_registry; i++)
    if (!strcmp(task, registry[i].name)) {
      *out = &registry[i];
      return TDM_OK;
    }
  char list[1024] = "";
  size_t len = 0;
  for (const char *const *nm = tdm_env_names(); *nm; nm++)
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", *nm);
  return TDM_FAIL(TDM_ERR_ARG, "unknown env task \"%s\"; valid tasks: %s%s", task, list,
                  TDM_HAVE_MJ ? "" : " (MuJoCo tasks are unavailable: built without MuJoCo)");
}

static tdm_status make_task(const char *task, const config_setting_t *cfg, tdm_task_made *made) {
  const tdm_task_info *info = NULL;
  TDM_TRY(lookup(task, &info));
  if (!strcmp(info->family, "classic")) return tdm_classic_create(task, cfg, made);
#ifdef TDM_MUJOCO
  return tdm_mujoco_create(task, cfg, made);
#else
  return TDM_FAIL(TDM_ERR_UNSUPPORTED,
                  "env task \"%s\" needs MuJoCo, and this build has none: MuJoCo tasks are "
                  "unavailable (install libmujoco-dev or set MUJOCO_DIR, then rebuild)",
                  task);
#endif
}

tdm_status tdm_env_create(const char *task, int n, const struct config_setting_t *cfg,
                          tdm_pool *pool, tdm_env **out) {
  *out = NULL;
  const char *t = NULL;  // the config's task key
  TDM_TRY(tdm_envcfg_str(cfg, "task", &t));
  if (!task) {
    if (!t) return TDM_FAIL(TDM_ERR_CONFIG, "env: no task given (set key task = \"pendulum\"...)");
    task = t;
  } else if (t && strcmp(t, task)) {
    char w[300];
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "%s: env key task = \"%s\" contradicts the task \"%s\" asked for",
                    tdm_envcfg_where(config_setting_get_member(cfg, "task"), w, sizeof w), t, task);
  }
  if (n < 1) return TDM_FAIL(TDM_ERR_ARG, "env %s: number of instances %d must be >= 1", task, n);
  tdm_task_made made;
  memset(&made, 0, sizeof made);
  TDM_TRY(make_task(task, cfg, &made));
  tdm_status st = TDM_OK;
  tdm_env *e = calloc(1, sizeof *e);
  if (!e) {
    made.ops->task_destroy(made.task);
    return TDM_FAIL(TDM_ERR_OOM, "env %s: out of memory", task);
  }
  e->spec = made.spec;
  e->ops = made.ops;
  e->task = made.task;
  e->mj_model = made.mj_model;
  e->pool = pool;
  e->n = n;
  const int O = e->spec.obs_dim, A = e->spec.act_dim;
  e->inst = calloc((size_t)n, sizeof *e->inst);
  e->rng = calloc((size_t)n, sizeof *e->rng);
  e->center = calloc((size_t)A, sizeof(float));
  e->half = calloc((size_t)A, sizeof(float));
  e->u = calloc((size_t)n * A, sizeof(float));
  e->last_obs = calloc((size_t)n * O, sizeof(float));
  e->scratch_obs = calloc((size_t)n * O, sizeof(float));
  e->ep_return = calloc((size_t)n, sizeof(double));
  e->ep_len = calloc((size_t)n, sizeof(int64_t));
  e->done = calloc((size_t)n, 1);
  if (!e->inst || !e->rng || !e->center || !e->half || !e->u || !e->last_obs || !e->scratch_obs ||
      !e->ep_return || !e->ep_len || !e->done) {
    st = TDM_FAIL(TDM_ERR_OOM, "env %s: out of memory for %d instances", task, n);
    goto fail;
  }
  for (int k = 0; k < A; k++) {
    e->center[k] = 0.5f * (e->spec.act_low[k] + e->spec.act_high[k]);
    e->half[k] = 0.5f * (e->spec.act_high[k] - e->spec.act_low[k]);
  }
  atomic_init(&e->unstable, 0);
  // instances are made and first reset on the pool, each by the worker that will step it (its
  // memory first touched there, its small allocations from that thread's malloc arena); one that
  // failed there is made again here, where a failure's message is this thread's
  tdm_pool_for(pool, n, e->spec.mujoco ? 1 : 64, create_range, e);
  for (int i = 0; i < n; i++)
    if (!e->inst[i]) {
      TDM_TRYG(e->ops->inst_create(e->task, &e->inst[i]));
      create_range(e, i, i + 1, 0);
    }
  *out = e;
  return TDM_OK;
fail:
  tdm_env_destroy(e);
  return st;
}

void tdm_env_destroy(tdm_env *e) {
  if (!e) return;
  if (e->inst)
    for (int i = 0; i < e->n; i++)
      if (e->inst[i]) e->ops->inst_destroy(e->inst[i]);
  if (e->task) e->ops->task_destroy(e->task);
  free(e->inst);
  free(e->rng);
  free(e->center);
  free(e->half);
  free(e->u);
  free(e->last_obs);
  free(e->scratch_obs);
  free(e->ep_return);
  free(e->ep_len);
  free(e->done);
  free(e);
}

const tdm_env_spec *tdm_env_get_spec(const tdm_env *env) {
  return &env->spec;
}
int tdm_env_num(const tdm_env *env) {
  return env->n;
}
const double *tdm_env_episode_return(const tdm_env *env) {
  return env->ep_return;
}
const int64_t *tdm_env_episode_length(const tdm_env *env) {
  return env->ep_len;
}
long tdm_env_unstable_count(const tdm_env *env) {
  return atomic_load(&env->unstable);
}
const void *tdm_env_mj_model(const tdm_env *env) {
  return env->mj_model;
}

typedef struct {
  tdm_env *e;
  const uint8_t *mask;
  float *obs;
  const float *act;
  float *reward;
  uint8_t *term, *trunc;
} env_ctx;

static void reset_range(void *ctx, int64_t b, int64_t end, int w) {
  (void)w;
  env_ctx *c = ctx;
  tdm_env *e = c->e;
  const int O = e->spec.obs_dim;
  for (int64_t i = b; i < end; i++) {
    if (c->mask && !c->mask[i]) continue;
    float *lo = e->last_obs + i * O;
    e->ops->reset(e->task, e->inst[i], &e->rng[i], lo);
    memcpy(c->obs + i * O, lo, sizeof(float) * (size_t)O);
    e->ep_return[i] = 0.0;
    e->ep_len[i] = 0;
    e->done[i] = 0;
  }
}

// Reset the masked instances (their streams already seeded) on the pool.
static void reset_masked(tdm_env *e, const uint8_t *mask, float *obs) {
  env_ctx c = {.e = e, .mask = mask, .obs = obs};
  // MuJoCo: the grain of step, so that each instance is reset by the worker that steps it
  tdm_pool_for(e->pool, e->n, e->spec.mujoco ? 1 : 16, reset_range, &c);
}

tdm_status tdm_env_reset(tdm_env *e, uint64_t seed, const uint8_t *mask, float *obs) {
  if (!obs) return TDM_FAIL(TDM_ERR_ARG, "tdm_env_reset: obs is NULL");
  if (seed != TDM_ENV_CONTINUE)
    for (int i = 0; i < e->n; i++)
      if (!mask || mask[i]) tdm_rng_init(&e->rng[i], seed, (uint64_t)i);
  reset_masked(e, mask, obs);
  return TDM_OK;
}

tdm_status tdm_env_reset_each(tdm_env *e, const uint64_t *seeds, const uint8_t *mask, float *obs) {
  if (!obs || !seeds) return TDM_FAIL(TDM_ERR_ARG, "tdm_env_reset_each: obs or seeds is NULL");
  for (int i = 0; i < e->n; i++)
    if ((!mask || mask[i]) && seeds[i] != TDM_ENV_CONTINUE)
      tdm_rng_init(&e->rng[i], seeds[i], (uint64_t)i);
  reset_masked(e, mask, obs);
  return TDM_OK;
}

static void step_range(void *ctx, int64_t b, int64_t end, int w) {
  (void)w;
  env_ctx *c = ctx;
  tdm_env *e = c->e;
  const int O = e->spec.obs_dim, A = e->spec.act_dim;
  for (int64_t i = b; i < end; i++) {
    float *u = e->u + i * A;
    const float *a = c->act + i * A;
    for (int k = 0; k < A; k++) u[k] = e->center[k] + a[k] * e->half[k];
    float *obs = c->obs + i * O, *lo = e->last_obs + i * O;
    float r = 0.0f;
    uint8_t term = 0;
    int bad = e->ops->step(e->task, e->inst[i], u, obs, &r, &term);
    if (bad) {
      long k = atomic_fetch_add(&e->unstable, 1) + 1;
      tdm_warn_once("env.unstable",
                    "env %s: instance %lld went unstable at episode step %lld (simulator warning "
                    "or non-finite state); it is reset and reported as truncated (count: %ld so "
                    "far; further ones are counted silently)",
                    e->spec.name, (long long)i, (long long)e->ep_len[i] + 1, k);
      e->ops->reset(e->task, e->inst[i], &e->rng[i], e->scratch_obs + i * O);
      memcpy(obs, lo, sizeof(float) * (size_t)O);
      e->ep_len[i]++;
      c->reward[i] = 0.0f;
      c->term[i] = 0;
      c->trunc[i] = 1;
      e->done[i] = 1;
      continue;
    }
    e->ep_len[i]++;
    e->ep_return[i] += (double)r;
    c->reward[i] = r;
    c->term[i] = term;
    c->trunc[i] = e->ep_len[i] >= e->spec.max_episode_steps;  // TimeLimit: may coincide with term
    e->done[i] = term || c->trunc[i];
    memcpy(lo, obs, sizeof(float) * (size_t)O);
  }
}

tdm_status tdm_env_step(tdm_env *e, const float *act, float *next_obs, float *reward,
                        uint8_t *terminated, uint8_t *truncated) {
  if (!act || !next_obs || !reward || !terminated || !truncated)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_env_step: NULL argument");
  for (int i = 0; i < e->n; i++)
    if (e->done[i])
      return TDM_FAIL(TDM_ERR_ARG,
                      "env %s: instance %d finished its episode; reset it (tdm_env_reset with its "
                      "mask byte set) before stepping again",
                      e->spec.name, i);
  env_ctx c = {.e = e,
               .act = act,
               .obs = next_obs,
               .reward = reward,
               .term = terminated,
               .trunc = truncated};
  tdm_pool_for(e->pool, e->n, e->spec.mujoco ? 1 : 64, step_range, &c);
  return TDM_OK;
}

static tdm_status check_index(const tdm_env *e, int i) {
  if (i < 0 || i >= e->n)
    return TDM_FAIL(TDM_ERR_ARG, "env %s: instance %d out of range [0, %d)", e->spec.name, i, e->n);
  return TDM_OK;
}

static tdm_status check_finite(const tdm_env_spec *sp, const double *state) {
  for (int k = 0; k < sp->state_dim; k++)
    if (!isfinite(state[k]))
      return TDM_FAIL(TDM_ERR_NUMERIC, "env %s: state[%d] = %g is not finite", sp->name, k,
                      state[k]);
  return TDM_OK;
}

tdm_status tdm_env_get_state(const tdm_env *e, int i, double *state) {
  TDM_TRY(check_index(e, i));
  e->ops->get_state(e->task, e->inst[i], state);
  return TDM_OK;
}

tdm_status tdm_env_set_state(tdm_env *e, int i, const double *state, float *obs) {
  TDM_TRY(check_index(e, i));
  TDM_TRY(check_finite(&e->spec, state));
  const int O = e->spec.obs_dim;
  e->ops->set_state(e->task, e->inst[i], state);
  e->ops->observe(e->task, e->inst[i], e->last_obs + (size_t)i * O);
  if (obs) memcpy(obs, e->last_obs + (size_t)i * O, sizeof(float) * (size_t)O);
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// simulator copies

struct tdm_sim {
  const tdm_env *env;
  void *inst;
  float *u, *obs, *u2;        // (A), (O), (A)
  double *s0, *s1, *s2, *s3;  // (S) scratch
};

tdm_status tdm_sim_create(const tdm_env *env, tdm_sim **out) {
  *out = NULL;
  tdm_sim *s = calloc(1, sizeof *s);
  if (!s) return TDM_FAIL(TDM_ERR_OOM, "sim: out of memory");
  s->env = env;
  const int A = env->spec.act_dim, O = env->spec.obs_dim, S = env->spec.state_dim;
  s->u = calloc((size_t)A, sizeof(float));
  s->u2 = calloc((size_t)A, sizeof(float));
  s->obs = calloc((size_t)O, sizeof(float));
  s->s0 = calloc((size_t)S, sizeof(double));
  s->s1 = calloc((size_t)S, sizeof(double));
  s->s2 = calloc((size_t)S, sizeof(double));
  s->s3 = calloc((size_t)S, sizeof(double));
  tdm_status st;
  if (!s->u || !s->u2 || !s->obs || !s->s0 || !s->s1 || !s->s2 || !s->s3) {
    st = TDM_FAIL(TDM_ERR_OOM, "sim: out of memory");
    goto fail;
  }
  TDM_TRYG(env->ops->inst_create(env->task, &s->inst));
  *out = s;
  return TDM_OK;
fail:
  tdm_sim_destroy(s);
  return st;
}

void tdm_sim_destroy(tdm_sim *s) {
  if (!s) return;
  if (s->inst) s->env->ops->inst_destroy(s->inst);
  free(s->u);
  free(s->u2);
  free(s->obs);
  free(s->s0);
  free(s->s1);
  free(s->s2);
  free(s->s3);
  free(s);
}

static void to_task_units(const tdm_env *e, const float *a, float *u) {
  for (int k = 0; k < e->spec.act_dim; k++) u[k] = e->center[k] + a[k] * e->half[k];
}

tdm_status tdm_sim_step(tdm_sim *s, const double *state, const float *act, double *next_state,
                        float *obs, float *reward, uint8_t *terminated) {
  const tdm_env *e = s->env;
  TDM_TRY(check_finite(&e->spec, state));
  to_task_units(e, act, s->u);
  e->ops->set_state(e->task, s->inst, state);
  float r = 0.0f;
  uint8_t t = 0;
  int bad = e->ops->step(e->task, s->inst, s->u, s->obs, &r, &t);
  if (next_state) e->ops->get_state(e->task, s->inst, next_state);
  if (obs) memcpy(obs, s->obs, sizeof(float) * (size_t)e->spec.obs_dim);
  if (reward) *reward = r;
  if (terminated) *terminated = t;
  if (bad)
    return TDM_FAIL(TDM_ERR_NUMERIC, "env %s: simulation from the given state went unstable",
                    e->spec.name);
  return TDM_OK;
}

tdm_status tdm_sim_observe(tdm_sim *s, const double *state, float *obs) {
  const tdm_env *e = s->env;
  TDM_TRY(check_finite(&e->spec, state));
  e->ops->set_state(e->task, s->inst, state);
  e->ops->observe(e->task, s->inst, obs);
  return TDM_OK;
}

tdm_status tdm_sim_cost(tdm_sim *s, const double *state, const float *act, double *cost) {
  const tdm_env *e = s->env;
  TDM_TRY(check_finite(&e->spec, state));
  to_task_units(e, act, s->u);
  e->ops->set_state(e->task, s->inst, state);
  *cost = e->ops->cost(e->task, s->inst, s->u);
  return TDM_OK;
}

// next state of (state, u) into out (classic tasks: the tangent space is the state)
static void fd_step(tdm_sim *s, const double *state, const float *u, double *out) {
  const tdm_env *e = s->env;
  float r;
  uint8_t t;
  e->ops->set_state(e->task, s->inst, state);
  e->ops->step(e->task, s->inst, u, s->obs, &r, &t);
  e->ops->get_state(e->task, s->inst, out);
}

static tdm_status fd_linearize(tdm_sim *s, const double *state, const float *u, double eps,
                               bool centered, double *A, double *B) {
  const tdm_env *e = s->env;
  const int S = e->spec.state_dim, U = e->spec.act_dim;
  double *xp = s->s1, *xm = s->s2, *x = s->s0, *f0 = s->s3;
  fd_step(s, state, u, f0);
  for (int j = 0; j < S; j++) {
    memcpy(x, state, sizeof(double) * (size_t)S);
    x[j] = state[j] + eps;
    fd_step(s, x, u, xp);
    if (centered) {
      x[j] = state[j] - eps;
      fd_step(s, x, u, xm);
    }
    for (int i = 0; i < S; i++)
      A[i * S + j] = centered ? (xp[i] - xm[i]) / (2 * eps) : (xp[i] - f0[i]) / eps;
  }
  for (int j = 0; j < U; j++) {
    memcpy(s->u2, u, sizeof(float) * (size_t)U);
    s->u2[j] = u[j] + (float)eps;
    double hp = (double)s->u2[j] - u[j];
    fd_step(s, state, s->u2, xp);
    double hm = 0.0;
    if (centered) {
      s->u2[j] = u[j] - (float)eps;
      hm = (double)u[j] - s->u2[j];
      fd_step(s, state, s->u2, xm);
    }
    for (int i = 0; i < S; i++)
      B[i * U + j] = centered ? (xp[i] - xm[i]) / (hp + hm) : (xp[i] - f0[i]) / hp;
  }
  return TDM_OK;
}

tdm_status tdm_sim_linearize(tdm_sim *s, const double *state, const float *act, double eps,
                             bool centered, double *A, double *B) {
  const tdm_env *e = s->env;
  TDM_TRY(check_finite(&e->spec, state));
  to_task_units(e, act, s->u);
  const int T = e->spec.tangent_dim, U = e->spec.act_dim;
  if (e->ops->linearize) {
    if (eps <= 0) eps = 1e-6;
    e->ops->set_state(e->task, s->inst, state);
    TDM_TRY(e->ops->linearize(e->task, s->inst, s->u, eps, centered, A, B));
  } else {
    if (eps <= 0) eps = 1e-4;  // float32 actions: a larger default step
    TDM_TRY(fd_linearize(s, state, s->u, eps, centered, A, B));
  }
  // B is with respect to the agent action: du = half da
  for (int i = 0; i < T; i++)
    for (int j = 0; j < U; j++) B[i * U + j] *= e->half[j];
  return TDM_OK;
}
