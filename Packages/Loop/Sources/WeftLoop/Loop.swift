internal import CWeftLoop
internal import Glibc
import Synchronization
import SystemPackage

/// A completion-based event loop: submit operations, run the loop, get one callback per submission.
///
/// The loop runs on one thread: create it, submit to it and run it from that thread (the io_uring
/// backend binds its ring to the first thread that runs it). Other threads use ``waker``.
///
/// ```swift
/// let loop = try Loop()
/// let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
/// op.initialize(to: .timer(after: .milliseconds(10)))
/// try loop.submit(op, callback: { raw, _ in print("fired") })
/// try loop.run()
/// ```
public final class Loop {
    /// How a loop is set up.
    public struct Options: Sendable {
        /// The backend to use; `nil` reads `WEFT_BACKEND` (`io_uring` or `epoll`), and without it
        /// uses io_uring, falling back to epoll when the ring cannot be set up. A named backend that
        /// cannot be set up is an error.
        public var backend: LoopBackendKind?
        /// The io_uring submission queue size.
        public var entries: Int
        /// The most threads the loop's thread pool starts.
        public var threadPoolSize: Int
        /// How long an idle pool thread waits for work before it exits.
        public var threadPoolIdleSeconds: Int
        /// Makes io_uring setup fail with this error, to test the fallback (test hook).
        package var simulatedRingFailure: Errno?
        /// Runs the loop on a kernel the test plays (test hook).
        package var scripted: ScriptedKernel?
        /// Makes the first `count` waits of ``run(_:)`` fail with `error`, as the backend's wait call
        /// would (test hook).
        package var simulatedWaitFailures: (error: Errno, count: Int)?
        /// Whether a `nil` backend consults `WEFT_BACKEND` (tests of the default choice turn it off).
        package var readsEnvironment = true

        /// Creates options.
        /// - Parameters:
        ///   - backend: The backend, or `nil` for `WEFT_BACKEND` or the default.
        ///   - entries: The io_uring submission queue size.
        ///   - threadPoolSize: The most threads the thread pool starts.
        ///   - threadPoolIdleSeconds: How long an idle pool thread lives.
        public init(
            backend: LoopBackendKind? = nil, entries: Int = 256, threadPoolSize: Int = 4,
            threadPoolIdleSeconds: Int = 10
        ) {
            self.backend = backend
            self.entries = entries
            self.threadPoolSize = threadPoolSize
            self.threadPoolIdleSeconds = threadPoolIdleSeconds
        }
    }

    /// How long ``run(_:)`` runs.
    public enum RunMode: Sendable {
        /// Until no submitted operation is pending, or ``stop()``.
        case untilDone
        /// One iteration: wait until at least one completion or wake arrives, deliver what is ready.
        case once
        /// One iteration without waiting: deliver what is ready now.
        case noWait
        /// One iteration waiting at most this long.
        case timeout(Duration)
    }

    package let backend: any LoopBackend
    /// The backend again when it is io_uring, so the per-operation paths call it directly instead
    /// of through the protocol (unmanaged: ``backend`` keeps it, and a strong read would retain it
    /// for every call).
    private let uring: Unmanaged<UringBackend>?
    /// The io_uring backend's ring and what stops the submission fast path, where a plain
    /// operation goes straight into an entry without a call into the backend. The loop's own, with
    /// ``UringBackend/SubmissionState/noRing``, on the other backends.
    private let submission: UnsafeMutablePointer<UringBackend.SubmissionState>
    package let remote: LoopRemote
    let pool: LoopThreadPool

    /// The backend this loop runs on.
    public let backendKind: LoopBackendKind
    /// Whether ``completeNow(_:)`` can ever complete an operation (only the epoll backend tries calls
    /// at once); callers on a hot path test it first and save the call.
    package let triesAtOnce: Bool
    /// Why the loop runs on epoll although io_uring was the default choice (`nil` when it did not
    /// fall back), such as `io_uring_setup: Operation not permitted (EPERM)`.
    public let fallbackReason: String?

    // The loop is used from one thread and the fields below are touched on every operation, so the
    // dynamic exclusivity checks (a runtime call each) are turned off for them.

    /// The number of submitted operations whose callbacks have not run yet.
    @exclusivity(unchecked) public private(set) var pendingCount = 0
    /// Whether ``close()`` has run.
    @exclusivity(unchecked) public private(set) var isClosed = false

    @exclusivity(unchecked) private var readyHead: UnsafeMutablePointer<LoopOperation>? = nil
    @exclusivity(unchecked) private var readyTail: UnsafeMutablePointer<LoopOperation>? = nil
    /// Timers the loop keeps itself, earliest deadline first (see ``LoopBackend/keepsTimerInLoop(_:)``).
    @exclusivity(unchecked) private var timers = TimerHeap()
    @exclusivity(unchecked) private var running = false
    /// Set as ``close()`` starts and never cleared, so it also covers ``isClosed``: the submission
    /// state's closing bit, which also stops the fast path.
    private var closing: Bool { submission.pointee.stops & UringBackend.SubmissionState.closing != 0 }
    /// Provided buffer rings by group id; a slot is free again once its ring is closed.
    @exclusivity(unchecked) private var bufferRings: [LoopBufferRing?] = []
    /// Registered files: the descriptor in each slot, -1 for an empty one, ``kernelFile`` for a
    /// connection the kernel accepted into it (``LoopOperation/acceptDirect(_:slot:)`` on io_uring).
    @exclusivity(unchecked) private var registeredFiles: [Int32] = []
    /// Per slot: the pending operations that name it (it cannot change under them), and whether
    /// the loop owns the descriptor in it (a direct accept's, on a backend without a kernel table).
    @exclusivity(unchecked) private var slotUsers: [Int32] = []
    @exclusivity(unchecked) private var ownedSlots: [Bool] = []
    /// Where the search for a free slot starts (after the last slot a direct accept took).
    @exclusivity(unchecked) private var freeSlotHint = 0
    private static let kernelFile: Int32 = -2
    /// Registered buffers, by index; and how many submitted operations use them.
    @exclusivity(unchecked) private var registeredBuffers: [UnsafeMutableRawBufferPointer] = []
    @exclusivity(unchecked) private var registeredBufferUsers = 0
    /// What ``Options/simulatedWaitFailures`` left to fail (test hook).
    @exclusivity(unchecked) private var simulatedWaitFailures = 0
    @exclusivity(unchecked) private var simulatedWaitError = Errno.noMemory

    /// Creates a loop.
    /// - Parameter options: The backend and limits; see ``Options``.
    /// - Throws: ``LoopError`` when the chosen backend cannot be set up, or `WEFT_BACKEND` names an
    ///   unknown backend (`EINVAL`).
    public init(options: Options = Options()) throws(LoopError) {
        remote = try LoopRemote()
        var choice = options.backend
        if choice == nil, options.readsEnvironment, let env = getenv("WEFT_BACKEND"), env.pointee != 0 {
            guard let named = LoopBackendKind(rawValue: String(cString: env)), named != .scripted else {
                throw LoopError(.invalidArgument, operation: "WEFT_BACKEND")
            }
            choice = named
        }
        if options.scripted != nil { choice = .scripted }
        var reason: String? = nil
        let made: any LoopBackend
        switch choice {
        case .ioUring:
            made = try UringBackend(options: options, remote: remote)
        case .epoll:
            made = try EpollBackend(remote: remote)
        case .scripted:
            guard let kernel = options.scripted else { throw LoopError(.invalidArgument, operation: "Loop.init") }
            made = ScriptedBackend(kernel: kernel, remote: remote)
        case nil:
            do {
                made = try UringBackend(options: options, remote: remote)
            } catch {
                reason = error.description
                made = try EpollBackend(remote: remote)
            }
        }
        backend = made
        uring = (made as? UringBackend).map { Unmanaged.passUnretained($0) }
        if let ringBackend = made as? UringBackend {
            submission = ringBackend.submission
        } else {
            submission = .allocate(capacity: 1)
            submission.initialize(to: .init(ring: nil, stops: UringBackend.SubmissionState.noRing))
        }
        backendKind = made.kind
        if let (error, count) = options.simulatedWaitFailures {
            simulatedWaitError = error
            simulatedWaitFailures = count
        }
        triesAtOnce = made.kind == .epoll
        fallbackReason = reason
        pool = LoopThreadPool(
            remote: remote, maxThreads: options.threadPoolSize, idleSeconds: options.threadPoolIdleSeconds,
            nonblockingSockets: made.kind == .epoll)
    }

    deinit {
        if !isClosed { try? close() }
        if uring == nil { submission.deallocate() }
    }

    /// A `Sendable` handle for waking, stopping and cancelling from other threads.
    public var waker: LoopWaker { LoopWaker(remote: remote) }

    /// A descriptor that becomes readable when the loop has completions to deliver, so the loop can
    /// be embedded in another event loop: when it is readable, call `run(.noWait)`. Call
    /// `run(.noWait)` also after submitting, so submissions reach the kernel before you wait.
    public var pollDescriptor: FileDescriptor { FileDescriptor(rawValue: backend.pollDescriptor) }

    /// How long a host loop embedding this one may wait on ``pollDescriptor`` before calling
    /// `run(.noWait)` again: the time to the earliest timer the loop keeps itself (its timers do not
    /// make the descriptor readable), zero when callbacks are ready, `nil` (no limit) otherwise.
    public var embeddingTimeout: Duration? {
        if readyHead != nil { return .zero }
        guard let ns = nanosecondsToEarliestTimer() else { return nil }
        return .nanoseconds(ns)
    }

    /// What the running kernel's io_uring offers, probed once per process on a scratch ring.
    private static let uringFeatures = weft_uring_probe_features()

    /// Whether multishot receives into a ``LoopBufferRing`` work on this loop: always on epoll (the
    /// loop emulates them); on io_uring when the kernel has provided buffer rings and multishot
    /// receive (Linux 6.0). Multishot accept needs no more than that. Where it is false, creating a
    /// ring throws and multishot submissions complete with `EINVAL`.
    public var supportsMultishot: Bool {
        backendKind != .ioUring || Self.uringFeatures & 1 != 0
    }

    /// Whether ``registerFiles(count:)`` works on this loop: always on epoll (the loop keeps the
    /// table); on io_uring when the kernel has sparse file tables (Linux 5.19).
    public var supportsRegisteredFiles: Bool {
        backendKind != .ioUring || Self.uringFeatures & 2 != 0
    }

    #if DEBUG
    /// The thread that last ran the loop, and how many submissions and cancels came from another
    /// thread since (a misuse that corrupts the io_uring submission queue).
    @exclusivity(unchecked) private var runner: pthread_t? = nil
    @exclusivity(unchecked) package private(set) var foreignCalls = 0
    private func noteCaller() {
        if let runner, pthread_equal(runner, pthread_self()) == 0 { foreignCalls += 1 }
    }
    #else
    package var foreignCalls: Int { 0 }
    @inline(__always) private func noteCaller() {}
    #endif

    /// A racy snapshot of the loop's state, for diagnosing a hang from another thread.
    package var debugState: String {
        "pending=\(pendingCount) foreign=\(foreignCalls) " + ((backend as? UringBackend)?.debugState ?? "")
    }

    /// The backend's recent history of one operation (debug builds, io_uring), for a hang report.
    package func debugTrace(of op: UnsafeMutableRawPointer) -> String {
        (backend as? UringBackend)?.trace(of: op) ?? ""
    }

    /// The number of live thread-pool threads (idle ones exit after ``Options/threadPoolIdleSeconds``).
    package var poolThreadCount: Int { pool.threadCount }

    /// Submits an operation. Its callback runs exactly once, from ``run(_:)`` on this thread, with the
    /// operation's result, ECANCELED if it was cancelled first, or its natural result if it finished
    /// before the cancel took effect. The callback never runs inside `submit`.
    ///
    /// Multishot operations (``LoopOperation/acceptMultishot(_:)``,
    /// ``LoopOperation/recvMultishot(_:ring:flags:)``) call back once per result before that final
    /// callback, each time with ``LoopOperation/hasMore`` set; the final one has it clear.
    ///
    /// - Parameters:
    ///   - operation: The operation, at an address that stays valid until the callback runs.
    ///   - callback: Runs once when the operation completes.
    ///   - context: Passed to `callback`.
    /// - Throws: ``LoopError`` when the loop is closed (`EBADF`) or the operation is already pending
    ///   (`EALREADY`); the callback will not run then.
    public func submit(
        _ operation: UnsafeMutablePointer<LoopOperation>, callback: LoopCallback,
        context: UnsafeMutableRawPointer? = nil
    ) throws(LoopError) {
        noteCaller()
        // The io_uring fast path: what the backend's `submit` does for a plain operation, without
        // the call (which the compiler would not inline: the preparation switch is too large).
        // Every test comes before the first store, and everything else, the refusals included, is
        // one call out of line.
        if submission.pointee.stops == 0, operation.pointee.state != .pending, operation.pointee.extras == 0,
            !operation.pointee.cancelRequested, UringBackend.takesEntryAlone(operation.pointee.kind),
            let sqe = weft_sqe_next(submission.pointee.ring.unsafelyUnwrapped)
        {
            // (Entry first: it reads the operation's fields while they are still in registers.)
            UringBackend.prepareEntry(sqe, operation)
            accept(operation, callback: callback, context: context)
            #if DEBUG
            uring?._withUnsafeGuaranteedRef { $0.tracePrepared(operation) }
            #endif
            return
        }
        try submitSlowly(operation, callback: callback, context: context)
    }

    /// Takes the operation for the loop: it is pending from here on.
    @inline(__always)
    private func accept(
        _ operation: UnsafeMutablePointer<LoopOperation>, callback: LoopCallback, context: UnsafeMutableRawPointer?
    ) {
        operation.pointee.callback = callback
        operation.pointee.context = context
        weft_flag_store(operation.pointer(to: \.completing)!, 0)
        operation.pointee.state = .pending
        operation.pointee.next = nil
        operation.pointee.prev = nil
        pendingCount &+= 1
    }

    /// ``submit(_:callback:context:)`` for all that its fast path does not take: a closed loop or an
    /// operation already pending (refused), operations with extras, a cancel requested before
    /// submission, timers, kinds outside the ring, a full submission queue or a backlog, and every
    /// operation on the other backends.
    @inline(never)
    private func submitSlowly(
        _ operation: UnsafeMutablePointer<LoopOperation>, callback: LoopCallback, context: UnsafeMutableRawPointer?
    ) throws(LoopError) {
        if closing || operation.pointee.state == .pending {
            throw LoopError(closing ? .badFileDescriptor : .alreadyInProcess, operation: "submit")
        }
        accept(operation, callback: callback, context: context)
        if operation.pointee.extras != 0 && !submitExtras(operation) { return }
        if operation.pointee.cancelRequested {
            completeLater(operation, result: -ECANCELED)
            return
        }
        if operation.pointee.kind == .timer && backend.keepsTimerInLoop(operation) {
            let deadline = Self.monotonicDeadline(operation)
            if deadline <= LoopSystem.now(.monotonic) {
                completeLater(operation, result: 0)
            } else {
                operation.pointee.deadline = deadline
                operation.pointee.place = OperationPlace.timers
                timers.insert(operation)
            }
            return
        }
        backend.submit(operation, loop: self)
    }

    /// The submission steps of multishot operations, buffer rings, deadlines and registered files,
    /// out of the plain operations' way. Returns false when the operation was completed already (an
    /// error, delivered later).
    @inline(never)
    private func submitExtras(_ operation: UnsafeMutablePointer<LoopOperation>) -> Bool {
        let extras = operation.pointee.extras
        operation.pointee.more = false
        operation.pointee.bufferID = -1
        operation.pointee.timedOut = false
        if extras & OperationExtras.bufferRing != 0 {
            guard let ring = bufferRing(of: operation) else {
                // Not this loop's ring, or closed: no ring to count the operation against.
                operation.pointee.address2 = nil
                completeLater(operation, result: -EBADF)
                return false
            }
            ring.users += 1
        }
        if extras & OperationExtras.registeredFile != 0 {
            let r = resolveRegisteredFile(operation)
            if r < 0 {
                completeLater(operation, result: r)
                return false
            }
        }
        if extras & OperationExtras.directAccept != 0 {
            let slot = Int(operation.pointee.tableIndex)
            let r = registeredFiles.isEmpty ? -EBADF : slot < -1 || slot >= registeredFiles.count ? -EINVAL : 0
            if r < 0 {
                completeLater(operation, result: r)
                return false
            }
        }
        if extras & OperationExtras.registeredBuffer != 0 {
            let r = checkRegisteredBuffer(operation)
            if r < 0 {
                completeLater(operation, result: r)
                return false
            }
            operation.pointee.holdsBufferTable = true
            registeredBufferUsers += 1
        }
        if extras & OperationExtras.deadline != 0 {
            if operation.pointee.kind == .timer {
                completeLater(operation, result: -EINVAL)
                return false
            }
            let deadline = LoopSystem.now(.monotonic) &+ operation.pointee.timeout
            operation.pointee.deadline = deadline
            operation.pointee.time = TimeSpec(nanoseconds: deadline)
            // A cancel requested before submission completes it at once; the heap entry goes then.
            if !backend.enforcesDeadline(operation) { timers.insert(operation) }
        }
        return true
    }

    /// What completing costs the operations ``submitExtras(_:)`` handled: the ring's count, the
    /// deadline's heap entry and its ETIME, the registered-file slot. Returns the result to report.
    @inline(never)
    private func completeExtras(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) -> Int32 {
        let extras = op.pointee.extras
        var result = result
        if extras & OperationExtras.bufferRing != 0, let ring = Self.acceptedRing(of: op) { ring.users -= 1 }
        if op.pointee.heapIndex >= 0 { timers.remove(op) }
        if extras & OperationExtras.registeredFile != 0 { op.pointee.fd = op.pointee.fixedSlot }
        if op.pointee.holdsFileSlot {
            op.pointee.holdsFileSlot = false
            slotUsers[Int(op.pointee.fixedSlot)] -= 1
        }
        if extras & OperationExtras.directAccept != 0 && result >= 0 { result = installDirect(op, result: result) }
        if op.pointee.holdsBufferTable {
            op.pointee.holdsBufferTable = false
            registeredBufferUsers -= 1
        }
        if op.pointee.timedOut && (result == -ECANCELED || result == -EINTR) { return -ETIME }
        return result
    }

    /// A timer's deadline on the monotonic clock; absolute deadlines on other clocks are converted
    /// now (the loop waits on one clock).
    private static func monotonicDeadline(_ op: UnsafeMutablePointer<LoopOperation>) -> UInt64 {
        let flags = op.pointee.flags
        let now = LoopSystem.now(.monotonic)
        let value = op.pointee.time.totalNanoseconds
        guard flags & LoopOperation.timerAbsolute != 0 else { return now &+ value }
        let clock: LoopClock =
            flags & LoopOperation.timerRealtime != 0
            ? .realtime : (flags & LoopOperation.timerBoottime != 0 ? .boottime : .monotonic)
        let clockNow = LoopSystem.now(clock)
        return value <= clockNow ? now : now &+ (value - clockNow)
    }

    private func nanosecondsToEarliestTimer() -> Int64? {
        guard let first = timers.earliest else { return nil }
        return LoopSystem.nanoseconds(until: first.pointee.deadline)
    }

    /// Completes a descriptor operation at once, without a callback, when the backend can do it
    /// without waiting and nothing is queued ahead of it on that descriptor (the epoll backend's
    /// non-blocking sockets and pipes). On success the operation is completed with its result, as if
    /// its callback had run; otherwise nothing happened and it is to be submitted as usual.
    /// - Parameter operation: An operation that is not pending and was not cancelled.
    /// - Returns: Whether the operation completed.
    package func completeNow(_ operation: UnsafeMutablePointer<LoopOperation>) -> Bool {
        if !triesAtOnce { return false }
        if closing || operation.pointee.state == .pending || operation.pointee.cancelRequested
            || operation.pointee.extras != 0
        {
            return false
        }
        guard let result = backend.attemptNow(operation) else { return false }
        operation.pointee.rawResult = result
        operation.pointee.state = .completed
        return true
    }

    /// Cancels an operation. Idempotent, and valid in every state: before submission (the submission
    /// then completes with ECANCELED), while pending (it completes with ECANCELED, or with its natural
    /// result if it finished first), and after completion (nothing happens). Only from the loop's
    /// thread; other threads use ``LoopWaker/cancel(_:)``.
    /// - Parameter operation: The operation to cancel.
    public func cancel(_ operation: UnsafeMutablePointer<LoopOperation>) {
        noteCaller()
        switch operation.pointee.state {
        case .idle:
            operation.pointee.cancelRequested = true
        case .completed:
            return
        case .pending:
            if operation.pointee.cancelRequested { return }
            operation.pointee.cancelRequested = true
            // Atomically: a pool thread may be moving the operation from queued to running.
            switch weft_flag_load(operation.pointer(to: \.place)!) {
            case OperationPlace.ready, OperationPlace.poolRunning:
                return
            case OperationPlace.timers:
                timers.remove(operation)
                completeLater(operation, result: -ECANCELED)
            case OperationPlace.poolQueued:
                if pool.cancel(operation) { completeLater(operation, result: -ECANCELED) }
            default:
                backend.cancel(operation, loop: self)
            }
        }
    }

    /// Runs the loop.
    /// - Parameter mode: How long to run; see ``RunMode``.
    /// - Throws: ``LoopError`` when the loop is closed (`EBADF`), when `run` is called from one of its
    ///   own callbacks (`EALREADY`), or when waiting fails in a way that cannot be retried.
    public func run(_ mode: RunMode = .untilDone) throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "run") }
        if running { throw LoopError(.alreadyInProcess, operation: "run") }
        #if DEBUG
        runner = pthread_self()
        #endif
        running = true
        defer { running = false }
        switch mode {
        case .noWait: try tick(timeout: 0)
        case .once: try tick(timeout: nil)
        case .timeout(let duration): try tick(timeout: Int64(clamping: TimeSpec(duration).totalNanoseconds))
        case .untilDone:
            while pendingCount > 0 && !remote.stopRequested.load(ordering: .sequentiallyConsistent) {
                try tick(timeout: nil)
            }
        }
        if remote.stopRequested.load(ordering: .relaxed) {
            remote.stopRequested.store(false, ordering: .relaxed)
        }
    }

    /// Makes the running ``run(_:)`` return after the current iteration (from the loop's thread, for
    /// example in a callback; other threads use ``LoopWaker/stop()``).
    public func stop() {
        remote.stopRequested.store(true, ordering: .relaxed)
    }

    /// Wakes the loop if it is waiting; thread-safe (the same as `waker.wake()`).
    public func wakeup() { remote.wake() }

    /// Forgets what the loop knows about a descriptor before it is closed outside the loop (with
    /// `close(2)` by a C library, for example). The epoll backend keeps descriptors registered between
    /// operations; a descriptor closed behind its back and reused would otherwise never report
    /// readiness. Operations still pending on it complete with ECANCELED on epoll.
    /// - Parameter descriptor: The descriptor about to be closed.
    public func forget(_ descriptor: FileDescriptor) {
        backend.forget(descriptor.rawValue, loop: self)
    }

    /// Cancels every pending operation, runs their callbacks, and releases the loop's kernel
    /// resources. Further submissions and runs throw `EBADF`. Called by `deinit` if needed.
    /// - Throws: ``LoopError`` (`EALREADY`) when called from one of the loop's callbacks.
    public func close() throws(LoopError) {
        if isClosed { return }
        if running { throw LoopError(.alreadyInProcess, operation: "close") }
        submission.pointee.stops |= UringBackend.SubmissionState.closing
        while let op = timers.popFirst() {
            // Operations here for their deadline are also the backend's, which cancels them.
            if op.pointee.kind == .timer { completeLater(op, result: -ECANCELED) }
        }
        for op in pool.takeQueued() {
            op.pointee.cancelRequested = true
            completeLater(op, result: -ECANCELED)
        }
        backend.cancelAll(loop: self)
        running = true
        while pendingCount > 0 {
            do { try tick(timeout: backendKind == .scripted ? 0 : nil) } catch { break }
        }
        running = false
        pool.close()
        backend.shutdown()
        for ring in bufferRings { ring?.release() }
        bufferRings = []
        registeredBuffers = []
        for slot in ownedSlots.indices where ownedSlots[slot] { _ = Glibc.close(registeredFiles[slot]) }
        ownedSlots = []
        remote.close()
        isClosed = true
    }

    /// Creates the loop's table of registered files: `count` empty slots. An operation marked
    /// ``LoopOperation/onRegisteredFile()`` names a slot instead of a descriptor. On io_uring the
    /// table is the ring's (`io_uring_register_files_sparse`), and the kernel skips looking the
    /// descriptor up and counting references for each operation; on epoll the loop looks the slot up
    /// when the operation is submitted, so code runs unchanged on both. Call it once, from the loop's
    /// thread.
    /// - Parameter count: The number of slots, 1 to 65536.
    /// - Throws: ``LoopError`` (`registerFiles`): `EINVAL` for a bad count, `EBUSY` when the table
    ///   exists already, `EBADF` on a closed loop, or the kernel's error.
    public func registerFiles(count: Int) throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "registerFiles") }
        guard count >= 1, count <= 65536 else { throw LoopError(.invalidArgument, operation: "registerFiles") }
        if !registeredFiles.isEmpty { throw LoopError(.resourceBusy, operation: "registerFiles") }
        let r = backend.registerFiles(count: count)
        if r < 0 { throw LoopError(.init(rawValue: -r), operation: "registerFiles") }
        registeredFiles = Array(repeating: -1, count: count)
        slotUsers = Array(repeating: 0, count: count)
        ownedSlots = Array(repeating: false, count: count)
    }

    /// The number of slots in the registered-file table (0 before ``registerFiles(count:)``).
    public var registeredFileCount: Int { registeredFiles.count }

    /// Puts a descriptor in a slot of the registered-file table, or empties the slot (`nil`).
    /// A slot cannot change while submitted operations name it: cancel them first. The loop does not
    /// own the descriptor: keep it open while it is registered (the epoll backend uses it
    /// directly), and empty the slot before closing it. A connection accepted into the slot with
    /// ``LoopOperation/acceptDirect(_:slot:)`` is the loop's: replacing or emptying the slot closes it.
    /// - Parameters:
    ///   - descriptor: An open descriptor, or `nil` to empty the slot.
    ///   - slot: The slot, `0..<registeredFileCount`.
    /// - Throws: ``LoopError`` (`registerFile`): `EINVAL` for a slot out of range (or no table),
    ///   `EBUSY` while operations name the slot, `EBADF` for a descriptor that is not open or a
    ///   closed loop, or the kernel's error.
    public func registerFile(_ descriptor: FileDescriptor?, at slot: Int) throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "registerFile") }
        guard slot >= 0, slot < registeredFiles.count else {
            throw LoopError(.invalidArgument, operation: "registerFile")
        }
        let fd = descriptor?.rawValue ?? -1
        if fd != -1 {
            let valid = fd < 0 ? -EBADF : weft_descriptor_valid(fd)
            if valid < 0 { throw LoopError(.init(rawValue: -valid), operation: "registerFile") }
        }
        if slotUsers[slot] > 0 { throw LoopError(.resourceBusy, operation: "registerFile") }
        let r = backend.updateFile(slot: slot, descriptor: fd)
        if r < 0 { throw LoopError(.init(rawValue: -r), operation: "registerFile") }
        releaseOwned(slot)
        registeredFiles[slot] = fd
    }

    /// The descriptor in a slot of the registered-file table, or `nil` for an empty slot, one out
    /// of range, or one holding a connection accepted with ``LoopOperation/acceptDirect(_:slot:)``
    /// (it has no descriptor of its own to use outside the loop).
    /// - Parameter slot: The slot.
    /// - Returns: The descriptor registered there.
    public func registeredFile(at slot: Int) -> FileDescriptor? {
        guard slot >= 0, slot < registeredFiles.count, registeredFiles[slot] >= 0, !ownedSlots[slot] else { return nil }
        return FileDescriptor(rawValue: registeredFiles[slot])
    }

    /// Whether a slot of the registered-file table holds a file (a descriptor or a connection
    /// accepted into it); `false` out of range.
    /// - Parameter slot: The slot.
    /// - Returns: Whether the slot is taken.
    public func isRegisteredFileSlotTaken(_ slot: Int) -> Bool {
        slot >= 0 && slot < registeredFiles.count && registeredFiles[slot] != -1
    }

    /// Closes the loop's own descriptor in a slot (a direct accept's on a backend without a kernel
    /// table) as the slot is emptied or refilled.
    private func releaseOwned(_ slot: Int) {
        guard ownedSlots[slot] else { return }
        ownedSlots[slot] = false
        let fd = registeredFiles[slot]
        backend.forget(fd, loop: self)
        _ = Glibc.close(fd)
    }

    /// Puts the connection a direct accept produced into its slot and returns the slot (or -errno).
    /// io_uring installed it already (the result is the slot it picked, or 0 for the one asked
    /// for); elsewhere `result` is a descriptor the loop now owns.
    private func installDirect(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) -> Int32 {
        let asked = Int(op.pointee.tableIndex)
        if backend.resolvesRegisteredFiles {
            let slot = asked >= 0 ? asked : Int(result)
            registeredFiles[slot] = Self.kernelFile
            return Int32(slot)
        }
        guard let slot = asked >= 0 ? asked : freeSlot() else {
            _ = Glibc.close(result)
            return -ENFILE
        }
        releaseOwned(slot)
        registeredFiles[slot] = result
        ownedSlots[slot] = true
        return Int32(slot)
    }

    /// A free slot of the registered-file table, searched from ``freeSlotHint``, or nil.
    private func freeSlot() -> Int? {
        let count = registeredFiles.count
        for step in 0..<count {
            let slot = (freeSlotHint + step) % count
            if registeredFiles[slot] == -1 {
                freeSlotHint = (slot + 1) % count
                return slot
            }
        }
        return nil
    }

    /// Checks an operation on a registered file at submission and, where the loop resolves slots
    /// itself, swaps the slot for the descriptor until completion. Returns 0 or -errno.
    private func resolveRegisteredFile(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        switch op.pointee.kind {
        case .recv, .send, .recvmsg, .sendmsg, .read, .write, .readv, .writev, .accept, .connect, .shutdown,
            .fsync, .poll, .acceptMultishot, .recvMultishot:
            break
        default:
            return -EINVAL
        }
        let slot = Int(op.pointee.fixedSlot)
        if slot < 0 { return -EINVAL }
        guard slot < registeredFiles.count else { return registeredFiles.isEmpty ? -EBADF : -EINVAL }
        let fd = registeredFiles[slot]
        if fd == -1 { return -EBADF }
        op.pointee.fd = backend.resolvesRegisteredFiles ? Int32(slot) : fd
        op.pointee.holdsFileSlot = true
        slotUsers[slot] += 1
        return 0
    }

    /// Registers buffers with the loop: operations marked ``LoopOperation/onRegisteredBuffer(_:)``
    /// then read into or write from them by index. On io_uring the table is the ring's
    /// (`io_uring_register_buffers`): the kernel pins the pages once, here, instead of at every
    /// operation, which pays off for large or frequent transfers (file I/O above all); on epoll the
    /// loop only checks that each operation stays inside its buffer, so code runs unchanged on both.
    /// Call it from the loop's thread.
    ///
    /// The loop does not own the memory: keep it allocated until ``unregisterBuffers()`` or
    /// ``close()``. On io_uring the pinned pages count against `RLIMIT_MEMLOCK` for unprivileged
    /// processes (`ENOMEM` when the limit is reached).
    /// - Parameter buffers: 1 to 16384 buffers, each 1 byte to 1 GiB.
    /// - Throws: ``LoopError`` (`registerBuffers`): `EINVAL` for a bad count or buffer, `EBUSY` when
    ///   a table exists already, `EBADF` on a closed loop, or the kernel's error.
    public func registerBuffers(_ buffers: [UnsafeMutableRawBufferPointer]) throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "registerBuffers") }
        guard (1...16384).contains(buffers.count),
            buffers.allSatisfy({ $0.baseAddress != nil && (1...(1 << 30)).contains($0.count) })
        else { throw LoopError(.invalidArgument, operation: "registerBuffers") }
        if !registeredBuffers.isEmpty { throw LoopError(.resourceBusy, operation: "registerBuffers") }
        let vectors = buffers.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        let r = vectors.withUnsafeBufferPointer { backend.registerBuffers(UnsafeRawPointer($0.baseAddress!), count: $0.count) }
        if r < 0 { throw LoopError(.init(rawValue: -r), operation: "registerBuffers") }
        registeredBuffers = buffers
    }

    /// Removes the table of registered buffers, so that another can be registered; the memory is
    /// the caller's again.
    /// - Throws: ``LoopError`` (`unregisterBuffers`): `ENXIO` when there is no table, `EBUSY` while
    ///   submitted operations still use it, `EBADF` on a closed loop, or the kernel's error.
    public func unregisterBuffers() throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "unregisterBuffers") }
        if registeredBuffers.isEmpty { throw LoopError(.noSuchAddressOrDevice, operation: "unregisterBuffers") }
        if registeredBufferUsers > 0 { throw LoopError(.resourceBusy, operation: "unregisterBuffers") }
        let r = backend.unregisterBuffers()
        if r < 0 { throw LoopError(.init(rawValue: -r), operation: "unregisterBuffers") }
        registeredBuffers = []
    }

    /// The number of registered buffers (0 without a table).
    public var registeredBufferCount: Int { registeredBuffers.count }

    /// Checks an operation on a registered buffer at submission: a read or write whose bytes lie
    /// inside the buffer it names. Returns 0 or -errno.
    private func checkRegisteredBuffer(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        let kind = op.pointee.kind
        guard kind == .read || kind == .write else { return -EINVAL }
        let index = Int(op.pointee.tableIndex)
        guard index >= 0, index < registeredBuffers.count, let start = op.pointee.buffer else { return -EFAULT }
        let buffer = registeredBuffers[index]
        let low = UInt(bitPattern: buffer.baseAddress), address = UInt(bitPattern: start)
        let length = UInt(clamping: op.pointee.length)
        guard address >= low, length <= UInt(buffer.count), address - low <= UInt(buffer.count) - length else {
            return -EFAULT
        }
        return 0
    }

    /// A free buffer group id for a new ring, or nil when all 65536 are taken.
    func freeBufferGroup() -> UInt16? {
        if let free = bufferRings.firstIndex(where: { $0 == nil }) { return UInt16(free) }
        return bufferRings.count < 65536 ? UInt16(bufferRings.count) : nil
    }

    /// Keeps a new ring until it or the loop is closed.
    func adopt(_ ring: LoopBufferRing) {
        let group = Int(ring.group)
        if group == bufferRings.count { bufferRings.append(ring) } else { bufferRings[group] = ring }
    }

    /// Drops a ring that is being closed, freeing its group id.
    func disown(_ ring: LoopBufferRing) {
        let group = Int(ring.group)
        if group < bufferRings.count, bufferRings[group] === ring { bufferRings[group] = nil }
    }

    /// The open ring a multishot receive names, if it is one of this loop's.
    package func bufferRing(of op: UnsafeMutablePointer<LoopOperation>) -> LoopBufferRing? {
        let group = Int(op.pointee.mode)
        guard let raw = op.pointee.address2, group < bufferRings.count, let ring = bufferRings[group],
            Unmanaged.passUnretained(ring).toOpaque() == raw, !ring.isClosed
        else { return nil }
        return ring
    }

    /// The ring of a multishot receive that passed ``submit(_:callback:context:)`` (it is kept
    /// open while the receive is pending).
    package static func acceptedRing(of op: UnsafeMutablePointer<LoopOperation>) -> LoopBufferRing? {
        guard let raw = op.pointee.address2 else { return nil }
        return Unmanaged<LoopBufferRing>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Reports one result of a multishot operation that stays armed: runs the callback with
    /// ``LoopOperation/hasMore`` set, leaving the operation pending. Backends call it while waiting.
    package func completeMore(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) {
        guard op.pointee.state == .pending else { return }
        op.pointee.rawResult = result
        op.pointee.more = true
        let callback = op.pointee.callback
        let context = op.pointee.context
        callback?(UnsafeMutableRawPointer(op), context)
        op.pointee.more = false
    }

    /// Reports a completion now: runs the callback. Backends call it while waiting.
    package func complete(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) {
        // A stray second completion (a kernel or backend bug) must not run a callback twice.
        guard op.pointee.state == .pending else { return }
        var r = result
        // (In this order, so that where `result` is known not to be an error the first test folds away.)
        if r == -EINTR && op.pointee.cancelRequested {
            r = -ECANCELED
        } else if op.pointee.kind == .processWait && r >= 0 {
            r = LoopSystem.reapProcess(op)
        }
        markCompleting(op)
        if op.pointee.extras != 0 { r = completeExtras(op, result: r) }
        finish(op, result: r)
    }

    /// ``complete(_:result:)`` for what `UringBackend.isPlain` lets through: a pending
    /// operation without extras, not a process wait, with a result that is not an error. The
    /// io_uring drain's path for nearly every completion.
    @inline(__always)
    package func completePlain(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) {
        markCompleting(op)
        finish(op, result: result)
    }

    /// The loop's half of the handshake in `LoopRemote.requestCancel`: mark, then look. (The hints
    /// keep the rare branches out of the completion path's straight line.)
    @inline(__always)
    private func markCompleting(_ op: UnsafeMutablePointer<LoopOperation>) {
        weft_flag_store(op.pointer(to: \.completing)!, 1)
        if _slowPath(remote.completionsFence) { atomicMemoryFence(ordering: .sequentiallyConsistent) }
        if _slowPath(remote.queued.load(ordering: .acquiring) > 0) { remote.withdrawCancel(op) }
    }

    /// Records the result and runs the callback.
    @inline(__always)
    private func finish(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) {
        op.pointee.rawResult = result
        op.pointee.state = .completed
        op.pointee.cancelRequested = false
        op.pointee.place = OperationPlace.none
        pendingCount &-= 1
        let callback = op.pointee.callback
        let context = op.pointee.context
        callback?(UnsafeMutableRawPointer(op), context)
    }

    /// Reports a completion whose callback runs at the next delivery point (never inside the caller).
    package func completeLater(_ op: UnsafeMutablePointer<LoopOperation>, result: Int32) {
        op.pointee.rawResult = result
        op.pointee.place = OperationPlace.ready
        op.pointee.next = nil
        if let tail = readyTail { tail.pointee.next = op } else { readyHead = op }
        readyTail = op
    }

    /// Hands an operation to the thread pool; a failure to start any thread completes it with the error.
    package func runOnPool(_ op: UnsafeMutablePointer<LoopOperation>) {
        let r = pool.enqueue(op)
        if r < 0 { completeLater(op, result: r) }
    }

    private func tick(timeout: Int64?) throws(LoopError) {
        var wait = timeout
        // Sequentially consistent, as the other threads' sides (see `LoopRemote.wake()`); plain
        // loads on x86.
        if readyHead != nil || remote.queued.load(ordering: .sequentiallyConsistent) > 0
            || remote.stopRequested.load(ordering: .sequentiallyConsistent)
        {
            wait = 0
        } else if let untilTimer = nanosecondsToEarliestTimer(), wait == nil || untilTimer < wait! {
            wait = untilTimer
        }
        if simulatedWaitFailures > 0 { try failSimulatedWait() }
        if let uring {
            _ = try uring.takeUnretainedValue().wait(loop: self, timeoutNanoseconds: wait)
        } else {
            _ = try backend.wait(loop: self, timeoutNanoseconds: wait)
        }
        // (Sequentially consistent: see `LoopRemote.wake()`.)
        if remote.queued.load(ordering: .sequentiallyConsistent) > 0 { drainRemote() }
        if !timers.isEmpty { fireExpiredTimers() }
        dispatchReady()
    }

    @inline(never)
    private func failSimulatedWait() throws(LoopError) {
        simulatedWaitFailures -= 1
        throw LoopError(simulatedWaitError, operation: backendKind == .epoll ? "epoll_wait" : "io_uring_enter")
    }

    private func fireExpiredTimers() {
        let now = LoopSystem.now(.monotonic)
        while let first = timers.earliest, first.pointee.deadline <= now {
            _ = timers.popFirst()
            if first.pointee.kind == .timer {
                completeLater(first, result: 0)
            } else if first.pointee.state == .pending && !first.pointee.cancelRequested {
                // An operation's deadline: cancel it; its completion reports ETIME.
                first.pointee.timedOut = true
                cancel(first)
            }
        }
    }

    private func drainRemote() {
        var completed = remote.drain { op in self.cancel(op) }
        while let op = completed {
            completed = op.pointee.completedNext
            op.pointee.completedNext = nil
            complete(op, result: op.pointee.rawResult)
        }
    }

    private func dispatchReady() {
        var op = readyHead
        readyHead = nil
        readyTail = nil
        while let current = op {
            op = current.pointee.next
            current.pointee.next = nil
            complete(current, result: current.pointee.rawResult)
        }
    }
}
