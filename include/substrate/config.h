/* Process-wide settings from the environment, with documented defaults. */
#pragma once
#include "error.h"

#define SUB_DEFAULT_STATE "/var/lib/substrate"
#define SUB_DEFAULT_REGISTRY "127.0.0.1:5000"

/* $SUBSTRATE_STATE or the default (borrowed; never NULL). */
const char *sub_state_dir(void);
/* $SUBSTRATE_REGISTRY or the default (borrowed; never NULL). */
const char *sub_registry_addr(void);
/* Path under the state dir (caller frees). */
char *sub_state_path(const char *rel);
