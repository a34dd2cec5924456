/* The full switch around the assembly routine: exclusivity save/restore, canary check,
 * overflow-report bookkeeping and sanitizer fiber annotations (compiled in only when that sanitizer
 * is on). Thread-local state is only ever written BEFORE the assembly switch: after it, the code
 * may be running on another OS thread and a cached thread-local address would be wrong.
 *
 * Exclusivity: a context made on a stack saves its open accesses when it switches out, and they
 * are put back on top of the (possibly different) thread's list by whoever switches to it. A resumer record
 * (a thread's own stack) skips both calls: it never changes thread, and the contexts it resumes
 * record the thread's list head as their boundary on entry and take exactly their own accesses
 * off on exit, so the resumer's accesses stay in place underneath -- the same as if the context
 * ran as a nested call. That halves the runtime calls on a resumer<->context switch, and the
 * remaining calls are skipped whenever they would do nothing (see "Skipping" below). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* dl_iterate_phdr */
#endif
#include "CWeftContext.h"

/* Thread-locals read on every switch use the initial-exec model: one %fs-relative access instead
 * of a __tls_get_addr call (which the compiler must assume, saving registers around it, even when
 * the linker later relaxes it). The library is linked into the program or loaded with it. */
#define WEFT_TLS __attribute__((tls_model("initial-exec")))

#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#endif

/* Valgrind's client requests cost a few no-op instructions when not running under Valgrind and
 * are only issued when a stack is registered or released, never on a switch. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WEFT_VALGRIND 1
#endif
#endif

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Defined in overflow.c: whether this thread has an alternate signal stack installed. */
extern WEFT_TLS _Thread_local int weft_altstack_ready;
void weft_altstack_prepare(void);

WEFT_TLS _Thread_local weft_fiber *weft_current_fiber = NULL;

/* ---- Skipping the exclusivity calls when they would do nothing ---------------------------------
 *
 * swift_task_exitThreadLocalContext(state) does nothing when the thread's access list is empty and
 * `state` holds no boundary (its first word is zero); swift_task_enterThreadLocalContext(state)
 * does nothing when the list is empty and `state` holds no saved accesses (first word zero). That
 * is the common case (no access open across a switch), and each call costs a PLT call plus the
 * runtime's __tls_get_addr. So each thread finds, once, the address of its own list head in the
 * runtime's thread-local storage, and a switch reads that word: the calls are made only when the
 * list is not empty or the context's state is not all clear -- exactly when they have work to do.
 *
 * The head is found with the runtime's own functions, not by knowing its layout: the thread's
 * accesses are moved out (exit into a zeroed state), a one-record list is put in (enter with a
 * state naming a zeroed record), every TLS block of the calling thread is searched for a word
 * holding the record's address, the record is taken out again (that word must read zero) and the
 * thread's accesses are put back. Anything but exactly one such word (a runtime that keeps the
 * list elsewhere, a changed protocol) leaves the thread on `weft_access_never_empty`, which makes
 * every switch call the runtime as before. */

static uintptr_t weft_access_never_empty = 1;
/* This thread's access-list head, &weft_access_never_empty when it cannot be found, NULL until
 * looked for. Read before the assembly switch only, like every thread-local here. */
static WEFT_TLS _Thread_local uintptr_t *weft_access_head = NULL;

struct weft_access_search {
    uintptr_t needle;
    uintptr_t *found;
    int matches;
};

#if defined(__clang__)
__attribute__((no_sanitize("address", "thread")))
#endif
static int weft_access_search_module(struct dl_phdr_info *info, size_t size, void *data) {
    struct weft_access_search *search = data;
    if (size < offsetof(struct dl_phdr_info, dlpi_tls_data) + sizeof(info->dlpi_tls_data)) return 0;
    if (info->dlpi_tls_data == NULL) return 0;
    for (size_t index = 0; index < info->dlpi_phnum; index++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[index];
        if (header->p_type != PT_TLS) continue;
        uintptr_t low = ((uintptr_t)info->dlpi_tls_data + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
        uintptr_t high = (uintptr_t)info->dlpi_tls_data + header->p_memsz;
        for (uintptr_t at = low; at + sizeof(uintptr_t) <= high; at += sizeof(uintptr_t)) {
            if (*(volatile uintptr_t *)at == search->needle) {
                search->found = (uintptr_t *)at;
                search->matches++;
            }
        }
    }
    return 0;
}

static __attribute__((noinline)) uintptr_t *weft_access_find_head(void) {
    _Alignas(16) char saved[16] = {0};
    _Alignas(16) char probe[16];
    /* A zeroed access record: a list of one (its link word is zero). Larger than the runtime's
     * three words so that nothing outside it is ever read. */
    _Alignas(16) uintptr_t record[8] = {0};
    uintptr_t needle = (uintptr_t)record;
    swift_task_exitThreadLocalContext(saved); /* the thread's accesses, if any, go into `saved` */
    memcpy(probe, &needle, sizeof needle);
    memcpy(probe + sizeof needle, &needle, sizeof needle);
    swift_task_enterThreadLocalContext(probe); /* the list is now just `record` */
    struct weft_access_search search = {needle, NULL, 0};
    dl_iterate_phdr(weft_access_search_module, &search);
    memset(probe, 0, sizeof probe);
    swift_task_exitThreadLocalContext(probe); /* `record` out again: the head must read zero */
    uintptr_t *head = search.matches == 1 && *search.found == 0 ? search.found : NULL;
    swift_task_enterThreadLocalContext(saved); /* the thread's accesses back */
    weft_access_head = head != NULL ? head : &weft_access_never_empty;
    return weft_access_head;
}

static inline __attribute__((always_inline)) uintptr_t weft_state_word(const weft_fiber *fiber) {
    uintptr_t word;
    memcpy(&word, fiber->tlc, sizeof word);
    return word;
}

int weft_access_tracking_found(void) {
    uintptr_t *head = weft_access_head;
    if (head == NULL) head = weft_access_find_head();
    return head != &weft_access_never_empty;
}

int weft_sanitizers(void) {
    int bits = 0;
#if WEFT_ASAN
    bits |= 1;
#endif
#if WEFT_TSAN
    bits |= 2;
#endif
    return bits;
}


weft_fiber *weft_fiber_current(void) { return weft_current_fiber; }

/* Runs after every switch into `self` (and at its first start): the sanitizer half of the switch.
 * Without ASan there is nothing to do after a switch, so the switch itself is a tail call. */
static inline __attribute__((always_inline)) void weft_after_switch(weft_fiber *self) {
#if WEFT_ASAN
    weft_fiber *prev = self->switched_from;
    if (prev != NULL) {
        const void *bottom;
        size_t size;
        __sanitizer_finish_switch_fiber((void *)self->asan_fake_stack, &bottom, &size);
        if (prev->thread_root) {
            prev->stack_lo = (void *)bottom;
            prev->stack_size = size;
        }
    } else {
        __sanitizer_finish_switch_fiber((void *)self->asan_fake_stack, NULL, NULL);
    }
#else
    (void)self;
#endif
}

static inline __attribute__((always_inline)) void weft_before_switch(weft_fiber *from, weft_fiber *to,
                                                                     int final) {
    if (from->thread_root) {
        from->as_current = weft_current_fiber;
    }
    weft_fiber *running = from->as_current;
    if (running != NULL && running->canary != NULL && __builtin_expect(*running->canary != WEFT_CANARY, 0)) {
        weft_canary_failed(running);
    }
    /* The target's accesses go back on this thread's list before the switch rather than after
     * it: the target resumes on this very thread, so it is the same list either way, and nothing
     * is left to do on the other side. */
    if (!(from->thread_root && to->thread_root)) {
        uintptr_t *head = weft_access_head;
        if (__builtin_expect(head == NULL, 0)) head = weft_access_find_head();
        if (!from->thread_root && (*head != 0 || weft_state_word(from) != 0)) {
            swift_task_exitThreadLocalContext(from->tlc);
        }
        if (!to->thread_root && (*head != 0 || weft_state_word(to) != 0)) {
            swift_task_enterThreadLocalContext(to->tlc);
        }
    }
    if (__builtin_expect(!weft_altstack_ready, 0) && to->guard_size != 0) {
        weft_altstack_prepare();
    }
    weft_current_fiber = to->as_current;
#if WEFT_ASAN
    to->switched_from = from;
    __sanitizer_start_switch_fiber(final ? NULL : (void **)&from->asan_fake_stack, to->stack_lo, to->stack_size);
#else
    (void)final;
#endif
#if WEFT_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

/* Every new context starts here: hooks for the first arrival, then the caller's entry. */
static void weft_fiber_boot(void *transfer, void *arg) {
    weft_fiber *self = arg;
    weft_after_switch(self);
    self->entry(transfer, self->arg);
    weft_context_entry_returned();
}

weft_fiber *weft_fiber_make(void *stack_lo, size_t stack_size, void *guard_lo, size_t guard_size,
                            int compact, uint64_t id, void (*entry)(void *, void *), void *arg) {
    size_t record = weft_fiber_record_size();
    char *top = (char *)stack_lo + stack_size;
    /* On a cache line of its own (the record's size leaves room): its first line is all a switch
     * reads. The fiber's frames start below it. */
    weft_fiber *fiber = (weft_fiber *)(((uintptr_t)top - sizeof(weft_fiber)) & ~(uintptr_t)63);
#if WEFT_ASAN
    /* A reused stack may still carry poison from the frames of a context that never finished. */
    __asan_unpoison_memory_region(stack_lo, stack_size);
#endif
    memset(fiber, 0, sizeof(weft_fiber));
    fiber->entry = entry;
    fiber->arg = arg;
    fiber->stack_lo = stack_lo;
    fiber->stack_size = stack_size - record;
    fiber->stack_bytes = stack_size;
    fiber->guard_lo = guard_lo;
    fiber->guard_size = guard_size;
    fiber->id = id;
    fiber->as_current = fiber;
    if (compact) {
        fiber->canary = (uint64_t *)stack_lo;
        *fiber->canary = WEFT_CANARY;
    }
#if WEFT_TSAN
    fiber->tsan_fiber = __tsan_create_fiber(0);
#endif
#if WEFT_VALGRIND
    fiber->valgrind_stack = VALGRIND_STACK_REGISTER(stack_lo, top);
#endif
    fiber->sp = weft_context_make(fiber, weft_fiber_boot, fiber);
    return fiber;
}

void weft_fiber_restart(weft_fiber *fiber, void (*entry)(void *, void *), void *arg) {
#if WEFT_ASAN
    /* The frames of the run that ended are gone: nothing on the stack stays poisoned. */
    __asan_unpoison_memory_region(fiber->stack_lo, fiber->stack_size);
#endif
    memset(fiber->tlc, 0, sizeof fiber->tlc);
    fiber->entry = entry;
    fiber->arg = arg;
    fiber->switched_from = NULL;
    fiber->asan_fake_stack = NULL;
    fiber->as_current = fiber;
    fiber->sp = weft_context_make(fiber, weft_fiber_boot, fiber);
}

void weft_fiber_release(weft_fiber *fiber) {
#if WEFT_VALGRIND
    if (fiber->valgrind_stack != 0) {
        VALGRIND_STACK_DEREGISTER(fiber->valgrind_stack);
        fiber->valgrind_stack = 0;
    }
#endif
#if WEFT_TSAN
    if (fiber->tsan_fiber != NULL) {
        __tsan_destroy_fiber(fiber->tsan_fiber);
        fiber->tsan_fiber = NULL;
    }
#else
    (void)fiber;
#endif
}

void weft_fiber_resumer_init(weft_fiber *fiber) {
    memset(fiber, 0, sizeof(weft_fiber));
    fiber->thread_root = 1;
}

weft_fiber *weft_fiber_thread_create(void) {
    weft_fiber *fiber = aligned_alloc(64, (weft_fiber_record_size() + 63) & ~(size_t)63);
    if (fiber == NULL) abort();
    weft_fiber_resumer_init(fiber);
    return fiber;
}

void weft_fiber_thread_destroy(weft_fiber *fiber) { free(fiber); }

#if !WEFT_ASAN && !WEFT_TSAN
/* Whether this switch needs no call at all: neither exclusivity call has work to do (the thread's
 * access list is empty and neither context's state holds anything, see above) and the alternate
 * signal stack is in place if the target needs one. Then the switch is a few loads and stores and
 * a tail call, with no registers to save around calls. */
static inline __attribute__((always_inline)) int weft_switch_is_plain(const weft_fiber *from, const weft_fiber *to) {
    const uintptr_t *head = weft_access_head;
    return head != NULL && *head == 0 && (from->thread_root || weft_state_word(from) == 0)
           && (to->thread_root || weft_state_word(to) == 0) && (weft_altstack_ready || to->guard_size == 0);
}

/* The plain path's bookkeeping before the assembly switch: returns 1, with the target made the
 * thread's current fiber, when the switch needs no call; 0 leaves everything to the general path
 * (which also reports a failed canary). Used by every switch, the last one of a context included. */
static inline __attribute__((always_inline)) int weft_enter_plain(weft_fiber *from, const weft_fiber *to) {
    if (!weft_switch_is_plain(from, to)) return 0;
    if (from->thread_root) from->as_current = weft_current_fiber;
    const weft_fiber *running = from->as_current;
    if (__builtin_expect(running != NULL && running->canary != NULL && *running->canary != WEFT_CANARY, 0)) return 0;
    weft_current_fiber = to->as_current;
    return 1;
}

static __attribute__((noinline)) void *weft_fiber_switch_general(weft_fiber *from, weft_fiber *to, void *transfer) {
    weft_before_switch(from, to, 0);
    return weft_context_switch(&from->sp, to->sp, transfer);
}
#endif

void *weft_fiber_switch(weft_fiber *from, weft_fiber *to, void *transfer) {
#if !WEFT_ASAN && !WEFT_TSAN
    /* Only tail calls on this path, so it saves no registers of its own. */
    if (__builtin_expect(weft_enter_plain(from, to), 1)) return weft_context_switch(&from->sp, to->sp, transfer);
    return weft_fiber_switch_general(from, to, transfer);
#else
#if WEFT_TSAN
    /* A thread's record stands for whichever thread resumes through it: take that thread's fiber. */
    if (from->thread_root) from->tsan_fiber = __tsan_get_current_fiber();
#endif
    weft_before_switch(from, to, 0);
#if WEFT_ASAN
    void *result = weft_context_switch(&from->sp, to->sp, transfer);
    weft_after_switch(from);
    return result;
#else
    return weft_context_switch(&from->sp, to->sp, transfer);
#endif
#endif
}

void weft_fiber_exit(weft_fiber *from, weft_fiber *to, void *transfer) {
#if !WEFT_ASAN && !WEFT_TSAN
    if (__builtin_expect(weft_enter_plain(from, to), 1)) {
        weft_context_switch(&from->sp, to->sp, transfer);
        weft_fatal("weft: a finished context was resumed");
    }
#endif
    weft_before_switch(from, to, 1);
    weft_context_switch(&from->sp, to->sp, transfer);
    weft_fatal("weft: a finished context was resumed");
}

void *weft_fiber_switch_raw(weft_fiber *from, weft_fiber *to, void *transfer) {
    return weft_context_switch(&from->sp, to->sp, transfer);
}
