// Agent registry and the thin wrappers the trainer calls.
#include "tandem/agent.h"

#include <stdlib.h>
#include <string.h>

typedef tdm_status (*agent_ctor)(tdm_dev *dev, const tdm_agent_cfg *cfg, const tdm_agent_dims *dims,
                                 uint64_t seed, tdm_agent **out);

static tdm_status make_sac(tdm_dev *dev, const tdm_agent_cfg *cfg, const tdm_agent_dims *dims,
                           uint64_t seed, tdm_agent **out) {
  return tdm_sac_create(dev, &cfg->sac, dims, seed, out);
}

static const struct {
  const char *name;
  agent_ctor ctor;
} REGISTRY[] = {{"sac", make_sac}};

const char *tdm_agent_names(void) {
  return "sac";
}

tdm_agent_cfg tdm_agent_cfg_defaults(void) {
  tdm_agent_cfg c;
  memset(&c, 0, sizeof c);
  c.sac = tdm_sac_defaults();
  return c;
}

tdm_status tdm_agent_create(const char *name, tdm_dev *dev, const tdm_agent_cfg *cfg,
                            const tdm_agent_dims *dims, uint64_t seed, tdm_agent **out) {
  *out = NULL;
  for (size_t i = 0; i < sizeof REGISTRY / sizeof REGISTRY[0]; i++)
    if (name && !strcmp(name, REGISTRY[i].name)) return REGISTRY[i].ctor(dev, cfg, dims, seed, out);
  return TDM_FAIL(TDM_ERR_ARG, "unknown agent \"%s\"; valid agents: %s", name ? name : "(null)",
                  tdm_agent_names());
}

void tdm_agent_destroy(tdm_agent *a) {
  if (a) a->ops->destroy(a);
}

tdm_status tdm_agent_act(tdm_agent *a, const float *obs, int n, bool explore, float *act_out) {
  return a->ops->act(a, obs, n, explore, act_out);
}

tdm_status tdm_agent_observe(tdm_agent *a, const tdm_transition_batch *b) {
  return a->ops->observe(a, b);
}

tdm_status tdm_agent_update(tdm_agent *a, int n, tdm_agent_stats *out) {
  return a->ops->update(a, n, out);
}

tdm_status tdm_agent_write(tdm_agent *a, FILE *f, bool with_replay) {
  return a->ops->write(a, f, with_replay);
}

tdm_status tdm_agent_read(tdm_agent *a, FILE *f, bool with_replay, const char *what) {
  return a->ops->read(a, f, with_replay, what);
}
