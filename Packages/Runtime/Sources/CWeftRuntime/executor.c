#include "weft_runtime.h"

// Initial-exec: one %fs-relative load, no lookup (pthread_getspecific and a lazily made key cost
// several times more on the scheduler's hot path).
static __thread void *current_executor __attribute__((tls_model("initial-exec")));

void *weft_runtime_executor(void) { return current_executor; }

void weft_runtime_set_executor(void *executor) { current_executor = executor; }
