#pragma once
// C shim for WeftLoop: liburing (imported directly; its static inline helpers inline into Swift), the
// Linux headers Glibc does not export, and syscall wrappers for the readiness backend and the thread
// pool. Every wrapper returns the result or -errno, reading errno right after the call inside C so
// no Swift code (and no fiber switch) runs between the syscall and the errno read. EINTR is retried
// here, in one place, except for close(2), whose descriptor is gone whatever it returns.
#include <features.h>
// swift-system's C module includes the kernel's <linux/io_uring.h>; liburing ships its own copy of
// that header under the same include guard, with different field types. Including the kernel's first
// makes both modules see one definition of the io_uring structs (otherwise Swift rejects the merge).
#include <linux/io_uring.h>
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <poll.h>
#include <fcntl.h>
#include <stdint.h>
#include <time.h>

int weft_loop_abi_version(void);

long weft_read(int fd, void *buf, unsigned long len, long long offset);
long weft_write(int fd, const void *buf, unsigned long len, long long offset);
long weft_readv(int fd, const struct iovec *iov, int count, long long offset);
long weft_writev(int fd, const struct iovec *iov, int count, long long offset);
long weft_recv(int fd, void *buf, unsigned long len, int flags);
long weft_send(int fd, const void *buf, unsigned long len, int flags);
long weft_recvmsg(int fd, struct msghdr *msg, int flags);
long weft_sendmsg(int fd, const struct msghdr *msg, int flags);
int weft_accept(int fd, void *addr, unsigned int *addrlen, int flags);
int weft_connect(int fd, const void *addr, unsigned int addrlen);
int weft_socket_error(int fd);
int weft_socket(int domain, int type, int protocol);
int weft_shutdown(int fd, int how);
int weft_bind(int fd, const void *addr, unsigned int addrlen);
int weft_listen(int fd, int backlog);
int weft_close(int fd);
int weft_openat(int dirfd, const char *path, int flags, unsigned int mode);
int weft_openat2(int dirfd, const char *path, void *how, unsigned long size);
int weft_statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf);
int weft_fsync(int fd, int datasync);
int weft_fallocate(int fd, int mode, long long offset, long long length);
int weft_ftruncate(int fd, long long length);
int weft_renameat(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned int flags);
int weft_unlinkat(int dirfd, const char *path, int flags);
int weft_mkdirat(int dirfd, const char *path, unsigned int mode);
int weft_linkat(int olddir, const char *oldpath, int newdir, const char *newpath, int flags);
int weft_symlinkat(const char *target, int newdir, const char *linkpath);
long weft_splice(int in, long long inoff, int out, long long outoff, unsigned long len, unsigned int flags);
long weft_sendfile(int out, int in, long long offset, unsigned long count);
int weft_poll1(int fd, int events);
int weft_pidfd_wait(int pidfd, int *code, int *status);
int weft_pidfd_open(int pid);

int weft_epoll_create(void);
int weft_epoll_ctl(int epfd, int op, int fd, unsigned int events, uint64_t data);
int weft_epoll_wait(int epfd, struct epoll_event *events, int max, long long timeout_ns);
/// Makes every epoll wait use epoll_wait (as when epoll_pwait2 is missing), or, with 0, tries
/// epoll_pwait2 again (tests).
void weft_epoll_wait_in_milliseconds(int enabled);
/// A one-byte flag shared with other threads without a lock (a relaxed atomic store, and a compiler
/// barrier after it: the caller's next load must follow it in program order; the other thread
/// pairs it with `weft_membarrier()`).
static inline void weft_flag_store(uint8_t *flag, uint8_t value) {
    __atomic_store_n(flag, value, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline uint8_t weft_flag_load(uint8_t *flag) { return __atomic_load_n(flag, __ATOMIC_RELAXED); }
/// Registers the process for expedited private memory barriers; 0 on success, -errno if the
/// kernel has none (then both sides of a handshake must fence).
int weft_membarrier_register(void);
/// A memory barrier on every running thread of the process (after `weft_membarrier_register()`).
int weft_membarrier(void);
int weft_eventfd(void);
int weft_eventfd_signal(int fd);
int weft_eventfd_drain(int fd);
int weft_set_nonblocking(int fd);
/// 1 for a regular file, block device or directory (reads and writes would block: thread pool),
/// 2 for a TCP socket, 0 for anything else; -errno for a bad descriptor.
int weft_descriptor_kind(int fd);
int weft_signalfd(const int *signals, int count);
int weft_unblock_signals(const int *signals, int count);
uint64_t weft_clock_ns(int clock);

int weft_thread_start(void *(*entry)(void *), void *arg);
int weft_uring_enable(struct io_uring *ring);

// Multishot operations and provided buffer rings. liburing 2.3 has no io_uring_setup_buf_ring, so the
// loop allocates the ring's page-aligned entries itself and registers them here.
// (Inline, as liburing's own preparations: a call here made the loop's submission fast path, which
// inlines every kind's preparation, save registers for all kinds.)
static inline void weft_prep_accept_multishot(struct io_uring_sqe *sqe, int fd) {
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
}
static inline void weft_prep_recv_multishot(struct io_uring_sqe *sqe, int fd, unsigned short group, int flags) {
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, flags);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
}
int weft_buf_ring_register(struct io_uring *ring, void *entries, unsigned count, unsigned short group);
int weft_buf_ring_unregister(struct io_uring *ring, unsigned short group);
void weft_buf_ring_init(void *entries);
void weft_buf_ring_add(void *entries, unsigned count, void *address, unsigned length, unsigned short id);

// A deadline for the operation just prepared in `op_sqe`: links it (IOSQE_IO_LINK) to a
// LINK_TIMEOUT in `sqe` at the absolute CLOCK_MONOTONIC time `ts`, whose own completion carries
// `tag` (and is ignored).
void weft_prep_link_deadline(struct io_uring_sqe *op_sqe, struct io_uring_sqe *sqe, struct __kernel_timespec *ts,
                             uint64_t tag);

// Registered files: the operation's descriptor is a slot of the ring's file table.
void weft_sqe_fixed_file(struct io_uring_sqe *sqe);
int weft_files_register_sparse(struct io_uring *ring, unsigned count);
int weft_files_update(struct io_uring *ring, unsigned slot, int fd);
int weft_descriptor_valid(int fd);
// A direct accept: the ACCEPT just prepared in `sqe` installs the connection in slot `slot` of the
// ring's file table, or in a free slot the kernel picks when `slot` is negative.
void weft_sqe_direct_target(struct io_uring_sqe *sqe, int slot);

// Registered buffers: a READ or WRITE just prepared in `sqe` becomes READ_FIXED or WRITE_FIXED on
// buffer `index` of the ring's table (its address range must lie inside that buffer).
void weft_sqe_fixed_buffer(struct io_uring_sqe *sqe, unsigned index);
int weft_buffers_register(struct io_uring *ring, const struct iovec *buffers, unsigned count);
int weft_buffers_unregister(struct io_uring *ring);

// The io_uring backend's hot paths, for rings set up without SQPOLL, SQE128 and CQE32 (the loop
// asks for none of them), which liburing's getters test on every call.

/// The next free submission queue entry, or NULL when the queue is full.
static inline __attribute__((always_inline)) struct io_uring_sqe *weft_sqe_next(struct io_uring *ring) {
    struct io_uring_sq *sq = &ring->sq;
    unsigned next = sq->sqe_tail + 1;
    // Without SQPOLL only this thread's io_uring_enter moves the head: no ordering is needed.
    if (next - IO_URING_READ_ONCE(*sq->khead) > sq->ring_entries) return NULL;
    // (A set-up ring has its entries: said, so that callers need not test the entry for NULL.)
    __builtin_assume(sq->sqes != NULL);
    struct io_uring_sqe *sqe = &sq->sqes[sq->sqe_tail & sq->ring_mask];
    sq->sqe_tail = next;
    return sqe;
}

/// A completion queue entry's fields, copied out of the ring.
struct weft_completion {
    uint64_t data;
    int32_t result;
    uint32_t flags;
};

/// The completion queue's fields that reading it needs, copied out of the ring once per drain; the
/// head as this thread last stored it, and the tail as last read.
struct weft_cq_cursor {
    unsigned *khead;
    const unsigned *ktail;
    const struct io_uring_cqe *cqes;
    unsigned mask;
    unsigned head;
    unsigned tail;
};

/// A cursor at the queue's current head. Only the thread that runs the loop moves the head, and it
/// reads the queue through one cursor at a time.
static inline struct weft_cq_cursor weft_cq_cursor(struct io_uring *ring) {
    unsigned head = *ring->cq.khead;
    struct weft_cq_cursor cursor = {ring->cq.khead, ring->cq.ktail, ring->cq.cqes, ring->cq.ring_mask, head, head};
    return cursor;
}

/// Copies the oldest completion queue entry into `out` and frees its slot in the ring, so that a
/// callback that submits finds the slot free; returns 0 when the queue is empty. The kernel's tail
/// is read again only when the entries seen last have all been taken, and the head is kept in the
/// cursor rather than read back from the ring (a load that would wait for the store before it, on
/// every entry). Never enters the kernel.
static inline __attribute__((always_inline)) int weft_cq_next(struct weft_cq_cursor *cursor, struct weft_completion *out) {
    unsigned head = cursor->head;
    if (head == cursor->tail) {
        cursor->tail = io_uring_smp_load_acquire(cursor->ktail);
        if (head == cursor->tail) return 0;
    }
    const struct io_uring_cqe *cqe = &cursor->cqes[head & cursor->mask];
    out->data = cqe->user_data;
    out->result = cqe->res;
    out->flags = cqe->flags;
    cursor->head = head + 1;
    io_uring_smp_store_release(cursor->khead, head + 1);
    return 1;
}

// Probes what the running kernel's io_uring offers, on a scratch ring: bit 0, provided buffer rings
// and multishot receive (buffer-ring registration works and the kernel is 6.0 or later); bit 1,
// sparse registered-file tables. Returns the bits, or 0 when no ring can be set up.
int weft_uring_probe_features(void);
