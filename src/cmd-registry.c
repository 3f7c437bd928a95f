#include "cli.h"
#include <stdio.h>

int cmd_registry(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "substrate registry: not implemented yet\n");
    return SUB_EXIT_USAGE;
}
