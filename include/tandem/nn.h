// tandem neural networks: E independent MLPs evaluated at once (ensembles, Q ensembles, seeds).
//
// A network's parameters, gradients and Adam moments are each one contiguous device buffer with
// the same layout; tdm_mlp_layer holds offsets into it. Layer l maps (E, B, in) -> (E, B, out):
//   hidden: z = x W^T + b -> [dropout] -> [LayerNorm] -> act
//   last:   z = x W^T + b -> out_act (none, tanh or SimNorm)
// W is stored (E, out, in), b (E, out), LayerNorm gamma and beta (E, out).
#ifndef TANDEM_NN_H
#define TANDEM_NN_H

#include <stdio.h>

#include "tandem/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TDM_MLP_MAX_LAYERS 8

typedef enum { TDM_OUT_NONE = 0, TDM_OUT_TANH, TDM_OUT_SIMNORM } tdm_out_act;
typedef enum {
  TDM_INIT_DEFAULT = 0,  // PyTorch nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in))
  TDM_INIT_TRUNC_NORMAL  // W ~ N(0, init_std) truncated at 2 std, b = 0
} tdm_init_kind;

typedef struct {
  int n_layers;                       // number of linear layers (>= 1)
  int sizes[TDM_MLP_MAX_LAYERS + 1];  // input, hidden..., output
  int members;                        // E (>= 1)
  tdm_act hidden_act;
  bool layernorm;                     // LayerNorm on every hidden layer
  float layernorm_eps;                // 1e-5
  float dropout;                      // dropout probability on hidden layers (training only)
  tdm_out_act out_act;
  int simnorm_group;                  // V for TDM_OUT_SIMNORM (8 in TD-MPC2)
  tdm_init_kind init;
  float init_std;                     // for TDM_INIT_TRUNC_NORMAL (0.02 in TD-MPC2)
  bool zero_last;                     // last layer's W and b start at zero
} tdm_mlp_spec;

// Spec of an MLP in -> hidden x n_hidden -> out with E members and defaults elsewhere.
tdm_mlp_spec tdm_mlp_spec_make(int in, int hidden, int n_hidden, int out, int members,
                               tdm_act act);

typedef struct {
  size_t w, b, ln_g, ln_b;  // offsets (floats) into params / grads / adam buffers; ln_* = 0 if off
  int in, out;
} tdm_mlp_layer;

typedef struct {
  tdm_mlp_spec spec;
  tdm_dev *dev;
  size_t n_params;                            // floats per buffer (all members)
  float *params, *grads, *adam_m, *adam_v;    // (n_params) each, device memory
  tdm_mlp_layer layers[TDM_MLP_MAX_LAYERS];
  int32_t *adam_step;                         // device counter
  float *adam_scratch;
  tdm_rng_ctr *rng;                           // device: dropout stream
  tdm_dev_lane *lane;  // second stream for the backward's weight gradients (not owned), or NULL
} tdm_mlp;

// Create an MLP on dev with zeroed gradients and moments; parameters are initialised by
// tdm_mlp_init. Checks the spec and names the offending field.
tdm_status tdm_mlp_create(tdm_dev *dev, const tdm_mlp_spec *spec, tdm_mlp **out);
void tdm_mlp_destroy(tdm_mlp *m);

// Run the backward's weight and bias gradients on lane (made by tdm_dev_lane_create on m's device;
// not owned; NULL: one stream) beside the input-gradient chain; joined before the backward
// returns, the numbers are the same. The lane must be idle (joined) whenever a backward starts:
// one lane may serve several networks whose backwards do not overlap.
tdm_status tdm_mlp_set_lane(tdm_mlp *m, tdm_dev_lane *lane);

// Initialise parameters from seed (drawn on the host, identical on every device), zero the Adam
// state and the step counter.
tdm_status tdm_mlp_init(tdm_mlp *m, uint64_t seed);

// Activations one forward pass keeps for its backward, sized for up to max_batch rows per member.
typedef struct {
  const tdm_mlp *m;
  int max_batch, batch;
  bool shared_input;  // last forward read one input (B, in) for all members
  const float *x;     // the last forward's input (not owned)
  float *buf;         // one device allocation holding all of the below
  float *z[TDM_MLP_MAX_LAYERS];     // (E, B, out_l) linear outputs (after dropout); not kept
                                    // for relu / linear hidden layers without dropout or norm
  float *mask[TDM_MLP_MAX_LAYERS];  // (E, B, out_l) dropout masks, or NULL
  float *n[TDM_MLP_MAX_LAYERS];     // (E, B, out_l) LayerNorm outputs, or NULL
  float *mean[TDM_MLP_MAX_LAYERS], *rstd[TDM_MLP_MAX_LAYERS];  // (E, B) LayerNorm stats
  float *a[TDM_MLP_MAX_LAYERS];     // (E, B, out_l) layer outputs (after activation)
  float *dbuf[2];                   // (E, B, max width) gradient ping-pong
  float *ones;                      // (E) ones: sums member input gradients of a shared input
  float *discard;                   // (2, E, max width) LayerNorm grads dropped by TDM_GRAD_NONE
  bool train;                       // last forward applied dropout (backward applies its masks)
  void *rmask[TDM_MLP_MAX_LAYERS];  // ReLU bit masks of hidden relu layers (GPU), or NULL
  bool rmask_ok[TDM_MLP_MAX_LAYERS];  // the last forward wrote rmask[l] (cuBLASLt took it)
} tdm_mlp_acts;

tdm_status tdm_mlp_acts_create(const tdm_mlp *m, int max_batch, tdm_mlp_acts **out);
void tdm_mlp_acts_destroy(tdm_mlp_acts *acts);

// Forward B rows per member. x is (E, B, in), or (B, in) read by every member when shared_input.
// y (E, B, out) may be NULL (then read acts->a[n_layers - 1]). train enables dropout.
tdm_status tdm_mlp_forward(tdm_mlp *m, tdm_mlp_acts *acts, const float *x, int B,
                           bool shared_input, float *y, bool train);

typedef enum {
  TDM_GRAD_SET = 0,  // grads = this batch's gradient
  TDM_GRAD_ACC,      // grads += this batch's gradient
  TDM_GRAD_NONE      // leave grads alone (only dx is wanted)
} tdm_grad_mode;

// Backward of the last forward on acts: dy (E, B, out) in; dx out (may be NULL): (E, B, in), or
// (B, in) summed over members when the forward used a shared input.
tdm_status tdm_mlp_backward(tdm_mlp *m, tdm_mlp_acts *acts, const float *dy, float *dx,
                            tdm_grad_mode mode);

// One Adam step on all parameters from grads.
tdm_status tdm_mlp_adam(tdm_mlp *m, const tdm_adam_cfg *cfg);

// target = (1 - tau) target + tau src (same spec).
tdm_status tdm_mlp_polyak(tdm_mlp *target, const tdm_mlp *src, float tau);

// Copy parameters (not Adam state) from src to dst (same spec).
tdm_status tdm_mlp_copy_params(tdm_mlp *dst, const tdm_mlp *src);

// Parameter file: magic "TDMLP\0\0\1", format version, spec, n_params, parameters, CRC-32.
// write/read work on an open stream (checkpoints embed several networks); save/load on a path
// (save writes a temporary file, fsyncs and renames). read refuses a wrong magic, version, spec
// or checksum and a truncated file, saying which, and leaves m unchanged.
// with_adam also stores the Adam moments and step; read with_adam requires them in the file,
// read without it skips them. save stores the Adam state; load restores it when the file has it.
tdm_status tdm_mlp_write(const tdm_mlp *m, FILE *f, bool with_adam);
tdm_status tdm_mlp_read(tdm_mlp *m, FILE *f, bool with_adam, const char *what);
tdm_status tdm_mlp_save(const tdm_mlp *m, const char *path);
tdm_status tdm_mlp_load(tdm_mlp *m, const char *path);

// FLOPs of one forward pass's matrix products, 2 per multiply-add: 2 E B sum_l in_l out_l
// (bias, norm and activation FLOPs not counted). A forward + backward with dx is about 3x this.
double tdm_mlp_flops_fwd(const tdm_mlp_spec *spec, int B);

#ifdef __cplusplus
}
#endif
#endif  // TANDEM_NN_H
