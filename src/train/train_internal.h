// Helpers shared by the files of src/train (not a public header).
#ifndef TANDEM_TRAIN_INTERNAL_H
#define TANDEM_TRAIN_INTERNAL_H

#include <stdio.h>

#include "tandem/core.h"

// A file written atomically: data goes to "<path>.tmp", commit fsyncs, renames over path and
// fsyncs the directory; abort removes the temporary file and leaves path untouched.
typedef struct {
  FILE *f;
  char path[1024];
  char tmp[1040];
} tdm_afile;

// Open path's temporary file for writing.
tdm_status tdm_afile_open(tdm_afile *a, const char *path);
// Flush, fsync, close and rename the temporary file over path.
tdm_status tdm_afile_commit(tdm_afile *a);
// Close and remove the temporary file (safe after a failed commit or on a closed afile).
void tdm_afile_abort(tdm_afile *a);

// Create dir and its parents (mkdir -p).
tdm_status tdm_mkdirs(const char *dir);

#endif
