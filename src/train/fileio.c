// Atomic file writes and directory creation for run directories, configs and checkpoints.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_internal.h"

tdm_status tdm_afile_open(tdm_afile *a, const char *path) {
  memset(a, 0, sizeof *a);
  if (strlen(path) >= sizeof a->path)
    return TDM_FAIL(TDM_ERR_ARG, "path too long (%zu characters): %s", strlen(path), path);
  snprintf(a->path, sizeof a->path, "%s", path);
  snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path);
  a->f = fopen(a->tmp, "wb");
  if (!a->f)
    return TDM_FAIL(TDM_ERR_IO, "cannot create %s: %s (check the directory exists and is writable)",
                    a->tmp, strerror(errno));
  return TDM_OK;
}

static void fsync_dir_of(const char *path) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

tdm_status tdm_afile_commit(tdm_afile *a) {
  if (!a->f) return TDM_FAIL(TDM_ERR_ARG, "commit of %s: file is not open", a->path);
  int bad = ferror(a->f) || fflush(a->f) != 0;
  int err = errno;
  if (!bad && fsync(fileno(a->f)) != 0) bad = 1, err = errno;
  if (fclose(a->f) != 0 && !bad) bad = 1, err = errno;
  a->f = NULL;
  if (bad) {
    unlink(a->tmp);
    return TDM_FAIL(TDM_ERR_IO, "writing %s failed: %s (disk full?); %s was left unchanged", a->tmp,
                    strerror(err), a->path);
  }
  if (rename(a->tmp, a->path) != 0) {
    err = errno;
    unlink(a->tmp);
    return TDM_FAIL(TDM_ERR_IO, "cannot rename %s to %s: %s", a->tmp, a->path, strerror(err));
  }
  fsync_dir_of(a->path);
  return TDM_OK;
}

void tdm_afile_abort(tdm_afile *a) {
  if (a->f) fclose(a->f);
  a->f = NULL;
  if (a->tmp[0]) unlink(a->tmp);
}

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
