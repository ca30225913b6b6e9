// Soft actor-critic (Haarnoja et al. 2018), as Stable-Baselines3's SAC: twin Q networks as one
// 2-member MLP with a Polyak-averaged target copy, a tanh-Gaussian actor (mean and log_std heads
// as one MLP output of width 2A, log_std clamped), and a learned temperature alpha = exp(log_alpha)
// with target entropy -dim(A).
//
// One update, in SB3's order (alpha is the value before this update's temperature step):
//   sample a batch (device indices + gathers)
//   a', logp' = pi(s'),  y = r + gamma (1 - term) (min Q_targ(s', a') - alpha logp')
//   critic: L = 0.5 sum_e mean (Q_e(s, a) - y)^2, backward, Adam
//   every policy_delay updates: a, logp = pi(s) (reparameterised),
//     actor: L = mean(alpha logp - min_e Q_e(s, a)) with the just-updated critic, backward, Adam
//     temperature: L = -log_alpha mean(logp + target_entropy), Adam on log_alpha
//   every target_update_interval updates: Q_targ = (1 - tau) Q_targ + tau Q
//   advance the update RNG counter (done by the critic-loss op: nothing reads it after that)
// Fused where it saves launches: squash + concat (the target's with the critic step's input),
// target + critic loss (+ RNG advance), the Polyak average inside the critic's Adam launch, and
// one Adam launch for actor and log_alpha.
// With graph_streams = 2 an update forks independent work onto a second stream (a lane with its
// own cuBLAS handle and workspace), which a capture turns into parallel graph branches: the noise
// draw beside the replay sampling, the critic forward on (s, a) beside the target forward on
// (s', a'), and the actor step's squash (its actor forward too when not stacked) beside the
// critic backward and Adam. The branches write disjoint buffers, so the numbers are the same.
// The critic and actor backwards put their weight gradients on a third stream (their own lane).
// On the GPU each variant of this sequence is captured once as a CUDA graph (lazily, on its first
// use) and replayed; the RNG counter lives in device memory and is advanced in-graph, the replay
// size is read from device memory, so replays draw fresh batches and noise with no host sync.
// act() on the full num_envs batch is a graph too (h2d, actor, noise, squash, d2h), one per
// explore flag, the noise on the lane beside the copy and the actor; then one synchronisation
// brings the actions back.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sac_fused.h"
#include "sac_ops.h"
#include "tandem/agent.h"

// RNG sub-streams: update counter rng[0] streams 0 (indices) and 1 (noise), act counter rng[1]
// stream 3 (and, for correlated noise, stream 4 once at creation for its first state and stream 5
// for the fresh state of envs whose episode ended)
enum { RS_SAMPLE = 0, RS_EPS = 1, RS_ACT = 3, RS_ACT_INIT = 4, RS_ACT_RESTART = 5 };

typedef struct {
  tdm_sac_cfg cfg;
  int O, A, N, B;
  float target_entropy;
  tdm_adam_cfg adam;
  tdm_mlp *actor;   // 1 member: O -> 2A (mean, log_std)
  tdm_mlp *critic;  // 2 members: O + A -> 1, shared input
  tdm_mlp *target;  // copy of critic, Polyak-averaged
  tdm_mlp_acts *acts_actor, *acts_act, *acts_critic, *acts_target;
  bool stacked;  // one actor forward over [obs; next_obs] (2B rows); default on the GPU
  tdm_replay *replay;
  tdm_replay_batch batch;
  // device scratch (one allocation)
  void *mem;
  float *eps_next;           // (2, B, A): eps' then eps, one draw per update
  float *logp_next;          // (B)
  float *xq_next;            // (B, O + A)
  float *y;                  // (B)
  float *xq;                 // (B, O + A) the critic step's input [s | a]
  float *xq_pi;              // (B, O + A) the actor step's critic input [s | pi(s)]
  float *dq;                 // (2, B)
  float *a_pi;               // (B, A)
  float *logp;               // (B)
  float *dlogp;              // (B)
  float *dxq;                // (B, O + A)
  float *dhead;              // (2B, 2A); rows B.. stay zero (the stacked actor backward)
  float *act_obs;            // (N, O)
  float *act_eps;            // (N, A) the act's noise; with noise_corr > 0 each env's AR(1) state
  float *act_z;              // (N, A) the fresh draw that noise_corr > 0 mixes into act_eps
  float *act_out;            // (N, A)
  float *log_alpha;          // (1)
  float *g_log_alpha;        // (1)
  float *alpha_m, *alpha_v;  // (1) Adam moments of log_alpha
  float *stats;              // (TDM_SAC_ST_N)
  int32_t *alpha_step;       // (1)
  uint32_t *adam_sync;       // (1) zeroed: the grouped Adam launch of actor and temperature
  tdm_rng_ctr *rng;          // (2): update, act
  // pinned host
  float *h_obs;             // (N, O)
  float *h_act;             // (N, A)
  float *h_stats;           // (TDM_SAC_ST_N)
  tdm_dev_lane *lane;       // the second stream of an update (NULL: graph_streams <= 1)
  tdm_dev_lane *mlp_lane;   // critic and actor backwards' weight gradients (NULL: likewise)
  tdm_graph *graph[4];      // update, by (actor step, Polyak step)
  tdm_graph *act_graph[2];  // act on num_envs rows, by explore
  bool fused;               // updates run as the fused kernel (tdm_sac_fused_active)
  bool fused_act;           // with fused: acts that fit run as the fused act (tdm_sacf_act)
  void *fz_mem;             // its scratch
  void *fz_plan;            // its plan (tdm_sacf_prepare)
  uint64_t *prof;           // phase clocks of the fused update (tdm_sac_fused_profile) or NULL
  tdm_sacf_args fz;         // its arguments (all but the per-update flags fixed at creation)
  uint64_t seed;
} sac;

static sac *sac_of(tdm_agent *a) {
  return a && a->ops && !strcmp(a->ops->name, "sac") ? (sac *)a->impl : NULL;
}

tdm_sac_cfg tdm_sac_defaults(void) {
  tdm_sac_cfg c;
  memset(&c, 0, sizeof c);
  c.lr = 3e-4f;
  c.batch_size = 256;
  c.tau = 0.005f;
  c.gamma = 0.99f;
  c.hidden = 256;
  c.layers = 2;
  c.act = TDM_ACT_RELU;
  c.buffer_size = 1000000;
  c.learning_starts = 100;
  c.utd = 1.0f;
  c.policy_delay = 1;
  c.target_update_interval = 1;
  c.ent_coef_auto = true;
  c.ent_coef_init = 1.0f;
  c.target_entropy_auto = true;
  c.target_entropy = 0.0f;
  c.log_std_min = -20.0f;
  c.log_std_max = 2.0f;
  c.use_graph = true;
  c.tf32 = false;
  c.max_seq_rows = 0;
  c.graph_streams = 2;
  c.fused_update = true;
  return c;
}

static tdm_status check_cfg(const tdm_sac_cfg *c, const tdm_agent_dims *d) {
  if (d->obs_dim < 1 || d->act_dim < 1 || d->num_envs < 1)
    return TDM_FAIL(TDM_ERR_ARG, "sac: obs_dim %d, act_dim %d and num_envs %d must be >= 1",
                    d->obs_dim, d->act_dim, d->num_envs);
#define RANGE(cond, ...) \
  if (!(cond)) return TDM_FAIL(TDM_ERR_CONFIG, __VA_ARGS__)
  RANGE(c->lr > 0 && isfinite(c->lr), "sac: lr = %g must be > 0", c->lr);
  RANGE(c->batch_size >= 1, "sac: batch_size = %d must be >= 1", c->batch_size);
  RANGE(c->tau > 0 && c->tau <= 1, "sac: tau = %g must be in (0, 1]", c->tau);
  RANGE(c->gamma >= 0 && c->gamma <= 1, "sac: gamma = %g must be in [0, 1]", c->gamma);
  RANGE(c->hidden >= 1, "sac: hidden = %d must be >= 1", c->hidden);
  RANGE(c->layers >= 1 && c->layers < TDM_MLP_MAX_LAYERS, "sac: layers = %d must be in 1..%d",
        c->layers, TDM_MLP_MAX_LAYERS - 1);
  RANGE(c->buffer_size >= d->num_envs, "sac: buffer_size = %lld must be >= num_envs %d",
        (long long)c->buffer_size, d->num_envs);
  RANGE(c->policy_delay >= 1, "sac: policy_delay = %d must be >= 1", c->policy_delay);
  RANGE(c->target_update_interval >= 1, "sac: target_update_interval = %d must be >= 1",
        c->target_update_interval);
  RANGE(c->ent_coef_init > 0 && isfinite(c->ent_coef_init), "sac: ent_coef_init = %g must be > 0",
        c->ent_coef_init);
  RANGE(c->noise_corr >= 0 && c->noise_corr < 1, "sac: noise_corr = %g must be in [0, 1)",
        c->noise_corr);
  RANGE(c->log_std_min < c->log_std_max, "sac: log_std_min %g must be < log_std_max %g",
        c->log_std_min, c->log_std_max);
  RANGE(c->graph_streams >= 0 && c->graph_streams <= 2, "sac: graph_streams = %d must be 0..2",
        c->graph_streams);
#undef RANGE
  return TDM_OK;
}

static void sac_destroy(tdm_agent *a) {
  if (!a) return;
  sac *s = a->impl;
  if (s) {
    for (int i = 0; i < 4; i++)
      if (s->graph[i]) tdm_graph_destroy(s->graph[i]);
    for (int i = 0; i < 2; i++)
      if (s->act_graph[i]) tdm_graph_destroy(s->act_graph[i]);
    tdm_dev_lane_destroy(s->lane);
    tdm_dev_lane_destroy(s->mlp_lane);
    tdm_mlp_acts_destroy(s->acts_actor);
    tdm_mlp_acts_destroy(s->acts_act);
    tdm_mlp_acts_destroy(s->acts_critic);
    tdm_mlp_acts_destroy(s->acts_target);
    tdm_mlp_destroy(s->actor);
    tdm_mlp_destroy(s->critic);
    tdm_mlp_destroy(s->target);
    if (s->replay) {
      tdm_replay_batch_destroy(s->replay, &s->batch);
      tdm_replay_destroy(s->replay);
    }
    if (s->mem) tdm_dev_free(a->dev, s->mem);
    if (s->fz_mem) tdm_dev_free(a->dev, s->fz_mem);
    if (s->fz_plan) tdm_dev_free(a->dev, s->fz_plan);
    if (s->prof) tdm_dev_free(a->dev, s->prof);
    if (s->h_obs) tdm_host_free(a->dev, s->h_obs);
    free(s);
  }
  free(a);
}

// ---------------------------------------------------------------------------------------------
// update

// Capture fn(ctx) as a graph into *g unless already captured (GPU); the caller launches it.
static tdm_status capture_once(tdm_dev *dev, tdm_graph **g, tdm_status fn(void *), void *ctx) {
  if (*g) return TDM_OK;
  TDM_TRY(tdm_graph_begin(dev));
  tdm_status st = fn(ctx);
  char why[512] = "";
  if (st != TDM_OK) snprintf(why, sizeof why, "%s", tdm_errmsg());
  tdm_graph *tmp = NULL;
  tdm_status st2 = tdm_graph_end(dev, &tmp);  // always ends the capture
  if (st != TDM_OK) {
    if (tmp) tdm_graph_destroy(tmp);
    return TDM_FAIL(st, "capturing a SAC graph: %s", why);
  }
  TDM_TRY(st2);
  *g = tmp;
  return TDM_OK;
}

// Forget the captured updates (they are captured again on the next update).
static void drop_update_graphs(sac *s) {
  for (int i = 0; i < 4; i++) {
    tdm_graph_destroy(s->graph[i]);
    s->graph[i] = NULL;
  }
}

// Arguments of a captured body.
typedef struct {
  sac *s;
  tdm_dev *dev;
  int n;
  bool explore, actor_step, polyak_step;
} body_args;

// The target has the critic's parameter count (the fused Polyak step relies on it).
static tdm_status same_params(const tdm_mlp *target, const tdm_mlp *critic) {
  if (target->n_params != critic->n_params || target->dev != critic->dev)
    return TDM_FAIL(TDM_ERR_ARG, "sac: target and critic differ in shape (%zu vs %zu parameters)",
                    target->n_params, critic->n_params);
  return TDM_OK;
}

// Second-stream helpers: with a lane, fork (ops go to the lane), back (ops go to the main stream
// again) and join (the main stream waits for the lane); without one, nothing.
static tdm_status lane_fork(sac *s, tdm_dev *dev) {
  return s->lane ? tdm_dev_fork(dev, s->lane) : TDM_OK;
}
static tdm_status lane_back(sac *s, tdm_dev *dev) {
  return s->lane ? tdm_dev_back(dev, s->lane) : TDM_OK;
}
static tdm_status lane_join(sac *s, tdm_dev *dev) {
  return s->lane ? tdm_dev_join(dev, s->lane) : TDM_OK;
}

// One SAC update on the gathered batch bt (B rows); sample first when do_sample.
static tdm_status update_steps(sac *s, tdm_dev *dev, const tdm_replay_batch *bt, bool do_sample,
                               bool actor_step, bool polyak_step) {
  const int B = bt->rows, O = s->O, A = s->A, L = s->cfg.layers + 1;
  const float lo = s->cfg.log_std_min, hi = s->cfg.log_std_max;
  size_t nBA = (size_t)B * A;
  float *eps = s->eps_next + nBA;  // (B, A)

  // critic target: a', logp' = pi(s'); y = r + gamma (1 - term) (min Q_targ(s', a') - alpha logp')
  // eps' for the target and eps for the actor step in one draw, on the lane beside the sampling
  // (both only read the update RNG counter); joined before the first squash reads it
  TDM_TRY(lane_fork(s, dev));
  TDM_TRY(tdm_fill_normal(dev, s->eps_next, 2 * nBA, 0.0f, 1.0f, &s->rng[0], RS_EPS));
  TDM_TRY(lane_back(s, dev));
  if (do_sample) TDM_TRY(tdm_replay_sample(s->replay, &s->batch, B, &s->rng[0], RS_SAMPLE));
  // with stacking, one actor forward over [obs; next_obs] (2B rows) serves both the target and
  // the actor step (the actor does not change in between); its backward then runs over 2B rows
  // with zero gradient on the next_obs half. Fewer launches, more FLOPs: the GPU default.
  const bool stacked =
      s->stacked && bt->rows == bt->max_rows && bt->next_obs == bt->obs + (size_t)B * O;
  const float *head_pi = NULL, *head_next;  // (B, 2A) each
  if (stacked) {
    TDM_TRY(tdm_mlp_forward(s->actor, s->acts_actor, bt->obs, 2 * B, false, NULL, true));
    head_pi = s->acts_actor->a[L - 1];
    head_next = head_pi + (size_t)B * 2 * A;
  } else {
    TDM_TRY(tdm_mlp_forward(s->actor, s->acts_actor, bt->next_obs, B, false, NULL, false));
    head_next = s->acts_actor->a[L - 1];
  }
  TDM_TRY(lane_join(s, dev));
  // xq_next = [s' | a'] and logp' in one op
  // (and, in the same launch, the critic step's input xq = [s | a] from the batch)
  TDM_TRY(tdm_sac_squash_cat(dev, head_next, s->eps_next, bt->next_obs, O, s->xq_next, NULL,
                             s->logp_next, B, A, lo, hi, bt->obs, bt->act, s->xq));
  // the critic forward on xq (lane) beside the target forward on xq_next (main stream)
  TDM_TRY(lane_fork(s, dev));
  TDM_TRY(tdm_mlp_forward(s->critic, s->acts_critic, s->xq, B, true, NULL, true));
  TDM_TRY(lane_back(s, dev));
  TDM_TRY(tdm_mlp_forward(s->target, s->acts_target, s->xq_next, B, true, NULL, false));
  TDM_TRY(lane_join(s, dev));
  const float *qt = s->acts_target->a[L - 1];  // (2, B)
  const float *q = s->acts_critic->a[L - 1];   // (2, B)

  // critic step; the target y is computed with the loss (one op), which also advances the update
  // RNG counter: the sampling and the noise above were its last readers in this update
  TDM_TRY(tdm_sac_target_loss(dev, qt, s->logp_next, bt->reward, bt->terminated, s->log_alpha,
                              s->cfg.gamma, q, s->y, s->dq, s->stats, B, &s->rng[0]));
  // the actor step's a, logp = pi(s) (reparameterised) need only the actor and the noise: on the
  // lane beside the critic backward and Adam (into xq_pi, a_pi, logp; the critic step reads xq)
  const float *head = NULL;  // (B, 2A)
  if (actor_step) {
    TDM_TRY(lane_fork(s, dev));
    if (!stacked) TDM_TRY(tdm_mlp_forward(s->actor, s->acts_actor, bt->obs, B, false, NULL, true));
    head = stacked ? head_pi : s->acts_actor->a[L - 1];
    TDM_TRY(tdm_sac_squash_cat(dev, head, eps, bt->obs, O, s->xq_pi, s->a_pi, s->logp, B, A, lo, hi,
                               NULL, NULL, NULL));
    TDM_TRY(lane_back(s, dev));
  }
  TDM_TRY(tdm_mlp_backward(s->critic, s->acts_critic, s->dq, NULL, TDM_GRAD_SET));
  // critic Adam; on Polyak steps the target average rides along in the same launch (nothing
  // reads the target after its forward above, so this equals averaging at the end)
  tdm_mlp *cr = s->critic;
  tdm_adam_group gc = {cr->params,
                       cr->grads,
                       cr->adam_m,
                       cr->adam_v,
                       cr->n_params,
                       cr->adam_step,
                       polyak_step ? s->target->params : NULL,
                       s->cfg.tau};
  TDM_TRY(same_params(s->target, cr));
  TDM_TRY(tdm_adam_step_groups(dev, &gc, 1, &s->adam, s->adam_sync));

  if (actor_step) {
    // Q(s, pi(s)) from the updated critic
    TDM_TRY(lane_join(s, dev));
    TDM_TRY(tdm_mlp_forward(s->critic, s->acts_critic, s->xq_pi, B, true, NULL, true));
    const float *qpi = s->acts_critic->a[L - 1];  // (2, B)
    TDM_TRY(tdm_sac_actor_loss(dev, qpi, s->logp, s->log_alpha, s->target_entropy, s->dq, s->dlogp,
                               s->cfg.ent_coef_auto ? s->g_log_alpha : NULL, s->stats, B));
    // dL/da through the critic (its gradients untouched), then through the squashing
    TDM_TRY(tdm_mlp_backward(s->critic, s->acts_critic, s->dq, s->dxq, TDM_GRAD_NONE));
    TDM_TRY(tdm_sac_squash_bwd(dev, head, eps, s->a_pi, s->dxq + O, O + A, s->dlogp, s->dhead, B, A,
                               lo, hi));
    TDM_TRY(tdm_mlp_backward(s->actor, s->acts_actor, s->dhead, NULL, TDM_GRAD_SET));
    // Adam on the actor and (auto temperature) on log_alpha: one launch
    tdm_mlp *ac = s->actor;
    tdm_adam_group gr[2] = {
        {ac->params, ac->grads, ac->adam_m, ac->adam_v, ac->n_params, ac->adam_step, NULL, 0.0f},
        {s->log_alpha, s->g_log_alpha, s->alpha_m, s->alpha_v, 1, s->alpha_step, NULL, 0.0f}};
    TDM_TRY(tdm_adam_step_groups(dev, gr, s->cfg.ent_coef_auto ? 2 : 1, &s->adam, s->adam_sync));
  }
  return TDM_OK;
}

// update_steps, and after an error the device back on its own stream.
static tdm_status update_body(sac *s, tdm_dev *dev, const tdm_replay_batch *bt, bool do_sample,
                              bool actor_step, bool polyak_step) {
  tdm_status st = update_steps(s, dev, bt, do_sample, actor_step, polyak_step);
  if (st != TDM_OK && s->lane) tdm_dev_lane_abort(dev, s->lane);
  return st;
}

static tdm_status update_fn(void *p);
static tdm_status fused_fn(void *p);

static tdm_status copy_stats(tdm_agent *a, tdm_agent_stats *out) {
  sac *s = a->impl;
  TDM_TRY(tdm_dev_d2h(a->dev, s->h_stats, s->stats, TDM_SAC_ST_N * sizeof(float)));
  TDM_TRY(tdm_dev_sync(a->dev));
  out->critic_loss = s->h_stats[TDM_SAC_ST_CRITIC];
  out->actor_loss = s->h_stats[TDM_SAC_ST_ACTOR];
  out->alpha = s->h_stats[TDM_SAC_ST_ALPHA];
  out->entropy = s->h_stats[TDM_SAC_ST_ENTROPY];
  out->q_mean = s->h_stats[TDM_SAC_ST_QMEAN];
  out->updates = a->n_updates;
  return TDM_OK;
}

static tdm_status sac_update(tdm_agent *a, int n, tdm_agent_stats *out) {
  sac *s = a->impl;
  tdm_dev *dev = a->dev;
  if (n < 0) return TDM_FAIL(TDM_ERR_ARG, "sac update: n = %d must be >= 0", n);
  if (n > 0 && tdm_replay_size(s->replay) == 0)
    return TDM_FAIL(TDM_ERR_ARG,
                    "sac update: the replay buffer is empty (observe transitions "
                    "first; learning_starts >= 1)");
  s->batch.rows = s->B;
  bool graphs = dev->kind == TDM_DEV_CUDA && s->cfg.use_graph;
  for (int i = 0; i < n; i++) {
    bool actor_step = a->n_updates % s->cfg.policy_delay == 0;
    bool polyak_step = a->n_updates % s->cfg.target_update_interval == 0;
    if (graphs) {
      // one graph per (actor step, Polyak step): the fused kernel's launch (one node) or the ops
      int k = (actor_step ? 2 : 0) + (polyak_step ? 1 : 0);
      body_args args = {s, dev, s->B, false, actor_step, polyak_step};
      TDM_TRY(capture_once(dev, &s->graph[k], s->fused ? fused_fn : update_fn, &args));
      TDM_TRY(tdm_graph_launch(dev, s->graph[k]));
    } else {
      TDM_TRY(update_body(s, dev, &s->batch, true, actor_step, polyak_step));
    }
    a->n_updates++;
  }
  if (out) TDM_TRY(copy_stats(a, out));
  return TDM_OK;
}

static tdm_status fused_fn(void *p) {
#ifdef TDM_CUDA
  body_args *b = p;
  b->s->fz.actor_step = b->actor_step;
  b->s->fz.polyak_step = b->polyak_step;
  return tdm_sacf_launch(b->dev, &b->s->fz);
#else
  (void)p;
  return TDM_FAIL(TDM_ERR_ARG, "sac update: the fused kernel needs a CUDA build");
#endif
}

static tdm_status update_fn(void *p) {
  body_args *b = p;
  return update_body(b->s, b->dev, &b->s->batch, true, b->actor_step, b->polyak_step);
}

tdm_status tdm_sac_update_on_batch(tdm_agent *a, const tdm_replay_batch *b, int n) {
  sac *s = sac_of(a);
  if (!s) return TDM_FAIL(TDM_ERR_ARG, "tdm_sac_update_on_batch: not a SAC agent");
  if (b->rows < 1 || b->rows > s->B)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_sac_update_on_batch: batch of %d rows, expected 1..%d",
                    b->rows, s->B);
  for (int i = 0; i < n; i++) {
    bool actor_step = a->n_updates % s->cfg.policy_delay == 0;
    bool polyak_step = a->n_updates % s->cfg.target_update_interval == 0;
    TDM_TRY(update_body(s, a->dev, b, false, actor_step, polyak_step));
    a->n_updates++;
  }
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// act / observe

// Whether an act of n rows runs as the fused act (tdm_sac_fused_act_active).
static bool fused_act_fits(const sac *s, int n) {
#ifdef TDM_CUDA
  return s->fused_act && tdm_sacf_act_fits(&s->fz.actor, s->fz.L, s->A, n);
#else
  (void)s, (void)n;
  return false;
#endif
}

// Actions for the n observations in h_obs into h_act: h2d, actor forward, noise, squash, d2h.
static tdm_status act_body(sac *s, tdm_dev *dev, int n, bool explore) {
  const int O = s->O, A = s->A, L = s->cfg.layers + 1;
#ifdef TDM_CUDA
  if (fused_act_fits(s, n)) {
    // with the fused update, the act is one kernel too (the same draws as below)
    TDM_TRY(tdm_dev_h2d(dev, s->act_obs, s->h_obs, (size_t)n * O * sizeof(float)));
    const float rho = s->cfg.noise_corr;
    TDM_TRY(tdm_sacf_act(dev, &s->fz, s->act_obs, n, explore ? &s->rng[1] : NULL, RS_ACT,
                         rho > 0.0f ? s->act_eps : NULL, rho, s->act_out));
    return tdm_dev_d2h(dev, s->h_act, s->act_out, (size_t)n * A * sizeof(float));
  }
#endif
  if (explore) {
    // the noise and the act counter's advance on the lane, beside the copy and the actor forward
    TDM_TRY(lane_fork(s, dev));
    const float rho = s->cfg.noise_corr;
    if (rho > 0.0f) {
      // AR(1): eps = rho eps + sqrt(1 - rho^2) z keeps each draw standard normal
      TDM_TRY(tdm_fill_normal(dev, s->act_z, (size_t)n * A, 0.0f, 1.0f, &s->rng[1], RS_ACT));
      TDM_TRY(tdm_axpby(dev, (size_t)n * A, sqrtf(1.0f - rho * rho), s->act_z, rho, s->act_eps));
    } else {
      TDM_TRY(tdm_fill_normal(dev, s->act_eps, (size_t)n * A, 0.0f, 1.0f, &s->rng[1], RS_ACT));
    }
    TDM_TRY(tdm_rng_advance(dev, &s->rng[1], 1));
    TDM_TRY(lane_back(s, dev));
  }
  TDM_TRY(tdm_dev_h2d(dev, s->act_obs, s->h_obs, (size_t)n * O * sizeof(float)));
  TDM_TRY(tdm_mlp_forward(s->actor, s->acts_act, s->act_obs, n, false, NULL, false));
  const float *head = s->acts_act->a[L - 1];  // (n, 2A)
  if (explore) TDM_TRY(lane_join(s, dev));
  TDM_TRY(tdm_sac_squash_fwd(dev, head, explore ? s->act_eps : NULL, s->act_out, NULL, n, A,
                             s->cfg.log_std_min, s->cfg.log_std_max));
  return tdm_dev_d2h(dev, s->h_act, s->act_out, (size_t)n * A * sizeof(float));
}

static tdm_status act_fn(void *p) {
  body_args *b = p;
  tdm_status st = act_body(b->s, b->dev, b->n, b->explore);
  if (st != TDM_OK && b->s->lane) tdm_dev_lane_abort(b->dev, b->s->lane);
  return st;
}

static tdm_status sac_act(tdm_agent *a, const float *obs, int n, bool explore, float *act_out) {
  sac *s = a->impl;
  tdm_dev *dev = a->dev;
  if (n < 1 || n > s->N)
    return TDM_FAIL(TDM_ERR_ARG, "sac act: %d observations, expected 1..%d (num_envs)", n, s->N);
  memcpy(s->h_obs, obs, (size_t)n * s->O * sizeof(float));
  if (dev->kind == TDM_DEV_CUDA && s->cfg.use_graph && n == s->N) {
    // the full batch (the training envs) replays a graph; other sizes launch plainly
    body_args b = {s, dev, n, explore, false, false};
    TDM_TRY(capture_once(dev, &s->act_graph[explore], act_fn, &b));
    TDM_TRY(tdm_graph_launch(dev, s->act_graph[explore]));
  } else {
    tdm_status st = act_body(s, dev, n, explore);
    if (st != TDM_OK && s->lane) tdm_dev_lane_abort(dev, s->lane);
    TDM_TRY(st);
  }
  TDM_TRY(tdm_dev_sync(dev));
  memcpy(act_out, s->h_act, (size_t)n * s->A * sizeof(float));
  return TDM_OK;
}

// Correlated noise restarts with each episode: an env whose episode ended in these (env)
// transitions gets a fresh standard normal state, so episodes do not share their first steps'
// noise. One draw of N x A at the act counter (stream RS_ACT_RESTART), which then advances; the
// ended envs' rows are copied from it. Model rollouts (synthetic transitions) are not env steps.
static tdm_status noise_restart(sac *s, tdm_dev *dev, const tdm_transition_batch *b) {
  if (s->cfg.noise_corr <= 0.0f || b->source == TDM_SRC_SYNTHETIC) return TDM_OK;
  const size_t A = (size_t)s->A;
  bool drawn = false;
  int run0 = -1, run1 = -1;  // ended env slots [run0, run1) not yet copied: one copy per run
  for (int i = 0; i <= b->n; i++) {
    const bool ends = i < b->n && tdm_transition_ends(b, i);
    int env = ends ? tdm_transition_stream(b, i) : -1;
    if (env >= s->N) env = -1;
    if (ends && !drawn) {  // the first ended env: one draw serves all of this step's
      TDM_TRY(
          tdm_fill_normal(dev, s->act_z, (size_t)s->N * A, 0.0f, 1.0f, &s->rng[1], RS_ACT_RESTART));
      TDM_TRY(tdm_rng_advance(dev, &s->rng[1], 1));
      drawn = true;
    }
    if (env >= 0 && env == run1) {  // extends the run
      run1++;
      continue;
    }
    if (run0 >= 0)
      TDM_TRY(tdm_dev_d2d(dev, s->act_eps + (size_t)run0 * A, s->act_z + (size_t)run0 * A,
                          (size_t)(run1 - run0) * A * sizeof(float)));
    run0 = env;
    run1 = env >= 0 ? env + 1 : -1;
  }
  return TDM_OK;
}

static tdm_status sac_observe(tdm_agent *a, const tdm_transition_batch *b) {
  sac *s = a->impl;
  TDM_TRY(tdm_replay_add(s->replay, b));
  a->n_observed += b->n;
  return noise_restart(s, a->dev, b);
}

// ---------------------------------------------------------------------------------------------
// checkpoint section: magic, header, device state (RNG counters, temperature and its Adam state),
// CRC-32 of header and state, then the networks (tdm_mlp_write) and optionally the replay.

static const char SAC_MAGIC[8] = {'T', 'D', 'M', 'S', 'A', 'C', 0, 1};
#define SAC_VERSION 1u
enum { SECT_REPLAY = 1, SECT_NOISE = 2 };  // sac_header.flags (bit 0 was with_replay's bool)

typedef struct {
  uint32_t version;
  int32_t obs_dim, act_dim, hidden, layers, act, ent_coef_auto;
  int32_t flags;  // SECT_REPLAY: the replay follows; SECT_NOISE: the noise state follows
  int64_t n_updates, n_observed;
} sac_header;

typedef struct {
  tdm_rng_ctr rng[2];
  float log_alpha, alpha_m, alpha_v;
  int32_t alpha_step;
} sac_state;

static tdm_status get_state(tdm_agent *a, sac_state *st) {
  sac *s = a->impl;
  tdm_dev *d = a->dev;
  memset(st, 0, sizeof *st);
  TDM_TRY(tdm_dev_d2h(d, st->rng, s->rng, sizeof st->rng));
  TDM_TRY(tdm_dev_d2h(d, &st->log_alpha, s->log_alpha, 4));
  TDM_TRY(tdm_dev_d2h(d, &st->alpha_m, s->alpha_m, 4));
  TDM_TRY(tdm_dev_d2h(d, &st->alpha_v, s->alpha_v, 4));
  TDM_TRY(tdm_dev_d2h(d, &st->alpha_step, s->alpha_step, 4));
  return tdm_dev_sync(d);
}

// With noise_corr > 0 the exploration noise is state (each env's AR(1) value): N x A floats and
// their CRC-32 after the networks. Its presence follows the configuration, which the checkpoint's
// configuration hash pins, so sections without it (noise_corr = 0) keep their layout.
static tdm_status noise_write(sac *s, tdm_dev *dev, FILE *f) {
  if (s->cfg.noise_corr <= 0.0f) return TDM_OK;
  size_t n = (size_t)s->N * s->A;
  float *h = malloc(n * sizeof(float));
  if (!h) return TDM_FAIL(TDM_ERR_OOM, "sac checkpoint: out of host memory for the noise state");
  tdm_status st = tdm_dev_d2h(dev, h, s->act_eps, n * sizeof(float));
  if (st == TDM_OK) st = tdm_dev_sync(dev);
  uint32_t crc = tdm_crc32(0, h, n * sizeof(float));
  if (st == TDM_OK && (fwrite(h, sizeof(float), n, f) != n || fwrite(&crc, 4, 1, f) != 1))
    st = TDM_FAIL(TDM_ERR_IO, "sac checkpoint: short write; disk full?");
  free(h);
  return st;
}

static tdm_status noise_read(sac *s, tdm_dev *dev, FILE *f, const char *what) {
  if (s->cfg.noise_corr <= 0.0f) return TDM_OK;
  size_t n = (size_t)s->N * s->A;
  float *h = malloc(n * sizeof(float));
  if (!h) return TDM_FAIL(TDM_ERR_OOM, "%s: out of host memory for the noise state", what);
  uint32_t crc;
  tdm_status st = TDM_OK;
  if (fread(h, sizeof(float), n, f) != n || fread(&crc, 4, 1, f) != 1)
    st = TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section truncated (exploration noise state)", what);
  else if (crc != tdm_crc32(0, h, n * sizeof(float)))
    st = TDM_FAIL(TDM_ERR_FORMAT,
                  "%s: SAC exploration noise checksum mismatch; the file is corrupt", what);
  for (size_t i = 0; st == TDM_OK && i < n; i++)
    if (!isfinite(h[i]))
      st = TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC exploration noise state holds a non-finite value",
                    what);
  if (st == TDM_OK) st = tdm_dev_h2d(dev, s->act_eps, h, n * sizeof(float));
  if (st == TDM_OK) st = tdm_dev_sync(dev);
  free(h);
  return st;
}

static tdm_status sac_write(tdm_agent *a, FILE *f, bool with_replay) {
  sac *s = a->impl;
  sac_header h;
  memset(&h, 0, sizeof h);
  h.version = SAC_VERSION;
  h.obs_dim = s->O;
  h.act_dim = s->A;
  h.hidden = s->cfg.hidden;
  h.layers = s->cfg.layers;
  h.act = (int32_t)s->cfg.act;
  h.ent_coef_auto = s->cfg.ent_coef_auto;
  h.flags = (with_replay ? SECT_REPLAY : 0) | (s->cfg.noise_corr > 0.0f ? SECT_NOISE : 0);
  h.n_updates = a->n_updates;
  h.n_observed = a->n_observed;
  sac_state st;
  TDM_TRY(get_state(a, &st));
  uint32_t crc = tdm_crc32(tdm_crc32(0, &h, sizeof h), &st, sizeof st);
  if (fwrite(SAC_MAGIC, 1, 8, f) != 8 || fwrite(&h, sizeof h, 1, f) != 1 ||
      fwrite(&st, sizeof st, 1, f) != 1 || fwrite(&crc, 4, 1, f) != 1)
    return TDM_FAIL(TDM_ERR_IO, "sac checkpoint: short write; disk full?");
  TDM_TRY(tdm_mlp_write(s->actor, f, true));
  TDM_TRY(tdm_mlp_write(s->critic, f, true));
  TDM_TRY(tdm_mlp_write(s->target, f, false));
  TDM_TRY(noise_write(s, a->dev, f));
  if (with_replay) {
    // byte length first, so a reader that does not want the replay can seek past it
    long at = ftell(f);
    uint64_t len = 0;
    if (at < 0 || fwrite(&len, 8, 1, f) != 1)
      return TDM_FAIL(TDM_ERR_IO, "sac checkpoint: the replay needs a seekable file");
    TDM_TRY(tdm_replay_write(s->replay, f));
    long end = ftell(f);
    len = (uint64_t)(end - at - 8);
    if (end < 0 || fseek(f, at, SEEK_SET) || fwrite(&len, 8, 1, f) != 1 || fseek(f, end, SEEK_SET))
      return TDM_FAIL(TDM_ERR_IO, "sac checkpoint: cannot patch the replay length");
  }
  return TDM_OK;
}

static tdm_status sac_read(tdm_agent *a, FILE *f, bool with_replay, const char *what) {
  sac *s = a->impl;
  tdm_dev *d = a->dev;
  if (!what) what = "checkpoint";
  char magic[8];
  sac_header h;
  sac_state st;
  uint32_t crc;
  if (fread(magic, 1, 8, f) != 8)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section truncated (no magic)", what);
  if (memcmp(magic, SAC_MAGIC, 6))
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: not a SAC agent section (bad magic)", what);
  if (fread(&h, sizeof h, 1, f) != 1 || fread(&st, sizeof st, 1, f) != 1 ||
      fread(&crc, 4, 1, f) != 1)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section truncated (header)", what);
  if (h.version != SAC_VERSION || magic[7] != SAC_MAGIC[7])
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section version %u, this build reads %u", what,
                    h.version, SAC_VERSION);
  if (crc != tdm_crc32(tdm_crc32(0, &h, sizeof h), &st, sizeof st))
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section checksum mismatch; the file is corrupt", what);
  if (h.obs_dim != s->O || h.act_dim != s->A || h.hidden != s->cfg.hidden ||
      h.layers != s->cfg.layers || h.act != (int32_t)s->cfg.act)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: SAC shape mismatch: file has obs %d act %d hidden %d x %d (%s), this "
                    "agent obs %d act %d hidden %d x %d (%s)",
                    what, h.obs_dim, h.act_dim, h.hidden, h.layers, tdm_act_name((tdm_act)h.act),
                    s->O, s->A, s->cfg.hidden, s->cfg.layers, tdm_act_name(s->cfg.act));
  if (!!(h.flags & SECT_NOISE) != (s->cfg.noise_corr > 0.0f))
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: the SAC section was written %s correlated exploration noise "
                    "(noise_corr %s 0) and this agent has noise_corr = %g",
                    what, h.flags & SECT_NOISE ? "with" : "without",
                    h.flags & SECT_NOISE ? ">" : "=", s->cfg.noise_corr);
  if (h.flags & ~(SECT_REPLAY | SECT_NOISE))
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section flags 0x%x unknown to this build", what,
                    (unsigned)h.flags);
  if (with_replay && !(h.flags & SECT_REPLAY))
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: the checkpoint holds no replay buffer (it was written "
                    "with save_replay = false)",
                    what);
  TDM_TRY(tdm_mlp_read(s->actor, f, true, what));
  TDM_TRY(tdm_mlp_read(s->critic, f, true, what));
  TDM_TRY(tdm_mlp_read(s->target, f, false, what));
  TDM_TRY(noise_read(s, d, f, what));
  if (h.flags & SECT_REPLAY) {
    uint64_t len;
    if (fread(&len, 8, 1, f) != 1)
      return TDM_FAIL(TDM_ERR_FORMAT, "%s: SAC section truncated (replay length)", what);
    if (with_replay) {
      TDM_TRY(tdm_replay_read(s->replay, f, what));
    } else if (fseek(f, (long)len, SEEK_CUR)) {
      return TDM_FAIL(TDM_ERR_FORMAT, "%s: cannot skip the replay section (%llu bytes)", what,
                      (unsigned long long)len);
    }
  }
  TDM_TRY(tdm_dev_h2d(d, s->rng, st.rng, sizeof st.rng));
  TDM_TRY(tdm_dev_h2d(d, s->log_alpha, &st.log_alpha, 4));
  TDM_TRY(tdm_dev_h2d(d, s->alpha_m, &st.alpha_m, 4));
  TDM_TRY(tdm_dev_h2d(d, s->alpha_v, &st.alpha_v, 4));
  TDM_TRY(tdm_dev_h2d(d, s->alpha_step, &st.alpha_step, 4));
  TDM_TRY(tdm_dev_sync(d));
  a->n_updates = h.n_updates;
  a->n_observed = h.n_observed;
  return TDM_OK;
}

bool tdm_sac_fused_active(tdm_agent *a) {
  sac *s = sac_of(a);
  return s && s->fused;
}

bool tdm_sac_fused_act_active(tdm_agent *a, int n) {
  sac *s = sac_of(a);
  return s && fused_act_fits(s, n);
}

const char *tdm_sac_update_path(tdm_agent *a) {
  sac *s = sac_of(a);
  if (!s) return NULL;
  if (a->dev->kind != TDM_DEV_CUDA) return "cpu";
  return s->fused ? "fused" : s->cfg.use_graph ? "graph" : "plain";
}

tdm_status tdm_sac_fused_profile(tdm_agent *a, bool on) {
  sac *s = sac_of(a);
  if (!s || !s->fused)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_sac_fused_profile: the agent's updates are not fused");
  if (on && !s->prof)
    TDM_TRY(tdm_dev_alloc(a->dev, 2 * (TDM_SACF_PROF + 1) * sizeof(uint64_t), (void **)&s->prof));
  if (s->prof)
    TDM_TRY(tdm_dev_memset(a->dev, s->prof, 0, 2 * (TDM_SACF_PROF + 1) * sizeof(uint64_t)));
  s->fz.prof = on ? (unsigned long long *)s->prof : NULL;
  drop_update_graphs(s);  // the captured launches hold the old prof pointer
  return TDM_OK;
}

tdm_status tdm_sac_fused_phases(tdm_agent *a, double *us, double *work, int max, int *n) {
  sac *s = sac_of(a);
  *n = 0;
  if (!s || !s->fused || !s->fz.prof)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_sac_fused_phases: profiling is off (tdm_sac_fused_profile)");
  uint64_t t[2 * (TDM_SACF_PROF + 1)];
  TDM_TRY(tdm_dev_d2h(a->dev, t, s->prof, sizeof t));
  TDM_TRY(tdm_dev_sync(a->dev));
  const uint64_t *done = t + TDM_SACF_PROF + 1;  // per phase: the last block's end of work
  int k = (int)t[TDM_SACF_PROF];
  for (int i = 1; i < k && *n < max; i++) {
    if (work) work[*n] = done[i - 1] > t[i - 1] ? (double)(done[i - 1] - t[i - 1]) * 1e-3 : 0.0;
    us[(*n)++] = (double)(t[i] - t[i - 1]) * 1e-3;
  }
  return TDM_OK;
}

#ifdef TDM_CUDA
// One network's buffers and geometry for the fused kernel.
static void fz_net(const tdm_mlp *m, tdm_sacf_net *n) {
  memset(n, 0, sizeof *n);
  n->p = m->params, n->g = m->grads, n->m = m->adam_m, n->v = m->adam_v;
  n->step = m->adam_step;
  for (int l = 0; l < m->spec.n_layers; l++) {
    n->w[l] = m->layers[l].w, n->b[l] = m->layers[l].b;
    n->in[l] = m->layers[l].in, n->out[l] = m->layers[l].out;
  }
}
#endif

// Set up the fused update when the device and the shapes allow it (s->fused stays false else).
static tdm_status fused_setup(sac *s, tdm_dev *dev) {
#ifdef TDM_CUDA
  const tdm_sac_cfg *c = &s->cfg;
  int grid = 0, pair = 0;
  if (dev->kind != TDM_DEV_CUDA || !c->use_graph || !c->fused_update ||
      s->A > TDM_SAC_FUSED_MAX_ACT || !tdm_sacf_supported(dev, &grid, &pair))
    return TDM_OK;
  tdm_sacf_args *f = &s->fz;
  memset(f, 0, sizeof *f);
  f->grid = grid, f->pair = pair;
  f->B = s->B, f->O = s->O, f->A = s->A, f->L = c->layers + 1, f->act = (int)c->act;
  f->lo = c->log_std_min, f->hi = c->log_std_max, f->gamma = c->gamma, f->tau = c->tau;
  f->target_entropy = s->target_entropy;
  f->lr = s->adam.lr, f->b1 = s->adam.beta1, f->b2 = s->adam.beta2, f->eps = s->adam.eps;
  f->wd = s->adam.weight_decay;
  f->ent_auto = c->ent_coef_auto;
  f->rs_sample = RS_SAMPLE, f->rs_eps = RS_EPS;
  fz_net(s->actor, &f->actor);
  fz_net(s->critic, &f->critic);
  f->target = s->target->params;
  f->log_alpha = s->log_alpha, f->g_log_alpha = s->g_log_alpha;
  f->alpha_m = s->alpha_m, f->alpha_v = s->alpha_v, f->alpha_step = s->alpha_step;
  tdm_replay_cols_of(s->replay, &s->batch, &f->cols);
  f->idx = s->batch.idx;
  f->size_dev = tdm_replay_size_dev(s->replay);
  f->rng = &s->rng[0];
  f->stats = s->stats;
  size_t n = tdm_sacf_scratch_floats(s->B, s->O, s->A, f->L, c->hidden);
  TDM_TRY(tdm_dev_alloc(dev, n * 4, &s->fz_mem));
  TDM_TRY(tdm_dev_memset(dev, s->fz_mem, 0, n * 4));
  tdm_sacf_carve(f, s->fz_mem, c->hidden);
  TDM_TRY(tdm_dev_alloc(dev, tdm_sacf_plan_bytes(grid, f->L), &s->fz_plan));
  f->plan = s->fz_plan;
  TDM_TRY(tdm_sacf_prepare(dev, f));
  s->fused = true;
  s->fused_act = tdm_sacf_act_setup(dev);
#else
  (void)s, (void)dev;
#endif
  return TDM_OK;
}

static const tdm_agent_ops SAC_OPS = {"sac",     sac_act,  sac_observe, sac_update,
                                      sac_write, sac_read, sac_destroy};

// ---------------------------------------------------------------------------------------------
// create

static size_t a64(size_t floats) {
  return (floats * 4 + 63) / 64 * 16;
}  // in floats

tdm_status tdm_sac_create(tdm_dev *dev, const tdm_sac_cfg *cfg, const tdm_agent_dims *dims,
                          uint64_t seed, tdm_agent **out) {
  *out = NULL;
  TDM_TRY(check_cfg(cfg, dims));
  tdm_status st;
  tdm_agent *a = calloc(1, sizeof *a);
  sac *s = calloc(1, sizeof *s);
  if (!a || !s) {
    free(a);
    free(s);
    return TDM_FAIL(TDM_ERR_OOM, "sac: out of host memory");
  }
  a->ops = &SAC_OPS;
  a->dev = dev;
  a->dims = *dims;
  a->impl = s;
  s->cfg = *cfg;
  s->seed = seed;
  const int O = dims->obs_dim, A = dims->act_dim, N = dims->num_envs, B = cfg->batch_size;
  s->O = O, s->A = A, s->N = N, s->B = B;
  s->target_entropy = cfg->target_entropy_auto ? -(float)A : cfg->target_entropy;
  s->adam = tdm_adam_defaults();
  s->adam.lr = cfg->lr;
  if (dev->kind == TDM_DEV_CUDA && cfg->tf32) dev->tf32 = true;

  tdm_replay_cfg rc = {O, A, cfg->buffer_size, N, N, cfg->max_seq_rows};
  TDM_TRYG(tdm_replay_create(dev, &rc, &s->replay));
  int batch_rows = B > cfg->max_seq_rows ? B : cfg->max_seq_rows;
  TDM_TRYG(tdm_replay_batch_create(s->replay, batch_rows, &s->batch));

  tdm_mlp_spec sa = tdm_mlp_spec_make(O, cfg->hidden, cfg->layers, 2 * A, 1, cfg->act);
  tdm_mlp_spec sq = tdm_mlp_spec_make(O + A, cfg->hidden, cfg->layers, 1, 2, cfg->act);
  TDM_TRYG(tdm_mlp_create(dev, &sa, &s->actor));
  TDM_TRYG(tdm_mlp_create(dev, &sq, &s->critic));
  TDM_TRYG(tdm_mlp_create(dev, &sq, &s->target));
  TDM_TRYG(tdm_mlp_init(s->actor, seed * 4 + 1));
  TDM_TRYG(tdm_mlp_init(s->critic, seed * 4 + 2));
  TDM_TRYG(tdm_mlp_init(s->target, seed * 4 + 3));
  TDM_TRYG(tdm_mlp_copy_params(s->target, s->critic));
  TDM_TRYG(tdm_mlp_acts_create(s->actor, 2 * B, &s->acts_actor));
  // stacking saves launches on one stream; with a second stream the unstacked actor's obs half
  // runs off the critical path instead (H200, bench sac: 167 us unstacked vs 177 us stacked)
  s->stacked = dev->kind == TDM_DEV_CUDA && cfg->graph_streams < 2;
  TDM_TRYG(tdm_mlp_acts_create(s->actor, N, &s->acts_act));
  TDM_TRYG(tdm_mlp_acts_create(s->critic, B, &s->acts_critic));
  TDM_TRYG(tdm_mlp_acts_create(s->target, B, &s->acts_target));
  // the second stream's events, handle and workspace exist before any capture
  if (cfg->graph_streams >= 2) TDM_TRYG(tdm_dev_lane_create(dev, &s->lane));
  // the MLP backwards' weight gradients beside their input-gradient chains: a lane of their own
  // (the critic backward runs while the update's lane is forked); the critic's and the actor's
  // backwards never overlap, so they share it
  if (cfg->graph_streams >= 2) {
    TDM_TRYG(tdm_dev_lane_create(dev, &s->mlp_lane));
    TDM_TRYG(tdm_mlp_set_lane(s->critic, s->mlp_lane));
    TDM_TRYG(tdm_mlp_set_lane(s->actor, s->mlp_lane));
  }

  // scratch: one allocation carved into 64-byte aligned pieces
  size_t nB = (size_t)B, nN = (size_t)N, W = (size_t)(O + A);
  struct {
    float **p;
    size_t n;  // floats
  } piece[] = {
      {&s->eps_next, 2 * nB * A},
      {&s->logp_next, nB},
      {&s->xq_next, nB * W},
      {&s->y, nB},
      {&s->xq, nB * W},
      {&s->xq_pi, nB * W},
      {&s->dq, 2 * nB},
      {&s->a_pi, nB * A},
      {&s->logp, nB},
      {&s->dlogp, nB},
      {&s->dxq, nB * W},
      {&s->dhead, 2 * nB * 2 * A},
      {&s->act_obs, nN * O},
      {&s->act_eps, nN * A},
      {&s->act_z, nN * A},
      {&s->act_out, nN * A},
      {&s->log_alpha, 1},
      {&s->g_log_alpha, 1},
      {&s->alpha_m, 1},
      {&s->alpha_v, 1},
      {&s->stats, TDM_SAC_ST_N},
      {(float **)&s->alpha_step, 1},
      {(float **)&s->adam_sync, 1},
      {(float **)&s->rng, 2 * sizeof(tdm_rng_ctr) / sizeof(float)},
  };
  const int np = (int)(sizeof piece / sizeof piece[0]);
  size_t total = 0;
  for (int i = 0; i < np; i++) total += a64(piece[i].n);
  TDM_TRYG(tdm_dev_alloc(dev, total * 4, &s->mem));
  TDM_TRYG(tdm_dev_memset(dev, s->mem, 0, total * 4));
  float *p = s->mem;
  for (int i = 0; i < np; i++) {
    *piece[i].p = p;
    p += a64(piece[i].n);
  }
  size_t hfl = a64(nN * O) + a64(nN * A) + a64(TDM_SAC_ST_N);
  TDM_TRYG(tdm_host_alloc(dev, hfl * 4, (void **)&s->h_obs));
  s->h_act = s->h_obs + a64(nN * O);
  s->h_stats = s->h_act + a64(nN * A);

  // initial device state: log_alpha, RNG counters
  sac_state init;
  memset(&init, 0, sizeof init);
  init.rng[0].seed = init.rng[1].seed = seed;
  init.log_alpha = logf(cfg->ent_coef_init);
  TDM_TRYG(tdm_dev_h2d(dev, s->rng, init.rng, sizeof init.rng));
  TDM_TRYG(tdm_dev_h2d(dev, s->log_alpha, &init.log_alpha, 4));
  // correlated exploration noise starts from its stationary distribution (standard normal)
  if (cfg->noise_corr > 0.0f)
    TDM_TRYG(tdm_fill_normal(dev, s->act_eps, nN * A, 0.0f, 1.0f, &s->rng[1], RS_ACT_INIT));
  TDM_TRYG(fused_setup(s, dev));
  TDM_TRYG(tdm_dev_sync(dev));
  *out = a;
  return TDM_OK;
fail:
  sac_destroy(a);
  return st;
}

tdm_status tdm_sac_set_stacked_actor(tdm_agent *a, bool on) {
  sac *s = sac_of(a);
  if (!s) return TDM_FAIL(TDM_ERR_ARG, "tdm_sac_set_stacked_actor: not a SAC agent");
  if (s->stacked != on) drop_update_graphs(s);  // captured updates bake the old choice in
  s->stacked = on;
  return TDM_OK;
}

tdm_replay *tdm_sac_replay(tdm_agent *a) {
  sac *s = sac_of(a);
  return s ? s->replay : NULL;
}
tdm_mlp *tdm_sac_actor(tdm_agent *a) {
  sac *s = sac_of(a);
  return s ? s->actor : NULL;
}
tdm_mlp *tdm_sac_critic(tdm_agent *a) {
  sac *s = sac_of(a);
  return s ? s->critic : NULL;
}
tdm_mlp *tdm_sac_critic_target(tdm_agent *a) {
  sac *s = sac_of(a);
  return s ? s->target : NULL;
}
float *tdm_sac_log_alpha(tdm_agent *a) {
  sac *s = sac_of(a);
  return s ? s->log_alpha : NULL;
}
