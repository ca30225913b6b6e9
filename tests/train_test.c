// Trainer: configuration checks and overrides, resolved config round trip, atomic checkpoints and
// refusal of bad ones, exact resume, and the Pendulum learning test.
#include <sys/stat.h>
#include <unistd.h>

#include "tandem/config.h"
#include "test.h"

static char tmpdir[256];

// Write text to tmpdir/name; return the path (static buffer per call slot).
static const char *write_file(const char *name, const char *text) {
  static char paths[8][512];
  static int slot = 0;
  char *p = paths[slot++ % 8];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return p;
}

// Load text as file name; return the status, and the error message in msg.
static tdm_status load_text(const char *name, const char *text, const char *const *ov, int n_ov,
                            tdm_config *cfg) {
  const char *p = write_file(name, text);
  tdm_clearerr();
  return tdm_config_load(cfg, p, ov, n_ov);
}

static void test_config_defaults_and_values(void) {
  tdm_config c;
  CHECK_OK(load_text("ok.cfg",
                     "name = \"pend\";\nseed = 7;\ntotal_steps = 1e4;\n"
                     "env = { task = \"pendulum\"; };\n"
                     "agent = { lr = 3;  # auto-convert: an int is a valid float\n"
                     "  batch_size = 64; target_entropy = -2.5; };\n",
                     NULL, 0, &c));
  CHECK(!strcmp(c.v.name, "pend"));
  CHECK(c.v.seed == 7);
  CHECK(c.v.total_steps == 10000);
  CHECK(c.v.lr == 3.0);
  CHECK(c.v.batch_size == 64);
  CHECK(!c.v.target_entropy_auto && c.v.target_entropy == -2.5);
  // untouched keys keep the defaults
  CHECK(c.v.gamma == 0.99 && c.v.tau == 0.005 && c.v.hidden == 256 && c.v.layers == 2);
  CHECK(!strcmp(c.v.device, "auto") && !strcmp(c.v.run_dir, "runs"));
  CHECK(!strcmp(c.v.agent_name, "sac"));
  tdm_config_free(&c);
}

static void test_config_unknown_key(void) {
  tdm_config c;
  tdm_status st = load_text("unk.cfg", "seed = 1;\nagent = {\n  lr = 1e-3;\n  lrr = 2e-3;\n};\n",
                            NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  const char *m = tdm_errmsg();
  CHECKF(strstr(m, "unk.cfg:4") && strstr(m, "agent.lrr") && strstr(m, "did you mean \"agent.lr\""),
         "message: %s", m);
  tdm_config_free(&c);
  // no close match: lists the valid keys of the group
  st = load_text("unk2.cfg", "agent = { zzzzzzzzzz = 1; };\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  m = tdm_errmsg();
  CHECKF(strstr(m, "unk2.cfg:1") && strstr(m, "batch_size") && strstr(m, "policy_delay"),
         "message: %s", m);
  tdm_config_free(&c);
  // top-level typo
  st = load_text("unk3.cfg", "seed = 1;\n\ntotal_step = 5;\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "unk3.cfg:3") && strstr(tdm_errmsg(), "\"total_steps\""),
         "message: %s", tdm_errmsg());
  tdm_config_free(&c);
}

static void test_config_wrong_type_and_range(void) {
  tdm_config c;
  tdm_status st = load_text("type.cfg", "seed = 1;\nagent = {\n  batch_size = \"big\";\n};\n", NULL,
                            0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "type.cfg:3") && strstr(tdm_errmsg(), "agent.batch_size") &&
             strstr(tdm_errmsg(), "expected an integer"),
         "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("type2.cfg", "save_replay = 1;\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "type2.cfg:1") && strstr(tdm_errmsg(), "true or false"), "message: %s",
         tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("type3.cfg", "num_envs = 2.5;\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "num_envs") && strstr(tdm_errmsg(), "integer"), "message: %s",
         tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("range.cfg", "seed = 1;\n\nagent = { gamma = 1.5; };\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "range.cfg:3") && strstr(tdm_errmsg(), "agent.gamma = 1.5") &&
             strstr(tdm_errmsg(), "out of range") && strstr(tdm_errmsg(), "[0, 1]"),
         "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("dev.cfg", "device = \"gpu\";\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "dev.cfg:1") && strstr(tdm_errmsg(), "cuda:N"), "message: %s",
         tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("agent.cfg", "agent = { name = \"ppo\"; };\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "\"sac\""), "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("grp.cfg", "agent = 3;\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "grp.cfg:1") && strstr(tdm_errmsg(), "group"), "message: %s",
         tdm_errmsg());
  tdm_config_free(&c);
  st = load_text("bs.cfg", "agent = { buffer_size = 100; batch_size = 256; };\n", NULL, 0, &c);
  CHECK(st == TDM_ERR_CONFIG);
  tdm_config_free(&c);
}

static void test_config_parse_error_line(void) {
  tdm_config c;
  tdm_status st = load_text("parse.cfg", "seed = 1;\nname = \"x\";\nagent = { lr = ; };\n", NULL, 0,
                            &c);
  CHECK(st == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "parse.cfg:3 - "), "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  st = tdm_config_load(&c, "/nonexistent/dir/x.cfg", NULL, 0);
  CHECK(st == TDM_ERR_IO);
  tdm_config_free(&c);
}

static void test_config_overrides(void) {
  tdm_config c;
  const char *ov[] = {"agent.lr=1e-3", "env.task=\"mountain_car\"", "save_replay=true",
                      "agent.hidden = 64", "total_steps=2000", "agent.target_entropy=\"auto\"",
                      "env.max_steps=50"};
  CHECK_OK(load_text("ov.cfg", "agent = { lr = 5e-4; target_entropy = -1.0; };\n", ov, 7, &c));
  CHECK(c.v.lr == 1e-3);
  CHECK(!strcmp(c.v.env_task, "mountain_car"));
  CHECK(c.v.save_replay);
  CHECK(c.v.hidden == 64);
  CHECK(c.v.total_steps == 2000);
  CHECK(c.v.target_entropy_auto);
  // task-specific keys go to the env group (created by the override)
  const config_setting_t *g = tdm_config_env_group(&c);
  CHECK(g != NULL);
  int ms = 0;
  CHECK(config_setting_lookup_int(g, "max_steps", &ms) && ms == 50);
  tdm_config_free(&c);
  // bad overrides: unknown key, unparsable value, wrong type, missing '='
  const char *bad1[] = {"agent.lrr=1"};
  CHECK(load_text("ov2.cfg", "", bad1, 1, &c) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "override -s agent.lrr=1") && strstr(tdm_errmsg(), "did you mean"),
         "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  const char *bad2[] = {"env.task=hopper"};  // unquoted string
  CHECK(load_text("ov3.cfg", "", bad2, 1, &c) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "cannot parse"), "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  const char *bad3[] = {"agent.batch_size=\"x\""};
  CHECK(load_text("ov4.cfg", "", bad3, 1, &c) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "override -s agent.batch_size") && strstr(tdm_errmsg(), "integer"),
         "message: %s", tdm_errmsg());
  tdm_config_free(&c);
  const char *bad4[] = {"agent.lr"};
  CHECK(load_text("ov5.cfg", "", bad4, 1, &c) == TDM_ERR_CONFIG);
  tdm_config_free(&c);
  const char *bad5[] = {"seed.x=1"};  // seed is not a group
  CHECK(load_text("ov6.cfg", "seed = 1;\n", bad5, 1, &c) == TDM_ERR_CONFIG);
  CHECKF(strstr(tdm_errmsg(), "not a group"), "message: %s", tdm_errmsg());
  tdm_config_free(&c);
}

static void test_config_resolved_round_trip(void) {
  tdm_config a, b;
  const char *ov[] = {"agent.tau=0.02", "env.obs_noise=[0.1, 0.2]"};
  CHECK_OK(load_text("rt.cfg",
                     "name = \"rt\";\nseed = 3;\ntotal_steps = 123456789012L;\n"
                     "env = { task = \"hopper\"; frame_skip = 4; scale = 0.1; tag = \"a\\\"b\"; "
                     "sub = { k = true; }; };\nagent = { lr = 7.3e-4; gamma = 0.98; };\n",
                     ov, 2, &a));
  char path[512];
  snprintf(path, sizeof path, "%s/resolved.cfg", tmpdir);
  CHECK_OK(tdm_config_save(&a, path));
  CHECK_OK(tdm_config_load(&b, path, NULL, 0));
  CHECK(memcmp(&a.v, &b.v, sizeof a.v) == 0);
  CHECK(tdm_config_hash(&a) == tdm_config_hash(&b));
  // the written text is a fixed point
  char *ta = NULL, *tb = NULL;
  size_t na = 0, nb = 0;
  FILE *fa = open_memstream(&ta, &na), *fb = open_memstream(&tb, &nb);
  CHECK_OK(tdm_config_write(&a, fa));
  CHECK_OK(tdm_config_write(&b, fb));
  fclose(fa);
  fclose(fb);
  const char *la = strchr(ta, '\n'), *lb = strchr(tb, '\n');  // first line names the source
  int same = la && lb && !strcmp(la, lb);
  int has = strstr(ta, "frame_skip = 4;") && strstr(ta, "obs_noise = [0.1, 0.2];") &&
            strstr(ta, "total_steps = 123456789012L;") && strstr(ta, "lr = 0.00073;");
  free(ta);
  free(tb);
  CHECK(same);
  CHECK(has);
  // the hash ignores keys that may change on resume but not the others
  uint32_t h = tdm_config_hash(&a);
  b.v.total_steps = 5;
  snprintf(b.v.device, sizeof b.v.device, "cpu");
  CHECK(tdm_config_hash(&b) == h);
  b.v.lr = 1e-3;
  CHECK(tdm_config_hash(&b) != h);
  tdm_config_free(&a);
  tdm_config_free(&b);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tdm_train_test_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  TDM_RUN(test_config_defaults_and_values);
  TDM_RUN(test_config_unknown_key);
  TDM_RUN(test_config_wrong_type_and_range);
  TDM_RUN(test_config_parse_error_line);
  TDM_RUN(test_config_overrides);
  TDM_RUN(test_config_resolved_round_trip);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return tdm_test_end();
}
