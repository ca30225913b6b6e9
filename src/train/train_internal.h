// Helpers shared by the files of src/train (not a public header).
#ifndef TANDEM_TRAIN_INTERNAL_H
#define TANDEM_TRAIN_INTERNAL_H

#include <stdio.h>

#include "tandem/core.h"

// Atomic file writes (tdm_afile_open / commit / abort) are declared in tandem/core.h.

// Create dir and its parents (mkdir -p).
tdm_status tdm_mkdirs(const char *dir);

// ---------------------------------------------------------------------------------------------
// checkpoints (checkpoint.c)

struct tdm_agent;
struct tdm_ckpt_info_s;

// Write a checkpoint atomically: header from info, the resolved configuration text, the trainer's
// state blob, then the agent's section (with the replay buffer when info->with_replay).
tdm_status tdm_ckpt_write(const char *path, const struct tdm_ckpt_info_s *info,
                          const char *config_text, const void *state, size_t state_len,
                          struct tdm_agent *agent);

// Check and read a checkpoint: header into info, config text and state blob (malloc'd, may be
// NULL to skip), and the agent section into agent (NULL to skip), with its replay buffer when
// load_replay and the file has one (else the replay section is skipped).
tdm_status tdm_ckpt_read(const char *path, struct tdm_ckpt_info_s *info, char **config_text,
                         void **state, size_t *state_len, struct tdm_agent *agent,
                         bool load_replay);

// Steps of the checkpoints ckpt_<step>.tdm in dir, ascending (malloc'd).
tdm_status tdm_ckpt_list(const char *dir, long long **steps, int *n);
// dir/ckpt_<step>.tdm
void tdm_ckpt_path(const char *dir, long long step, char *out, size_t n);
// Remove all but the newest keep checkpoints of dir.
tdm_status tdm_ckpt_prune(const char *dir, int keep);

#endif
