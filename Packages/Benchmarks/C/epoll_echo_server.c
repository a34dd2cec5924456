// C baseline for `loop.echo_epoll_vs_c_epoll`: a single-threaded epoll echo server, the usual
// level-triggered design. The listener and every connection are registered for EPOLLIN; a readable
// listener is drained with accept4 until EAGAIN; a readable connection gets one recv into its 4 KiB
// buffer and the bytes are sent straight back. Only when the socket buffer is full does the
// connection switch to EPOLLOUT until the rest is out, and then back to EPOLLIN.
//
//   epoll_echo_server PORT     listens on 127.0.0.1:PORT until killed
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 4096, MAX_EVENTS = 1024 };

struct conn {
    int fd;
    size_t length;  // bytes received and not yet all sent back
    size_t sent;
    char buffer[BUFFER_SIZE];
};

static int epfd;
static struct conn listener_slot;  // its address marks the listener in epoll_event.data

static void close_conn(struct conn *c) {
    close(c->fd);  // closing removes it from the epoll set
    free(c);
}

static void watch(struct conn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        perror("epoll_echo_server: epoll_ctl");
        exit(1);
    }
}

// Sends what is left of the buffer; returns 1 when all is out, 0 when the socket is full, -1 on error.
static int flush(struct conn *c) {
    while (c->sent < c->length) {
        ssize_t n = send(c->fd, c->buffer + c->sent, c->length - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->sent += (size_t)n;
    }
    return 1;
}

static void on_readable(struct conn *c) {
    ssize_t n = recv(c->fd, c->buffer, BUFFER_SIZE, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        close_conn(c);
        return;
    }
    c->length = (size_t)n;
    c->sent = 0;
    int done = flush(c);
    if (done < 0) {
        close_conn(c);
    } else if (done == 0) {
        watch(c, EPOLL_CTL_MOD, EPOLLOUT);
    }
}

static void on_writable(struct conn *c) {
    int done = flush(c);
    if (done < 0) {
        close_conn(c);
    } else if (done == 1) {
        watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }
}

static void on_listener(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EMFILE || errno == ENFILE) return;
            perror("epoll_echo_server: accept4");
            exit(1);
        }
        struct conn *c = malloc(sizeof(struct conn));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        watch(c, EPOLL_CTL_ADD, EPOLLIN);
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
        fprintf(stderr, "usage: epoll_echo_server PORT\n");
        return 2;
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
        perror("epoll_echo_server: bind/listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    listener_slot.fd = listener;
    watch(&listener_slot, EPOLL_CTL_ADD, EPOLLIN);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_echo_server: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == &listener_slot) {
                on_listener(listener);
            } else if (events[i].events & EPOLLOUT) {
                on_writable(c);
            } else {
                on_readable(c);
            }
        }
    }
}
