// Configuration: schema, defaults, libconfig parsing, overrides, validation, resolved output.
#include "tandem/config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

#define OFF(field) offsetof(tdm_train_cfg, field)
#define SZ(field) sizeof(((tdm_train_cfg *)0)->field)
#define BIG 9.0e18

// key, type, offset, size, default, min, max, default string, choices, resume_may_change, help
static const tdm_cfg_key schema[] = {
    {"name", TDM_KEY_STRING, OFF(name), SZ(name), 0, 0, 0, "run", NULL, false,
     "run name: the run directory is <run_dir>/<name>/<seed>/"},
    {"seed", TDM_KEY_I64, OFF(seed), 0, 0, 0, 4294967295.0, NULL, NULL, false,
     "random seed of networks, exploration, environments and replay sampling"},
    {"device", TDM_KEY_STRING, OFF(device), SZ(device), 0, 0, 0, "auto",
     "auto|cpu|cuda|cuda:N (N 0..4095)", true,
     "where to train: auto (first GPU, else the CPU), cpu, cuda or cuda:N"},
    {"total_steps", TDM_KEY_I64, OFF(total_steps), 0, 20000, 1, BIG, NULL, NULL, true,
     "environment steps to train for (summed over num_envs)"},
    {"num_envs", TDM_KEY_INT, OFF(num_envs), 0, 1, 1, 4096, NULL, NULL, false,
     "environments stepped together"},
    {"eval_every", TDM_KEY_I64, OFF(eval_every), 0, 5000, 0, BIG, NULL, NULL, true,
     "environment steps between evaluations (0: only at the end)"},
    {"eval_episodes", TDM_KEY_INT, OFF(eval_episodes), 0, 10, 1, 100000, NULL, NULL, true,
     "deterministic episodes per evaluation"},
    {"log_every", TDM_KEY_I64, OFF(log_every), 0, 1000, 1, BIG, NULL, NULL, true,
     "environment steps between rows of metrics.csv"},
    {"checkpoint_every", TDM_KEY_I64, OFF(checkpoint_every), 0, 10000, 0, BIG, NULL, NULL, true,
     "environment steps between checkpoints (0: only at the end and on a signal)"},
    {"keep_checkpoints", TDM_KEY_INT, OFF(keep_checkpoints), 0, 3, 1, 1000000, NULL, NULL, true,
     "how many of the most recent checkpoints to keep"},
    {"save_replay", TDM_KEY_BOOL, OFF(save_replay), 0, 0, 0, 1, NULL, NULL, false,
     "checkpoints include the replay buffer (needed for an exact resume)"},
    {"threads", TDM_KEY_INT, OFF(threads), 0, 0, 0, 1024, NULL, NULL, true,
     "CPU threads for the CPU backend and environments (0: all cores)"},
    {"overlap_update", TDM_KEY_BOOL, OFF(overlap_update), 0, 0, 0, 1, NULL, NULL, true,
     "run an env step's updates before storing its transitions, so the GPU update overlaps the "
     "CPU env step (batches miss the newest num_envs transitions); false: store, then update"},
    {"run_dir", TDM_KEY_STRING, OFF(run_dir), SZ(run_dir), 0, 0, 0, "runs", NULL, true,
     "root directory of run directories"},
    {"env", TDM_KEY_GROUP, 0, 0, 0, 0, 0, NULL, NULL, false,
     "environment: task plus task-specific keys (checked by the task)"},
    {"env.task", TDM_KEY_STRING, OFF(env_task), SZ(env_task), 0, 0, 0, "pendulum", NULL, false,
     "task name (tandem train --help lists them)"},
    {"agent", TDM_KEY_GROUP, 0, 0, 0, 0, 0, NULL, NULL, false, "agent and its hyperparameters"},
    {"agent.name", TDM_KEY_STRING, OFF(agent_name), SZ(agent_name), 0, 0, 0, "sac", "sac", false,
     "agent algorithm"},
    {"agent.lr", TDM_KEY_FLOAT, OFF(lr), 0, 3e-4, 0, 10, NULL, NULL, false,
     "Adam learning rate of actor, critics and temperature"},
    {"agent.batch_size", TDM_KEY_INT, OFF(batch_size), 0, 256, 1, 1 << 20, NULL, NULL, false,
     "minibatch size of one update"},
    {"agent.tau", TDM_KEY_FLOAT, OFF(tau), 0, 0.005, 0, 1, NULL, NULL, false,
     "Polyak coefficient of the target critics"},
    {"agent.gamma", TDM_KEY_FLOAT, OFF(gamma), 0, 0.99, 0, 1, NULL, NULL, false, "discount factor"},
    {"agent.hidden", TDM_KEY_INT, OFF(hidden), 0, 256, 1, 65536, NULL, NULL, false,
     "hidden layer width of actor and critics"},
    {"agent.layers", TDM_KEY_INT, OFF(layers), 0, 2, 1, 7, NULL, NULL, false,
     "number of hidden layers of actor and critics"},
    {"agent.activation", TDM_KEY_STRING, OFF(activation), SZ(activation), 0, 0, 0, "relu",
     "relu|tanh|silu|mish|elu", false, "hidden activation of actor and critics"},
    {"agent.buffer_size", TDM_KEY_I64, OFF(buffer_size), 0, 1000000, 1, 2147483647.0, NULL, NULL,
     false, "replay buffer capacity in transitions"},
    {"agent.learning_starts", TDM_KEY_I64, OFF(learning_starts), 0, 100, 0, BIG, NULL, NULL, false,
     "environment steps of uniform random actions before the first update"},
    {"agent.utd", TDM_KEY_FLOAT, OFF(utd), 0, 1, 0, 1024, NULL, NULL, false,
     "gradient updates per environment step (update-to-data ratio)"},
    {"agent.policy_delay", TDM_KEY_INT, OFF(policy_delay), 0, 1, 1, 1000, NULL, NULL, false,
     "actor and temperature update once every policy_delay critic updates"},
    {"agent.target_update_interval", TDM_KEY_INT, OFF(target_update_interval), 0, 1, 1, 100000,
     NULL, NULL, false, "Polyak update of the target critics every this many updates"},
    {"agent.ent_coef_auto", TDM_KEY_BOOL, OFF(ent_coef_auto), 0, 1, 0, 1, NULL, NULL, false,
     "learn the entropy temperature (SB3 ent_coef = \"auto\"); false keeps ent_coef_init"},
    {"agent.ent_coef_init", TDM_KEY_FLOAT, OFF(ent_coef_init), 0, 1, 1e-8, 1e4, NULL, NULL, false,
     "initial entropy temperature alpha"},
    {"agent.target_entropy", TDM_KEY_ENTROPY, OFF(target_entropy), 0, 0, -1e6, 1e6, "auto", NULL,
     false, "target entropy: \"auto\" (-dim(A)) or a number"},
    {"agent.noise_corr", TDM_KEY_FLOAT, OFF(noise_corr), 0, 0, 0, 0.9999, NULL, NULL, false,
     "correlation of each env's exploration noise from one step to the next (AR(1), standard "
     "normal per step): 0 draws it afresh each step (SB3); 0.99 keeps a direction ~100 steps"},
    {"agent.use_graph", TDM_KEY_BOOL, OFF(use_graph), 0, 1, 0, 1, NULL, NULL, true,
     "replay each update as one CUDA graph (GPU only)"},
    {"agent.tf32", TDM_KEY_BOOL, OFF(tf32), 0, 0, 0, 1, NULL, NULL, true,
     "allow TF32 in the cuBLAS GEMMs (the graph of ops, acting; GPU only; changes numerics); "
     "the fused update always runs 3xTF32, about fp32"},
    {"agent.fused_update", TDM_KEY_BOOL, OFF(fused_update), 0, 1, 0, 1, NULL, NULL, true,
     "with use_graph: each update one persistent kernel on the GPU when the device and shapes "
     "allow (act_dim <= 32), else the graph of ops, and on sm_90 each act of up to 64 envs one "
     "kernel; false always takes the graph of ops (GPU only; GEMMs summed in another order)"},
    {"agent.graph_streams", TDM_KEY_INT, OFF(graph_streams), 0, 2, 1, 2, NULL, NULL, true,
     "streams of one update: 2 forks independent work onto a second stream, 1 keeps one "
     "(GPU only; the same numbers)"},
};
static const int n_schema = (int)(sizeof schema / sizeof schema[0]);

const tdm_cfg_key *tdm_config_schema(int *n) {
  if (n) *n = n_schema;
  return schema;
}

static const tdm_cfg_key *schema_find(const char *path) {
  for (int i = 0; i < n_schema; i++)
    if (!strcmp(schema[i].path, path)) return &schema[i];
  return NULL;
}

void tdm_train_cfg_defaults(tdm_train_cfg *v) {
  memset(v, 0, sizeof *v);
  for (int i = 0; i < n_schema; i++) {
    const tdm_cfg_key *k = &schema[i];
    char *p = (char *)v + k->offset;
    switch (k->type) {
      case TDM_KEY_INT:
        *(int *)p = (int)k->def;
        break;
      case TDM_KEY_I64:
        *(int64_t *)p = (int64_t)k->def;
        break;
      case TDM_KEY_FLOAT:
        *(double *)p = k->def;
        break;
      case TDM_KEY_BOOL:
        *(bool *)p = k->def != 0;
        break;
      case TDM_KEY_STRING:
        snprintf(p, k->size, "%s", k->def_str);
        break;
      case TDM_KEY_ENTROPY:
        v->target_entropy_auto = true;
        v->target_entropy = 0;
        break;
      case TDM_KEY_GROUP:
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// messages

// "file:line" of a setting, or "override -s TEXT" for a value that came from the command line.
static void where(const config_setting_t *s, const char *fallback, char *buf, size_t n) {
  if (s && s->hook) {
    snprintf(buf, n, "override -s %s", (const char *)s->hook);
    return;
  }
  const char *file = s ? config_setting_source_file(s) : NULL;
  unsigned line = s ? config_setting_source_line(s) : 0;
  if (!file) file = fallback && fallback[0] ? fallback : "<config>";
  if (line)
    snprintf(buf, n, "%s:%u", file, line);
  else
    snprintf(buf, n, "%s", file);
}

static const char *type_name(int t) {
  switch (t) {
    case CONFIG_TYPE_GROUP:
      return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
      return "an integer";
    case CONFIG_TYPE_FLOAT:
      return "a float";
    case CONFIG_TYPE_STRING:
      return "a string";
    case CONFIG_TYPE_BOOL:
      return "a boolean";
    case CONFIG_TYPE_ARRAY:
      return "an array";
    case CONFIG_TYPE_LIST:
      return "a list";
    default:
      return "nothing";
  }
}

static void fmt_num(double x, char *buf, size_t n) {
  if (x == floor(x) && fabs(x) < 1e15) {
    snprintf(buf, n, "%.0f", x);
    return;
  }
  // shortest text that reads back as the same double
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, x);
    if (strtod(buf, NULL) == x) break;
  }
}

// "an integer in [1, 4096]" etc.
static void expected(const tdm_cfg_key *k, char *buf, size_t n) {
  char lo[32], hi[32];
  fmt_num(k->min, lo, sizeof lo);
  fmt_num(k->max, hi, sizeof hi);
  if (k->max >= BIG) snprintf(hi, sizeof hi, "inf");
  switch (k->type) {
    case TDM_KEY_INT:
    case TDM_KEY_I64:
      snprintf(buf, n, "an integer in [%s, %s]", lo, hi);
      break;
    case TDM_KEY_FLOAT:
      snprintf(buf, n, "a number in [%s, %s]", lo, hi);
      break;
    case TDM_KEY_BOOL:
      snprintf(buf, n, "true or false");
      break;
    case TDM_KEY_STRING:
      if (k->choices)
        snprintf(buf, n, "one of \"%s\"", k->choices);
      else
        snprintf(buf, n, "a string of at most %zu characters", k->size - 1);
      break;
    case TDM_KEY_ENTROPY:
      snprintf(buf, n, "\"auto\" or a number in [%s, %s]", lo, hi);
      break;
    case TDM_KEY_GROUP:
      snprintf(buf, n, "a group { ... }");
      break;
  }
}

static size_t levenshtein(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  if (na > 63 || nb > 63) return 64;
  size_t d[64][64];
  for (size_t i = 0; i <= na; i++) d[i][0] = i;
  for (size_t j = 0; j <= nb; j++) d[0][j] = j;
  for (size_t i = 1; i <= na; i++)
    for (size_t j = 1; j <= nb; j++) {
      size_t c =
          d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[na][nb];
}

// The closest schema key to path, or NULL when none is close.
static const char *did_you_mean(const char *path) {
  const char *best = NULL;
  size_t best_d = (size_t)-1;
  const char *leaf = strrchr(path, '.');
  leaf = leaf ? leaf + 1 : path;
  for (int i = 0; i < n_schema; i++) {
    size_t d = levenshtein(path, schema[i].path);
    const char *kl = strrchr(schema[i].path, '.');
    kl = kl ? kl + 1 : schema[i].path;
    size_t dl = levenshtein(leaf, kl) + (strcmp(leaf, path) ? 0 : 1);  // leaf in another group
    if (dl < d) d = dl;
    if (d < best_d) best_d = d, best = schema[i].path;
  }
  size_t n = strlen(leaf);
  size_t limit = n <= 4 ? 1 : n <= 8 ? 2 : 3;
  return best_d <= limit ? best : NULL;
}

// ---------------------------------------------------------------------------------------------
// overrides

static int copy_setting(config_setting_t *dst_parent, const char *name,
                        const config_setting_t *src);

static int copy_value(config_setting_t *d, const config_setting_t *src) {
  switch (config_setting_type(src)) {
    case CONFIG_TYPE_INT:
      return config_setting_set_int(d, config_setting_get_int(src));
    case CONFIG_TYPE_INT64:
      return config_setting_set_int64(d, config_setting_get_int64(src));
    case CONFIG_TYPE_FLOAT:
      return config_setting_set_float(d, config_setting_get_float(src));
    case CONFIG_TYPE_BOOL:
      return config_setting_set_bool(d, config_setting_get_bool(src));
    case CONFIG_TYPE_STRING:
      return config_setting_set_string(d, config_setting_get_string(src));
    default: {
      int n = config_setting_length(src);
      for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
        if (!copy_setting(
                d, config_setting_type(src) == CONFIG_TYPE_GROUP ? config_setting_name(e) : NULL,
                e))
          return CONFIG_FALSE;
      }
      return CONFIG_TRUE;
    }
  }
}

static int copy_setting(config_setting_t *dst_parent, const char *name,
                        const config_setting_t *src) {
  config_setting_t *d = config_setting_add(dst_parent, name, config_setting_type(src));
  if (!d) return CONFIG_FALSE;
  return copy_value(d, src);
}

// libconfig 1.5 (Debian's) reads an integer literal without the L suffix as 32 bits and wraps it
// silently: 4294967296 becomes 0, -2147483649 becomes 2147483647. Later versions widen such a
// literal to 64 bits instead. So every integer literal of text outside the 32-bit range (hex above
// 0x7fffffff included) is refused before libconfig reads it, naming where (place, or place:line
// when lines) it is. Strings and comments (#, //, /* */) are skipped. Files that text pulls in with
// @include are not scanned.
static tdm_status check_int_literals(const char *text, const char *place, bool lines) {
  int line = 1;
  const char *p = text;
  while (*p) {
    if (*p == '\n') {
      line++, p++;
    } else if (*p == '"') {  // string, with escapes
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) p++;
        if (*p == '\n') line++;
      }
      if (*p) p++;
    } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
      while (*p && *p != '\n') p++;
    } else if (p[0] == '/' && p[1] == '*') {
      for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
        if (*p == '\n') line++;
      if (*p) p += 2;
    } else if (isalpha((unsigned char)*p) || *p == '_') {  // a name (digits in it are no number)
      while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '*') p++;
    } else if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1])) ||
               ((*p == '-' || *p == '+') &&
                (isdigit((unsigned char)p[1]) || (p[1] == '.' && isdigit((unsigned char)p[2]))))) {
      const char *t0 = p;
      if (*p == '-' || *p == '+') p++;
      bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X'), flt = false;
      for (; isalnum((unsigned char)*p) || *p == '.' ||
             ((*p == '-' || *p == '+') && !hex && (p[-1] == 'e' || p[-1] == 'E'));
           p++)
        if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) flt = true;
      size_t n = (size_t)(p - t0);
      if (flt || n == 0 || t0[n - 1] == 'L' || n > 64) continue;  // float, 64-bit, not a number
      char lit[72];
      memcpy(lit, t0, n);
      lit[n] = 0;
      errno = 0;
      char *end = NULL;
      long long x;
      bool over64;
      if (hex) {
        unsigned long long u = strtoull(lit + (lit[0] == '-' || lit[0] == '+'), &end, 16);
        over64 = errno == ERANGE || u > (unsigned long long)LLONG_MAX;
        x = lit[0] == '-' ? -(long long)u : (long long)u;
      } else {
        x = strtoll(lit, &end, 10);
        over64 = errno == ERANGE;
      }
      if (!end || *end) continue;  // not an integer libconfig reads either: it reports that
      if (over64 || x > 2147483647LL || x < -2147483647LL - 1) {
        char at[700];
        if (lines)
          snprintf(at, sizeof at, "%s:%d", place, line);
        else
          snprintf(at, sizeof at, "%s", place);
        if (over64)
          return TDM_FAIL(TDM_ERR_CONFIG, "%s: the integer %s does not fit in 64 bits", at, lit);
        return TDM_FAIL(TDM_ERR_CONFIG,
                        "%s: the integer %s does not fit in 32 bits, and libconfig would wrap it "
                        "silently; write it with an L suffix (%sL) or in float notation (e.g. "
                        "3e9)",
                        at, lit, lit);
      }
    } else {
      p++;
    }
  }
  return TDM_OK;
}

static tdm_status apply_override(config_t *lc, const char *text) {
  const char *eq = strchr(text, '=');
  if (!eq || eq == text)
    return TDM_FAIL(TDM_ERR_CONFIG, "override -s %s: expected key=value (e.g. -s agent.lr=1e-3)",
                    text);
  char key[256];
  size_t kn = (size_t)(eq - text);
  while (kn > 0 && isspace((unsigned char)text[kn - 1])) kn--;
  if (kn >= sizeof key) return TDM_FAIL(TDM_ERR_CONFIG, "override -s %s: key too long", text);
  memcpy(key, text, kn);
  key[kn] = 0;
  if (!strcmp(key, "task")) snprintf(key, sizeof key, "env.task");  // shorthand: -s task="hopper"
  kn = strlen(key);
  for (size_t i = 0; i < kn; i++) {
    char c = key[i];
    if (!(isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '*') ||
        (c == '.' && (i == 0 || i == kn - 1 || key[i + 1] == '.')))
      return TDM_FAIL(TDM_ERR_CONFIG,
                      "override -s %s: bad key \"%s\" (letters, digits, _ and dots between "
                      "group names, e.g. agent.lr)",
                      text, key);
  }
  // parse the value with libconfig's own syntax
  char place[300];
  snprintf(place, sizeof place, "override -s %.280s", text);
  TDM_TRY(check_int_literals(eq + 1, place, false));
  size_t vn = strlen(eq + 1);
  char *src = malloc(vn + 16);
  if (!src) return TDM_FAIL(TDM_ERR_OOM, "override: out of memory");
  snprintf(src, vn + 16, "v = %s\n;", eq + 1);
  config_t tmp;
  config_init(&tmp);
  config_set_auto_convert(&tmp, CONFIG_TRUE);
  int ok = config_read_string(&tmp, src);
  free(src);
  if (!ok) {
    tdm_status st = TDM_FAIL(TDM_ERR_CONFIG,
                             "override -s %s: cannot parse the value: %s (strings need quotes: "
                             "-s env.task=\\\"hopper\\\")",
                             text, config_error_text(&tmp));
    config_destroy(&tmp);
    return st;
  }
  const config_setting_t *val = config_lookup(&tmp, "v");
  if (!val || config_setting_length(config_root_setting(&tmp)) != 1) {
    config_destroy(&tmp);
    return TDM_FAIL(TDM_ERR_CONFIG, "override -s %s: expected exactly one value", text);
  }
  // walk or create the groups of the path
  config_setting_t *parent = config_root_setting(lc);
  char *save = NULL, *part = strtok_r(key, ".", &save);
  tdm_status st = TDM_OK;
  while (part) {
    char *next = strtok_r(NULL, ".", &save);
    config_setting_t *m = config_setting_get_member(parent, part);
    if (next) {
      if (!m) m = config_setting_add(parent, part, CONFIG_TYPE_GROUP);
      if (!m || !config_setting_is_group(m)) {
        st = TDM_FAIL(TDM_ERR_CONFIG, "override -s %s: \"%s\" is %s, not a group", text, part,
                      m ? type_name(config_setting_type(m)) : "not a valid name");
        break;
      }
      parent = m;
    } else {
      if (m) config_setting_remove(parent, part);
      config_setting_t *d = config_setting_add(parent, part, config_setting_type(val));
      if (!d || !copy_value(d, val)) {
        st = TDM_FAIL(TDM_ERR_CONFIG, "override -s %s: cannot set \"%s\" (bad name?)", text, part);
        break;
      }
      config_setting_set_hook(d, (void *)text);
    }
    part = next;
  }
  config_destroy(&tmp);
  return st;
}

// ---------------------------------------------------------------------------------------------
// validation

static void path_of(const config_setting_t *s, char *buf, size_t n) {
  if (!s || config_setting_is_root(s) || !config_setting_name(s)) {
    buf[0] = 0;
    return;
  }
  char up[256];
  path_of(config_setting_parent(s), up, sizeof up);
  if (up[0])
    snprintf(buf, n, "%s.%s", up, config_setting_name(s));
  else
    snprintf(buf, n, "%s", config_setting_name(s));
}

// Every key in group g must be in the schema (the env group's non-task keys pass through).
static tdm_status check_known(const config_setting_t *g, const char *file) {
  int n = config_setting_length(g);
  for (int i = 0; i < n; i++) {
    const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
    char path[256], loc[600];
    path_of(s, path, sizeof path);
    if (!strncmp(path, "env.", 4) && strcmp(path, "env.task")) continue;  // task-specific
    const tdm_cfg_key *k = schema_find(path);
    if (!k) {
      where(s, file, loc, sizeof loc);
      const char *dym = did_you_mean(path);
      if (dym)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: unknown key \"%s\" (did you mean \"%s\"?)", loc, path,
                        dym);
      char list[1024] = "";
      char prefix[256] = "";
      const char *dot = strrchr(path, '.');
      if (dot) snprintf(prefix, sizeof prefix, "%.*s.", (int)(dot - path), path);
      size_t pl = strlen(prefix);
      for (int j = 0; j < n_schema; j++) {
        const char *p = schema[j].path;
        if (strncmp(p, prefix, pl) || strchr(p + pl, '.')) continue;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", p + pl);
      }
      return TDM_FAIL(TDM_ERR_CONFIG, "%s: unknown key \"%s\"; valid keys %s%s%s: %s", loc, path,
                      pl ? "in " : "here", pl ? prefix : "", pl ? "" : "", list);
    }
    if (k->type == TDM_KEY_GROUP) {
      if (!config_setting_is_group(s)) {
        where(s, file, loc, sizeof loc);
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: \"%s\" is %s; expected a group: %s = { ... };", loc,
                        path, type_name(config_setting_type(s)), path);
      }
      TDM_TRY(check_known(s, file));
    }
  }
  return TDM_OK;
}

static bool device_ok(const char *s) {
  if (!strcmp(s, "auto") || !strcmp(s, "cpu") || !strcmp(s, "cuda")) return true;
  if (strncmp(s, "cuda:", 5) || !s[5]) return false;
  for (const char *p = s + 5; *p; p++)
    if (!isdigit((unsigned char)*p)) return false;
  return strlen(s + 5) <= 4 && atoi(s + 5) < 4096;  // tdm_dev_open's range, 0..4095
}

static bool name_ok(const char *s) {
  if (!s[0] || s[0] == '.') return false;
  for (const char *p = s; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')) return false;
  return true;
}

static bool in_choices(const char *choices, const char *v) {
  size_t n = strlen(v);
  for (const char *p = choices; *p;) {
    const char *bar = strchr(p, '|');
    size_t l = bar ? (size_t)(bar - p) : strlen(p);
    if (l == n && !strncmp(p, v, n)) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

// Look key k up, check its type and range, store it into v (defaults stay when absent).
static tdm_status resolve_key(const config_t *lc, const tdm_cfg_key *k, tdm_train_cfg *v,
                              const char *file) {
  if (k->type == TDM_KEY_GROUP) return TDM_OK;
  const config_setting_t *s = config_lookup(lc, k->path);
  if (!s) return TDM_OK;
  char loc[600], exp[160];
  where(s, file, loc, sizeof loc);
  expected(k, exp, sizeof exp);
  char *p = (char *)v + k->offset;
  int t = config_setting_type(s);
  bool is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
  bool is_num = is_int || t == CONFIG_TYPE_FLOAT;
  switch (k->type) {
    case TDM_KEY_INT:
    case TDM_KEY_I64: {
      double x;
      if (is_int) {
        x = (double)config_setting_get_int64(s);
      } else if (t == CONFIG_TYPE_FLOAT &&
                 config_setting_get_float(s) == floor(config_setting_get_float(s))) {
        x = config_setting_get_float(s);  // 1e6 is a fine step count
      } else {
        char got[64] = "";
        if (t == CONFIG_TYPE_FLOAT) snprintf(got, sizeof got, " %g", config_setting_get_float(s));
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s is %s%s; expected %s (%s)", loc, k->path,
                        type_name(t), got, exp, k->help);
      }
      if (!(x >= k->min && x <= k->max))
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s = %.0f is out of range; expected %s (%s)", loc,
                        k->path, x, exp, k->help);
      if (k->type == TDM_KEY_INT)
        *(int *)p = (int)x;
      else
        *(int64_t *)p = is_int ? (int64_t)config_setting_get_int64(s) : (int64_t)x;
      return TDM_OK;
    }
    case TDM_KEY_FLOAT: {
      if (!is_num)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s is %s; expected %s (%s)", loc, k->path,
                        type_name(t), exp, k->help);
      double x = config_setting_get_float(s);
      if (!(x >= k->min && x <= k->max)) {
        char xs[40];
        fmt_num(x, xs, sizeof xs);
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s = %s is out of range; expected %s (%s)", loc,
                        k->path, xs, exp, k->help);
      }
      *(double *)p = x;
      return TDM_OK;
    }
    case TDM_KEY_BOOL:
      if (t != CONFIG_TYPE_BOOL)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s is %s; expected %s (%s)", loc, k->path,
                        type_name(t), exp, k->help);
      *(bool *)p = config_setting_get_bool(s) != 0;
      return TDM_OK;
    case TDM_KEY_STRING: {
      if (t != CONFIG_TYPE_STRING)
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s is %s; expected %s, in quotes (%s)", loc, k->path,
                        type_name(t), exp, k->help);
      const char *x = config_setting_get_string(s);
      bool ok = strlen(x) < k->size;
      if (ok && !strcmp(k->path, "device"))
        ok = device_ok(x);
      else if (ok && k->choices)
        ok = in_choices(k->choices, x);
      else if (ok && !strcmp(k->path, "name"))
        ok = name_ok(x);
      if (!ok) {
        if (!strcmp(k->path, "name"))
          snprintf(exp, sizeof exp, "a non-empty name of letters, digits, '_', '-' and '.'");
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s = \"%s\" is not valid; expected %s (%s)", loc,
                        k->path, x, exp, k->help);
      }
      snprintf(p, k->size, "%s", x);
      return TDM_OK;
    }
    case TDM_KEY_ENTROPY: {
      if (t == CONFIG_TYPE_STRING && !strcmp(config_setting_get_string(s), "auto")) {
        v->target_entropy_auto = true;
        v->target_entropy = 0;
        return TDM_OK;
      }
      if (!is_num ||
          !(config_setting_get_float(s) >= k->min && config_setting_get_float(s) <= k->max))
        return TDM_FAIL(TDM_ERR_CONFIG, "%s: %s is not valid; expected %s (%s)", loc, k->path, exp,
                        k->help);
      v->target_entropy_auto = false;
      v->target_entropy = config_setting_get_float(s);
      return TDM_OK;
    }
    case TDM_KEY_GROUP:
      return TDM_OK;
  }
  return TDM_OK;
}

// The place (where) of key k1, else of key k2: a cross-key error names the key it was written at.
static void where_either(const config_t *lc, const char *k1, const char *k2, const char *file,
                         char *loc, size_t n) {
  const config_setting_t *s = config_lookup(lc, k1);
  where(s ? s : config_lookup(lc, k2), file, loc, n);
}

static tdm_status finish_load(tdm_config *cfg, const char *file, const char *const *overrides,
                              int n_overrides) {
  for (int i = 0; i < n_overrides; i++) TDM_TRY(apply_override(&cfg->lc, overrides[i]));
  TDM_TRY(check_known(config_root_setting(&cfg->lc), file));
  for (int i = 0; i < n_schema; i++) TDM_TRY(resolve_key(&cfg->lc, &schema[i], &cfg->v, file));
  // cross-key checks
  const tdm_train_cfg *v = &cfg->v;
  if (v->eval_episodes < 1 || v->keep_checkpoints < 1)
    return TDM_FAIL(TDM_ERR_CONFIG, "%s: eval_episodes and keep_checkpoints must be >= 1", file);
  char loc[600];
  if (v->batch_size > v->buffer_size) {
    where_either(&cfg->lc, "agent.batch_size", "agent.buffer_size", file, loc, sizeof loc);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "%s: agent.batch_size = %d is larger than agent.buffer_size = %lld; expected "
                    "batch_size <= buffer_size",
                    loc, v->batch_size, (long long)v->buffer_size);
  }
  if (v->num_envs > v->buffer_size) {
    where_either(&cfg->lc, "agent.buffer_size", "num_envs", file, loc, sizeof loc);
    return TDM_FAIL(TDM_ERR_CONFIG,
                    "%s: agent.buffer_size = %lld is smaller than num_envs = %d (one env step "
                    "adds num_envs transitions); expected num_envs <= buffer_size",
                    loc, (long long)v->buffer_size, v->num_envs);
  }
  return TDM_OK;
}

static void init_lc(tdm_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  config_init(&cfg->lc);
  config_set_auto_convert(&cfg->lc, CONFIG_TRUE);
  tdm_train_cfg_defaults(&cfg->v);
}

tdm_status tdm_config_load(tdm_config *cfg, const char *path, const char *const *overrides,
                           int n_overrides) {
  init_lc(cfg);
  if (path) {
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) return TDM_FAIL(TDM_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    // the whole text, for the integer-literal check (configurations are small; 16 MB at most)
    size_t n;
    char *text = tdm_read_all(f, 16u << 20, &n);
    bool read_err = ferror(f) != 0;
    fclose(f);
    if (!text) return TDM_FAIL(TDM_ERR_OOM, "config %s: out of memory reading it", path);
    if (read_err) {
      free(text);
      return TDM_FAIL(TDM_ERR_IO, "cannot read config %s", path);
    }
    tdm_status cs = check_int_literals(text, path, true);
    free(text);
    TDM_TRY(cs);
    if (!config_read_file(&cfg->lc, path)) {
      const char *ef = config_error_file(&cfg->lc);
      return TDM_FAIL(TDM_ERR_CONFIG, "%s:%d - %s", ef ? ef : path, config_error_line(&cfg->lc),
                      config_error_text(&cfg->lc));
    }
  }
  return finish_load(cfg, path ? path : "<defaults>", overrides, n_overrides);
}

tdm_status tdm_config_load_string(tdm_config *cfg, const char *text, const char *name,
                                  const char *const *overrides, int n_overrides) {
  init_lc(cfg);
  snprintf(cfg->path, sizeof cfg->path, "%s", name ? name : "<string>");
  TDM_TRY(check_int_literals(text, cfg->path, true));
  if (!config_read_string(&cfg->lc, text))
    return TDM_FAIL(TDM_ERR_CONFIG, "%s:%d - %s", cfg->path, config_error_line(&cfg->lc),
                    config_error_text(&cfg->lc));
  return finish_load(cfg, cfg->path, overrides, n_overrides);
}

void tdm_config_free(tdm_config *cfg) {
  if (cfg) config_destroy(&cfg->lc);
}

const config_setting_t *tdm_config_env_group(const tdm_config *cfg) {
  const config_setting_t *g = config_lookup(&cfg->lc, "env");
  return g && config_setting_is_group(g) ? g : NULL;
}

// ---------------------------------------------------------------------------------------------
// resolved output

static void put_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(f, "\\%c", *s);
    else if (*s == '\n')
      fputs("\\n", f);
    else if (*s == '\t')
      fputs("\\t", f);
    else
      fputc(*s, f);
  }
  fputc('"', f);
}

static void put_float(FILE *f, double x) {
  char b[48];
  if (isnan(x) || isinf(x)) {
    fputs(isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf"), f);  // libconfig cannot read these
    return;
  }
  fmt_num(x, b, sizeof b);
  if (!strpbrk(b, ".eE")) strcat(b, ".0");
  fputs(b, f);
}

static void put_int64(FILE *f, long long x) {
  if (x > 2147483647LL || x < -2147483648LL)
    fprintf(f, "%lldL", x);
  else
    fprintf(f, "%lld", x);
}

static void put_setting_value(FILE *f, const config_setting_t *s, int indent);

static void put_member(FILE *f, const config_setting_t *s, int indent) {
  fprintf(f, "%*s%s = ", indent, "", config_setting_name(s));
  put_setting_value(f, s, indent);
  fputs(";\n", f);
}

static void put_setting_value(FILE *f, const config_setting_t *s, int indent) {
  int t = config_setting_type(s);
  switch (t) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
      put_int64(f, config_setting_get_int64(s));
      break;
    case CONFIG_TYPE_FLOAT:
      put_float(f, config_setting_get_float(s));
      break;
    case CONFIG_TYPE_BOOL:
      fputs(config_setting_get_bool(s) ? "true" : "false", f);
      break;
    case CONFIG_TYPE_STRING:
      put_string(f, config_setting_get_string(s));
      break;
    case CONFIG_TYPE_GROUP: {
      fputs("{\n", f);
      for (int i = 0; i < config_setting_length(s); i++)
        put_member(f, config_setting_get_elem(s, (unsigned)i), indent + 2);
      fprintf(f, "%*s}", indent, "");
      break;
    }
    default: {  // array or list
      fputc(t == CONFIG_TYPE_ARRAY ? '[' : '(', f);
      for (int i = 0; i < config_setting_length(s); i++) {
        if (i) fputs(", ", f);
        put_setting_value(f, config_setting_get_elem(s, (unsigned)i), indent + 2);
      }
      fputc(t == CONFIG_TYPE_ARRAY ? ']' : ')', f);
    }
  }
}

static void put_key(FILE *f, const tdm_cfg_key *k, const tdm_train_cfg *v, int indent) {
  const char *leaf = strrchr(k->path, '.');
  leaf = leaf ? leaf + 1 : k->path;
  const char *p = (const char *)v + k->offset;
  fprintf(f, "%*s%s = ", indent, "", leaf);
  switch (k->type) {
    case TDM_KEY_INT:
      fprintf(f, "%d", *(const int *)p);
      break;
    case TDM_KEY_I64:
      put_int64(f, (long long)*(const int64_t *)p);
      break;
    case TDM_KEY_FLOAT:
      put_float(f, *(const double *)p);
      break;
    case TDM_KEY_BOOL:
      fputs(*(const bool *)p ? "true" : "false", f);
      break;
    case TDM_KEY_STRING:
      put_string(f, p);
      break;
    case TDM_KEY_ENTROPY:
      if (v->target_entropy_auto)
        fputs("\"auto\"", f);
      else
        put_float(f, v->target_entropy);
      break;
    case TDM_KEY_GROUP:
      break;
  }
  fprintf(f, ";  # %s\n", k->help);
}

static void write_impl(const tdm_config *cfg, FILE *f, bool for_hash) {
  if (!for_hash)
    fprintf(f, "# tandem %s resolved configuration%s%s (every key with its final value)\n",
            TDM_VERSION, cfg->path[0] ? " from " : "", cfg->path);
  // top level, then each group
  for (int i = 0; i < n_schema; i++) {
    const tdm_cfg_key *k = &schema[i];
    if (strchr(k->path, '.') || k->type == TDM_KEY_GROUP) continue;
    if (for_hash && k->resume_may_change) continue;
    put_key(f, k, &cfg->v, 0);
  }
  for (int g = 0; g < n_schema; g++) {
    if (schema[g].type != TDM_KEY_GROUP) continue;
    const char *gname = schema[g].path;
    size_t gl = strlen(gname);
    fprintf(f, "\n# %s\n%s = {\n", schema[g].help, gname);
    for (int i = 0; i < n_schema; i++) {
      const tdm_cfg_key *k = &schema[i];
      if (strncmp(k->path, gname, gl) || k->path[gl] != '.') continue;
      if (for_hash && k->resume_may_change) continue;
      put_key(f, k, &cfg->v, 2);
    }
    const config_setting_t *gs = config_lookup(&cfg->lc, gname);
    if (!strcmp(gname, "env") && gs && config_setting_is_group(gs)) {
      for (int i = 0; i < config_setting_length(gs); i++) {
        const config_setting_t *s = config_setting_get_elem(gs, (unsigned)i);
        if (strcmp(config_setting_name(s), "task")) put_member(f, s, 2);
      }
    }
    fputs("};\n", f);
  }
}

tdm_status tdm_config_write(const tdm_config *cfg, FILE *f) {
  write_impl(cfg, f, false);
  if (ferror(f)) return TDM_FAIL(TDM_ERR_IO, "writing the resolved configuration failed");
  return TDM_OK;
}

tdm_status tdm_config_save(const tdm_config *cfg, const char *path) {
  tdm_afile a;
  TDM_TRY(tdm_afile_open(&a, path));
  tdm_status st = tdm_config_write(cfg, a.f);
  if (st != TDM_OK) {
    tdm_afile_abort(&a);
    return st;
  }
  return tdm_afile_commit(&a);
}

static char *hash_text(const tdm_config *cfg);

uint32_t tdm_config_hash(const tdm_config *cfg) {
  char *buf = hash_text(cfg);
  if (!buf) return 0;
  uint32_t h = tdm_crc32(0, buf, strlen(buf));
  free(buf);
  return h;
}

static char *hash_text(const tdm_config *cfg) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) return NULL;
  write_impl(cfg, f, true);
  fclose(f);
  return buf;
}

bool tdm_config_first_diff(const tdm_config *a, const tdm_config *b, char *buf, size_t n) {
  char *ta = hash_text(a), *tb = hash_text(b);
  bool differ = false;
  if (!ta || !tb) {
    snprintf(buf, n, "(out of memory comparing configurations)");
    differ = true;
  } else if (strcmp(ta, tb)) {
    differ = true;
    // find the first differing line and the group it is in
    const char *pa = ta, *pb = tb, *group = "";
    size_t gl = 0;
    while (*pa && *pb) {
      const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
      size_t la = ea ? (size_t)(ea - pa) : strlen(pa), lb = eb ? (size_t)(eb - pb) : strlen(pb);
      if (la != lb || memcmp(pa, pb, la)) {
        const char *hash_a = memchr(pa, '#', la), *hash_b = memchr(pb, '#', lb);
        int ka = (int)(hash_a ? (size_t)(hash_a - pa) : la),
            kb = (int)(hash_b ? (size_t)(hash_b - pb) : lb);
        while (ka > 0 && (pa[ka - 1] == ' ' || pa[ka - 1] == ';')) ka--;
        while (kb > 0 && (pb[kb - 1] == ' ' || pb[kb - 1] == ';')) kb--;
        snprintf(buf, n, "%.*s%s\"%.*s\" vs \"%.*s\"", (int)gl, group, gl ? ": " : "", ka, pa, kb,
                 pb);
        break;
      }
      if (la > 4 && !memcmp(pa + la - 4, " = {", 4)) group = pa, gl = la - 4;
      if (!ea || !eb) break;
      pa = ea + 1;
      pb = eb + 1;
    }
  }
  free(ta);
  free(tb);
  return differ;
}

void tdm_config_print_schema(FILE *f) {
  for (int i = 0; i < n_schema; i++) {
    const tdm_cfg_key *k = &schema[i];
    if (k->type == TDM_KEY_GROUP) {
      fprintf(f, "  %-24s %s\n", k->path, k->help);
      continue;
    }
    char def[64], exp[160];
    switch (k->type) {
      case TDM_KEY_STRING:
      case TDM_KEY_ENTROPY:
        snprintf(def, sizeof def, "\"%s\"", k->def_str);
        break;
      case TDM_KEY_BOOL:
        snprintf(def, sizeof def, "%s", k->def ? "true" : "false");
        break;
      default:
        fmt_num(k->def, def, sizeof def);
    }
    expected(k, exp, sizeof exp);
    fprintf(f, "  %-24s = %-10s %s; %s\n", k->path, def, k->help, exp);
  }
}
