/* The per-thread stack cache of the shared pool: one released stack per class kept by the thread
 * that released it, handed out again by that thread's next allocation with no atomic operation.
 * When the thread ends, what it still holds goes back to the pool through the hook the pool
 * installs (a pthread key destructor runs it, before the thread's TLS is freed). */
#include "CWeftContext.h"

#include <pthread.h>

#define WEFT_TLS __attribute__((tls_model("initial-exec"))) /* as in fiber.c */
static WEFT_TLS _Thread_local uintptr_t weft_stack_cache[2];
static WEFT_TLS _Thread_local int weft_stack_cache_armed;
static pthread_key_t weft_stack_cache_key;
static pthread_once_t weft_stack_cache_once = PTHREAD_ONCE_INIT;
static void (*weft_stack_cache_hook)(int kind, uintptr_t low);

static void weft_stack_cache_thread_ended(void *unused) {
    (void)unused;
    /* A stack released later in this thread's teardown arms the key again (glibc then runs the
     * destructor once more). */
    weft_stack_cache_armed = 0;
    for (int kind = 0; kind < 2; kind++) {
        uintptr_t low = weft_stack_cache[kind];
        weft_stack_cache[kind] = 0;
        if (low != 0 && weft_stack_cache_hook != NULL) weft_stack_cache_hook(kind, low);
    }
}

static void weft_stack_cache_make_key(void) {
    if (pthread_key_create(&weft_stack_cache_key, weft_stack_cache_thread_ended) != 0) {
        weft_fatal("weft: pthread_key_create failed for the stack cache");
    }
}

void weft_stack_cache_install(void (*hook)(int kind, uintptr_t low)) {
    weft_stack_cache_hook = hook;
    pthread_once(&weft_stack_cache_once, weft_stack_cache_make_key);
}

uintptr_t weft_stack_cache_take(int kind) {
    uintptr_t low = weft_stack_cache[kind];
    weft_stack_cache[kind] = 0;
    return low;
}

uintptr_t weft_stack_cache_put(int kind, uintptr_t low) {
    if (__builtin_expect(!weft_stack_cache_armed, 0)) {
        /* Any non-NULL value makes the destructor run when this thread ends. */
        pthread_setspecific(weft_stack_cache_key, (void *)1);
        weft_stack_cache_armed = 1;
    }
    uintptr_t previous = weft_stack_cache[kind];
    weft_stack_cache[kind] = low;
    return previous;
}

uintptr_t weft_stack_cache_peek(int kind) { return weft_stack_cache[kind]; }
