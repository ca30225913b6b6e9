// Per-thread error messages and logging.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>

#include "tandem/core.h"

#define TDM_ERRMSG_CAP 2048

static _Thread_local char errmsg[TDM_ERRMSG_CAP];

const char *tdm_status_name(tdm_status s) {
  switch (s) {
    case TDM_OK: return "OK";
    case TDM_ERR_ARG: return "ARG";
    case TDM_ERR_OOM: return "OOM";
    case TDM_ERR_IO: return "IO";
    case TDM_ERR_FORMAT: return "FORMAT";
    case TDM_ERR_CONFIG: return "CONFIG";
    case TDM_ERR_CUDA: return "CUDA";
    case TDM_ERR_MUJOCO: return "MUJOCO";
    case TDM_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case TDM_ERR_NUMERIC: return "NUMERIC";
    case TDM_ERR_INTERRUPTED: return "INTERRUPTED";
  }
  return "UNKNOWN";
}

tdm_status tdm_seterr(tdm_status s, const char *file, int line, const char *fmt, ...) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  int k = snprintf(errmsg, sizeof errmsg, "%s:%d: ", base, line);
  if (k < 0 || k >= (int)sizeof errmsg) k = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg + k, sizeof errmsg - (size_t)k, fmt, ap);
  va_end(ap);
  return s;
}

tdm_status tdm_adderr(tdm_status s, const char *fmt, ...) {
  char prefix[1024], old[TDM_ERRMSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, errmsg, sizeof old);
  snprintf(errmsg, sizeof errmsg, "%s%s", prefix, old);
  return s;
}

const char *tdm_errmsg(void) { return errmsg; }
void tdm_clearerr(void) { errmsg[0] = 0; }

// ---------------------------------------------------------------------------------------------
// logging

static int log_level = -1;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

tdm_log_level tdm_log_get_level(void) {
  if (log_level < 0) {
    const char *e = getenv("TDM_LOG");
    log_level = TDM_LOG_INFO;
    if (e) {
      if (!strcasecmp(e, "debug")) log_level = TDM_LOG_DEBUG;
      else if (!strcasecmp(e, "warn")) log_level = TDM_LOG_WARN;
      else if (!strcasecmp(e, "error")) log_level = TDM_LOG_ERROR;
    }
  }
  return (tdm_log_level)log_level;
}

void tdm_log_set_level(tdm_log_level level) { log_level = (int)level; }

static void vlog(tdm_log_level level, const char *fmt, va_list ap) {
  static const char *tag[] = {"error", "warning", "info", "debug"};
  pthread_mutex_lock(&log_mu);
  if (level <= TDM_LOG_WARN) fprintf(stderr, "tandem: %s: ", tag[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&log_mu);
}

void tdm_log(tdm_log_level level, const char *fmt, ...) {
  if ((int)level > (int)tdm_log_get_level()) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

#define WARN_KEYS 64
static struct {
  char key[64];
  long count;
} warn_tab[WARN_KEYS];

static long *warn_slot(const char *key, int create) {
  for (int i = 0; i < WARN_KEYS; i++) {
    if (warn_tab[i].key[0] == 0) {
      if (!create) return NULL;
      snprintf(warn_tab[i].key, sizeof warn_tab[i].key, "%s", key);
      return &warn_tab[i].count;
    }
    if (!strncmp(warn_tab[i].key, key, sizeof warn_tab[i].key - 1)) return &warn_tab[i].count;
  }
  return NULL;
}

long tdm_warn_once(const char *key, const char *fmt, ...) {
  pthread_mutex_lock(&log_mu);
  long *c = warn_slot(key, 1);
  long n = c ? ++*c : 1;
  pthread_mutex_unlock(&log_mu);
  if (n == 1 && tdm_log_get_level() >= TDM_LOG_WARN) {
    va_list ap;
    va_start(ap, fmt);
    vlog(TDM_LOG_WARN, fmt, ap);
    va_end(ap);
  }
  return n;
}

long tdm_warn_count(const char *key) {
  pthread_mutex_lock(&log_mu);
  long *c = warn_slot(key, 0);
  long n = c ? *c : 0;
  pthread_mutex_unlock(&log_mu);
  return n;
}
