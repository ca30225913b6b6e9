// Sub-commands of the tandem command. Each takes argc/argv starting at its own name, prints its
// own errors, and returns the process exit code (0 ok, 1 failure, 2 bad command line).
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include "tandem/tandem.h"

typedef struct {
  const char *name, *help;
  int (*fn)(int argc, char **argv);
} tdm_cli_cmd;

// True when argv holds --help or -h (then the command prints its usage and returns 0).
int tdm_cli_wants_help(int argc, char **argv);

// Parse a non-negative decimal integer argument (no sign, no empty string); 1 when valid.
int tdm_cli_parse_u64(const char *s, unsigned long long *v);

// Benchmark --device choice: "auto" (CPU rows, and GPU rows when a GPU is visible), "cpu" or
// "cuda[:N]". Fills which rows to run, the GPU spec and why GPU rows are skipped; returns 0 (after
// printing the error) for an unknown value.
int tdm_cli_bench_devices(const char *device, bool *want_cpu, bool *want_gpu,
                          const char **gpu_spec, const char **gpu_skip);

// Print "tandem: error: <message>" with the library's last error.
void tdm_cli_error(const char *what);

int tdm_cmd_version(int argc, char **argv);
int tdm_cmd_devices(int argc, char **argv);
int tdm_cmd_bench(int argc, char **argv);
// cmd_train.c
int tdm_cmd_train(int argc, char **argv);
int tdm_cmd_eval(int argc, char **argv);

// cmd_env.c
int tdm_cmd_envs(int argc, char **argv);
int tdm_cmd_rollout(int argc, char **argv);

// bench/*.c
int tdm_bench_ops(int argc, char **argv);
int tdm_bench_envs(int argc, char **argv);
int tdm_bench_sac(int argc, char **argv);

#endif
