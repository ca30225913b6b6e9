// Private interface between the vector env (env.c) and its task families (classic.c, mujoco.c).
#ifndef TANDEM_ENV_INTERNAL_H
#define TANDEM_ENV_INTERNAL_H

#include <libconfig.h>

#include "tandem/env.h"

// A task family's operations. `task` is the family's shared, read-only data (one per env; for
// MuJoCo it owns the mjModel); `inst` is one simulator instance (an mjData, or a classic state).
// Actions passed to step / cost are in the task's units (already mapped from [-1, 1]).
typedef struct tdm_task_ops {
  void (*task_destroy)(void *task);
  // create / free one instance
  tdm_status (*inst_create)(const void *task, void **inst);
  void (*inst_destroy)(void *inst);
  // draw a fresh initial state from rng and write its observation
  void (*reset)(const void *task, void *inst, tdm_rng *rng, float *obs);
  // one env step; returns 0, or 1 when the simulation went unstable (warning or non-finite state)
  int (*step)(const void *task, void *inst, const float *u, float *obs, float *reward,
              uint8_t *terminated);
  void (*get_state)(const void *task, const void *inst, double *state);
  void (*set_state)(const void *task, void *inst, const double *state);
  void (*observe)(const void *task, void *inst, float *obs);
  // running cost of the instance's current state and action u
  double (*cost)(const void *task, void *inst, const float *u);
  // linearise one env step in task units (du); NULL = generic finite differences on the state
  tdm_status (*linearize)(const void *task, void *inst, const float *u, double eps, bool centered,
                          double *A, double *B);
} tdm_task_ops;

// What a family's create function fills in.
typedef struct {
  const tdm_task_ops *ops;
  void *task;
  tdm_env_spec spec;     // name, sizes, dt, max steps, state / tangent dims; bounds point into task
  const void *mj_model;  // the mjModel of a MuJoCo task, else NULL
} tdm_task_made;

// Family constructors: build the shared task data for `name` configured by cfg (may be NULL).
tdm_status tdm_classic_create(const char *name, const config_setting_t *cfg, tdm_task_made *out);
tdm_status tdm_mujoco_create(const char *name, const config_setting_t *cfg, tdm_task_made *out);

// Registry entry.
typedef struct {
  const char *name, *family, *about;
} tdm_task_info;

// config helpers: absent keys keep *v; wrong type or range -> TDM_ERR_CONFIG with file:line
tdm_status tdm_envcfg_num(const config_setting_t *cfg, const char *key, double lo, double hi,
                       double *v);
tdm_status tdm_envcfg_int(const config_setting_t *cfg, const char *key, long lo, long hi, int *v);
tdm_status tdm_envcfg_bool(const config_setting_t *cfg, const char *key, bool *v);
tdm_status tdm_envcfg_str(const config_setting_t *cfg, const char *key, const char **v);
// Fail on a member of cfg that is not in the NULL-terminated list of allowed keys.
tdm_status tdm_envcfg_check_keys(const config_setting_t *cfg, const char *what,
                              const char *const *allowed);
// "file:line" of a setting (or "config" when unknown), for messages.
const char *tdm_envcfg_where(const config_setting_t *s, char *buf, size_t n);

#endif
