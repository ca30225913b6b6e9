// Directory creation for run directories (atomic file writes live in src/core/afile.c).
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "train_internal.h"

tdm_status tdm_mkdirs(const char *dir) {
  char buf[1024];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf) return TDM_FAIL(TDM_ERR_ARG, "bad directory name \"%s\"", dir);
  memcpy(buf, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == 0) {
      char c = buf[i];
      buf[i] = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return TDM_FAIL(TDM_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
      buf[i] = c;
    }
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return TDM_FAIL(TDM_ERR_IO, "%s exists and is not a directory", dir);
  return TDM_OK;
}
