#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

/// The executor running on the calling thread (an unretained object pointer), or NULL.
///
/// Out of line on purpose: a fiber may resume on another thread, and a thread-local address
/// inlined into a function that switches could be reused after the switch.
void *weft_runtime_executor(void);

/// Sets the executor running on the calling thread.
void weft_runtime_set_executor(void *executor);

#endif
