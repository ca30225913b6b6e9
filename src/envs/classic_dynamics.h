// Equations of the classic-control tasks as pure functions (state, action) -> (next state, reward,
// terminated), shared by the envs (src/envs/classic.c) and by batched known-dynamics models on the
// CPU and in CUDA kernels. Each follows Gymnasium's source line by line: constants, clipping order,
// and where Gymnasium rounds the state to float32.
#ifndef TANDEM_CLASSIC_DYNAMICS_H
#define TANDEM_CLASSIC_DYNAMICS_H

#include <math.h>

#ifdef __CUDACC__
#define TDM_HD __host__ __device__
#else
#define TDM_HD
#endif

// ---- Pendulum-v1 -----------------------------------------------------------------------------
// state (theta, theta_dot) in float64 as Gymnasium keeps it; obs (cos theta, sin theta, theta_dot)
// in float32; the torque is a float32 (the action), mixed into float64 arithmetic as NumPy 1.x does
#define TDM_PENDULUM_MAX_SPEED 8.0
#define TDM_PENDULUM_MAX_TORQUE 2.0
#define TDM_PENDULUM_DT 0.05
#define TDM_PENDULUM_G 10.0
#define TDM_PENDULUM_M 1.0
#define TDM_PENDULUM_L 1.0

// Angle wrapped to [-pi, pi) as Python's ((x + pi) % (2 pi)) - pi (floored modulo).
static inline TDM_HD double tdm_angle_normalize(double x) {
  const double two_pi = 2.0 * M_PI;
  double r = fmod(x + M_PI, two_pi);
  if (r != 0.0 && r < 0.0) r += two_pi;
  return r - M_PI;
}

// One Pendulum-v1 step with torque u (any value; clipped to +-2 first). g is gravity (10 default).
// The cost uses the pre-step state and the clipped torque; reward = -cost; never terminates.
static inline TDM_HD void tdm_pendulum_step(const double s[2], float u, double g, double next[2],
                                            double *reward) {
  const double th = s[0], thdot = s[1];
  float uc = u;  // np.clip on the float32 action
  if (uc < (float)-TDM_PENDULUM_MAX_TORQUE) uc = (float)-TDM_PENDULUM_MAX_TORQUE;
  if (uc > (float)TDM_PENDULUM_MAX_TORQUE) uc = (float)TDM_PENDULUM_MAX_TORQUE;
  const double ud = (double)uc;
  const float u2 = uc * uc;  // u**2 stays float32 in NumPy
  const double an = tdm_angle_normalize(th);
  const double cost = an * an + 0.1 * thdot * thdot + 0.001 * (double)u2;
  const double m = TDM_PENDULUM_M, l = TDM_PENDULUM_L, dt = TDM_PENDULUM_DT;
  double nthdot = thdot + (3.0 * g / (2.0 * l) * sin(th) + 3.0 / (m * l * l) * ud) * dt;
  if (nthdot < -TDM_PENDULUM_MAX_SPEED) nthdot = -TDM_PENDULUM_MAX_SPEED;
  if (nthdot > TDM_PENDULUM_MAX_SPEED) nthdot = TDM_PENDULUM_MAX_SPEED;
  next[0] = th + nthdot * dt;
  next[1] = nthdot;
  *reward = -cost;
}

// Observation of a Pendulum state (float32 as Gymnasium's _get_obs).
static inline TDM_HD void tdm_pendulum_obs(const double s[2], float obs[3]) {
  obs[0] = (float)cos(s[0]);
  obs[1] = (float)sin(s[0]);
  obs[2] = (float)s[1];
}

// ---- MountainCarContinuous-v0 ----------------------------------------------------------------
// state (position, velocity); Gymnasium stores it as float32 after every step (the reset state is
// float64 until the first step). Arithmetic is done in float64 and rounded on store, as NumPy 1.x
// promotes float32 scalars mixed with Python floats (NumPy 2 keeps a few of those products in
// float32, which can move the last float32 bit of the stored state).
#define TDM_MC_MIN_ACTION -1.0
#define TDM_MC_MAX_ACTION 1.0
#define TDM_MC_MIN_POSITION -1.2
#define TDM_MC_MAX_POSITION 0.6
#define TDM_MC_MAX_SPEED 0.07
#define TDM_MC_GOAL_POSITION 0.45
#define TDM_MC_POWER 0.0015

// One MountainCarContinuous-v0 step with force action u (unclipped; the dynamics clip it, the
// action cost 0.1 u^2 uses it as given). Returns terminated (goal reached, reward +100).
static inline TDM_HD int tdm_mountain_car_step(const double s[2], float u, double goal_velocity,
                                               double next[2], double *reward) {
  double position = s[0], velocity = s[1];
  double force = (double)u;
  if (force < TDM_MC_MIN_ACTION) force = TDM_MC_MIN_ACTION;  // min(max(a, min), max)
  if (force > TDM_MC_MAX_ACTION) force = TDM_MC_MAX_ACTION;
  velocity += force * TDM_MC_POWER - 0.0025 * cos(3.0 * position);
  if (velocity > TDM_MC_MAX_SPEED) velocity = TDM_MC_MAX_SPEED;
  if (velocity < -TDM_MC_MAX_SPEED) velocity = -TDM_MC_MAX_SPEED;
  position += velocity;
  if (position > TDM_MC_MAX_POSITION) position = TDM_MC_MAX_POSITION;
  if (position < TDM_MC_MIN_POSITION) position = TDM_MC_MIN_POSITION;
  if (position == TDM_MC_MIN_POSITION && velocity < 0.0) velocity = 0.0;
  const int terminated = position >= TDM_MC_GOAL_POSITION && velocity >= goal_velocity;
  double r = terminated ? 100.0 : 0.0;
  r -= ((double)u * (double)u) * 0.1;
  next[0] = (double)(float)position;  // np.array([...], dtype=np.float32)
  next[1] = (double)(float)velocity;
  *reward = r;
  return terminated;
}

// Observation of a MountainCar state.
static inline TDM_HD void tdm_mountain_car_obs(const double s[2], float obs[2]) {
  obs[0] = (float)s[0];
  obs[1] = (float)s[1];
}

#endif
