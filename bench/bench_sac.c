// tandem bench sac: SAC gradient updates per second (sample + critic + actor + temperature +
// Polyak), by default at batch 256 with 256 x 2 ReLU networks, obs 17, act 6 (half_cheetah's
// sizes; --batch, --hidden, --layers, --obs and --act change them), from a replay buffer
// prefilled with random transitions. Rows: GPU with the update as one fused
// persistent kernel (the default, agent.fused_update; its launch replayed as a CUDA graph), GPU
// with the update's ops replayed as a CUDA graph (fused_update false; forked onto two streams, and
// on one stream), GPU launched plainly, and the CPU.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/cli.h"
#include "tandem/agent.h"

enum { kBlocks = 5, kFillEnvs = 1000 };

// The sizes timed: minibatch, hidden width and layers of actor and critics, obs and act dims.
typedef struct {
  long batch, hidden, layers, obs, act;
} sac_sizes;
static sac_sizes g_sz = {256, 256, 2, 17, 6};

// The agent configuration for the sizes (SB3's defaults otherwise).
static tdm_sac_cfg sized_cfg(void) {
  tdm_sac_cfg c = tdm_sac_defaults();
  c.batch_size = (int)g_sz.batch;
  c.hidden = (int)g_sz.hidden;
  c.layers = (int)g_sz.layers;
  return c;
}

typedef struct {
  char backend[16], mode[16];
  int updates;
  double us, per_s;
} sac_row;

// Nodes (and kernel launches) of one update captured as a CUDA graph, and its longest chain of
// kernels (critical path); -1 when not counted.
static int g_nodes = -1, g_kernels = -1, g_path = -1;
// Whether the fused row's agent ran the fused kernel (tdm_sac_fused_active); -1 when not timed.
static int g_fused = -1;
// Phase durations (us) of one profiled fused update after the timing (tdm_sac_fused_phases).
static double g_phase_us[64], g_work_us[64];
static int g_nphase = 0;

// Microseconds per tdm_agent_act call (1 env, exploring, host observation in, host action out:
// what the trainer waits for each env step), per device; -1 when not timed.
static double g_act_us[2] = {-1, -1};  // [0] GPU, [1] CPU

// One line: label, the n values and their sum.
static void print_us(const char *label, const double *us, int n) {
  double sum = 0;
  printf("%s", label);
  for (int i = 0; i < n; i++) {
    printf(" %.1f", us[i]);
    sum += us[i];
  }
  printf(" = %.1f\n", sum);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: tandem bench sac [--device auto|cpu|cuda:N] [--updates N] [--prefill N]\n"
          "                        [--threads N] [--tf32] [--json FILE] [--rows LIST]\n"
          "                        [--batch B] [--hidden H] [--layers L] [--obs O] [--act A]\n"
          "  SAC updates per second (one update = sample B transitions, critic, actor and\n"
          "  temperature steps, Polyak) with H x L ReLU networks (default 256 x 2), obs O, act A\n"
          "  (default 17 and 6), SB3 defaults otherwise, from a replay buffer prefilled with\n"
          "  random transitions. Each rate is the median of %d timed blocks after warm-up\n"
          "  (graph capture included in the warm-up).\n"
          "\n"
          "  GPU rows: fused (the update as one persistent kernel, replayed as a CUDA graph:\n"
          "  the default), graph (the update's ops replayed as a CUDA graph, forked onto two\n"
          "  streams: agent.fused_update = false), graph1 (one stream), graph_us (two\n"
          "  streams, actor forward not stacked), plain (launched one by one). Then the act\n"
          "  latency of a default agent with one env on each device (median of %d blocks).\n"
          "\n"
          "  --device D    auto (default): the GPU rows when a GPU is visible, and\n"
          "                the CPU row; cpu: the CPU row only; cuda:N: GPU N rows only\n"
          "  --updates N   updates per timed block (default 1000 on the GPU, 20 on the CPU)\n"
          "  --prefill N   transitions in the replay buffer (default 100000; capacity 1e6)\n"
          "  --threads N   CPU threads (default 0 = all cores)\n"
          "  --tf32        allow TF32 tensor-core math in GPU GEMMs (default: plain fp32)\n"
          "  --json FILE   also write the results as JSON to FILE\n"
          "  --rows LIST   GPU update rows to time, comma-separated (default: all five)\n"
          "  --batch B     minibatch (default 256, 1..65536)\n"
          "  --hidden H    hidden width (default 256, 1..4096)\n"
          "  --layers L    hidden layers (default 2, 1..7)\n"
          "  --obs O       observation size (default 17, 1..1024)\n"
          "  --act A       action size (default 6, 1..256)\n",
          kBlocks, kBlocks);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

// Fill the agent's replay with n random transitions (uniform obs and actions, normal rewards).
static tdm_status prefill(tdm_agent *a, int64_t n) {
  const int N = kFillEnvs;
  const int O = (int)g_sz.obs, A = (int)g_sz.act;
  float *obs = malloc(sizeof(float) * N * (2 * O + A + 1));
  uint8_t *flags = calloc((size_t)N, 2);
  if (!obs || !flags) {
    free(obs);
    free(flags);
    return TDM_FAIL(TDM_ERR_OOM, "bench sac: out of host memory");
  }
  float *nobs = obs + N * O, *act = nobs + N * O, *rew = act + N * A;
  uint8_t *term = flags, *trunc = flags + N;
  tdm_rng r;
  tdm_rng_init(&r, 1, 0);
  tdm_status st = TDM_OK;
  for (int64_t done = 0; done < n && st == TDM_OK; done += N) {
    int k = n - done < N ? (int)(n - done) : N;
    for (int i = 0; i < k * O; i++) obs[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < k * O; i++) nobs[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < k * A; i++) act[i] = 2.0f * tdm_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < k; i++) {
      rew[i] = tdm_rng_normal(&r);
      term[i] = tdm_rng_uniform(&r) < 0.001f;
    }
    tdm_transition_batch b = {k, obs, act, rew, nobs, term, trunc, NULL, TDM_SRC_REAL};
    st = tdm_agent_observe(a, &b);
  }
  free(obs);
  free(flags);
  if (st == TDM_OK) st = tdm_dev_sync(a->dev);
  return st;
}

// Median microseconds per act call of an agent of the sizes with one env (blocks of n calls after
// warm-up; on the GPU the act is one graph replay and a synchronisation).
static tdm_status time_act(tdm_dev *dev, int n, double *us) {
  tdm_sac_cfg c = sized_cfg();
  tdm_agent_dims dims = {(int)g_sz.obs, (int)g_sz.act, 1};
  tdm_agent *a = NULL;
  tdm_status st;
  float *obs = malloc(sizeof(float) * (size_t)(g_sz.obs + g_sz.act));
  if (!obs) return TDM_FAIL(TDM_ERR_OOM, "bench sac: out of host memory");
  float *act = obs + g_sz.obs;
  TDM_TRYG(tdm_sac_create(dev, &c, &dims, 1, &a));
  for (int i = 0; i < g_sz.obs; i++) obs[i] = 0.1f * (float)(i % 7) - 0.3f;
  for (int i = 0; i < 20; i++) TDM_TRYG(tdm_agent_act(a, obs, 1, true, act));
  double per[kBlocks];
  for (int b = 0; b < kBlocks; b++) {
    double t0 = tdm_now();
    for (int i = 0; i < n; i++) TDM_TRYG(tdm_agent_act(a, obs, 1, true, act));
    per[b] = (tdm_now() - t0) * 1e6 / n;
    obs[0] = act[0];  // the next block's input depends on this one's output
  }
  qsort(per, kBlocks, sizeof per[0], cmp_double);
  *us = per[kBlocks / 2];
  st = TDM_OK;
fail:
  tdm_agent_destroy(a);
  free(obs);
  return st;
}

// Median microseconds per update on dev.
// fused: the fused update kernel (with graph; g_fused records whether it really ran), else the
// op path. stacked: -1 the agent's default, 0 / 1 the actor forward over B rows twice / 2B rows
// once.
static tdm_status time_sac(tdm_dev *dev, bool graph, bool fused, int streams, int stacked,
                           int updates, int64_t fill, double *us) {
  tdm_graph *cg = NULL;
  tdm_sac_cfg c = sized_cfg();
  c.use_graph = graph;
  c.fused_update = fused;
  c.graph_streams = streams;
  tdm_agent_dims dims = {(int)g_sz.obs, (int)g_sz.act, kFillEnvs};
  tdm_agent *a = NULL;
  tdm_status st;
  TDM_TRYG(tdm_sac_create(dev, &c, &dims, 1, &a));
  if (fused) g_fused = tdm_sac_fused_active(a);
  if (stacked >= 0) TDM_TRYG(tdm_sac_set_stacked_actor(a, stacked == 1));
  TDM_TRYG(prefill(a, fill));
  int warm = updates / 5 > 3 ? updates / 5 : 3;
  tdm_agent_stats s;
  TDM_TRYG(tdm_agent_update(a, warm, &s));
  if (dev->kind == TDM_DEV_CUDA && !graph) {
    // count the launches of one update: capture a plain update (not replayed, so the agent's
    // state is untouched on the device) and count the graph's nodes
    TDM_TRYG(tdm_graph_begin(dev));
    st = tdm_agent_update(a, 1, NULL);
    tdm_status st2 = tdm_graph_end(dev, &cg);
    if (st == TDM_OK) st = st2;
    if (st != TDM_OK) goto fail;
    TDM_TRYG(tdm_graph_num_nodes(cg, &g_nodes, &g_kernels));
    TDM_TRYG(tdm_graph_critical_path(cg, &g_path));
  }
  double per[kBlocks];
  for (int b = 0; b < kBlocks; b++) {
    tdm_dev_timer t;
    double ms = 0;
    TDM_TRYG(tdm_dev_timer_start(dev, &t));
    st = tdm_agent_update(a, updates, NULL);
    tdm_status st2 = tdm_dev_timer_stop(&t, &ms);
    tdm_dev_timer_release(&t);
    if (st == TDM_OK) st = st2;
    if (st != TDM_OK) goto fail;
    per[b] = ms * 1e3 / updates;
  }
  // the statistics stay finite: the timed updates did real work
  TDM_TRYG(tdm_agent_update(a, 0, &s));
  if (!(s.critic_loss == s.critic_loss) || !(s.actor_loss == s.actor_loss)) {
    st = TDM_FAIL(TDM_ERR_NUMERIC, "bench sac: losses became NaN (critic %g, actor %g)",
                  s.critic_loss, s.actor_loss);
    goto fail;
  }
  if (fused && g_fused == 1) {
    // where the time of one fused update goes: block 0's clock after each phase (diagnostic,
    // after the timing, so the stores do not count)
    TDM_TRYG(tdm_sac_fused_profile(a, true));
    TDM_TRYG(tdm_agent_update(a, 3, NULL));
    TDM_TRYG(tdm_sac_fused_phases(a, g_phase_us, g_work_us, 64, &g_nphase));
    TDM_TRYG(tdm_sac_fused_profile(a, false));
  }
  qsort(per, kBlocks, sizeof per[0], cmp_double);
  *us = per[kBlocks / 2];
  st = TDM_OK;
fail:
  if (cg) tdm_graph_destroy(cg);
  tdm_agent_destroy(a);
  return st;
}

int tdm_bench_sac(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    usage(stdout);
    return 0;
  }
  static const char *mode_name[5] = {"fused", "graph", "graph1", "graph_us", "plain"};
  const char *device = "auto", *json = NULL, *row_list = NULL;
  long updates = 0, fill = 100000, threads = 0;
  bool tf32 = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--tf32")) {
      tf32 = true;
      continue;
    }
    // size options: name, where, range
    const struct {
      const char *opt;
      long *v, lo, hi;
    } sz[] = {{"--batch", &g_sz.batch, 1, 65536},
              {"--hidden", &g_sz.hidden, 1, 4096},
              {"--layers", &g_sz.layers, 1, 7},
              {"--obs", &g_sz.obs, 1, 1024},
              {"--act", &g_sz.act, 1, 256}};
    int size_opt = -1;
    for (int k = 0; k < 5; k++)
      if (!strcmp(a, sz[k].opt)) size_opt = k;
    bool known = size_opt >= 0 || !strcmp(a, "--device") || !strcmp(a, "--updates") ||
                 !strcmp(a, "--json") || !strcmp(a, "--prefill") || !strcmp(a, "--threads") ||
                 !strcmp(a, "--rows");
    if (!known) {
      fprintf(stderr, "tandem: unknown option \"%s\" for bench sac\n", a);
      usage(stderr);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "tandem: %s needs a value\n", a);
      usage(stderr);
      return 2;
    }
    const char *v = argv[++i];
    int ok = 1;
    if (size_opt >= 0)
      ok = tdm_cli_parse_int(a, v, sz[size_opt].lo, sz[size_opt].hi, sz[size_opt].v);
    else if (!strcmp(a, "--device"))
      device = v;
    else if (!strcmp(a, "--rows"))
      row_list = v;
    else if (!strcmp(a, "--json"))
      json = v;
    else if (!strcmp(a, "--updates"))
      ok = tdm_cli_parse_int(a, v, 1, 10000000, &updates);
    else if (!strcmp(a, "--prefill"))
      ok = tdm_cli_parse_int(a, v, 1, 1000000, &fill);
    else
      ok = tdm_cli_parse_int(a, v, 0, 4096, &threads);
    if (!ok) return 2;
  }
  bool want_row[5] = {true, true, true, true, true};
  if (row_list) {  // names separated by commas, each once or more, at least one
    for (int m = 0; m < 5; m++) want_row[m] = false;
    const char *p = row_list;
    for (;;) {
      size_t len = strcspn(p, ",");
      int m = 0;
      while (m < 5 && !(strlen(mode_name[m]) == len && !strncmp(p, mode_name[m], len))) m++;
      if (m == 5) {
        fprintf(stderr,
                "tandem: --rows \"%s\": \"%.*s\" is not a row; expected a comma-separated list "
                "of fused, graph, graph1, graph_us, plain\n",
                row_list, (int)len, p);
        return 2;
      }
      want_row[m] = true;
      if (!p[len]) break;
      p += len + 1;
    }
  }
  bool want_cpu, want_gpu;
  const char *gpu_spec, *gpu_skip;
  if (!tdm_cli_bench_devices(device, &want_cpu, &want_gpu, &gpu_spec, &gpu_skip)) return 2;

  sac_row rows[6];
  int nrows = 0;
  char cpu_name[160] = "", gpu_name[160] = "";
  char sizes[96];
  snprintf(sizes, sizeof sizes, "batch %ld, %ldx%ld relu, obs %ld, act %ld", g_sz.batch,
           g_sz.hidden, g_sz.layers, g_sz.obs, g_sz.act);
  fprintf(stderr, "tandem bench sac: %s, %ld prefilled\n", sizes, fill);
  if (want_gpu) {
    tdm_dev *dev;
    if (tdm_dev_open(gpu_spec, 1, &dev) != TDM_OK) {
      tdm_cli_error(gpu_spec);
      return 1;
    }
    dev->tf32 = tf32;
    snprintf(gpu_name, sizeof gpu_name, "%s", dev->name);
    // the fused kernel (the default); the op graph (fused_update false) on two streams, on
    // one stream, on two streams with the actor forward unstacked (its obs half then runs on the
    // second stream); plain launches
    for (int mode = 0; mode < 5; mode++) {
      if (!want_row[mode]) continue;
      sac_row *r = &rows[nrows];
      r->updates = updates ? (int)updates : 1000;
      fprintf(stderr, "  gpu %s ...\n", mode_name[mode]);
      if (time_sac(dev, mode < 4, mode == 0, mode == 2 ? 1 : 2, mode == 3 ? 0 : -1, r->updates,
                   fill, &r->us) != TDM_OK) {
        tdm_cli_error(mode_name[mode]);
        tdm_dev_close(dev);
        return 1;
      }
      snprintf(r->backend, sizeof r->backend, "gpu");
      snprintf(r->mode, sizeof r->mode, "%s", mode_name[mode]);
      r->per_s = 1e6 / r->us;
      nrows++;
    }
    fprintf(stderr, "  gpu act ...\n");
    if (time_act(dev, 2000, &g_act_us[0]) != TDM_OK) {
      tdm_cli_error("gpu act");
      tdm_dev_close(dev);
      return 1;
    }
    tdm_dev_close(dev);
  }
  if (want_cpu) {
    tdm_dev *dev;
    if (tdm_dev_open("cpu", (int)threads, &dev) != TDM_OK) {
      tdm_cli_error("opening the CPU device");
      return 1;
    }
    snprintf(cpu_name, sizeof cpu_name, "%s", dev->name);
    sac_row *r = &rows[nrows];
    r->updates = updates ? (int)updates : 20;
    fprintf(stderr, "  cpu ...\n");
    if (time_sac(dev, false, false, 2, -1, r->updates, fill, &r->us) != TDM_OK) {
      tdm_cli_error("cpu");
      tdm_dev_close(dev);
      return 1;
    }
    snprintf(r->backend, sizeof r->backend, "cpu");
    snprintf(r->mode, sizeof r->mode, "plain");
    r->per_s = 1e6 / r->us;
    nrows++;
    fprintf(stderr, "  cpu act ...\n");
    if (time_act(dev, 200, &g_act_us[1]) != TDM_OK) {
      tdm_cli_error("cpu act");
      tdm_dev_close(dev);
      return 1;
    }
    tdm_dev_close(dev);
  }

  // the table, last
  printf("\nSAC updates (%s), median of %d blocks\n", sizes, kBlocks);
  if (gpu_name[0]) printf("gpu: %s%s\n", gpu_name, tf32 ? " (TF32 allowed)" : " (fp32)");
  if (cpu_name[0]) printf("cpu: %s\n", cpu_name);
  printf("%-4s %-8s %10s %12s %12s\n", "dev", "mode", "updates", "us/update", "updates/s");
  for (int i = 0; i < nrows; i++)
    printf("%-4s %-8s %10d %12.1f %12.0f\n", rows[i].backend, rows[i].mode, rows[i].updates,
           rows[i].us, rows[i].per_s);
  const sac_row *fused_row = NULL, *graph_row = NULL;
  for (int i = 0; i < nrows; i++) {
    if (!strcmp(rows[i].backend, "gpu") && !strcmp(rows[i].mode, "fused")) fused_row = &rows[i];
    if (!strcmp(rows[i].backend, "gpu") && !strcmp(rows[i].mode, "graph")) graph_row = &rows[i];
  }
  if (g_fused == 1 && graph_row)
    printf("fused: 1 kernel per update (one persistent cooperative kernel), %.2fx the graph row\n",
           fused_row->per_s / graph_row->per_s);
  else if (g_fused == 1)
    printf("fused: 1 kernel per update (one persistent cooperative kernel)\n");
  if (g_nphase > 0) {
    print_us("fused phases (us, block 0's clock, one update):", g_phase_us, g_nphase);
    print_us("fused phase work (us, phase start to its slowest block's end of work):", g_work_us,
             g_nphase);
  }
  if (g_fused == 0)
    printf(
        "fused: NOT active on this device (tdm_sac_fused_active false): the fused row fell back "
        "to the op graph\n");
  if (g_nodes >= 0)
    printf(
        "one update as a CUDA graph of ops: %d nodes, %d of them kernel launches, %d on its "
        "longest chain (graph1 runs them all in one chain)\n",
        g_nodes, g_kernels, g_path);
  for (int d = 0; d < 2; d++)
    if (g_act_us[d] >= 0)
      printf("act, 1 env, exploring (host observation in, host action out): %s %.1f us\n",
             d == 0 ? "gpu" : "cpu", g_act_us[d]);
  if (gpu_skip) printf("GPU rows skipped: %s\n", gpu_skip);

  if (json) {
    const char *fused_json = g_fused < 0 ? "null" : g_fused ? "true" : "false";
    char widths[96] = "";  // "256, 256": the hidden widths, as before the size options
    for (int l = 0; l < g_sz.layers; l++)
      snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "%s%ld", l ? ", " : "",
               g_sz.hidden);
    FILE *f = fopen(json, "w");
    if (!f) {
      perror(json);
      return 1;
    }
    fprintf(f,
            "{\n  \"bench\": \"sac\",\n  \"version\": \"%s\",\n  \"batch\": %ld,\n  "
            "\"hidden\": [%s],\n  \"obs_dim\": %ld,\n  \"act_dim\": %ld,\n  "
            "\"prefill\": %ld,\n  \"blocks\": %d,\n  \"tf32\": %s,\n  \"graph_nodes\": %d,\n  "
            "\"graph_kernels\": %d,\n  \"graph_critical_path_kernels\": %d,\n  "
            "\"fused_active\": %s,\n",
            TDM_VERSION, g_sz.batch, widths, g_sz.obs, g_sz.act, fill, kBlocks,
            tf32 ? "true" : "false", g_nodes, g_kernels, g_path, fused_json);
    fprintf(f, "  \"cpu\": \"%s\",\n  \"gpu\": \"%s\",\n", cpu_name, gpu_name);
    for (int d = 0; d < 2; d++) {
      if (g_act_us[d] >= 0)
        fprintf(f, "  \"act_us_%s\": %.3f,\n", d == 0 ? "gpu" : "cpu", g_act_us[d]);
      else
        fprintf(f, "  \"act_us_%s\": null,\n", d == 0 ? "gpu" : "cpu");
    }
    fprintf(f, "  \"rows\": [\n");
    for (int i = 0; i < nrows; i++)
      fprintf(f,
              "    {\"device\": \"%s\", \"mode\": \"%s\", \"updates_per_block\": %d, "
              "\"us_per_update\": %.3f, \"updates_per_s\": %.1f}%s\n",
              rows[i].backend, rows[i].mode, rows[i].updates, rows[i].us, rows[i].per_s,
              i + 1 < nrows ? "," : "");
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
      perror(json);
      return 1;
    }
    fprintf(stderr, "wrote %s\n", json);
  }
  return 0;
}
