internal import Glibc
import SystemPackage
import WeftContext
import WeftLoop

/// The fiber-blocking API: calls made from inside a fiber that park only the fiber.
///
/// Every call here is a *suspension point*: it throws `CancellationError` once if the fiber was
/// cancelled (outside a ``withCancellationShield(_:)``). Called outside a fiber of a running
/// ``Runtime``, each throws ``FiberError/notInFiber(operation:)``.
public enum Fiber {
    /// Whether the calling code runs in a fiber.
    public static var isInFiber: Bool { Executor.currentFiber != nil }

    /// The index of the executor running the calling fiber or thread, or `nil` outside a runtime.
    /// It may change after any suspension point (fibers migrate).
    public static var executorIndex: Int? { Executor.current?.index }

    /// Whether the calling fiber has a cancellation waiting to be delivered (`false` inside a
    /// shield, after delivery, and outside a fiber).
    public static var isCancelled: Bool { Executor.currentFiber?.cancelPending ?? false }

    /// Throws `CancellationError` if the calling fiber has a cancellation waiting (once).
    /// - Throws: `CancellationError`.
    public static func checkCancellation() throws(CancellationError) {
        try Executor.currentFiber?.checkCancellation()
    }

    @inline(__always)
    static func requireFiber(_ operation: StaticString) throws(FiberError) -> FiberCore {
        guard let fiber = Executor.currentFiber else { throw .notInFiber(operation: operation) }
        return fiber
    }

    /// Starts a fiber on the calling executor (it runs after the caller next suspends, or on an
    /// idle executor that steals it). At most one allocation, the fiber object, and none when the
    /// object of a fiber that finished on this executor is free for reuse; the stack comes from the
    /// pool when it first runs.
    /// - Parameter body: The fiber's body, nonisolated (it may run on any executor).
    /// - Returns: A handle to join, cancel or detach the fiber.
    /// - Throws: ``FiberError/notInFiber(operation:)`` outside a runtime thread (use
    ///   ``Runtime/spawn(_:)`` there); ``FiberError/runtimeStopped`` from a task running on an
    ///   executor once every fiber has finished (the runtime is stopping).
    @inlinable
    public static func spawn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws(FiberError) -> JoinHandle<T> {
        let fiber = try FiberCore.obtainHere(thunk: FiberCore.thunk(for: T.self))
        fiber.holdBody(body)
        FiberCore.startHere(fiber)
        return JoinHandle(fiber: fiber)
    }

    /// Lets the other runnable fibers run, then continues (possibly on another executor).
    /// - Throws: `CancellationError` if the fiber was cancelled; ``FiberError/notInFiber(operation:)``.
    public static func yield() throws {
        guard let executor = Executor.currentUnmanaged else { throw FiberError.notInFiber(operation: "yield") }
        // No reference counting on this path: the executor and the running fiber outlive the call.
        let (me, target) = executor._withUnsafeGuaranteedRef { e -> (ExecutionContext?, ExecutionContext) in
            guard let running = e.running else { return (nil, e.resumer) }
            return running._withUnsafeGuaranteedRef { fiber in
                if fiber.cancelPending { return (nil, e.resumer) }
                return (fiber.context!, e.switchTarget(after: fiber, action: .yield))
            }
        }
        guard let me else { return try yieldRefused() }
        me.switch(to: target)
        // Read the executor afresh: the fiber may have been resumed by another one.
        Executor.currentUnmanaged!._withUnsafeGuaranteedRef { $0.completeSwitch() }
    }

    /// The errors of ``yield()``, out of its way (a typed throw in the hot path costs a metadata
    /// lookup per call): the pending cancellation, or no fiber.
    @inline(never)
    private static func yieldRefused() throws {
        if let fiber = Executor.currentFiber, fiber.cancelPending { try fiber.deliverCancellation() }
        throw FiberError.notInFiber(operation: "yield")
    }

    /// Parks the fiber for `duration` (a loop timer).
    /// - Parameter duration: How long; zero or negative still passes through the loop once.
    /// - Throws: `CancellationError` if cancelled before or during the sleep;
    ///   ``FiberError/notInFiber(operation:)``.
    public static func sleep(for duration: Duration) throws {
        var op = LoopOperation.timer(after: duration)
        _ = try perform(&op)
    }

    /// Submits `operation` to the running executor's loop and parks the fiber until its callback.
    ///
    /// The operation lives in the caller's frame (on the fiber's stack): nothing is allocated. If
    /// the fiber is cancelled while it waits, the operation is cancelled in the loop and this
    /// throws `CancellationError` (unless the operation finished first: then its result counts).
    /// - Parameter operation: A fresh or completed operation (not pending), not a multishot one
    ///   (its later callbacks would outlive this call's frame: use the loop's callbacks for those).
    /// - Returns: The operation's non-negative result.
    /// - Throws: ``WeftLoop/LoopError`` naming the operation (`EINVAL` for a multishot operation);
    ///   `CancellationError`; ``FiberError/notInFiber(operation:)``.
    public static func perform(_ operation: inout LoopOperation) throws -> Int {
        try perform(&operation, eager: false)
    }

    /// ``perform(_:)``; with `eager`, on io_uring, the loop is polled right after the submission,
    /// so an operation the kernel completed as it took the entry (an `accept` with connections
    /// waiting) returns without a park and a turn at the back of the run queue.
    @inline(__always)
    private static func perform(_ operation: inout LoopOperation, eager: Bool) throws -> Int {
        // No reference counting: the executor and the running fiber outlive the call.
        guard let executor = Executor.currentUnmanaged,
            let fiber = executor._withUnsafeGuaranteedRef({ $0.running })
        else {
            throw FiberError.notInFiber(operation: operation.kind.name)
        }
        return try executor._withUnsafeGuaranteedRef { executor in
            try fiber._withUnsafeGuaranteedRef { fiber in try perform(&operation, on: executor, by: fiber, eager: eager) }
        }
    }

    @inline(__always)
    private static func perform(
        _ operation: inout LoopOperation, on executor: Executor, by fiber: FiberCore, eager: Bool
    ) throws -> Int {
        if operation.isMultishot { throw LoopError(.invalidArgument, operation: operation.kind.name) }
        try fiber.throwIfCancelled()
        let done = try withUnsafeMutablePointer(to: &operation) { op throws(LoopError) -> Bool in
            // A socket call that can complete now (epoll: data already there, room to write) does,
            // without a park; after a budget of those in a row the fiber yields, so a busy fiber
            // cannot starve the others or the loop. On io_uring every operation goes through the
            // ring, and the call is skipped.
            if executor.loop.triesAtOnce && executor.loop.completeNow(op) {
                executor.immediateBudget -= 1
                if executor.immediateBudget <= 0 {
                    executor.immediateBudget = Executor.immediateLimit
                    fiber.yieldNow()
                }
                return true
            }
            fiber.pendingOp = op
            fiber.ioExecutor.store(executor.index + 1, ordering: .sequentiallyConsistent)
            do throws(LoopError) {
                try executor.loop.submit(op, callback: fiberOperationCallback, context: Unmanaged.passUnretained(fiber).toOpaque())
            } catch {
                fiber.ioExecutor.store(0, ordering: .relaxed)
                fiber.pendingOp = nil
                throw error
            }
            // A cancel that came before `ioExecutor` was published did not see the operation.
            if fiber.cancelPending { executor.loop.cancel(op) }
            if eager && !executor.loop.triesAtOnce && fiber.completesEagerly(op, on: executor) { return false }
            fiber.park()
            return false
        }
        if done { return try operation.get() }
        let result = operation.result
        if result == -ECANCELED && fiber.cancelPending { try fiber.deliverCancellation() }
        return try operation.get()
    }

    // MARK: Sockets and files

    /// Accepts a connection on a listening socket.
    /// - Parameter descriptor: A listening socket.
    /// - Returns: The connected socket (close-on-exec; non-blocking on the epoll backend).
    /// - Throws: ``WeftLoop/LoopError`` (`accept`), `CancellationError`, ``FiberError``.
    public static func accept(_ descriptor: FileDescriptor) throws -> FileDescriptor {
        var op = LoopOperation.accept(descriptor)
        // Eager: an accepting fiber under load would otherwise take one connection per turn of the
        // run queue (about 550 a second behind 1000 busy connections, measured), where Go and
        // Tokio drain the backlog at once.
        return FileDescriptor(rawValue: Int32(try perform(&op, eager: true)))
    }

    /// Connects a socket.
    /// - Parameters:
    ///   - descriptor: A socket.
    ///   - address: The peer's `sockaddr`.
    ///   - length: Its length in bytes.
    /// - Throws: ``WeftLoop/LoopError`` (`connect`), `CancellationError`, ``FiberError``.
    public static func connect(_ descriptor: FileDescriptor, address: UnsafeRawPointer, length: Int) throws {
        var op = LoopOperation.connect(descriptor, address: address, length: length)
        _ = try perform(&op)
    }

    /// Creates a socket through the loop (close-on-exec; non-blocking on the epoll backend).
    /// - Parameters:
    ///   - domain: `AF_INET`, `AF_INET6`, `AF_UNIX`, …
    ///   - type: `SOCK_STREAM`, `SOCK_DGRAM`, …
    ///   - protocol: Usually 0.
    /// - Returns: The new socket.
    /// - Throws: ``WeftLoop/LoopError`` (`socket`), `CancellationError`, ``FiberError``.
    public static func socket(domain: Int32, type: Int32, protocol: Int32 = 0) throws -> FileDescriptor {
        var op = LoopOperation.socket(domain: domain, type: type, protocol: `protocol`)
        return FileDescriptor(rawValue: Int32(try perform(&op)))
    }

    /// Receives bytes from a socket.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - buffer: Where the bytes go.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The byte count; 0 at end of stream.
    /// - Throws: ``WeftLoop/LoopError`` (`recv`), `CancellationError`, ``FiberError``.
    @inlinable  // the operation is then built in the caller's frame, not copied into it
    public static func recv(_ descriptor: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0) throws -> Int {
        var op = LoopOperation.recv(descriptor, into: buffer.baseAddress, count: buffer.count, flags: flags)
        return try perform(&op)
    }

    /// Sends bytes on a socket (`MSG_NOSIGNAL`: a closed peer is an `EPIPE` error). May send fewer
    /// bytes than given; see ``sendAll(_:_:)``.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - buffer: The bytes.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The byte count sent.
    /// - Throws: ``WeftLoop/LoopError`` (`send`), `CancellationError`, ``FiberError``.
    @inlinable  // the operation is then built in the caller's frame, not copied into it
    public static func send(_ descriptor: FileDescriptor, _ buffer: UnsafeRawBufferPointer, flags: Int32 = 0) throws -> Int {
        var op = LoopOperation.send(descriptor, from: buffer.baseAddress, count: buffer.count, flags: flags)
        return try perform(&op)
    }

    /// Sends every byte of `buffer`, looping over short sends.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - buffer: The bytes.
    /// - Throws: ``WeftLoop/LoopError`` (`send`), `CancellationError`, ``FiberError``.
    public static func sendAll(_ descriptor: FileDescriptor, _ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < buffer.count {
            offset += try send(descriptor, UnsafeRawBufferPointer(rebasing: buffer[offset...]))
        }
    }

    /// Reads bytes from any descriptor (`pread` when `offset` is not -1).
    /// - Parameters:
    ///   - descriptor: A readable descriptor.
    ///   - buffer: Where the bytes go.
    ///   - offset: A file offset, or -1 for the current position.
    /// - Returns: The byte count; 0 at end of file.
    /// - Throws: ``WeftLoop/LoopError`` (`read`), `CancellationError`, ``FiberError``.
    @inlinable  // the operation is then built in the caller's frame, not copied into it
    public static func read(_ descriptor: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64 = -1) throws -> Int {
        var op = LoopOperation.read(descriptor, into: buffer.baseAddress, count: buffer.count, at: offset)
        return try perform(&op)
    }

    /// Writes bytes to any descriptor (`pwrite` when `offset` is not -1).
    /// - Parameters:
    ///   - descriptor: A writable descriptor.
    ///   - buffer: The bytes.
    ///   - offset: A file offset, or -1 for the current position.
    /// - Returns: The byte count written.
    /// - Throws: ``WeftLoop/LoopError`` (`write`), `CancellationError`, ``FiberError``.
    @inlinable  // the operation is then built in the caller's frame, not copied into it
    public static func write(_ descriptor: FileDescriptor, _ buffer: UnsafeRawBufferPointer, at offset: Int64 = -1) throws -> Int {
        var op = LoopOperation.write(descriptor, from: buffer.baseAddress, count: buffer.count, at: offset)
        return try perform(&op)
    }

    /// Waits until a descriptor is ready.
    /// - Parameters:
    ///   - descriptor: Any pollable descriptor.
    ///   - events: `POLL*` events of interest.
    /// - Returns: The ready events.
    /// - Throws: ``WeftLoop/LoopError`` (`poll`), `CancellationError`, ``FiberError``.
    public static func poll(_ descriptor: FileDescriptor, events: Int16) throws -> Int16 {
        var op = LoopOperation.poll(descriptor, events: events)
        return Int16(truncatingIfNeeded: try perform(&op))
    }

    /// Shuts down part of a connection.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - how: `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    /// - Throws: ``WeftLoop/LoopError`` (`shutdown`), `CancellationError`, ``FiberError``.
    public static func shutdown(_ descriptor: FileDescriptor, how: Int32) throws {
        var op = LoopOperation.shutdown(descriptor, how: how)
        _ = try perform(&op)
    }

    /// Closes a descriptor through the loop. Runs even in a cancelled fiber: closing is cleanup, so
    /// it is shielded.
    ///
    /// Close descriptors that fibers have used with this call, not `close(2)`: the epoll backend
    /// keeps per-descriptor state in every executor's loop that waited on it, and with several
    /// executors this call first has each of those loops forget the descriptor (operations still
    /// pending on it there complete with `ECANCELED`), so a reused descriptor number starts clean.
    /// - Parameter descriptor: The descriptor.
    /// - Throws: ``WeftLoop/LoopError`` (`close`), ``FiberError``.
    public static func close(_ descriptor: FileDescriptor) throws {
        guard let executor = Executor.current, let fiber = executor.current else {
            throw FiberError.notInFiber(operation: "close")
        }
        let runtime = executor.runtime
        if runtime.executors.count > 1 && executor.loop.backendKind == .epoll {
            // Every loop, this one included: the fiber may resume on another executor after the
            // park, and the loop that performs the close below must not be the only one told.
            let request = ForgetRequest(descriptor: descriptor, fiber: fiber, count: runtime.executors.count)
            for each in runtime.executors { each.requestForget(request) }
            fiber.park()
        }
        try withCancellationShield {
            var op = LoopOperation.close(descriptor)
            _ = try perform(&op)
        }
    }
}
