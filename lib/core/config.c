#include "substrate/config.h"
#include "substrate/fs.h"
#include <stdlib.h>

const char *sub_state_dir(void) {
    const char *s = getenv("SUBSTRATE_STATE");
    return (s && *s) ? s : SUB_DEFAULT_STATE;
}

const char *sub_registry_addr(void) {
    const char *s = getenv("SUBSTRATE_REGISTRY");
    return (s && *s) ? s : SUB_DEFAULT_REGISTRY;
}

char *sub_state_path(const char *rel) { return sub_path_join(sub_state_dir(), rel); }
