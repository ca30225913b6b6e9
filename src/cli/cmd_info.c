// tandem version, tandem devices.
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int tdm_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

int tdm_cli_no_args(const char *name, int argc, char **argv) {
  if (argc <= 1) return 1;
  fprintf(stderr, "tandem %s: unexpected argument \"%s\" (tandem %s --help)\n", name, argv[1],
          name);
  return 0;
}

void tdm_cli_error(const char *what) {
  fprintf(stderr, "tandem: error: %s%s%s\n", what ? what : "", what ? ": " : "", tdm_errmsg());
}

int tdm_cli_parse_u64(const char *s, unsigned long long *v) {
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)s[0])) return 0;  // strtoull would take " -1" or "+5"
  *v = strtoull(s, &end, 10);
  return errno == 0 && *end == 0;
}

// Digits of s[0..len), with a leading '-' only when lo < 0, in lo..hi: 1 and *out when valid.
static int int_ok(const char *s, size_t len, long lo, long hi, long *out) {
  size_t i = 0;
  bool neg = false;
  if (len > 0 && s[0] == '-' && lo < 0) neg = true, i = 1;
  if (i == len) return 0;  // empty, or a sign alone
  // |LONG_MIN|, the largest magnitude a long holds
  const unsigned long long cap = (unsigned long long)LONG_MAX + 1;
  unsigned long long mag = 0;
  for (; i < len; i++) {
    // '+', spaces, trailing characters, a '-' where lo >= 0
    if (!isdigit((unsigned char)s[i])) return 0;
    unsigned long long d = (unsigned long long)(s[i] - '0');
    if (mag > (cap - d) / 10) return 0;  // mag * 10 + d > |LONG_MIN|: out of any long range
    mag = mag * 10 + d;
  }
  long v;
  if (neg)
    v = mag == cap ? LONG_MIN : -(long)mag;
  else if (mag == cap)
    return 0;
  else
    v = (long)mag;
  if (v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

int tdm_cli_parse_int(const char *opt, const char *text, long lo, long hi, long *out) {
  if (int_ok(text, strlen(text), lo, hi, out)) return 1;
  fprintf(stderr, "tandem: %s \"%s\": expected an integer in %ld..%ld\n", opt, text, lo, hi);
  return 0;
}

int tdm_cli_parse_int_list(const char *opt, const char *text, long lo, long hi, int max, long *out,
                           int *n) {
  int k = 0;
  const char *q = text;
  for (;;) {
    const char *comma = strchr(q, ',');
    int len = comma ? (int)(comma - q) : (int)strlen(q);
    if (len == 0) {
      fprintf(stderr, "tandem: %s \"%s\": item %d is empty", opt, text, k + 1);
      break;
    }
    if (k == max) {
      fprintf(stderr, "tandem: %s \"%s\": more than %d items", opt, text, max);
      break;
    }
    if (!int_ok(q, (size_t)len, lo, hi, &out[k])) {
      fprintf(stderr, "tandem: %s \"%s\": item %d \"%.*s\" is not valid", opt, text, k + 1, len, q);
      break;
    }
    k++;
    if (!comma) {
      *n = k;
      return 1;
    }
    q = comma + 1;
  }
  fprintf(stderr, "; expected 1 to %d comma-separated integers in %ld..%ld\n", max, lo, hi);
  return 0;
}

int tdm_cli_parse_real(const char *opt, const char *text, double lo, double hi, bool lo_open,
                       double *out) {
  // [-]digits[.digits][(e|E)[+|-]digits], with at least one digit before the exponent; no
  // spaces, '+', hex, inf or nan (strtod would take them all)
  const char *s = text;
  bool ok = true;
  if (*s == '-' && lo < 0) s++;
  size_t digits = strspn(s, "0123456789");
  s += digits;
  if (*s == '.') {
    size_t frac = strspn(s + 1, "0123456789");
    digits += frac;
    s += 1 + frac;
  }
  if (digits == 0) ok = false;
  if (ok && (*s == 'e' || *s == 'E')) {
    s++;
    if (*s == '+' || *s == '-') s++;
    size_t ex = strspn(s, "0123456789");
    if (ex == 0) ok = false;
    s += ex;
  }
  if (ok && *s) ok = false;
  double v = 0;
  if (ok) {
    errno = 0;
    v = strtod(text, NULL);
    ok = errno != ERANGE && isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
  }
  if (ok) {
    *out = v;
    return 1;
  }
  fprintf(stderr, "tandem: %s \"%s\": expected a number in %s%g, %g]\n", opt, text,
          lo_open ? "(" : "[", lo, hi);
  return 0;
}

int tdm_cli_bench_devices(const char *device, bool *want_cpu, bool *want_gpu,
                          const char **gpu_spec, const char **gpu_skip) {
  *want_cpu = *want_gpu = false;
  *gpu_spec = "cuda:0";
  *gpu_skip = NULL;
  // "cuda" or "cuda:N", N digits only: the grammar of tdm_dev_open
  int ordinal;
  const bool is_cuda = tdm_dev_parse(device, &ordinal) && ordinal >= 0;
  if (!strcmp(device, "auto")) {
    *want_cpu = true;
    *want_gpu = tdm_cuda_built() && tdm_cuda_device_count() > 0;
    if (!*want_gpu)
      *gpu_skip = tdm_cuda_built() ? "no GPU visible" : "this build has no CUDA backend";
  } else if (!strcmp(device, "cpu")) {
    *want_cpu = true;
    *gpu_skip = "--device cpu";
  } else if (is_cuda) {
    *want_gpu = true;
    *gpu_spec = device;
  } else {
    fprintf(stderr, "tandem: --device %s: expected auto, cpu or cuda:N (N in 0..4095)\n", device);
    return 0;
  }
  return 1;
}

int tdm_cmd_version(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    printf("usage: tandem version\n  Print the version and which backends this build has.\n");
    return 0;
  }
  if (!tdm_cli_no_args("version", argc, argv)) return 2;
  printf("tandem %s\n", TDM_VERSION);
  printf("cuda backend:   %s\n", tdm_cuda_built() ? "built" : "not built (CPU only)");
#ifdef TDM_MUJOCO
  printf("mujoco:         built\n");
#else
  printf("mujoco:         not built\n");
#endif
  return 0;
}

int tdm_cmd_devices(int argc, char **argv) {
  if (tdm_cli_wants_help(argc, argv)) {
    printf("usage: tandem devices\n  List CPU threads and each visible GPU with its name, compute\n"
           "  capability and free / total memory. Use a listed name as device = \"cuda:N\".\n");
    return 0;
  }
  if (!tdm_cli_no_args("devices", argc, argv)) return 2;
  const char *k = tdm_blas_kernels(), *set = getenv("OPENBLAS_CORETYPE"),
             *picked = getenv("TDM_BLAS_PICKED");
  printf("cpu      %d threads", tdm_cpu_count());
  if (k[0] && picked)
    printf(
        ", OpenBLAS %s kernels (chosen by tandem from the CPU's features: OpenBLAS fell back to "
        "its %s kernels; OPENBLAS_CORETYPE=%s keeps those)",
        k, picked, picked);
  else if (k[0])
    printf(", OpenBLAS %s kernels%s", k, set ? " (OPENBLAS_CORETYPE)" : "");
  printf("\n");
  if (!tdm_cuda_built()) {
    printf("(no CUDA backend in this build)\n");
    return 0;
  }
  int n = tdm_cuda_device_count();
  if (n == 0) printf("(no GPU visible)\n");
  for (int i = 0; i < n; i++) {
    tdm_gpu_info g;
    if (tdm_gpu_info_get(i, &g) != TDM_OK) {
      tdm_cli_error("reading GPU properties");
      return 1;
    }
    printf("cuda:%d   %s, sm_%d%d, %d SMs, %.1f / %.1f GiB free\n", i, g.name, g.cc_major,
           g.cc_minor, g.sm_count, g.free_bytes / 1073741824.0, g.total_bytes / 1073741824.0);
  }
  return 0;
}

int tdm_cmd_bench(int argc, char **argv) {
  if (argc < 2 || (argc == 2 && tdm_cli_wants_help(argc, argv))) {
    printf("usage: tandem bench WHAT [options]\n  ops    MLP forward+backward+Adam and SGEMM rate "
           "(tandem bench ops --help)\n  sac    SAC updates per second, GPU graph / plain and "
           "CPU (tandem bench sac --help)\n  envs   env steps per second beside a plain mj_step "
           "loop (tandem bench envs --help)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "ops")) return tdm_bench_ops(argc - 1, argv + 1);
  if (!strcmp(argv[1], "sac")) return tdm_bench_sac(argc - 1, argv + 1);
  if (!strcmp(argv[1], "envs")) return tdm_bench_envs(argc - 1, argv + 1);
  fprintf(stderr, "tandem: unknown benchmark \"%s\"; valid: ops, sac, envs\n", argv[1]);
  return 2;
}
