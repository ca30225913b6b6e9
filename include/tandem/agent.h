// tandem agents: the trainer knows an agent only through this small vtable and a registry of
// names. act(obs, explore) / observe(transitions) / update(n) / write / read / destroy.
//
// Actions are always in [-1, 1]^A (the env rescales). The trainer owns the loop: it takes uniform
// random actions for the first learning_starts steps (as Stable-Baselines3), calls observe after
// every env step and update(n) with n = the update-to-data ratio times the transitions added.
#ifndef TANDEM_AGENT_H
#define TANDEM_AGENT_H

#include <stdio.h>

#include "tandem/nn.h"
#include "tandem/replay.h"

#ifdef __cplusplus
extern "C" {
#endif

// SAC settings; defaults (tdm_sac_defaults) are Stable-Baselines3's.
typedef struct {
  float lr;                    // 3e-4, for actor, critics and temperature (Adam)
  int batch_size;              // 256
  float tau;                   // 0.005 (Polyak)
  float gamma;                 // 0.99
  int hidden;                  // 256 units per hidden layer
  int layers;                  // 2 hidden layers
  tdm_act act;                 // TDM_ACT_RELU
  int64_t buffer_size;         // 1,000,000 transitions
  int64_t learning_starts;     // 100 env steps of random actions (the trainer applies it)
  float utd;                   // 1: gradient updates per env transition (the trainer applies it)
  int policy_delay;            // 1: actor + temperature step every policy_delay critic steps
  int target_update_interval;  // 1: Polyak every this many updates
  bool ent_coef_auto;          // true: learn alpha ("auto" in SB3); false: alpha = ent_coef_init
  float ent_coef_init;         // 1.0
  bool target_entropy_auto;    // true: target entropy = -act_dim
  float target_entropy;        // used when not auto
  float log_std_min, log_std_max;  // -20, 2 (SB3 LOG_STD_MIN / LOG_STD_MAX)
  float noise_corr;  // 0: the exploring act draws independent noise every step (SB3). In (0, 1):
                     // each env's noise is an AR(1) process, eps' = rho eps + sqrt(1 - rho^2) z,
                     // still standard normal per step but correlated over ~1 / (1 - rho) steps,
                     // restarted when the env's episode ends (README, "Correlated exploration")
  bool use_graph;                  // true: updates and act(num_envs rows) replay CUDA graphs (GPU)
  bool tf32;                       // false; true sets dev->tf32 (TF32 GEMMs on the whole device)
  int max_seq_rows;                // replay sequence sampling rows (0 = off; world models set it)
  int graph_streams;  // 2: an update forks independent work onto a second stream (parallel graph
                      // branches on the GPU; the same numbers); 1 (or 0): one stream
  bool fused_update;  // true (default): on the GPU with use_graph, one update is one persistent
                      // kernel (kernels/sac_fused.cu; its launch captured as a graph of one node)
                      // when the device and shapes allow it (tdm_sac_fused_active), else the
                      // graph of ops; false: always the graph of ops. Same algorithm, GEMMs summed
                      // in another order (not bitwise equal to the op path); 27% faster on the
                      // H200, and the same returns over 19 seeds (bench/RESULTS.md session 10).
                      // With it, on sm_90, an act of up to 64 rows is one kernel too (tdm_sacf_act)
} tdm_sac_cfg;

// Stable-Baselines3 defaults (above).
tdm_sac_cfg tdm_sac_defaults(void);

// Configuration of any agent; each agent reads its own member.
typedef struct {
  tdm_sac_cfg sac;
} tdm_agent_cfg;

// Defaults of every member.
tdm_agent_cfg tdm_agent_cfg_defaults(void);

// Sizes an agent is built for.
typedef struct {
  int obs_dim, act_dim;  // O, A
  int num_envs;          // N: largest batch of act and observe
} tdm_agent_dims;

// Training statistics of the last update of a tdm_agent_update call, reduced on the device.
typedef struct {
  float critic_loss;  // 0.5 * sum over both Qs of the MSE to the target
  float actor_loss;   // mean(alpha log pi - min Q(s, pi(s))) (of the last actor step)
  float alpha;        // temperature used in that update
  float entropy;      // -mean log pi(a|s) over the batch (of the last actor step)
  float q_mean;       // mean Q(s, a) over the batch and both critics
  int64_t updates;    // updates done since creation (host counter)
} tdm_agent_stats;

typedef struct tdm_agent tdm_agent;

typedef struct {
  const char *name;
  // act_out (n, A) in [-1, 1] from obs (n, O), both host memory; explore: sample, else tanh(mean).
  tdm_status (*act)(tdm_agent *a, const float *obs, int n, bool explore, float *act_out);
  // Store one env step's transitions.
  tdm_status (*observe)(tdm_agent *a, const tdm_transition_batch *b);
  // Run n_updates gradient updates; copy the statistics of the last one into out when non-NULL.
  tdm_status (*update)(tdm_agent *a, int n_updates, tdm_agent_stats *out);
  // Checkpoint: networks with Adam state, temperature, RNG counters, step counters, and the replay
  // contents when with_replay.
  tdm_status (*write)(tdm_agent *a, FILE *f, bool with_replay);
  tdm_status (*read)(tdm_agent *a, FILE *f, bool with_replay, const char *what);
  void (*destroy)(tdm_agent *a);
} tdm_agent_ops;

struct tdm_agent {
  const tdm_agent_ops *ops;
  tdm_dev *dev;
  tdm_agent_dims dims;
  int64_t n_updates;   // updates done
  int64_t n_observed;  // transitions observed
  void *impl;          // agent's own state
};

// Comma-separated names of the registered agents ("sac").
const char *tdm_agent_names(void);

// Create agent name on dev for dims, seeded with seed. An unknown name is refused with
// TDM_ERR_ARG listing the valid names.
tdm_status tdm_agent_create(const char *name, tdm_dev *dev, const tdm_agent_cfg *cfg,
                            const tdm_agent_dims *dims, uint64_t seed, tdm_agent **out);

// Free the agent (NULL is fine).
void tdm_agent_destroy(tdm_agent *a);

// Actions (n, A) in [-1, 1] for observations (n, O); host arrays; synchronises.
tdm_status tdm_agent_act(tdm_agent *a, const float *obs, int n, bool explore, float *act_out);

// Store the transitions of one env step.
tdm_status tdm_agent_observe(tdm_agent *a, const tdm_transition_batch *b);

// Run n gradient updates (the replay buffer must not be empty); stats copied when out != NULL.
tdm_status tdm_agent_update(tdm_agent *a, int n, tdm_agent_stats *out);

// Write / read the agent's checkpoint section. read refuses a mismatched magic, version, shape
// or configuration with the reason; after a failed read the agent's state is undefined (destroy
// it).
tdm_status tdm_agent_write(tdm_agent *a, FILE *f, bool with_replay);
tdm_status tdm_agent_read(tdm_agent *a, FILE *f, bool with_replay, const char *what);

// ---------------------------------------------------------------------------------------------
// SAC specifics (for tests, benchmarks and agents built on SAC)

// Create a SAC agent (what tdm_agent_create("sac", ...) does).
tdm_status tdm_sac_create(tdm_dev *dev, const tdm_sac_cfg *cfg, const tdm_agent_dims *dims,
                          uint64_t seed, tdm_agent **out);

// The SAC agent's replay buffer (NULL when a is not SAC).
tdm_replay *tdm_sac_replay(tdm_agent *a);

// The SAC agent's networks: actor (1 member, O -> 2A: mean, log_std), critic (2 members,
// O + A -> 1) and target critic. NULL when a is not SAC.
tdm_mlp *tdm_sac_actor(tdm_agent *a);
tdm_mlp *tdm_sac_critic(tdm_agent *a);
tdm_mlp *tdm_sac_critic_target(tdm_agent *a);

// log(alpha) in device memory (one float).
float *tdm_sac_log_alpha(tdm_agent *a);

// Run n updates on the batch b (already gathered, B = b->rows) instead of sampling: the
// parity and reference tests feed the same batch to CPU and GPU. Never uses a graph.
tdm_status tdm_sac_update_on_batch(tdm_agent *a, const tdm_replay_batch *b, int n);

// Whether a's updates run as the fused persistent kernel: a GPU agent with use_graph and
// fused_update whose shapes the kernel supports (act_dim <= TDM_SAC_FUSED_MAX_ACT, a device that
// can launch it cooperatively). False for a CPU agent or a non-SAC agent.
#define TDM_SAC_FUSED_MAX_ACT 32
bool tdm_sac_fused_active(tdm_agent *a);

// How a's updates run, for logs: "fused" (the fused kernel, one graph replay per update), "graph"
// (the graph of ops, one replay per update), "plain" (GPU ops launched one by one: use_graph false)
// or "cpu". NULL for a non-SAC agent.
const char *tdm_sac_update_path(tdm_agent *a);

// Whether an act of n rows of a runs as the fused act (one kernel: a GPU agent with the fused
// update on an sm_90 device, n and the actor's widths within its limits), else the op path.
bool tdm_sac_fused_act_active(tdm_agent *a, int n);

// Diagnostics of the fused update: with on, every fused update records block 0's clock after each
// of its phases and, per phase, the latest time any block finished its work (a few stores and
// atomics per update); tdm_sac_fused_phases then copies the last update's phase durations in
// microseconds into us (up to max), when work is not NULL the time from each phase's start until
// its slowest block finished its work (the rest is the barrier), and their count into *n
// (synchronises). Refused when the agent's updates are not fused.
tdm_status tdm_sac_fused_profile(tdm_agent *a, bool on);
tdm_status tdm_sac_fused_phases(tdm_agent *a, double *us, double *work, int max, int *n);

// Run the actor once over [obs; next_obs] (2B rows) per update instead of twice over B rows (the
// same result; fewer launches, more FLOPs). Default: on for the GPU with graph_streams < 2, off
// otherwise (with two streams the unstacked forward overlaps the critic's work).
tdm_status tdm_sac_set_stacked_actor(tdm_agent *a, bool on);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_AGENT_H
