/// The function the loop calls when an operation completes.
///
/// It receives the operation's address (the pointer given to ``Loop/submit(_:callback:context:)``,
/// as a raw pointer because C function types cannot name Swift structs; use
/// ``LoopOperation/pointer(_:)`` to type it) and the context pointer given with it. The loop no longer
/// uses the operation when the callback runs, so the callback may submit it again, free it, or wake
/// whoever owns it; the exception is a multishot callback with ``LoopOperation/hasMore`` set, after
/// which the operation stays armed. Being a C function type, a callback captures nothing and costs no
/// allocation.
public typealias LoopCallback = @convention(c) (
    _ operation: UnsafeMutableRawPointer, _ context: UnsafeMutableRawPointer?
) -> Void

/// A function the loop's thread pool runs for a ``LoopOperation/work(_:argument:)`` operation; its
/// return value becomes the operation's result (negative values are read as `-errno`).
public typealias LoopWork = @convention(c) (_ argument: UnsafeMutableRawPointer?) -> Int32

/// One asynchronous operation: its parameters, its result, and the loop's bookkeeping for it.
///
/// The caller owns the memory. Create the value with one of the static constructors (such as
/// ``recv(_:into:count:flags:)`` or ``timer(after:clock:)``), place it at a stable address (allocated
/// memory, `withUnsafeTemporaryAllocation`, a fiber's stack), and hand that address to
/// ``Loop/submit(_:callback:context:)``. The memory must stay valid and untouched until the callback
/// runs; the loop allocates nothing per operation. After the callback, read ``result``, ``get()`` or
/// ``error`` and reuse the value freely.
///
/// Buffers, paths, addresses and message headers an operation points to must also stay valid until
/// its callback runs.
public struct LoopOperation {
    /// What the operation does.
    public internal(set) var kind: Kind
    package var state: State = .idle
    package var cancelRequested = false
    /// Where the backend keeps the operation while it is pending (backend-specific).
    package var place: UInt8 = 0
    package var remoteQueued = false
    /// Set (atomically, ``LoopRemote``) as the loop starts completing the operation, cleared when
    /// it is submitted: a cancel request from another thread that finds it set takes itself back.
    package var completing: UInt8 = 0
    // Declared next to the other one-byte and four-byte fields so they fill what would be padding.
    /// Set while a multishot operation's callback runs and more callbacks are to come.
    package var more = false
    /// Set when the operation's deadline passed before it completed.
    package var timedOut = false
    /// Which of the less common features the operation uses (``OperationExtras``), so the hot paths
    /// of plain operations test one byte and keep the rest out of line.
    package var extras: UInt8 = 0
    /// io_uring: cancel requests for this operation not yet answered by the kernel. While there are
    /// any, its final completion is held back (``heldCompletion``), so its memory stays the loop's
    /// until every request naming its address has come back.
    package var kernelCancels: UInt8 = 0
    package var heldCompletion = false
    /// Set while the operation counts as a user of the registered-buffer table (from a submission
    /// that passed the checks until its completion).
    package var holdsBufferTable = false
    /// Set while the operation counts as a user of its registered-file slot (from a submission
    /// that resolved the slot until its completion).
    package var holdsFileSlot = false
    package var rawResult: Int32 = 0
    package var fd: Int32 = -1
    // Every operation's submission and completion touch the fields above and the four below; they
    // come first so they share the first cache line.
    package var callback: LoopCallback? = nil
    package var context: UnsafeMutableRawPointer? = nil
    package var next: UnsafeMutablePointer<LoopOperation>? = nil
    package var prev: UnsafeMutablePointer<LoopOperation>? = nil
    package var flags: UInt32 = 0
    package var mode: UInt32 = 0
    package var fd2: Int32 = -1
    package var addressLength: UInt32 = 0
    /// The provided buffer a multishot receive filled, or -1.
    package var bufferID: Int32 = -1
    /// The registered-file slot the operation names instead of a descriptor, or -1.
    package var fixedSlot: Int32 = -1
    /// The registered buffer a read or write uses (``onRegisteredBuffer(_:)``), or the file-table
    /// slot a direct accept fills (-1: any free slot).
    package var tableIndex: Int32 = -1
    /// The operation's time limit in nanoseconds (0: none), from ``withTimeout(_:)``.
    package var timeout: UInt64 = 0
    package var buffer: UnsafeMutableRawPointer? = nil
    package var length: Int = 0
    package var offset: Int64 = -1
    package var offset2: Int64 = -1
    package var address: UnsafeMutableRawPointer? = nil
    package var address2: UnsafeMutableRawPointer? = nil
    package var time = TimeSpec(seconds: 0, nanoseconds: 0)
    package var deadline: UInt64 = 0
    package var heapIndex: Int = -1
    package var work: LoopWork? = nil
    package var remoteNext: UnsafeMutablePointer<LoopOperation>? = nil
    package var remotePrev: UnsafeMutablePointer<LoopOperation>? = nil
    package var completedNext: UnsafeMutablePointer<LoopOperation>? = nil

    package init(kind: Kind) { self.kind = kind }

    /// Types the raw operation pointer a ``LoopCallback`` receives.
    /// - Parameter raw: The first argument of the callback.
    /// - Returns: The same address as a typed pointer.
    @inline(__always)
    public static func pointer(_ raw: UnsafeMutableRawPointer) -> UnsafeMutablePointer<LoopOperation> {
        raw.assumingMemoryBound(to: LoopOperation.self)
    }

    /// The raw result: a non-negative value on success (a byte count, a descriptor, poll events), or
    /// `-errno` on failure. Valid once the callback has run.
    public var result: Int32 { rawResult }

    /// Whether the operation is submitted and its callback has not run yet.
    public var isPending: Bool { state == .pending }

    /// This operation with a time limit: if it has not completed `duration` after it is submitted,
    /// it is cancelled and completes with `ETIME` (``LoopError/code`` `.timeout`) instead of its
    /// result; if it completes first, the limit is dropped. Exactly one callback either way (a
    /// multishot operation gets its final callback with `ETIME`). The limit counts from each
    /// submission, so a re-armed operation gets it afresh.
    ///
    /// On io_uring an operation that goes to the kernel gets a linked timeout
    /// (`IORING_OP_LINK_TIMEOUT`, absolute on the monotonic clock, so waiting for readiness or in the
    /// backlog does not extend it); anything else, and every operation on epoll, is cancelled by the
    /// loop's timer heap. An operation that cannot be interrupted once running (one on the thread
    /// pool) completes with its natural result. Timers take no limit: submitting one with a limit
    /// completes it with `EINVAL`.
    /// - Parameter duration: The limit; zero or negative means the deadline has passed at submission.
    /// - Returns: The operation with the limit set.
    public func withTimeout(_ duration: Duration) -> LoopOperation {
        var op = self
        op.timeout = max(1, TimeSpec(duration).totalNanoseconds)
        op.extras |= OperationExtras.deadline
        return op
    }

    /// Whether the operation carries a time limit (``withTimeout(_:)``).
    public var hasTimeout: Bool { timeout != 0 }

    /// Whether the callback now running is not the last one for this submission.
    ///
    /// Always `false` for single-shot operations. A multishot operation
    /// (``acceptMultishot(_:)``, ``recvMultishot(_:ring:flags:)``) calls back once per result while it
    /// stays armed, with `hasMore` set: the operation is still pending, so the callback must not
    /// submit it again or free it (it may cancel it). The last callback has `hasMore == false`; after
    /// it the loop no longer uses the operation, as for any single-shot completion.
    public var hasMore: Bool { more }

    /// The index of the provided buffer that holds the bytes of a ``recvMultishot(_:ring:flags:)``
    /// callback, or `nil` when the callback carries no bytes (end of stream, an error). The buffer
    /// belongs to the caller until it is given back with ``LoopBufferRing/release(_:)``.
    public var bufferIndex: Int? { bufferID < 0 ? nil : Int(bufferID) }

    /// The failure, if the operation failed (including ``LoopError/isCancellation``), else `nil`.
    public var error: LoopError? {
        rawResult < 0 ? LoopError(.init(rawValue: -rawResult), operation: kind.name) : nil
    }

    /// The result as a value, or the failure as an error.
    /// - Returns: The non-negative result (a byte count, a descriptor, poll events, or zero).
    /// - Throws: ``LoopError`` carrying the `Errno` and this operation's name.
    public func get() throws(LoopError) -> Int {
        if rawResult < 0 { throw LoopError(.init(rawValue: -rawResult), operation: kind.name) }
        return Int(rawResult)
    }

    package enum State: UInt8 {
        /// Never submitted since it was created.
        case idle
        /// Submitted; its callback has not run yet.
        case pending
        /// Its callback ran (or is running).
        case completed
    }
}

/// The bits of ``LoopOperation/extras``.
package enum OperationExtras {
    /// A multishot operation.
    static let multishot: UInt8 = 1
    /// A multishot receive counted against its buffer ring.
    static let bufferRing: UInt8 = 2
    /// A deadline (``LoopOperation/withTimeout(_:)``).
    static let deadline: UInt8 = 4
    /// A registered-file slot instead of a descriptor.
    static let registeredFile: UInt8 = 8
    /// A read or write on a buffer of the loop's registered-buffer table.
    static let registeredBuffer: UInt8 = 16
    /// An accept whose connection goes into the loop's registered-file table.
    static let directAccept: UInt8 = 32
}

/// A point in time or an interval as seconds and nanoseconds, laid out as the kernel's timespec.
public struct TimeSpec: Equatable, Sendable {
    /// Whole seconds.
    public var seconds: Int64
    /// Nanoseconds within the second, `0..<1_000_000_000`.
    public var nanoseconds: Int64

    /// Creates a time from its parts.
    /// - Parameters:
    ///   - seconds: Whole seconds.
    ///   - nanoseconds: Nanoseconds within the second.
    public init(seconds: Int64, nanoseconds: Int64) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// Creates a time from a nanosecond count.
    /// - Parameter totalNanoseconds: Nanoseconds; negative values are clamped to zero.
    public init(nanoseconds totalNanoseconds: UInt64) {
        seconds = Int64(totalNanoseconds / 1_000_000_000)
        nanoseconds = Int64(totalNanoseconds % 1_000_000_000)
    }

    /// Creates an interval from a `Duration`; negative durations are clamped to zero.
    /// - Parameter duration: The interval.
    public init(_ duration: Duration) {
        let (s, attoseconds) = duration.components
        if s < 0 || (s == 0 && attoseconds < 0) {
            seconds = 0
            nanoseconds = 0
        } else {
            seconds = s
            nanoseconds = attoseconds / 1_000_000_000
        }
    }

    /// The time as a nanosecond count.
    public var totalNanoseconds: UInt64 { UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, nanoseconds)) }
}
