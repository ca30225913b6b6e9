// tandem configuration: a libconfig file plus `-s key=value` overrides, checked against a schema.
//
// Every key of the file is checked before anything runs: an unknown key (with "did you mean"), a
// wrong type or a value out of range is refused with file:line, the key and what is expected.
// Defaults are set first, then looked up. Auto-convert is on, so `lr = 3;` is a valid float and
// an integer key also takes a float with an integral value (`total_steps = 1e6;`).
//
// The env group holds `task` plus task-specific keys; those are passed through to the
// environment as a config_setting_t (tdm_config_env_group), which checks them itself.
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <libconfig.h>
#include <stdio.h>

#include "tandem/core.h"

#ifdef __cplusplus
extern "C" {
#endif

// The resolved training configuration (all keys, final values).
typedef struct {
  // top level
  char name[64];  // run name: runs/<name>/<seed>/
  int64_t seed;
  char device[32];      // "auto" | "cpu" | "cuda" | "cuda:N"
  int64_t total_steps;  // env steps summed over all envs
  int num_envs;
  int64_t eval_every;        // env steps between evaluations (0 = only at the end)
  int eval_episodes;         // K deterministic episodes per evaluation
  int64_t log_every;         // env steps between metrics.csv rows
  int64_t checkpoint_every;  // env steps between checkpoints (0 = only at the end / on a signal)
  int keep_checkpoints;      // last K checkpoints kept
  bool save_replay;          // checkpoints hold the replay buffer
  int threads;               // CPU threads (0 = all cores)
  bool overlap_update;       // an env step's updates run before its transitions are stored, so
                             // the device's update overlaps the host's env step (default false:
                             // Stable-Baselines3's order, store then update)
  char run_dir[256];         // root of the run directories ("runs")
  // env { }
  char env_task[64];
  // agent { }
  char agent_name[32];  // "sac"
  double lr;
  int batch_size;
  double tau, gamma;
  int hidden, layers;   // hidden width, number of hidden layers
  char activation[16];  // hidden activation: "relu" | "tanh" | "silu" | "mish" | "elu"
  int64_t buffer_size;
  int64_t learning_starts;     // env steps of uniform random actions before learning
  double utd;                  // gradient updates per env step (summed over envs)
  int policy_delay;            // actor + temperature update every policy_delay critic updates
  int target_update_interval;  // Polyak update of the target critics every this many updates
  bool ent_coef_auto;          // learn the temperature (false: alpha stays ent_coef_init)
  double ent_coef_init;        // initial temperature alpha
  bool target_entropy_auto;    // target entropy -dim(A)
  double target_entropy;       // used when not auto
  double noise_corr;           // correlation of successive exploration noise draws (AR(1))
  bool use_graph;              // capture the update as a CUDA graph (GPU only)
  bool tf32;                   // allow TF32 GEMMs (GPU only)
  bool fused_update;           // one persistent kernel per update when the shapes allow (GPU)
  int graph_streams;           // streams of an update: 2 forks independent work, 1 (GPU only)
} tdm_train_cfg;

// A loaded configuration: the libconfig tree (owns the env group) and the resolved values.
typedef struct tdm_config {
  config_t lc;
  tdm_train_cfg v;
  char path[512];  // the file it came from ("" when built from defaults)
} tdm_config;

typedef enum {
  TDM_KEY_INT = 0,  // int
  TDM_KEY_I64,      // int64_t
  TDM_KEY_FLOAT,    // double
  TDM_KEY_BOOL,     // bool
  TDM_KEY_STRING,   // char[size]
  TDM_KEY_ENTROPY,  // "auto" or a number (agent.target_entropy)
  TDM_KEY_GROUP     // a group of further keys
} tdm_key_type;

// One entry of the schema that drives defaults, validation, the resolved file and --help.
typedef struct {
  const char *path;  // "agent.lr"
  tdm_key_type type;
  size_t offset;           // into tdm_train_cfg
  size_t size;             // bytes of a string field
  double def, min, max;    // default and inclusive range of a number
  const char *def_str;     // default of a string
  const char *choices;     // "a|b|c" for strings with a fixed set, or NULL
  bool resume_may_change;  // not part of the configuration hash (checked on resume)
  const char *help;
} tdm_cfg_key;

// The schema: n keys.
const tdm_cfg_key *tdm_config_schema(int *n);

// Fill v with every default.
void tdm_train_cfg_defaults(tdm_train_cfg *v);

// Load path (NULL = defaults only), apply overrides ("key=value", value in libconfig syntax:
// `agent.lr=1e-3`, `env.task="hopper"`, `save_replay=true`), check every key and resolve.
// On failure returns TDM_ERR_CONFIG (or TDM_ERR_IO) with "file:line: key: expected ...".
// The caller frees cfg with tdm_config_free, on failure too.
tdm_status tdm_config_load(tdm_config *cfg, const char *path, const char *const *overrides,
                           int n_overrides);

// Same as tdm_config_load from a string (tests); name is used as the file name in messages.
tdm_status tdm_config_load_string(tdm_config *cfg, const char *text, const char *name,
                                  const char *const *overrides, int n_overrides);

// Release the libconfig tree.
void tdm_config_free(tdm_config *cfg);

// The env group (task plus task-specific keys), or NULL when the file has none.
const config_setting_t *tdm_config_env_group(const tdm_config *cfg);

// Write the resolved configuration (every key with its final value, help as comments, and the
// env group's task-specific keys) to f; it loads back to the same values.
tdm_status tdm_config_write(const tdm_config *cfg, FILE *f);

// Write the resolved configuration to path atomically (temporary file, fsync, rename).
tdm_status tdm_config_save(const tdm_config *cfg, const char *path);

// CRC-32 of the resolved values that define a run (keys with resume_may_change are left out,
// and so are the env group's task-specific keys' formatting: it hashes the resolved text).
uint32_t tdm_config_hash(const tdm_config *cfg);

// Compare the run-defining parts of a and b (what tdm_config_hash covers); when they differ,
// describe the first difference ("agent.lr: 0.001 vs 0.0003") in buf and return true.
bool tdm_config_first_diff(const tdm_config *a, const tdm_config *b, char *buf, size_t n);

// Print the schema (key, type, default, range, help) to f.
void tdm_config_print_schema(FILE *f);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_CONFIG_H
