/* Stack memory: reservations the kernel commits page by page on first touch. Each function returns
 * 0 or the errno value of the failing call, read right after that call. */
#include "CWeftContext.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int weft_stack_map(size_t total, size_t guard, void **out) {
    void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return errno;
    if (guard != 0 && mprotect(base, guard, PROT_NONE) != 0) {
        int error = errno;
        munmap(base, total);
        return error;
    }
    *out = base;
    return 0;
}

int weft_stack_unmap(void *base, size_t total) { return munmap(base, total) == 0 ? 0 : errno; }

int weft_stack_discard(void *lo, size_t size) { return madvise(lo, size, MADV_DONTNEED) == 0 ? 0 : errno; }

size_t weft_page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

long weft_max_map_count(void) {
    FILE *file = fopen("/proc/sys/vm/max_map_count", "r");
    if (file == NULL) return -1;
    long value = -1;
    if (fscanf(file, "%ld", &value) != 1) value = -1;
    fclose(file);
    return value;
}

long weft_map_count(void) {
    FILE *file = fopen("/proc/self/maps", "r");
    if (file == NULL) return -1;
    long lines = 0;
    int c;
    while ((c = getc(file)) != EOF) {
        if (c == '\n') lines++;
    }
    fclose(file);
    return lines;
}
