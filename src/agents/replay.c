// Replay buffer: a ring of transitions in device memory (structure of arrays), device-side uniform
// sampling and gathers, host-side episode links for sequence sampling, save / load.
//
// An add packs the n transitions row by row into pinned staging (obs | act | reward | next_obs |
// terminated | source), copies them with one h2d into device staging and scatters them into the
// ring with one kernel that also stores the new size (tdm_replay_put). A batch is gathered from
// all six arrays by one kernel (tdm_replay_gather_cols).
#include "tandem/replay.h"

#include <stdlib.h>
#include <string.h>

#include "replay_ops.h"

struct tdm_replay {
  tdm_dev *dev;
  tdm_replay_cfg cfg;
  // device arrays (one allocation)
  void *mem;
  float *obs;            // (C, O)
  float *act;            // (C, A)
  float *reward;         // (C)
  float *next_obs;       // (C, O)
  float *term;           // (C)
  float *source;         // (C)
  int32_t *size_dev;     // (1)
  float *d_stage;        // (max_add, W) device staging of one add (GPU only), W = 2O + A + 3
  tdm_replay_cols cols;  // ring arrays and widths
  // pinned staging: one add's rows packed, then the size
  float *stage;  // (max_add * W + 16)
  int32_t *stage_size;
  int32_t *seq_stage;    // (max_seq_rows) pinned
  bool stage_pending;    // an asynchronous copy from stage was enqueued ...
  uint64_t stage_syncs;  // ... when the device had completed this many syncs
  // counters (host)
  int64_t pos, size, total;
  // episode links (host)
  int32_t *next;       // (C) next row of the same stream, -1 = none
  int32_t *prev;       // (C) previous row of the same stream, -1 = none
  int32_t *stream_of;  // (C) stream that wrote the row
  uint8_t *ended;      // (C) episode ended at this row (terminated or truncated)
  int32_t *last_row;   // (max_streams) last row written by each stream, -1 = none
};

static size_t align64(size_t b) {
  return (b + 63) & ~(size_t)63;
}

size_t tdm_replay_bytes(const tdm_replay_cfg *c) {
  size_t C = (size_t)(c->capacity > 0 ? c->capacity : 0);
  size_t O = (size_t)c->obs_dim, A = (size_t)c->act_dim;
  size_t stage = (size_t)(c->max_add > 0 ? c->max_add : 0) * (2 * O + A + 3) * 4;
  return align64(C * O * 4) * 2 + align64(C * A * 4) + align64(C * 4) * 3 + 64 + align64(stage);
}

const tdm_replay_cfg *tdm_replay_get_cfg(const tdm_replay *r) {
  return &r->cfg;
}
int64_t tdm_replay_size(const tdm_replay *r) {
  return r->size;
}
int64_t tdm_replay_total(const tdm_replay *r) {
  return r->total;
}
const int32_t *tdm_replay_size_dev(const tdm_replay *r) {
  return r->size_dev;
}

static size_t stage_floats(const tdm_replay_cfg *c) {
  return (size_t)c->max_add * (size_t)(2 * c->obs_dim + c->act_dim + 3) + 16;
}

void tdm_replay_destroy(tdm_replay *r) {
  if (!r) return;
  if (r->mem) tdm_dev_free(r->dev, r->mem);
  if (r->stage) tdm_host_free(r->dev, r->stage);
  if (r->seq_stage) tdm_host_free(r->dev, r->seq_stage);
  free(r->next);
  free(r->prev);
  free(r->stream_of);
  free(r->ended);
  free(r->last_row);
  free(r);
}

tdm_status tdm_replay_create(tdm_dev *dev, const tdm_replay_cfg *cfg_in, tdm_replay **out) {
  *out = NULL;
  tdm_replay_cfg c = *cfg_in;
  if (c.max_streams == 0) c.max_streams = c.max_add;
  if (c.obs_dim < 1 || c.act_dim < 1)
    return TDM_FAIL(TDM_ERR_ARG, "replay: obs_dim %d and act_dim %d must be >= 1", c.obs_dim,
                    c.act_dim);
  if (c.capacity < 1 || c.capacity > INT32_MAX)
    return TDM_FAIL(TDM_ERR_ARG, "replay: capacity %lld must be in [1, %d]", (long long)c.capacity,
                    INT32_MAX);
  if (c.max_add < 1 || c.max_add > c.capacity)
    return TDM_FAIL(TDM_ERR_ARG,
                    "replay: max_add %d (transitions per add, the number of envs) must be in "
                    "[1, capacity %lld]",
                    c.max_add, (long long)c.capacity);
  if (c.max_streams < c.max_add)
    return TDM_FAIL(TDM_ERR_ARG, "replay: max_streams %d must be >= max_add %d", c.max_streams,
                    c.max_add);
  if (c.max_seq_rows < 0) return TDM_FAIL(TDM_ERR_ARG, "replay: max_seq_rows must be >= 0");

  size_t need = tdm_replay_bytes(&c), free_b = 0, total_b = 0;
  TDM_TRY(tdm_dev_mem_info(dev, &free_b, &total_b));
  size_t C = (size_t)c.capacity;
  size_t host_need = C * 13;  // episode links
  if (dev->kind == TDM_DEV_CPU) need += host_need;
  if (need > free_b)
    return TDM_FAIL(TDM_ERR_OOM,
                    "replay: capacity %lld transitions (obs %d, act %d) needs %zu bytes (%.2f GiB) "
                    "of %s memory but only %zu bytes (%.2f GiB) are free; lower buffer_size",
                    (long long)c.capacity, c.obs_dim, c.act_dim, need, need / 1073741824.0,
                    dev->kind == TDM_DEV_CPU ? "host" : "device", free_b, free_b / 1073741824.0);

  tdm_status st;
  tdm_replay *r = calloc(1, sizeof *r);
  if (!r) return TDM_FAIL(TDM_ERR_OOM, "replay: out of host memory");
  r->dev = dev;
  r->cfg = c;
  TDM_TRYG(tdm_dev_alloc(dev, tdm_replay_bytes(&c), &r->mem));
  size_t O = (size_t)c.obs_dim, A = (size_t)c.act_dim;
  uint8_t *p = r->mem;
  r->obs = (float *)p, p += align64(C * O * 4);
  r->next_obs = (float *)p, p += align64(C * O * 4);
  r->act = (float *)p, p += align64(C * A * 4);
  r->reward = (float *)p, p += align64(C * 4);
  r->term = (float *)p, p += align64(C * 4);
  r->source = (float *)p, p += align64(C * 4);
  r->size_dev = (int32_t *)p, p += 64;
  r->d_stage = (float *)p;
  float *ring[TDM_REPLAY_NCOLS] = {r->obs, r->act, r->reward, r->next_obs, r->term, r->source};
  int width[TDM_REPLAY_NCOLS] = {c.obs_dim, c.act_dim, 1, c.obs_dim, 1, 1};
  for (int k = 0; k < TDM_REPLAY_NCOLS; k++) {
    r->cols.ring[k] = ring[k];
    r->cols.width[k] = width[k];
    r->cols.total_width += width[k];
  }
  TDM_TRYG(tdm_dev_memset(dev, r->mem, 0, tdm_replay_bytes(&c)));

  TDM_TRYG(tdm_host_alloc(dev, stage_floats(&c) * 4, (void **)&r->stage));
  r->stage_size = (int32_t *)(r->stage + stage_floats(&c) - 16);
  if (c.max_seq_rows > 0)
    TDM_TRYG(tdm_host_alloc(dev, (size_t)c.max_seq_rows * 4, (void **)&r->seq_stage));

  r->next = malloc(C * 4);
  r->prev = malloc(C * 4);
  r->stream_of = malloc(C * 4);
  r->ended = calloc(C, 1);
  r->last_row = malloc((size_t)c.max_streams * 4);
  if (!r->next || !r->prev || !r->stream_of || !r->ended || !r->last_row) {
    st = TDM_FAIL(TDM_ERR_OOM, "replay: out of host memory for episode links (%zu bytes)",
                  host_need);
    goto fail;
  }
  for (size_t i = 0; i < C; i++) r->next[i] = r->prev[i] = r->stream_of[i] = -1;
  for (int i = 0; i < c.max_streams; i++) r->last_row[i] = -1;
  TDM_TRYG(tdm_dev_sync(dev));
  *out = r;
  return TDM_OK;
fail:
  tdm_replay_destroy(r);
  return st;
}

// drop the links of a row about to be overwritten
static void unlink_row(tdm_replay *r, int32_t row) {
  if (r->prev[row] >= 0) r->next[r->prev[row]] = -1;
  if (r->next[row] >= 0) r->prev[r->next[row]] = -1;
  int32_t s = r->stream_of[row];
  if (s >= 0 && r->last_row[s] == row) r->last_row[s] = -1;
  r->next[row] = r->prev[row] = -1;
}

tdm_status tdm_replay_add(tdm_replay *r, const tdm_transition_batch *b) {
  const tdm_replay_cfg *c = &r->cfg;
  int n = b->n, O = c->obs_dim, A = c->act_dim;
  if (n < 1 || n > c->max_add)
    return TDM_FAIL(TDM_ERR_ARG, "replay add: n = %d transitions, expected 1..%d (max_add)", n,
                    c->max_add);
  if (!b->obs || !b->act || !b->reward || !b->next_obs || !b->terminated)
    return TDM_FAIL(TDM_ERR_ARG,
                    "replay add: obs, act, reward, next_obs and terminated are "
                    "required (only truncated and stream may be NULL)");
  if (b->stream)
    for (int i = 0; i < n; i++)
      if (b->stream[i] < 0 || b->stream[i] >= c->max_streams)
        return TDM_FAIL(TDM_ERR_ARG, "replay add: stream[%d] = %d outside [0, %d)", i, b->stream[i],
                        c->max_streams);
  // the staging buffer may still be read by the previous asynchronous copy: wait for it unless
  // the device was synchronised since (the trainer's act does that every step, so an add queued
  // behind a running update does not wait for it)
  if (r->dev->kind == TDM_DEV_CUDA && r->stage_pending && r->dev->syncs == r->stage_syncs)
    TDM_TRY(tdm_dev_sync(r->dev));
  const int W = r->cols.total_width;
  for (int i = 0; i < n; i++) {
    float *row = r->stage + (size_t)i * W;
    memcpy(row, b->obs + (size_t)i * O, (size_t)O * 4), row += O;
    memcpy(row, b->act + (size_t)i * A, (size_t)A * 4), row += A;
    *row++ = b->reward[i];
    memcpy(row, b->next_obs + (size_t)i * O, (size_t)O * 4), row += O;
    *row++ = b->terminated[i] ? 1.0f : 0.0f;
    *row = (float)b->source;
  }
  int64_t pos = r->pos;
  int64_t size = r->size + n < c->capacity ? r->size + n : c->capacity;
  const float *src = r->stage;
  if (r->dev->kind == TDM_DEV_CUDA) {
    TDM_TRY(tdm_dev_h2d(r->dev, r->d_stage, r->stage, (size_t)n * W * 4));
    r->stage_pending = true;
    r->stage_syncs = r->dev->syncs;
    src = r->d_stage;
  }
  TDM_TRY(tdm_replay_put(r->dev, &r->cols, src, n, pos, c->capacity, r->size_dev, (int32_t)size));
  r->total += n;
  r->size = size;
  r->pos = (pos + n) % c->capacity;

  // episode links
  for (int i = 0; i < n; i++) {
    int32_t row = (int32_t)((pos + i) % c->capacity);
    int32_t s = tdm_transition_stream(b, i);
    unlink_row(r, row);
    int32_t p = r->last_row[s];
    if (p >= 0 && !r->ended[p]) {
      r->next[p] = row;
      r->prev[row] = p;
    }
    r->ended[row] = tdm_transition_ends(b, i) ? 1 : 0;
    r->stream_of[row] = s;
    r->last_row[s] = row;
  }
  return TDM_OK;
}

tdm_status tdm_replay_batch_create(tdm_replay *r, int max_rows, tdm_replay_batch *b) {
  memset(b, 0, sizeof *b);
  if (max_rows < 1)
    return TDM_FAIL(TDM_ERR_ARG, "replay batch: max_rows %d must be >= 1", max_rows);
  size_t R = (size_t)max_rows, O = (size_t)r->cfg.obs_dim, A = (size_t)r->cfg.act_dim;
  size_t bytes = align64(R * 4) + align64(2 * R * O * 4) + align64(R * A * 4) + 3 * align64(R * 4);
  TDM_TRY(tdm_dev_alloc(r->dev, bytes, &b->mem_));
  uint8_t *p = b->mem_;
  b->idx = (int32_t *)p, p += align64(R * 4);
  // next_obs follows obs directly: (2 max_rows, O) can be read as one array
  b->obs = (float *)p;
  b->next_obs = b->obs + R * O, p += align64(2 * R * O * 4);
  b->act = (float *)p, p += align64(R * A * 4);
  b->reward = (float *)p, p += align64(R * 4);
  b->terminated = (float *)p, p += align64(R * 4);
  b->source = (float *)p;
  b->max_rows = max_rows;
  return tdm_dev_memset(r->dev, b->mem_, 0, bytes);
}

void tdm_replay_batch_destroy(tdm_replay *r, tdm_replay_batch *b) {
  if (b->mem_) tdm_dev_free(r->dev, b->mem_);
  memset(b, 0, sizeof *b);
}

void tdm_replay_cols_of(const tdm_replay *r, const tdm_replay_batch *b, tdm_replay_cols *out) {
  float *dst[TDM_REPLAY_NCOLS] = {b->obs, b->act, b->reward, b->next_obs, b->terminated, b->source};
  *out = r->cols;
  for (int k = 0; k < TDM_REPLAY_NCOLS; k++) out->batch[k] = dst[k];
}

tdm_status tdm_replay_gather(tdm_replay *r, tdm_replay_batch *b, int n) {
  if (n < 1 || n > b->max_rows)
    return TDM_FAIL(TDM_ERR_ARG, "replay gather: %d rows, batch holds 1..%d", n, b->max_rows);
  tdm_replay_cols cols;
  tdm_replay_cols_of(r, b, &cols);
  TDM_TRY(tdm_replay_gather_cols(r->dev, &cols, b->idx, n));
  b->rows = n;
  return TDM_OK;
}

tdm_status tdm_replay_sample(tdm_replay *r, tdm_replay_batch *b, int B, const tdm_rng_ctr *rng,
                             uint32_t stream) {
  if (B < 1 || B > b->max_rows)
    return TDM_FAIL(TDM_ERR_ARG, "replay sample: batch %d, the batch buffer holds 1..%d", B,
                    b->max_rows);
  // the host mirror is exact outside graph capture; during capture the size is read on replay
  if (r->size == 0 && !r->dev->capturing)
    return TDM_FAIL(TDM_ERR_ARG,
                    "replay sample: the buffer is empty (add transitions first, "
                    "or raise learning_starts)");
  // indices (tdm_fill_randint's draws) and the gather of every array: one launch on the GPU
  tdm_replay_cols cols;
  tdm_replay_cols_of(r, b, &cols);
  TDM_TRY(tdm_replay_sample_cols(r->dev, &cols, b->idx, B, r->size_dev, rng, stream));
  b->rows = B;
  return TDM_OK;
}

// true when a sequence of L steps starts at row (no episode end before the last step)
static bool seq_ok(const tdm_replay *r, int32_t row, int L, int32_t *rows) {
  for (int t = 0; t < L; t++) {
    rows[t] = row;
    if (t == L - 1) break;
    if (r->ended[row] || r->next[row] < 0) return false;
    row = r->next[row];
  }
  return true;
}

tdm_status tdm_replay_sample_seq(tdm_replay *r, tdm_replay_batch *b, int L, int B, tdm_rng *hr) {
  if (L < 1 || B < 1 || (int64_t)L * B > r->cfg.max_seq_rows || L * B > b->max_rows)
    return TDM_FAIL(TDM_ERR_ARG,
                    "replay sample_seq: L %d x B %d rows must be >= 1 and fit max_seq_rows %d "
                    "and the batch (%d rows)",
                    L, B, r->cfg.max_seq_rows, b->max_rows);
  if (r->size == 0) return TDM_FAIL(TDM_ERR_ARG, "replay sample_seq: the buffer is empty");
  if (r->dev->kind == TDM_DEV_CUDA) TDM_TRY(tdm_dev_sync(r->dev));
  int32_t rows[4096];
  int32_t *tmp = L <= 4096 ? rows : malloc((size_t)L * 4);
  if (!tmp) return TDM_FAIL(TDM_ERR_OOM, "replay sample_seq: out of host memory");
  uint32_t size = (uint32_t)r->size;
  for (int s = 0; s < B; s++) {
    long tries = 0;
    for (;;) {
      int32_t start = (int32_t)tdm_rng_below(hr, size);
      if (seq_ok(r, start, L, tmp)) break;
      if (++tries == 10000) {
        // rare or no valid start: check that at least one exists before trying on
        bool any = false;
        for (uint32_t i = 0; i < size && !any; i++) any = seq_ok(r, (int32_t)i, L, tmp);
        if (!any) {
          if (tmp != rows) free(tmp);
          return TDM_FAIL(TDM_ERR_ARG,
                          "replay sample_seq: no sub-trajectory of %d steps without an episode "
                          "end among %u stored transitions; collect more data or shorten L",
                          L, size);
        }
      }
    }
    for (int t = 0; t < L; t++) r->seq_stage[(size_t)t * B + s] = tmp[t];
  }
  if (tmp != rows) free(tmp);
  TDM_TRY(tdm_dev_h2d(r->dev, b->idx, r->seq_stage, (size_t)L * B * 4));
  TDM_TRY(tdm_replay_gather(r, b, L * B));
  return tdm_dev_sync(r->dev);
}

// ---------------------------------------------------------------------------------------------
// save / load

static const char RP_MAGIC[8] = {'T', 'D', 'M', 'R', 'P', 'L', 'Y', 1};
#define RP_VERSION 1u

typedef struct {
  uint32_t version;
  int32_t obs_dim, act_dim, max_streams;
  int64_t capacity, pos, size, total;
} rp_header;

#define CHUNK_BYTES ((size_t)4 << 20)

static tdm_status wr(FILE *f, const void *p, size_t n, uint32_t *crc) {
  if (n && fwrite(p, 1, n, f) != n)
    return TDM_FAIL(TDM_ERR_IO, "replay write: short write (%zu bytes); disk full?", n);
  *crc = tdm_crc32(*crc, p, n);
  return TDM_OK;
}

static tdm_status rd(FILE *f, void *p, size_t n, uint32_t *crc, const char *what) {
  if (n && fread(p, 1, n, f) != n)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: replay section truncated (wanted %zu more bytes)", what,
                    n);
  *crc = tdm_crc32(*crc, p, n);
  return TDM_OK;
}

// write rows [0, size) of a device array of width D through a host chunk buffer
static tdm_status wr_dev(tdm_replay *r, FILE *f, const float *src, int D, void *chunk,
                         uint32_t *crc) {
  size_t total = (size_t)r->size * D * 4;
  for (size_t off = 0; off < total; off += CHUNK_BYTES) {
    size_t n = total - off < CHUNK_BYTES ? total - off : CHUNK_BYTES;
    TDM_TRY(tdm_dev_d2h(r->dev, chunk, (const uint8_t *)src + off, n));
    TDM_TRY(tdm_dev_sync(r->dev));
    TDM_TRY(wr(f, chunk, n, crc));
  }
  return TDM_OK;
}

tdm_status tdm_replay_write(tdm_replay *r, FILE *f) {
  TDM_TRY(tdm_dev_sync(r->dev));
  void *chunk = malloc(CHUNK_BYTES);
  if (!chunk) return TDM_FAIL(TDM_ERR_OOM, "replay write: out of host memory");
  tdm_status st;
  uint32_t crc = 0;
  rp_header h = {RP_VERSION,      r->cfg.obs_dim, r->cfg.act_dim, r->cfg.max_streams,
                 r->cfg.capacity, r->pos,         r->size,        r->total};
  size_t C = (size_t)r->cfg.capacity;
  if (fwrite(RP_MAGIC, 1, 8, f) != 8) {
    st = TDM_FAIL(TDM_ERR_IO, "replay write: short write");
    goto fail;
  }
  TDM_TRYG(wr(f, &h, sizeof h, &crc));
  TDM_TRYG(wr(f, r->next, C * 4, &crc));
  TDM_TRYG(wr(f, r->prev, C * 4, &crc));
  TDM_TRYG(wr(f, r->stream_of, C * 4, &crc));
  TDM_TRYG(wr(f, r->ended, C, &crc));
  TDM_TRYG(wr(f, r->last_row, (size_t)r->cfg.max_streams * 4, &crc));
  TDM_TRYG(wr_dev(r, f, r->obs, r->cfg.obs_dim, chunk, &crc));
  TDM_TRYG(wr_dev(r, f, r->act, r->cfg.act_dim, chunk, &crc));
  TDM_TRYG(wr_dev(r, f, r->reward, 1, chunk, &crc));
  TDM_TRYG(wr_dev(r, f, r->next_obs, r->cfg.obs_dim, chunk, &crc));
  TDM_TRYG(wr_dev(r, f, r->term, 1, chunk, &crc));
  TDM_TRYG(wr_dev(r, f, r->source, 1, chunk, &crc));
  if (fwrite(&crc, 4, 1, f) != 1) {
    st = TDM_FAIL(TDM_ERR_IO, "replay write: short write");
    goto fail;
  }
  st = TDM_OK;
fail:
  free(chunk);
  return st;
}

// pass over the arrays: verify only (dst NULL) or upload into dst
static tdm_status rd_dev(tdm_replay *r, FILE *f, float *dst, int D, int64_t size, void *chunk,
                         uint32_t *crc, const char *what) {
  size_t total = (size_t)size * D * 4;
  for (size_t off = 0; off < total; off += CHUNK_BYTES) {
    size_t n = total - off < CHUNK_BYTES ? total - off : CHUNK_BYTES;
    TDM_TRY(rd(f, chunk, n, crc, what));
    if (dst) {
      TDM_TRY(tdm_dev_h2d(r->dev, (uint8_t *)dst + off, chunk, n));
      TDM_TRY(tdm_dev_sync(r->dev));
    }
  }
  return TDM_OK;
}

tdm_status tdm_replay_read(tdm_replay *r, FILE *f, const char *what) {
  if (!what) what = "replay";
  char magic[8];
  if (fread(magic, 1, 8, f) != 8)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: replay section truncated (no magic)", what);
  if (memcmp(magic, RP_MAGIC, 7))
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: not a tandem replay section (bad magic)", what);
  rp_header h;
  uint32_t crc = 0;
  TDM_TRY(rd(f, &h, sizeof h, &crc, what));
  if (h.version != RP_VERSION || magic[7] != RP_MAGIC[7])
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: replay format version %u, this build reads %u", what,
                    h.version, RP_VERSION);
  if (h.obs_dim != r->cfg.obs_dim || h.act_dim != r->cfg.act_dim || h.capacity != r->cfg.capacity ||
      h.max_streams != r->cfg.max_streams)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: replay shape mismatch: file has obs %d act %d capacity %lld streams %d, "
                    "this buffer obs %d act %d capacity %lld streams %d",
                    what, h.obs_dim, h.act_dim, (long long)h.capacity, h.max_streams,
                    r->cfg.obs_dim, r->cfg.act_dim, (long long)r->cfg.capacity, r->cfg.max_streams);
  if (h.size < 0 || h.size > h.capacity || h.pos < 0 || h.pos >= h.capacity || h.total < h.size)
    return TDM_FAIL(TDM_ERR_FORMAT, "%s: replay counters out of range (size %lld pos %lld)", what,
                    (long long)h.size, (long long)h.pos);
  size_t C = (size_t)h.capacity, S = (size_t)h.max_streams;
  tdm_status st = TDM_OK;
  int32_t *next = malloc(C * 4), *prev = malloc(C * 4), *sof = malloc(C * 4);
  int32_t *last = malloc(S * 4);
  uint8_t *ended = malloc(C);
  void *chunk = malloc(CHUNK_BYTES);
  if (!next || !prev || !sof || !last || !ended || !chunk) {
    st = TDM_FAIL(TDM_ERR_OOM, "%s: out of host memory reading the replay", what);
    goto fail;
  }
  TDM_TRYG(rd(f, next, C * 4, &crc, what));
  TDM_TRYG(rd(f, prev, C * 4, &crc, what));
  TDM_TRYG(rd(f, sof, C * 4, &crc, what));
  TDM_TRYG(rd(f, ended, C, &crc, what));
  TDM_TRYG(rd(f, last, S * 4, &crc, what));
  // the links index rows and streams (sequence sampling follows them): in range or -1
  for (size_t i = 0; i < C; i++)
    if (next[i] < -1 || next[i] >= (int32_t)C || prev[i] < -1 || prev[i] >= (int32_t)C ||
        sof[i] < -1 || sof[i] >= (int32_t)S || ended[i] > 1) {
      st = TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: replay row %zu has links out of range (next %d, prev %d, stream %d, "
                    "ended %d); the file is corrupt",
                    what, i, next[i], prev[i], sof[i], ended[i]);
      goto fail;
    }
  for (size_t i = 0; i < S; i++)
    if (last[i] < -1 || last[i] >= (int32_t)C) {
      st = TDM_FAIL(TDM_ERR_FORMAT, "%s: replay stream %zu's last row %d is out of range", what, i,
                    last[i]);
      goto fail;
    }
  // first pass verifies the checksum when the stream can seek back, so a bad file changes nothing
  long at = ftell(f);
  bool two_pass = at >= 0;
  int O = h.obs_dim, A = h.act_dim;
  int widths[6] = {O, A, 1, O, 1, 1};
  float *dsts[6] = {r->obs, r->act, r->reward, r->next_obs, r->term, r->source};
  for (int pass = two_pass ? 0 : 1; pass < 2; pass++) {
    uint32_t c2 = crc;
    if (pass == 1 && two_pass && fseek(f, at, SEEK_SET) != 0) {
      st = TDM_FAIL(TDM_ERR_IO, "%s: cannot seek back in the replay section", what);
      goto fail;
    }
    for (int k = 0; k < 6; k++)
      TDM_TRYG(rd_dev(r, f, pass == 1 ? dsts[k] : NULL, widths[k], h.size, chunk, &c2, what));
    uint32_t want;
    if (fread(&want, 4, 1, f) != 1) {
      st = TDM_FAIL(TDM_ERR_FORMAT, "%s: replay section truncated (no checksum)", what);
      goto fail;
    }
    if (want != c2) {
      st = TDM_FAIL(TDM_ERR_FORMAT,
                    "%s: replay checksum mismatch (file %08x, computed %08x); "
                    "the file is corrupt",
                    what, want, c2);
      goto fail;
    }
  }
  memcpy(r->next, next, C * 4);
  memcpy(r->prev, prev, C * 4);
  memcpy(r->stream_of, sof, C * 4);
  memcpy(r->ended, ended, C);
  memcpy(r->last_row, last, S * 4);
  r->pos = h.pos;
  r->size = h.size;
  r->total = h.total;
  TDM_TRYG(tdm_dev_sync(r->dev));
  *r->stage_size = (int32_t)r->size;
  TDM_TRYG(tdm_dev_h2d(r->dev, r->size_dev, r->stage_size, 4));
  TDM_TRYG(tdm_dev_sync(r->dev));
fail:
  free(next);
  free(prev);
  free(sof);
  free(last);
  free(ended);
  free(chunk);
  return st;
}
