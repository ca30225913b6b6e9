// Command line: runs the built tandem binary (BUILD/tandem for BUILD/tests/cli_test, or
// bundle/bin/tandem for bundle/tests/cli_test) on bad command lines and checks the exit status
// (2: bad command line, 1: a failure after parsing, as src/cli/cli.h states) and that the error
// names the bad argument; --help of each command exits 0.
// Nothing here trains: every train command must fail while parsing. As a guard, the config the
// train commands use asks for one step on the CPU, and every child is killed after 60 s.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tandem/config.h"
#include "test.h"

static char tmpdir[256];
static char tandem_bin[PATH_MAX];
static char ok_cfg[PATH_MAX];  // a valid config (checked in test_setup)
static char out_text[16384], err_text[16384];

// Read up to n - 1 bytes of path into buf (NUL-terminated).
static void slurp(const char *path, char *buf, size_t n) {
  buf[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t k = fread(buf, 1, n - 1, f);
  buf[k] = 0;
  fclose(f);
}

// Run tandem with args (NULL-terminated, without the program name); stdout and stderr go to
// out_text and err_text. Returns the exit status, 128 + the signal when killed, -1 when it could
// not be started.
static int run_tandem(const char *const *args) {
  char out_path[300], err_path[300];
  snprintf(out_path, sizeof out_path, "%s/stdout.txt", tmpdir);
  snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmpdir);
  const char *argv[300];
  int n = 0;
  argv[n++] = tandem_bin;
  for (int i = 0; args[i] && n < 299; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
    close(fo);
    close(fe);
    alarm(60);  // kept across exec: a command that starts real work by mistake cannot hang
    execv(tandem_bin, (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  slurp(out_path, out_text, sizeof out_text);
  slurp(err_path, err_text, sizeof err_text);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Run args; NULL when the exit status is want_rc and stderr holds needle (when not NULL), else a
// description of what happened (static buffer).
static const char *expect(int want_rc, const char *needle, const char *const *args) {
  static char why[1024];
  int rc = run_tandem(args);
  char line[300] = "";
  size_t l = 0;
  for (int i = 0; args[i] && l + 2 < sizeof line; i++)
    l += (size_t)snprintf(line + l, sizeof line - l, "%s\"%s\"", i ? " " : "", args[i]);
  if (rc != want_rc) {
    snprintf(why, sizeof why, "tandem %s: exit status %d, expected %d; stderr: %.600s", line, rc,
             want_rc, err_text);
    return why;
  }
  if (needle && !strstr(err_text, needle)) {
    snprintf(why, sizeof why, "tandem %s: stderr does not name \"%s\": %.600s", line, needle,
             err_text);
    return why;
  }
  return NULL;
}

// The command args exits with want_rc and its stderr names needle.
#define EXPECT(want_rc, needle, ...)                     \
  do {                                                   \
    const char *args_[] = {__VA_ARGS__, NULL};           \
    const char *m_ = expect((want_rc), (needle), args_); \
    CHECKF(!m_, "%s", m_);                               \
  } while (0)

// The command args prints its usage on stdout and exits 0.
#define EXPECT_HELP(...)                                                                      \
  do {                                                                                        \
    const char *args_[] = {__VA_ARGS__, NULL};                                                \
    int rc_ = run_tandem(args_);                                                              \
    CHECKF(rc_ == 0 && strstr(out_text, "usage"), "%s %s: exit %d, stdout: %.300s", args_[0], \
           args_[1] ? args_[1] : "", rc_, out_text);                                          \
  } while (0)

// The binary exists and the config the train tests use is valid, so that their failures come
// from the bad argument alone.
static void test_setup(void) {
  CHECKF(access(tandem_bin, X_OK) == 0, "%s is missing: build it first (make)", tandem_bin);
  tdm_config c;
  tdm_status st = tdm_config_load(&c, ok_cfg, NULL, 0);
  tdm_config_free(&c);
  CHECKF(st == TDM_OK, "%s: %s", ok_cfg, tdm_errmsg());
}

static void test_top_level(void) {
  EXPECT(2, "\"nosuchcommand\"", "nosuchcommand");
  EXPECT_HELP("--help");
  EXPECT_HELP("help");
  const char *none[] = {NULL};
  CHECK(run_tandem(none) == 2 && strstr(err_text, "usage"));
}

static void test_help_of_each_command(void) {
  EXPECT_HELP("version", "--help");
  EXPECT_HELP("devices", "--help");
  EXPECT_HELP("bench", "--help");
  EXPECT_HELP("bench", "ops", "--help");
  EXPECT_HELP("bench", "sac", "--help");
  EXPECT_HELP("envs", "--help");
  EXPECT_HELP("rollout", "--help");
  EXPECT_HELP("train", "--help");
  EXPECT_HELP("train", "-h");
  EXPECT_HELP("eval", "--help");
#ifdef TDM_MUJOCO
  EXPECT_HELP("bench", "envs", "--help");
#endif
  // train --help lists the configuration keys
  const char *a[] = {"train", "--help", NULL};
  CHECK(run_tandem(a) == 0 && strstr(out_text, "agent.fused_update") &&
        strstr(out_text, "agent.graph_streams"));
}

static void test_eval_args(void) {
  EXPECT(2, "--seed -1", "eval", "X", "--seed", "-1");
  EXPECT(2, "--seed", "eval", "X", "--seed", "");
  EXPECT(2, "--seed  -1", "eval", "X", "--seed", " -1");  // strtoull would take it as 2^64 - 1
  EXPECT(2, "--seed +5", "eval", "X", "--seed", "+5");
  EXPECT(2, "--seed 12x", "eval", "X", "--seed", "12x");
  EXPECT(2, "--seed 99999999999999999999", "eval", "X", "--seed", "99999999999999999999");
  EXPECT(2, "--episodes 0", "eval", "X", "--episodes", "0");
  EXPECT(2, "--episodes -3", "eval", "X", "--episodes", "-3");
  EXPECT(2, "--episodes abc", "eval", "X", "--episodes", "abc");
  EXPECT(2, "--episodes 1000001", "eval", "X", "--episodes", "1000001");
  EXPECT(2, "--episodes needs a value", "eval", "X", "--episodes");
  EXPECT(2, "unknown option --bogus", "eval", "X", "--bogus");
  EXPECT(2, "more than one CHECKPOINT", "eval", "X", "Y");
  EXPECT(2, "usage: tandem eval", "eval");
  // parsed fine, then the missing checkpoint is named
  EXPECT(1, "no_such_checkpoint.tdm", "eval", "no_such_checkpoint.tdm", "--seed", "3");
}

static void test_train_args(void) {
  char missing[PATH_MAX];
  snprintf(missing, sizeof missing, "%s/missing.cfg", tmpdir);
  EXPECT(2, "usage: tandem train", "train");
  EXPECT(1, missing, "train", missing);
  EXPECT(1, "\"nosuchkey\"", "train", ok_cfg, "-s", "nosuchkey=1");
  EXPECT(1, "did you mean \"agent.hidden\"", "train", ok_cfg, "-s", "agent.hiden=8");
  EXPECT(1, "agent.hidden=abc", "train", ok_cfg, "-s", "agent.hidden=abc");
  EXPECT(1, "agent.hidden = 0 is out of range", "train", ok_cfg, "-s", "agent.hidden=0");
  EXPECT(1, "agent.hidden", "train", ok_cfg, "--set", "agent.hidden=\"big\"");
  EXPECT(1, "agent.graph_streams = 3 is out of range", "train", ok_cfg, "-sagent.graph_streams=3");
  EXPECT(1, "agent.fused_update", "train", ok_cfg, "-s", "agent.fused_update=1");
  EXPECT(1, "expected key=value", "train", ok_cfg, "-s", "agent.lr");
  EXPECT(1, "device = \"gpu\"", "train", ok_cfg, "--device", "gpu");
  EXPECT(2, "-s needs key=value", "train", ok_cfg, "-s");
  EXPECT(2, "--device needs a value", "train", ok_cfg, "--device");
  EXPECT(2, "--resume needs a value", "train", "--resume");
  EXPECT(2, "unknown option --bogus", "train", ok_cfg, "--bogus");
  EXPECT(2, "more than one CONFIG", "train", ok_cfg, ok_cfg);
  EXPECT(2, "change keys with -s instead of passing", "train", "--resume", tmpdir, ok_cfg);
  char no_run[PATH_MAX];
  snprintf(no_run, sizeof no_run, "%s/no_such_run", tmpdir);
  EXPECT(1, "no_such_run: no such directory", "train", "--resume", no_run);
  // a directory that is not a run directory (the test's tmpdir has no config.cfg)
  EXPECT(1, "not a run directory", "train", "--resume", tmpdir);
  // more -s than the command takes is refused with a message (both spellings)
  const char *many[270];
  int n = 0;
  many[n++] = "train";
  many[n++] = ok_cfg;
  for (int i = 0; i < 129; i++) many[n++] = "-sseed=1";
  many[n] = NULL;
  const char *m = expect(2, "more than 128 overrides", many);
  CHECKF(!m, "%s", m);
  n = 2;
  for (int i = 0; i < 129; i++) {
    many[n++] = "-s";
    many[n++] = "seed=1";
  }
  many[n] = NULL;
  m = expect(2, "more than 128 overrides", many);
  CHECKF(!m, "%s", m);
}

static void test_rollout_args(void) {
  EXPECT(2, "no TASK given", "rollout");
  EXPECT(1, "\"nosuchtask\"", "rollout", "nosuchtask");
  EXPECT(2, "--steps \"0\"", "rollout", "pendulum", "--steps", "0");
  EXPECT(2, "--steps \"-5\"", "rollout", "pendulum", "--steps", "-5");
  EXPECT(2, "--steps \"\"", "rollout", "pendulum", "--steps", "");
  EXPECT(2, "--steps \"100000001\"", "rollout", "pendulum", "--steps", "100000001");
  EXPECT(2, "--seed \"-1\"", "rollout", "pendulum", "--seed", "-1");
  EXPECT(2, "--seed \"x\"", "rollout", "pendulum", "--seed", "x");
  EXPECT(2, "--policy \"greedy\"", "rollout", "pendulum", "--policy", "greedy");
  EXPECT(2, "option --steps needs a value", "rollout", "pendulum", "--steps");
  EXPECT(2, "unknown option --bogus", "rollout", "pendulum", "--bogus", "1");
  EXPECT(2, "\"hopper\" (one TASK only)", "rollout", "pendulum", "hopper");
  EXPECT(2, "either --actions or --policy", "rollout", "pendulum", "--actions", "a.csv", "--policy",
         "zero");
  char missing[PATH_MAX];
  snprintf(missing, sizeof missing, "%s/missing_actions.csv", tmpdir);
  EXPECT(1, missing, "rollout", "pendulum", "--actions", missing);
}

// Every numeric option of the bench commands goes through tdm_cli_parse_int / _int_list / _real:
// empty text, signs where none is allowed, spaces, trailing characters, out-of-range values and
// empty list items exit 2 with a message naming the option, the text and the range. The valid
// forms below end on a bad --device (sac, ops) or an unknown / non-MuJoCo task (envs) right after
// parsing, so no benchmark runs.
static void test_bench_args(void) {
  EXPECT(2, "\"nosuch\"", "bench", "nosuch");
  // bench sac
  EXPECT(2, "--updates \"-3\": expected an integer in 1..10000000", "bench", "sac", "--updates",
         "-3", "--device", "gpu");
  EXPECT(2, "--updates \"abc\"", "bench", "sac", "--updates", "abc", "--device", "gpu");
  EXPECT(2, "--updates \"\"", "bench", "sac", "--updates", "", "--device", "gpu");
  EXPECT(2, "--updates \"0\"", "bench", "sac", "--updates", "0", "--device", "gpu");
  EXPECT(2, "--updates \"10000001\"", "bench", "sac", "--updates", "10000001", "--device", "gpu");
  EXPECT(2, "--updates \"99999999999999999999\"", "bench", "sac", "--updates",
         "99999999999999999999", "--device", "gpu");
  // 2^64 + 4: an unsigned accumulator that wraps would read 4
  EXPECT(2, "--updates \"18446744073709551620\"", "bench", "sac", "--updates",
         "18446744073709551620", "--device", "gpu");
  EXPECT(2, "--prefill \"0\": expected an integer in 1..1000000", "bench", "sac", "--prefill", "0",
         "--device", "gpu");
  EXPECT(2, "--prefill \"1000001\"", "bench", "sac", "--prefill", "1000001", "--device", "gpu");
  EXPECT(2, "--prefill \"1e5\"", "bench", "sac", "--prefill", "1e5", "--device", "gpu");
  EXPECT(2, "--threads \"\": expected an integer in 0..4096", "bench", "sac", "--threads", "",
         "--device", "gpu");
  EXPECT(2, "--threads \"+4\"", "bench", "sac", "--threads", "+4", "--device", "gpu");
  EXPECT(2, "--threads \"-0\"", "bench", "sac", "--threads", "-0", "--device", "gpu");
  EXPECT(2, "--threads \" 4\"", "bench", "sac", "--threads", " 4", "--device", "gpu");
  EXPECT(2, "--threads \"4 \"", "bench", "sac", "--threads", "4 ", "--device", "gpu");
  EXPECT(2, "--threads \"4097\"", "bench", "sac", "--threads", "4097", "--device", "gpu");
  EXPECT(2, "--threads \"1,2\"", "bench", "sac", "--threads", "1,2", "--device", "gpu");
  EXPECT(2, "\"--bogus\"", "bench", "sac", "--bogus");
  // sizes and rows: checked before any device is opened
  EXPECT(2, "--batch \"0\": expected an integer in 1..65536", "bench", "sac", "--batch", "0");
  EXPECT(2, "--hidden \"4097\": expected an integer in 1..4096", "bench", "sac", "--hidden",
         "4097");
  EXPECT(2, "--layers \"8\": expected an integer in 1..7", "bench", "sac", "--layers", "8");
  EXPECT(2, "--obs \"0\": expected an integer in 1..1024", "bench", "sac", "--obs", "0");
  EXPECT(2, "--act \"2.5\": expected an integer in 1..256", "bench", "sac", "--act", "2.5");
  EXPECT(2, "--rows \"fused,graph2\": \"graph2\" is not a row", "bench", "sac", "--rows",
         "fused,graph2");
  EXPECT(2, "--rows \"fused,\": \"\" is not a row", "bench", "sac", "--rows", "fused,");
  EXPECT(2, "--rows needs a value", "bench", "sac", "--rows");
  // valid sizes and rows: parsing reaches the --device check
  EXPECT(2, "--device gpu", "bench", "sac", "--batch", "64", "--hidden", "128", "--layers", "3",
         "--obs", "11", "--act", "3", "--rows", "graph1,fused", "--device", "gpu");
  EXPECT(2, "--updates needs a value", "bench", "sac", "--updates");
  EXPECT(2, "--device gpu", "bench", "sac", "--device", "gpu");
  EXPECT(2, "--device cuda:x", "bench", "sac", "--device", "cuda:x");
  EXPECT(2, "--device cuda:", "bench", "sac", "--device", "cuda:");
  EXPECT(2, "--device cuda:-1", "bench", "sac", "--device", "cuda:-1");
  EXPECT(2, "--device cuda:0x", "bench", "sac", "--device", "cuda:0x");
  EXPECT(2, "--device cudax", "bench", "sac", "--device", "cudax");
  EXPECT(2, "--device cuda:4096: expected auto, cpu or cuda:N (N in 0..4095)", "bench", "sac",
         "--device", "cuda:4096");
  // a valid index no machine has: parsed, then opening the GPU fails before any timing
  EXPECT(1, "cuda:4095", "bench", "sac", "--device", "cuda:4095", "--updates", "1", "--prefill",
         "1");
  // valid numbers: parsing reaches the --device check
  EXPECT(2, "--device gpu", "bench", "sac", "--threads", "0", "--device", "gpu");
  EXPECT(2, "--device gpu", "bench", "sac", "--updates", "10000000", "--prefill", "1", "--threads",
         "4096", "--tf32", "--device", "gpu");
  char json[PATH_MAX];
  snprintf(json, sizeof json, "%s/bench.json", tmpdir);
  EXPECT(2, "--device gpu", "bench", "sac", "--device", "auto", "--json", json, "--updates", "007",
         "--device", "gpu");
  CHECKF(access(json, F_OK) != 0, "%s written by a command that failed while parsing", json);
  // bench ops
  EXPECT(2, "--iters \"0\": expected an integer in 1..1000000", "bench", "ops", "--iters", "0",
         "--device", "gpu");
  EXPECT(2, "--iters \"5x\"", "bench", "ops", "--iters", "5x", "--device", "gpu");
  EXPECT(2, "--iters \"\"", "bench", "ops", "--iters", "", "--device", "gpu");
  EXPECT(2, "--iters \"-5\"", "bench", "ops", "--iters", "-5", "--device", "gpu");
  EXPECT(2, "--iters \"1000001\"", "bench", "ops", "--iters", "1000001", "--device", "gpu");
  EXPECT(2, "--iters needs a value", "bench", "ops", "--iters");
  EXPECT(2, "--device gpu", "bench", "ops", "--device", "gpu");
  EXPECT(2, "--device cuda: 0", "bench", "ops", "--device", "cuda: 0");
  EXPECT(2, "\"--bogus\"", "bench", "ops", "--bogus");
  EXPECT(2, "--device gpu", "bench", "ops", "--iters", "1000000", "--tf32", "--json", json,
         "--device", "gpu");
  EXPECT(2, "--device gpu", "bench", "ops", "--device", "cuda:0", "--iters", "1", "--device",
         "gpu");
  CHECKF(access(json, F_OK) != 0, "%s written by a command that failed while parsing", json);
#ifdef TDM_MUJOCO
  EXPECT(2, "--tasks \"\": expected 1 to 8 comma-separated", "bench", "envs", "--tasks", "");
  EXPECT(2, "--tasks \"half_cheetah,,hopper\"", "bench", "envs", "--tasks", "half_cheetah,,hopper");
  EXPECT(2, "--tasks \",\"", "bench", "envs", "--tasks", ",");
  EXPECT(2, "--tasks \"hopper,\"", "bench", "envs", "--tasks", "hopper,");
  EXPECT(2, "--tasks \"a,b,c,d,e,f,g,h,i\"", "bench", "envs", "--tasks", "a,b,c,d,e,f,g,h,i");
  EXPECT(2, "--seconds \"0\": expected a number in (0, 600]", "bench", "envs", "--seconds", "0",
         "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"\"", "bench", "envs", "--seconds", "", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"600.5\"", "bench", "envs", "--seconds", "600.5", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"-1\"", "bench", "envs", "--seconds", "-1", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"nan\"", "bench", "envs", "--seconds", "nan", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"inf\"", "bench", "envs", "--seconds", "inf", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"0x1\"", "bench", "envs", "--seconds", "0x1", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"1s\"", "bench", "envs", "--seconds", "1s", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \"1e\"", "bench", "envs", "--seconds", "1e", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \".\"", "bench", "envs", "--seconds", ".", "--tasks", "nosuchtask");
  EXPECT(2, "--seconds \" 1\"", "bench", "envs", "--seconds", " 1", "--tasks", "nosuchtask");
  EXPECT(2, "--per-thread \"0\": expected an integer in 1..4096", "bench", "envs", "--per-thread",
         "0", "--tasks", "nosuchtask");
  EXPECT(2, "--per-thread \"\"", "bench", "envs", "--per-thread", "", "--tasks", "nosuchtask");
  EXPECT(2, "--per-thread \"4097\"", "bench", "envs", "--per-thread", "4097", "--tasks",
         "nosuchtask");
  EXPECT(2, "--per-thread \"+2\"", "bench", "envs", "--per-thread", "+2", "--tasks", "nosuchtask");
  EXPECT(2, "--repeats \"101\": expected an integer in 1..100", "bench", "envs", "--repeats", "101",
         "--tasks", "nosuchtask");
  EXPECT(2, "--repeats \"\"", "bench", "envs", "--repeats", "", "--tasks", "nosuchtask");
  EXPECT(2, "--repeats \"2.5\"", "bench", "envs", "--repeats", "2.5", "--tasks", "nosuchtask");
  EXPECT(2,
         "--threads \"0\": item 1 \"0\" is not valid; expected 1 to 16 comma-separated "
         "integers in 1..1024",
         "bench", "envs", "--threads", "0", "--tasks", "nosuchtask");
  EXPECT(2, "--threads \"\": item 1 is empty", "bench", "envs", "--threads", "", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \",\": item 1 is empty", "bench", "envs", "--threads", ",", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \"1,,2\": item 2 is empty", "bench", "envs", "--threads", "1,,2", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \"1,\": item 2 is empty", "bench", "envs", "--threads", "1,", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \",1\": item 1 is empty", "bench", "envs", "--threads", ",1", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \"1,x\": item 2 \"x\" is not valid", "bench", "envs", "--threads", "1,x",
         "--tasks", "nosuchtask");
  EXPECT(2, "--threads \"1,2x\": item 2 \"2x\"", "bench", "envs", "--threads", "1,2x", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \"1, 2\": item 2 \" 2\"", "bench", "envs", "--threads", "1, 2", "--tasks",
         "nosuchtask");
  EXPECT(2, "--threads \"-1\"", "bench", "envs", "--threads", "-1", "--tasks", "nosuchtask");
  EXPECT(2, "--threads \"1025\"", "bench", "envs", "--threads", "1025", "--tasks", "nosuchtask");
  EXPECT(2, "more than 16 items", "bench", "envs", "--threads",
         "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "--tasks", "nosuchtask");
  EXPECT(2, "unknown option --bogus", "bench", "envs", "--bogus", "1");
  EXPECT(2, "unknown option --bogus", "bench", "envs", "--bogus");
  EXPECT(2, "--threads needs a value", "bench", "envs", "--threads");
  // valid numbers: parsing reaches the tasks, which fail before anything is timed
  EXPECT(2, "pendulum is not a MuJoCo task", "bench", "envs", "--threads", "1,2,4,8,16", "--tasks",
         "pendulum");
  EXPECT(1, "\"nosuchtask\"", "bench", "envs", "--json", json, "--tasks", "nosuchtask");
  EXPECT(1, "\"nosuchtask\"", "bench", "envs", "--seconds", "0.5", "--per-thread", "4096",
         "--repeats", "100", "--threads", "1,1,1024,2,3,4,5,6,7,8,9,10,11,12,13,14", "--tasks",
         "nosuchtask");
  EXPECT(1, "\"nosuchtask\"", "bench", "envs", "--seconds", "600", "--seconds", "1e-3", "--tasks",
         "nosuchtask");
  CHECKF(access(json, F_OK) != 0, "%s written by a command that failed before timing", json);
#endif
}

static void test_other_commands(void) {
  EXPECT(2, "\"extra\"", "envs", "extra");
  EXPECT(2, "\"junk\"", "version", "junk");
  EXPECT(2, "\"--steps\"", "devices", "--steps", "5");
  EXPECT(2, "unknown command \"nope\"", "help", "nope");
  const char *help_train[] = {"help", "train", NULL};
  int rc = run_tandem(help_train);
  CHECKF(rc == 0 && strstr(out_text, "usage: tandem train"), "help train: exit %d, stdout: %.200s",
         rc, out_text);
}

int main(int argc, char **argv) {
  (void)argc;
  // BUILD/tests/cli_test -> BUILD/tandem
  char self[PATH_MAX];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) {
    if (!realpath(argv[0], self)) snprintf(self, sizeof self, "%s", argv[0]);
  } else {
    self[k] = 0;
  }
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;  // BUILD/tests
  slash = strrchr(self, '/');
  if (slash)
    *slash = 0;  // BUILD
  else
    snprintf(self, sizeof self, "..");
  snprintf(tandem_bin, sizeof tandem_bin, "%s/tandem", self);
  if (access(tandem_bin, X_OK) != 0) {  // make bundle: bundle/tests/cli_test, bundle/bin/tandem
    char alt[PATH_MAX + 16];
    snprintf(alt, sizeof alt, "%s/bin/tandem", self);
    if (access(alt, X_OK) == 0) snprintf(tandem_bin, sizeof tandem_bin, "%s", alt);
  }
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tdm_cli_test_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(ok_cfg, sizeof ok_cfg, "%s/ok.cfg", tmpdir);
  FILE *f = fopen(ok_cfg, "w");
  if (f) {
    fprintf(f,
            "name = \"cli\";\nseed = 1;\ndevice = \"cpu\";\ntotal_steps = 1;\neval_every = 0;\n"
            "eval_episodes = 1;\ncheckpoint_every = 0;\nrun_dir = \"%s/runs\";\n"
            "env = { task = \"pendulum\"; };\n"
            "agent = { hidden = 8; buffer_size = 100; batch_size = 8; learning_starts = 1; };\n",
            tmpdir);
    fclose(f);
  }
  TDM_RUN(test_setup);
  if (!tdm_t_fail) {  // else no binary or no valid config: the rest would only repeat it
    TDM_RUN(test_top_level);
    TDM_RUN(test_help_of_each_command);
    TDM_RUN(test_eval_args);
    TDM_RUN(test_train_args);
    TDM_RUN(test_rollout_args);
    TDM_RUN(test_bench_args);
    TDM_RUN(test_other_commands);
  }
  // nothing may have started a run
  char runs[300];
  snprintf(runs, sizeof runs, "%s/runs", tmpdir);
  struct stat sb;
  if (stat(runs, &sb) == 0) {
    printf("FAIL no_run_started: %s exists (a train command started a run)\n", runs);
    tdm_t_fail++;
  }
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return tdm_test_end();
}
