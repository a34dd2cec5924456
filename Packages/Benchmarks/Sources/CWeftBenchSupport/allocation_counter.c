// Interposes the malloc family for the whole benchmark process (the executable's definitions win over
// glibc's at dynamic link time, including for calls from libswiftCore and Foundation) and counts
// every allocation with relaxed atomics before forwarding to glibc's internal entry points. This is
// what proves `allocs_per_op`: it sees Swift's swift_allocObject / swift_slowAlloc because those
// end in malloc or an aligned variant.
#define _GNU_SOURCE
#include "CWeftBenchSupport.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static _Atomic unsigned long long allocations;
static _Atomic unsigned long long frees;

static inline void count_allocation(void) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

unsigned long long weft_bench_allocations(void) {
    return atomic_load_explicit(&allocations, memory_order_relaxed);
}

unsigned long long weft_bench_frees(void) {
    return atomic_load_explicit(&frees, memory_order_relaxed);
}

void *malloc(size_t size) {
    count_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_allocation();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    // Growing or moving a block is an allocation as far as the hot path is concerned.
    if (pointer == NULL || size != 0) {
        count_allocation();
    } else {
        atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    }
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer != NULL) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_allocation();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

void *valloc(size_t size) {
    count_allocation();
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count_allocation();
    return __libc_pvalloc(size);
}
