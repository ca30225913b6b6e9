// An MLP with its input, output and gradient buffers on one device, for the parity tests that
// run the same network on the CPU and the GPU (nn_parity_test, mlp_lane_parity_test).
#ifndef TANDEM_TEST_NN_SIDE_H
#define TANDEM_TEST_NN_SIDE_H

#include "test.h"

// One network with its buffers on one device.
typedef struct {
  tdm_dev *dev;
  tdm_mlp *m;
  tdm_mlp_acts *acts;
  float *x, *dy, *y, *dx;  // (E, B, in) or (B, in), (E, B, out), (E, B, out), like x
  size_t nx, ny;
  int B;
  bool shared;
} side;

static tdm_status side_make(side *s, tdm_dev *dev, const tdm_mlp_spec *spec, uint64_t seed, int B,
                            bool shared) {
  memset(s, 0, sizeof *s);
  s->dev = dev;
  s->B = B;
  s->shared = shared;
  s->nx = (shared ? 1 : (size_t)spec->members) * B * spec->sizes[0];
  s->ny = (size_t)spec->members * B * spec->sizes[spec->n_layers];
  TDM_TRY(tdm_mlp_create(dev, spec, &s->m));
  TDM_TRY(tdm_mlp_init(s->m, seed));
  TDM_TRY(tdm_mlp_acts_create(s->m, B, &s->acts));
  TDM_TRY(tdm_dev_alloc(dev, s->nx * 4, (void **)&s->x));
  TDM_TRY(tdm_dev_alloc(dev, s->nx * 4, (void **)&s->dx));
  TDM_TRY(tdm_dev_alloc(dev, s->ny * 4, (void **)&s->y));
  TDM_TRY(tdm_dev_alloc(dev, s->ny * 4, (void **)&s->dy));
  float *h = malloc((s->nx > s->ny ? s->nx : s->ny) * 4);
  tdm_t_rand(h, s->nx, -2.0f, 2.0f, seed + 1);
  TDM_TRY(tdm_dev_h2d(dev, s->x, h, s->nx * 4));
  tdm_t_rand(h, s->ny, -1.0f, 1.0f, seed + 2);
  TDM_TRY(tdm_dev_h2d(dev, s->dy, h, s->ny * 4));
  TDM_TRY(tdm_dev_sync(dev));
  free(h);
  return TDM_OK;
}

static void side_free(side *s) {
  if (!s->m) return;
  tdm_dev_free(s->dev, s->x), tdm_dev_free(s->dev, s->dx);
  tdm_dev_free(s->dev, s->y), tdm_dev_free(s->dev, s->dy);
  tdm_mlp_acts_destroy(s->acts);
  tdm_mlp_destroy(s->m);
}

#endif  // TANDEM_TEST_NN_SIDE_H
