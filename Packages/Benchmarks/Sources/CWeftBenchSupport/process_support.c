// Signal-driven allocation report (for server child processes whose event loop the driver cannot
// call into), CPU pinning (CPU_SET is a macro, which Swift cannot import) and direct-I/O opens.
#define _GNU_SOURCE
#include "CWeftBenchSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void report_allocations(int signo) {
    (void)signo;
    int saved = errno;
    char text[32];
    char digits[24];
    unsigned long long value = weft_bench_allocations();
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    size_t length = 0;
    memcpy(text, "allocs=", 7);
    length = 7;
    while (count > 0) text[length++] = digits[--count];
    text[length++] = '\n';
    size_t written = 0;
    while (written < length) {
        ssize_t n = write(STDOUT_FILENO, text + written, length - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        written += (size_t)n;
    }
    errno = saved;
}

int weft_bench_report_allocations_on(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report_allocations;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int weft_bench_pin(pid_t pid, int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(pid, sizeof set, &set);
}

int weft_bench_unpin(pid_t pid) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (long cpu = 0; cpu < online && cpu < CPU_SETSIZE; cpu++) CPU_SET((int)cpu, &set);
    return sched_setaffinity(pid, sizeof set, &set);
}

int weft_bench_open_direct(const char *path) { return open(path, O_RDONLY | O_CLOEXEC | O_DIRECT); }
