// protloc entry point: the whole program is pl_main (pipeline/pl_main.c), shared with the test tools.
#include "pl_cli.h"

int main(int argc, char **argv) { return pl_main(argc, argv); }
