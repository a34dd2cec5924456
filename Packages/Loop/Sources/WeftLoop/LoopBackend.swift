/// The mechanism a loop runs on.
public enum LoopBackendKind: String, Sendable, CustomStringConvertible {
    /// io_uring through liburing: the kernel performs the operations and posts completions.
    case ioUring = "io_uring"
    /// epoll: the loop tries each call and waits for readiness when it would block.
    case epoll
    /// The scripted backend tests use to play the kernel.
    case scripted

    /// The name `WEFT_BACKEND` accepts.
    public var description: String { rawValue }
}

/// What a backend does for the loop. One implementation per file; the loop picks one at run time and
/// the same conformance suite runs on each. All calls happen on the loop's thread.
package protocol LoopBackend: AnyObject {
    /// Which backend this is.
    var kind: LoopBackendKind { get }

    /// A descriptor that becomes readable when the loop has work, for embedding it in another loop.
    var pollDescriptor: Int32 { get }

    /// Whether the loop keeps this timer in its own deadline heap (one wait for all of them) rather
    /// than handing it to the backend: false only where the kernel must follow a clock's jumps.
    func keepsTimerInLoop(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool

    /// Starts a submitted operation. Completions are reported through ``Loop/complete(_:result:)``
    /// (from ``wait(loop:timeoutNanoseconds:)``) or ``Loop/completeLater(_:result:)``, never from here
    /// directly, so a callback never runs inside `submit`.
    func submit(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop)

    /// Performs a descriptor operation at once when it can complete without waiting and nothing is
    /// queued ahead of it on that descriptor: its result (not `-EAGAIN`), or `nil` to submit it.
    func attemptNow(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32?

    /// Cancels a pending operation: it must complete exactly once, with ECANCELED or its natural
    /// result if that won the race.
    func cancel(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop)

    /// Pushes queued submissions to the kernel, waits for events (nil: until one arrives, 0: not at
    /// all; the loop has already shortened it to its earliest timer), and reports completions. Returns whether any event (a completion or a wake) arrived.
    func wait(loop: Loop, timeoutNanoseconds: Int64?) throws(LoopError) -> Bool

    /// Cancels everything still pending, for ``Loop/close()``.
    func cancelAll(loop: Loop)

    /// Forgets what the backend knows about a descriptor that is about to be closed.
    func forget(_ descriptor: Int32, loop: Loop)

    /// Releases the backend's kernel resources; no call follows.
    func shutdown()

    /// Registers a provided buffer ring (io_uring) under `group`; `entries` is nil for backends where
    /// the loop picks buffers itself. Returns 0 or -errno.
    func registerBufferRing(entries: UnsafeMutableRawPointer?, count: Int, group: UInt16) -> Int32

    /// Unregisters the ring of `group`. Returns 0 or -errno.
    func unregisterBufferRing(group: UInt16) -> Int32

    /// Whether the backend enforces this operation's deadline itself (io_uring's linked timeouts);
    /// otherwise the loop's timer heap cancels it when the deadline passes.
    func enforcesDeadline(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool

    /// Whether operations on registered files keep the slot (the kernel resolves it) rather than
    /// the descriptor the loop looks up in its table at submission.
    var resolvesRegisteredFiles: Bool { get }

    /// Creates an empty table of `count` registered files. Returns 0 or -errno.
    func registerFiles(count: Int) -> Int32

    /// Puts a descriptor in a slot of the table (-1 empties it). Returns 0 or -errno.
    func updateFile(slot: Int, descriptor: Int32) -> Int32

    /// Registers the loop's table of buffers, `count` `struct iovec`s at `vectors`, with the kernel
    /// (io_uring pins their pages once, so the operations on them skip that per call). Returns 0 or
    /// -errno.
    func registerBuffers(_ vectors: UnsafeRawPointer, count: Int) -> Int32

    /// Drops the kernel's table of buffers. Returns 0 or -errno.
    func unregisterBuffers() -> Int32
}

extension LoopBackend {
    /// Backends whose buffers the loop picks need no registration.
    func registerBufferRing(entries: UnsafeMutableRawPointer?, count: Int, group: UInt16) -> Int32 { 0 }

    /// Backends whose buffers the loop picks need no registration.
    func unregisterBufferRing(group: UInt16) -> Int32 { 0 }

    /// By default the loop's timer heap enforces deadlines.
    func enforcesDeadline(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool { false }

    /// By default the loop resolves registered files itself.
    var resolvesRegisteredFiles: Bool { false }

    /// By default the table is the loop's alone.
    func registerFiles(count: Int) -> Int32 { 0 }

    /// By default the table is the loop's alone.
    func updateFile(slot: Int, descriptor: Int32) -> Int32 { 0 }

    /// By default operations use the buffer's address as given; the table is the loop's alone.
    func registerBuffers(_ vectors: UnsafeRawPointer, count: Int) -> Int32 { 0 }

    /// By default the table is the loop's alone.
    func unregisterBuffers() -> Int32 { 0 }
}
