// Host side of the fused SAC update: the scratch layout (kernels/sac_fused.cu has the kernel).
#include "sac_fused.h"

typedef struct {
  float *base;  // NULL: only count
  size_t used;  // floats
} carver;

// The next n floats (rounded up to 4: 16-byte alignment); NULL when only counting.
static float *take(carver *c, size_t n) {
  float *r = c->base ? c->base + c->used : NULL;
  c->used += (n + 3) & ~(size_t)3;
  return r;
}

// Lay the scratch out from base (NULL: only count); returns the floats used.
static size_t layout(tdm_sacf_args *a, float *base, int B, int O, int A, int L, int H) {
  tdm_sacf_args dummy;
  if (!a) a = &dummy;
  carver cv = {base, 0}, *p = &cv;
  size_t b = (size_t)B, h = (size_t)H, w = (size_t)(O + A);
  a->epsn = take(p, 2 * b * A);
  for (int l = 0; l < L - 1; l++) {
    a->za[l] = take(p, 2 * b * h);
    a->ha[l] = take(p, 2 * b * h);
    a->zc[l] = take(p, 2 * b * h);
    a->hc[l] = take(p, 2 * b * h);
    a->zt[l] = take(p, 2 * b * h);
    a->ht[l] = take(p, 2 * b * h);
  }
  a->head = take(p, 2 * b * 2 * A);
  a->xq_next = take(p, b * w);
  a->xq_pi = take(p, b * w);
  a->xq_pad = take(p, b * ((w + 3) & ~(size_t)3));
  a->obs_pad = take(p, b * (((size_t)O + 3) & ~(size_t)3));
  a->a_pi = take(p, b * A);
  a->logp = take(p, b);
  a->logp_next = take(p, b);
  a->dlogp = take(p, b);
  a->dq = take(p, 2 * b);
  a->dzc[0] = take(p, 2 * b * h);
  a->dzc[1] = take(p, 2 * b * h);
  a->dza[0] = take(p, b * h);
  a->dza[1] = take(p, b * h);
  a->dhead = take(p, b * 2 * A);
  a->part = (double *)take(p, 2 * 4 * b);
  return cv.used;
}

size_t tdm_sacf_scratch_floats(int B, int O, int A, int L, int H) {
  return layout(NULL, NULL, B, O, A, L, H);
}

void tdm_sacf_carve(tdm_sacf_args *a, float *mem, int H) {
  layout(a, mem, a->B, a->O, a->A, a->L, H);
}
