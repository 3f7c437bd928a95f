#include "cli.h"
#include <stdio.h>

int cmd_pull(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "substrate pull: not implemented yet\n");
    return SUB_EXIT_USAGE;
}
