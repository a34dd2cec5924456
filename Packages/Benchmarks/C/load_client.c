// Closed-loop load generator for the echo benchmarks. Opens CONNECTIONS connections; each sends a
// SIZE-byte message, waits until the whole echo is back (and checks it), and sends the next. After a
// warm-up of WARMUP seconds it measures for SECONDS seconds, then stops by itself. One thread, epoll.
//
// Output (stdout, line-buffered), which the driver uses to bracket the server's CPU time:
//   phase=measure                    the measured window starts now
//   phase=done                       it ended now
//   msgs_per_s=X p50_us=X p99_us=X msgs=N errors=N
// Exit status 1 if the server closed a connection, sent wrong bytes, or stalled for 5 seconds.
//
// With HOLD given as `hold`, the connections stay open after the results until the driver sends
// SIGUSR2, so that readings the driver takes of the server at `phase=done` (its CPU time, its
// allocation count) do not race with the server tearing the connections down.
//
//   load_client HOST PORT CONNECTIONS SIZE SECONDS [WARMUP [HOLD]]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_EVENTS = 1024, HISTOGRAM_US = 1000000, STALL_SECONDS = 5 };

struct conn {
    int fd;
    size_t sent;      // bytes of the current message written
    size_t received;  // bytes of its echo read back
    uint64_t started_ns;
};

static size_t size;
static char *message;
static char *scratch;
static uint32_t *histogram;  // one bucket per microsecond of round-trip latency, last one overflow
static uint64_t measured, errors;
static uint64_t bytes_received;  // every echoed byte, warm-up included: the stall detector's progress
static int measuring, epfd;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what) {
    fprintf(stderr, "load_client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watch(struct conn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) fail("epoll_ctl");
}

// Writes the rest of the current message; when the socket is full, waits for EPOLLOUT.
static void push(struct conn *c) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, message + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
                return;
            }
            fail("send");
        }
        c->sent += (size_t)n;
    }
}

static void start_message(struct conn *c) {
    c->sent = 0;
    c->received = 0;
    c->started_ns = now_ns();
    push(c);
}

static void on_readable(struct conn *c) {
    ssize_t n = recv(c->fd, scratch, size - c->received, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        fail("recv");
    }
    if (n == 0) {
        fprintf(stderr, "load_client: the server closed a connection\n");
        exit(1);
    }
    if (memcmp(scratch, message + c->received, (size_t)n) != 0) errors++;
    c->received += (size_t)n;
    bytes_received += (size_t)n;
    if (c->received < size) return;
    if (measuring) {
        uint64_t us = (now_ns() - c->started_ns) / 1000;
        histogram[us < HISTOGRAM_US ? us : HISTOGRAM_US]++;
        measured++;
    }
    start_message(c);
}

static double percentile(double fraction) {
    uint64_t rank = (uint64_t)(fraction * (double)measured), seen = 0;
    for (uint32_t us = 0; us <= HISTOGRAM_US; us++) {
        seen += histogram[us];
        if (seen > rank) return (double)us + 0.5;
    }
    return (double)HISTOGRAM_US;
}

static void raise_fd_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 8 || (argc == 8 && strcmp(argv[7], "hold") != 0)) {
        fprintf(stderr, "usage: load_client HOST PORT CONNECTIONS SIZE SECONDS [WARMUP [hold]]\n");
        return 2;
    }
    int hold = argc == 8;
    sigset_t release;
    sigemptyset(&release);
    sigaddset(&release, SIGUSR2);
    // Blocked from the start, so a SIGUSR2 that comes before the wait stays pending, not lost.
    if (hold) sigprocmask(SIG_BLOCK, &release, NULL);
    int count = atoi(argv[3]);
    size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]), warmup = argc >= 7 ? atof(argv[6]) : 1.0;
    if (count <= 0 || size == 0 || seconds <= 0 || warmup < 0) {
        fprintf(stderr, "load_client: CONNECTIONS, SIZE and SECONDS must be positive\n");
        return 2;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    message = malloc(size);
    scratch = malloc(size);
    histogram = calloc(HISTOGRAM_US + 1, sizeof *histogram);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    if (!message || !scratch || !histogram || !conns) fail("malloc");
    for (size_t i = 0; i < size; i++) message[i] = (char)('a' + i % 26);

    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1) {
        fprintf(stderr, "load_client: HOST must be an IPv4 address\n");
        return 2;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) fail("epoll_create1");
    // Blocking connects: the handshake completes in the kernel's backlog, so this is quick even
    // before the server accepts; the sockets turn non-blocking afterwards.
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) fail("socket");
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) fail("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) fail("fcntl");
        conns[i].fd = fd;
        watch(&conns[i], EPOLL_CTL_ADD, EPOLLIN);
    }
    for (int i = 0; i < count; i++) start_message(&conns[i]);

    struct epoll_event events[MAX_EVENTS];
    uint64_t begin = now_ns();
    uint64_t measure_at = begin + (uint64_t)(warmup * 1e9);
    uint64_t end_at = measure_at + (uint64_t)(seconds * 1e9);
    uint64_t measure_started = 0, last_progress = begin, now = begin;
    uint64_t progress_mark = 0;
    while (now < end_at) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) {
                push(c);
                if (c->sent == size) watch(c, EPOLL_CTL_MOD, EPOLLIN);
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
        now = now_ns();
        if (!measuring && now >= measure_at) {
            measuring = 1;
            measure_started = now;
            printf("phase=measure\n");
        }
        if (bytes_received != progress_mark) {
            progress_mark = bytes_received;
            last_progress = now;
        } else if (now - last_progress > (uint64_t)STALL_SECONDS * 1000000000ULL) {
            fprintf(stderr, "load_client: no echo for %d seconds\n", STALL_SECONDS);
            return 1;
        }
    }
    double elapsed = (double)(now - measure_started) / 1e9;
    printf("phase=done\n");
    printf("msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f msgs=%llu errors=%llu\n", (double)measured / elapsed,
           percentile(0.50), percentile(0.99), (unsigned long long)measured, (unsigned long long)errors);
    if (hold) {
        int signo;
        sigwait(&release, &signo);
    }
    for (int i = 0; i < count; i++) close(conns[i].fd);
    return errors == 0 ? 0 : 1;
}
