internal import CWeftLoop
internal import Glibc

/// The epoll backend: readiness turned into completions. Each call is tried first; only EAGAIN makes
/// an operation wait, queued on its descriptor in submission order until epoll reports readiness.
///
/// Registration is persistent and edge-triggered: a descriptor is added once (the first time an
/// operation has to wait on it), for both directions, and stays registered until it is closed through
/// the loop or ``Loop/forget(_:)``. Compared with one-shot registration this costs no `epoll_ctl` per
/// wait, which is what a busy connection does all the time; edge triggering is sound here because an
/// operation only waits after its own call returned EAGAIN, so an edge is always still to come.
/// Regular files never report EAGAIN and would block, so their operations run on the thread pool.
///
/// Readiness is also remembered, as Tokio does: when a receive on a TCP socket returns fewer bytes
/// than it asked for, the socket's receive queue was empty at that moment, so the next receive waits
/// for the edge that new bytes (or the end of stream) bring, without first trying a call that can
/// only fail with EAGAIN. That is one system call less per message for a request-response
/// connection. Any edge clears the mark, and an edge that has not been collected yet is still
/// reported (``EPOLL_CTL_ADD`` reports what is already there), so nothing can be missed. The
/// inference holds only for TCP's byte stream, so other sockets and pipes always try first: a
/// datagram is read one per call, and a Unix stream read stops where passed descriptors or
/// credentials begin. On TCP, a read stops short at the urgent mark, so a socket that reported
/// urgent data (`EPOLLPRI`), hang-up or an error always tries first from then on. A receive that
/// peeks or reads urgent data never sets the mark.
final class EpollBackend: LoopBackend {
    let kind = LoopBackendKind.epoll
    private let epoll: Int32
    private let remote: LoopRemote
    /// Per descriptor: its queued operations and registration. Only the loop's thread touches it,
    /// in short accesses that never span a callback, so the dynamic exclusivity checks (a runtime
    /// call on every submit, attempt and readiness) are off.
    @exclusivity(unchecked) private var entries: [Entry] = []
    /// Descriptors with a newly submitted multishot operation: their readers are tried at the next
    /// wait (an edge may already have passed; callbacks never run inside submit).
    @exclusivity(unchecked) private var kicks: [Int32] = []
    /// The operation ``attemptNow(_:)`` last tried and found `EAGAIN`: if it is submitted before the
    /// next wait, it goes straight to its descriptor's queue without a second, certain-to-fail try
    /// (no edge can have been consumed in between, so the one to come still wakes it).
    @exclusivity(unchecked) private var justTried: UnsafeMutablePointer<LoopOperation>? = nil
    @exclusivity(unchecked) private var justTriedDescriptor: Int32 = -1
    private let events: UnsafeMutablePointer<epoll_event>
    private let eventCapacity: Int32 = 256
    private static let wakeData = UInt64.max
    private static let started: UInt32 = 1 << 31
    /// Linux's MAX_RW_COUNT: the most one read or write call moves.
    private static let maxTransfer = 0x7fff_f000
    /// What ``attempt(_:)`` returns for a connect the kernel would not start for now: `EAGAIN` from
    /// a Unix socket whose listener's backlog is full, which, unlike `EINPROGRESS`, starts nothing to
    /// wait for (the unconnected socket reads as writable at once, and would pass for connected).
    /// It is reported as the result, `EAGAIN`, as a non-blocking `connect(2)` reports it.
    private static let connectNotStarted: Int32 = -(1 << 20)

    /// The result to report for what ``attempt(_:)`` returned (anything but `-EAGAIN`).
    private static func reported(_ r: Int32) -> Int32 { r == connectNotStarted ? -EAGAIN : r }
    private static let maxDescriptor: Int32 = 1 << 22

    /// Receives that waited for the next edge without trying first, because their TCP socket was
    /// known to be drained (tests read it through ``Loop/receivesAwaitingEdge``).
    private(set) var receivesAwaitingEdge = 0

    private struct Entry {
        var readers = OperationList()
        var writers = OperationList()
        var pollers = OperationList()
        var registered = false
        /// 0: not yet looked at, 1: pollable (made non-blocking), 2: regular file (thread pool),
        /// 3: a TCP socket (pollable; a short receive proves its queue empty).
        var nature: UInt8 = 0
        /// The last receive on this TCP socket came back short and no edge has come since: a receive
        /// now would find nothing.
        var drained = false
        /// The socket reported hang-up, an error or urgent data: short receives prove nothing more.
        var irregular = false
    }

    private static let pollable: UInt8 = 1
    private static let regularFile: UInt8 = 2
    private static let tcp: UInt8 = 3

    init(remote: LoopRemote) throws(LoopError) {
        self.remote = remote
        let fd = weft_epoll_create()
        if fd < 0 { throw LoopError(.init(rawValue: -fd), operation: "epoll_create") }
        epoll = fd
        let r = weft_epoll_ctl(fd, EPOLL_CTL_ADD, remote.eventDescriptor, EPOLLIN.rawValue, Self.wakeData)
        if r < 0 {
            _ = weft_close(fd)
            throw LoopError(.init(rawValue: -r), operation: "epoll_ctl")
        }
        events = .allocate(capacity: Int(eventCapacity))
        entries.reserveCapacity(256)
        kicks.reserveCapacity(64)
    }

    deinit { events.deallocate() }

    var pollDescriptor: Int32 { epoll }

    /// epoll waits on one clock, so every timer is the loop's (absolute deadlines on other clocks are
    /// converted when submitted; a later jump of the wall clock is not followed).
    func keepsTimerInLoop(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool { true }

    func submit(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        let o = op.pointee
        switch o.kind {
        case .nop:
            loop.completeLater(op, result: 0)
        case .socket, .shutdown, .bind, .listen:
            loop.completeLater(op, result: LoopSystem.perform(op, nonblockingSockets: true))
        case .close:
            forget(o.fd, loop: loop)
            loop.completeLater(op, result: LoopSystem.perform(op, nonblockingSockets: true))
        case .read, .write, .readv, .writev:
            if o.offset >= 0 {
                loop.runOnPool(op)
                return
            }
            waitable(op, writes: o.kind == .write || o.kind == .writev, loop: loop)
        case .recv, .recvmsg, .accept:
            waitable(op, writes: false, loop: loop)
        case .send, .sendmsg:
            waitable(op, writes: true, loop: loop)
        case .acceptMultishot, .recvMultishot:
            armMultishot(op, loop: loop)
        case .connect:
            op.pointee.flags = 0
            waitable(op, writes: true, loop: loop)
        case .poll, .processWait:
            if o.kind == .processWait { op.pointee.flags = UInt32(POLLIN) }
            waitForPoll(op, loop: loop)
        default:
            loop.runOnPool(op)
        }
    }

    /// Looks a descriptor up, classifying it the first time: regular files go to the pool, anything
    /// else is made non-blocking so a try never blocks the loop. Returns the nature (``pollable``,
    /// ``regularFile`` or ``tcp``) or -errno for a bad descriptor.
    private func classify(_ fd: Int32) -> Int32 {
        if fd < 0 || fd >= Self.maxDescriptor { return -EBADF }
        if Int(fd) >= entries.count {
            entries.append(contentsOf: repeatElement(Entry(), count: Int(fd) + 64 - entries.count))
        }
        if entries[Int(fd)].nature != 0 { return Int32(entries[Int(fd)].nature) }
        let kind = weft_descriptor_kind(fd)
        if kind < 0 { return kind }
        if kind == 1 {
            entries[Int(fd)].nature = Self.regularFile
        } else {
            let r = weft_set_nonblocking(fd)
            if r < 0 { return r }
            entries[Int(fd)].nature = kind == 2 ? Self.tcp : Self.pollable
        }
        return Int32(entries[Int(fd)].nature)
    }

    private func register(_ fd: Int32) -> Int32 {
        if entries[Int(fd)].registered { return 0 }
        // Every condition a `poll` operation can ask for (the normal and band bits too), so that
        // the edges report it.
        let interest = EPOLLIN.rawValue | EPOLLPRI.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue
            | EPOLLRDNORM.rawValue | EPOLLRDBAND.rawValue | EPOLLWRNORM.rawValue | EPOLLWRBAND.rawValue
            | EPOLLET.rawValue
        var r = weft_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, interest, UInt64(fd))
        if r == -EEXIST { r = weft_epoll_ctl(epoll, EPOLL_CTL_MOD, fd, interest, UInt64(fd)) }
        if r == 0 { entries[Int(fd)].registered = true }
        return r
    }

    private func attempt(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        let kind = op.pointee.kind
        if kind == .connect {
            if op.pointee.flags & Self.started != 0 { return weft_socket_error(op.pointee.fd) }
            let r = weft_connect(op.pointee.fd, op.pointee.address, op.pointee.addressLength)
            if r == -EAGAIN { return Self.connectNotStarted }
            op.pointee.flags |= Self.started
            return r == -EINPROGRESS ? -EAGAIN : r
        }
        let r = LoopSystem.perform(op, nonblockingSockets: true)
        // (One call moves at most MAX_RW_COUNT bytes, so a longer request is short without that.)
        if r > 0 && Int(r) < op.pointee.length && op.pointee.length <= Self.maxTransfer && (kind == .recv || kind == .read)
            && op.pointee.flags & UInt32(MSG_PEEK | MSG_OOB) == 0
        {
            let index = Int(op.pointee.fd)
            if entries[index].nature == Self.tcp && !entries[index].irregular { entries[index].drained = true }
        }
        return r
    }

    func attemptNow(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32? {
        let writes: Bool
        switch op.pointee.kind {
        case .recv, .recvmsg, .accept: writes = false
        case .send, .sendmsg: writes = true
        case .read, .readv, .write, .writev:
            if op.pointee.offset >= 0 { return nil }
            writes = op.pointee.kind == .write || op.pointee.kind == .writev
        default: return nil
        }
        let fd = op.pointee.fd
        let nature = classify(fd)
        guard nature == Self.pollable || nature == Self.tcp else { return nil }
        let index = Int(fd)
        if writes ? !entries[index].writers.isEmpty : !entries[index].readers.isEmpty { return nil }
        // A drained socket is left to waitable(_:writes:loop:), which queues the receive untried.
        if !writes && entries[index].drained { return nil }
        let r = attempt(op)
        if r == -EAGAIN {
            justTried = op
            justTriedDescriptor = fd
            return nil
        }
        return r
    }

    private func waitable(_ op: UnsafeMutablePointer<LoopOperation>, writes: Bool, loop: Loop) {
        let fd = op.pointee.fd
        let nature = classify(fd)
        if nature < 0 {
            loop.completeLater(op, result: nature)
            return
        }
        if nature == Self.regularFile {
            loop.runOnPool(op)
            return
        }
        let index = Int(fd)
        // Operations queued before this one go first: bytes must not overtake each other.
        let queued = writes ? !entries[index].writers.isEmpty : !entries[index].readers.isEmpty
        let tried = justTried == op && justTriedDescriptor == fd
        justTried = nil
        let drained = !writes && entries[index].drained
        if drained && !queued { receivesAwaitingEdge &+= 1 }
        if !queued && !tried && !drained {
            let r = attempt(op)
            if r != -EAGAIN {
                loop.completeLater(op, result: Self.reported(r))
                return
            }
        }
        enqueue(op, on: fd, place: writes ? OperationPlace.writers : OperationPlace.readers, loop: loop)
    }

    /// Registers the descriptor (once) and queues the operation on its list for `place` (readers,
    /// writers or pollers) until readiness; a registration failure completes the operation instead.
    /// Returns whether it was queued.
    @discardableResult
    private func enqueue(
        _ op: UnsafeMutablePointer<LoopOperation>, on fd: Int32, place: UInt8, loop: Loop
    ) -> Bool {
        let registered = register(fd)
        if registered < 0 {
            loop.completeLater(op, result: registered)
            return false
        }
        op.pointee.place = place
        switch place {
        case OperationPlace.writers: entries[Int(fd)].writers.append(op)
        case OperationPlace.pollers: entries[Int(fd)].pollers.append(op)
        default: entries[Int(fd)].readers.append(op)
        }
        return true
    }

    /// Queues a multishot operation among its descriptor's readers and has the descriptor tried at
    /// the next wait; from then on each readiness edge drains it (``drainMultishot(_:index:loop:)``).
    private func armMultishot(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        let fd = op.pointee.fd
        let nature = classify(fd)
        if nature < 0 || nature == Self.regularFile {
            let notSocket = op.pointee.kind == .acceptMultishot ? -ENOTSOCK : -EINVAL
            loop.completeLater(op, result: nature < 0 ? nature : notSocket)
            return
        }
        if enqueue(op, on: fd, place: OperationPlace.readers, loop: loop) { kicks.append(fd) }
    }

    /// One try of a multishot operation: an accepted descriptor, bytes received into a buffer of the
    /// ring (its index left in the operation), -EAGAIN when there is nothing now, or what ends it.
    private func attemptMultishot(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        op.pointee.bufferID = -1
        let fd = op.pointee.fd
        if op.pointee.kind == .acceptMultishot {
            return weft_accept(fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue))
        }
        guard let ring = Loop.acceptedRing(of: op) else { return -EBADF }
        guard let index = ring.take() else {
            // Every buffer is held: as on io_uring, the receive ends with ENOBUFS once anything is
            // there to receive (bytes, the end of stream or an error; all of it stays in the socket
            // for the next submission), and waits until then. Polling reads nothing: a pending
            // error is not consumed, and end of stream is reported only with a buffer to spare.
            let events = weft_poll1(fd, POLLIN)
            if events < 0 { return events }
            if events & POLLNVAL != 0 { return -EBADF }
            return events != 0 ? -ENOBUFS : -EAGAIN
        }
        let r = Int32(
            clamping: weft_recv(fd, ring.buffer(Int(index)), UInt(ring.size), Int32(bitPattern: op.pointee.flags)))
        if r > 0 {
            op.pointee.bufferID = index
        } else {
            ring.putBack(index)
        }
        return r
    }

    /// Delivers every result a ready descriptor has for a multishot operation at the head of its
    /// readers. Returns true when the operation left the queue (ended or cancelled by a callback), so
    /// the next reader may go; false when it is waiting for the next edge.
    private func drainMultishot(_ op: UnsafeMutablePointer<LoopOperation>, index: Int, loop: Loop) -> Bool {
        while true {
            let r = attemptMultishot(op)
            if r == -EAGAIN { return false }
            let final = op.pointee.kind == .acceptMultishot ? r < 0 : r <= 0
            if final || op.pointee.cancelRequested {
                entries[index].readers.remove(op)
                loop.completeLater(op, result: r)
                return true
            }
            loop.completeMore(op, result: r)
            // The callback may have cancelled the operation or forgotten the descriptor.
            if op.pointee.place != OperationPlace.readers || index >= entries.count
                || entries[index].readers.head != op
            {
                return true
            }
        }
    }

    private func waitForPoll(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        let fd = op.pointee.fd
        if fd < 0 || fd >= Self.maxDescriptor {
            loop.completeLater(op, result: -EBADF)
            return
        }
        if Int(fd) >= entries.count {
            entries.append(contentsOf: repeatElement(Entry(), count: Int(fd) + 64 - entries.count))
        }
        let wanted = Int32(op.pointee.flags) | POLLERR | POLLHUP | POLLNVAL
        let now = weft_poll1(fd, Int32(op.pointee.flags))
        if now < 0 || now & wanted != 0 {
            loop.completeLater(op, result: now & POLLNVAL != 0 ? -EBADF : now)
            return
        }
        enqueue(op, on: fd, place: OperationPlace.pollers, loop: loop)
    }

    func cancel(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        let fd = Int(op.pointee.fd)
        switch op.pointee.place {
        case OperationPlace.readers: entries[fd].readers.remove(op)
        case OperationPlace.writers: entries[fd].writers.remove(op)
        case OperationPlace.pollers: entries[fd].pollers.remove(op)
        default: return
        }
        loop.completeLater(op, result: -ECANCELED)
    }

    func forget(_ descriptor: Int32, loop: Loop) {
        guard descriptor >= 0, Int(descriptor) < entries.count else { return }
        let index = Int(descriptor)
        while let op = entries[index].readers.popFirst() { loop.completeLater(op, result: -ECANCELED) }
        while let op = entries[index].writers.popFirst() { loop.completeLater(op, result: -ECANCELED) }
        while let op = entries[index].pollers.popFirst() { loop.completeLater(op, result: -ECANCELED) }
        if entries[index].registered {
            _ = weft_epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, 0, 0)
        }
        entries[index] = Entry()
    }

    func cancelAll(loop: Loop) {
        for fd in entries.indices where entries[fd].registered {
            forget(Int32(fd), loop: loop)
        }
    }

    func wait(loop: Loop, timeoutNanoseconds: Int64?) throws(LoopError) -> Bool {
        justTried = nil
        var timeout = kicks.isEmpty ? timeoutNanoseconds ?? -1 : 0
        // A signal ends the wait early (EINTR); it goes on for what is left of the timeout, so that
        // signals arriving more often than the timeout cannot hold off the loop's timers.
        let deadline = timeout > 0 ? LoopSystem.now(.monotonic) &+ UInt64(timeout) : 0
        while true {
            let n = weft_epoll_wait(epoll, events, eventCapacity, timeout)
            if n == -EINTR {
                if timeout > 0 { timeout = LoopSystem.nanoseconds(until: deadline) }
                continue
            }
            if n < 0 { throw LoopError(.init(rawValue: -n), operation: "epoll_wait") }
            for i in 0..<Int(n) {
                let event = events[i]
                if event.data.u64 == Self.wakeData {
                    _ = weft_eventfd_drain(remote.eventDescriptor)
                    remote.acknowledgeWake()
                    continue
                }
                ready(Int32(truncatingIfNeeded: event.data.u64), events: event.events, loop: loop)
            }
            let kicked = !kicks.isEmpty
            while let fd = kicks.popLast() { ready(fd, events: EPOLLIN.rawValue, loop: loop) }
            return n > 0 || kicked
        }
    }

    private func ready(_ fd: Int32, events mask: UInt32, loop: Loop) {
        let index = Int(fd)
        guard index < entries.count else { return }
        let failure = EPOLLERR.rawValue | EPOLLHUP.rawValue
        let irregular = EPOLLRDHUP.rawValue | EPOLLPRI.rawValue | failure
        if mask & (EPOLLIN.rawValue | irregular) != 0 {
            entries[index].drained = false
            if mask & irregular != 0 { entries[index].irregular = true }
            while let op = entries[index].readers.head {
                if op.pointee.isMultishot {
                    if drainMultishot(op, index: index, loop: loop) { continue }
                    break
                }
                // A receive ahead of this one came back short: the queue is empty again.
                if entries[index].drained { break }
                let r = attempt(op)
                if r == -EAGAIN { break }
                entries[index].readers.remove(op)
                loop.completeLater(op, result: r)
            }
        }
        if mask & (EPOLLOUT.rawValue | failure) != 0 {
            while let op = entries[index].writers.head {
                let r = attempt(op)
                if r == -EAGAIN { break }
                entries[index].writers.remove(op)
                loop.completeLater(op, result: Self.reported(r))
            }
        }
        var op = entries[index].pollers.head
        while let current = op {
            op = current.pointee.next
            let wanted = UInt32(current.pointee.flags) | UInt32(POLLERR | POLLHUP | POLLNVAL)
            let revents = mask & wanted
            if revents != 0 {
                entries[index].pollers.remove(current)
                loop.completeLater(current, result: Int32(revents))
            }
        }
    }

    func shutdown() {
        _ = weft_close(epoll)
    }
}

extension Loop {
    /// Makes the epoll backend wait with `epoll_wait` and millisecond timeouts, as it does by itself
    /// where `epoll_pwait2` is missing (Linux before 5.11, or a seccomp filter that refuses it);
    /// false goes back to trying `epoll_pwait2`. Process-wide; for tests.
    package static func simulateMissingEpollPwait2(_ missing: Bool) {
        weft_epoll_wait_in_milliseconds(missing ? 1 : 0)
    }

    /// How many receives the epoll backend queued without trying first, because a short receive had
    /// shown their TCP socket drained; nil on other backends.
    package var receivesAwaitingEdge: Int? { (backend as? EpollBackend)?.receivesAwaitingEdge }
}
