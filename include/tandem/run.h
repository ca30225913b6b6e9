// tandem runs: the training loop, run directories, metrics, evaluation and checkpoints.
//
// A run lives in <run_dir>/<name>/<seed>/: config.cfg (resolved configuration), metrics.csv
// (training rows every log_every env steps), eval.csv (step, mean and std of K deterministic
// episodes), summary.json (final evaluation, steps, wall time, device) and checkpoints/ckpt_<step>
// .tdm (the last keep_checkpoints of them).
//
// The loop: uniform random actions in [-1, 1] for the first learning_starts env steps, then the
// agent's exploring actions; every env step's N transitions go to the agent (Gymnasium semantics:
// the true final observation is stored, terminated stops bootstrapping, truncated does not), then
// finished envs are reset, then utd * N updates (fractions carried over) once learning_starts is
// reached. With overlap_update = true the updates of a step are launched right after its actions
// are chosen, before the env step and the storing of its transitions (same number of updates;
// their batches come from the transitions before that step). Evaluation runs K deterministic
// episodes on a separate env instance set.
//
// Resume ("continues exactly"): a checkpoint holds the trainer counters (env steps, episodes,
// updates, fractional update credit, schedule positions, recent returns, wall time), the host
// exploration RNG, each env slot's episode counter, and the agent's section (networks, Adam
// moments and steps, temperature, its RNG counters, each env's exploration noise state with
// agent.noise_corr > 0 and, with save_replay = true, the replay contents). Environments are not
// saved: every episode of env slot i starts from reset noise seeded by (seed, i, episode number of
// slot i), and a resumed run starts a fresh episode in every slot with the next episode number. A
// run checkpointed at an episode boundary of every slot (e.g. Pendulum's fixed 200-step episodes)
// therefore continues bitwise identically on the CPU when save_replay = true; a checkpoint taken
// mid-episode drops the unfinished episodes (their transitions already stored stay in the replay
// buffer), and without save_replay the replay buffer restarts empty. The GPU path is repeatable on
// the same device but not bitwise equal to the CPU. Keys that may change on resume (use_graph,
// tf32, fused_update, graph_streams, overlap_update, ...) keep the run valid but a change of tf32,
// fused_update or overlap_update changes the numbers from then on (another summation order or batch
// timing): bitwise continuation needs them unchanged. A checkpoint written by another tandem build
// resumes when its configuration, read by this build, equals the run's (the stored hash covers the
// key help too).
#ifndef TANDEM_RUN_H
#define TANDEM_RUN_H

#include <signal.h>
#include <stdio.h>

#include "tandem/agent.h"
#include "tandem/config.h"
#include "tandem/env.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_CKPT_VERSION 1

typedef struct {
  bool quiet;                   // no progress line (batch jobs)
  const char *resume_dir;       // continue this run directory; NULL = a new run
  volatile sig_atomic_t *stop;  // set nonzero (by a signal handler) to checkpoint and stop
  FILE *progress;               // where the progress line goes (NULL = stderr)
} tdm_run_opts;

typedef struct {
  char run_dir[600];     // the run directory
  char checkpoint[700];  // the last checkpoint written ("" when none)
  int64_t steps, episodes, updates;
  double wall_s;               // training wall time over all sessions of the run
  double eval_mean, eval_std;  // last evaluation (NAN when none ran)
  int64_t eval_step;           // env step of the last evaluation (-1 when none ran)
  bool interrupted;            // stopped by opts->stop before total_steps
} tdm_run_result;

typedef struct tdm_trainer tdm_trainer;

// Set up a run: open the device, create envs and agent, and either make a new run directory
// (refusing one that already holds checkpoints: resume it or change name / seed) or, with
// opts->resume_dir, load its latest checkpoint. A refused checkpoint (corrupt, truncated, wrong
// magic / version / configuration / shapes) fails with the reason and writes nothing.
tdm_status tdm_trainer_create(const tdm_config *cfg, const tdm_run_opts *opts, tdm_trainer **out);

// Train until total_steps (or until *opts->stop), evaluating, logging and checkpointing; a final
// checkpoint is written at the end and on a stop. Returns TDM_ERR_INTERRUPTED after a clean stop.
tdm_status tdm_trainer_run(tdm_trainer *t, tdm_run_result *res);

// The trainer's agent (tests compare parameters).
tdm_agent *tdm_trainer_agent(tdm_trainer *t);

// Free everything (NULL is fine).
void tdm_trainer_destroy(tdm_trainer *t);

// Agent configuration from the resolved training configuration.
tdm_agent_cfg tdm_run_agent_cfg(const tdm_train_cfg *v);

// Create cfg's agent on dev for the task spec (act batches up to max(num_envs, evaluation set)).
tdm_status tdm_run_make_agent(const tdm_config *cfg, tdm_dev *dev, const tdm_env_spec *spec,
                              tdm_agent **out);

// Create n instances of cfg's task from its env group; an unknown task lists the valid ones.
tdm_status tdm_run_make_env(const tdm_config *cfg, int n, tdm_pool *pool, tdm_env **out);

// Evaluate agent on K deterministic episodes of a fresh env set made from cfg's env group,
// with reset noise seeded from seed. Returns mean and std of the episode returns.
tdm_status tdm_evaluate(tdm_agent *agent, const tdm_config *cfg, tdm_pool *pool, int episodes,
                        uint64_t seed, double *mean, double *std);

// Number of env instances an evaluation of K episodes by agent runs at once: min(K, the agent's
// act batch).
int tdm_evaluate_num_envs(const tdm_agent *agent, int episodes);

// As tdm_evaluate, on an existing env set of cfg's task with tdm_evaluate_num_envs(agent, K)
// instances (TDM_ERR_ARG otherwise), which may be reused across calls: every instance is reset with
// seed first, so the result is bitwise that of tdm_evaluate with a fresh env set.
tdm_status tdm_evaluate_env(tdm_agent *agent, tdm_env *env, int episodes, uint64_t seed,
                            double *mean, double *std);

// ---------------------------------------------------------------------------------------------
// checkpoints

// What a checkpoint's header says (tdm_checkpoint_inspect).
typedef struct tdm_ckpt_info_s {
  uint32_t version, config_hash;
  int obs_dim, act_dim, num_envs;
  bool with_replay;
  int64_t step, episodes, updates;
  double wall_s;
} tdm_ckpt_info;

// Check a checkpoint file (size, trailer, CRC-32 of the whole file, magic, version) and return its
// header and the resolved configuration it was written with (malloc'd; free it). Refuses with
// TDM_ERR_FORMAT naming the reason, TDM_ERR_IO when unreadable.
tdm_status tdm_checkpoint_inspect(const char *path, tdm_ckpt_info *info, char **config_text);

// Path of the newest checkpoint in run_dir/checkpoints, or in run_dir itself when that is a
// checkpoints folder (TDM_ERR_IO when there is none).
tdm_status tdm_checkpoint_latest(const char *run_dir, char *path, size_t n);

// Load a checkpoint's agent section (networks, optimiser and RNG state; not the replay buffer)
// into agent, after tdm_checkpoint_inspect's checks.
tdm_status tdm_checkpoint_load_agent(const char *path, tdm_agent *agent);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_RUN_H
