/* Stack-overflow reports. A guard-page hit faults with the stack pointer already in the guard, so
 * the handler must run on an alternate signal stack (one per thread that runs contexts, installed
 * at its first switch to a guarded stack). It names the context and its stack size, then hands the
 * signal on to whatever handler was installed before (or the default action), so the process still
 * dies the way it would have, with the report first. */
#include "CWeftContext.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WEFT_TLS __attribute__((tls_model("initial-exec"))) /* as in fiber.c */
extern WEFT_TLS _Thread_local weft_fiber *weft_current_fiber;
WEFT_TLS _Thread_local int weft_altstack_ready = 0;

static struct sigaction previous_segv;
static struct sigaction previous_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;

enum { ALTSTACK_SIZE = 64 * 1024 };

static void write_all(const char *text, size_t length) {
    while (length > 0) {
        ssize_t n = write(STDERR_FILENO, text, length);
        if (n <= 0) return;
        text += n;
        length -= (size_t)n;
    }
}

/* Async-signal-safe decimal formatting. */
static size_t format_u64(char *out, uint64_t value) {
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    return n;
}

static size_t append(char *buffer, size_t at, const char *text);

static size_t format_hex(char *out, uint64_t value) {
    static const char digits[] = "0123456789abcdef";
    char reversed[16];
    size_t n = 0;
    do {
        reversed[n++] = digits[value & 15];
        value >>= 4;
    } while (value != 0);
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) out[2 + i] = reversed[n - 1 - i];
    return n + 2;
}

/* "context #ID", or "context on stack 0xADDR" for contexts made without an id. */
static size_t name_context(char *out, const weft_fiber *fiber) {
    size_t n = 0;
    if (fiber->id != 0) {
        n = append(out, n, "context #");
        return n + format_u64(out + n, fiber->id);
    }
    n = append(out, n, "context on stack ");
    return n + format_hex(out + n, (uint64_t)(uintptr_t)fiber->stack_lo);
}

static size_t append(char *buffer, size_t at, const char *text) {
    size_t length = strlen(text);
    memcpy(buffer + at, text, length);
    return at + length;
}

static void pass_on(int signo, siginfo_t *info, void *ucontext) {
    struct sigaction *previous = signo == SIGBUS ? &previous_bus : &previous_segv;
    if (previous->sa_flags & SA_SIGINFO) {
        if (previous->sa_sigaction != NULL) {
            previous->sa_sigaction(signo, info, ucontext);
            return;
        }
    } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
        previous->sa_handler(signo);
        return;
    }
    /* Default action: reinstate it; returning re-executes the faulting access, which now kills
     * the process with the original signal. */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof(fallback));
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signo, &fallback, NULL);
}

static void overflow_handler(int signo, siginfo_t *info, void *ucontext) {
    weft_fiber *fiber = weft_current_fiber;
    if (fiber != NULL && fiber->guard_size != 0) {
        char *address = info->si_addr;
        char *guard = fiber->guard_lo;
        /* Big frames may skip past the guard page; treat anything within 64 KiB below the
         * usable stack as an overflow of this context. */
        char *limit = (char *)fiber->stack_lo;
        char *floor = guard + fiber->guard_size > limit ? guard : limit - 64 * 1024;
        if (address >= floor && address < limit) {
            char message[256];
            size_t n = 0;
            n = append(message, n, "weft: stack overflow in ");
            n += name_context(message + n, fiber);
            n = append(message, n, " (stack size ");
            n += format_u64(message + n, fiber->stack_bytes);
            n = append(message, n, " bytes): it hit its guard page. Give it a bigger stack "
                                   "(StackPool.Configuration) or recurse less.\n");
            write_all(message, n);
        }
    }
    pass_on(signo, info, ucontext);
}

static void altstack_free(void *memory) {
    stack_t disable;
    memset(&disable, 0, sizeof(disable));
    disable.ss_flags = SS_DISABLE;
    sigaltstack(&disable, NULL);
    munmap(memory, ALTSTACK_SIZE);
}

static void install(void) {
    pthread_key_create(&altstack_key, altstack_free);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = overflow_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous_segv);
    sigaction(SIGBUS, &action, &previous_bus);
}

void weft_overflow_install(void) { pthread_once(&install_once, install); }

void weft_altstack_prepare(void) {
    weft_overflow_install();
    weft_altstack_ready = 1;
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE) && current.ss_size >= ALTSTACK_SIZE) {
        return; /* the thread already has one big enough (the Swift runtime may install one) */
    }
    void *memory = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return;
    stack_t alt;
    memset(&alt, 0, sizeof(alt));
    alt.ss_sp = memory;
    alt.ss_size = ALTSTACK_SIZE;
    if (sigaltstack(&alt, NULL) != 0) {
        munmap(memory, ALTSTACK_SIZE);
        return;
    }
    pthread_setspecific(altstack_key, memory);
}

void weft_fatal(const char *message) {
    write_all(message, strlen(message));
    write_all("\n", 1);
    abort();
}

void weft_canary_failed(const weft_fiber *fiber) {
    char message[256];
    size_t n = 0;
    n = append(message, n, "weft: stack overflow in ");
    n += name_context(message + n, fiber);
    n = append(message, n, " (compact stack of ");
    n += format_u64(message + n, fiber->stack_bytes);
    n = append(message, n, " bytes): its canary was overwritten. Use a guarded or bigger stack.");
    message[n] = 0;
    weft_fatal(message);
}

void weft_context_entry_returned(void) {
    weft_fatal("weft: a context's entry function returned; it must switch away for good instead");
}
