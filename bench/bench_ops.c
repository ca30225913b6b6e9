// tandem bench ops (placeholder until the nn library lands; reports that it is not built yet).
#include <stdio.h>

#include "../src/cli/cli.h"

int tdm_bench_ops(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "tandem: bench ops is not implemented yet\n");
  return 1;
}
