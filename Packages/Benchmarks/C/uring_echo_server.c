// C baseline for `loop.echo_*`: a single-threaded io_uring echo server, written the way a competent
// C programmer would with liburing and no advanced tricks, so the WeftLoop callback server is measured
// against the same work: one single-shot accept in flight (re-armed on completion); per connection
// one recv into a 4 KiB buffer, then a send of the received bytes (re-sent until all are out), then
// the next recv. No multishot, no provided buffers, no registered files, no linked operations.
// Completions are reaped in a batch and everything they queue goes out with the next
// io_uring_submit_and_wait. The ring uses SINGLE_ISSUER, DEFER_TASKRUN and COOP_TASKRUN when the
// kernel accepts them, as WeftLoop does.
//
//   uring_echo_server PORT     listens on 127.0.0.1:PORT until killed
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 4096, RING_ENTRIES = 4096 };
enum op { OP_RECV = 1, OP_SEND = 2 };

struct conn {
    int fd;
    size_t length;  // bytes received and being echoed
    size_t sent;    // bytes of them already sent
    char buffer[BUFFER_SIZE];
};

// user_data: a connection pointer with the operation in its low bits; 0 is the listener's accept.
#define ACCEPT_TAG 0ULL

static struct io_uring ring;

static struct io_uring_sqe *get_sqe(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    while (sqe == NULL) {  // submission queue full: hand the kernel what is queued and retry
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void queue_accept(int listener) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_accept(sqe, listener, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, ACCEPT_TAG);
}

static void queue_recv(struct conn *c) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv(sqe, c->fd, c->buffer, BUFFER_SIZE, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}

static void queue_send(struct conn *c) {
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, c->fd, c->buffer + c->sent, c->length - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
}

static void close_conn(struct conn *c) {
    close(c->fd);
    free(c);
}

static void handle(int listener, struct io_uring_cqe *cqe) {
    uint64_t data = io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    if (data == ACCEPT_TAG) {
        if (res >= 0) {
            struct conn *c = aligned_alloc(8, sizeof(struct conn));
            if (c == NULL) {
                close(res);
            } else {
                c->fd = res;
                queue_recv(c);
            }
        } else if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED && res != -EMFILE) {
            fprintf(stderr, "uring_echo_server: accept: %s\n", strerror(-res));
            exit(1);
        }
        queue_accept(listener);
        return;
    }
    struct conn *c = (struct conn *)(uintptr_t)(data & ~7ULL);
    switch ((enum op)(data & 7)) {
    case OP_RECV:
        if (res <= 0) {
            close_conn(c);
            return;
        }
        c->length = (size_t)res;
        c->sent = 0;
        queue_send(c);
        break;
    case OP_SEND:
        if (res < 0) {
            close_conn(c);
            return;
        }
        c->sent += (size_t)res;
        if (c->sent < c->length) {
            queue_send(c);
        } else {
            queue_recv(c);
        }
        break;
    }
}

static void raise_fd_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: uring_echo_server PORT\n");
        return 2;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("uring_echo_server: bind/listen");
        return 1;
    }
    int ret = io_uring_queue_init(RING_ENTRIES, &ring,
                                  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                      IORING_SETUP_COOP_TASKRUN);
    if (ret < 0) ret = io_uring_queue_init(RING_ENTRIES, &ring, 0);
    if (ret < 0) {
        fprintf(stderr, "uring_echo_server: io_uring_queue_init: %s\n", strerror(-ret));
        return 1;
    }
    queue_accept(listener);
    for (;;) {
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            fprintf(stderr, "uring_echo_server: io_uring_submit_and_wait: %s\n", strerror(-ret));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, count = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            handle(listener, cqe);
            count++;
        }
        io_uring_cq_advance(&ring, count);
    }
}
