internal import CWeftLoop
internal import Glibc

/// The io_uring backend: one ring per loop, operations prepared straight into submission entries
/// (liburing's inline helpers), submitted in batches when the loop waits, completions matched back
/// to operations through `user_data`, which is the operation's address.
final class UringBackend: LoopBackend {
    let kind = LoopBackendKind.ioUring
    private let ring: UnsafeMutablePointer<io_uring>
    /// The setup flags the kernel accepted (the first set that worked, most capable first).
    let setupFlags: UInt32
    @exclusivity(unchecked) private var enabled: Bool
    private let remote: LoopRemote
    /// Operations that found the submission queue full even after a flush; they go in first at the
    /// next wait, in order, so a burst larger than the ring is never dropped.
    @exclusivity(unchecked) private var backlogHead: UnsafeMutablePointer<LoopOperation>? = nil
    @exclusivity(unchecked) private var backlogTail: UnsafeMutablePointer<LoopOperation>? = nil
    @exclusivity(unchecked) private var pendingCancels: [UnsafeMutablePointer<LoopOperation>] = []
    /// The ring and what stops ``Loop``'s submission fast path, where that path reads them (see
    /// ``SubmissionState``).
    let submission: UnsafeMutablePointer<SubmissionState>
    /// Set when an operation or a cancel request goes to the backlog or ``pendingCancels``;
    /// cleared when ``flushBacklog()`` has emptied both (one test on the completion path, and the
    /// loop's fast path submits nothing past it).
    private var backlogged: Bool {
        @inline(__always) get { submission.pointee.stops & SubmissionState.backlogged != 0 }
        @inline(__always) set {
            if newValue {
                submission.pointee.stops |= SubmissionState.backlogged
            } else {
                submission.pointee.stops &= ~SubmissionState.backlogged
            }
        }
    }
    @exclusivity(unchecked) private var wakeArmed = false
    /// Diagnostics for hangs: cancel requests prepared, and their completions by result
    /// (found, not found, already running, other).
    @exclusivity(unchecked) private var cancelsPrepared = 0
    @exclusivity(unchecked) private var cancelOutcomes = (0, 0, 0, 0)
    /// Cancel requests sent again because the first found nothing while the operation was pending.
    @exclusivity(unchecked) private var cancelMissed = 0
    @exclusivity(unchecked) private var closing = false

    /// `user_data` of entries whose completions carry nothing to deliver (cancel requests).
    private static let ignoredTag: UInt64 = 0
    /// `user_data` of the multishot poll on the wake eventfd.
    private static let wakeTag: UInt64 = 1
    /// `user_data` of linked timeouts (operation deadlines), whose own completions carry nothing:
    /// the operation's completion tells whether the deadline cancelled it.
    private static let deadlineTag: UInt64 = 4
    /// Marks an operation parked in a readiness poll after its call reported EAGAIN (a descriptor
    /// opened O_NONBLOCK makes io_uring return EAGAIN instead of waiting); it is resubmitted when ready.
    private static let awaitingReadiness: UInt8 = 20

    init(options: Loop.Options, remote: LoopRemote) throws(LoopError) {
        self.remote = remote
        ring = .allocate(capacity: 1)
        if let simulated = options.simulatedRingFailure {
            ring.deallocate()
            throw LoopError(simulated, operation: "io_uring_setup")
        }
        // None of them asks for SQPOLL, SQE128 or CQE32, which the shim's entry getters assume.
        let candidates: [UInt32] = [
            UInt32(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG
                | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED),
            UInt32(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL),
            0,
        ]
        var lastError: Int32 = -ENOSYS
        var accepted: UInt32? = nil
        for flags in candidates {
            var params = io_uring_params()
            params.flags = flags
            let r = io_uring_queue_init_params(UInt32(max(2, min(options.entries, 32768))), ring, &params)
            if r == 0 {
                accepted = flags
                break
            }
            lastError = r
            // Only an unknown flag is worth retrying with fewer; anything else fails the same way.
            if r != -EINVAL { break }
        }
        guard let flags = accepted else {
            ring.deallocate()
            throw LoopError(.init(rawValue: -lastError), operation: "io_uring_setup")
        }
        setupFlags = flags
        submission = .allocate(capacity: 1)
        submission.initialize(to: SubmissionState(ring: ring, stops: 0))
        enabled = flags & UInt32(IORING_SETUP_R_DISABLED) == 0
        pendingCancels.reserveCapacity(16)
        if enabled { armWake() }
    }

    deinit {
        ring.deallocate()
        submission.deallocate()
    }

    /// What ``Loop/submit(_:callback:context:)`` needs to put a plain operation straight into the
    /// ring without calling the backend: a call through the backend cost a function frame per
    /// operation (its preparation switch is too large for the compiler to inline the call). The
    /// loop has one on every backend, so that its fast path tests one byte, ``stops``.
    struct SubmissionState {
        /// The ring; nil on the other backends (``noRing`` is set then).
        let ring: UnsafeMutablePointer<io_uring>?
        /// Why the loop may not prepare entries itself, one bit per reason; 0 when it may.
        var stops: UInt8

        /// Operations or cancel requests wait in the backlog: nothing may overtake them.
        static let backlogged: UInt8 = 1
        /// The loop is closing (or closed): submissions are refused.
        static let closing: UInt8 = 2
        /// The backend is not io_uring.
        static let noRing: UInt8 = 4
    }

    /// The kinds that, without extras, take exactly one submission entry prepared by
    /// ``prepareEntry(_:_:)``, one bit per raw value: every kind the ring runs but the timer (the
    /// loop keeps most timers itself) and those run outside the ring (``runsOutsideRing(_:)``).
    /// `testEntryKindsAreTheKindsTheRingRunsAlone` checks it against both.
    static let entryKinds: UInt64 = 0xC_5FBF_FFFA

    /// Whether an operation of this kind, without extras, takes one entry the loop may prepare
    /// itself (``entryKinds``).
    @inline(__always)
    static func takesEntryAlone(_ kind: LoopOperation.Kind) -> Bool {
        // (Shifted modulo 64: a raw value past 63 names no kind, and ``prepareEntry(_:_:)`` answers
        // such an operation with EINVAL wherever it is prepared.)
        entryKinds & (1 &<< UInt64(kind.rawValue)) != 0
    }

    /// The kinds that never go to the ring: the pool runs them, or they are done at once.
    static func runsOutsideRing(_ kind: LoopOperation.Kind) -> Bool {
        switch kind {
        case .ftruncate, .sendfile, .work, .bind, .listen: true
        default: false
        }
    }

    var pollDescriptor: Int32 { ring.pointee.ring_fd }

    /// The kernel tries the call when the entry is submitted; trying it here as well would let a
    /// later call overtake one still in the ring.
    func attemptNow(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32? { nil }

    /// Relative and monotonic timers are the loop's (a heap and one wait timeout cost far less than a
    /// kernel timeout entry each); absolute deadlines on the realtime and boottime clocks stay kernel
    /// timeouts, which follow changes to those clocks.
    func keepsTimerInLoop(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        let flags = op.pointee.flags
        return flags & LoopOperation.timerAbsolute == 0
            || flags & (LoopOperation.timerRealtime | LoopOperation.timerBoottime) == 0
    }

    /// Whether the ring runs completions only when this thread asks (DEFER_TASKRUN).
    var defersTaskRun: Bool { setupFlags & UInt32(IORING_SETUP_DEFER_TASKRUN) != 0 }

    /// A SINGLE_ISSUER ring starts disabled so the thread that first runs the loop (not the one that
    /// created it) becomes its issuer.
    private func enableIfNeeded() {
        if enabled { return }
        enabled = true
        _ = weft_uring_enable(ring)
        armWake()
    }

    @inline(__always)
    private func nextEntry() -> UnsafeMutablePointer<io_uring_sqe>? {
        if let sqe = weft_sqe_next(ring) { return sqe }
        return nextEntryAfterFlush()
    }

    @inline(never)
    private func nextEntryAfterFlush() -> UnsafeMutablePointer<io_uring_sqe>? {
        enableIfNeeded()
        // The queue is full: hand it to the kernel and try again. A failure here (EBUSY while the
        // completion queue overflows) leaves the caller to use the backlog.
        _ = io_uring_submit(ring)
        return weft_sqe_next(ring)
    }

    func submit(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        if Self.runsOutsideRing(op.pointee.kind) {
            submitOutsideRing(op, loop: loop)
        } else if backlogHead == nil, let sqe = entry(for: op) {
            prepare(sqe, op)
        } else {
            appendBacklog(op)
        }
    }

    /// The operations that never go to the ring.
    @inline(never)
    private func submitOutsideRing(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        if op.pointee.kind == .bind || op.pointee.kind == .listen {
            // liburing 2.3 has no helpers for these, and they never wait: done here, delivered later.
            loop.completeLater(op, result: LoopSystem.perform(op, nonblockingSockets: false))
        } else {
            loop.runOnPool(op)
        }
    }

    /// Operations that go to the kernel get their deadline as a linked timeout; the rest (run by the
    /// loop or the pool, and multishot ones, which end at their deadline) are the loop's to cancel.
    func enforcesDeadline(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        switch op.pointee.kind {
        case .timer, .acceptMultishot, .recvMultishot: false
        default: !Self.runsOutsideRing(op.pointee.kind)
        }
    }

    private func linksDeadline(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        op.pointee.extras & OperationExtras.deadline != 0 && enforcesDeadline(op)
    }

    /// A submission entry for the operation, with room for its linked timeout after it if it has a
    /// deadline (a link must not be split across two submissions), or nil when the queue is full.
    @inline(__always)
    private func entry(for op: UnsafeMutablePointer<LoopOperation>) -> UnsafeMutablePointer<io_uring_sqe>? {
        if op.pointee.extras == 0 || !linksDeadline(op) { return nextEntry() }
        return linkableEntry()
    }

    /// Two free submission entries (flushing the queue if needed), or nil.
    @inline(never)
    private func linkableEntry() -> UnsafeMutablePointer<io_uring_sqe>? {
        if io_uring_sq_space_left(ring) < 2 {
            enableIfNeeded()
            _ = io_uring_submit(ring)
            if io_uring_sq_space_left(ring) < 2 { return nil }
        }
        return weft_sqe_next(ring)
    }

    /// Marks an entry just prepared for a registered file, a registered buffer or a direct accept,
    /// and links the operation's deadline (``entry(for:)`` left room for it).
    @inline(never)
    private func prepareExtras(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ op: UnsafeMutablePointer<LoopOperation>) {
        if op.pointee.extras & OperationExtras.registeredFile != 0 { weft_sqe_fixed_file(sqe) }
        if op.pointee.extras & OperationExtras.directAccept != 0 {
            weft_sqe_direct_target(sqe, op.pointee.tableIndex)
        }
        if op.pointee.extras & OperationExtras.registeredBuffer != 0 {
            weft_sqe_fixed_buffer(sqe, UInt32(op.pointee.tableIndex))
        }
        guard linksDeadline(op), let timeout = weft_sqe_next(ring) else { return }
        weft_prep_link_deadline(sqe, timeout, LoopSystem.timePointer(op), Self.deadlineTag)
    }

    private func appendBacklog(_ op: UnsafeMutablePointer<LoopOperation>) {
        backlogged = true
        op.pointee.place = OperationPlace.backlog
        op.pointee.next = nil
        op.pointee.prev = backlogTail
        if let tail = backlogTail { tail.pointee.next = op } else { backlogHead = op }
        backlogTail = op
    }

    private func unlinkBacklog(_ op: UnsafeMutablePointer<LoopOperation>) {
        if let prev = op.pointee.prev { prev.pointee.next = op.pointee.next } else { backlogHead = op.pointee.next }
        if let next = op.pointee.next { next.pointee.prev = op.pointee.prev } else { backlogTail = op.pointee.prev }
        op.pointee.next = nil
        op.pointee.prev = nil
    }

    private func flushBacklog() {
        while let index = pendingCancels.indices.last {
            guard let sqe = nextEntry() else { return }
            prepareCancel(sqe, pendingCancels[index])
            pendingCancels.removeLast()
        }
        while let op = backlogHead {
            guard let sqe = entry(for: op) else { return }
            unlinkBacklog(op)
            prepare(sqe, op)
        }
        backlogged = false
    }

    private func prepare(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ op: UnsafeMutablePointer<LoopOperation>) {
        guard Self.prepareEntry(sqe, op) else { return }
        tracePrepared(op)
        if op.pointee.extras != 0 {
            // Not plain: its completion goes through `deliver` and `Loop.completeExtras`.
            op.pointee.place = OperationPlace.kernel
            prepareExtras(sqe, op)
        }
    }

    /// Records, in debug builds, an entry prepared here or by ``Loop`` itself.
    func tracePrepared(_ op: UnsafeMutablePointer<LoopOperation>) {
        trace(.prepare, op, Int32(op.pointee.kind.rawValue))
    }

    /// Fills an entry for the operation (not its extras), names the operation in it and places it
    /// ``OperationPlace/plainInKernel`` (a process wait in `kernel`; ``prepare(_:_:)`` places one
    /// with extras there too). An unknown kind gets a NOP that carries EINVAL back, and false.
    /// Inlined into its callers (the loop's submission fast path above all): a call per operation
    /// showed in the NOP benchmark's instruction count.
    @inline(__always) @discardableResult
    static func prepareEntry(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        // Fields are read in each case, not copied out first: a copy of the whole operation made
        // the compiler load a dozen fields before the switch, whatever the kind.
        switch op.pointee.kind {
        case .nop: io_uring_prep_nop(sqe)
        case .timer: io_uring_prep_timeout(sqe, LoopSystem.timePointer(op), 0, op.pointee.flags)
        case .recv: io_uring_prep_recv(sqe, op.pointee.fd, op.pointee.buffer, op.pointee.length, Int32(bitPattern: op.pointee.flags))
        case .send: io_uring_prep_send(sqe, op.pointee.fd, op.pointee.buffer, op.pointee.length, Int32(bitPattern: op.pointee.flags) | Int32(MSG_NOSIGNAL))
        case .recvmsg:
            io_uring_prep_recvmsg(
                sqe, op.pointee.fd, op.pointee.buffer?.assumingMemoryBound(to: msghdr.self), UInt32(op.pointee.flags))
        case .sendmsg:
            io_uring_prep_sendmsg(
                sqe, op.pointee.fd, op.pointee.buffer?.assumingMemoryBound(to: msghdr.self), op.pointee.flags | UInt32(MSG_NOSIGNAL))
        case .read: io_uring_prep_read(sqe, op.pointee.fd, op.pointee.buffer, UInt32(clamping: op.pointee.length), UInt64(bitPattern: op.pointee.offset))
        case .write: io_uring_prep_write(sqe, op.pointee.fd, op.pointee.buffer, UInt32(clamping: op.pointee.length), UInt64(bitPattern: op.pointee.offset))
        case .readv:
            io_uring_prep_readv(
                sqe, op.pointee.fd, op.pointee.buffer?.assumingMemoryBound(to: iovec.self), UInt32(clamping: op.pointee.length),
                UInt64(bitPattern: op.pointee.offset))
        case .writev:
            io_uring_prep_writev(
                sqe, op.pointee.fd, op.pointee.buffer?.assumingMemoryBound(to: iovec.self), UInt32(clamping: op.pointee.length),
                UInt64(bitPattern: op.pointee.offset))
        case .accept:
            if op.pointee.address == nil {
                io_uring_prep_accept(sqe, op.pointee.fd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            } else {
                io_uring_prep_accept(
                    sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: sockaddr.self), LoopSystem.addressLengthPointer(op),
                    Int32(SOCK_CLOEXEC.rawValue))
            }
        case .connect:
            io_uring_prep_connect(sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: sockaddr.self), op.pointee.addressLength)
        case .socket:
            io_uring_prep_socket(sqe, op.pointee.fd, Int32(bitPattern: op.pointee.flags) | Int32(SOCK_CLOEXEC.rawValue), Int32(bitPattern: op.pointee.mode), 0)
        case .shutdown: io_uring_prep_shutdown(sqe, op.pointee.fd, Int32(bitPattern: op.pointee.flags))
        case .close: io_uring_prep_close(sqe, op.pointee.fd)
        case .poll: io_uring_prep_poll_add(sqe, op.pointee.fd, op.pointee.flags)
        case .processWait:
            io_uring_prep_poll_add(sqe, op.pointee.fd, UInt32(POLLIN))
            // Not plain: its completion reaps the process (`Loop.complete`).
            op.pointee.place = OperationPlace.kernel
            io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: op)))
            return true
        case .openat:
            io_uring_prep_openat(
                sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: op.pointee.flags), op.pointee.mode)
        case .openat2:
            io_uring_prep_openat2(
                sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self),
                op.pointee.address2?.assumingMemoryBound(to: open_how.self))
        case .statx:
            io_uring_prep_statx(
                sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: op.pointee.flags), op.pointee.mode,
                OpaquePointer(op.pointee.buffer))
        case .fsync: io_uring_prep_fsync(sqe, op.pointee.fd, op.pointee.flags == 0 ? 0 : UInt32(IORING_FSYNC_DATASYNC))
        case .fallocate:
            io_uring_prep_fallocate(sqe, op.pointee.fd, Int32(bitPattern: op.pointee.mode), Int(op.pointee.offset), Int(op.pointee.offset2))
        case .rename:
            io_uring_prep_renameat(
                sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), op.pointee.fd2,
                op.pointee.address2?.assumingMemoryBound(to: CChar.self), op.pointee.flags)
        case .unlink:
            io_uring_prep_unlinkat(sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: op.pointee.flags))
        case .mkdir: io_uring_prep_mkdirat(sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), op.pointee.mode)
        case .link:
            io_uring_prep_linkat(
                sqe, op.pointee.fd, op.pointee.address?.assumingMemoryBound(to: CChar.self), op.pointee.fd2,
                op.pointee.address2?.assumingMemoryBound(to: CChar.self), Int32(bitPattern: op.pointee.flags))
        case .symlink:
            io_uring_prep_symlinkat(
                sqe, op.pointee.address?.assumingMemoryBound(to: CChar.self), op.pointee.fd, op.pointee.address2?.assumingMemoryBound(to: CChar.self))
        case .splice:
            io_uring_prep_splice(sqe, op.pointee.fd, op.pointee.offset, op.pointee.fd2, op.pointee.offset2, UInt32(clamping: op.pointee.length), op.pointee.flags)
        case .acceptMultishot: weft_prep_accept_multishot(sqe, op.pointee.fd)
        case .recvMultishot:
            weft_prep_recv_multishot(sqe, op.pointee.fd, UInt16(truncatingIfNeeded: op.pointee.mode), Int32(bitPattern: op.pointee.flags))
        default:
            // An unknown kind still needs exactly one completion; a NOP carries it back as EINVAL.
            io_uring_prep_nop(sqe)
            op.pointee.rawResult = -EINVAL
            op.pointee.place = OperationPlace.kernel
            io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: op)) | 2)
            return false
        }
        // Plain until shown otherwise: `prepare` places an operation with extras in `kernel`. (No
        // cancel is out: one makes `cancelRequested` stay set, and nothing re-prepares then.)
        assert(op.pointee.kernelCancels == 0, "an operation with a cancel out is prepared again")
        op.pointee.place = OperationPlace.plainInKernel
        io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: op)))
        return true
    }

    /// The kernel resolves registered-file slots (`IOSQE_FIXED_FILE`).
    var resolvesRegisteredFiles: Bool { true }

    func registerFiles(count: Int) -> Int32 {
        weft_files_register_sparse(ring, UInt32(count))
    }

    func updateFile(slot: Int, descriptor: Int32) -> Int32 {
        let r = weft_files_update(ring, UInt32(slot), descriptor)
        return r < 0 ? r : 0
    }

    func registerBuffers(_ vectors: UnsafeRawPointer, count: Int) -> Int32 {
        weft_buffers_register(ring, vectors.assumingMemoryBound(to: iovec.self), UInt32(count))
    }

    func unregisterBuffers() -> Int32 { weft_buffers_unregister(ring) }

    private func prepareCancel(_ sqe: UnsafeMutablePointer<io_uring_sqe>, _ op: UnsafeMutablePointer<LoopOperation>) {
        cancelsPrepared += 1
        trace(.cancel, op, 0)
        io_uring_prep_cancel64(sqe, UInt64(UInt(bitPattern: op)), 0)
        // The completion names its target (never dereferenced: the target may be gone by then).
        io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: op)) | Self.cancelTag)
    }

    /// Marks the `user_data` of a cancel request (operation addresses are 8-byte aligned).
    private static let cancelTag: UInt64 = 4

    /// What the debug trace records about an operation address.
    enum TraceEvent: UInt8 { case prepare = 1, cancel, completion, cancelCompletion, readiness }

    #if DEBUG
    private var traceRing = [(UInt8, UInt, Int32)](repeating: (0, 0, 0), count: 8192)
    private var traceNext = 0
    private func trace(_ event: TraceEvent, _ op: UnsafeMutableRawPointer?, _ result: Int32) {
        traceRing[traceNext & 8191] = (event.rawValue, UInt(bitPattern: op), result)
        traceNext &+= 1
    }
    /// The recent history of one operation address (debug builds), oldest first.
    func trace(of op: UnsafeMutableRawPointer) -> String {
        let names = ["?", "prepare", "cancel", "completion", "cancelCompletion", "readiness"]
        var lines: [String] = []
        let count = min(traceNext, 8192)
        for i in (traceNext - count)..<traceNext {
            let (event, address, result) = traceRing[i & 8191]
            if address == UInt(bitPattern: op) { lines.append("#\(i) \(names[Int(event)]) \(result)") }
        }
        return lines.joined(separator: ", ")
    }
    #else
    @inline(__always) private func trace(_ event: TraceEvent, _ op: UnsafeMutableRawPointer?, _ result: Int32) {}
    func trace(of op: UnsafeMutableRawPointer) -> String { "" }
    #endif

    func cancel(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        if op.pointee.place == OperationPlace.backlog {
            unlinkBacklog(op)
            loop.completeLater(op, result: -ECANCELED)
            return
        }
        op.pointee.kernelCancels += 1
        // Its completion now needs `deliver`: the cancel's own completion may still be to come.
        if op.pointee.place == OperationPlace.plainInKernel { op.pointee.place = OperationPlace.kernel }
        if let sqe = nextEntry() {
            prepareCancel(sqe, op)
        } else {
            pendingCancels.append(op)
            backlogged = true
        }
    }

    func cancelAll(loop: Loop) {
        closing = true
        while let op = backlogHead {
            unlinkBacklog(op)
            op.pointee.cancelRequested = true
            loop.completeLater(op, result: -ECANCELED)
        }
        enableIfNeeded()
        var sqe = nextEntry()
        while sqe == nil {
            _ = io_uring_submit_and_wait(ring, 1)
            sqe = nextEntry()
        }
        io_uring_prep_cancel64(sqe, 0, Int32(IORING_ASYNC_CANCEL_ANY))
        io_uring_sqe_set_data64(sqe, Self.ignoredTag)
    }

    func forget(_ descriptor: Int32, loop: Loop) {}

    private func armWake() {
        var sqe = nextEntry()
        while sqe == nil {
            _ = io_uring_submit(ring)
            sqe = weft_sqe_next(ring)
        }
        io_uring_prep_poll_multishot(sqe, remote.eventDescriptor, UInt32(POLLIN))
        io_uring_sqe_set_data64(sqe, Self.wakeTag)
        wakeArmed = true
    }

    func wait(loop: Loop, timeoutNanoseconds: Int64?) throws(LoopError) -> Bool {
        enableIfNeeded()
        if backlogged { flushBacklog() }
        var timeout = __kernel_timespec()
        var remaining = timeoutNanoseconds
        // A signal ends the wait early (EINTR); it goes on for what is left of the timeout (see
        // `EpollBackend.wait`).
        let deadline = (remaining ?? 0) > 0 ? LoopSystem.now(.monotonic) &+ UInt64(remaining!) : 0
        while true {
            let r: Int32
            if remaining == 0 || backlogHead != nil {
                r = io_uring_submit_and_get_events(ring)
            } else if let ns = remaining {
                timeout.tv_sec = ns / 1_000_000_000
                timeout.tv_nsec = ns % 1_000_000_000
                var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
                r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &timeout, nil)
            } else {
                r = io_uring_submit_and_wait(ring, 1)
            }
            if r == -EINTR {
                if let ns = remaining, ns > 0 { remaining = LoopSystem.nanoseconds(until: deadline) }
                continue
            }
            if r < 0 && r != -ETIME && r != -EBUSY && r != -EAGAIN {
                throw LoopError(.init(rawValue: -r), operation: "io_uring_enter")
            }
            break
        }
        return drain(loop: loop)
    }

    private func drain(loop: Loop) -> Bool {
        var any = false
        var completion = weft_completion()
        var cursor = weft_cq_cursor(ring)
        // Each entry is copied out and its slot freed before its callback runs, so callbacks that
        // submit find the completion queue free. Copying never enters the kernel: the wait above
        // ran the deferred task work already.
        while true {
            // Nothing else moves the head while the loop delivers (`run` is not reentrant).
            assert(ring.pointee.cq.khead.pointee == cursor.head)
            if weft_cq_next(&cursor, &completion) == 0 {
                // Operations (or cancels) the kernel would not take wait in the backlog; with the
                // completion queue emptied it takes them now (once it is empty, not per entry), and
                // what that submission completed at once (on rings without deferred task work) is
                // read in this drain.
                guard backlogged else { return any }
                flushBacklog()
                guard weft_cq_next(&cursor, &completion) != 0 else { return any }
            }
            any = true
            // (The hint lays the plain path out in a straight line: no branch taken on it.)
            if _fastPath(Self.isPlain(completion)) {
                let op = UnsafeMutablePointer<LoopOperation>(bitPattern: UInt(completion.data)).unsafelyUnwrapped
                trace(.completion, op, completion.result)
                loop.completePlain(op, result: completion.result)
            } else {
                deliver(completion, loop: loop)
            }
        }
    }

    /// Whether a completion finishes its operation with nothing but its callback left to do (the
    /// common case, kept out of ``deliver(_:loop:)``): the entry names an operation, not a tag; the
    /// result is not an error (EAGAIN retries, a timer's ETIME, a deadline's ECANCELED need more);
    /// and the operation is ``OperationPlace/plainInKernel``: no extras, no process to reap, no
    /// cancel sent. One test of its place instead of five of its fields: this runs for nearly every
    /// completion.
    @inline(__always)
    private static func isPlain(_ completion: weft_completion) -> Bool {
        guard completion.data & Self.tagBits == 0, completion.result >= 0,
            let op = UnsafeMutablePointer<LoopOperation>(bitPattern: UInt(completion.data))
        else { return false }
        return op.pointee.place == OperationPlace.plainInKernel
    }

    /// The low bits of `user_data` that mark a tag or a cancel request rather than an operation's
    /// address (operations are 8-byte aligned).
    private static let tagBits: UInt64 = 7

    private func deliver(_ completion: weft_completion, loop: Loop) {
        let data = completion.data
        var result = completion.result
        // Exact tags first (a cancel's tag is its target's address with the cancel bit set, never a
        // small number). liburing's own timeout entry (kernels without EXT_ARG) carries UInt64.max.
        if data == Self.ignoredTag || data == UInt64.max || data == Self.deadlineTag { return }
        if data & Self.cancelTag != 0 {
            let target = UnsafeMutablePointer<LoopOperation>(bitPattern: UInt(data & ~Self.cancelTag))!
            trace(.cancelCompletion, target, result)
            switch result {
            case 0: cancelOutcomes.0 += 1
            case -ENOENT: cancelOutcomes.1 += 1
            case -EALREADY: cancelOutcomes.2 += 1
            default: cancelOutcomes.3 += 1
            }
            cancelAnswered(target, result: result, loop: loop)
            return
        }
        if data == Self.wakeTag {
            _ = weft_eventfd_drain(remote.eventDescriptor)
            remote.acknowledgeWake()
            if completion.flags & UInt32(IORING_CQE_F_MORE) == 0 {
                wakeArmed = false
                // Also while closing: the cancel-all ends this poll too, and thread-pool work
                // still running reports its completion through the eventfd.
                armWake()
            }
            return
        }
        if data & 2 != 0 {
            let op = UnsafeMutablePointer<LoopOperation>(bitPattern: UInt(data & ~UInt64(2)))!
            finish(op, result: op.pointee.rawResult, loop: loop)
            return
        }
        let op = UnsafeMutablePointer<LoopOperation>(bitPattern: UInt(data))!
        trace(.completion, op, result)
        if op.pointee.extras != 0 && (result == -ECANCELED || result == -EINTR) && linksDeadline(op)
            && !op.pointee.cancelRequested && !closing
        {
            // Nobody cancelled it: its linked timeout did.
            op.pointee.timedOut = true
        }
        if op.pointee.place == Self.awaitingReadiness {
            if result < 0 || op.pointee.cancelRequested || closing {
                // (Closing: the cancel-all has gone by, so a retry would never be cancelled.)
                finish(op, result: result < 0 ? result : -ECANCELED, loop: loop)
            } else if op.pointee.kind == .recvMultishot && Loop.acceptedRing(of: op)?.availableCount == 0 {
                // Something arrived while the caller holds every buffer
                // (``deliverMultishot(_:result:flags:loop:)``).
                finish(op, result: -ENOBUFS, loop: loop)
            } else if let sqe = entry(for: op) {
                prepare(sqe, op)
            } else {
                appendBacklog(op)
            }
            return
        }
        if op.pointee.isMultishot {
            deliverMultishot(op, result: result, flags: completion.flags, loop: loop)
            return
        }
        switch op.pointee.kind {
        case .timer:
            if result == -ETIME { result = 0 }
        case .recv, .send, .recvmsg, .sendmsg, .read, .write, .readv, .writev, .accept:
            if result == -EAGAIN && !op.pointee.cancelRequested {
                // Closing: the cancel-all has gone by, and a wait for readiness would never end.
                if closing {
                    finish(op, result: -ECANCELED, loop: loop)
                    return
                }
                awaitReadiness(op)
                return
            }
        default: break
        }
        finish(op, result: result, loop: loop)
    }

    /// Completes an operation the kernel is done with, unless a cancel request naming it is still
    /// out: then the completion waits for that request's answer (``cancelAnswered(_:result:loop:)``).
    private func finish(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32, loop: Loop) {
        if op.pointee.kernelCancels > 0 {
            op.pointee.rawResult = result
            op.pointee.heldCompletion = true
            return
        }
        loop.complete(op, result: result)
    }

    /// The kernel answered a cancel request for `op` (still the loop's: its completion is held
    /// while requests are out). A request that found nothing while the operation is still in the
    /// kernel missed it in a moment the kernel cannot see it (a receive being retried after its
    /// readiness fired, between two polls): it is sent again, so a cancel is never lost. That
    /// moment is brief, so the resending ends as soon as the receive waits again or completes.
    private func cancelAnswered(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32, loop: Loop) {
        op.pointee.kernelCancels -= 1
        if op.pointee.kernelCancels > 0 { return }
        if op.pointee.heldCompletion {
            op.pointee.heldCompletion = false
            loop.complete(op, result: op.pointee.rawResult)
        } else if result == -ENOENT && op.pointee.state == .pending && op.pointee.place != OperationPlace.backlog {
            // (`EALREADY` is a request running in a kernel worker: the kernel interrupts it, and
            // asking again would only spin.)
            cancelMissed += 1
            cancel(op, loop: loop)
        }
    }

    /// One completion of a multishot operation. With `IORING_CQE_F_MORE` the operation stays armed
    /// in the kernel. Without it the kernel is done with it: a success after which nobody asked to
    /// stop is delivered as one more result and the operation re-armed (the kernel may drop a
    /// multishot request by itself); anything else is the final callback.
    ///
    /// A receive the kernel ends with ENOBUFS found the ring empty when it looked: perhaps before the
    /// caller read the completions that took the buffers (and gave them back), or at submission with
    /// nothing to read yet. It ends only as on epoll, when something is there to receive while the
    /// caller holds every buffer: it waits for readiness, then ``deliver(_:loop:)`` ends it if every
    /// buffer is still held and submits it again otherwise. The socket keeps its bytes either way.
    @inline(never)
    private func deliverMultishot(
        _ op: UnsafeMutablePointer<LoopOperation>, result: Int32, flags: UInt32, loop: Loop
    ) {
        let more = flags & UInt32(IORING_CQE_F_MORE) != 0
        if flags & UInt32(IORING_CQE_F_BUFFER) != 0 {
            let index = Int32(flags >> UInt32(IORING_CQE_BUFFER_SHIFT))
            op.pointee.bufferID = index
            Loop.acceptedRing(of: op)?.markHeld(index)
        } else {
            op.pointee.bufferID = -1
        }
        if more {
            loop.completeMore(op, result: result)
            return
        }
        if result == -EAGAIN && !op.pointee.cancelRequested && !closing {
            awaitReadiness(op)
            return
        }
        if result == -ENOBUFS && op.pointee.kind == .recvMultishot && !op.pointee.cancelRequested && !closing {
            awaitReadiness(op)
            return
        }
        let success = op.pointee.kind == .acceptMultishot ? result >= 0 : result > 0
        if success && !op.pointee.cancelRequested && !closing {
            loop.completeMore(op, result: result)
            // The callback may have cancelled it; then this is the end, and the kernel has nothing.
            guard op.pointee.isPending else { return }
            if op.pointee.cancelRequested {
                op.pointee.bufferID = -1
                finish(op, result: -ECANCELED, loop: loop)
            } else if backlogHead == nil, let sqe = nextEntry() {
                prepare(sqe, op)
            } else {
                appendBacklog(op)
            }
            return
        }
        finish(op, result: result, loop: loop)
    }

    func registerBufferRing(entries: UnsafeMutableRawPointer?, count: Int, group: UInt16) -> Int32 {
        guard let entries else { return -EINVAL }
        return weft_buf_ring_register(ring, entries, UInt32(count), group)
    }

    func unregisterBufferRing(group: UInt16) -> Int32 {
        weft_buf_ring_unregister(ring, group)
    }

    private func awaitReadiness(_ op: UnsafeMutablePointer<LoopOperation>) {
        let writes: Bool
        switch op.pointee.kind {
        case .send, .sendmsg, .write, .writev: writes = true
        default: writes = false
        }
        guard let sqe = entry(for: op) else {
            appendBacklog(op)
            return
        }
        trace(.readiness, op, 0)
        io_uring_prep_poll_add(sqe, op.pointee.fd, UInt32(writes ? POLLOUT : POLLIN))
        io_uring_sqe_set_data64(sqe, UInt64(UInt(bitPattern: op)))
        op.pointee.place = Self.awaitingReadiness
        if op.pointee.extras != 0 { prepareExtras(sqe, op) }
    }

    /// A racy snapshot of the ring and the backend's queues, for diagnosing a hang.
    var debugState: String {
        var backlog = 0
        var op = backlogHead
        while let o = op { backlog += 1; op = o.pointee.next }
        return "sqReady=\(io_uring_sq_ready(ring)) cqReady=\(io_uring_cq_ready(ring)) backlog=\(backlog) "
            + "pendingCancels=\(pendingCancels.count) cancels=\(cancelsPrepared) "
            + "found=\(cancelOutcomes.0) notFound=\(cancelOutcomes.1) running=\(cancelOutcomes.2) other=\(cancelOutcomes.3) "
            + "resent=\(cancelMissed)"
    }

    func shutdown() {
        io_uring_queue_exit(ring)
    }
}

extension Loop {
    /// The kinds whose bit in ``UringBackend/entryKinds`` disagrees with the backend's own
    /// classification: a known kind, not a timer, not run outside the ring (a test checks that there
    /// are none; a missing bit would only be slower, an extra one would send the kind to the ring).
    package static var misclassifiedEntryKinds: [LoopOperation.Kind] {
        (0..<64).map { LoopOperation.Kind(rawValue: UInt8($0)) }.filter { kind in
            let alone = kind.name.description != "unknown" && kind != .timer && !UringBackend.runsOutsideRing(kind)
            return UringBackend.takesEntryAlone(kind) != alone
        }
    }
}
