#include "CWeftContext.h"
int weft_context_abi_version(void) { return 1; }
