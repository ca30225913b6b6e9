// The training loop: collect, store, update, evaluate, log, checkpoint (include/tandem/run.h).
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tandem/run.h"
#include "train_internal.h"

#define RECENT 20  // episodes averaged in "recent return"

// Trainer state saved in checkpoints (fixed-size types; the per-slot episode numbers follow).
typedef struct {
  int64_t step, episodes, next_log, next_eval, next_ckpt, last_eval_step;
  double upd_credit, wall_s, last_eval_mean, last_eval_std;
  double recent[RECENT];
  int32_t n_recent, recent_pos, num_envs, reserved;
  tdm_rng explore;
} trainer_state;

struct tdm_trainer {
  const tdm_config *cfg;
  tdm_run_opts opts;
  uint32_t cfg_hash;
  char *cfg_text;  // resolved configuration (stored in checkpoints)
  tdm_dev *dev;
  tdm_env *env;
  tdm_env *eval_env;  // evaluation envs, made at the first evaluation (NULL before)
  tdm_agent *agent;
  int N, O, A;
  char run_dir[600], ckpt_dir[640];
  FILE *metrics, *evalf;
  // host buffers
  float *obs, *next_obs, *act, *reward;  // (N, O), (N, O), (N, A), (N)
  uint8_t *term, *trunc, *need_reset;    // (N) each
  uint8_t *mask;                         // (N)
  int64_t *ep_num;                       // (N) episodes started in each env slot
  uint64_t *reset_seed;                  // (N) reset-noise seeds of the slots being reset
  trainer_state s;
  tdm_agent_stats stats;
  bool have_stats;
  bool replay_empty;  // no transition stored yet: a new run, or a resume without the replay
  int lock_fd;        // the run directory, opened and flock'ed while this trainer uses it (-1)
  char last_ckpt[700];
  // progress
  double t_start, t_log, t_progress;
  int64_t progress_step;  // step of the last line printed to a non-terminal (-1: none)
  double eval_s;          // seconds spent evaluating in this session (not saved)
  int64_t step_log, step_start;
};

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Reset-noise seed of episode k of env slot i (never TDM_ENV_CONTINUE).
static uint64_t episode_seed(uint64_t seed, int i, int64_t k) {
  uint64_t s = mix64(mix64(seed ^ 0x5eedull) ^ mix64((uint64_t)i * 0x100000001b3ull + 17) ^
                     (uint64_t)k * 0xd6e8feb86659fd93ull);
  return s == TDM_ENV_CONTINUE ? s - 1 : s;
}

tdm_agent_cfg tdm_run_agent_cfg(const tdm_train_cfg *v) {
  tdm_agent_cfg a = tdm_agent_cfg_defaults();
  a.sac.lr = (float)v->lr;
  a.sac.batch_size = v->batch_size;
  a.sac.tau = (float)v->tau;
  a.sac.gamma = (float)v->gamma;
  a.sac.hidden = v->hidden;
  a.sac.layers = v->layers;
  int act = tdm_act_from_name(v->activation);  // the schema allows only known names
  if (act > 0) a.sac.act = (tdm_act)act;
  a.sac.buffer_size = v->buffer_size;
  a.sac.learning_starts = v->learning_starts;
  a.sac.utd = (float)v->utd;
  a.sac.policy_delay = v->policy_delay;
  a.sac.target_update_interval = v->target_update_interval;
  a.sac.ent_coef_auto = v->ent_coef_auto;
  a.sac.ent_coef_init = (float)v->ent_coef_init;
  a.sac.target_entropy_auto = v->target_entropy_auto;
  a.sac.target_entropy = (float)v->target_entropy;
  a.sac.noise_corr = (float)v->noise_corr;
  a.sac.use_graph = v->use_graph;
  a.sac.tf32 = v->tf32;
  a.sac.fused_update = v->fused_update;
  a.sac.graph_streams = v->graph_streams;
  return a;
}

// Evaluation runs up to this many episodes at once. The agent is sized for act batches of
// max(num_envs, EVAL_BATCH) whatever eval_episodes is, so that eval_episodes may change on resume
// without changing the agent's (and its replay buffer's) shapes.
#define EVAL_BATCH 16

tdm_status tdm_run_make_agent(const tdm_config *cfg, tdm_dev *dev, const tdm_env_spec *spec,
                              tdm_agent **out) {
  const tdm_train_cfg *v = &cfg->v;
  tdm_agent_cfg ac = tdm_run_agent_cfg(v);
  tdm_agent_dims dims = {spec->obs_dim, spec->act_dim, v->num_envs};
  if (dims.num_envs < EVAL_BATCH) dims.num_envs = EVAL_BATCH;
  return tdm_agent_create(v->agent_name, dev, &ac, &dims, (uint64_t)v->seed, out);
}

// Env group of cfg with a task checked against the registry.
tdm_status tdm_run_make_env(const tdm_config *cfg, int n, tdm_pool *pool, tdm_env **out) {
  tdm_status st = tdm_env_create(cfg->v.env_task, n, tdm_config_env_group(cfg), pool, out);
  // name the task's line when the task itself was refused (a bad task key names its own line)
  if (st == TDM_ERR_ARG || st == TDM_ERR_UNSUPPORTED) {
    const config_setting_t *t = config_lookup(&cfg->lc, "env.task");
    if (t && config_setting_source_file(t))
      return tdm_adderr(st, "%s:%u: env.task = \"%s\": ", config_setting_source_file(t),
                        config_setting_source_line(t), cfg->v.env_task);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// evaluation

int tdm_evaluate_num_envs(const tdm_agent *agent, int episodes) {
  return episodes < agent->dims.num_envs ? episodes : agent->dims.num_envs;
}

tdm_status tdm_evaluate_env(tdm_agent *agent, tdm_env *env, int episodes, uint64_t seed,
                            double *mean, double *std) {
  if (episodes < 1)
    return TDM_FAIL(TDM_ERR_ARG, "evaluate: episodes = %d, expected >= 1", episodes);
  const int n = tdm_evaluate_num_envs(agent, episodes);
  if (tdm_env_num(env) != n)
    return TDM_FAIL(TDM_ERR_ARG,
                    "evaluate: the env has %d instances, an evaluation of %d episodes by this "
                    "agent runs %d at once (create it with tdm_evaluate_num_envs instances)",
                    tdm_env_num(env), episodes, n);
  const tdm_env_spec *sp = tdm_env_get_spec(env);
  int O = sp->obs_dim, A = sp->act_dim;
  if (O != agent->dims.obs_dim || A != agent->dims.act_dim)
    return TDM_FAIL(TDM_ERR_ARG,
                    "evaluate: env %s has obs_dim %d, act_dim %d; the agent has %d, %d (make the "
                    "env from the agent's configuration)",
                    sp->name, O, A, agent->dims.obs_dim, agent->dims.act_dim);
  tdm_status st = TDM_OK;
  float *obs = malloc(sizeof(float) * (size_t)n * O), *act = malloc(sizeof(float) * (size_t)n * A);
  float *rew = malloc(sizeof(float) * (size_t)n);
  uint8_t *term = malloc((size_t)n), *trunc = malloc((size_t)n), *mask = malloc((size_t)n);
  int *left = malloc(sizeof(int) * (size_t)n);  // episodes still to run in each slot
  double *ret = malloc(sizeof(double) * (size_t)episodes);
  if (!obs || !act || !rew || !term || !trunc || !mask || !left || !ret) {
    st = TDM_FAIL(TDM_ERR_OOM, "evaluate: out of host memory");
    goto done;
  }
  for (int i = 0; i < n; i++) left[i] = episodes / n + (i < episodes % n);
  int got = 0;
  TDM_TRYG(tdm_env_reset(env, seed == TDM_ENV_CONTINUE ? 0 : seed, NULL, obs));
  while (got < episodes) {
    TDM_TRYG(tdm_agent_act(agent, obs, n, false, act));
    TDM_TRYG(tdm_env_step(env, act, obs, rew, term, trunc));
    const double *er = tdm_env_episode_return(env);
    int any = 0;
    for (int i = 0; i < n; i++) {
      mask[i] = term[i] || trunc[i];
      any |= mask[i];
      if (mask[i] && left[i] > 0) {
        ret[got++] = er[i];
        left[i]--;
      }
    }
    if (any && got < episodes) TDM_TRYG(tdm_env_reset(env, TDM_ENV_CONTINUE, mask, obs));
  }
  double m = 0, v = 0;
  for (int i = 0; i < episodes; i++) m += ret[i];
  m /= episodes;
  for (int i = 0; i < episodes; i++) v += (ret[i] - m) * (ret[i] - m);
  *mean = m;
  *std = sqrt(v / episodes);
fail:
done:
  free(obs), free(act), free(rew), free(term), free(trunc), free(mask), free(left), free(ret);
  return st;
}

tdm_status tdm_evaluate(tdm_agent *agent, const tdm_config *cfg, tdm_pool *pool, int episodes,
                        uint64_t seed, double *mean, double *std) {
  if (episodes < 1)
    return TDM_FAIL(TDM_ERR_ARG, "evaluate: episodes = %d, expected >= 1", episodes);
  tdm_env *env = NULL;
  TDM_TRY(tdm_run_make_env(cfg, tdm_evaluate_num_envs(agent, episodes), pool, &env));
  tdm_status st = tdm_evaluate_env(agent, env, episodes, seed, mean, std);
  tdm_env_destroy(env);
  return st;
}

// ---------------------------------------------------------------------------------------------
// run directory files

static tdm_status open_csv(const char *path, const char *header, bool append, FILE **out) {
  bool exists = access(path, F_OK) == 0;
  FILE *f = fopen(path, append ? "a" : "w");
  if (!f) return TDM_FAIL(TDM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  if (!append || !exists) fprintf(f, "%s\n", header);
  fflush(f);
  *out = f;
  return TDM_OK;
}

// Keep the header and the rows whose first column (step) is <= step (atomic rewrite).
static tdm_status trim_csv(const char *path, int64_t step) {
  FILE *in = fopen(path, "r");
  if (!in) return TDM_OK;  // opened (and created) later
  tdm_afile a;
  tdm_status st = tdm_afile_open(&a, path);
  if (st != TDM_OK) {
    fclose(in);
    return st;
  }
  char line[4096];
  bool first = true;
  while (fgets(line, sizeof line, in)) {
    if (!first && strtoll(line, NULL, 10) > step) continue;
    first = false;
    fputs(line, a.f);
  }
  fclose(in);
  return tdm_afile_commit(&a);
}

static const char *METRICS_HEADER =
    "step,episodes,updates,recent_return,critic_loss,actor_loss,alpha,entropy,q_mean,steps_per_s,"
    "wall_s";
static const char *EVAL_HEADER = "step,mean,std,episodes";

static double recent_mean(const trainer_state *s) {
  if (s->n_recent == 0) return NAN;
  double m = 0;
  for (int i = 0; i < s->n_recent; i++) m += s->recent[i];
  return m / s->n_recent;
}

static double wall_now(const tdm_trainer *t) {
  return t->s.wall_s + (tdm_now() - t->t_start);
}

// s as a JSON string (quotes, backslashes and control characters escaped).
static void put_json(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static tdm_status write_summary(tdm_trainer *t, bool interrupted) {
  char path[700];
  snprintf(path, sizeof path, "%s/summary.json", t->run_dir);
  tdm_afile a;
  TDM_TRY(tdm_afile_open(&a, path));
  const tdm_train_cfg *v = &t->cfg->v;
  double wall = wall_now(t);
  FILE *f = a.f;
  fprintf(f, "{\n  \"name\": ");
  put_json(f, v->name);
  fprintf(f, ",\n  \"seed\": %lld,\n  \"task\": ", (long long)v->seed);
  put_json(f, v->env_task);
  fprintf(f, ",\n  \"agent\": ");
  put_json(f, v->agent_name);
  fprintf(f, ",\n  \"device\": ");
  put_json(f, t->dev->name);
  const char *path_name = tdm_sac_update_path(t->agent);
  fprintf(f, ",\n  \"update\": ");
  put_json(f, path_name ? path_name : "");
  fprintf(f, ",\n  \"steps\": %lld,\n  \"total_steps\": %lld,\n", (long long)t->s.step,
          (long long)v->total_steps);
  fprintf(f, "  \"episodes\": %lld,\n  \"updates\": %lld,\n  \"wall_s\": %.3f,\n",
          (long long)t->s.episodes, (long long)t->agent->n_updates, wall);
  fprintf(f, "  \"steps_per_s\": %.1f,\n  \"interrupted\": %s,\n",
          wall > 0 ? t->s.step / wall : 0.0, interrupted ? "true" : "false");
  // this session alone, without the time spent in evaluations (the training loop's own rate)
  double sess = tdm_now() - t->t_start, train_s = sess - t->eval_s;
  fprintf(f, "  \"session_eval_s\": %.3f,\n  \"session_train_steps_per_s\": %.1f,\n", t->eval_s,
          train_s > 0 ? (double)(t->s.step - t->step_start) / train_s : 0.0);
  if (t->s.last_eval_step >= 0)
    fprintf(
        f, "  \"final_eval\": {\"step\": %lld, \"mean\": %.6g, \"std\": %.6g, \"episodes\": %d},\n",
        (long long)t->s.last_eval_step, t->s.last_eval_mean, t->s.last_eval_std, v->eval_episodes);
  else
    fprintf(f, "  \"final_eval\": null,\n");
  fprintf(f, "  \"checkpoint\": ");
  put_json(f, t->last_ckpt);
  fprintf(f, "\n}\n");
  return tdm_afile_commit(&a);
}

// ---------------------------------------------------------------------------------------------
// checkpoints

static size_t state_bytes(const tdm_trainer *t) {
  return sizeof(trainer_state) + sizeof(int64_t) * (size_t)t->N;
}

static tdm_status save_checkpoint(tdm_trainer *t) {
  size_t n = state_bytes(t);
  uint8_t *blob = malloc(n);
  if (!blob) return TDM_FAIL(TDM_ERR_OOM, "checkpoint: out of memory");
  trainer_state s = t->s;
  s.wall_s = wall_now(t);
  s.num_envs = t->N;
  memcpy(blob, &s, sizeof s);
  memcpy(blob + sizeof s, t->ep_num, sizeof(int64_t) * (size_t)t->N);
  tdm_ckpt_info info = {0};
  info.version = TDM_CKPT_VERSION;
  info.config_hash = t->cfg_hash;
  info.obs_dim = t->O;
  info.act_dim = t->A;
  info.num_envs = t->N;
  info.with_replay = t->cfg->v.save_replay;
  info.step = t->s.step;
  info.episodes = t->s.episodes;
  info.updates = t->agent->n_updates;
  info.wall_s = s.wall_s;
  char path[700];
  tdm_ckpt_path(t->ckpt_dir, t->s.step, path, sizeof path);
  tdm_status st = tdm_ckpt_write(path, &info, t->cfg_text, blob, n, t->agent);
  free(blob);
  TDM_TRY(st);
  snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", path);
  return tdm_ckpt_prune(t->ckpt_dir, t->cfg->v.keep_checkpoints);
}

// The most update credit a checkpoint can hold: below 1 after a step's updates, but utd x num_envs
// (at most 1024 x 4096, the config's limits) after an overlap_update run's first step, which
// updates nothing.
#define MAX_CREDIT (1024.0 * 4096.0 + 1.0)

// What in a checkpoint's trainer state (s, then the per-slot episode numbers at ep, N int64) this
// build would misuse, as a reason, or NULL. The CRC guards against damage; this guards against a
// file written by another build or edited (the counters index arrays and bound loops).
static const char *state_problem(const trainer_state *s, const uint8_t *ep, int N,
                                 const tdm_ckpt_info *info, char *buf, size_t cap) {
  if (s->num_envs != N)
    snprintf(buf, cap, "num_envs %d, the header says %d", s->num_envs, N);
  else if (s->step < 0 || s->step != info->step)
    snprintf(buf, cap, "step %lld, the header says %lld", (long long)s->step,
             (long long)info->step);
  else if (s->episodes < 0 || s->episodes != info->episodes)
    snprintf(buf, cap, "episodes %lld, the header says %lld", (long long)s->episodes,
             (long long)info->episodes);
  else if (s->n_recent < 0 || s->n_recent > RECENT || s->recent_pos < 0 || s->recent_pos >= RECENT)
    snprintf(buf, cap, "recent-return ring at %d with %d entries (at most %d)", s->recent_pos,
             s->n_recent, RECENT);
  else if (!(s->upd_credit >= 0.0 && s->upd_credit <= MAX_CREDIT))
    snprintf(buf, cap, "update credit %g (expected in [0, %g])", s->upd_credit, MAX_CREDIT);
  else {
    for (int i = 0; i < N; i++) {
      int64_t e;
      memcpy(&e, ep + sizeof e * (size_t)i, sizeof e);
      if (e < 0) {
        snprintf(buf, cap, "episode number %lld in env slot %d", (long long)e, i);
        return buf;
      }
    }
    return NULL;
  }
  return buf;
}

// Load the newest checkpoint of the run directory; refuses a mismatch before touching anything.
static tdm_status load_checkpoint(tdm_trainer *t) {
  char path[700];
  TDM_TRY(tdm_checkpoint_latest(t->run_dir, path, sizeof path));
  tdm_ckpt_info info;
  char *text = NULL;
  void *blob = NULL;
  size_t blob_n = 0;
  tdm_status rs = tdm_ckpt_read(path, &info, &text, &blob, &blob_n, NULL, false);
  if (rs != TDM_OK) {
    long long *steps = NULL;
    int n = 0;
    if (tdm_ckpt_list(t->ckpt_dir, &steps, &n) == TDM_OK && n > 1) {
      char older[700];
      tdm_ckpt_path(t->ckpt_dir, steps[n - 2], older, sizeof older);
      free(steps);
      return tdm_adderr(rs,
                        "(nothing was changed; %d older checkpoint(s) exist, the newest is %s: "
                        "move the refused file away to resume from it) ",
                        n - 1, older);
    }
    free(steps);
    return rs;
  }
  tdm_status st = TDM_OK;
  // The hash covers the resolved text of this build (key help included). A checkpoint of another
  // build (a key added since, at its default; a help text reworded) has another hash for the same
  // settings: its configuration is read back with this build and compared instead.
  bool same = info.config_hash == t->cfg_hash;
  char diff[512] = "unknown difference";
  if (!same) {
    tdm_config old;
    if (tdm_config_load_string(&old, text, path, NULL, 0) == TDM_OK)
      same = !tdm_config_first_diff(&old, t->cfg, diff, sizeof diff);
    else
      snprintf(diff, sizeof diff, "its configuration does not load in this build: %s",
               tdm_errmsg());
    tdm_config_free(&old);
  }
  if (!same) {
    char may[512] = "";
    int nk;
    const tdm_cfg_key *keys = tdm_config_schema(&nk);
    for (int i = 0; i < nk; i++) {
      if (!keys[i].resume_may_change) continue;
      size_t l = strlen(may);
      snprintf(may + l, sizeof may - l, "%s%s", l ? ", " : "", keys[i].path);
    }
    st = TDM_FAIL(TDM_ERR_CONFIG,
                  "checkpoint %s was written with a different configuration (hash %08x, now "
                  "%08x): %s (checkpoint vs now); only %s may change on resume",
                  path, info.config_hash, t->cfg_hash, diff, may);
  } else if (info.obs_dim != t->O || info.act_dim != t->A || info.num_envs != t->N ||
             blob_n != state_bytes(t)) {
    st = TDM_FAIL(TDM_ERR_FORMAT,
                  "checkpoint %s has shapes obs %d, act %d, envs %d (state %zu bytes); this run "
                  "has obs %d, act %d, envs %d (state %zu bytes)",
                  path, info.obs_dim, info.act_dim, info.num_envs, blob_n, t->O, t->A, t->N,
                  state_bytes(t));
  }
  trainer_state s;
  if (st == TDM_OK) {
    memcpy(&s, blob, sizeof s);
    char why[160];
    const char *bad =
        state_problem(&s, (const uint8_t *)blob + sizeof s, t->N, &info, why, sizeof why);
    if (bad)
      st = TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s: the trainer state is inconsistent: %s (the file passes its "
                    "CRC, so another build wrote it or it was edited); use another checkpoint",
                    path, bad);
  }
  if (st == TDM_OK) st = tdm_ckpt_read(path, &info, NULL, NULL, NULL, t->agent, true);
  if (st == TDM_OK) {
    t->s = s;
    t->replay_empty = !info.with_replay;
    memcpy(t->ep_num, (uint8_t *)blob + sizeof s, sizeof(int64_t) * (size_t)t->N);
    snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", path);
  }
  free(text);
  free(blob);
  return st;
}

// ---------------------------------------------------------------------------------------------
// create / destroy

// Take the run directory for this trainer (an exclusive flock on the directory itself, released
// when the process exits): a second run or resume of the same directory is refused instead of
// both writing its files. Where the file system has no locks (some network mounts), warn and go on.
static tdm_status lock_run_dir(tdm_trainer *t) {
  if (t->lock_fd >= 0) return TDM_OK;
  int fd = open(t->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return TDM_FAIL(TDM_ERR_IO, "cannot open run directory %s: %s", t->run_dir, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      close(fd);
      return TDM_FAIL(TDM_ERR_ARG,
                      "run directory %s is in use by another tandem process (a run or resume of "
                      "it has not finished); wait for it or stop it",
                      t->run_dir);
    }
    tdm_warn_once("run.lock",
                  "cannot lock run directory %s (%s); not guarding it against a "
                  "second process",
                  t->run_dir, strerror(e));
  }
  t->lock_fd = fd;
  return TDM_OK;
}

void tdm_trainer_destroy(tdm_trainer *t) {
  if (!t) return;
  if (t->lock_fd >= 0) close(t->lock_fd);
  if (t->metrics) fclose(t->metrics);
  if (t->evalf) fclose(t->evalf);
  tdm_agent_destroy(t->agent);
  tdm_env_destroy(t->env);
  tdm_env_destroy(t->eval_env);
  tdm_dev_close(t->dev);
  free(t->obs), free(t->next_obs), free(t->act), free(t->reward);
  free(t->term), free(t->trunc), free(t->need_reset), free(t->mask), free(t->ep_num);
  free(t->reset_seed);
  free(t->cfg_text);
  free(t);
}

tdm_agent *tdm_trainer_agent(tdm_trainer *t) {
  return t->agent;
}

// The next event step of an interval `every` (<= 0: never) after a resume at step: next as saved,
// unless the interval shrank below it or was off, then the next multiple of every after step.
static int64_t reschedule(int64_t next, int64_t step, int64_t every) {
  if (every <= 0) return INT64_MAX;
  if (next == INT64_MAX || next - step > every) return (step / every + 1) * every;
  return next;
}

tdm_status tdm_trainer_create(const tdm_config *cfg, const tdm_run_opts *opts, tdm_trainer **out) {
  *out = NULL;
  const tdm_train_cfg *v = &cfg->v;
  tdm_trainer *t = calloc(1, sizeof *t);
  if (!t) return TDM_FAIL(TDM_ERR_OOM, "trainer: out of memory");
  tdm_status st = TDM_OK;
  t->lock_fd = -1;
  t->cfg = cfg;
  if (opts) t->opts = *opts;
  t->cfg_hash = tdm_config_hash(cfg);
  {
    size_t n = 0;
    FILE *f = open_memstream(&t->cfg_text, &n);
    if (!f) {
      st = TDM_FAIL(TDM_ERR_OOM, "trainer: out of memory");
      goto fail;
    }
    tdm_config_write(cfg, f);
    fclose(f);
  }
  if (t->opts.resume_dir)
    snprintf(t->run_dir, sizeof t->run_dir, "%s", t->opts.resume_dir);
  else
    snprintf(t->run_dir, sizeof t->run_dir, "%s/%s/%lld", v->run_dir, v->name, (long long)v->seed);
  snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", t->run_dir);

  // a new run must not clobber an existing one
  if (!t->opts.resume_dir) {
    long long *steps = NULL;
    int n = 0;
    TDM_TRYG(tdm_ckpt_list(t->ckpt_dir, &steps, &n));
    free(steps);
    if (n > 0) {
      st = TDM_FAIL(TDM_ERR_ARG,
                    "run directory %s already holds %d checkpoint(s) of an earlier run: "
                    "continue it with `tandem train --resume %s`, start over with `rm -r %s`, or "
                    "pick another name or seed (-s seed=1)",
                    t->run_dir, n, t->run_dir, t->run_dir);
      goto fail;
    }
  }

  TDM_TRYG(tdm_dev_open(v->device, v->threads, &t->dev));
  t->N = v->num_envs;
  TDM_TRYG(tdm_run_make_env(cfg, t->N, t->dev->pool, &t->env));
  const tdm_env_spec *sp = tdm_env_get_spec(t->env);
  t->O = sp->obs_dim;
  t->A = sp->act_dim;
  TDM_TRYG(tdm_run_make_agent(cfg, t->dev, sp, &t->agent));
  t->replay_empty = true;  // until the first observe, or a resume with the replay
  size_t N = (size_t)t->N, O = (size_t)t->O, A = (size_t)t->A;
  t->obs = malloc(sizeof(float) * N * O);
  t->next_obs = malloc(sizeof(float) * N * O);
  t->act = malloc(sizeof(float) * N * A);
  t->reward = malloc(sizeof(float) * N);
  t->term = calloc(N, 1);
  t->trunc = calloc(N, 1);
  t->need_reset = calloc(N, 1);
  t->mask = calloc(N, 1);
  t->ep_num = calloc(N, sizeof(int64_t));
  t->reset_seed = calloc(N, sizeof(uint64_t));
  if (!t->obs || !t->next_obs || !t->act || !t->reward || !t->term || !t->trunc || !t->need_reset ||
      !t->mask || !t->ep_num || !t->reset_seed) {
    st = TDM_FAIL(TDM_ERR_OOM, "trainer: out of host memory for %d envs", t->N);
    goto fail;
  }

  // state: fresh, or from the checkpoint (checked before anything is written)
  memset(&t->s, 0, sizeof t->s);
  tdm_rng_init(&t->s.explore, (uint64_t)v->seed, 0xE4);
  t->s.next_log = v->log_every;
  t->s.next_eval = v->eval_every > 0 ? v->eval_every : INT64_MAX;
  t->s.next_ckpt = v->checkpoint_every > 0 ? v->checkpoint_every : INT64_MAX;
  t->s.last_eval_step = -1;
  t->s.last_eval_mean = t->s.last_eval_std = NAN;
  if (t->opts.resume_dir) {
    TDM_TRYG(lock_run_dir(t));
    TDM_TRYG(load_checkpoint(t));
    // intervals may have changed on resume: schedule from the current step
    t->s.next_eval = reschedule(t->s.next_eval, t->s.step, v->eval_every);
    t->s.next_ckpt = reschedule(t->s.next_ckpt, t->s.step, v->checkpoint_every);
    t->s.next_log = reschedule(t->s.next_log, t->s.step, v->log_every);
  }
  for (int i = 0; i < t->N; i++) t->need_reset[i] = 1;  // every slot starts a fresh episode

  // run directory files (only now: a refused resume leaves the directory untouched)
  TDM_TRYG(tdm_mkdirs(t->ckpt_dir));
  TDM_TRYG(lock_run_dir(t));
  char path[700];
  snprintf(path, sizeof path, "%s/config.cfg", t->run_dir);
  TDM_TRYG(tdm_config_save(cfg, path));
  char mpath[700], epath[700];
  snprintf(mpath, sizeof mpath, "%s/metrics.csv", t->run_dir);
  snprintf(epath, sizeof epath, "%s/eval.csv", t->run_dir);
  if (t->opts.resume_dir) {
    TDM_TRYG(trim_csv(mpath, t->s.step));
    TDM_TRYG(trim_csv(epath, t->s.step));
  }
  TDM_TRYG(open_csv(mpath, METRICS_HEADER, t->opts.resume_dir != NULL, &t->metrics));
  TDM_TRYG(open_csv(epath, EVAL_HEADER, t->opts.resume_dir != NULL, &t->evalf));
  *out = t;
  return TDM_OK;
fail:
  tdm_trainer_destroy(t);
  return st;
}

// ---------------------------------------------------------------------------------------------
// the loop

static void fmt_hms(double s, char *buf, size_t n) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, n, "--");
    return;
  }
  long x = (long)(s + 0.5);
  if (x >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
  else
    snprintf(buf, n, "%ld:%02ld", x / 60, x % 60);
}

static void progress(tdm_trainer *t, bool final, bool logged) {
  if (t->opts.quiet) return;
  FILE *f = t->opts.progress ? t->opts.progress : stderr;
  bool tty = isatty(fileno(f));
  double now = tdm_now();
  // a terminal gets a line rewritten twice a second; a log file one line per log_every (from
  // do_log)
  if (!final && (tty ? now - t->t_progress < 0.5 : !logged)) return;
  if (final && !tty && t->progress_step == t->s.step) return;  // that line is already there
  t->t_progress = now;
  if (!tty) t->progress_step = t->s.step;
  double el = now - t->t_start;
  int64_t done_here = t->s.step - t->step_start;
  double sps = el > 0 ? done_here / el : 0;
  char eta[32];
  fmt_hms(sps > 0 ? (t->cfg->v.total_steps - t->s.step) / sps : -1, eta, sizeof eta);
  char rr[32] = "--", ev[48] = "";
  double r = recent_mean(&t->s);
  if (!isnan(r)) snprintf(rr, sizeof rr, "%.1f", r);
  if (t->s.last_eval_step >= 0)
    snprintf(ev, sizeof ev, "  eval %.1f +- %.1f", t->s.last_eval_mean, t->s.last_eval_std);
  fprintf(f, "%sstep %lld/%lld  %.0f steps/s  return %s%s  ETA %s%s", tty ? "\r\033[K" : "",
          (long long)t->s.step, (long long)t->cfg->v.total_steps, sps, rr, ev, eta,
          tty && !final ? "" : "\n");
  fflush(f);
}

static tdm_status do_log(tdm_trainer *t) {
  double now = tdm_now();
  double dt = now - t->t_log;
  double sps = dt > 0 ? (t->s.step - t->step_log) / dt : 0;
  t->t_log = now;
  t->step_log = t->s.step;
  const tdm_agent_stats *s = &t->stats;
  if (t->have_stats)
    fprintf(t->metrics, "%lld,%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.1f,%.2f\n",
            (long long)t->s.step, (long long)t->s.episodes, (long long)t->agent->n_updates,
            recent_mean(&t->s), s->critic_loss, s->actor_loss, s->alpha, s->entropy, s->q_mean, sps,
            wall_now(t));
  else
    fprintf(t->metrics, "%lld,%lld,%lld,%.6g,,,,,,%.1f,%.2f\n", (long long)t->s.step,
            (long long)t->s.episodes, (long long)t->agent->n_updates, recent_mean(&t->s), sps,
            wall_now(t));
  fflush(t->metrics);
  return ferror(t->metrics) ? TDM_FAIL(TDM_ERR_IO, "writing %s/metrics.csv failed", t->run_dir)
                            : TDM_OK;
}

static tdm_status do_eval(tdm_trainer *t) {
  const tdm_train_cfg *v = &t->cfg->v;
  double m, sd;
  uint64_t seed = mix64((uint64_t)v->seed ^ 0xE7A1ull) ^ (uint64_t)t->s.step;
  double t0 = tdm_now();
  // one env set for the whole run (a MuJoCo task would re-parse its MJCF for a fresh one); every
  // evaluation resets all of its instances with its own seed, so it is the same as a fresh one
  if (!t->eval_env)
    TDM_TRY(tdm_run_make_env(t->cfg, tdm_evaluate_num_envs(t->agent, v->eval_episodes),
                             t->dev->pool, &t->eval_env));
  TDM_TRY(tdm_evaluate_env(t->agent, t->eval_env, v->eval_episodes, seed, &m, &sd));
  t->eval_s += tdm_now() - t0;
  t->s.last_eval_step = t->s.step;
  t->s.last_eval_mean = m;
  t->s.last_eval_std = sd;
  fprintf(t->evalf, "%lld,%.6g,%.6g,%d\n", (long long)t->s.step, m, sd, v->eval_episodes);
  fflush(t->evalf);
  return ferror(t->evalf) ? TDM_FAIL(TDM_ERR_IO, "writing %s/eval.csv failed", t->run_dir) : TDM_OK;
}

// Reset the slots that need it, each with its episode's seed, in one pass over the env.
static tdm_status reset_finished(tdm_trainer *t) {
  const tdm_train_cfg *v = &t->cfg->v;
  bool any = false;
  for (int i = 0; i < t->N; i++) {
    t->mask[i] = t->need_reset[i];
    if (!t->need_reset[i]) continue;
    t->reset_seed[i] = episode_seed((uint64_t)v->seed, i, t->ep_num[i]);
    any = true;
  }
  if (!any) return TDM_OK;
  TDM_TRY(tdm_env_reset_each(t->env, t->reset_seed, t->mask, t->obs));
  for (int i = 0; i < t->N; i++)
    if (t->mask[i]) {
      t->ep_num[i]++;
      t->need_reset[i] = 0;
    }
  return TDM_OK;
}

// The updates of the env step that brings the step count to step_after (update-to-data ratio,
// fractions carried over). can_run false (an empty buffer) only banks the credit.
static tdm_status run_updates(tdm_trainer *t, int64_t step_after, bool can_run) {
  const tdm_train_cfg *v = &t->cfg->v;
  if (step_after < v->learning_starts) return TDM_OK;
  t->s.upd_credit += v->utd * (double)t->N;
  int k = (int)t->s.upd_credit;
  if (k <= 0 || !can_run) return TDM_OK;
  t->s.upd_credit -= k;
  // statistics only for a step that logs: copying them back synchronises with the device
  bool want_stats = step_after >= t->s.next_log;
  TDM_TRY(tdm_agent_update(t->agent, k, want_stats ? &t->stats : NULL));
  if (want_stats) t->have_stats = true;
  return TDM_OK;
}

tdm_status tdm_trainer_run(tdm_trainer *t, tdm_run_result *res) {
  const tdm_train_cfg *v = &t->cfg->v;
  tdm_status st = TDM_OK;
  bool interrupted = false;
  t->t_start = t->t_log = tdm_now();
  t->t_progress = 0;
  t->progress_step = -1;
  t->step_log = t->step_start = t->s.step;
  size_t N = (size_t)t->N, O = (size_t)t->O, A = (size_t)t->A;
  if (!t->opts.quiet) {
    const char *up = tdm_sac_update_path(t->agent);
    fprintf(t->opts.progress ? t->opts.progress : stderr, "%s on %s, %s, update: %s, run: %s\n",
            v->agent_name, v->env_task, t->dev->name, up ? up : "-", t->run_dir);
  }
  if (t->opts.resume_dir && t->s.step >= v->total_steps && !t->opts.quiet)
    fprintf(t->opts.progress ? t->opts.progress : stderr,
            "the run is already at step %lld of total_steps %lld: nothing to train (raise it with "
            "-s total_steps=N to go on)\n",
            (long long)t->s.step, (long long)v->total_steps);
  while (t->s.step < v->total_steps) {
    if (t->opts.stop && *t->opts.stop) {
      interrupted = true;
      break;
    }
    TDM_TRYG(reset_finished(t));
    // act: uniform random before learning_starts, then the agent's exploring policy
    if (t->s.step < v->learning_starts) {
      for (size_t j = 0; j < N * A; j++) t->act[j] = 2.0f * tdm_rng_uniform(&t->s.explore) - 1.0f;
    } else {
      TDM_TRYG(tdm_agent_act(t->agent, t->obs, t->N, true, t->act));
    }
    // overlap_update: this step's updates are launched before the env step (the device runs them
    // while the host steps the envs; their batches come from the transitions before this step)
    if (v->overlap_update) TDM_TRYG(run_updates(t, t->s.step + t->N, !t->replay_empty));
    TDM_TRYG(tdm_env_step(t->env, t->act, t->next_obs, t->reward, t->term, t->trunc));
    tdm_transition_batch b = {t->N,    t->obs,   t->act, t->reward,   t->next_obs,
                              t->term, t->trunc, NULL,   TDM_SRC_REAL};
    TDM_TRYG(tdm_agent_observe(t->agent, &b));
    t->replay_empty = false;
    t->s.step += t->N;
    const double *er = tdm_env_episode_return(t->env);
    for (size_t i = 0; i < N; i++) {
      if (t->term[i] || t->trunc[i]) {
        t->need_reset[i] = 1;
        t->s.episodes++;
        t->s.recent[t->s.recent_pos] = er[i];
        t->s.recent_pos = (t->s.recent_pos + 1) % RECENT;
        if (t->s.n_recent < RECENT) t->s.n_recent++;
      }
    }
    memcpy(t->obs, t->next_obs, sizeof(float) * N * O);  // finished slots are reset next time
    // updates at the configured ratio after the transitions are stored (Stable-Baselines3's order)
    if (!v->overlap_update) TDM_TRYG(run_updates(t, t->s.step, true));
    if (t->s.step >= t->s.next_eval) {
      TDM_TRYG(do_eval(t));
      while (t->s.next_eval <= t->s.step) t->s.next_eval += v->eval_every;
    }
    bool logged = false;
    if (t->s.step >= t->s.next_log) {
      TDM_TRYG(do_log(t));
      logged = true;
      while (t->s.next_log <= t->s.step) t->s.next_log += v->log_every;
    }
    if (t->s.step >= t->s.next_ckpt && t->s.step < v->total_steps) {
      TDM_TRYG(save_checkpoint(t));
      while (t->s.next_ckpt <= t->s.step) t->s.next_ckpt += v->checkpoint_every;
    }
    progress(t, false, logged);
  }
  // final evaluation (unless one just ran) and checkpoint
  if (!interrupted && t->s.last_eval_step != t->s.step) TDM_TRYG(do_eval(t));
  if (t->s.step != t->step_log || t->s.step == 0) TDM_TRYG(do_log(t));
  // a resume that took no step keeps the checkpoint it started from
  if (!t->opts.resume_dir || t->s.step != t->step_start) TDM_TRYG(save_checkpoint(t));
  TDM_TRYG(write_summary(t, interrupted));
  progress(t, true, true);
fail:
  if (res) {
    memset(res, 0, sizeof *res);
    snprintf(res->run_dir, sizeof res->run_dir, "%s", t->run_dir);
    snprintf(res->checkpoint, sizeof res->checkpoint, "%s", t->last_ckpt);
    res->steps = t->s.step;
    res->episodes = t->s.episodes;
    res->updates = t->agent->n_updates;
    res->wall_s = wall_now(t);
    res->eval_mean = t->s.last_eval_mean;
    res->eval_std = t->s.last_eval_std;
    res->eval_step = t->s.last_eval_step;
    res->interrupted = interrupted;
  }
  if (st == TDM_OK && interrupted)
    return TDM_FAIL(TDM_ERR_INTERRUPTED, "stopped at step %lld; checkpoint %s",
                    (long long)t->s.step, t->last_ckpt);
  return st;
}
