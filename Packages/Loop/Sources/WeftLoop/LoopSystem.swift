internal import CWeftLoop

/// The synchronous form of every operation, shared by the epoll backend (which tries the call first
/// and waits for readiness on EAGAIN) and the thread pool (which runs calls that would block).
/// Each C wrapper returns the result or -errno, so errno is read inside C right after the call.
package enum LoopSystem {
    /// Nanoseconds from now until a deadline on the monotonic clock, 0 once it has passed.
    static func nanoseconds(until deadline: UInt64) -> Int64 {
        let now = now(.monotonic)
        return deadline > now ? Int64(clamping: deadline - now) : 0
    }

    static func now(_ clock: LoopClock) -> UInt64 {
        switch clock {
        case .monotonic: weft_clock_ns(CLOCK_MONOTONIC)
        case .realtime: weft_clock_ns(CLOCK_REALTIME)
        case .boottime: weft_clock_ns(CLOCK_BOOTTIME)
        }
    }

    static func clamp(_ value: Int) -> Int32 { Int32(clamping: value) }

    /// Performs the operation once and returns its result or -errno. `nonblockingSockets` adds
    /// SOCK_NONBLOCK where the call creates a socket (the epoll backend needs it).
    static func perform(_ op: UnsafeMutablePointer<LoopOperation>, nonblockingSockets: Bool) -> Int32 {
        let o = op.pointee
        switch o.kind {
        case .nop: return 0
        case .recv: return clamp(weft_recv(o.fd, o.buffer, UInt(o.length), Int32(bitPattern: o.flags)))
        case .send: return clamp(weft_send(o.fd, o.buffer, UInt(o.length), Int32(bitPattern: o.flags)))
        case .recvmsg:
            return clamp(
                weft_recvmsg(o.fd, o.buffer?.assumingMemoryBound(to: msghdr.self), Int32(bitPattern: o.flags)))
        case .sendmsg:
            return clamp(
                weft_sendmsg(o.fd, o.buffer?.assumingMemoryBound(to: msghdr.self), Int32(bitPattern: o.flags)))
        case .read: return clamp(weft_read(o.fd, o.buffer, UInt(o.length), o.offset))
        case .write: return clamp(weft_write(o.fd, o.buffer, UInt(o.length), o.offset))
        case .readv:
            return clamp(weft_readv(o.fd, o.buffer?.assumingMemoryBound(to: iovec.self), Int32(o.length), o.offset))
        case .writev:
            return clamp(weft_writev(o.fd, o.buffer?.assumingMemoryBound(to: iovec.self), Int32(o.length), o.offset))
        case .accept:
            let flags = Int32(SOCK_CLOEXEC.rawValue) | (nonblockingSockets ? Int32(SOCK_NONBLOCK.rawValue) : 0)
            if o.address == nil { return weft_accept(o.fd, nil, nil, flags) }
            return weft_accept(o.fd, o.address, addressLengthPointer(op), flags)
        case .socket:
            let type = Int32(bitPattern: o.flags) | Int32(SOCK_CLOEXEC.rawValue) | (nonblockingSockets ? Int32(SOCK_NONBLOCK.rawValue) : 0)
            return weft_socket(o.fd, type, Int32(bitPattern: o.mode))
        case .bind: return weft_bind(o.fd, o.address, o.addressLength)
        case .listen: return weft_listen(o.fd, Int32(bitPattern: o.flags))
        case .shutdown: return weft_shutdown(o.fd, Int32(bitPattern: o.flags))
        case .close: return weft_close(o.fd)
        case .openat:
            return weft_openat(
                o.fd, o.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: o.flags), o.mode)
        case .openat2:
            return weft_openat2(
                o.fd, o.address?.assumingMemoryBound(to: CChar.self), o.address2,
                UInt(MemoryLayout<OpenHow>.size))
        case .statx:
            return weft_statx(
                o.fd, o.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: o.flags), o.mode, o.buffer)
        case .fsync: return weft_fsync(o.fd, Int32(o.flags))
        case .fallocate: return weft_fallocate(o.fd, Int32(bitPattern: o.mode), o.offset, o.offset2)
        case .ftruncate: return weft_ftruncate(o.fd, o.offset)
        case .rename:
            return weft_renameat(
                o.fd, o.address?.assumingMemoryBound(to: CChar.self), o.fd2,
                o.address2?.assumingMemoryBound(to: CChar.self), o.flags)
        case .unlink:
            return weft_unlinkat(o.fd, o.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: o.flags))
        case .mkdir: return weft_mkdirat(o.fd, o.address?.assumingMemoryBound(to: CChar.self), o.mode)
        case .link:
            return weft_linkat(
                o.fd, o.address?.assumingMemoryBound(to: CChar.self), o.fd2,
                o.address2?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: o.flags))
        case .symlink:
            return weft_symlinkat(
                o.address?.assumingMemoryBound(to: CChar.self), o.fd, o.address2?.assumingMemoryBound(to: CChar.self))
        case .splice:
            return clamp(weft_splice(o.fd, o.offset, o.fd2, o.offset2, UInt(o.length), o.flags))
        case .sendfile: return clamp(weft_sendfile(o.fd, o.fd2, o.offset, UInt(o.length)))
        case .poll:
            return weft_poll1(o.fd, Int32(o.flags))
        case .work:
            guard let work = o.work else { return -EINVAL }
            return work(o.buffer)
        default:
            return -EINVAL
        }
    }

    /// The address of the operation's socklen_t, which accept updates in place.
    static func addressLengthPointer(_ op: UnsafeMutablePointer<LoopOperation>) -> UnsafeMutablePointer<UInt32> {
        let offset = MemoryLayout<LoopOperation>.offset(of: \LoopOperation.addressLength)!
        return (UnsafeMutableRawPointer(op) + offset).assumingMemoryBound(to: UInt32.self)
    }

    /// The address of the operation's timespec, which io_uring reads after submission.
    static func timePointer(_ op: UnsafeMutablePointer<LoopOperation>) -> UnsafeMutablePointer<__kernel_timespec> {
        let offset = MemoryLayout<LoopOperation>.offset(of: \LoopOperation.time)!
        return (UnsafeMutableRawPointer(op) + offset).assumingMemoryBound(to: __kernel_timespec.self)
    }

    /// Reaps a child whose pidfd became readable, recording how it ended in the operation.
    @inline(never)  // out of Loop.complete's way: its locals would give every completion a stack check
    static func reapProcess(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        var code: Int32 = 0
        var status: Int32 = 0
        let r = weft_pidfd_wait(op.pointee.fd, &code, &status)
        if r < 0 { return r }
        op.pointee.mode = UInt32(bitPattern: code)
        op.pointee.fd2 = status
        return 0
    }
}
