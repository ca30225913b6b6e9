// Classic control tasks: Pendulum-v1 and MountainCarContinuous-v0, exactly Gymnasium's equations
// (src/envs/classic_dynamics.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "classic_dynamics.h"
#include "env_internal.h"

enum { CLASSIC_PENDULUM, CLASSIC_MOUNTAIN_CAR };

typedef struct {
  int kind;
  double g;              // pendulum gravity
  double goal_velocity;  // mountain car
  float obs_low[3], obs_high[3], act_low[1], act_high[1];
} classic_task;

typedef struct {
  double s[2];
} classic_inst;

static void classic_task_destroy(void *task) {
  free(task);
}

static tdm_status classic_inst_create(const void *task, void **inst) {
  (void)task;
  classic_inst *c = calloc(1, sizeof *c);
  if (!c) return TDM_FAIL(TDM_ERR_OOM, "classic env instance: out of memory");
  *inst = c;
  return TDM_OK;
}

static void classic_inst_destroy(void *inst) {
  free(inst);
}

static void classic_observe(const void *task, void *inst, float *obs) {
  const classic_task *t = task;
  const classic_inst *c = inst;
  if (t->kind == CLASSIC_PENDULUM)
    tdm_pendulum_obs(c->s, obs);
  else
    tdm_mountain_car_obs(c->s, obs);
}

// uniform in [lo, hi) from 53 random bits, as numpy's uniform(low, high)
static double uniform(tdm_rng *rng, double lo, double hi) {
  return lo + (hi - lo) * tdm_rng_uniform_d(rng);
}

static void classic_reset(const void *task, void *inst, tdm_rng *rng, float *obs) {
  const classic_task *t = task;
  classic_inst *c = inst;
  if (t->kind == CLASSIC_PENDULUM) {
    // Pendulum-v1: theta ~ U(-pi, pi), theta_dot ~ U(-1, 1)
    c->s[0] = uniform(rng, -M_PI, M_PI);
    c->s[1] = uniform(rng, -1.0, 1.0);
  } else {
    // MountainCarContinuous-v0: position ~ U(-0.6, -0.4), velocity 0 (float64 until the first step)
    c->s[0] = uniform(rng, -0.6, -0.4);
    c->s[1] = 0.0;
  }
  classic_observe(task, inst, obs);
}

static int classic_step(const void *task, void *inst, const float *u, float *obs, float *reward,
                        uint8_t *terminated) {
  const classic_task *t = task;
  classic_inst *c = inst;
  double next[2], r;
  int term = 0;
  if (t->kind == CLASSIC_PENDULUM)
    tdm_pendulum_step(c->s, u[0], t->g, next, &r);
  else
    term = tdm_mountain_car_step(c->s, u[0], t->goal_velocity, next, &r);
  c->s[0] = next[0];
  c->s[1] = next[1];
  classic_observe(task, inst, obs);
  *reward = (float)r;
  *terminated = (uint8_t)term;
  return !(isfinite(next[0]) && isfinite(next[1]));
}

static void classic_get_state(const void *task, const void *inst, double *state) {
  (void)task;
  const classic_inst *c = inst;
  state[0] = c->s[0];
  state[1] = c->s[1];
}

static void classic_set_state(const void *task, void *inst, const double *state) {
  (void)task;
  classic_inst *c = inst;
  c->s[0] = state[0];
  c->s[1] = state[1];
}

static double classic_cost(const void *task, void *inst, const float *u) {
  const classic_task *t = task;
  const classic_inst *c = inst;
  double next[2], r;
  if (t->kind == CLASSIC_PENDULUM) {
    tdm_pendulum_step(c->s, u[0], t->g, next, &r);  // Pendulum's cost is of the pre-step state
    return -r;
  }
  // MountainCar: distance to the goal position plus the action cost (the +100 goal bonus is not a
  // residual)
  const double d = fmax(0.0, TDM_MC_GOAL_POSITION - c->s[0]);
  return d * d + 0.1 * (double)u[0] * (double)u[0];
}

static const tdm_task_ops classic_ops = {
    .task_destroy = classic_task_destroy,
    .inst_create = classic_inst_create,
    .inst_destroy = classic_inst_destroy,
    .reset = classic_reset,
    .step = classic_step,
    .get_state = classic_get_state,
    .set_state = classic_set_state,
    .observe = classic_observe,
    .cost = classic_cost,
    .linearize = NULL,
};

tdm_status tdm_classic_create(const char *name, const config_setting_t *cfg, tdm_task_made *out) {
  classic_task *t = calloc(1, sizeof *t);
  if (!t) return TDM_FAIL(TDM_ERR_OOM, "classic env %s: out of memory", name);
  tdm_env_spec *sp = &out->spec;
  memset(out, 0, sizeof *out);
  tdm_status st;
  if (!strcmp(name, "pendulum")) {
    static const char *const keys[] = {"task", "g", "max_episode_steps", NULL};
    TDM_TRYG(tdm_envcfg_check_keys(cfg, name, keys));
    t->kind = CLASSIC_PENDULUM;
    t->g = TDM_PENDULUM_G;
    sp->max_episode_steps = 200;
    TDM_TRYG(tdm_envcfg_num(cfg, "g", 0.0, 1e3, &t->g));
    sp->obs_dim = 3;
    const float hi[3] = {1.0f, 1.0f, (float)TDM_PENDULUM_MAX_SPEED};
    for (int k = 0; k < 3; k++) t->obs_low[k] = -hi[k], t->obs_high[k] = hi[k];
    t->act_low[0] = (float)-TDM_PENDULUM_MAX_TORQUE;
    t->act_high[0] = (float)TDM_PENDULUM_MAX_TORQUE;
    sp->dt = TDM_PENDULUM_DT;
    sp->name = "pendulum";
  } else if (!strcmp(name, "mountain_car")) {
    static const char *const keys[] = {"task", "goal_velocity", "max_episode_steps", NULL};
    TDM_TRYG(tdm_envcfg_check_keys(cfg, name, keys));
    t->kind = CLASSIC_MOUNTAIN_CAR;
    t->goal_velocity = 0.0;
    sp->max_episode_steps = 999;
    TDM_TRYG(tdm_envcfg_num(cfg, "goal_velocity", -1.0, 1.0, &t->goal_velocity));
    sp->obs_dim = 2;
    t->obs_low[0] = (float)TDM_MC_MIN_POSITION, t->obs_high[0] = (float)TDM_MC_MAX_POSITION;
    t->obs_low[1] = (float)-TDM_MC_MAX_SPEED, t->obs_high[1] = (float)TDM_MC_MAX_SPEED;
    t->act_low[0] = (float)TDM_MC_MIN_ACTION;
    t->act_high[0] = (float)TDM_MC_MAX_ACTION;
    sp->dt = 1.0;  // the task has no physical time step; one unit per step
    sp->name = "mountain_car";
  } else {
    st = TDM_FAIL(TDM_ERR_ARG, "unknown classic task \"%s\"", name);
    goto fail;
  }
  TDM_TRYG(tdm_envcfg_int(cfg, "max_episode_steps", 1, 100000000L, &sp->max_episode_steps));
  sp->act_dim = 1;
  sp->obs_low = t->obs_low;
  sp->obs_high = t->obs_high;
  sp->act_low = t->act_low;
  sp->act_high = t->act_high;
  sp->state_dim = 2;
  sp->tangent_dim = 2;
  sp->mujoco = false;
  out->ops = &classic_ops;
  out->task = t;
  return TDM_OK;
fail:
  free(t);
  return st;
}
