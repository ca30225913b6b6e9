// The tandem command: dispatches to one function per sub-command (src/cli/cli.h).
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const tdm_cli_cmd commands[] = {
    {"version", "print the version and the backends this build has", tdm_cmd_version},
    {"devices", "list CPU threads and GPUs (name, compute capability, memory)", tdm_cmd_devices},
    {"bench", "run a benchmark: bench ops | sac | envs", tdm_cmd_bench},
    {"envs", "list the environment tasks (sizes, bounds, episode length)", tdm_cmd_envs},
    {"rollout", "run a task and write a CSV trajectory: rollout TASK [--steps N] ...",
     tdm_cmd_rollout},
    {"train", "train an agent from a config file: train CONFIG [-s key=value] [--resume DIR]",
     tdm_cmd_train},
    {"eval", "evaluate a checkpoint: eval CHECKPOINT [--episodes K]", tdm_cmd_eval},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
  fprintf(f, "usage: tandem COMMAND [options]   (tandem COMMAND --help for its options)\n\ncommands:\n");
  for (int i = 0; i < n_commands; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

// The command called name, or NULL.
static const tdm_cli_cmd *find_command(const char *name) {
  for (int i = 0; i < n_commands; i++)
    if (!strcmp(name, commands[i].name)) return &commands[i];
  return NULL;
}

static int unknown_command(const char *name) {
  fprintf(stderr, "tandem: unknown command \"%s\"\n\n", name);
  usage(stderr);
  return 2;
}

int main(int argc, char **argv) {
  tdm_blas_pick_kernels();  // may re-execute the program once (include/tandem/core.h)
  // tandem help COMMAND = tandem COMMAND --help
  if (argc == 3 && !strcmp(argv[1], "help")) {
    const tdm_cli_cmd *c = find_command(argv[2]);
    if (!c) return unknown_command(argv[2]);
    char *hargv[] = {argv[2], "--help", NULL};
    return c->fn(2, hargv);
  }
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) return tdm_cmd_version(argc - 1, argv + 1);
  const tdm_cli_cmd *c = find_command(argv[1]);
  return c ? c->fn(argc - 1, argv + 1) : unknown_command(argv[1]);
}
