// tandem: everything.
#ifndef TANDEM_H
#define TANDEM_H
#include "tandem/core.h"
#include "tandem/dev.h"
#include "tandem/ops.h"
#include "tandem/nn.h"
#include "tandem/env.h"
#include "tandem/replay.h"
#include "tandem/agent.h"
#endif
