// MuJoCo tasks: any MJCF with one shared mjModel and one mjData per instance, the built-in tasks
// (assets/*.xml) and tasks defined wholly in a config file. Coded against the API common to
// MuJoCo 2.2 and 3.x.
#ifdef TDM_MUJOCO

#include <math.h>
#include <mujoco/mujoco.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env_internal.h"

enum {
  MJ_HALF_CHEETAH,
  MJ_HOPPER,
  MJ_WALKER,
  MJ_INVPEND,
  MJ_CP_BALANCE,
  MJ_CP_SWINGUP,
  MJ_REACHER,
  MJ_CUSTOM,
};

typedef enum { T_FORWARD, T_CONTROL, T_HEIGHT, T_UPRIGHT, T_ALIVE, T_RESIDUAL } term_kind;

typedef struct {
  term_kind kind;
  double weight;
  int body;          // forward, height, upright
  int adr, dim;      // residual: sensordata (sensor) or qpos (joint) range
  bool from_sensor;  // residual source
  double target;     // height: target height; residual: target value of every component
  bool quadratic;    // residual norm: squared (true) or Euclidean (false)
} reward_term;

#define MAX_TERMS 16

typedef struct {
  int kind;
  char name[64];
  char path[1024];
  mjModel *m;
  int frame_skip;
  double dt;
  double reset_noise;
  // observation parts (generic layout)
  int exclude_root;
  bool obs_qpos, obs_qvel, obs_sensors;
  double qvel_clip;  // 0 = none
  int obs_dim;
  // Gymnasium locomotion parameters
  double fwd_w, ctrl_w, healthy_reward;
  bool terminate_unhealthy;
  double z_lo, z_hi, ang_lo, ang_hi, state_lo, state_hi;
  // reacher
  double dist_w;
  int fingertip, target;
  // config-defined task
  reward_term terms[MAX_TERMS];
  int nterms;
  bool needs_sensors;  // observation or a reward term reads sensordata
  int term_body;       // -1 = no height / tilt termination
  double term_min_h, term_max_h, term_max_tilt;
  float *obs_low, *obs_high, *act_low, *act_high;
} mj_task;

typedef struct {
  mjData *d;
  double *xb;   // (MAX_TERMS) body x before the step, per forward term
  double *lin;  // (3 nt^2 + 3 nt nu) linearisation scratch
  double *sb;   // (5 nstate + 2 nv) state scratch for finite differences
} mj_inst;

static int nstate(const mjModel *m) {
  return m->nq + m->nv + m->na + 1;
}
static int ntangent(const mjModel *m) {
  return 2 * m->nv + m->na;
}

// ---------------------------------------------------------------------------------------------
// warnings: MuJoCo prints through a global hook; route it to tdm_warn_once

static void mj_warning_hook(const char *msg) {
  tdm_warn_once("mujoco.warning", "MuJoCo: %s (further MuJoCo warnings are counted silently)", msg);
}

static long warn_sum(const mjData *d) {
  long s = 0;
  for (int k = 0; k < mjNWARNING; k++) s += d->warning[k].number;
  return s;
}

static bool state_finite(const mjModel *m, const mjData *d) {
  for (int k = 0; k < m->nq; k++)
    if (!isfinite(d->qpos[k])) return false;
  for (int k = 0; k < m->nv; k++)
    if (!isfinite(d->qvel[k])) return false;
  for (int k = 0; k < m->na; k++)
    if (!isfinite(d->act[k])) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// reset

// mj_resetData without its memset of the whole mjData buffer. MuJoCo 2.x sizes that buffer for
// the model's njmax / nconmax (3.2 MB for half_cheetah, with efc_AR njmax^2 alone 2 MB), so the
// memset costs ~170 us per reset, several env steps, streams through the core's cache and takes
// memory bandwidth from the other threads. Everything mj_forward does not recompute is set here
// exactly as mj_resetData sets it (MuJoCo 2.2's own list of "arrays not affected by mj_forward"),
// so the next mj_forward / mj_step sees the same inputs; env_test checks trajectories after this
// reset of a used mjData against a fresh one, bit for bit. Only for MuJoCo 2.2 (the version this
// list was checked against); other versions call mj_resetData (3.x clears a small buffer only:
// contacts and constraints live in an arena it does not clear).
static void reset_data(const mjModel *m, mjData *d) {
#if defined(mjVERSION_HEADER) && mjVERSION_HEADER >= 220 && mjVERSION_HEADER < 230
  d->pstack = 0;
  d->maxuse_stack = 0;
  d->maxuse_con = 0;
  d->maxuse_efc = 0;
  memset(d->warning, 0, sizeof d->warning);
  memset(d->timer, 0, sizeof d->timer);
  memset(d->solver, 0, sizeof d->solver);
  d->solver_iter = 0;
  d->solver_nnz = 0;
  mju_zero(d->solver_fwdinv, 2);
  d->ne = 0;
  d->nf = 0;
  d->nefc = 0;
  d->ncon = 0;
  d->time = 0;
  mju_zero(d->energy, 2);
  mju_zero(d->qvel, m->nv);
  mju_zero(d->act, m->na);
  mju_zero(d->ctrl, m->nu);
  mju_zero(d->qfrc_applied, m->nv);
  mju_zero(d->xfrc_applied, 6 * m->nbody);
  mju_zero(d->qacc, m->nv);
  mju_zero(d->qacc_warmstart, m->nv);
  mju_zero(d->act_dot, m->na);
  mju_zero(d->userdata, m->nuserdata);
  mju_zero(d->sensordata, m->nsensordata);
  mju_copy(d->qpos, m->qpos0, m->nq);
  mju_zero(d->mocap_pos, 3 * m->nmocap);
  mju_zero(d->mocap_quat, 4 * m->nmocap);
  for (int i = 0; i < m->nbody; i++) {
    int id = m->body_mocapid[i];
    if (id >= 0) {
      mju_copy3(d->mocap_pos + 3 * id, m->body_pos + 3 * i);
      mju_copy4(d->mocap_quat + 4 * id, m->body_quat + 4 * i);
    }
  }
#else
  mj_resetData(m, d);
#endif
}

// ---------------------------------------------------------------------------------------------
// random draws

static double unif(tdm_rng *r, double lo, double hi) {
  return lo + (hi - lo) * tdm_rng_uniform_d(r);
}

// ---------------------------------------------------------------------------------------------
// observation

static double clipd(double x, double lo, double hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// DeepMind Control's tolerance() with bounds (0, 0): 1 at x = 0, falling with |x| / margin.
static double dmc_tolerance(double x, double margin, bool quadratic, double value_at_margin) {
  if (x == 0.0) return 1.0;
  double d = fabs(x) / margin;
  if (quadratic) {
    double scale = sqrt(1.0 - value_at_margin);
    double s = d * scale;
    return fabs(s) < 1.0 ? 1.0 - s * s : 0.0;
  }
  double scale = sqrt(-2.0 * log(value_at_margin));
  return exp(-0.5 * (d * scale) * (d * scale));
}

// DeepMind Control cartpole's smooth reward of the current state and control u.
static double cartpole_reward(const mjData *d, const float *u) {
  double upright = (cos(d->qpos[1]) + 1.0) / 2.0;
  double centered = (1.0 + dmc_tolerance(d->qpos[0], 2.0, false, 0.1)) / 2.0;
  double small_control = (4.0 + dmc_tolerance((double)u[0], 1.0, true, 0.0)) / 5.0;
  double small_velocity = (1.0 + dmc_tolerance(d->qvel[1], 5.0, false, 0.1)) / 2.0;
  return upright * centered * small_control * small_velocity;
}

static void mj_observe(const void *task, void *inst, float *obs) {
  const mj_task *t = task;
  const mjModel *m = t->m;
  const mjData *d = ((mj_inst *)inst)->d;
  int k = 0;
  switch (t->kind) {
    case MJ_CP_BALANCE:
    case MJ_CP_SWINGUP:
      // DMC: cart position, cos and sin of the pole angle, then velocities
      obs[0] = (float)d->qpos[0];
      obs[1] = (float)cos(d->qpos[1]);
      obs[2] = (float)sin(d->qpos[1]);
      obs[3] = (float)d->qvel[0];
      obs[4] = (float)d->qvel[1];
      return;
    case MJ_REACHER: {
      // Reacher-v5: cos, sin of the arm angles, target position, arm velocities, fingertip - target
      for (int j = 0; j < 2; j++) obs[k++] = (float)cos(d->qpos[j]);
      for (int j = 0; j < 2; j++) obs[k++] = (float)sin(d->qpos[j]);
      obs[k++] = (float)d->qpos[2];
      obs[k++] = (float)d->qpos[3];
      obs[k++] = (float)d->qvel[0];
      obs[k++] = (float)d->qvel[1];
      for (int j = 0; j < 2; j++)
        obs[k++] = (float)(d->xpos[3 * t->fingertip + j] - d->xpos[3 * t->target + j]);
      return;
    }
    default:
      break;
  }
  if (t->obs_qpos)
    for (int j = t->exclude_root; j < m->nq; j++) obs[k++] = (float)d->qpos[j];
  if (t->obs_qvel)
    for (int j = 0; j < m->nv; j++)
      obs[k++] =
          (float)(t->qvel_clip > 0 ? clipd(d->qvel[j], -t->qvel_clip, t->qvel_clip) : d->qvel[j]);
  if (t->obs_sensors)
    for (int j = 0; j < m->nsensordata; j++) obs[k++] = (float)d->sensordata[j];
}

// ---------------------------------------------------------------------------------------------
// instances

static tdm_status mj_inst_create(const void *task, void **out) {
  const mj_task *t = task;
  mj_inst *in = calloc(1, sizeof *in);
  if (!in) return TDM_FAIL(TDM_ERR_OOM, "MuJoCo instance: out of memory");
  int nt = ntangent(t->m), nu = t->m->nu;
  in->xb = calloc(MAX_TERMS, sizeof(double));
  in->lin = calloc((size_t)(3 * nt * nt + 3 * nt * nu + 1), sizeof(double));
  in->sb = calloc((size_t)(5 * nstate(t->m) + 2 * t->m->nv), sizeof(double));
  in->d = mj_makeData(t->m);
  if (!in->xb || !in->lin || !in->sb || !in->d) {
    if (in->d) mj_deleteData(in->d);
    free(in->xb);
    free(in->lin);
    free(in->sb);
    free(in);
    return TDM_FAIL(TDM_ERR_OOM, "MuJoCo instance of %s: out of memory (mj_makeData)", t->path);
  }
  mj_forward(t->m, in->d);
  *out = in;
  return TDM_OK;
}

static void mj_inst_destroy(void *inst) {
  mj_inst *in = inst;
  mj_deleteData(in->d);
  free(in->xb);
  free(in->lin);
  free(in->sb);
  free(in);
}

static void mj_reset(const void *task, void *inst, tdm_rng *r, float *obs) {
  const mj_task *t = task;
  const mjModel *m = t->m;
  mjData *d = ((mj_inst *)inst)->d;
  reset_data(m, d);  // qpos = qpos0 (Gymnasium's init_qpos), qvel = 0
  const double s = t->reset_noise;
  switch (t->kind) {
    case MJ_HALF_CHEETAH:
      // HalfCheetah-v5: qpos + U(-s, s), qvel + s N(0, 1)
      for (int j = 0; j < m->nq; j++) d->qpos[j] += unif(r, -s, s);
      for (int j = 0; j < m->nv; j++) d->qvel[j] += s * (double)tdm_rng_normal(r);
      break;
    case MJ_CP_SWINGUP:
      // DMC swingup: slider 0.01 N, hinge pi + 0.01 N, velocities 0.01 N
      d->qpos[0] = 0.01 * tdm_rng_normal(r);
      d->qpos[1] = M_PI + 0.01 * tdm_rng_normal(r);
      for (int j = 0; j < m->nv; j++) d->qvel[j] = 0.01 * tdm_rng_normal(r);
      break;
    case MJ_CP_BALANCE:
      // DMC balance: slider U(-0.1, 0.1), hinge U(-0.034, 0.034), velocities 0.01 N
      d->qpos[0] = unif(r, -0.1, 0.1);
      d->qpos[1] = unif(r, -0.034, 0.034);
      for (int j = 0; j < m->nv; j++) d->qvel[j] = 0.01 * tdm_rng_normal(r);
      break;
    case MJ_REACHER: {
      // Reacher-v5: arm qpos + U(-0.1, 0.1), goal U(-0.2, 0.2)^2 inside radius 0.2,
      // arm qvel + U(-0.005, 0.005), target velocity 0
      for (int j = 0; j < m->nq; j++) d->qpos[j] += unif(r, -0.1, 0.1);
      double gx, gy;
      do {
        gx = unif(r, -0.2, 0.2);
        gy = unif(r, -0.2, 0.2);
      } while (sqrt(gx * gx + gy * gy) >= 0.2);
      d->qpos[m->nq - 2] = gx;
      d->qpos[m->nq - 1] = gy;
      for (int j = 0; j < m->nv; j++) d->qvel[j] += unif(r, -0.005, 0.005);
      d->qvel[m->nv - 2] = d->qvel[m->nv - 1] = 0.0;
      break;
    }
    default:
      // Gymnasium locomotion / inverted pendulum / config tasks: qpos, qvel + U(-s, s)
      for (int j = 0; j < m->nq; j++) d->qpos[j] += unif(r, -s, s);
      for (int j = 0; j < m->nv; j++) d->qvel[j] += unif(r, -s, s);
      break;
  }
  mj_forward(m, d);
  mj_observe(task, inst, obs);
}

static double ctrl_sq(const mjModel *m, const float *u) {
  double c = 0.0;
  for (int j = 0; j < m->nu; j++) c += (double)u[j] * (double)u[j];
  return c;
}

// Hopper-v5 / Walker2d-v5 healthy state
static bool healthy(const mj_task *t, const mjData *d) {
  const mjModel *m = t->m;
  double z = d->qpos[1], ang = d->qpos[2];
  bool ok = z > t->z_lo && z < t->z_hi && ang > t->ang_lo && ang < t->ang_hi;
  if (t->kind == MJ_HOPPER) {
    for (int j = 2; j < m->nq; j++) ok = ok && d->qpos[j] > t->state_lo && d->qpos[j] < t->state_hi;
    for (int j = 0; j < m->nv; j++) ok = ok && d->qvel[j] > t->state_lo && d->qvel[j] < t->state_hi;
  }
  return ok;
}

// config-defined termination: body height range and tilt of its z axis from vertical
static bool custom_alive(const mj_task *t, const mjData *d) {
  if (t->term_body < 0) return true;
  double z = d->xpos[3 * t->term_body + 2];
  double cz = d->xmat[9 * t->term_body + 8];
  double tilt = acos(clipd(cz, -1.0, 1.0));
  return z > t->term_min_h && z < t->term_max_h && tilt < t->term_max_tilt;
}

static double body_vx(const mjModel *m, const mjData *d, int body) {
  mjtNum v[6];
  mj_objectVelocity(m, d, mjOBJ_BODY, body, v, 0);
  return v[3];
}

// Sum of config reward terms; xb holds body x before the step (NULL: instantaneous velocities).
static double custom_reward(const mj_task *t, const mjData *d, const float *u, const double *xb,
                            bool alive) {
  const mjModel *m = t->m;
  double r = 0.0;
  for (int i = 0; i < t->nterms; i++) {
    const reward_term *q = &t->terms[i];
    switch (q->kind) {
      case T_FORWARD:
        r += q->weight * (xb ? (d->xpos[3 * q->body] - xb[i]) / t->dt : body_vx(m, d, q->body));
        break;
      case T_CONTROL:
        r -= q->weight * ctrl_sq(m, u);
        break;
      case T_HEIGHT: {
        double z = d->xpos[3 * q->body + 2];
        r += q->weight * (q->target > 0 ? clipd(z / q->target, 0.0, 1.0) : z);
        break;
      }
      case T_UPRIGHT:
        r += q->weight * d->xmat[9 * q->body + 8];
        break;
      case T_ALIVE:
        r += alive ? q->weight : 0.0;
        break;
      case T_RESIDUAL: {
        const double *v = q->from_sensor ? d->sensordata : d->qpos;
        double s = 0.0;
        for (int j = 0; j < q->dim; j++) {
          double e = v[q->adr + j] - q->target;
          s += e * e;
        }
        r -= q->weight * (q->quadratic ? s : sqrt(s));
        break;
      }
    }
  }
  return r;
}

static int mj_step_inst(const void *task, void *inst, const float *u, float *obs, float *reward,
                        uint8_t *terminated) {
  const mj_task *t = task;
  const mjModel *m = t->m;
  mj_inst *in = inst;
  mjData *d = in->d;
  const double x_before = d->qpos[0];
  if (t->kind == MJ_CUSTOM)
    for (int i = 0; i < t->nterms; i++)
      if (t->terms[i].kind == T_FORWARD) in->xb[i] = d->xpos[3 * t->terms[i].body];
  for (int j = 0; j < m->nu; j++) d->ctrl[j] = (mjtNum)u[j];  // MuJoCo clamps to ctrlrange
  const long w0 = warn_sum(d);
  for (int k = 0; k < t->frame_skip; k++) mj_step(m, d);
  if (warn_sum(d) != w0 || !state_finite(m, d)) {
    *reward = 0.0f;
    *terminated = 0;
    return 1;
  }
  double r = 0.0;
  bool term = false;
  switch (t->kind) {
    case MJ_HALF_CHEETAH:
      r = t->fwd_w * (d->qpos[0] - x_before) / t->dt - t->ctrl_w * ctrl_sq(m, u);
      break;
    case MJ_HOPPER:
    case MJ_WALKER: {
      bool h = healthy(t, d);
      r = t->fwd_w * (d->qpos[0] - x_before) / t->dt + (h ? t->healthy_reward : 0.0) -
          t->ctrl_w * ctrl_sq(m, u);
      term = !h && t->terminate_unhealthy;
      break;
    }
    case MJ_INVPEND:
      term = fabs(d->qpos[1]) > 0.2;
      r = term ? 0.0 : 1.0;
      break;
    case MJ_CP_BALANCE:
    case MJ_CP_SWINGUP:
      r = cartpole_reward(d, u);
      break;
    case MJ_REACHER: {
      double dx = d->xpos[3 * t->fingertip] - d->xpos[3 * t->target];
      double dy = d->xpos[3 * t->fingertip + 1] - d->xpos[3 * t->target + 1];
      double dz = d->xpos[3 * t->fingertip + 2] - d->xpos[3 * t->target + 2];
      r = -t->dist_w * sqrt(dx * dx + dy * dy + dz * dz) - t->ctrl_w * ctrl_sq(m, u);
      break;
    }
    case MJ_CUSTOM: {
      // body positions and sensors of the final state (mj_step leaves them one sub-step behind)
      if (t->needs_sensors)
        mj_forward(m, d);
      else
        mj_kinematics(m, d);
      bool alive = custom_alive(t, d);
      r = custom_reward(t, d, u, in->xb, alive);
      term = !alive;
      break;
    }
  }
  mj_observe(task, inst, obs);
  for (int j = 0; j < t->obs_dim; j++)
    if (!isfinite(obs[j])) return 1;
  *reward = (float)r;
  *terminated = term;
  return 0;
}

static void mj_get_state(const void *task, const void *inst, double *s) {
  const mjModel *m = ((const mj_task *)task)->m;
  const mjData *d = ((const mj_inst *)inst)->d;
  memcpy(s, d->qpos, sizeof(double) * (size_t)m->nq);
  memcpy(s + m->nq, d->qvel, sizeof(double) * (size_t)m->nv);
  memcpy(s + m->nq + m->nv, d->act, sizeof(double) * (size_t)m->na);
  s[m->nq + m->nv + m->na] = d->time;
}

static void mj_set_state(const void *task, void *inst, const double *s) {
  const mjModel *m = ((const mj_task *)task)->m;
  mjData *d = ((mj_inst *)inst)->d;
  // clear everything that is not state (solver warm start, contacts, controls) so that a step
  // from a state is a function of the state alone
  reset_data(m, d);
  memcpy(d->qpos, s, sizeof(double) * (size_t)m->nq);
  memcpy(d->qvel, s + m->nq, sizeof(double) * (size_t)m->nv);
  memcpy(d->act, s + m->nq + m->nv, sizeof(double) * (size_t)m->na);
  d->time = s[m->nq + m->nv + m->na];
  mj_forward(m, d);
}

static double mj_cost(const void *task, void *inst, const float *u) {
  const mj_task *t = task;
  const mjModel *m = t->m;
  const mjData *d = ((mj_inst *)inst)->d;
  switch (t->kind) {
    case MJ_HALF_CHEETAH:
      return -t->fwd_w * d->qvel[0] + t->ctrl_w * ctrl_sq(m, u);
    case MJ_HOPPER:
    case MJ_WALKER:
      return -t->fwd_w * d->qvel[0] - (healthy(t, d) ? t->healthy_reward : 0.0) +
             t->ctrl_w * ctrl_sq(m, u);
    case MJ_INVPEND:
      return (fabs(d->qpos[1]) > 0.2 ? 1.0 : 0.0) + d->qpos[1] * d->qpos[1];
    case MJ_CP_BALANCE:
    case MJ_CP_SWINGUP:
      return 1.0 - cartpole_reward(d, u);
    case MJ_REACHER: {
      double s = 0.0;
      for (int j = 0; j < 3; j++) {
        double e = d->xpos[3 * t->fingertip + j] - d->xpos[3 * t->target + j];
        s += e * e;
      }
      return t->dist_w * sqrt(s) + t->ctrl_w * ctrl_sq(m, u);
    }
    default:
      return -custom_reward(t, d, u, NULL, custom_alive(t, d));
  }
}

// C = A B (n x k times k x p)
static void matmul(const double *A, const double *B, double *C, int n, int k, int p) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < p; j++) {
      double s = 0.0;
      for (int l = 0; l < k; l++) s += A[i * k + l] * B[l * p + j];
      C[i * p + j] = s;
    }
}

// one env step (frame skip) from state s with controls ctrl (double, nu) into out
static void step_from(const mj_task *t, mj_inst *in, const double *s, const double *ctrl,
                      double *out) {
  const mjModel *m = t->m;
  mj_set_state(t, in, s);
  memcpy(in->d->ctrl, ctrl, sizeof(double) * (size_t)m->nu);
  for (int k = 0; k < t->frame_skip; k++) mj_step(m, in->d);
  mj_get_state(t, in, out);
}

// tangent-space difference (b - a) / h of two states into col (2 nv + na)
static void tangent_diff(const mjModel *m, const double *a, const double *b, double h,
                         double *col) {
  mj_differentiatePos(m, col, h, a, b);
  for (int j = 0; j < m->nv + m->na; j++) col[m->nv + j] = (b[m->nq + j] - a[m->nq + j]) / h;
}

// Finite differences of the whole env step over the tangent space (used for RK4 models, where
// MuJoCo 2.2's mjd_transitionFD skips pipeline stages that RK4's inner stages need).
static void fd_linearize(const mj_task *t, mj_inst *in, const float *u, double eps, bool centered,
                         double *A, double *B) {
  const mjModel *m = t->m;
  const int S = nstate(m), nt = ntangent(m), nu = m->nu, nv = m->nv;
  double *s0 = in->sb, *sp = s0 + S, *sm = sp + S, *f0 = sm + S, *y = f0 + S, *dq = y + S;
  double *ctrl = in->lin, *col = ctrl + nu;  // lin holds at least nt + nu doubles
  mj_get_state(t, in, s0);
  for (int j = 0; j < nu; j++) ctrl[j] = (double)u[j];
  if (!centered) step_from(t, in, s0, ctrl, f0);
  for (int j = 0; j < nt; j++) {
    for (int sign = 1; sign >= (centered ? -1 : 1); sign -= 2) {
      memcpy(y, s0, sizeof(double) * (size_t)S);
      if (j < nv) {
        memset(dq, 0, sizeof(double) * (size_t)nv);
        dq[j] = 1.0;
        mj_integratePos(m, y, dq, sign * eps);
      } else {
        y[m->nq + (j - nv)] += sign * eps;
      }
      step_from(t, in, y, ctrl, sign > 0 ? sp : sm);
    }
    tangent_diff(m, centered ? sm : f0, sp, centered ? 2 * eps : eps, col);
    for (int i = 0; i < nt; i++) A[i * nt + j] = col[i];
  }
  for (int j = 0; j < nu; j++) {
    const double c0 = ctrl[j];
    ctrl[j] = c0 + eps;
    step_from(t, in, s0, ctrl, sp);
    if (centered) {
      ctrl[j] = c0 - eps;
      step_from(t, in, s0, ctrl, sm);
    }
    ctrl[j] = c0;
    tangent_diff(m, centered ? sm : f0, sp, centered ? 2 * eps : eps, col);
    for (int i = 0; i < nt; i++) B[i * nu + j] = col[i];
  }
  mj_set_state(t, in, s0);
}

static tdm_status mj_linearize(const void *task, void *inst, const float *u, double eps,
                               bool centered, double *A, double *B) {
  const mj_task *t = task;
  const mjModel *m = t->m;
  mj_inst *in = inst;
  mjData *d = in->d;
  const int nt = ntangent(m), nu = m->nu;
  double *Ak = in->lin, *Bk = Ak + nt * nt, *T1 = Bk + nt * nu, *T2 = T1 + nt * nt;
  if (m->opt.integrator == mjINT_RK4) {
    fd_linearize(t, in, u, eps, centered, A, B);
    if (!state_finite(m, d))
      return TDM_FAIL(TDM_ERR_NUMERIC, "MuJoCo %s: linearisation state went unstable", t->name);
    return TDM_OK;
  }
  for (int j = 0; j < nu; j++) d->ctrl[j] = (mjtNum)u[j];
  // chain the per-step Jacobians over the frame skip: A = A_K..A_1, B = sum A_K..A_{k+1} B_k
  memset(A, 0, sizeof(double) * (size_t)nt * nt);
  for (int i = 0; i < nt; i++) A[i * nt + i] = 1.0;
  memset(B, 0, sizeof(double) * (size_t)nt * nu);
  for (int k = 0; k < t->frame_skip; k++) {
    mjd_transitionFD(m, d, eps, (mjtByte)centered, Ak, Bk, NULL, NULL);
    matmul(Ak, A, T1, nt, nt, nt);
    memcpy(A, T1, sizeof(double) * (size_t)nt * nt);
    matmul(Ak, B, T2, nt, nt, nu);
    for (int i = 0; i < nt * nu; i++) B[i] = T2[i] + Bk[i];
    if (k + 1 < t->frame_skip) mj_step(m, d);
  }
  if (!state_finite(m, d))
    return TDM_FAIL(TDM_ERR_NUMERIC, "MuJoCo %s: linearisation state went unstable", t->name);
  return TDM_OK;
}

static void mj_task_destroy(void *task) {
  mj_task *t = task;
  if (!t) return;
  if (t->m) mj_deleteModel(t->m);
  free(t->obs_low);
  free(t->obs_high);
  free(t->act_low);
  free(t->act_high);
  free(t);
}

static const tdm_task_ops mj_ops = {
    .task_destroy = mj_task_destroy,
    .inst_create = mj_inst_create,
    .inst_destroy = mj_inst_destroy,
    .reset = mj_reset,
    .step = mj_step_inst,
    .get_state = mj_get_state,
    .set_state = mj_set_state,
    .observe = mj_observe,
    .cost = mj_cost,
    .linearize = mj_linearize,
};

// ---------------------------------------------------------------------------------------------
// creation

// Find a built-in asset: $TANDEM_ASSETS, ./assets, then next to the executable (.., ../..).
static bool find_asset(const char *file, char *out, size_t n) {
  const char *env = getenv("TANDEM_ASSETS");
  if (env) {
    snprintf(out, n, "%s/%s", env, file);
    if (access(out, R_OK) == 0) return true;
  }
  snprintf(out, n, "assets/%s", file);
  if (access(out, R_OK) == 0) return true;
  char exe[900];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    const char *ups[] = {"..", "../..", "../../.."};
    for (int i = 0; i < 3; i++) {
      snprintf(out, n, "%s/%s/assets/%s", exe, ups[i], file);
      if (access(out, R_OK) == 0) return true;
    }
  }
  snprintf(out, n, "assets/%s", file);
  return false;
}

static tdm_status load_model(mj_task *t, const char *path) {
  snprintf(t->path, sizeof t->path, "%s", path);
  char err[1000] = "";
  t->m = mj_loadXML(path, NULL, err, sizeof err);
  if (!t->m) {
    if (access(path, R_OK) != 0)
      return TDM_FAIL(TDM_ERR_IO,
                      "cannot read MJCF file %s (MuJoCo: %s); check the path (built-in assets "
                      "are found via $TANDEM_ASSETS, ./assets or next to the executable)",
                      path, err[0] ? err : "no message");
    return TDM_FAIL(TDM_ERR_MUJOCO, "MuJoCo refused MJCF file %s: %s", path,
                    err[0] ? err : "no message");
  }
  if (err[0]) tdm_warn_once("mujoco.load", "MuJoCo warning while loading %s: %s", path, err);
  return TDM_OK;
}

static tdm_status name_id(const mj_task *t, const config_setting_t *s, int type, const char *nm,
                          const char *what, int *id) {
  char w[300];
  *id = nm ? mj_name2id(t->m, type, nm) : -1;
  if (*id < 0)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s \"%s\" not found in MJCF %s",
                    tdm_envcfg_where(s, w, sizeof w), what, nm ? nm : "(missing)", t->path);
  return TDM_OK;
}

static tdm_status parse_terms(mj_task *t, const config_setting_t *list) {
  char w[300];
  if (!config_setting_is_list(list) && !config_setting_is_array(list))
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: key reward must be a list of groups ( {term = ...;}, ...)",
                    tdm_envcfg_where(list, w, sizeof w));
  int n = config_setting_length(list);
  if (n > MAX_TERMS)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: at most %d reward terms",
                    tdm_envcfg_where(list, w, sizeof w), MAX_TERMS);
  static const char *const keys[] = {"term",   "weight", "body", "target",
                                     "sensor", "joint",  "norm", NULL};
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
    if (!config_setting_is_group(s))
      return TDM_FAIL(TDM_ERR_CONFIG, "%s: reward term %d must be a group { term = ...; }",
                      tdm_envcfg_where(s, w, sizeof w), i);
    TDM_TRY(tdm_envcfg_check_keys(s, "reward term", keys));
    reward_term *q = &t->terms[i];
    memset(q, 0, sizeof *q);
    const char *kind = NULL, *body = NULL, *sensor = NULL, *joint = NULL, *norm = "l2";
    q->weight = 1.0;
    TDM_TRY(tdm_envcfg_str(s, "term", &kind));
    TDM_TRY(tdm_envcfg_num(s, "weight", -1e9, 1e9, &q->weight));
    TDM_TRY(tdm_envcfg_str(s, "body", &body));
    TDM_TRY(tdm_envcfg_num(s, "target", -1e9, 1e9, &q->target));
    TDM_TRY(tdm_envcfg_str(s, "sensor", &sensor));
    TDM_TRY(tdm_envcfg_str(s, "joint", &joint));
    TDM_TRY(tdm_envcfg_str(s, "norm", &norm));
    if (!kind)
      return TDM_FAIL(TDM_ERR_CONFIG, "%s: reward term %d has no key term",
                      tdm_envcfg_where(s, w, 300), i);
    if (!strcmp(kind, "forward_velocity") || !strcmp(kind, "height") || !strcmp(kind, "upright")) {
      q->kind = kind[0] == 'f' ? T_FORWARD : (kind[0] == 'h' ? T_HEIGHT : T_UPRIGHT);
      TDM_TRY(name_id(t, s, mjOBJ_BODY, body, "body", &q->body));
    } else if (!strcmp(kind, "control")) {
      q->kind = T_CONTROL;
    } else if (!strcmp(kind, "alive")) {
      q->kind = T_ALIVE;
    } else if (!strcmp(kind, "residual")) {
      q->kind = T_RESIDUAL;
      if (strcmp(norm, "l2") && strcmp(norm, "quadratic"))
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: norm \"%s\": valid norms: l2, quadratic",
                        tdm_envcfg_where(s, w, 300), norm);
      q->quadratic = !strcmp(norm, "quadratic");
      int id;
      if (sensor) {
        TDM_TRY(name_id(t, s, mjOBJ_SENSOR, sensor, "sensor", &id));
        q->from_sensor = true;
        q->adr = t->m->sensor_adr[id];
        q->dim = t->m->sensor_dim[id];
      } else {
        TDM_TRY(name_id(t, s, mjOBJ_JOINT, joint, "joint (or give sensor)", &id));
        q->adr = t->m->jnt_qposadr[id];
        int ty = t->m->jnt_type[id];
        q->dim = ty == mjJNT_FREE ? 7 : (ty == mjJNT_BALL ? 4 : 1);
      }
    } else {
      return TDM_FAIL(TDM_ERR_CONFIG,
                      "%s: unknown reward term \"%s\"; valid terms: forward_velocity, control, "
                      "height, upright, alive, residual",
                      tdm_envcfg_where(s, w, 300), kind);
    }
  }
  t->nterms = n;
  return TDM_OK;
}

static const char *const mj_keys[] = {"task",
                                      "model",
                                      "frame_skip",
                                      "max_episode_steps",
                                      "reset_noise_scale",
                                      "forward_reward_weight",
                                      "ctrl_cost_weight",
                                      "healthy_reward",
                                      "terminate_when_unhealthy",
                                      "exclude_root",
                                      "obs_qpos",
                                      "obs_qvel",
                                      "obs_sensors",
                                      "qvel_clip",
                                      "reward",
                                      "terminate",
                                      "reward_dist_weight",
                                      NULL};

tdm_status tdm_mujoco_create(const char *name, const config_setting_t *cfg, tdm_task_made *out) {
  static int hook_set;
  if (!hook_set) {
    mju_user_warning = mj_warning_hook;
    hook_set = 1;
  }
  memset(out, 0, sizeof *out);
  mj_task *t = calloc(1, sizeof *t);
  if (!t) return TDM_FAIL(TDM_ERR_OOM, "MuJoCo task %s: out of memory", name);
  tdm_status st;
  snprintf(t->name, sizeof t->name, "%s", name);
  TDM_TRYG(tdm_envcfg_check_keys(cfg, name, mj_keys));
  const char *file = NULL;
  int max_steps = 1000;
  t->obs_qpos = t->obs_qvel = true;
  t->frame_skip = 1;
  t->term_body = -1;
  if (!strcmp(name, "half_cheetah")) {
    t->kind = MJ_HALF_CHEETAH, file = "half_cheetah.xml", t->frame_skip = 5;
    t->reset_noise = 0.1, t->fwd_w = 1.0, t->ctrl_w = 0.1, t->exclude_root = 1;
  } else if (!strcmp(name, "hopper") || !strcmp(name, "walker2d")) {
    bool hop = name[0] == 'h';
    t->kind = hop ? MJ_HOPPER : MJ_WALKER, file = hop ? "hopper.xml" : "walker2d.xml";
    t->frame_skip = 4, t->reset_noise = 5e-3, t->fwd_w = 1.0, t->ctrl_w = 1e-3;
    t->healthy_reward = 1.0, t->terminate_unhealthy = true, t->exclude_root = 1;
    t->qvel_clip = 10.0;
    t->state_lo = -100.0, t->state_hi = 100.0;
    t->z_lo = hop ? 0.7 : 0.8, t->z_hi = hop ? INFINITY : 2.0;
    t->ang_lo = hop ? -0.2 : -1.0, t->ang_hi = hop ? 0.2 : 1.0;
  } else if (!strcmp(name, "inverted_pendulum")) {
    t->kind = MJ_INVPEND, file = "inverted_pendulum.xml", t->frame_skip = 2;
    t->reset_noise = 0.01;
  } else if (!strcmp(name, "cartpole_balance") || !strcmp(name, "cartpole_swingup")) {
    t->kind = name[9] == 'b' ? MJ_CP_BALANCE : MJ_CP_SWINGUP, file = "cartpole.xml";
  } else if (!strcmp(name, "reacher")) {
    t->kind = MJ_REACHER, file = "reacher.xml", t->frame_skip = 2, max_steps = 50;
    t->dist_w = 1.0, t->ctrl_w = 1.0;
  } else if (!strcmp(name, "mujoco")) {
    t->kind = MJ_CUSTOM;
  } else {
    st = TDM_FAIL(TDM_ERR_ARG, "unknown MuJoCo task \"%s\"", name);
    goto fail;
  }
  // model path: config key model overrides the built-in asset
  const char *model = NULL;
  TDM_TRYG(tdm_envcfg_str(cfg, "model", &model));
  char path[1024];
  if (model) {
    snprintf(path, sizeof path, "%s", model);
    // a relative path not found from the working directory: try next to the config file
    const config_setting_t *ms = config_setting_get_member(cfg, "model");
    const char *src = ms ? config_setting_source_file(ms) : NULL;
    if (model[0] != '/' && access(path, R_OK) != 0 && src && strrchr(src, '/')) {
      char alt[1024];
      snprintf(alt, sizeof alt, "%.*s/%s", (int)(strrchr(src, '/') - src), src, model);
      if (access(alt, R_OK) == 0) snprintf(path, sizeof path, "%s", alt);
    }
  } else if (file) {
    find_asset(file, path, sizeof path);
  } else {
    st = TDM_FAIL(TDM_ERR_CONFIG,
                  "env task mujoco needs key model = \"path/to/model.xml\" (your MJCF file)");
    goto fail;
  }
  TDM_TRYG(load_model(t, path));
  const mjModel *m = t->m;
  // overrides
  double noise = t->reset_noise;
  TDM_TRYG(tdm_envcfg_int(cfg, "frame_skip", 1, 1000, &t->frame_skip));
  TDM_TRYG(tdm_envcfg_int(cfg, "max_episode_steps", 1, 100000000L, &max_steps));
  TDM_TRYG(tdm_envcfg_num(cfg, "reset_noise_scale", 0.0, 1e3, &noise));
  t->reset_noise = noise;
  TDM_TRYG(tdm_envcfg_num(cfg, "forward_reward_weight", -1e6, 1e6, &t->fwd_w));
  TDM_TRYG(tdm_envcfg_num(cfg, "ctrl_cost_weight", 0.0, 1e6, &t->ctrl_w));
  TDM_TRYG(tdm_envcfg_num(cfg, "healthy_reward", -1e6, 1e6, &t->healthy_reward));
  TDM_TRYG(tdm_envcfg_bool(cfg, "terminate_when_unhealthy", &t->terminate_unhealthy));
  TDM_TRYG(tdm_envcfg_num(cfg, "reward_dist_weight", 0.0, 1e6, &t->dist_w));
  if (t->kind == MJ_CUSTOM) {
    TDM_TRYG(tdm_envcfg_int(cfg, "exclude_root", 0, m->nq, &t->exclude_root));
    TDM_TRYG(tdm_envcfg_bool(cfg, "obs_qpos", &t->obs_qpos));
    TDM_TRYG(tdm_envcfg_bool(cfg, "obs_qvel", &t->obs_qvel));
    TDM_TRYG(tdm_envcfg_bool(cfg, "obs_sensors", &t->obs_sensors));
    TDM_TRYG(tdm_envcfg_num(cfg, "qvel_clip", 0.0, 1e9, &t->qvel_clip));
    const config_setting_t *rw = config_setting_get_member(cfg, "reward");
    if (rw) TDM_TRYG(parse_terms(t, rw));
    const config_setting_t *tm = config_setting_get_member(cfg, "terminate");
    if (tm) {
      char w[300];
      if (!config_setting_is_group(tm)) {
        st = TDM_FAIL(TDM_ERR_CONFIG,
                      "%s: key terminate must be a group: terminate = { body = \"torso\"; "
                      "min_height = 0.7; };",
                      tdm_envcfg_where(tm, w, sizeof w));
        goto fail;
      }
      static const char *const tkeys[] = {"body", "min_height", "max_height", "max_tilt", NULL};
      TDM_TRYG(tdm_envcfg_check_keys(tm, "terminate", tkeys));
      const char *body = NULL;
      TDM_TRYG(tdm_envcfg_str(tm, "body", &body));
      if (!body) {
        st = TDM_FAIL(TDM_ERR_CONFIG,
                      "%s: terminate needs body = \"name\" (the body whose height and tilt are "
                      "checked)",
                      tdm_envcfg_where(tm, w, sizeof w));
        goto fail;
      }
      TDM_TRYG(name_id(t, tm, mjOBJ_BODY, body, "terminate body", &t->term_body));
      t->term_min_h = -INFINITY, t->term_max_h = INFINITY, t->term_max_tilt = INFINITY;
      TDM_TRYG(tdm_envcfg_num(tm, "min_height", -1e9, 1e9, &t->term_min_h));
      TDM_TRYG(tdm_envcfg_num(tm, "max_height", -1e9, 1e9, &t->term_max_h));
      TDM_TRYG(tdm_envcfg_num(tm, "max_tilt", 0.0, 4.0, &t->term_max_tilt));
      if (!(t->term_min_h < t->term_max_h)) {
        st = TDM_FAIL(TDM_ERR_CONFIG,
                      "%s: terminate min_height = %g is not below max_height = %g (every state "
                      "would end the episode)",
                      tdm_envcfg_where(tm, w, sizeof w), t->term_min_h, t->term_max_h);
        goto fail;
      }
    }
  }
  t->needs_sensors = t->obs_sensors;
  for (int i = 0; i < t->nterms; i++)
    if (t->terms[i].kind == T_RESIDUAL && t->terms[i].from_sensor) t->needs_sensors = true;
  if (m->nu < 1) {
    st = TDM_FAIL(TDM_ERR_CONFIG, "MJCF %s has no actuators: an env needs at least one", path);
    goto fail;
  }
  if (t->kind == MJ_REACHER) {
    t->fingertip = mj_name2id(m, mjOBJ_BODY, "fingertip");
    t->target = mj_name2id(m, mjOBJ_BODY, "target");
    if (t->fingertip < 0 || t->target < 0 || m->nq != 4) {
      st = TDM_FAIL(TDM_ERR_MUJOCO, "reacher MJCF %s needs bodies fingertip, target and 4 joints",
                    path);
      goto fail;
    }
  }
  if ((t->kind == MJ_HOPPER || t->kind == MJ_WALKER || t->kind == MJ_HALF_CHEETAH) && m->nq < 3) {
    st = TDM_FAIL(TDM_ERR_MUJOCO, "%s MJCF %s needs root joints rootx, rootz, rooty", name, path);
    goto fail;
  }
  t->dt = m->opt.timestep * t->frame_skip;
  // sizes and bounds
  int O;
  if (t->kind == MJ_CP_BALANCE || t->kind == MJ_CP_SWINGUP)
    O = 5;
  else if (t->kind == MJ_REACHER)
    O = 10;
  else
    O = (t->obs_qpos ? m->nq - t->exclude_root : 0) + (t->obs_qvel ? m->nv : 0) +
        (t->obs_sensors ? m->nsensordata : 0);
  if (O < 1) {
    st = TDM_FAIL(TDM_ERR_CONFIG,
                  "MuJoCo task %s: the observation is empty (enable obs_qpos, "
                  "obs_qvel or obs_sensors)",
                  name);
    goto fail;
  }
  t->obs_dim = O;
  t->obs_low = malloc(sizeof(float) * (size_t)O);
  t->obs_high = malloc(sizeof(float) * (size_t)O);
  t->act_low = malloc(sizeof(float) * (size_t)m->nu);
  t->act_high = malloc(sizeof(float) * (size_t)m->nu);
  if (!t->obs_low || !t->obs_high || !t->act_low || !t->act_high) {
    st = TDM_FAIL(TDM_ERR_OOM, "MuJoCo task %s: out of memory", name);
    goto fail;
  }
  for (int j = 0; j < O; j++) t->obs_low[j] = -INFINITY, t->obs_high[j] = INFINITY;
  for (int j = 0; j < m->nu; j++) {
    bool lim = m->actuator_ctrllimited[j];
    t->act_low[j] = lim ? (float)m->actuator_ctrlrange[2 * j] : -1.0f;
    t->act_high[j] = lim ? (float)m->actuator_ctrlrange[2 * j + 1] : 1.0f;
  }
  tdm_env_spec *sp = &out->spec;
  sp->name = t->name;
  sp->obs_dim = O;
  sp->act_dim = m->nu;
  sp->obs_low = t->obs_low;
  sp->obs_high = t->obs_high;
  sp->act_low = t->act_low;
  sp->act_high = t->act_high;
  sp->max_episode_steps = max_steps;
  sp->dt = t->dt;
  sp->state_dim = nstate(m);
  sp->tangent_dim = ntangent(m);
  sp->mujoco = true;
  out->ops = &mj_ops;
  out->task = t;
  out->mj_model = t->m;
  return TDM_OK;
fail:
  mj_task_destroy(t);
  return st;
}

#endif  // TDM_MUJOCO
