/* CWeftContext: the machine-level half of WeftContext. Private to the layer (imported with
 * `internal import`); no type declared here appears in WeftContext's public API. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The assembly routines (switch_<arch>.S) ---------------------------------------------- */

/* Saves the callee-saved registers and FP control state on the current stack, stores the stack
 * pointer in *save_sp, loads to_sp and restores the registers saved there. Returns (on the other
 * side) `transfer`, so one pointer travels with every switch. */
void *weft_context_switch(void **save_sp, void *to_sp, void *transfer);

/* Builds the first frame of a new context below stack_top so that switching to the returned stack
 * pointer calls entry(transfer, arg) on that stack. entry must never return. */
void *weft_context_make(void *stack_top, void (*entry)(void *transfer, void *arg), void *arg);

/* ---- Swift runtime hooks (exported by libswiftCore; see Docs/Context.md) ------------------- */

/* Saves the calling thread's dynamic-exclusivity access set into state (16 zeroed bytes per
 * context) before a context switches out. */
void swift_task_exitThreadLocalContext(char *state);
/* Restores the access set saved in state after a context resumes (and once when it first runs). */
void swift_task_enterThreadLocalContext(char *state);

/* Whether the calling thread's access-list head was found in the runtime's thread-local storage,
 * so that switches skip the two calls above when they would do nothing (fiber.c). When it is not
 * found every switch makes the calls, as before. */
int weft_access_tracking_found(void);

/* ---- Execution contexts (fiber.c) ---------------------------------------------------------- */

/* One execution context: a stack pointer while suspended, plus everything a switch must carry.
 * Records of contexts made on a stack live at the top of that stack; a thread's own record is
 * heap-allocated. */
typedef struct weft_fiber {
    /* What a plain switch reads, in the record's first cache line (the record of a fiber that has
     * waited a while is cold, and each further line read is one more miss per switch). */
    void *sp;                       /* saved stack pointer while not running */
    uint64_t *canary;               /* lowest word of a compact stack, or NULL */
    _Alignas(16) char tlc[16];      /* exclusivity access set while switched out */
    struct weft_fiber *as_current;  /* what weft_fiber_current() reports while this one runs */
    size_t guard_size;              /* PROT_NONE guard: [guard_lo, guard_lo + guard_size) */
    int thread_root;                /* a resumer record: stands for whatever stack switched out */
    /* Set up, reports and sanitizers. */
    void (*entry)(void *transfer, void *arg);
    void *arg;
    void *stack_lo;                 /* usable stack: [stack_lo, stack_lo + stack_size) */
    size_t stack_size;
    size_t stack_bytes;             /* the whole stack as allocated (shown in reports) */
    void *guard_lo;
    uint64_t id;                    /* shown in overflow reports */
    struct weft_fiber *switched_from; /* sanitizer bookkeeping: who switched to this one last */
    const void *asan_fake_stack;
    void *tsan_fiber;
    unsigned valgrind_stack;        /* Valgrind's id for the registered stack, or 0 */
} weft_fiber;

_Static_assert(__builtin_offsetof(weft_fiber, thread_root) + sizeof(int) <= 64,
               "the fields a switch reads fit in one cache line");

#define WEFT_CANARY 0x5745465443414E59ull /* "WEFTCANY" */

/* Size of the record placed at the top of a stack (a multiple of 16), with room to start the record
 * on a cache line below a top that is only 16-byte aligned. Inline so that Swift callers get a
 * constant. */
static inline size_t weft_fiber_record_size(void) { return ((sizeof(weft_fiber) + 15) & ~(size_t)15) + 48; }

/* Initialises a record at the top of [stack_lo, stack_lo+stack_size) (the record is carved from
 * the top; the stack proper begins below it) and builds the first frame. */
weft_fiber *weft_fiber_make(void *stack_lo, size_t stack_size, void *guard_lo, size_t guard_size,
                            int compact, uint64_t id, void (*entry)(void *, void *), void *arg);

/* Makes a record whose context has exited (or never ran) start again on the same stack: the next
 * switch into it runs entry(transfer, arg) from the top. Keeps the stack's registrations. */
void weft_fiber_restart(weft_fiber *fiber, void (*entry)(void *, void *), void *arg);

/* A heap record standing for the calling thread's own stack (the side that resumes contexts). */
weft_fiber *weft_fiber_thread_create(void);
void weft_fiber_thread_destroy(weft_fiber *fiber);
/* Initialises a resumer record in caller-provided memory (weft_fiber_record_size() bytes). */
void weft_fiber_resumer_init(weft_fiber *fiber);

/* Releases per-context sanitizer state; call before the stack is reused. */
void weft_fiber_release(weft_fiber *fiber);

/* Switches from the running context `from` to `to`, carrying `transfer`: exclusivity save/restore,
 * canary check, overflow-report bookkeeping and sanitizer hooks included. Returns the transfer
 * value of the switch that resumes `from`. */
void *weft_fiber_switch(weft_fiber *from, weft_fiber *to, void *transfer);

/* The last switch out of a finished context: never returns. */
_Noreturn void weft_fiber_exit(weft_fiber *from, weft_fiber *to, void *transfer);

/* The context running on the calling thread (NULL on a thread's own stack). Out of line on
 * purpose: it reads thread-local state and must not be cached across a switch. */
weft_fiber *weft_fiber_current(void);

/* The bare assembly switch on two records, for measuring the routine alone. */
void *weft_fiber_switch_raw(weft_fiber *from, weft_fiber *to, void *transfer);

/* ---- Stack memory (stack_memory.c); each returns 0 or an errno value --------------------- */

/* Maps `total` bytes (MAP_NORESERVE) and makes the lowest `guard` bytes PROT_NONE. */
int weft_stack_map(size_t total, size_t guard, void **out);
int weft_stack_unmap(void *base, size_t total);
/* Returns committed pages of [lo, lo+size) to the kernel (MADV_DONTNEED). */
int weft_stack_discard(void *lo, size_t size);
size_t weft_page_size(void);
/* vm.max_map_count and the number of mappings this process holds (-1 when unreadable). */
long weft_max_map_count(void);
long weft_map_count(void);

/* ---- The shared pool's per-thread stack cache (stack_cache.c); kind 0 guarded, 1 compact ---- */

/* Installs the hook that takes back a thread's cached stacks when it ends (once, before any put). */
void weft_stack_cache_install(void (*hook)(int kind, uintptr_t low));
/* Takes the calling thread's cached stack of `kind` (its low address), or 0. */
uintptr_t weft_stack_cache_take(int kind);
/* Caches `low` for the calling thread; returns the stack it displaced, or 0. */
uintptr_t weft_stack_cache_put(int kind, uintptr_t low);
/* The calling thread's cached stack of `kind`, left in place, or 0. */
uintptr_t weft_stack_cache_peek(int kind);

/* ---- Overflow reports (overflow.c) -------------------------------------------------------- */

/* Installs the SIGSEGV/SIGBUS handler once per process (later calls do nothing). */
void weft_overflow_install(void);
/* Aborts with a report naming the context whose compact-stack canary was overwritten. */
_Noreturn void weft_canary_failed(const weft_fiber *fiber);
/* Called by the entry trampoline if a context's entry function returns. */
_Noreturn void weft_context_entry_returned(void);
/* Writes a message to stderr and aborts (for Swift-side misuse traps that must not unwind). */
_Noreturn void weft_fatal(const char *message);

/* Which sanitizer hooks this build compiled in: bit 0 ASan, bit 1 TSan. */
int weft_sanitizers(void);

#ifdef __cplusplus
}
#endif
