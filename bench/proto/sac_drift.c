// Diagnostic, not part of the build (bench/RESULTS.md, GPU session 9): three SAC agents from one
// seed on the same random transitions (the fused kernel and the op graph on the GPU, the CPU
// agent), batch 256, 256x2, obs 17, act 6; after 8, 32, ... updates the relative distance between
// their actor and critic parameters (f-g fused vs graph, g-c graph vs CPU, f-c fused vs CPU), and
// each one's Q mean and alpha. A path whose arithmetic differed from the others' would drift from
// both faster than they drift from each other. After `make CUDA_ARCH=90`:
//   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Itests -DTDM_CUDA -I/usr/local/cuda/include
//      -c bench/proto/sac_drift.c -o build/sac_drift.o
//   g++ -o build/sac_drift build/sac_drift.o build/libtandem.a -lm -pthread
//      -L/usr/local/cuda/lib64 -lcublasLt -lcublas -lcurand -lcudart -lmujoco -lconfig -lopenblas
// (each command on one line)
//   build/sac_drift [UPDATES]   (default 2000; checkpoints up to 8000)
#include "sac_side.h"

#define OK(x)                                               \
  do {                                                      \
    tdm_status s_ = (x);                                    \
    if (s_ != TDM_OK) {                                     \
      fprintf(stderr, "%s failed: %s\n", #x, tdm_errmsg()); \
      return 1;                                             \
    }                                                       \
  } while (0)

int main(int argc, char **argv) {
  int total = argc > 1 ? atoi(argv[1]) : 2000;
  tdm_dev *g;
  OK(tdm_dev_open("cuda:0", 0, &g));
  tdm_sac_cfg c = tdm_sac_defaults();
  c.hidden = 256, c.layers = 2, c.batch_size = 256, c.buffer_size = 50000;
  tdm_agent_dims dims = {17, 6, 1};
  tdm_agent *ag[3];
  c.fused_update = true;
  OK(tdm_sac_create(g, &c, &dims, 7, &ag[0]));
  c.fused_update = false;
  OK(tdm_sac_create(g, &c, &dims, 7, &ag[1]));
  OK(tdm_sac_create(cpu(), &c, &dims, 7, &ag[2]));
  printf("fused active %d\n", (int)tdm_sac_fused_active(ag[0]));
  OK(feed2(ag[0], ag[1], 2000, 5));
  OK(feed2(ag[2], NULL, 2000, 5));
  int done = 0, chk[] = {8, 32, 128, 512, 1000, 2000, 4000, 8000};
  printf("updates | actor: f-g g-c f-c | critic: f-g g-c f-c | q_mean f g c | alpha f g c\n");
  for (int ci = 0; ci < 8 && chk[ci] <= total; ci++) {
    tdm_agent_stats st[3];
    while (done < chk[ci]) {
      int n = chk[ci] - done < 100 ? chk[ci] - done : 100;
      for (int k = 0; k < 3; k++) OK(tdm_agent_update(ag[k], n, &st[k]));
      done += n;
      if (done % 100 == 0) {
        OK(feed2(ag[0], ag[1], 50, 100 + done));
        OK(feed2(ag[2], NULL, 50, 100 + done));
      }
    }
    tdm_mlp *a[3], *q[3];
    for (int k = 0; k < 3; k++) a[k] = tdm_sac_actor(ag[k]), q[k] = tdm_sac_critic(ag[k]);
    printf("%5d | %.2e %.2e %.2e | %.2e %.2e %.2e | %.5g %.5g %.5g | %.5g %.5g %.5g\n", done,
           arr_err(a[0], a[1], 0), arr_err(a[1], a[2], 0), arr_err(a[0], a[2], 0),
           arr_err(q[0], q[1], 0), arr_err(q[1], q[2], 0), arr_err(q[0], q[2], 0), st[0].q_mean,
           st[1].q_mean, st[2].q_mean, st[0].alpha, st[1].alpha, st[2].alpha);
    fflush(stdout);
  }
  return 0;
}
