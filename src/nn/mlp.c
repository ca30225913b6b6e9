// MLP ensembles: spec, create, init, forward, backward, Adam, Polyak (include/tandem/nn.h).
//
// Everything runs through the public ops (ops.h), so the same code drives the CPU twin and the
// GPU; parameters and activations live in device memory and are never touched from the host.
// Layer l of member e maps x_e (B, in) -> z_e = x_e W_e^T + b_e (B, out), one strided batched
// GEMM over the E members (input stride 0 when all members read one shared input).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/nn.h"

tdm_mlp_spec tdm_mlp_spec_make(int in, int hidden, int n_hidden, int out, int members,
                               tdm_act act) {
  tdm_mlp_spec s;
  memset(&s, 0, sizeof s);
  s.n_layers = n_hidden + 1;
  s.sizes[0] = in;
  for (int i = 1; i <= n_hidden && i <= TDM_MLP_MAX_LAYERS; i++) s.sizes[i] = hidden;
  if (n_hidden >= 0 && n_hidden + 1 <= TDM_MLP_MAX_LAYERS) s.sizes[n_hidden + 1] = out;
  s.members = members;
  s.hidden_act = act;
  s.layernorm = false;
  s.layernorm_eps = 1e-5f;
  s.dropout = 0.0f;
  s.out_act = TDM_OUT_NONE;
  s.simnorm_group = 8;
  s.init = TDM_INIT_DEFAULT;
  s.init_std = 0.02f;
  s.zero_last = false;
  return s;
}

// Check a spec; the message names the offending field.
static tdm_status spec_check(const tdm_mlp_spec *s) {
  if (s->n_layers < 1 || s->n_layers > TDM_MLP_MAX_LAYERS)
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: n_layers = %d is out of range 1..%d (linear layers)",
                    s->n_layers, TDM_MLP_MAX_LAYERS);
  for (int i = 0; i <= s->n_layers; i++)
    if (s->sizes[i] <= 0)
      return TDM_FAIL(TDM_ERR_ARG, "mlp spec: sizes[%d] = %d must be > 0 (%s)", i, s->sizes[i],
                      i == 0             ? "input size"
                      : i == s->n_layers ? "output size"
                                         : "hidden units");
  if (s->members < 1)
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: members = %d must be >= 1", s->members);
  if ((int)s->hidden_act < TDM_ACT_NONE || (int)s->hidden_act > TDM_ACT_ELU)
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: hidden_act = %d is not a tdm_act", (int)s->hidden_act);
  if (!(s->dropout >= 0.0f && s->dropout < 1.0f))
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: dropout = %g must be in [0, 1)", s->dropout);
  if (s->layernorm && !(s->layernorm_eps > 0.0f))
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: layernorm_eps = %g must be > 0", s->layernorm_eps);
  if ((int)s->out_act < TDM_OUT_NONE || (int)s->out_act > TDM_OUT_SIMNORM)
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: out_act = %d is not a tdm_out_act", (int)s->out_act);
  if (s->out_act == TDM_OUT_SIMNORM) {
    int out = s->sizes[s->n_layers];
    if (s->simnorm_group < 1 || out % s->simnorm_group != 0)
      return TDM_FAIL(TDM_ERR_ARG,
                      "mlp spec: simnorm_group = %d must be >= 1 and divide the output size "
                      "sizes[%d] = %d",
                      s->simnorm_group, s->n_layers, out);
  }
  if ((int)s->init < TDM_INIT_DEFAULT || (int)s->init > TDM_INIT_TRUNC_NORMAL)
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: init = %d is not a tdm_init_kind", (int)s->init);
  if (s->init == TDM_INIT_TRUNC_NORMAL && !(s->init_std > 0.0f))
    return TDM_FAIL(TDM_ERR_ARG, "mlp spec: init_std = %g must be > 0 for TDM_INIT_TRUNC_NORMAL",
                    s->init_std);
  return TDM_OK;
}

tdm_status tdm_mlp_create(tdm_dev *dev, const tdm_mlp_spec *spec, tdm_mlp **out) {
  *out = NULL;
  if (!dev || !spec) return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_create: dev and spec must not be NULL");
  TDM_TRY(spec_check(spec));
  tdm_mlp *m = calloc(1, sizeof *m);
  if (!m) return TDM_FAIL(TDM_ERR_OOM, "out of host memory for an MLP");
  m->spec = *spec;
  m->dev = dev;
  // parameter layout: per layer W (E, out, in), b (E, out), then gamma, beta (E, out) when the
  // layer is hidden and LayerNorm is on
  const size_t E = (size_t)spec->members;
  size_t off = 0;
  for (int l = 0; l < spec->n_layers; l++) {
    tdm_mlp_layer *ly = &m->layers[l];
    ly->in = spec->sizes[l];
    ly->out = spec->sizes[l + 1];
    ly->w = off;
    off += E * (size_t)ly->out * (size_t)ly->in;
    ly->b = off;
    off += E * (size_t)ly->out;
    if (spec->layernorm && l < spec->n_layers - 1) {
      ly->ln_g = off;
      off += E * (size_t)ly->out;
      ly->ln_b = off;
      off += E * (size_t)ly->out;
    }
  }
  m->n_params = off;
  tdm_status st;
  const size_t bytes = off * sizeof(float);
  TDM_TRYG(tdm_dev_alloc(dev, bytes, (void **)&m->params));
  TDM_TRYG(tdm_dev_alloc(dev, bytes, (void **)&m->grads));
  TDM_TRYG(tdm_dev_alloc(dev, bytes, (void **)&m->adam_m));
  TDM_TRYG(tdm_dev_alloc(dev, bytes, (void **)&m->adam_v));
  TDM_TRYG(tdm_dev_alloc(dev, sizeof(int32_t), (void **)&m->adam_step));
  // Adam scratch, then one zeroed uint32: the sync counter of tdm_adam_step_groups
  const size_t n_scr = tdm_adam_scratch_floats(dev, off) + 1;
  TDM_TRYG(tdm_dev_alloc(dev, n_scr * sizeof(float), (void **)&m->adam_scratch));
  TDM_TRYG(tdm_dev_memset(dev, m->adam_scratch, 0, n_scr * sizeof(float)));
  TDM_TRYG(tdm_dev_alloc(dev, sizeof(tdm_rng_ctr), (void **)&m->rng));
  TDM_TRYG(tdm_dev_memset(dev, m->params, 0, bytes));
  TDM_TRYG(tdm_dev_memset(dev, m->grads, 0, bytes));
  TDM_TRYG(tdm_dev_memset(dev, m->adam_m, 0, bytes));
  TDM_TRYG(tdm_dev_memset(dev, m->adam_v, 0, bytes));
  TDM_TRYG(tdm_dev_memset(dev, m->adam_step, 0, sizeof(int32_t)));
  TDM_TRYG(tdm_dev_memset(dev, m->rng, 0, sizeof(tdm_rng_ctr)));
  TDM_TRYG(tdm_dev_sync(dev));
  *out = m;
  return TDM_OK;
fail:
  tdm_mlp_destroy(m);
  return tdm_adderr(st, "while creating an MLP of %zu parameters: ", off);
}

void tdm_mlp_destroy(tdm_mlp *m) {
  if (!m) return;
  tdm_dev_free(m->dev, m->params);
  tdm_dev_free(m->dev, m->grads);
  tdm_dev_free(m->dev, m->adam_m);
  tdm_dev_free(m->dev, m->adam_v);
  tdm_dev_free(m->dev, m->adam_step);
  tdm_dev_free(m->dev, m->adam_scratch);
  tdm_dev_free(m->dev, m->rng);
  free(m);
}

// Host sub-stream for one tensor: layer l, member e, kind 0 = W, 1 = b. Member e's numbers do
// not depend on E, so member 0 of an ensemble equals a single network made with the same seed.
static uint64_t init_sub(int l, int e, int kind) {
  return ((uint64_t)(l + 1) << 40) | ((uint64_t)e << 8) | (uint64_t)kind;
}

// SplitMix64 finaliser: the dropout stream's key, decorrelated from the init key.
static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

tdm_status tdm_mlp_init(tdm_mlp *m, uint64_t seed) {
  const tdm_mlp_spec *s = &m->spec;
  float *h = calloc(m->n_params, sizeof(float));  // (n_params) host staging copy
  if (!h)
    return TDM_FAIL(TDM_ERR_OOM, "out of host memory: %zu floats to initialise an MLP",
                    m->n_params);
  for (int l = 0; l < s->n_layers; l++) {
    const tdm_mlp_layer *ly = &m->layers[l];
    const bool last = l == s->n_layers - 1;
    const size_t nw = (size_t)ly->out * (size_t)ly->in;
    for (int e = 0; e < s->members; e++) {
      float *w = h + ly->w + (size_t)e * nw;       // (out, in)
      float *b = h + ly->b + (size_t)e * ly->out;  // (out)
      if (last && s->zero_last) continue;          // W, b stay zero
      tdm_rng r;
      if (s->init == TDM_INIT_DEFAULT) {
        // PyTorch nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for W and b
        const double k = 1.0 / sqrt((double)ly->in);
        tdm_rng_init(&r, seed, init_sub(l, e, 0));
        for (size_t i = 0; i < nw; i++) w[i] = (float)(k * (2.0 * tdm_rng_uniform_d(&r) - 1.0));
        tdm_rng_init(&r, seed, init_sub(l, e, 1));
        for (int i = 0; i < ly->out; i++) b[i] = (float)(k * (2.0 * tdm_rng_uniform_d(&r) - 1.0));
      } else {
        // N(0, init_std) truncated at +-2 std by rejection; b = 0
        tdm_rng_init(&r, seed, init_sub(l, e, 0));
        for (size_t i = 0; i < nw; i++) {
          float z;
          do z = tdm_rng_normal(&r);
          while (fabsf(z) > 2.0f);
          w[i] = s->init_std * z;
        }
      }
    }
    if (ly->ln_g) {
      for (size_t i = 0; i < (size_t)s->members * ly->out; i++) h[ly->ln_g + i] = 1.0f;  // gamma
    }
  }
  tdm_rng_ctr ctr = {mix64(seed ^ 0xD1B54A32D192ED03ull), 0};
  const size_t bytes = m->n_params * sizeof(float);
  tdm_status st;
  TDM_TRYG(tdm_dev_h2d(m->dev, m->params, h, bytes));
  TDM_TRYG(tdm_dev_h2d(m->dev, m->rng, &ctr, sizeof ctr));
  TDM_TRYG(tdm_dev_memset(m->dev, m->grads, 0, bytes));
  TDM_TRYG(tdm_dev_memset(m->dev, m->adam_m, 0, bytes));
  TDM_TRYG(tdm_dev_memset(m->dev, m->adam_v, 0, bytes));
  TDM_TRYG(tdm_dev_memset(m->dev, m->adam_step, 0, sizeof(int32_t)));
  // the host buffers must outlive the asynchronous copies
  TDM_TRYG(tdm_dev_sync(m->dev));
  free(h);
  return TDM_OK;
fail:
  tdm_dev_sync(m->dev);
  free(h);
  return st;
}

// ---------------------------------------------------------------------------------------------
// activations

static size_t round16(size_t n) {
  return (n + 15) & ~(size_t)15;
}

// Lay out (or, with base NULL, only size) the activation buffer; returns its size in floats.
static size_t acts_layout(tdm_mlp_acts *a, const tdm_mlp *m, float *base) {
  const tdm_mlp_spec *s = &m->spec;
  const size_t R = (size_t)s->members * (size_t)a->max_batch;  // rows over all members
  size_t off = 0, maxw = 0;
#define TAKE(ptr, n)              \
  do {                            \
    if (base) (ptr) = base + off; \
    off += round16(n);            \
  } while (0)
  for (int l = 0; l <= s->n_layers; l++)
    if ((size_t)s->sizes[l] > maxw) maxw = (size_t)s->sizes[l];
  for (int l = 0; l < s->n_layers; l++) {
    const size_t o = (size_t)s->sizes[l + 1];
    const bool hidden = l < s->n_layers - 1;
    a->mask[l] = a->n[l] = a->mean[l] = a->rstd[l] = NULL;
    a->rmask[l] = NULL;
    TAKE(a->z[l], R * o);
    // ReLU bit masks for the fused backward (GPU; relu layers on the one-matmul forward path)
    const size_t mb = tdm_relu_mask_bytes(m->dev, a->max_batch, (int)o);
    if (hidden && mb && s->hidden_act == TDM_ACT_RELU && !s->layernorm && s->dropout == 0.0f) {
      float *p = NULL;
      TAKE(p, (size_t)s->members * mb / sizeof(float));
      a->rmask[l] = p;
    }
    if (hidden && s->dropout > 0.0f) TAKE(a->mask[l], R * o);
    if (hidden && s->layernorm) {
      TAKE(a->n[l], R * o);
      TAKE(a->mean[l], R);
      TAKE(a->rstd[l], R);
    }
    if (hidden || s->out_act != TDM_OUT_NONE)
      TAKE(a->a[l], R * o);
    else if (base)
      a->a[l] = a->z[l];  // a linear output layer's output is its z
  }
  TAKE(a->dbuf[0], R * maxw);
  TAKE(a->dbuf[1], R * maxw);
  TAKE(a->ones, (size_t)s->members);
  TAKE(a->discard, 2 * (size_t)s->members * maxw);
#undef TAKE
  return off;
}

tdm_status tdm_mlp_acts_create(const tdm_mlp *m, int max_batch, tdm_mlp_acts **out) {
  *out = NULL;
  if (max_batch < 1)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_acts_create: max_batch = %d must be >= 1", max_batch);
  tdm_mlp_acts *a = calloc(1, sizeof *a);
  if (!a) return TDM_FAIL(TDM_ERR_OOM, "out of host memory for MLP activations");
  a->m = m;
  a->max_batch = max_batch;
  size_t n = acts_layout(a, m, NULL);
  tdm_status st = tdm_dev_alloc(m->dev, n * sizeof(float), (void **)&a->buf);
  if (st != TDM_OK) {
    free(a);
    return tdm_adderr(st, "while allocating MLP activations for batch %d: ", max_batch);
  }
  acts_layout(a, m, a->buf);
  st = tdm_fill(m->dev, a->ones, (size_t)m->spec.members, 1.0f);
  if (st != TDM_OK) {
    tdm_mlp_acts_destroy(a);
    return st;
  }
  *out = a;
  return TDM_OK;
}

void tdm_mlp_acts_destroy(tdm_mlp_acts *acts) {
  if (!acts) return;
  tdm_dev_free(acts->m->dev, acts->buf);
  free(acts);
}

// ---------------------------------------------------------------------------------------------
// forward

tdm_status tdm_mlp_forward(tdm_mlp *m, tdm_mlp_acts *acts, const float *x, int B, bool shared_input,
                           float *y, bool train) {
  const tdm_mlp_spec *s = &m->spec;
  if (!acts || acts->m != m)
    return TDM_FAIL(TDM_ERR_ARG,
                    "tdm_mlp_forward: acts belong to another network; make them "
                    "with tdm_mlp_acts_create(m, ...)");
  if (B < 1 || B > acts->max_batch)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_forward: batch %d is outside 1..%d (max_batch of acts)",
                    B, acts->max_batch);
  if (!x) return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_forward: x is NULL");
  tdm_dev *dev = m->dev;
  const int E = s->members, L = s->n_layers;
  const bool drop = train && s->dropout > 0.0f;
  acts->batch = B;
  acts->shared_input = shared_input;
  acts->x = x;
  acts->train = drop;
  for (int l = 0; l < L; l++) acts->rmask_ok[l] = false;

  const float *in = x;                                             // (E, B, in) or (B, in)
  long long s_in = shared_input ? 0 : (long long)B * s->sizes[0];  // member stride of in
  for (int l = 0; l < L; l++) {
    const tdm_mlp_layer *ly = &m->layers[l];
    const int ni = ly->in, no = ly->out;
    const size_t n = (size_t)E * B * no;
    float *z = acts->z[l];  // (E, B, out)
    const bool hidden = l < L - 1;
    const tdm_act la = hidden ? s->hidden_act : TDM_ACT_NONE;
    if ((hidden && !drop && !s->layernorm && (la == TDM_ACT_RELU || la == TDM_ACT_NONE)) ||
        (!hidden && s->out_act == TDM_OUT_NONE)) {
      // a = act(in W^T + b) in one op (one cuBLASLt matmul on the GPU); z is not kept: the
      // backward of relu and of a linear layer needs only a
      if (la == TDM_ACT_RELU && acts->rmask[l]) {  // and the ReLU mask for the backward
        TDM_TRY(tdm_linear_relu_forward_mask(dev, B, no, ni, in, ni, s_in, m->params + ly->w, ni,
                                             (long long)no * ni, m->params + ly->b, acts->a[l], E,
                                             acts->rmask[l], &acts->rmask_ok[l]));
      } else {
        TDM_TRY(tdm_linear_act_forward(dev, la, B, no, ni, in, ni, s_in, m->params + ly->w, ni,
                                       (long long)no * ni, m->params + ly->b, acts->a[l], E));
      }
      in = acts->a[l];
      s_in = (long long)B * no;
      continue;
    }
    // z = in W^T: (B, in) x (in, out) per member, W stored (out, in)
    TDM_TRY(tdm_gemm_batched(dev, TDM_NOTRANS, TDM_TRANS, B, no, ni, 1.0f, in, ni, s_in,
                             m->params + ly->w, ni, (long long)no * ni, 0.0f, z, no,
                             (long long)B * no, E));
    const float *bias = m->params + ly->b;  // (E, out)
    if (l < L - 1 && !drop && !s->layernorm) {
      // z += b, a = act(z): one fused op
      TDM_TRY(tdm_bias_act_forward(dev, s->hidden_act, z, bias, acts->a[l], E, B, no));
    } else if (l == L - 1 && s->out_act != TDM_OUT_SIMNORM) {
      // z += b, then a = tanh(z) or a = z (a linear output's a is z)
      tdm_act oa = s->out_act == TDM_OUT_TANH ? TDM_ACT_TANH : TDM_ACT_NONE;
      TDM_TRY(tdm_bias_act_forward(dev, oa, z, bias, acts->a[l], E, B, no));
    } else if (l < L - 1) {
      TDM_TRY(tdm_bias_add(dev, z, bias, E, B, no));
      if (drop)
        TDM_TRY(tdm_dropout_forward(dev, z, z, acts->mask[l], n, s->dropout, m->rng, (uint32_t)l));
      const float *pre = z;  // activation input
      if (s->layernorm) {
        TDM_TRY(tdm_layernorm_forward(dev, z, m->params + ly->ln_g, m->params + ly->ln_b,
                                      acts->n[l], acts->mean[l], acts->rstd[l], E, B, no,
                                      s->layernorm_eps));
        pre = acts->n[l];
      }
      TDM_TRY(tdm_act_forward(dev, s->hidden_act, pre, acts->a[l], n));
    } else {  // TDM_OUT_SIMNORM
      TDM_TRY(tdm_bias_add(dev, z, bias, E, B, no));
      TDM_TRY(tdm_simnorm_forward(dev, z, acts->a[l], (size_t)E * B, no, s->simnorm_group));
    }
    in = acts->a[l];
    s_in = (long long)B * no;
  }
  // one draw per forward: the next forward (or graph replay) gets fresh masks
  if (drop) TDM_TRY(tdm_rng_advance(dev, m->rng, 1));
  if (y && y != acts->a[L - 1])
    TDM_TRY(tdm_dev_d2d(dev, y, acts->a[L - 1], (size_t)E * B * s->sizes[L] * sizeof(float)));
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// backward

tdm_status tdm_mlp_set_lane(tdm_mlp *m, tdm_dev_lane *lane) {
  if (!m) return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_set_lane: m is NULL");
  m->lane = lane;
  return TDM_OK;
}

// With a lane, each layer's weight gradient (and an unfused bias gradient) goes to the lane beside
// the main stream's input-gradient chain; they only feed the optimiser. One lane runs its work in
// order, and the API joins it before each fork: the join comes late (just before the next layer's
// fork, after that layer's activation backward on the main stream), so the input-gradient GEMM
// after it waits for the previous weight gradient. That join also keeps the gradient ping-pong
// safe: the next write into the buffer the lane reads comes after it. LayerNorm's backward writes
// that buffer earlier, so with LayerNorm the join comes before it.
static tdm_status backward_steps(tdm_mlp *m, tdm_mlp_acts *acts, const float *dy, float *dx,
                                 tdm_grad_mode mode, bool *lane_pending);

tdm_status tdm_mlp_backward(tdm_mlp *m, tdm_mlp_acts *acts, const float *dy, float *dx,
                            tdm_grad_mode mode) {
  if (!m) return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_backward: m is NULL");
  bool pending = false;
  tdm_status st = backward_steps(m, acts, dy, dx, mode, &pending);
  if (st == TDM_OK && pending) st = tdm_dev_join(m->dev, m->lane);
  if (st != TDM_OK && m->lane) tdm_dev_lane_abort(m->dev, m->lane);
  return st;
}

static tdm_status backward_steps(tdm_mlp *m, tdm_mlp_acts *acts, const float *dy, float *dx,
                                 tdm_grad_mode mode, bool *lane_pending) {
  const tdm_mlp_spec *s = &m->spec;
  if (!acts || acts->m != m)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_backward: acts belong to another network");
  if (acts->batch < 1)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_backward: no forward has run on these acts");
  if (!dy) return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_backward: dy is NULL");
  if (mode != TDM_GRAD_SET && mode != TDM_GRAD_ACC && mode != TDM_GRAD_NONE)
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_backward: mode = %d is not a tdm_grad_mode", (int)mode);
  tdm_dev *dev = m->dev;
  const int E = s->members, L = s->n_layers, B = acts->batch;
  const bool pgrad = mode != TDM_GRAD_NONE;
  const float beta = mode == TDM_GRAD_ACC ? 1.0f : 0.0f;  // 0: grads =, 1: grads +=

  // g: gradient of the loss wrt the current layer's output; dbuf[cur] holds it when it is ours
  const float *g = dy;
  int cur = 1;             // the other buffer, dbuf[1 - cur], is free
  bool bias_done = false;  // the fused act backward already wrote this layer's bias gradient
  // hidden layers take the fused activation + bias backward; the output layer's bias gradient
  // then rides in the launch of the layer below it (pending until then)
  const bool fused_hidden = pgrad && !s->layernorm && !acts->train;
  // a relu layer whose forward kept its mask: its activation and bias backward ride in the
  // input-gradient matmul of the layer above (GPU, cuBLASLt DRELU_BGRAD; the bias gradient is
  // written, so not with TDM_GRAD_ACC; with TDM_GRAD_NONE it goes to acts->discard)
  bool act_done = false;  // that matmul ran: this layer's dz and bias gradient are done
#define DRELU_OK(k) \
  ((k) >= 0 && acts->rmask_ok[k] && mode != TDM_GRAD_ACC && !s->layernorm && !acts->train)
  // only the shared input's gradient is wanted: layer 0's dz goes members side by side (B, E, out)
  // and dx (B, in) = sum_e dz_e W_e = dz (B, E out) x W (E out, in) is one GEMM
  const bool inter0 = !pgrad && dx && acts->shared_input && E > 1 && !s->layernorm && !acts->train;
  const float *pend_g = NULL;  // (E, B, out) gradient whose column sums are pending
  float *pend_db = NULL;       // (E, out) their destination
  int pend_n = 0;
  // with the fused ReLU backward below the output layer, the output bias gradient (of dy) is
  // deferred to the end of the backward, beside the last weight gradient
  const float *defer_g = NULL;  // (E, B, out) dy
  float *defer_db = NULL;       // (E, out)
  int defer_n = 0;
  {
    const int no = s->sizes[L];
    const size_t n = (size_t)E * B * no;
    if (s->out_act == TDM_OUT_TANH) {
      // dz (E, B, out) = dy (1 - y^2); with grads, b's gradient in the same op
      if (pgrad) {
        TDM_TRY(tdm_act_bias_backward(dev, TDM_ACT_TANH, acts->z[L - 1], acts->a[L - 1], dy,
                                      acts->dbuf[0], m->grads + m->layers[L - 1].b, E, B, no,
                                      beta));
        bias_done = true;
      } else {
        TDM_TRY(tdm_act_backward(dev, TDM_ACT_TANH, acts->z[L - 1], acts->a[L - 1], dy,
                                 acts->dbuf[0], n));
      }
      g = acts->dbuf[0];
      cur = 0;
    } else if (s->out_act == TDM_OUT_SIMNORM) {
      // dz (E, B, out) = y (dy - sum_group dy y)
      TDM_TRY(tdm_simnorm_backward(dev, acts->a[L - 1], dy, acts->dbuf[0], (size_t)E * B, no,
                                   s->simnorm_group));
      g = acts->dbuf[0];
      cur = 0;
    }
  }
  for (int l = L - 1; l >= 0; l--) {
    const tdm_mlp_layer *ly = &m->layers[l];
    const int ni = ly->in, no = ly->out;
    const size_t n = (size_t)E * B * no;
    if (l < L - 1) {
      // hidden layer: g (in dbuf[cur]) is wrt a[l]; take it back to z[l] (before dropout)
      float *gw = acts->dbuf[cur];
      if (*lane_pending && s->layernorm) {  // LayerNorm's backward writes the lane's dbuf
        TDM_TRY(tdm_dev_join(dev, m->lane));
        *lane_pending = false;
      }
      // relu' and the identity's derivative read from the output a as well (relu(x) > 0 iff
      // x > 0), and the forward may not have kept z for them
      const bool from_a = s->hidden_act == TDM_ACT_RELU || s->hidden_act == TDM_ACT_NONE;
      const float *pre = s->layernorm ? acts->n[l] : from_a ? acts->a[l] : acts->z[l];
      if (!act_done && defer_g) {  // the fused matmul declined: back to the pending sums
        pend_g = defer_g, pend_db = defer_db, pend_n = defer_n;
        defer_g = NULL;
      }
      if (act_done && l == 0 && inter0) {
        // dz (B, E, out) members side by side is in dbuf[cur]: dx (B, in) in one GEMM
        return tdm_gemm(dev, TDM_NOTRANS, TDM_NOTRANS, B, ni, E * no, 1.0f, gw, E * no,
                        m->params + ly->w, ni, 0.0f, dx, ni);
      } else if (act_done) {
        bias_done = true;  // dz (E, B, out) is in dbuf[cur], b's gradient written
      } else if (l == 0 && inter0) {
        float *gi = acts->dbuf[1 - cur];  // dz (B, E, out)
        TDM_TRY(tdm_act_backward_interleave(dev, s->hidden_act, pre, acts->a[l], gw, gi, E, B, no));
        return tdm_gemm(dev, TDM_NOTRANS, TDM_NOTRANS, B, ni, E * no, 1.0f, gi, E * no,
                        m->params + ly->w, ni, 0.0f, dx, ni);
      } else if (fused_hidden && pend_g) {
        // dz (E, B, out) = da act'(z) in place, b's gradient and the pending one, in one op
        TDM_TRY(tdm_act_bias_backward2(dev, s->hidden_act, pre, acts->a[l], gw, gw,
                                       m->grads + ly->b, E, B, no, beta, pend_g, pend_db, pend_n));
        pend_g = NULL;
        bias_done = true;
      } else if (fused_hidden) {
        // dz (E, B, out) = da act'(z) in place, and b's gradient, in one op
        TDM_TRY(tdm_act_bias_backward(dev, s->hidden_act, pre, acts->a[l], gw, gw, m->grads + ly->b,
                                      E, B, no, beta));
        bias_done = true;
      } else {
        // dh (E, B, out) = da act'(h), in place
        TDM_TRY(tdm_act_backward(dev, s->hidden_act, pre, acts->a[l], gw, gw, n));
      }
      if (s->layernorm) {
        float *dgam = pgrad ? m->grads + ly->ln_g : acts->discard;
        float *dbet = pgrad ? m->grads + ly->ln_b : acts->discard + (size_t)E * no;
        float *gz = acts->dbuf[1 - cur];
        // dz (E, B, out) = LayerNorm'(dh); grads gamma, beta (E, out) = (SET) or += (ACC)
        TDM_TRY(tdm_layernorm_backward(dev, acts->z[l], m->params + ly->ln_g, acts->mean[l],
                                       acts->rstd[l], gw, gz, dgam, dbet, E, B, no, beta));
        cur = 1 - cur;
      }
      if (acts->train)  // dz (E, B, out) = dz mask (dropout), in place
        TDM_TRY(tdm_mul(dev, n, acts->dbuf[cur], acts->mask[l], acts->dbuf[cur]));
      g = acts->dbuf[cur];
    }
    const bool first = l == 0;
    const float *xin = first ? acts->x : acts->a[l - 1];  // (E, B, in) or (B, in)
    const long long s_in = first && acts->shared_input ? 0 : (long long)B * ni;
    if (pgrad) {
      // on the lane when the main stream has work after it (the input gradient or a deferred
      // bias gradient)
      const bool on_lane = m->lane && !(first && !dx && !defer_g);
      if (on_lane) {
        if (*lane_pending) TDM_TRY(tdm_dev_join(dev, m->lane));
        *lane_pending = false;
        TDM_TRY(tdm_dev_fork(dev, m->lane));
      }
      // grads W (E, out, in) = (SET) or += (ACC) dz^T (out, B) x (B, in), per member
      TDM_TRY(tdm_gemm_batched(dev, TDM_TRANS, TDM_NOTRANS, no, ni, B, 1.0f, g, no,
                               (long long)B * no, xin, ni, s_in, beta, m->grads + ly->w, ni,
                               (long long)no * ni, E));
      // grads b (E, out) = (SET) or += (ACC) sum over the B rows of dz
      if (!bias_done && l == L - 1 && L > 1 && fused_hidden && !DRELU_OK(l - 1)) {
        pend_g = g;  // summed by the next layer's fused op (g stays intact until then)
        pend_db = m->grads + ly->b;
        pend_n = no;
      } else if (!bias_done && l == L - 1 && L > 1 && fused_hidden && g == dy) {
        defer_g = g;  // dy stays intact; a gradient in dbuf would not
        defer_db = m->grads + ly->b;
        defer_n = no;
      } else if (!bias_done) {
        TDM_TRY(tdm_bias_grad(dev, m->grads + ly->b, g, E, B, no, beta));
      }
      if (on_lane) {
        TDM_TRY(tdm_dev_back(dev, m->lane));
        *lane_pending = true;
      }
    }
    bias_done = false;
    if (first && !dx) break;
    // dx (E, B, in) = dz (B, out) W (out, in), per member (never accumulated)
    const bool sum_members = first && acts->shared_input && E > 1;
    float *gx = first && !sum_members ? dx : acts->dbuf[1 - cur];
    act_done = false;
    if (DRELU_OK(l - 1)) {
      // dz of layer l - 1 (E, B, in) = (dz W) relu'(mask), its bias gradient (E, in): one matmul
      // (members side by side, (B, E, in), when layer 0 then sums the members' dx in one GEMM)
      const bool side = l - 1 == 0 && inter0;
      TDM_TRY(tdm_linear_drelu_bgrad(
          dev, B, ni, no, g, (long long)B * no, m->params + ly->w, (long long)no * ni,
          acts->rmask[l - 1], gx, side ? E * ni : ni, side ? (long long)ni : (long long)B * ni,
          pgrad ? m->grads + m->layers[l - 1].b : acts->discard, E, &act_done));
    }
    if (!act_done)
      TDM_TRY(tdm_gemm_batched(dev, TDM_NOTRANS, TDM_NOTRANS, B, ni, no, 1.0f, g, no,
                               (long long)B * no, m->params + ly->w, ni, (long long)no * ni, 0.0f,
                               gx, ni, (long long)B * ni, E));
    if (sum_members) {
      // shared input: dx (B, in) = sum_e dx_e, as ones (1, E) x dx_members (E, B in)
      TDM_TRY(tdm_gemm(dev, TDM_NOTRANS, TDM_NOTRANS, 1, B * ni, E, 1.0f, acts->ones, E, gx, B * ni,
                       0.0f, dx, B * ni));
    }
    cur = 1 - cur;
  }
#undef DRELU_OK
  // the deferred output bias gradient (E, out) = sum over the B rows of dy, beside the lane's last
  if (defer_g) TDM_TRY(tdm_bias_grad(dev, defer_db, defer_g, E, B, defer_n, beta));
  return TDM_OK;
}

// ---------------------------------------------------------------------------------------------
// optimiser and copies

tdm_status tdm_mlp_adam(tdm_mlp *m, const tdm_adam_cfg *cfg) {
  // p, m, v = Adam(p, g, m, v) over the whole buffer (one op); without clipping one launch that
  // also counts the step, whose sync counter sits after the scratch tdm_adam_step uses
  if (cfg && cfg->max_grad_norm == 0.0f) {
    tdm_adam_group gr = {m->params,   m->grads,     m->adam_m, m->adam_v,
                         m->n_params, m->adam_step, NULL,      0.0f};
    uint32_t *sync = (uint32_t *)(m->adam_scratch + tdm_adam_scratch_floats(m->dev, m->n_params));
    return tdm_adam_step_groups(m->dev, &gr, 1, cfg, sync);
  }
  return tdm_adam_step(m->dev, m->params, m->grads, m->adam_m, m->adam_v, m->n_params, cfg,
                       m->adam_step, m->adam_scratch);
}

// Same shape (layout and count of parameters) and device, or an error naming what differs.
static tdm_status same_shape(const tdm_mlp *a, const tdm_mlp *b, const char *what) {
  if (a->dev != b->dev)
    return TDM_FAIL(TDM_ERR_ARG, "%s: the networks are on different devices (%s, %s)", what,
                    a->dev->name, b->dev->name);
  const tdm_mlp_spec *x = &a->spec, *y = &b->spec;
  bool same = x->n_layers == y->n_layers && x->members == y->members &&
              x->layernorm == y->layernorm && a->n_params == b->n_params;
  for (int i = 0; same && i <= x->n_layers; i++) same = x->sizes[i] == y->sizes[i];
  if (!same)
    return TDM_FAIL(TDM_ERR_ARG,
                    "%s: the networks differ in shape (%zu vs %zu parameters); "
                    "both must come from the same spec",
                    what, a->n_params, b->n_params);
  return TDM_OK;
}

tdm_status tdm_mlp_polyak(tdm_mlp *target, const tdm_mlp *src, float tau) {
  TDM_TRY(same_shape(target, src, "tdm_mlp_polyak"));
  if (!(tau >= 0.0f && tau <= 1.0f))
    return TDM_FAIL(TDM_ERR_ARG, "tdm_mlp_polyak: tau = %g must be in [0, 1]", tau);
  return tdm_polyak(target->dev, target->params, src->params, target->n_params, tau);
}

tdm_status tdm_mlp_copy_params(tdm_mlp *dst, const tdm_mlp *src) {
  TDM_TRY(same_shape(dst, src, "tdm_mlp_copy_params"));
  return tdm_dev_d2d(dst->dev, dst->params, src->params, dst->n_params * sizeof(float));
}

double tdm_mlp_flops_fwd(const tdm_mlp_spec *spec, int B) {
  double macs = 0;
  for (int l = 0; l < spec->n_layers; l++) macs += (double)spec->sizes[l] * spec->sizes[l + 1];
  return 2.0 * macs * (double)spec->members * (double)B;
}
