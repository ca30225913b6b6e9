// The fused SAC update (kernels/sac_fused.cu): one SAC update as one persistent cooperative
// kernel on the GPU, phases separated by grid-wide barriers. Same algorithm, same random numbers
// and the same state as the op-by-op update in src/agents/sac.c (update_steps, the reference,
// whose CPU twin is src/agents/sac_ops_cpu.c and the nn ops); only the GEMM summation order
// differs. The fused act (tdm_sacf_act, below) does the same for an act. Private to
// src/agents.
//
// Phases of one update with L linear layers per network (L - 1 hidden), E = 2 critics:
//   0          sample the batch (replay indices and gathers), xq = [s | a], the noise eps', eps
//   1 .. L-1   hidden layers of the actor over [s; s'] (2B rows) and of the critic over xq
//   L          the actor's head: mean/log_std and the squash (xq_next = [s' | a'], logp'; the
//              actor step's xq_pi = [s | pi(s)], logp)
//   then       the target's hidden layers over xq_next; the target head and the critic's Q(s, a)
//              with y, the critic loss, dQ and the last hidden layer's dz
//   then       critic backward, one phase per hidden layer: dz of the layer below (GEMM with the
//              activation derivative), weight gradients (GEMM), bias gradients (column sums);
//              Adam (+ Polyak) on each parameter as soon as nothing in the phase reads it (the
//              first layer's weights in the GEMM epilogue); the head's weight gradient is
//              computed in the first layer's phase (the last hidden layer's has two full jobs)
//   actor step (every policy_delay updates): the updated critic over xq_pi, the actor loss and
//              dQ, the critic's input gradient down to layer 0, then per row dL/da, the squash
//              backward and the actor head's backward, then the actor backward like the critic's,
//              the temperature's Adam in the last phase
// The Q-head and dL/da row phases give each batch row to 4 warps (each computes the row's few
// shared values itself and a quarter of its outputs), the actor's head phase to 2 (the means, the
// log-stds), so that most blocks have work.
// The GEMM phases' jobs and each block's first tile in them are planned once (tdm_sacf_prepare, a
// kernel that runs the job builders); an update copies its block's plans to shared memory while
// it samples, so that a phase starts its tile straight after the barrier.
// The step counters and the RNG counter are read by every block at the start and incremented by
// one thread at the end (after the last barrier). Reductions run in a fixed order: deterministic.
#ifndef TANDEM_SAC_FUSED_H
#define TANDEM_SAC_FUSED_H

#include "replay_ops.h"
#include "tandem/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_SACF_MAXL TDM_MLP_MAX_LAYERS

// One network's buffers and layer geometry (W (E, out, in) at p + w[l], b (E, out) at p + b[l]).
typedef struct {
  float *p, *g, *m, *v;  // params, grads, Adam moments
  int32_t *step;         // Adam step counter
  size_t w[TDM_SACF_MAXL], b[TDM_SACF_MAXL];
  int in[TDM_SACF_MAXL], out[TDM_SACF_MAXL];
} tdm_sacf_net;

typedef struct {
  int B, O, A, L, act;  // batch, obs, action, linear layers, hidden activation (tdm_act)
  float lo, hi, gamma, tau, target_entropy;
  float lr, b1, b2, eps, wd;  // Adam
  int actor_step, polyak_step, ent_auto;
  int grid;                    // blocks of the cooperative launch (tdm_sacf_supported)
  int pair;                    // launch in clusters of 2 blocks; GEMM phases with at most grid / 2
                               // tiles share each tile's K between a cluster's two blocks
                               // (tdm_sacf_supported)
  uint32_t rs_sample, rs_eps;  // RNG sub-streams of the update counter
  tdm_sacf_net actor;          // 1 member: O -> 2A
  tdm_sacf_net critic;         // 2 members: O + A -> 1
  float *target;               // target critic parameters (the critic's layout)
  float *log_alpha, *g_log_alpha, *alpha_m, *alpha_v;
  int32_t *alpha_step;
  tdm_replay_cols cols;     // ring arrays and the batch arrays (obs, act, reward, ...)
  int32_t *idx;             // (B) sampled ring rows
  const int32_t *size_dev;  // replay size
  tdm_rng_ctr *rng;         // the update counter
  float *stats;             // (TDM_SAC_ST_N)
  // scratch
  float *epsn;                                   // (2, B, A): eps' then eps
  float *za[TDM_SACF_MAXL], *ha[TDM_SACF_MAXL];  // actor hidden pre/post activation (2B, H)
  float *zc[TDM_SACF_MAXL], *hc[TDM_SACF_MAXL];  // critic (2, B, H)
  float *zt[TDM_SACF_MAXL], *ht[TDM_SACF_MAXL];  // target (2, B, H)
  float *head;                                   // (2B, 2A) actor head over [s; s']
  float *xq_next, *xq_pi;                        // (B, O + A)
  float *xq_pad, *obs_pad;  // xq = [s | a] (B, O + A) and s (B, O), rows padded with zero columns
                            // to a multiple of 4 (layer 0's weight gradients take 16-byte copies)
  float *a_pi, *logp, *logp_next, *dlogp;  // (B, A), (B), (B), (B)
  float *dq;                               // (2, B)
  float *dzc[2];                           // (2, B, H) ping-pong
  float *dza[2];                           // (B, H) ping-pong
  float *dhead;                            // (B, 2A)
  double *part;                            // (4, B) per-row loss terms
  void *plan;  // tdm_sacf_plan_bytes: the GEMM phases' jobs and tiles per block (tdm_sacf_prepare)
  unsigned long long *prof;  // NULL, or (2, TDM_SACF_PROF + 1): block 0's clock (ns) at the start,
                             // after each barrier and at its end, the count in the last slot;
                             // then per phase the latest clock at which a block finished its work
} tdm_sacf_args;

#define TDM_SACF_PROF 63

// Floats of scratch the fused update needs (the doubles counted as two floats each).
size_t tdm_sacf_scratch_floats(int B, int O, int A, int L, int H);

// Point a's scratch pointers into mem (at least tdm_sacf_scratch_floats floats, 16-byte aligned).
void tdm_sacf_carve(tdm_sacf_args *a, float *mem, int H);

// Whether dev can run the fused kernel (cooperative launch, a block fits on an SM); sets the
// kernel's shared-memory limit, *grid, the blocks of a launch (one per SM; an even count with
// pairs), and *pair: launches in clusters of 2 blocks (sm_90 and later, when the whole grid fits
// in clusters at once; off with the environment variable TDM_FUSED_PAIR=0).
bool tdm_sacf_supported(tdm_dev *dev, int *grid, int *pair);

// Bytes of a's plan buffer (device memory) for grid blocks and L layers.
size_t tdm_sacf_plan_bytes(int grid, int L);

// Fill a->plan from a's pointers and shapes (a kernel on dev's stream). Run it again whenever one
// of them changes; actor_step, polyak_step and prof may change between launches without it.
tdm_status tdm_sacf_prepare(tdm_dev *dev, const tdm_sacf_args *a);

// Launch one fused update on dev's stream (a->grid blocks, from tdm_sacf_supported; a->plan filled
// by tdm_sacf_prepare).
tdm_status tdm_sacf_launch(tdm_dev *dev, const tdm_sacf_args *a);

// The fused act: one kernel (a cluster of 8 blocks, sm_90) for the actor's forward over n
// observations (device), the exploration noise (rng not NULL: as tdm_fill_normal(n A, 0, 1, rng,
// stream) followed by tdm_rng_advance(rng, 1), the op path's draws; with state not NULL, the draws
// z become correlated noise as the op path's tdm_axpby(sqrt(1 - rho^2), z, rho, state) and state
// (n, A) keeps it) and the squash, into out (n, A) on the device.
// tdm_sacf_act_setup: whether dev can run it (sets its shared-memory limit).
// tdm_sacf_act_fits: whether n rows of the actor fit (n <= TDM_SACF_ACT_MAXN, the slices and rows
// within TDM_SACF_ACT_FLOATS floats of shared memory: 208 KB per block, under sm_90's 227 KB, so
// 64 rows of a 256x2 or 256x3 actor fit, and 17 of a 512x2 one; a launch asks for what its rows
// need).
#define TDM_SACF_ACT_MAXN 64
#define TDM_SACF_ACT_FLOATS 53248
bool tdm_sacf_act_setup(tdm_dev *dev);
bool tdm_sacf_act_fits(const tdm_sacf_net *actor, int L, int A, int n);
tdm_status tdm_sacf_act(tdm_dev *dev, const tdm_sacf_args *a, const float *obs, int n,
                        tdm_rng_ctr *rng, uint32_t stream, float *state, float rho, float *out);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_SAC_FUSED_H
