// tandem bench ops: time one MLP training step (forward + backward + Adam) for two network shapes
// on the CPU and the GPU (plainly launched and replayed as a CUDA graph), next to the SGEMM rate
// of the same backend on a large square product.
//
// FLOP count: a step is counted as 3 x tdm_mlp_flops_fwd = 3 x 2 E B sum_l in_l out_l, that is
// the forward GEMMs plus the two backward GEMMs per layer (dW = dz^T x and dx = dz W, each the
// size of the forward one; dx of the first layer is computed too). Bias, LayerNorm, activation
// and Adam FLOPs are not counted, so GFLOP/s is a lower bound of the work done.
#include <cblas.h>  // openblas_get_corename: the CPU kernel OpenBLAS picked
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/cli.h"

enum { kBlocks = 5 };

typedef struct {
  const char *name, *desc;
  tdm_mlp_spec spec;
  int batch;  // rows per member
} bench_shape;

typedef struct {
  char backend[16], shape[32], desc[64], mode[16];
  double us, gflops, flop;
  int nodes, kernels;  // of the captured step (graph rows; 0 otherwise)
} bench_row;

typedef struct {
  char backend[16];
  int n;
  double ms, gflops;
} gemm_row;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: tandem bench ops [--device auto|cpu|cuda:N] [--iters N] [--tf32] [--json FILE]\n"
      "  Times one MLP training step (forward + backward with input gradients + Adam) for a\n"
      "  SAC critic (23 -> 256 -> 256 -> 1, E = 1, batch 256) and a PETS ensemble (E = 7,\n"
      "  23 -> 4 x 200 -> 36, batch 256 per member), and the SGEMM rate of the same backend on\n"
      "  a square product (1024^3 on the CPU, 4096^3 on the GPU). Each time is the median of\n"
      "  %d blocks after warm-up; GFLOP/s counts 3 x the forward GEMM FLOPs (2 E B sum in*out).\n"
      "\n"
      "  --device D   auto (default): CPU rows, and GPU rows when a GPU is visible;\n"
      "               cpu: CPU rows only; cuda:N: rows for GPU N only\n"
      "  --iters N    training steps per timed block (default 50)\n"
      "  --tf32       allow TF32 tensor-core math in GPU GEMMs (default: plain fp32)\n"
      "  --json FILE  also write the results as JSON to FILE\n",
      kBlocks);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Fill n floats of device memory with uniform numbers in [-1, 1) through a host staging buffer.
static tdm_status fill_random(tdm_dev *dev, float *d, size_t n, uint64_t seed) {
  float *h = malloc(n * sizeof(float));
  if (!h) return TDM_FAIL(TDM_ERR_OOM, "out of host memory (%zu floats)", n);
  tdm_rng r;
  tdm_rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) h[i] = (float)(2.0 * tdm_rng_uniform_d(&r) - 1.0);
  tdm_status st = tdm_dev_h2d(dev, d, h, n * sizeof(float));
  if (st == TDM_OK) st = tdm_dev_sync(dev);
  free(h);
  return st;
}

typedef struct {
  tdm_mlp *m;
  tdm_mlp_acts *acts;
  float *x, *dy, *dx;
  int B;
  tdm_adam_cfg cfg;
} step_ctx;

static tdm_status train_step(step_ctx *c) {
  TDM_TRY(tdm_mlp_forward(c->m, c->acts, c->x, c->B, false, NULL, true));
  TDM_TRY(tdm_mlp_backward(c->m, c->acts, c->dy, c->dx, TDM_GRAD_SET));
  return tdm_mlp_adam(c->m, &c->cfg);
}

// Median microseconds per training step of shape on dev; graph replays one captured step.
static tdm_status time_mlp(tdm_dev *dev, const bench_shape *sh, bool graph, int iters, double *us,
                           int *nodes, int *kernels) {
  const tdm_mlp_spec *s = &sh->spec;
  step_ctx c = {0};
  c.B = sh->batch;
  c.cfg = tdm_adam_defaults();
  tdm_graph *g = NULL;
  const size_t E = (size_t)s->members;
  const size_t nx = E * c.B * s->sizes[0], ny = E * c.B * s->sizes[s->n_layers];
  tdm_status st;
  TDM_TRYG(tdm_mlp_create(dev, s, &c.m));
  TDM_TRYG(tdm_mlp_init(c.m, 1));
  TDM_TRYG(tdm_mlp_acts_create(c.m, c.B, &c.acts));
  TDM_TRYG(tdm_dev_alloc(dev, nx * sizeof(float), (void **)&c.x));
  TDM_TRYG(tdm_dev_alloc(dev, nx * sizeof(float), (void **)&c.dx));
  TDM_TRYG(tdm_dev_alloc(dev, ny * sizeof(float), (void **)&c.dy));
  TDM_TRYG(fill_random(dev, c.x, nx, 2));
  TDM_TRYG(fill_random(dev, c.dy, ny, 3));
  // a small learning rate keeps the parameters sane over many steps
  c.cfg.lr = 1e-5f;
  const int warm = iters / 5 > 3 ? iters / 5 : 3;
  for (int i = 0; i < warm; i++) TDM_TRYG(train_step(&c));
  if (graph) {
    TDM_TRYG(tdm_graph_begin(dev));
    st = train_step(&c);
    tdm_graph *tmp = NULL;
    tdm_status st2 = tdm_graph_end(dev, &tmp);
    g = tmp;
    if (st == TDM_OK) st = st2;
    if (st != TDM_OK) goto fail;
    TDM_TRYG(tdm_graph_num_nodes(g, nodes, kernels));
    for (int i = 0; i < warm; i++) TDM_TRYG(tdm_graph_launch(dev, g));
  }
  TDM_TRYG(tdm_dev_sync(dev));
  double per[kBlocks];
  for (int b = 0; b < kBlocks; b++) {
    tdm_dev_timer t;
    double ms = 0;
    TDM_TRYG(tdm_dev_timer_start(dev, &t));
    for (int i = 0; i < iters; i++) {
      st = graph ? tdm_graph_launch(dev, g) : train_step(&c);
      if (st != TDM_OK) break;
    }
    tdm_status st2 = tdm_dev_timer_stop(&t, &ms);
    tdm_dev_timer_release(&t);
    if (st == TDM_OK) st = st2;
    if (st != TDM_OK) goto fail;
    per[b] = ms * 1e3 / iters;
  }
  *us = median(per, kBlocks);
  st = TDM_OK;
fail:
  if (g) tdm_graph_destroy(g);
  if (c.x) tdm_dev_free(dev, c.x);
  if (c.dx) tdm_dev_free(dev, c.dx);
  if (c.dy) tdm_dev_free(dev, c.dy);
  tdm_mlp_acts_destroy(c.acts);
  tdm_mlp_destroy(c.m);
  return st;
}

// Median milliseconds of one n x n x n SGEMM through tdm_gemm (cuBLAS or the CPU backend).
static tdm_status time_gemm(tdm_dev *dev, int n, int reps, double *ms_out) {
  const size_t nn = (size_t)n * n;
  float *A = NULL, *B = NULL, *C = NULL;
  tdm_status st;
  TDM_TRYG(tdm_dev_alloc(dev, nn * sizeof(float), (void **)&A));
  TDM_TRYG(tdm_dev_alloc(dev, nn * sizeof(float), (void **)&B));
  TDM_TRYG(tdm_dev_alloc(dev, nn * sizeof(float), (void **)&C));
  TDM_TRYG(fill_random(dev, A, nn, 4));
  TDM_TRYG(fill_random(dev, B, nn, 5));
  for (int i = 0; i < 2; i++)
    TDM_TRYG(tdm_gemm(dev, TDM_NOTRANS, TDM_NOTRANS, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n));
  TDM_TRYG(tdm_dev_sync(dev));
  double per[kBlocks];
  for (int b = 0; b < kBlocks; b++) {
    tdm_dev_timer t;
    double ms = 0;
    TDM_TRYG(tdm_dev_timer_start(dev, &t));
    for (int i = 0; i < reps && st == TDM_OK; i++)
      st = tdm_gemm(dev, TDM_NOTRANS, TDM_NOTRANS, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    tdm_status st2 = tdm_dev_timer_stop(&t, &ms);
    tdm_dev_timer_release(&t);
    if (st == TDM_OK) st = st2;
    if (st != TDM_OK) goto fail;
    per[b] = ms / reps;
  }
  *ms_out = median(per, kBlocks);
fail:
  tdm_dev_free(dev, A);
  tdm_dev_free(dev, B);
  tdm_dev_free(dev, C);
  return st;
}

// All rows for one device: both shapes (plain, and graph on the GPU) and the SGEMM rate.
static int bench_device(tdm_dev *dev, const bench_shape *shapes, int nshapes, int iters,
                        bench_row *rows, int *nrows, gemm_row *gr) {
  const bool gpu = dev->kind == TDM_DEV_CUDA;
  const char *backend = gpu ? "gpu" : "cpu";
  for (int k = 0; k < nshapes; k++) {
    for (int mode = 0; mode < (gpu ? 2 : 1); mode++) {
      double us = 0;
      int nodes = 0, kernels = 0;
      fprintf(stderr, "  %s %s %s ...\n", backend, shapes[k].name, mode ? "graph" : "plain");
      if (time_mlp(dev, &shapes[k], mode == 1, iters, &us, &nodes, &kernels) != TDM_OK) {
        tdm_cli_error(shapes[k].name);
        return 1;
      }
      bench_row *r = &rows[(*nrows)++];
      snprintf(r->backend, sizeof r->backend, "%s", backend);
      snprintf(r->shape, sizeof r->shape, "%s", shapes[k].name);
      snprintf(r->desc, sizeof r->desc, "%s", shapes[k].desc);
      snprintf(r->mode, sizeof r->mode, "%s", mode ? "graph" : "plain");
      r->us = us;
      r->nodes = nodes;
      r->kernels = kernels;
      r->flop = 3.0 * tdm_mlp_flops_fwd(&shapes[k].spec, shapes[k].batch);
      r->gflops = r->flop / (us * 1e-6) / 1e9;
    }
  }
  const int n = gpu ? 4096 : 1024;
  fprintf(stderr, "  %s sgemm %d^3 ...\n", backend, n);
  double ms = 0;
  if (time_gemm(dev, n, gpu ? 10 : 2, &ms) != TDM_OK) {
    tdm_cli_error("sgemm");
    return 1;
  }
  snprintf(gr->backend, sizeof gr->backend, "%s", backend);
  gr->n = n;
  gr->ms = ms;
  gr->gflops = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e9;
  return 0;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s >= 0x20) fputc(*s, f);
  }
  fputc('"', f);
}

int tdm_bench_ops(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    usage(stdout);
    return 0;
  }
  const char *device = "auto", *json = NULL;
  int iters = 50;
  bool tf32 = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--tf32")) {
      tf32 = true;
    } else if ((!strcmp(a, "--device") || !strcmp(a, "--iters") || !strcmp(a, "--json"))) {
      if (i + 1 >= argc) {
        fprintf(stderr, "tandem: %s needs a value\n", a);
        usage(stderr);
        return 2;
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--device")) {
        device = v;
      } else if (!strcmp(a, "--json")) {
        json = v;
      } else {
        long n;
        if (!tdm_cli_parse_int(a, v, 1, 1000000, &n)) return 2;
        iters = (int)n;
      }
    } else {
      fprintf(stderr, "tandem: unknown option \"%s\" for bench ops\n", a);
      usage(stderr);
      return 2;
    }
  }
  bool want_cpu, want_gpu;
  const char *gpu_spec, *gpu_skip;
  if (!tdm_cli_bench_devices(device, &want_cpu, &want_gpu, &gpu_spec, &gpu_skip)) return 2;

  // the two shapes
  bench_shape shapes[2];
  shapes[0].name = "sac_critic";
  shapes[0].desc = "23-256-256-1 relu, E=1, B=256";
  shapes[0].spec = tdm_mlp_spec_make(23, 256, 2, 1, 1, TDM_ACT_RELU);
  shapes[0].batch = 256;
  shapes[1].name = "pets_ensemble";
  shapes[1].desc = "23-4x200-36 silu, E=7, B=256";
  shapes[1].spec = tdm_mlp_spec_make(23, 200, 4, 36, 7, TDM_ACT_SILU);
  shapes[1].batch = 256;

  bench_row rows[8];
  gemm_row grows[2];
  int nrows = 0, ngemm = 0;
  char cpu_name[160] = "", gpu_name[160] = "";
  fprintf(stderr, "tandem bench ops: %d steps per block, %d blocks%s\n", iters, kBlocks,
          tf32 ? ", TF32 allowed on the GPU" : "");
  if (want_cpu) {
    tdm_dev *dev;
    if (tdm_dev_open("cpu", 0, &dev) != TDM_OK) {
      tdm_cli_error("opening the CPU device");
      return 1;
    }
    snprintf(cpu_name, sizeof cpu_name, "%s", dev->name);
    int rc = bench_device(dev, shapes, 2, iters, rows, &nrows, &grows[ngemm++]);
    tdm_dev_close(dev);
    if (rc) return rc;
  }
  if (want_gpu) {
    tdm_dev *dev;
    if (tdm_dev_open(gpu_spec, 1, &dev) != TDM_OK) {
      tdm_cli_error(gpu_spec);
      return 1;
    }
    dev->tf32 = tf32;
    snprintf(gpu_name, sizeof gpu_name, "%s", dev->name);
    int rc = bench_device(dev, shapes, 2, iters, rows, &nrows, &grows[ngemm++]);
    tdm_dev_close(dev);
    if (rc) return rc;
  }

  // the table, last
  printf("\nMLP training step (forward + backward + Adam), median of %d blocks x %d steps\n",
         kBlocks, iters);
  if (cpu_name[0])
    printf("cpu: %s, OpenBLAS %s kernels (OPENBLAS_CORETYPE overrides)\n", cpu_name,
           openblas_get_corename());
  if (gpu_name[0]) printf("gpu: %s%s\n", gpu_name, tf32 ? " (TF32 allowed)" : " (fp32)");
  printf("%-4s %-14s %-30s %-6s %12s %10s %10s %12s\n", "dev", "shape", "network", "mode",
         "us/step", "MFLOP", "GFLOP/s", "nodes(kern)");
  for (int i = 0; i < nrows; i++) {
    const bench_row *r = &rows[i];
    char nk[32] = "-";
    if (r->nodes > 0) snprintf(nk, sizeof nk, "%d(%d)", r->nodes, r->kernels);
    printf("%-4s %-14s %-30s %-6s %12.1f %10.1f %10.2f %12s\n", r->backend, r->shape, r->desc,
           r->mode, r->us, r->flop / 1e6, r->gflops, nk);
  }
  for (int i = 0; i < ngemm; i++) {
    const gemm_row *g = &grows[i];
    char what[32];
    snprintf(what, sizeof what, "%d^3", g->n);
    printf("%-4s %-14s %-30s %-6s %12.1f %10.1f %10.2f\n", g->backend, "sgemm", what, "plain",
           g->ms * 1e3, 2.0 * g->n * (double)g->n * g->n / 1e6, g->gflops);
  }
  if (gpu_skip) printf("GPU rows skipped: %s\n", gpu_skip);
  printf(
      "(MFLOP per step = 3 x forward GEMM FLOPs; sgemm rows: us per product; nodes(kern): "
      "nodes of the captured step's CUDA graph and the kernel launches among them)\n");

  if (json) {
    FILE *f = fopen(json, "w");
    if (!f) {
      perror(json);
      return 1;
    }
    fprintf(f,
            "{\n  \"bench\": \"ops\",\n  \"version\": \"%s\",\n  \"iters\": %d,\n  "
            "\"blocks\": %d,\n  \"tf32\": %s,\n  \"cpu\": ",
            TDM_VERSION, iters, kBlocks, tf32 ? "true" : "false");
    json_str(f, cpu_name);
    fprintf(f, ",\n  \"openblas_core\": ");
    json_str(f, openblas_get_corename());
    fprintf(f, ",\n  \"gpu\": ");
    json_str(f, gpu_name);
    fprintf(f, ",\n  \"gpu_skipped\": ");
    if (gpu_skip)
      json_str(f, gpu_skip);
    else
      fprintf(f, "null");
    fprintf(f, ",\n  \"mlp\": [\n");
    for (int i = 0; i < nrows; i++) {
      const bench_row *r = &rows[i];
      fprintf(f, "    {\"device\": \"%s\", \"shape\": \"%s\", \"network\": ", r->backend, r->shape);
      json_str(f, r->desc);
      fprintf(f,
              ", \"mode\": \"%s\", \"us_per_step\": %.3f, \"flop_per_step\": %.0f, "
              "\"gflops\": %.3f, \"graph_nodes\": %d, \"graph_kernels\": %d}%s\n",
              r->mode, r->us, r->flop, r->gflops, r->nodes, r->kernels, i + 1 < nrows ? "," : "");
    }
    fprintf(f, "  ],\n  \"sgemm\": [\n");
    for (int i = 0; i < ngemm; i++) {
      const gemm_row *g = &grows[i];
      fprintf(f, "    {\"device\": \"%s\", \"n\": %d, \"ms\": %.4f, \"gflops\": %.3f}%s\n",
              g->backend, g->n, g->ms, g->gflops, i + 1 < ngemm ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
      perror(json);
      return 1;
    }
    fprintf(stderr, "wrote %s\n", json);
  }
  return 0;
}
