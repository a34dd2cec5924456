#define _GNU_SOURCE
#include "CWeftLoop.h"
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/openat2.h>

int weft_loop_abi_version(void) { return 1; }

#define RETRY(type, call)                                                                         \
    type r;                                                                                       \
    do { r = (call); } while (r < 0 && errno == EINTR);                                           \
    return r < 0 ? -errno : r;

long weft_read(int fd, void *buf, unsigned long len, long long offset) {
    if (offset < 0) { RETRY(long, read(fd, buf, len)) }
    RETRY(long, pread(fd, buf, len, offset))
}
long weft_write(int fd, const void *buf, unsigned long len, long long offset) {
    if (offset < 0) { RETRY(long, write(fd, buf, len)) }
    RETRY(long, pwrite(fd, buf, len, offset))
}
long weft_readv(int fd, const struct iovec *iov, int count, long long offset) {
    if (offset < 0) { RETRY(long, readv(fd, iov, count)) }
    RETRY(long, preadv(fd, iov, count, offset))
}
long weft_writev(int fd, const struct iovec *iov, int count, long long offset) {
    if (offset < 0) { RETRY(long, writev(fd, iov, count)) }
    RETRY(long, pwritev(fd, iov, count, offset))
}
long weft_recv(int fd, void *buf, unsigned long len, int flags) { RETRY(long, recv(fd, buf, len, flags)) }
long weft_send(int fd, const void *buf, unsigned long len, int flags) {
    RETRY(long, send(fd, buf, len, flags | MSG_NOSIGNAL))
}
long weft_recvmsg(int fd, struct msghdr *msg, int flags) { RETRY(long, recvmsg(fd, msg, flags)) }
long weft_sendmsg(int fd, const struct msghdr *msg, int flags) {
    RETRY(long, sendmsg(fd, msg, flags | MSG_NOSIGNAL))
}
int weft_accept(int fd, void *addr, unsigned int *addrlen, int flags) {
    RETRY(int, accept4(fd, (struct sockaddr *)addr, (socklen_t *)addrlen, flags))
}
int weft_connect(int fd, const void *addr, unsigned int addrlen) {
    // A connect interrupted by a signal keeps going in the kernel; calling it again would report
    // EALREADY, so an interrupted connect is reported as in progress and finished by readiness.
    int r = connect(fd, (const struct sockaddr *)addr, addrlen);
    if (r < 0) return errno == EINTR ? -EINPROGRESS : -errno;
    return 0;
}
int weft_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    return -err;
}
int weft_socket(int domain, int type, int protocol) { RETRY(int, socket(domain, type, protocol)) }
int weft_bind(int fd, const void *addr, unsigned int addrlen) {
    RETRY(int, bind(fd, (const struct sockaddr *)addr, addrlen))
}
int weft_listen(int fd, int backlog) { RETRY(int, listen(fd, backlog)) }
int weft_shutdown(int fd, int how) { RETRY(int, shutdown(fd, how)) }
int weft_close(int fd) {
    int r = close(fd);
    return r < 0 && errno != EINTR ? -errno : 0;
}
int weft_openat(int dirfd, const char *path, int flags, unsigned int mode) {
    RETRY(int, openat(dirfd, path, flags, mode))
}
int weft_openat2(int dirfd, const char *path, void *how, unsigned long size) {
    RETRY(int, (int)syscall(SYS_openat2, dirfd, path, how, size))
}
int weft_statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf) {
    RETRY(int, statx(dirfd, path, flags, mask, (struct statx *)buf))
}
int weft_fsync(int fd, int datasync) {
    if (datasync) { RETRY(int, fdatasync(fd)) }
    RETRY(int, fsync(fd))
}
int weft_fallocate(int fd, int mode, long long offset, long long length) {
    RETRY(int, fallocate(fd, mode, offset, length))
}
int weft_ftruncate(int fd, long long length) { RETRY(int, ftruncate(fd, length)) }
int weft_renameat(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned int flags) {
    RETRY(int, renameat2(olddir, oldpath, newdir, newpath, flags))
}
int weft_unlinkat(int dirfd, const char *path, int flags) { RETRY(int, unlinkat(dirfd, path, flags)) }
int weft_mkdirat(int dirfd, const char *path, unsigned int mode) { RETRY(int, mkdirat(dirfd, path, mode)) }
int weft_linkat(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
    RETRY(int, linkat(olddir, oldpath, newdir, newpath, flags))
}
int weft_symlinkat(const char *target, int newdir, const char *linkpath) {
    RETRY(int, symlinkat(target, newdir, linkpath))
}
long weft_splice(int in, long long inoff, int out, long long outoff, unsigned long len, unsigned int flags) {
    loff_t ioff = inoff, ooff = outoff;
    RETRY(long, splice(in, inoff < 0 ? NULL : &ioff, out, outoff < 0 ? NULL : &ooff, len, flags))
}
long weft_sendfile(int out, int in, long long offset, unsigned long count) {
    off_t off = offset;
    RETRY(long, sendfile(out, in, offset < 0 ? NULL : &off, count))
}
int weft_poll1(int fd, int events) {
    struct pollfd p = {.fd = fd, .events = (short)events, .revents = 0};
    int r;
    do { r = poll(&p, 1, 0); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    return r == 0 ? 0 : p.revents;
}
int weft_pidfd_wait(int pidfd, int *code, int *status) {
    siginfo_t info;
    info.si_pid = 0;
    int r;
    do { r = waitid((idtype_t)3 /* P_PIDFD */, (id_t)pidfd, &info, WEXITED | WNOHANG); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    if (info.si_pid == 0) return -EAGAIN;
    *code = info.si_code;
    *status = info.si_status;
    return 0;
}
int weft_pidfd_open(int pid) { RETRY(int, (int)syscall(SYS_pidfd_open, pid, 0)) }

int weft_epoll_create(void) { RETRY(int, epoll_create1(EPOLL_CLOEXEC)) }
int weft_epoll_ctl(int epfd, int op, int fd, unsigned int events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    RETRY(int, epoll_ctl(epfd, op, fd, &ev))
}
/* Set once epoll_pwait2 turned out to be missing (Linux before 5.11, or a seccomp filter that
 * refuses it): from then on every wait uses epoll_wait, its timeout rounded up to milliseconds. */
static int epoll_pwait2_missing;

void weft_epoll_wait_in_milliseconds(int enabled) {
    __atomic_store_n(&epoll_pwait2_missing, enabled, __ATOMIC_RELAXED);
}

int weft_epoll_wait(int epfd, struct epoll_event *events, int max, long long timeout_ns) {
    // Not retried on EINTR: the caller recomputes its timeout and calls again.
    if (!__atomic_load_n(&epoll_pwait2_missing, __ATOMIC_RELAXED)) {
        struct timespec ts, *tp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000LL;
            ts.tv_nsec = timeout_ns % 1000000000LL;
            tp = &ts;
        }
        int r = epoll_pwait2(epfd, events, max, tp, NULL);
        if (r >= 0) return r;
        /* epoll_pwait2 itself never fails with these: the call is not there. */
        if (errno != ENOSYS && errno != EPERM) return -errno;
        __atomic_store_n(&epoll_pwait2_missing, 1, __ATOMIC_RELAXED);
    }
    int ms = -1;
    if (timeout_ns >= 0) {
        long long rounded = (timeout_ns + 999999LL) / 1000000LL;
        ms = rounded > 0x7fffffffLL ? 0x7fffffff : (int)rounded;
    }
    int r = epoll_wait(epfd, events, max, ms);
    return r < 0 ? -errno : r;
}
int weft_eventfd(void) { RETRY(int, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) }
// <linux/membarrier.h> values, spelt out for older headers.
#define WEFT_MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define WEFT_MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)

static int weft_membarrier_command(int command) {
#ifdef SYS_membarrier
    return syscall(SYS_membarrier, command, 0, 0) < 0 ? -errno : 0;
#else
    (void)command;
    return -ENOSYS;
#endif
}

int weft_membarrier_register(void) { return weft_membarrier_command(WEFT_MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED); }

int weft_membarrier(void) { return weft_membarrier_command(WEFT_MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

int weft_eventfd_signal(int fd) {
    uint64_t one = 1;
    // EAGAIN means the counter is saturated, which already wakes the reader.
    long r;
    do { r = write(fd, &one, sizeof one); } while (r < 0 && errno == EINTR);
    return r < 0 && errno != EAGAIN ? -errno : 0;
}
int weft_eventfd_drain(int fd) {
    uint64_t value;
    long r;
    do { r = read(fd, &value, sizeof value); } while (r < 0 && errno == EINTR);
    return r < 0 && errno != EAGAIN ? -errno : 0;
}
int weft_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    if (flags & O_NONBLOCK) return 0;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}
int weft_descriptor_kind(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)) return 1;
    if (S_ISSOCK(st.st_mode)) {
        // TCP's byte stream only: a raw socket can name IPPROTO_TCP too, and returns a packet a call.
        int protocol = 0, type = 0;
        socklen_t length = sizeof protocol, typeLength = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) == 0 && protocol == IPPROTO_TCP
            && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLength) == 0 && type == SOCK_STREAM)
            return 2;
    }
    return 0;
}
int weft_signalfd(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    int blocked = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (blocked != 0) return -blocked;
    RETRY(int, signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK))
}
int weft_unblock_signals(const int *signals, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signals[i]);
    return -pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
uint64_t weft_clock_ns(int clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int weft_thread_start(void *(*entry)(void *), void *arg) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&thread, &attr, entry, arg);
    pthread_attr_destroy(&attr);
    return -r;
}
// liburing 2.3 declares io_uring_enable_rings but its shared library does not export it.
int weft_uring_enable(struct io_uring *ring) {
    int r = (int)syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return r < 0 ? -errno : r;
}

int weft_buf_ring_register(struct io_uring *ring, void *entries, unsigned count, unsigned short group) {
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)entries;
    reg.ring_entries = count;
    reg.bgid = group;
    return io_uring_register_buf_ring(ring, &reg, 0);
}
int weft_buf_ring_unregister(struct io_uring *ring, unsigned short group) {
    return io_uring_unregister_buf_ring(ring, group);
}
void weft_buf_ring_init(void *entries) { io_uring_buf_ring_init((struct io_uring_buf_ring *)entries); }
// Publishes one buffer at the ring's tail (a release store the kernel pairs with its acquire).
void weft_buf_ring_add(void *entries, unsigned count, void *address, unsigned length, unsigned short id) {
    struct io_uring_buf_ring *br = (struct io_uring_buf_ring *)entries;
    io_uring_buf_ring_add(br, address, length, id, io_uring_buf_ring_mask(count), 0);
    io_uring_buf_ring_advance(br, 1);
}

void weft_prep_link_deadline(struct io_uring_sqe *op_sqe, struct io_uring_sqe *sqe, struct __kernel_timespec *ts,
                             uint64_t tag) {
    op_sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_link_timeout(sqe, ts, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, tag);
}

void weft_sqe_fixed_file(struct io_uring_sqe *sqe) { sqe->flags |= IOSQE_FIXED_FILE; }
int weft_files_register_sparse(struct io_uring *ring, unsigned count) {
    return io_uring_register_files_sparse(ring, count);
}
// Returns the number of slots updated (1) or -errno.
int weft_files_update(struct io_uring *ring, unsigned slot, int fd) {
    return io_uring_register_files_update(ring, slot, &fd, 1);
}
int weft_descriptor_valid(int fd) { return fcntl(fd, F_GETFD) < 0 ? -errno : 0; }
void weft_sqe_direct_target(struct io_uring_sqe *sqe, int slot) {
    sqe->accept_flags = 0;  // a file-table target takes no close-on-exec flag
    __io_uring_set_target_fixed_file(sqe, slot < 0 ? IORING_FILE_INDEX_ALLOC - 1 : (unsigned)slot);
}

void weft_sqe_fixed_buffer(struct io_uring_sqe *sqe, unsigned index) {
    sqe->opcode = sqe->opcode == IORING_OP_READ ? IORING_OP_READ_FIXED : IORING_OP_WRITE_FIXED;
    sqe->buf_index = (__u16)index;
}
int weft_buffers_register(struct io_uring *ring, const struct iovec *buffers, unsigned count) {
    return io_uring_register_buffers(ring, buffers, count);
}
int weft_buffers_unregister(struct io_uring *ring) { return io_uring_unregister_buffers(ring); }

int weft_uring_probe_features(void) {
    struct io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) < 0) return 0;
    int features = 0;
    void *entries = NULL;
    if (posix_memalign(&entries, 4096, 4096) == 0) {
        memset(entries, 0, 4096);
        struct utsname name;
        int major = 0;
        if (uname(&name) == 0) sscanf(name.release, "%d", &major);
        if (weft_buf_ring_register(&ring, entries, 1, 0) == 0) {
            io_uring_unregister_buf_ring(&ring, 0);
            if (major >= 6) features |= 1;
        }
    }
    if (io_uring_register_files_sparse(&ring, 1) == 0) {
        io_uring_unregister_files(&ring);
        features |= 2;
    }
    io_uring_queue_exit(&ring);
    free(entries);
    return features;
}
