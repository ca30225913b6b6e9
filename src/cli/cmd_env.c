// tandem envs (list the tasks) and tandem rollout (run one task and write a CSV trajectory).
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tandem/env.h"

// "[lo, hi]" when all dimensions share bounds, else "[lo0 hi0; lo1 hi1; ...]" (truncated)
static void bounds_str(const float *lo, const float *hi, int n, char *buf, size_t cap) {
  int same = 1;
  for (int k = 1; k < n; k++) same &= lo[k] == lo[0] && hi[k] == hi[0];
  if (same) {
    snprintf(buf, cap, "[%g, %g]", lo[0], hi[0]);
    return;
  }
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (int k = 0; k < n && len + 24 < cap; k++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%g %g", k ? "; " : "", lo[k], hi[k]);
  snprintf(buf + len, cap - len, "]");
}

int tdm_cmd_envs(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    printf(
        "usage: tandem envs\n  list the environment tasks: observation and action sizes, action "
        "bounds (the agent acts in [-1, 1], mapped onto them), episode length, step time\n");
    return 0;
  }
  if (!tdm_cli_no_args("envs", argc, argv)) return 2;
  tdm_log_set_level(TDM_LOG_ERROR);
  printf("%-18s %4s %4s %-14s %6s %8s  %s\n", "task", "obs", "act", "action bounds", "steps", "dt",
         "about");
  int rc = 0;
  for (const char *const *nm = tdm_env_names(); *nm; nm++) {
    if (!strcmp(*nm, "mujoco")) {
      printf("%-18s %4s %4s %-14s %6s %8s  %s\n", *nm, "-", "-", "ctrlrange", "cfg", "-",
             tdm_env_describe(*nm));
      continue;
    }
    tdm_env *e = NULL;
    if (tdm_env_create(*nm, 1, NULL, NULL, &e) != TDM_OK) {
      printf("%-18s unavailable: %s\n", *nm, tdm_errmsg());
      rc = 1;
      continue;
    }
    const tdm_env_spec *sp = tdm_env_get_spec(e);
    char b[160];
    bounds_str(sp->act_low, sp->act_high, sp->act_dim, b, sizeof b);
    printf("%-18s %4d %4d %-14s %6d %8g  %s\n", *nm, sp->obs_dim, sp->act_dim, b,
           sp->max_episode_steps, sp->dt, tdm_env_describe(*nm));
    tdm_env_destroy(e);
  }
#ifndef TDM_MUJOCO
  printf(
      "(MuJoCo tasks are unavailable: this build has no MuJoCo; install libmujoco-dev and "
      "rebuild)\n");
#endif
  return rc;
}

static void rollout_usage(FILE *f) {
  fprintf(f,
          "usage: tandem rollout TASK [--seed S] [--steps N] [--actions FILE.csv | --policy "
          "zero|random]\n"
          "                      [--config FILE.cfg] [--out FILE.csv]\n"
          "  Run one instance of TASK and write one CSV row per step:\n"
          "    step, obs_0..obs_{O-1} (the observation the action was taken in),\n"
          "    act_0..act_{A-1} (in the task's units), reward, terminated, truncated\n"
          "  --seed S         reset seed (default 0)\n"
          "  --steps N        steps to run, resetting after each episode (default: one "
          "episode)\n"
          "  --actions FILE   CSV of actions in the task's units, one row per step: A numbers, or\n"
          "                   the act_ columns of a CSV this command wrote (# comments skipped)\n"
          "  --policy P       zero (default) or random (uniform over the action bounds)\n"
          "  --config FILE    libconfig file with the env settings (group \"env\", or the root)\n"
          "  --out FILE       write the CSV to FILE (default: standard output)\n");
}

// Read an actions CSV: rows of A numbers, or a CSV with a header naming columns act_0..act_{A-1}
// (a file written by tandem rollout). Returns a malloc'd (rows, A) array or NULL (printed).
static float *read_actions(const char *path, int A, long *rows_out) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "tandem rollout: error: cannot open actions file %s: %s\n", path,
            strerror(errno));
    return NULL;
  }
  enum { MAXCOL = 4096 };
  long cap = 1024, rows = 0;
  float *a = malloc(sizeof(float) * (size_t)(cap * A));
  int *col = malloc(sizeof(int) * (size_t)A);  // column of action k
  double *vals = malloc(sizeof(double) * MAXCOL);
  char line[65536];
  int lineno = 0, data_seen = 0, ncols = A;
  if (!a || !col || !vals) goto oom;
  for (int k = 0; k < A; k++) col[k] = k;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n') {
      fprintf(stderr, "%s:%d: error: line longer than %zu characters\n", path, lineno,
              sizeof line - 2);
      goto fail;
    }
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0) continue;
    // a header line (the first non-comment line, starting with a letter)
    if (!data_seen && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) &&
        strncmp(p, "nan", 3) && strncmp(p, "inf", 3)) {
      data_seen = 1;
      int c = 0, found = 0;
      for (char *tok = strtok(p, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), c++) {
        while (*tok == ' ') tok++;
        int k;
        char extra;
        if (sscanf(tok, "act_%d%c", &k, &extra) == 1) {
          if (k >= 0 && k < A) col[k] = c;
          found++;
        }
      }
      if (found > 0 && found != A) {
        fprintf(stderr, "%s:%d: error: header names %d act_ columns, the task has %d actions\n",
                path, lineno, found, A);
        goto fail;
      }
      if (found == A) ncols = c;  // a rollout CSV: pick the act_ columns
      continue;
    }
    data_seen = 1;
    if (rows == cap) {
      cap *= 2;
      float *b = realloc(a, sizeof(float) * (size_t)(cap * A));
      if (!b) goto oom;
      a = b;
    }
    int k = 0;
    while (1) {
      while (*p == ' ' || *p == '\t') p++;
      if (*p == '\n' || *p == '\r' || *p == 0) break;
      char *end;
      errno = 0;
      double v = strtod(p, &end);
      if (end == p || errno) {
        char tok[32];
        snprintf(tok, sizeof tok, "%.*s", (int)strcspn(p, ",\r\n"), p);
        fprintf(stderr, "%s:%d: error: \"%s\" is not a number (column %d)\n", path, lineno, tok,
                k + 1);
        goto fail;
      }
      if (k < MAXCOL) vals[k] = v;
      k++;
      p = end;
      while (*p == ' ' || *p == '\t') p++;
      if (*p == ',') p++;
    }
    if (k != ncols) {
      fprintf(stderr, "%s:%d: error: expected %d %s, found %d\n", path, lineno, ncols,
              ncols == A ? (A == 1 ? "action value" : "action values") : "columns", k);
      goto fail;
    }
    for (int j = 0; j < A; j++) a[rows * A + j] = (float)vals[col[j]];
    rows++;
  }
  fclose(f);
  free(col);
  free(vals);
  if (rows == 0) {
    fprintf(stderr, "%s: error: no action rows\n", path);
    free(a);
    return NULL;
  }
  *rows_out = rows;
  return a;
oom:
  fprintf(stderr, "tandem rollout: error: out of memory reading %s\n", path);
fail:
  fclose(f);
  free(a);
  free(col);
  free(vals);
  return NULL;
}

int tdm_cmd_rollout(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    rollout_usage(stdout);
    return 0;
  }
  const char *task = NULL, *actions = NULL, *policy = "zero", *out = NULL, *cfgfile = NULL;
  unsigned long long seed = 0, steps = 0;
  int have_steps = 0, have_policy = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') {
      if (task) {
        fprintf(stderr, "tandem rollout: error: unexpected argument \"%s\" (one TASK only)\n", a);
        return 2;
      }
      task = a;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "tandem rollout: error: option %s needs a value\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--seed")) {
      if (!tdm_cli_parse_u64(v, &seed)) {
        fprintf(stderr, "tandem rollout: error: --seed \"%s\" is not a non-negative integer\n", v);
        return 2;
      }
    } else if (!strcmp(a, "--steps")) {
      if (!tdm_cli_parse_u64(v, &steps) || steps < 1 || steps > 100000000ULL) {
        fprintf(stderr, "tandem rollout: error: --steps \"%s\" must be an integer in [1, 1e8]\n",
                v);
        return 2;
      }
      have_steps = 1;
    } else if (!strcmp(a, "--actions")) {
      actions = v;
    } else if (!strcmp(a, "--policy")) {
      if (strcmp(v, "zero") && strcmp(v, "random")) {
        fprintf(stderr, "tandem rollout: error: --policy \"%s\": valid policies: zero, random\n",
                v);
        return 2;
      }
      policy = v;
      have_policy = 1;
    } else if (!strcmp(a, "--out")) {
      out = v;
    } else if (!strcmp(a, "--config")) {
      cfgfile = v;
    } else {
      fprintf(stderr, "tandem rollout: error: unknown option %s\n\n", a);
      rollout_usage(stderr);
      return 2;
    }
  }
  if (!task && !cfgfile) {
    fprintf(stderr, "tandem rollout: error: no TASK given; valid tasks:");
    for (const char *const *nm = tdm_env_names(); *nm; nm++) fprintf(stderr, " %s", *nm);
    fprintf(stderr, "\n");
    return 2;
  }
  if (actions && have_policy) {
    fprintf(stderr, "tandem rollout: error: give either --actions or --policy, not both\n");
    return 2;
  }
  config_t cf;
  config_init(&cf);
  const config_setting_t *cfg = NULL;
  if (cfgfile) {
    config_set_auto_convert(&cf, 1);
    if (!config_read_file(&cf, cfgfile)) {
      if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
        fprintf(stderr, "tandem rollout: error: cannot read config %s\n", cfgfile);
      else
        fprintf(stderr, "%s:%d - %s\n", config_error_file(&cf) ? config_error_file(&cf) : cfgfile,
                config_error_line(&cf), config_error_text(&cf));
      config_destroy(&cf);
      return 1;
    }
    cfg = config_lookup(&cf, "env");
    if (!cfg) cfg = config_root_setting(&cf);
  }
  int rc = 1;
  tdm_env *e = NULL;
  float *acts = NULL, *obs = NULL, *next = NULL, *a = NULL, *u = NULL;
  FILE *fo = NULL;
  if (tdm_env_create(task, 1, cfg, NULL, &e) != TDM_OK) {
    tdm_cli_error("cannot create the env");
    goto done;
  }
  const tdm_env_spec *sp = tdm_env_get_spec(e);
  const int O = sp->obs_dim, A = sp->act_dim;
  long rows = 0;
  if (actions) {
    acts = read_actions(actions, A, &rows);
    if (!acts) goto done;
    if (have_steps && (long long)steps > rows) {
      fprintf(stderr, "tandem rollout: error: %s has %ld action rows, --steps asks for %llu\n",
              actions, rows, steps);
      goto done;
    }
    if (!have_steps) steps = (unsigned long long)rows;
  }
  obs = calloc((size_t)O, sizeof(float));
  next = calloc((size_t)O, sizeof(float));
  a = calloc((size_t)A, sizeof(float));
  u = calloc((size_t)A, sizeof(float));
  if (!obs || !next || !a || !u) {
    fprintf(stderr, "tandem rollout: error: out of memory\n");
    goto done;
  }
  fo = out ? fopen(out, "w") : stdout;
  if (!fo) {
    fprintf(stderr, "tandem rollout: error: cannot write %s: %s\n", out, strerror(errno));
    goto done;
  }
  fprintf(fo, "step");
  for (int k = 0; k < O; k++) fprintf(fo, ",obs_%d", k);
  for (int k = 0; k < A; k++) fprintf(fo, ",act_%d", k);
  fprintf(fo, ",reward,terminated,truncated\n");
  if (tdm_env_reset(e, seed, NULL, obs) != TDM_OK) {
    tdm_cli_error("reset failed");
    goto done;
  }
  tdm_rng rng;
  tdm_rng_init(&rng, seed, 1000);
  const int one_episode = !have_steps && !actions;
  const unsigned long long n = one_episode ? (unsigned long long)sp->max_episode_steps : steps;
  for (unsigned long long t = 0; t < n; t++) {
    for (int k = 0; k < A; k++) {
      const float c = 0.5f * (sp->act_low[k] + sp->act_high[k]);
      const float h = 0.5f * (sp->act_high[k] - sp->act_low[k]);
      if (acts) {
        u[k] = acts[t * A + k];
        a[k] = (u[k] - c) / h;
      } else {
        a[k] = !strcmp(policy, "random") ? 2.0f * (float)tdm_rng_uniform_d(&rng) - 1.0f : 0.0f;
        u[k] = c + a[k] * h;
      }
    }
    float r;
    uint8_t te, tr;
    if (tdm_env_step(e, a, next, &r, &te, &tr) != TDM_OK) {
      tdm_cli_error("step failed");
      goto done;
    }
    fprintf(fo, "%llu", t);
    for (int k = 0; k < O; k++) fprintf(fo, ",%.9g", obs[k]);
    for (int k = 0; k < A; k++) fprintf(fo, ",%.9g", u[k]);
    fprintf(fo, ",%.9g,%d,%d\n", r, te, tr);
    memcpy(obs, next, sizeof(float) * (size_t)O);
    if (te || tr) {
      if (one_episode) break;
      if (tdm_env_reset(e, TDM_ENV_CONTINUE, NULL, obs) != TDM_OK) {
        tdm_cli_error("reset failed");
        goto done;
      }
    }
  }
  if (tdm_env_unstable_count(e) > 0)
    fprintf(stderr, "tandem rollout: warning: %ld unstable steps were reset\n",
            tdm_env_unstable_count(e));
  rc = 0;
done:
  if (fo && fo != stdout && fclose(fo) != 0) {
    fprintf(stderr, "tandem rollout: error: writing %s failed\n", out);
    rc = 1;
  }
  free(acts);
  free(obs);
  free(next);
  free(a);
  free(u);
  tdm_env_destroy(e);
  config_destroy(&cf);
  return rc;
}
