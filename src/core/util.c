// Arena, timers, aligned allocation, CRC-32.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tandem/core.h"

tdm_status tdm_arena_init(tdm_arena *a, size_t cap) {
  memset(a, 0, sizeof *a);
  a->base = tdm_malloc_aligned(cap);
  if (!a->base && cap) return TDM_FAIL(TDM_ERR_OOM, "out of host memory: arena of %zu bytes", cap);
  a->cap = cap;
  return TDM_OK;
}

void tdm_arena_release(tdm_arena *a) {
  tdm_free_aligned(a->base);
  memset(a, 0, sizeof *a);
}

void *tdm_arena_alloc(tdm_arena *a, size_t bytes) {
  size_t start = (a->top + 63) & ~(size_t)63;
  if (start + bytes > a->cap) return NULL;
  a->top = start + bytes;
  if (a->top > a->peak) a->peak = a->top;
  return a->base + start;
}

double tdm_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *tdm_malloc_aligned(size_t bytes) {
  void *p = NULL;
  if (bytes == 0) bytes = 64;
  if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
  return p;
}

void tdm_free_aligned(void *p) { free(p); }

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t tdm_crc32(uint32_t crc, const void *data, size_t n) {
  const uint32_t *table = crc_table;
  pthread_once(&crc_once, crc_init);  // threads may checksum concurrently (checkpoints, tests)
  const uint8_t *p = (const uint8_t *)data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

char *tdm_read_all(FILE *f, size_t max, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    const size_t lim = cap < max ? cap : max;
    n += fread(buf + n, 1, lim - n, f);
    if (n < lim || n == max) break;  // end of file, a read error, or max bytes
    char *nb = realloc(buf, 2 * cap + 1);
    if (!nb) free(buf);
    buf = nb, cap *= 2;
  }
  if (!buf) return NULL;
  buf[n] = 0;
  *len = n;
  return buf;
}
