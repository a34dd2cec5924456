// C baseline for `loop.nop_vs_c`: N io_uring NOP operations submitted in batches of B, each batch
// submitted and reaped with one io_uring_submit_and_wait. The ring uses the setup flags WeftLoop
// asks for (SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN) when the kernel accepts them, so the ratio
// measures the loop's own overhead, not a difference in kernel paths.
//
//   uring_nop N B      prints `ops_per_s=NUMBER`
#define _GNU_SOURCE
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_batches(struct io_uring *ring, long total, unsigned batch) {
    long done = 0;
    while (done < total) {
        unsigned n = (unsigned)(total - done < (long)batch ? total - done : (long)batch);
        for (unsigned i = 0; i < n; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, (uint64_t)i);
        }
        int ret = io_uring_submit_and_wait(ring, n);
        if (ret < 0) {
            fprintf(stderr, "uring_nop: io_uring_submit_and_wait: %s\n", strerror(-ret));
            exit(1);
        }
        unsigned seen = 0;
        while (seen < n) {
            struct io_uring_cqe *cqe;
            unsigned head, count = 0;
            io_uring_for_each_cqe(ring, head, cqe) {
                if (cqe->res < 0) {
                    fprintf(stderr, "uring_nop: NOP failed: %s\n", strerror(-cqe->res));
                    exit(1);
                }
                count++;
            }
            io_uring_cq_advance(ring, count);
            seen += count;
            if (seen < n) {
                ret = io_uring_submit_and_wait(ring, n - seen);
                if (ret < 0) {
                    fprintf(stderr, "uring_nop: wait: %s\n", strerror(-ret));
                    exit(1);
                }
            }
        }
        done += n;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: uring_nop N B\n");
        return 2;
    }
    long total = atol(argv[1]);
    unsigned batch = (unsigned)atoi(argv[2]);
    if (total <= 0 || batch == 0 || batch > 4096) {
        fprintf(stderr, "uring_nop: N must be > 0 and B in 1...4096\n");
        return 2;
    }
    struct io_uring ring;
    unsigned entries = batch < 64 ? 64 : batch;
    int ret = io_uring_queue_init(entries, &ring,
                                  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                      IORING_SETUP_COOP_TASKRUN);
    if (ret < 0) ret = io_uring_queue_init(entries, &ring, 0);
    if (ret < 0) {
        fprintf(stderr, "uring_nop: io_uring_queue_init: %s\n", strerror(-ret));
        return 1;
    }
    run_batches(&ring, total / 10 + 1, batch);  // warm-up: page in the rings, settle the CPU clock
    double start = now_seconds();
    run_batches(&ring, total, batch);
    double elapsed = now_seconds() - start;
    printf("ops_per_s=%.0f\n", (double)total / elapsed);
    io_uring_queue_exit(&ring);
    return 0;
}
