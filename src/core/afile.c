// Atomic file writes (include/tandem/core.h): checkpoints, parameter files, run directory files.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <unistd.h>

#include "tandem/core.h"

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

// Make a rename in path's directory durable (best effort: a directory that cannot be opened is
// skipped, as on file systems without directory fsync).
static void fsync_dir_of(const char *path) {
  char buf[sizeof(((tdm_afile *)0)->path)];
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
