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

// For command name, which takes no arguments: 1 when argv has none after argv[0], else prints
// "tandem NAME: unexpected argument ..." and returns 0 (the caller exits 2).
int tdm_cli_no_args(const char *name, int argc, char **argv);

// Parse a non-negative decimal integer argument (no sign, no empty string); 1 when valid.
int tdm_cli_parse_u64(const char *s, unsigned long long *v);

// Parse option opt's value text as a decimal integer in lo..hi (digits only, a leading '-' only
// when lo < 0; no empty text, '+', spaces or trailing characters); 1 when valid, else prints
// "tandem: OPT "TEXT": expected an integer in LO..HI" and returns 0 (the caller exits 2).
int tdm_cli_parse_int(const char *opt, const char *text, long lo, long hi, long *out);

// Parse a comma-separated list of 1 to max integers ("1,2,4"), each as tdm_cli_parse_int takes
// it, into out[0..*n) (duplicates kept); no empty item (",", "1,,2", "1,"). 1 when valid, else
// prints the error naming opt, the text, the bad item and the range, and returns 0.
int tdm_cli_parse_int_list(const char *opt, const char *text, long lo, long hi, int max, long *out,
                           int *n);

// Parse a decimal number ([-]digits[.digits][e[+-]digits]; '-' only when lo < 0; no inf, nan, hex
// or spaces) in [lo, hi], or (lo, hi] when lo_open; 1 when valid, else prints the error naming
// opt, the text and the range, and returns 0.
int tdm_cli_parse_real(const char *opt, const char *text, double lo, double hi, bool lo_open,
                       double *out);

// Benchmark --device choice: "auto" (CPU rows, and GPU rows when a GPU is visible), "cpu" or
// "cuda[:N]" (N digits only, 0..4095). Fills which rows to run, the GPU spec and why GPU rows are skipped; returns 0 (after
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
