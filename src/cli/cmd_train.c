// tandem train, tandem eval.
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "tandem/run.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  g_stop = sig;
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C kills at once
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

static void list_tasks(FILE *f) {
  fprintf(f, "tasks:\n");
  for (const char *const *n = tdm_env_names(); *n; n++) {
    const char *d = tdm_env_describe(*n);
    fprintf(f, "  %-16s %s\n", *n, d ? d : "");
  }
  fprintf(f, "agents: %s\n", tdm_agent_names());
}

static void train_usage(FILE *f) {
  fprintf(
      f,
      "usage: tandem train CONFIG [-s key=value ...] [--quiet] [--device D]\n"
      "       tandem train --resume RUN_DIR [-s key=value ...] [--quiet] [--device D]\n\n"
      "  Train an agent as configured by the libconfig file CONFIG (see configs/). The run\n"
      "  directory <run_dir>/<name>/<seed>/ gets config.cfg (resolved), metrics.csv,\n"
      "  eval.csv, summary.json and checkpoints/. Ctrl-C or SIGTERM writes a checkpoint and\n"
      "  stops (exit code 130); --resume continues from the newest checkpoint.\n\n"
      "options:\n"
      "  -s, --set key=value  override a key; the value uses libconfig syntax:\n"
      "                       -s agent.lr=1e-3  -s env.task=\\\"hopper\\\"  -s save_replay=true\n"
      "  --device D           auto | cpu | cuda | cuda:N (same as -s device=\\\"D\\\")\n"
      "  --resume RUN_DIR     continue RUN_DIR with its config.cfg (only device, total_steps,\n"
      "                       intervals, threads, run_dir, use_graph, tf32, fused_update,\n"
      "                       graph_streams may change)\n"
      "  --quiet              no progress line (batch jobs)\n\n"
      "keys (default, meaning, allowed values):\n");
  tdm_config_print_schema(f);
  fprintf(f, "\n");
  list_tasks(f);
}

#define MAX_OVERRIDES 128

int tdm_cmd_train(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    train_usage(stdout);
    return 0;
  }
  const char *config_path = NULL, *resume = NULL, *device = NULL;
  const char *ov[MAX_OVERRIDES + 1];
  int n_ov = 0;
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-s") || !strcmp(a, "--set")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "tandem train: %s needs key=value\n", a);
        return 2;
      }
      if (n_ov >= MAX_OVERRIDES) {
        fprintf(stderr, "tandem train: more than %d overrides\n", MAX_OVERRIDES);
        return 2;
      }
      ov[n_ov++] = argv[++i];
    } else if (!strncmp(a, "-s", 2) && a[2]) {
      if (n_ov >= MAX_OVERRIDES) {
        fprintf(stderr, "tandem train: more than %d overrides\n", MAX_OVERRIDES);
        return 2;
      }
      ov[n_ov++] = a + 2;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = true;
    } else if (!strcmp(a, "--resume") || !strcmp(a, "--device")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "tandem train: %s needs a value\n", a);
        return 2;
      }
      if (!strcmp(a, "--resume"))
        resume = argv[++i];
      else
        device = argv[++i];
    } else if (a[0] == '-') {
      fprintf(stderr, "tandem train: unknown option %s (tandem train --help)\n", a);
      return 2;
    } else if (!config_path) {
      config_path = a;
    } else {
      fprintf(stderr, "tandem train: more than one CONFIG (%s, %s)\n", config_path, a);
      return 2;
    }
  }
  char resume_cfg[1100], dev_ov[128];
  if (resume) {
    if (config_path) {
      fprintf(stderr,
              "tandem train: with --resume the run's own config.cfg is used; change keys with "
              "-s instead of passing %s\n",
              config_path);
      return 2;
    }
    size_t l = strlen(resume);
    while (l > 1 && resume[l - 1] == '/') l--;
    snprintf(resume_cfg, sizeof resume_cfg, "%.*s/config.cfg", (int)l, resume);
    config_path = resume_cfg;
    struct stat sb;
    if (stat(resume, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      fprintf(stderr, "tandem train: --resume %s: no such directory\n", resume);
      return 1;
    }
    if (stat(resume_cfg, &sb) != 0) {
      fprintf(stderr,
              "tandem train: --resume %s: not a run directory (it has no config.cfg; a run "
              "directory is <run_dir>/<name>/<seed>/)\n",
              resume);
      return 1;
    }
  }
  if (!config_path) {
    train_usage(stderr);
    return 2;
  }
  if (device) {
    snprintf(dev_ov, sizeof dev_ov, "device=\"%s\"", device);
    ov[n_ov++] = dev_ov;
  }
  tdm_config cfg;
  if (tdm_config_load(&cfg, config_path, ov, n_ov) != TDM_OK) {
    tdm_cli_error(NULL);
    tdm_config_free(&cfg);
    return 1;
  }
  install_signals();
  tdm_run_opts opts = {quiet, resume, &g_stop, stderr};
  tdm_trainer *t = NULL;
  if (tdm_trainer_create(&cfg, &opts, &t) != TDM_OK) {
    tdm_cli_error(resume ? "cannot resume" : "cannot start the run");
    tdm_config_free(&cfg);
    return 1;
  }
  tdm_run_result r;
  tdm_status st = tdm_trainer_run(t, &r);
  int rc = 0;
  if (st == TDM_OK || st == TDM_ERR_INTERRUPTED) {
    if (r.eval_step >= 0)
      printf("final evaluation at step %lld: %.2f +- %.2f over %d episodes\n",
             (long long)r.eval_step, r.eval_mean, r.eval_std, cfg.v.eval_episodes);
    printf("run: %s  (%lld steps, %lld episodes, %lld updates, %.1f s)\n", r.run_dir,
           (long long)r.steps, (long long)r.episodes, (long long)r.updates, r.wall_s);
    if (st == TDM_ERR_INTERRUPTED) {
      fprintf(stderr,
              "tandem train: stopped by %s at step %lld; checkpoint %s written. Continue with:\n"
              "  tandem train --resume %s\n",
              g_stop == SIGTERM ? "SIGTERM" : "SIGINT", (long long)r.steps, r.checkpoint,
              r.run_dir);
      rc = 130;
    }
  } else {
    tdm_cli_error("training failed");
    rc = 1;
  }
  tdm_trainer_destroy(t);
  tdm_config_free(&cfg);
  return rc;
}

// ---------------------------------------------------------------------------------------------

static void eval_usage(FILE *f) {
  fprintf(f,
          "usage: tandem eval CHECKPOINT [--episodes K] [--device D] [--seed S]\n\n"
          "  Evaluate the agent of a checkpoint (runs/<name>/<seed>/checkpoints/ckpt_*.tdm, or a\n"
          "  run directory or its checkpoints folder for the newest checkpoint) on K deterministic\n"
          "  episodes of its task and print the mean and standard deviation of the returns.\n\n"
          "options:\n"
          "  --episodes K   episodes (default: the run's eval_episodes)\n"
          "  --device D     auto | cpu | cuda | cuda:N (default: the run's device)\n"
          "  --seed S       seed of the episodes' reset noise (default 0)\n");
}

int tdm_cmd_eval(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    eval_usage(stdout);
    return 0;
  }
  const char *path = NULL, *device = NULL;
  long episodes = 0;
  unsigned long long seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--episodes") || !strcmp(a, "--device") || !strcmp(a, "--seed")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "tandem eval: %s needs a value\n", a);
        return 2;
      }
      const char *v = argv[++i];
      char *end;
      errno = 0;
      if (!strcmp(a, "--device")) {
        device = v;
      } else if (!strcmp(a, "--episodes")) {
        episodes = strtol(v, &end, 10);
        if (*end || errno || episodes < 1 || episodes > 1000000) {
          fprintf(stderr, "tandem eval: --episodes %s: expected an integer in [1, 1000000]\n", v);
          return 2;
        }
      } else {
        if (!tdm_cli_parse_u64(v, &seed)) {
          fprintf(stderr, "tandem eval: --seed %s: expected a non-negative integer\n", v);
          return 2;
        }
      }
    } else if (a[0] == '-') {
      fprintf(stderr, "tandem eval: unknown option %s (tandem eval --help)\n", a);
      return 2;
    } else if (!path) {
      path = a;
    } else {
      fprintf(stderr, "tandem eval: more than one CHECKPOINT\n");
      return 2;
    }
  }
  if (!path) {
    eval_usage(stderr);
    return 2;
  }
  char latest[1100];
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    if (tdm_checkpoint_latest(path, latest, sizeof latest) != TDM_OK) {
      tdm_cli_error(NULL);
      return 1;
    }
    path = latest;
  }
  tdm_ckpt_info info;
  char *text = NULL;
  if (tdm_checkpoint_inspect(path, &info, &text) != TDM_OK) {
    tdm_cli_error("cannot evaluate");
    return 1;
  }
  char dev_ov[128];
  const char *ov[1];
  int n_ov = 0;
  if (device) {
    snprintf(dev_ov, sizeof dev_ov, "device=\"%s\"", device);
    ov[n_ov++] = dev_ov;
  }
  tdm_config cfg;
  tdm_dev *dev = NULL;
  tdm_env *env = NULL;
  tdm_agent *agent = NULL;
  int rc = 1;
  if (tdm_config_load_string(&cfg, text, path, ov, n_ov) != TDM_OK) {
    tdm_cli_error("the checkpoint's configuration");
    goto done;
  }
  int k = episodes > 0 ? (int)episodes : cfg.v.eval_episodes;
  // the agent only needs the task's sizes, which the checkpoint header holds; the one env set is
  // then made with as many instances as the evaluation runs at once (tdm_evaluate_env checks that
  // its sizes match the agent's)
  tdm_env_spec sizes = {.obs_dim = info.obs_dim, .act_dim = info.act_dim};
  if (tdm_dev_open(cfg.v.device, cfg.v.threads, &dev) != TDM_OK ||
      tdm_run_make_agent(&cfg, dev, &sizes, &agent) != TDM_OK ||
      tdm_run_make_env(&cfg, tdm_evaluate_num_envs(agent, k), dev->pool, &env) != TDM_OK ||
      tdm_checkpoint_load_agent(path, agent) != TDM_OK) {
    tdm_cli_error("cannot evaluate");
    goto done;
  }
  double mean, std;
  double t0 = tdm_now();
  if (tdm_evaluate_env(agent, env, k, seed, &mean, &std) != TDM_OK) {
    tdm_cli_error("evaluation failed");
    goto done;
  }
  printf("%s (step %lld, %s, %s on %s): return %.2f +- %.2f over %d episodes (%.1f s)\n", path,
         (long long)info.step, cfg.v.env_task, cfg.v.agent_name, dev->name, mean, std, k,
         tdm_now() - t0);
  rc = 0;
done:
  tdm_agent_destroy(agent);
  tdm_env_destroy(env);
  tdm_dev_close(dev);
  tdm_config_free(&cfg);
  free(text);
  return rc;
}
