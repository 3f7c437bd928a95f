#include "cli.h"
#include <stdio.h>

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "substrate inspect: not implemented yet\n");
    return SUB_EXIT_USAGE;
}
