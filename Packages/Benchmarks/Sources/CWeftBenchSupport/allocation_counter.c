// Interposes the malloc family for the whole benchmark process (the executable's definitions win over
// glibc's at dynamic link time, including for calls from libswiftCore and Foundation) and counts
// every allocation before forwarding to glibc's internal entry points. This is what proves
// `allocs_per_op`: it sees Swift's swift_allocObject / swift_slowAlloc because those end in malloc or
// an aligned variant.
//
// Counting must not change what it measures: a locked add per malloc and per free (two per
// allocation, ~7 ns each on a virtual machine) would show up in the nanosecond figures. So each
// thread counts in a slot of its own with plain stores (its first allocation claims the slot), and a
// reader sums the slots. Slots outlive their threads, so counts of finished threads stay in the sum;
// threads beyond the slot count share one atomic counter.
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

#define SLOT_COUNT 512

/// One thread's counts, each on its own cache line so threads never share one.
struct slot {
    _Atomic unsigned long long allocations;
    _Atomic unsigned long long frees;
    char padding[48];
};

static struct slot slots[SLOT_COUNT + 1];  // the last one is shared by threads past SLOT_COUNT
static _Atomic unsigned claimed;
static __thread struct slot *mine;

static struct slot *my_slot(void) {
    struct slot *slot = mine;
    if (__builtin_expect(slot == NULL, 0)) {
        unsigned index = atomic_fetch_add_explicit(&claimed, 1, memory_order_relaxed);
        slot = &slots[index < SLOT_COUNT ? index : SLOT_COUNT];
        mine = slot;
    }
    return slot;
}

static inline void bump(_Atomic unsigned long long *counter, int shared) {
    if (shared) {
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    } else {
        // Only this thread writes the slot: a relaxed load and store, no locked instruction.
        atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1, memory_order_relaxed);
    }
}

static inline void count_allocation(void) {
    struct slot *slot = my_slot();
    bump(&slot->allocations, slot == &slots[SLOT_COUNT]);
}

static inline void count_free(void) {
    struct slot *slot = my_slot();
    bump(&slot->frees, slot == &slots[SLOT_COUNT]);
}

static unsigned long long sum(size_t offset) {
    unsigned used = atomic_load_explicit(&claimed, memory_order_relaxed);
    if (used > SLOT_COUNT) used = SLOT_COUNT + 1;
    unsigned long long total = atomic_load_explicit(
        (_Atomic unsigned long long *)((char *)&slots[SLOT_COUNT] + offset), memory_order_relaxed);
    for (unsigned i = 0; i < used && i < SLOT_COUNT; i++) {
        total += atomic_load_explicit((_Atomic unsigned long long *)((char *)&slots[i] + offset), memory_order_relaxed);
    }
    return total;
}

unsigned long long weft_bench_allocations(void) { return sum(offsetof(struct slot, allocations)); }

unsigned long long weft_bench_frees(void) { return sum(offsetof(struct slot, frees)); }

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
        count_free();
    }
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer != NULL) count_free();
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
