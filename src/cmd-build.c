#include "cli.h"
#include <stdio.h>

int cmd_build(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "substrate build: not implemented yet\n");
    return SUB_EXIT_USAGE;
}
