// Checkpoint files: header, resolved configuration, trainer state, agent section, CRC trailer.
//
// Layout (little-endian, this platform's struct layout):
//   ckpt_header (magic "TDMCKPT\0", version, sizes, config hash, shapes, counters)
//   config text (config_len bytes), trainer state (state_len bytes), agent section (agent write)
//   trailer: "TDMCEND\0", CRC-32 of every byte before the trailer, 4 reserved bytes
// Written to "<path>.tmp", reread for the CRC, fsynced and renamed over path.
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tandem/run.h"
#include "train_internal.h"

static const char CKPT_MAGIC[8] = {'T', 'D', 'M', 'C', 'K', 'P', 'T', 0};
static const char CKPT_END[8] = {'T', 'D', 'M', 'C', 'E', 'N', 'D', 0};

typedef struct {
  char magic[8];
  uint32_t version, header_bytes;
  uint32_t config_hash;
  int32_t obs_dim, act_dim, num_envs;
  int32_t with_replay, reserved;
  int64_t step, episodes, updates;
  double wall_s;
  uint64_t config_len, state_len;
} ckpt_header;

typedef struct {
  char magic[8];
  uint32_t crc, reserved;
} ckpt_trailer;

// CRC-32 of the first n bytes of f (reads from the start).
static tdm_status crc_prefix(FILE *f, long n, uint32_t *crc_out, const char *path) {
  if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
    return TDM_FAIL(TDM_ERR_IO, "checkpoint %s: cannot reread: %s", path, strerror(errno));
  uint32_t crc = 0;
  char buf[1 << 16];
  while (n > 0) {
    size_t want = n < (long)sizeof buf ? (size_t)n : sizeof buf;
    size_t got = fread(buf, 1, want, f);
    if (got != want) return TDM_FAIL(TDM_ERR_IO, "checkpoint %s: read error", path);
    crc = tdm_crc32(crc, buf, got);
    n -= (long)got;
  }
  *crc_out = crc;
  return TDM_OK;
}

tdm_status tdm_ckpt_write(const char *path, const tdm_ckpt_info *info, const char *config_text,
                          const void *state, size_t state_len, tdm_agent *agent) {
  tdm_afile a;
  TDM_TRY(tdm_afile_open(&a, path));
  // reopen read-write: the agent may seek back to patch lengths, and the CRC rereads the file
  FILE *f = freopen(a.tmp, "w+b", a.f);
  a.f = f;
  if (!f) {
    tdm_afile_abort(&a);
    return TDM_FAIL(TDM_ERR_IO, "checkpoint %s: cannot reopen %s", path, a.tmp);
  }
  ckpt_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, CKPT_MAGIC, 8);
  h.version = TDM_CKPT_VERSION;
  h.header_bytes = (uint32_t)sizeof h;
  h.config_hash = info->config_hash;
  h.obs_dim = info->obs_dim;
  h.act_dim = info->act_dim;
  h.num_envs = info->num_envs;
  h.with_replay = info->with_replay;
  h.step = info->step;
  h.episodes = info->episodes;
  h.updates = info->updates;
  h.wall_s = info->wall_s;
  h.config_len = strlen(config_text);
  h.state_len = state_len;
  tdm_status st = TDM_OK;
  if (fwrite(&h, sizeof h, 1, f) != 1 || fwrite(config_text, 1, h.config_len, f) != h.config_len ||
      (state_len && fwrite(state, 1, state_len, f) != state_len))
    st = TDM_FAIL(TDM_ERR_IO, "writing checkpoint %s failed: %s", a.tmp, strerror(errno));
  if (st == TDM_OK) st = tdm_agent_write(agent, f, info->with_replay);
  long end = -1;
  if (st == TDM_OK && (fflush(f) != 0 || fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0))
    st = TDM_FAIL(TDM_ERR_IO, "writing checkpoint %s failed: %s", a.tmp, strerror(errno));
  ckpt_trailer t;
  memset(&t, 0, sizeof t);
  memcpy(t.magic, CKPT_END, 8);
  if (st == TDM_OK) st = crc_prefix(f, end, &t.crc, path);
  if (st == TDM_OK && (fseek(f, end, SEEK_SET) != 0 || fwrite(&t, sizeof t, 1, f) != 1))
    st = TDM_FAIL(TDM_ERR_IO, "writing checkpoint %s failed: %s", a.tmp, strerror(errno));
  if (st != TDM_OK) {
    tdm_afile_abort(&a);
    return tdm_adderr(st, "checkpoint %s not written (the previous ones are intact): ", path);
  }
  return tdm_afile_commit(&a);
}

// Check the whole file; on success fill h and leave f positioned after the header.
static tdm_status check_file(FILE *f, const char *path, ckpt_header *h, long *size_out) {
  if (fseek(f, 0, SEEK_END) != 0) return TDM_FAIL(TDM_ERR_IO, "checkpoint %s: cannot seek", path);
  long size = ftell(f);
  rewind(f);
  if (size < (long)sizeof(CKPT_MAGIC) || fread(h->magic, 1, 8, f) != 8 ||
      memcmp(h->magic, CKPT_MAGIC, 8))
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "%s is not a tandem checkpoint (bad magic: expected \"TDMCKPT\" at the start)",
                    path);
  rewind(f);
  if (size < (long)(sizeof *h + sizeof(ckpt_trailer)) || fread(h, sizeof *h, 1, f) != 1)
    return TDM_FAIL(TDM_ERR_FORMAT, "checkpoint %s is truncated (%ld bytes, shorter than a header)",
                    path, size);
  if (h->version != TDM_CKPT_VERSION)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s has format version %u; this build reads version %d (use the "
                    "tandem version that wrote it)",
                    path, h->version, TDM_CKPT_VERSION);
  if (h->header_bytes != sizeof *h)
    return TDM_FAIL(TDM_ERR_FORMAT, "checkpoint %s: header size %u, expected %zu (corrupt)", path,
                    h->header_bytes, sizeof *h);
  ckpt_trailer t;
  if (fseek(f, size - (long)sizeof t, SEEK_SET) != 0 || fread(&t, sizeof t, 1, f) != 1 ||
      memcmp(t.magic, CKPT_END, 8))
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s is truncated (no end marker: the write was cut short or the "
                    "file was cut); use an older checkpoint",
                    path);
  if ((uint64_t)size < sizeof *h + h->config_len + h->state_len + sizeof t)
    return TDM_FAIL(TDM_ERR_FORMAT, "checkpoint %s is truncated (%ld bytes, sections need more)",
                    path, size);
  uint32_t crc = 0;
  TDM_TRY(crc_prefix(f, size - (long)sizeof t, &crc, path));
  if (crc != t.crc)
    return TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s is corrupt (CRC-32 %08x, the file says %08x); use an older "
                    "checkpoint",
                    path, crc, t.crc);
  if (fseek(f, (long)sizeof *h, SEEK_SET) != 0)
    return TDM_FAIL(TDM_ERR_IO, "checkpoint %s: cannot seek", path);
  *size_out = size;
  return TDM_OK;
}

static void info_from(const ckpt_header *h, tdm_ckpt_info *info) {
  memset(info, 0, sizeof *info);
  info->version = h->version;
  info->config_hash = h->config_hash;
  info->obs_dim = h->obs_dim;
  info->act_dim = h->act_dim;
  info->num_envs = h->num_envs;
  info->with_replay = h->with_replay != 0;
  info->step = h->step;
  info->episodes = h->episodes;
  info->updates = h->updates;
  info->wall_s = h->wall_s;
}

tdm_status tdm_ckpt_read(const char *path, tdm_ckpt_info *info, char **config_text, void **state,
                         size_t *state_len, tdm_agent *agent, bool load_replay) {
  if (config_text) *config_text = NULL;
  if (state) *state = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return TDM_FAIL(TDM_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
  ckpt_header h;
  long size = 0;
  char *text = NULL;
  void *blob = NULL;
  tdm_status st = check_file(f, path, &h, &size);
  if (st == TDM_OK) {
    text = malloc(h.config_len + 1);
    blob = malloc(h.state_len ? h.state_len : 1);
    if (!text || !blob)
      st = TDM_FAIL(TDM_ERR_OOM, "checkpoint %s: out of memory", path);
    else if (fread(text, 1, h.config_len, f) != h.config_len ||
             (h.state_len && fread(blob, 1, h.state_len, f) != h.state_len))
      st = TDM_FAIL(TDM_ERR_IO, "checkpoint %s: read error", path);
    else
      text[h.config_len] = 0;
  }
  if (st == TDM_OK && agent) {
    if (h.obs_dim != agent->dims.obs_dim || h.act_dim != agent->dims.act_dim)
      st = TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s is for obs_dim %d, act_dim %d; this agent has %d, %d "
                    "(different task?)",
                    path, h.obs_dim, h.act_dim, agent->dims.obs_dim, agent->dims.act_dim);
    if (st == TDM_OK) st = tdm_agent_read(agent, f, load_replay && h.with_replay, path);
    if (st == TDM_OK && ftell(f) != size - (long)sizeof(ckpt_trailer))
      st = TDM_FAIL(TDM_ERR_FORMAT,
                    "checkpoint %s: the agent section ends at byte %ld, the file at %ld (written "
                    "by a different agent version?)",
                    path, ftell(f), size - (long)sizeof(ckpt_trailer));
  }
  fclose(f);
  if (st != TDM_OK) {
    free(text);
    free(blob);
    return st;
  }
  info_from(&h, info);
  if (config_text)
    *config_text = text;
  else
    free(text);
  if (state) {
    *state = blob;
    *state_len = h.state_len;
  } else {
    free(blob);
  }
  return TDM_OK;
}

tdm_status tdm_checkpoint_inspect(const char *path, tdm_ckpt_info *info, char **config_text) {
  return tdm_ckpt_read(path, info, config_text, NULL, NULL, NULL, false);
}

tdm_status tdm_checkpoint_load_agent(const char *path, tdm_agent *agent) {
  tdm_ckpt_info info;
  return tdm_ckpt_read(path, &info, NULL, NULL, NULL, agent, false);
}

// ---------------------------------------------------------------------------------------------
// the checkpoints of a run directory

static int is_ckpt_name(const char *n, long long *step) {
  size_t l = strlen(n);
  if (l < 10 || strncmp(n, "ckpt_", 5) || strcmp(n + l - 4, ".tdm")) return 0;
  char *end;
  long long s = strtoll(n + 5, &end, 10);
  if (end != n + l - 4) return 0;
  *step = s;
  return 1;
}

// Steps of the checkpoints in dir, ascending (malloc'd; *n of them).
tdm_status tdm_ckpt_list(const char *dir, long long **steps, int *n) {
  *steps = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? TDM_OK
                           : TDM_FAIL(TDM_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    long long s;
    if (!is_ckpt_name(e->d_name, &s)) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      long long *p = realloc(*steps, (size_t)cap * sizeof *p);
      if (!p) {
        closedir(d);
        free(*steps);
        *steps = NULL;
        return TDM_FAIL(TDM_ERR_OOM, "listing %s", dir);
      }
      *steps = p;
    }
    (*steps)[(*n)++] = s;
  }
  closedir(d);
  for (int i = 1; i < *n; i++)  // insertion sort: a handful of files
    for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
      long long t = (*steps)[j];
      (*steps)[j] = (*steps)[j - 1];
      (*steps)[j - 1] = t;
    }
  return TDM_OK;
}

void tdm_ckpt_path(const char *dir, long long step, char *out, size_t n) {
  snprintf(out, n, "%s/ckpt_%012lld.tdm", dir, step);
}

tdm_status tdm_ckpt_prune(const char *dir, int keep) {
  long long *steps;
  int n;
  TDM_TRY(tdm_ckpt_list(dir, &steps, &n));
  for (int i = 0; i < n - keep; i++) {
    char p[1100];
    tdm_ckpt_path(dir, steps[i], p, sizeof p);
    if (unlink(p) != 0) tdm_warn_once("ckpt.prune", "could not remove old checkpoint %s", p);
  }
  free(steps);
  return TDM_OK;
}

tdm_status tdm_checkpoint_latest(const char *run_dir, char *path, size_t n) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
  long long *steps;
  int k;
  TDM_TRY(tdm_ckpt_list(dir, &steps, &k));
  if (k == 0) {  // run_dir may be the checkpoints folder itself
    free(steps);
    TDM_TRY(tdm_ckpt_list(run_dir, &steps, &k));
    if (k > 0) snprintf(dir, sizeof dir, "%s", run_dir);
  }
  if (k == 0) {
    free(steps);
    struct stat st;
    if (stat(run_dir, &st) != 0)
      return TDM_FAIL(TDM_ERR_IO, "run directory %s does not exist", run_dir);
    return TDM_FAIL(TDM_ERR_IO, "%s holds no checkpoint (ckpt_<step>.tdm)", dir);
  }
  tdm_ckpt_path(dir, steps[k - 1], path, n);
  free(steps);
  return TDM_OK;
}
