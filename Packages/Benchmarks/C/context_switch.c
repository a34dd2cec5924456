/* Baseline for context.switch_vs_c: the cheapest possible stackful switch, saving only the
 * callee-saved general registers (no FP control state, no runtime hooks), ping-ponged between the
 * main stack and one context. Prints nanoseconds per switch (one direction) on its last line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void bench_switch(void **save_sp, void *to_sp);

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl bench_switch\n"
        ".type bench_switch, @function\n"
        "bench_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size bench_switch, .-bench_switch\n");
enum { FRAME_WORDS = 8, RETURN_SLOT = 6 };
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl bench_switch\n"
        ".type bench_switch, %function\n"
        "bench_switch:\n"
        "  sub sp, sp, #96\n"
        "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n"
        "  mov x9, sp\n  str x9, [x0]\n  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n"
        "  add sp, sp, #96\n  ret\n"
        ".size bench_switch, .-bench_switch\n");
enum { FRAME_WORDS = 12, RETURN_SLOT = 11 };
#else
#error "context_switch.c: no baseline switch for this architecture"
#endif

static void *main_sp;
static void *other_sp;

static void other_entry(void) {
    for (;;) bench_switch(&other_sp, main_sp);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 5000000;
    enum { STACK = 64 * 1024 };
    char *stack = aligned_alloc(16, STACK);
    if (stack == NULL) return 1;
    uintptr_t top = ((uintptr_t)(stack + STACK) & ~(uintptr_t)15) - 16;
    void **frame = (void **)(top - (FRAME_WORDS - 2) * sizeof(void *));
    for (int i = 0; i < FRAME_WORDS - 2; i++) frame[i] = NULL;
    frame[RETURN_SLOT] = (void *)other_entry;
    other_sp = frame;
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        double start = now_ns();
        for (long i = 0; i < rounds; i++) bench_switch(&main_sp, other_sp);
        double per = (now_ns() - start) / (double)(rounds * 2);
        if (per < best) best = per;
    }
    printf("context_switch: ns per switch (one direction, best of 5)\n%.3f\n", best);
    free(stack);
    return 0;
}
