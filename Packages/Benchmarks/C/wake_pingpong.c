// Cross-thread wake ping-pong between two io_uring loops, the mechanism alone: `wake_pingpong MODE N`
// runs N round trips (thread A wakes B, B wakes A) and prints `round_trips_per_s=R us_per_wake=W
// cpu_us_per_round_trip=C` (C: both threads' CPU time, user and system, per round trip).
// MODE eventfd: each ring watches its own eventfd with a multishot poll, and a wake is a write to
// the peer's eventfd (what WeftLoop does today). MODE msgring: a wake is an IORING_OP_MSG_RING
// submitted to the waker's own ring that posts a completion straight into the peer's ring.
// Each thread sets up its ring as WeftLoop does (SINGLE_ISSUER | DEFER_TASKRUN) and is pinned to its
// own CPU (0 and 1), so every wake crosses cores.
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define WAKE_TAG 1

static int use_msgring;
static long rounds;
static struct io_uring rings[2];
static int events[2];
static pthread_barrier_t ready;
static double started, finished;
static double cpu[2];

static double thread_cpu(void) {
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void die(const char *what, int err) {
    fprintf(stderr, "wake_pingpong: %s: %s\n", what, strerror(err));
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void wake_peer(int self) {
    int peer = 1 - self;
    if (use_msgring) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rings[self]);
        io_uring_prep_msg_ring(sqe, rings[peer].ring_fd, 0, WAKE_TAG, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, 0);
        // Submitted by the wait that follows, as a loop would.
    } else {
        uint64_t one = 1;
        if (write(events[peer], &one, sizeof one) < 0) die("write", errno);
    }
}

static void arm_poll(int self) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&rings[self]);
    io_uring_prep_poll_multishot(sqe, events[self], POLLIN);
    io_uring_sqe_set_data64(sqe, WAKE_TAG);
}

static void *run(void *arg) {
    int self = (int)(intptr_t)arg;
    pin(self);
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(64, &rings[self], &params);
    if (r < 0) die("io_uring_queue_init_params", -r);
    if (!use_msgring) arm_poll(self);
    pthread_barrier_wait(&ready);
    double cpu_start = thread_cpu();
    if (self == 0) {
        started = now();
        wake_peer(0);
    }
    long seen = 0;
    while (seen < rounds) {
        r = io_uring_submit_and_wait(&rings[self], 1);
        if (r < 0 && r != -EINTR) die("io_uring_submit_and_wait", -r);
        struct io_uring_cqe *cqe;
        unsigned head, count = 0;
        io_uring_for_each_cqe(&rings[self], head, cqe) {
            count++;
            if (cqe->user_data != WAKE_TAG) continue;
            if (cqe->res < 0) die("wake completion", -cqe->res);
            if (!use_msgring) {
                uint64_t value;
                if (read(events[self], &value, sizeof value) < 0 && errno != EAGAIN) die("read", errno);
                if (!(cqe->flags & IORING_CQE_F_MORE)) arm_poll(self);
            }
            seen++;
            // Thread 0 starts each round trip; thread 1 answers every wake.
            if (self == 1 || seen < rounds) wake_peer(self);
        }
        io_uring_cq_advance(&rings[self], count);
    }
    if (self == 0) finished = now();
    cpu[self] = thread_cpu() - cpu_start;
    // Let the last wake reach the peer before the rings go away.
    io_uring_submit(&rings[self]);
    pthread_barrier_wait(&ready);
    io_uring_queue_exit(&rings[self]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "eventfd") && strcmp(argv[1], "msgring")) || atol(argv[2]) <= 0) {
        fprintf(stderr, "usage: wake_pingpong eventfd|msgring N\n");
        return 2;
    }
    use_msgring = strcmp(argv[1], "msgring") == 0;
    rounds = atol(argv[2]);
    for (int i = 0; i < 2; i++) {
        events[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (events[i] < 0) die("eventfd", errno);
    }
    pthread_barrier_init(&ready, NULL, 2);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, run, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    double elapsed = finished - started;
    printf("round_trips_per_s=%.0f us_per_wake=%.3f cpu_us_per_round_trip=%.3f\n", rounds / elapsed,
           elapsed * 1e6 / (2.0 * rounds), (cpu[0] + cpu[1]) * 1e6 / rounds);
    return 0;
}
