/* Test-only: counts heap allocations made by the calling thread. The definitions of malloc and
 * friends in counter.c interpose the C library's for the whole test process and forward to it. */
#pragma once
#include <stdint.h>

/* Allocations (malloc, calloc, realloc, aligned variants) made by the calling thread so far. */
uint64_t weft_test_thread_allocations(void);

/* 1 when allocations are counted (0 under a sanitizer, which interposes malloc itself). */
int weft_test_allocation_counting(void);
