#include "CWeftLoop.h"
int weft_loop_abi_version(void) { return 1; }
