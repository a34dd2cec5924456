// Helpers the benchmark driver needs from C: an allocation counter that interposes the malloc family,
// a signal-driven report of that counter for server child processes, and CPU pinning.
#ifndef CWEFTBENCHSUPPORT_H
#define CWEFTBENCHSUPPORT_H

#include <sys/types.h>

/// Heap allocations made by this process so far (malloc, calloc, realloc, posix_memalign,
/// aligned_alloc, memalign, valloc, pvalloc), counted by interposing those functions.
unsigned long long weft_bench_allocations(void);

/// Blocks released by this process so far (free, and realloc to size 0).
unsigned long long weft_bench_frees(void);

/// Installs a handler that writes `allocs=N\n` (N = weft_bench_allocations()) to standard output
/// with write(2) each time the process receives `signo`; async-signal-safe and allocation-free.
/// Returns 0, or -1 with errno set.
int weft_bench_report_allocations_on(int signo);

/// Restricts the thread or process `pid` (0: the caller) to the single CPU `cpu`.
/// Returns 0, or -1 with errno set.
int weft_bench_pin(pid_t pid, int cpu);

/// Opens `path` read-only for direct I/O (`O_DIRECT`, which Swift's Glibc does not export).
/// Returns the descriptor, or -1 with errno set (a file system may refuse direct I/O).
int weft_bench_open_direct(const char *path);

/// Lets the thread or process `pid` (0: the caller) run on every online CPU again.
/// Returns 0, or -1 with errno set.
int weft_bench_unpin(pid_t pid);

#endif
