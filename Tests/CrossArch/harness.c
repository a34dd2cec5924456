/* Cross-architecture harness for the context switch: links the SAME switch_<arch>.S as the
 * library and runs switch-heavy checks, natively or under qemu-user (see Scripts/cross-check).
 * Exits 0 when every check passes, 1 otherwise. */
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *weft_context_switch(void **save_sp, void *to_sp, void *transfer);
void *weft_context_make(void *stack_top, void (*entry)(void *, void *), void *arg);
uint64_t weft_check_preserve(void **save_sp, void *to_sp);
void weft_clobber_and_switch(void **save_sp, void *to_sp);

void weft_context_entry_returned(void) {
    fprintf(stderr, "FAIL: a context's entry returned\n");
    exit(1);
}

enum { STACK_SIZE = 64 * 1024, CONTEXTS = 100, ROUNDS = 1000 };

static int failures;
static void *main_sp;
static void *context_sp[CONTEXTS];

#define CHECK(condition, ...)                                                                 \
    do {                                                                                      \
        if (!(condition)) {                                                                   \
            failures++;                                                                       \
            fprintf(stderr, "FAIL (%s:%d): ", __FILE__, __LINE__);                            \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

static void *new_stack_top(void) {
    char *stack = aligned_alloc(16, STACK_SIZE);
    if (stack == NULL) abort();
    return stack + STACK_SIZE;
}

/* 1. A value travels with each switch, both ways. */
static void pingpong_entry(void *transfer, void *arg) {
    (void)arg;
    uintptr_t value = (uintptr_t)transfer;
    for (;;) value = (uintptr_t)weft_context_switch(&context_sp[0], main_sp, (void *)(value * 3));
}

static void test_transfer(void) {
    context_sp[0] = weft_context_make(new_stack_top(), pingpong_entry, NULL);
    for (uintptr_t i = 1; i <= 100000; i++) {
        uintptr_t back = (uintptr_t)weft_context_switch(&main_sp, context_sp[0], (void *)i);
        if (back != i * 3) {
            CHECK(back == i * 3, "transfer %lu came back as %lu", (unsigned long)i, (unsigned long)back);
            return;
        }
    }
}

/* 2. Every callee-saved register (GPR and FP) and the FP rounding mode survive a switch to a
 * context that clobbers all of them. */
static void clobber_entry(void *transfer, void *arg) {
    (void)transfer;
    (void)arg;
    for (;;) {
        fesetround(FE_UPWARD);
        weft_clobber_and_switch(&context_sp[1], main_sp);
    }
}

static void test_preservation(void) {
    context_sp[1] = weft_context_make(new_stack_top(), clobber_entry, NULL);
    for (int i = 0; i < 10000; i++) {
        fesetround(FE_DOWNWARD);
        uint64_t changed = weft_check_preserve(&main_sp, context_sp[1]);
        int mode = fegetround();
        fesetround(FE_TONEAREST);
        if (changed != 0 || mode != FE_DOWNWARD) {
            CHECK(changed == 0, "callee-saved registers changed across a switch: mask 0x%llx", (unsigned long long)changed);
            CHECK(mode == FE_DOWNWARD, "rounding mode not preserved: %d", mode);
            return;
        }
    }
}

/* 3. A new context starts with its creator's FP environment. */
static int started_mode;
static void mode_entry(void *transfer, void *arg) {
    (void)arg;
    started_mode = fegetround();
    weft_context_switch(&context_sp[2], main_sp, transfer);
    weft_context_entry_returned();
}

static void test_initial_fp_state(void) {
    fesetround(FE_TOWARDZERO);
    context_sp[2] = weft_context_make(new_stack_top(), mode_entry, NULL);
    fesetround(FE_TONEAREST);
    weft_context_switch(&main_sp, context_sp[2], NULL);
    CHECK(started_mode == FE_TOWARDZERO, "new context started with rounding mode %d", started_mode);
    CHECK(fegetround() == FE_TONEAREST, "creator's rounding mode changed");
}

/* 4. Many contexts interleaved round-robin, each keeping live integer and FP state in C. */
static double sums[CONTEXTS];
static void worker_entry(void *transfer, void *arg) {
    (void)transfer;
    int index = (int)(intptr_t)arg;
    double accumulator = index * 0.5;
    long counter = index;
    for (int round = 0; round < ROUNDS; round++) {
        accumulator = accumulator * 1.0001 + 1.0;
        counter += round;
        weft_context_switch(&context_sp[index], main_sp, (void *)(intptr_t)index);
    }
    sums[index] = accumulator + (double)counter;
    weft_context_switch(&context_sp[index], main_sp, (void *)(intptr_t)-1);
    weft_context_entry_returned();
}

static void test_interleaved(void) {
    for (int i = 0; i < CONTEXTS; i++) context_sp[i] = weft_context_make(new_stack_top(), worker_entry, (void *)(intptr_t)i);
    for (int round = 0; round <= ROUNDS; round++) {
        for (int i = CONTEXTS - 1; i >= 0; i--) {
            intptr_t back = (intptr_t)weft_context_switch(&main_sp, context_sp[i], NULL);
            intptr_t expected = round == ROUNDS ? -1 : i;
            if (back != expected) {
                CHECK(back == expected, "context %d round %d returned %ld", i, round, (long)back);
                return;
            }
        }
    }
    for (int i = 0; i < CONTEXTS; i++) {
        double accumulator = i * 0.5;
        long counter = i;
        for (int round = 0; round < ROUNDS; round++) {
            accumulator = accumulator * 1.0001 + 1.0;
            counter += round;
        }
        CHECK(sums[i] == accumulator + (double)counter, "context %d computed %f", i, sums[i]);
    }
}

int main(void) {
    test_transfer();
    test_preservation();
    test_initial_fp_state();
    test_interleaved();
    if (failures != 0) {
        fprintf(stderr, "cross-check: %d failure(s)\n", failures);
        return 1;
    }
    printf("cross-check: all context-switch checks passed\n");
    return 0;
}
