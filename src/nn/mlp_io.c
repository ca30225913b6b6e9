// MLP parameter files (include/tandem/nn.h).
//
// Format (version 1, little-endian as written by the host, all fields 4 bytes unless noted):
//   magic     8 bytes "TDMLP\0\0\1"
//   version   u32 (1)
//   flags     u32 (bit 0: Adam state follows the parameters)
//   n_layers  i32, then sizes i32 x (n_layers + 1)
//   members i32, hidden_act i32, layernorm i32, layernorm_eps f32, dropout f32, out_act i32,
//   simnorm_group i32, init i32, init_std f32, zero_last i32
//   n_params  u64
//   params    f32 x n_params
//   [adam_m f32 x n_params, adam_v f32 x n_params, adam_step i32]   when flags bit 0
//   crc       u32: CRC-32 of every byte after the magic up to here
// A reader checks magic, version, spec, size and checksum before it touches the network.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tandem/nn.h"

static const unsigned char kMagic[8] = {'T', 'D', 'M', 'L', 'P', 0, 0, 1};
enum { kVersion = 1, kFlagAdam = 1 };

// Fixed part of the header after the magic, read as one block of i32 / f32 words.
typedef struct {
  uint32_t version, flags;
  int32_t n_layers;
  int32_t sizes[TDM_MLP_MAX_LAYERS + 1];
  int32_t members, hidden_act, layernorm;
  float layernorm_eps, dropout;
  int32_t out_act, simnorm_group, init;
  float init_std;
  int32_t zero_last;
  uint64_t n_params;
} header;

// Stream writer with a running CRC; ok turns false on the first failed write.
typedef struct {
  FILE *f;
  uint32_t crc;
  bool ok;
} wr;

static void put(wr *w, const void *p, size_t n) {
  if (!w->ok || n == 0) return;
  w->crc = tdm_crc32(w->crc, p, n);
  if (fwrite(p, 1, n, w->f) != n) w->ok = false;
}
static void put_i32(wr *w, int32_t v) {
  put(w, &v, 4);
}
static void put_u32(wr *w, uint32_t v) {
  put(w, &v, 4);
}
static void put_f32(wr *w, float v) {
  put(w, &v, 4);
}

tdm_status tdm_mlp_write(const tdm_mlp *m, FILE *f, bool with_adam) {
  const tdm_mlp_spec *s = &m->spec;
  const size_t n = m->n_params;
  const size_t nbuf = with_adam ? 3 : 1;
  float *h = malloc(n * nbuf * sizeof(float) + 64);  // params [, m, v] host copy
  if (!h) return TDM_FAIL(TDM_ERR_OOM, "out of host memory: %zu floats to save an MLP", n * nbuf);
  int32_t step = 0;
  tdm_status st = tdm_dev_d2h(m->dev, h, m->params, n * sizeof(float));
  if (st == TDM_OK && with_adam) st = tdm_dev_d2h(m->dev, h + n, m->adam_m, n * sizeof(float));
  if (st == TDM_OK && with_adam) st = tdm_dev_d2h(m->dev, h + 2 * n, m->adam_v, n * sizeof(float));
  if (st == TDM_OK && with_adam) st = tdm_dev_d2h(m->dev, &step, m->adam_step, sizeof step);
  if (st == TDM_OK) st = tdm_dev_sync(m->dev);
  if (st != TDM_OK) {
    free(h);
    return tdm_adderr(st, "while copying MLP parameters to the host: ");
  }
  wr w = {f, 0, true};
  if (fwrite(kMagic, 1, sizeof kMagic, f) != sizeof kMagic) w.ok = false;
  put_u32(&w, kVersion);
  put_u32(&w, with_adam ? kFlagAdam : 0);
  put_i32(&w, s->n_layers);
  for (int i = 0; i <= s->n_layers; i++) put_i32(&w, s->sizes[i]);
  put_i32(&w, s->members);
  put_i32(&w, (int32_t)s->hidden_act);
  put_i32(&w, s->layernorm ? 1 : 0);
  put_f32(&w, s->layernorm_eps);
  put_f32(&w, s->dropout);
  put_i32(&w, (int32_t)s->out_act);
  put_i32(&w, s->simnorm_group);
  put_i32(&w, (int32_t)s->init);
  put_f32(&w, s->init_std);
  put_i32(&w, s->zero_last ? 1 : 0);
  uint64_t n64 = n;
  put(&w, &n64, 8);
  put(&w, h, n * nbuf * sizeof(float));
  if (with_adam) put_i32(&w, step);
  uint32_t crc = w.crc;
  if (w.ok && fwrite(&crc, 1, 4, f) != 4) w.ok = false;
  free(h);
  if (!w.ok)
    return TDM_FAIL(TDM_ERR_IO, "writing MLP parameters failed: %s (disk full or stream closed?)",
                    strerror(errno));
  return TDM_OK;
}

// Reader over a stream with a running CRC; sets eof when the stream ends early.
typedef struct {
  FILE *f;
  uint32_t crc;
  bool eof;
} rd;

static bool get(rd *r, void *p, size_t n) {
  if (r->eof) return false;
  if (fread(p, 1, n, r->f) != n) {
    r->eof = true;
    return false;
  }
  r->crc = tdm_crc32(r->crc, p, n);
  return true;
}

static const char *act_label(int a) {
  return a >= TDM_ACT_NONE && a <= TDM_ACT_ELU ? tdm_act_name((tdm_act)a) : "?";
}
static const char *out_label(int a) {
  static const char *names[] = {"none", "tanh", "simnorm"};
  return a >= 0 && a <= 2 ? names[a] : "?";
}

// Compare the file's spec with the network's; the message says which field differs.
static tdm_status check_spec(const header *h, const tdm_mlp_spec *s, const char *what) {
  if (h->n_layers != s->n_layers)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has %d linear layers, network has %d", what,
                    h->n_layers, s->n_layers);
  for (int i = 0; i <= s->n_layers; i++) {
    if (h->sizes[i] == s->sizes[i]) continue;
    if (i == 0)
      return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has input size %d, network has %d", what,
                      h->sizes[i], s->sizes[i]);
    if (i == s->n_layers)
      return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has output size %d, network has %d", what,
                      h->sizes[i], s->sizes[i]);
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has %d hidden units in layer %d, network has %d",
                    what, h->sizes[i], i, s->sizes[i]);
  }
  if (h->members != s->members)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has %d members, network has %d", what, h->members,
                    s->members);
  if (h->hidden_act != (int32_t)s->hidden_act)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has hidden activation %s, network has %s", what,
                    act_label(h->hidden_act), act_label((int)s->hidden_act));
  if ((h->layernorm != 0) != s->layernorm)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has LayerNorm %s, network has it %s", what,
                    h->layernorm ? "on" : "off", s->layernorm ? "on" : "off");
  if (s->layernorm && h->layernorm_eps != s->layernorm_eps)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has layernorm_eps %g, network has %g", what,
                    h->layernorm_eps, s->layernorm_eps);
  if (h->out_act != (int32_t)s->out_act)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has output activation %s, network has %s", what,
                    out_label(h->out_act), out_label((int)s->out_act));
  if (s->out_act == TDM_OUT_SIMNORM && h->simnorm_group != s->simnorm_group)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has simnorm_group %d, network has %d", what,
                    h->simnorm_group, s->simnorm_group);
  // dropout and the init fields do not change what the parameters mean: not compared
  return TDM_OK;
}

// Read one record; adam: 0 = skip Adam state, 1 = require it, 2 = restore it when present.
static tdm_status read_impl(tdm_mlp *m, FILE *f, int adam, const char *what) {
  if (!what) what = "MLP parameters";
  unsigned char magic[8];
  if (fread(magic, 1, sizeof magic, f) != sizeof magic)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: file is truncated (no header); was it written by "
                    "tdm_mlp_write?",
                    what);
  if (memcmp(magic, kMagic, sizeof magic) != 0)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: wrong magic (not a tandem MLP parameter file, or the "
                    "stream is at the wrong position)",
                    what);
  rd r = {f, 0, false};
  header h;
  memset(&h, 0, sizeof h);
  get(&r, &h.version, 4);
  get(&r, &h.flags, 4);
  if (r.eof) return TDM_FAIL(TDM_ERR_FORMAT, "%s: file is truncated in the header", what);
  if (h.version != kVersion)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: format version %u, this build reads version %d", what,
                    h.version, kVersion);
  get(&r, &h.n_layers, 4);
  if (!r.eof && (h.n_layers < 1 || h.n_layers > TDM_MLP_MAX_LAYERS))
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has %d linear layers (corrupt header?)", what,
                    h.n_layers);
  for (int i = 0; i <= h.n_layers; i++) get(&r, &h.sizes[i], 4);
  get(&r, &h.members, 4);
  get(&r, &h.hidden_act, 4);
  get(&r, &h.layernorm, 4);
  get(&r, &h.layernorm_eps, 4);
  get(&r, &h.dropout, 4);
  get(&r, &h.out_act, 4);
  get(&r, &h.simnorm_group, 4);
  get(&r, &h.init, 4);
  get(&r, &h.init_std, 4);
  get(&r, &h.zero_last, 4);
  get(&r, &h.n_params, 8);
  if (r.eof) return TDM_FAIL(TDM_ERR_FORMAT, "%s: file is truncated in the header", what);
  TDM_TRY(check_spec(&h, &m->spec, what));
  if (h.n_params != m->n_params)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has %llu parameters, network has %zu", what,
                    (unsigned long long)h.n_params, m->n_params);
  const bool file_adam = (h.flags & kFlagAdam) != 0;
  if (adam == 1 && !file_adam)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: file has no Adam state (written without with_adam)", what);
  const size_t n = m->n_params, nbuf = file_adam ? 3 : 1;
  float *buf = malloc(n * nbuf * sizeof(float) + 64);  // params [, m, v] as read
  if (!buf) return TDM_FAIL(TDM_ERR_OOM, "out of host memory: %zu floats to load an MLP", n * nbuf);
  int32_t step = 0;
  uint32_t crc_file = 0;
  get(&r, buf, n * nbuf * sizeof(float));
  if (file_adam) get(&r, &step, 4);
  uint32_t crc = r.crc;
  if (!r.eof && fread(&crc_file, 1, 4, f) != 4) r.eof = true;
  if (r.eof) {
    free(buf);
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: file is truncated (expected %zu parameters%s and a "
                    "checksum)",
                    what, n, file_adam ? " with Adam state" : "");
  }
  if (crc != crc_file) {
    free(buf);
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: checksum mismatch (file says %08x, content gives %08x): "
                    "the file is corrupt",
                    what, crc_file, crc);
  }
  // everything checked: now copy into the network
  const bool restore_adam = file_adam && adam != 0;
  tdm_status st = tdm_dev_h2d(m->dev, m->params, buf, n * sizeof(float));
  if (st == TDM_OK && restore_adam) st = tdm_dev_h2d(m->dev, m->adam_m, buf + n, n * 4);
  if (st == TDM_OK && restore_adam) st = tdm_dev_h2d(m->dev, m->adam_v, buf + 2 * n, n * 4);
  if (st == TDM_OK && restore_adam) st = tdm_dev_h2d(m->dev, m->adam_step, &step, sizeof step);
  tdm_status st2 = tdm_dev_sync(m->dev);  // buf and step must outlive the copies
  free(buf);
  if (st == TDM_OK) st = st2;
  if (st != TDM_OK) return tdm_adderr(st, "%s: while copying parameters to the device: ", what);
  return TDM_OK;
}

tdm_status tdm_mlp_read(tdm_mlp *m, FILE *f, bool with_adam, const char *what) {
  return read_impl(m, f, with_adam ? 1 : 0, what);
}

tdm_status tdm_mlp_save(const tdm_mlp *m, const char *path) {
  tdm_afile a;
  TDM_TRY(tdm_afile_open(&a, path));
  tdm_status st = tdm_mlp_write(m, a.f, true);
  if (st != TDM_OK) {
    tdm_afile_abort(&a);
    return tdm_adderr(st, "while saving %s: ", path);
  }
  st = tdm_afile_commit(&a);
  if (st != TDM_OK) return tdm_adderr(st, "while saving %s: ", path);
  return TDM_OK;
}

tdm_status tdm_mlp_load(tdm_mlp *m, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return TDM_FAIL(TDM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  tdm_status st = read_impl(m, f, 2, path);
  fclose(f);
  return st;
}
