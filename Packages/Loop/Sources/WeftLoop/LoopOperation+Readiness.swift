import SystemPackage

extension LoopOperation {
    /// Completes once an operation that does nothing has gone through the loop (result 0): the
    /// measure of the loop's own cost per operation.
    /// - Returns: The operation, ready to submit.
    public static func nop() -> LoopOperation { LoopOperation(kind: .nop) }

    /// Waits until a descriptor is ready (`poll(2)` semantics, one shot). The result is the ready
    /// events (`POLLIN`, `POLLOUT`, `POLLERR`, `POLLHUP`, …). Works on any pollable descriptor,
    /// including ones owned by C libraries.
    /// - Parameters:
    ///   - descriptor: Any pollable descriptor.
    ///   - events: The `POLL*` events of interest.
    /// - Returns: The operation, ready to submit.
    public static func poll(_ descriptor: FileDescriptor, events: Int16) -> LoopOperation {
        var op = LoopOperation(kind: .poll)
        op.fd = descriptor.rawValue
        op.flags = UInt32(UInt16(bitPattern: events))
        return op
    }

    /// Waits for a child process to exit and reaps it (`waitid(P_PIDFD)` once its pidfd is readable).
    /// The result is 0; ``processExitCode`` and ``processExitStatus`` describe how it ended.
    /// - Parameter pidfd: A pidfd of a child of this process (see ``Loop/openProcessDescriptor(_:)``).
    /// - Returns: The operation, ready to submit.
    public static func processWait(_ pidfd: FileDescriptor) -> LoopOperation {
        var op = LoopOperation(kind: .processWait)
        op.fd = pidfd.rawValue
        return op
    }

    /// How a waited-for child ended: `CLD_EXITED` (1), `CLD_KILLED` (2) or `CLD_DUMPED` (3).
    public var processExitCode: Int32 { Int32(bitPattern: mode) }

    /// The child's exit status for `CLD_EXITED`, or the signal number that ended it.
    public var processExitStatus: Int32 { fd2 }

    /// Runs `work(argument)` on the loop's thread pool; its return value is the result. Use it for
    /// blocking calls that have no asynchronous form.
    /// - Parameters:
    ///   - work: The function to run on a pool thread.
    ///   - argument: Passed to `work`.
    /// - Returns: The operation, ready to submit.
    public static func work(_ work: LoopWork, argument: UnsafeMutableRawPointer?) -> LoopOperation {
        var op = LoopOperation(kind: .work)
        op.work = work
        op.buffer = argument
        return op
    }
}

/// A clock a timer measures.
public enum LoopClock: Sendable {
    /// `CLOCK_MONOTONIC`: never jumps, stops while the system is suspended.
    case monotonic
    /// `CLOCK_REALTIME`: wall-clock time; absolute deadlines follow changes to it (io_uring backend).
    case realtime
    /// `CLOCK_BOOTTIME`: like monotonic, but counts time spent suspended (io_uring backend).
    case boottime

    /// The clock's current time.
    /// - Returns: The time now on this clock.
    public func now() -> TimeSpec { TimeSpec(nanoseconds: LoopSystem.now(self)) }
}

extension LoopOperation {
    /// Fires after an interval (result 0).
    /// - Parameters:
    ///   - interval: How long to wait; negative means at once.
    ///   - clock: The clock that measures the interval.
    /// - Returns: The operation, ready to submit.
    public static func timer(after interval: Duration, clock: LoopClock = .monotonic) -> LoopOperation {
        var op = LoopOperation(kind: .timer)
        op.time = TimeSpec(interval)
        op.flags = LoopOperation.timerFlags(clock: clock, absolute: false)
        return op
    }

    /// Fires at a deadline on a clock (result 0); a deadline in the past fires at once.
    /// - Parameters:
    ///   - deadline: The time on `clock` at which to fire (see ``LoopClock/now()``).
    ///   - clock: The clock the deadline refers to.
    /// - Returns: The operation, ready to submit.
    public static func timer(at deadline: TimeSpec, clock: LoopClock = .monotonic) -> LoopOperation {
        var op = LoopOperation(kind: .timer)
        op.time = deadline
        op.flags = LoopOperation.timerFlags(clock: clock, absolute: true)
        return op
    }

    package static let timerAbsolute: UInt32 = 1
    package static let timerBoottime: UInt32 = 4
    package static let timerRealtime: UInt32 = 8

    static func timerFlags(clock: LoopClock, absolute: Bool) -> UInt32 {
        var flags: UInt32 = absolute ? timerAbsolute : 0
        switch clock {
        case .monotonic: break
        case .realtime: flags |= timerRealtime
        case .boottime: flags |= timerBoottime
        }
        return flags
    }
}
