// tandem envs: a vector env of N instances of one task stepped in parallel on a thread pool, a
// registry of tasks by name, and simulator access for planners (state get/set, step from a state,
// cost, linearisation).
//
// Semantics follow Gymnasium: `terminated` means the episode ended in a terminal state (do not
// bootstrap), `truncated` means the time limit (or a simulator failure) cut it (bootstrap). step
// writes the true final observation; the caller resets finished instances with tdm_env_reset and a
// mask. Stepping an instance that finished without resetting it is an error (TDM_ERR_ARG).
//
// Action units: the agent side always acts in [-1, 1]; the env maps a to the task's bounds with
// u = low + (a + 1) / 2 * (high - low) without clipping, then each task clips as its published
// version does (so MountainCar's action cost sees the unclipped action, as in Gymnasium).
//
// Determinism: instance i draws its reset noise from its own Philox stream tdm_rng(seed, i), so the
// same seed gives the same episodes whatever the thread count.
#ifndef TANDEM_ENV_H
#define TANDEM_ENV_H

#include "tandem/core.h"

#ifdef __cplusplus
extern "C" {
#endif

struct config_setting_t;  // libconfig
typedef struct tdm_env tdm_env;

// Static description of a task (owned by the env; valid until tdm_env_destroy).
typedef struct {
  const char *name;       // registry name ("pendulum", "half_cheetah", ...)
  int obs_dim, act_dim;   // O, A
  const float *obs_low;   // (O) observation bounds; -INFINITY / INFINITY where unbounded
  const float *obs_high;  // (O)
  const float *act_low;   // (A) the task's action bounds (agent actions in [-1, 1] map onto them)
  const float *act_high;  // (A)
  int max_episode_steps;  // truncation limit (Pendulum 200, MountainCar 999, HalfCheetah 1000 ...)
  double dt;              // simulated seconds per env step (timestep x frame skip)
  int state_dim;          // length of the full simulator state (tdm_env_get_state)
  int tangent_dim;        // length of the linearisation state (A is tangent_dim x tangent_dim)
  bool mujoco;            // true for MuJoCo tasks
} tdm_env_spec;

// Passed as seed to tdm_env_reset: keep each instance's random stream going (the usual reset of
// finished instances inside a run). Any other value restarts the stream of each instance i being
// reset at (seed, i), so the same seed gives the same episodes whatever the thread count.
#define TDM_ENV_CONTINUE UINT64_MAX

// Names of the registered tasks, NULL-terminated (MuJoCo tasks only in a build with MuJoCo).
const char *const *tdm_env_names(void);

// One-line description of a registered task (NULL for an unknown name).
const char *tdm_env_describe(const char *task);

// Create n instances of task, configured by cfg (a libconfig group, NULL for defaults). When task
// is NULL the name is read from cfg's "task" key. pool may be NULL (steps run on the caller) and
// must outlive the env. Errors: TDM_ERR_ARG for an unknown task (the message lists valid names),
// TDM_ERR_CONFIG for a bad key (file:line), TDM_ERR_MUJOCO / TDM_ERR_IO for a bad MJCF (path and
// MuJoCo's message), TDM_ERR_UNSUPPORTED for a MuJoCo task in a build without MuJoCo.
tdm_status tdm_env_create(const char *task, int n, const struct config_setting_t *cfg,
                          tdm_pool *pool, tdm_env **out);

// Free the env and everything it owns (NULL is fine).
void tdm_env_destroy(tdm_env *env);

// The task's spec.
const tdm_env_spec *tdm_env_get_spec(const tdm_env *env);

// Number of instances N.
int tdm_env_num(const tdm_env *env);

// Reset the instances whose mask byte is nonzero (mask NULL = all) and write their observations
// into obs rows (rows of other instances are left untouched). seed: TDM_ENV_CONTINUE or a new seed.
tdm_status tdm_env_reset(tdm_env *env, uint64_t seed, const uint8_t *mask,
                         float *obs);  // obs: (N, O)

// As tdm_env_reset, with a seed per instance: masked instance i restarts its stream at
// (seeds[i], i), or keeps it going where seeds[i] is TDM_ENV_CONTINUE. One pass over the instances.
tdm_status tdm_env_reset_each(tdm_env *env, const uint64_t *seeds, const uint8_t *mask,
                              float *obs);  // seeds: (N), obs: (N, O)

// Step all N instances with agent actions in [-1, 1]. Writes the next observation (the true final
// one when an episode ends), the reward, and the terminated / truncated flags (0 or 1). An instance
// whose simulation went unstable (MuJoCo warning or non-finite state) is counted
// (tdm_env_unstable_count and tdm_warn_once "env.unstable"), restored to a fresh reset state
// internally, and reported with its last finite observation, reward 0 and truncated = 1.
tdm_status tdm_env_step(tdm_env *env,
                        const float *act,     // (N, A)
                        float *next_obs,      // (N, O)
                        float *reward,        // (N)
                        uint8_t *terminated,  // (N)
                        uint8_t *truncated);  // (N)

// Undiscounted return of each instance's current (or just finished) episode.
const double *tdm_env_episode_return(const tdm_env *env);  // (N)

// Steps taken in each instance's current (or just finished) episode.
const int64_t *tdm_env_episode_length(const tdm_env *env);  // (N)

// Number of unstable steps that forced an instance reset since creation.
long tdm_env_unstable_count(const tdm_env *env);

// The task's shared MuJoCo model (a const mjModel *), or NULL for a task without MuJoCo.
const void *tdm_env_mj_model(const tdm_env *env);

// ---------------------------------------------------------------------------------------------
// simulator access for planners

// Full state of instance i: MuJoCo tasks [qpos (nq), qvel (nv), act (na), time]; classic tasks the
// Gymnasium state (Pendulum: theta, theta_dot; MountainCar: position, velocity).
tdm_status tdm_env_get_state(const tdm_env *env, int i, double *state);  // state: (state_dim)

// Set instance i to a full state (its episode counters are kept); obs gets its observation.
tdm_status tdm_env_set_state(tdm_env *env, int i, const double *state,
                             float *obs);  // obs: (O) or NULL

// A private simulator copy for planners: one per thread (it owns its MuJoCo mjData). Reads the
// env's task and model, so the env must outlive it.
typedef struct tdm_sim tdm_sim;

// Create a simulator copy of env's task.
tdm_status tdm_sim_create(const tdm_env *env, tdm_sim **out);

// Free a simulator copy (NULL is fine).
void tdm_sim_destroy(tdm_sim *sim);

// One env step (frame skip included) from state with agent action act in [-1, 1]; any output may
// be NULL. Does not count episode steps (no truncation). Returns TDM_ERR_NUMERIC when the
// simulation went unstable (outputs then hold the unstable values).
tdm_status tdm_sim_step(tdm_sim *sim,
                        const double *state,  // (state_dim)
                        const float *act,     // (A)
                        double *next_state,   // (state_dim)
                        float *obs,           // (O) observation of next_state
                        float *reward,        // reward of the transition, as tdm_env_step
                        uint8_t *terminated);

// Observation of a state.
tdm_status tdm_sim_observe(tdm_sim *sim, const double *state, float *obs);  // (state_dim) -> (O)

// The task's running cost of (state, action) for planners: a weighted sum of its residual terms,
// evaluated at the state with instantaneous velocities (for the built-in tasks this is the negated
// per-step reward without the finite-difference velocity and without termination). Lower is better.
tdm_status tdm_sim_cost(tdm_sim *sim, const double *state, const float *act, double *cost);

// Linearise one env step at (state, act): dx' = A dx + B da, with dx in the tangent space
// (MuJoCo: [dqpos (nv), qvel (nv), act (na)], mjd_transitionFD per sub-step chained over the frame
// skip; classic tasks: the state itself, by finite differences) and da in agent units.
// eps: perturbation size (<= 0 for the default 1e-6); centered: central differences. MuJoCo
// models with the RK4 integrator are differenced over whole env steps instead of through
// mjd_transitionFD, whose skipped pipeline stages are wrong under RK4 in MuJoCo 2.2.
tdm_status tdm_sim_linearize(tdm_sim *sim, const double *state, const float *act, double eps,
                             bool centered,
                             double *A,   // (tangent_dim, tangent_dim), row-major
                             double *B);  // (tangent_dim, A), row-major

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_ENV_H
