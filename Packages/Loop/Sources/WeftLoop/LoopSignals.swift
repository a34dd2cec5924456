internal import CWeftLoop
import SystemPackage

/// Signals delivered as readable data: the signals are blocked in the calling thread and a
/// `signalfd(2)` reports them. Submit a ``LoopOperation/read(_:into:count:at:)`` of ``infoSize``
/// bytes on ``descriptor``; each completion carries one `struct signalfd_siginfo`.
///
/// Blocking applies to the thread that creates it (threads started later inherit it). Signals sent
/// to the process may be taken by any thread that does not block them, so block them in every thread
/// (create this first, on the main thread) when the process must see them here.
public final class LoopSignals {
    /// The signalfd to read from (non-blocking, close-on-exec).
    public let descriptor: FileDescriptor
    private let signals: [Int32]
    private var closed = false

    /// The size of one `struct signalfd_siginfo`.
    public static let infoSize = 128

    /// Blocks the signals in this thread and opens a signalfd for them.
    /// - Parameter signals: Signal numbers such as `SIGINT`, `SIGTERM`, `SIGUSR1`.
    /// - Throws: ``LoopError`` named `signalfd`.
    public init(_ signals: [Int32]) throws(LoopError) {
        let fd = signals.withUnsafeBufferPointer { weft_signalfd($0.baseAddress, Int32($0.count)) }
        if fd < 0 { throw LoopError(.init(rawValue: -fd), operation: "signalfd") }
        descriptor = FileDescriptor(rawValue: fd)
        self.signals = signals
    }

    deinit { close() }

    /// Closes the descriptor and unblocks the signals in the calling thread. Idempotent.
    public func close() {
        if closed { return }
        closed = true
        _ = weft_close(descriptor.rawValue)
        _ = signals.withUnsafeBufferPointer { weft_unblock_signals($0.baseAddress, Int32($0.count)) }
    }

    /// The signal number in a `struct signalfd_siginfo` read from ``descriptor``.
    /// - Parameter info: At least ``infoSize`` bytes read from the descriptor.
    /// - Returns: `ssi_signo`.
    public static func signalNumber(_ info: UnsafeRawPointer) -> Int32 {
        Int32(bitPattern: info.loadUnaligned(as: UInt32.self))
    }

    /// The sending process in a `struct signalfd_siginfo` read from ``descriptor``.
    /// - Parameter info: At least ``infoSize`` bytes read from the descriptor.
    /// - Returns: `ssi_pid`.
    public static func senderProcess(_ info: UnsafeRawPointer) -> Int32 {
        Int32(bitPattern: info.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
    }
}
