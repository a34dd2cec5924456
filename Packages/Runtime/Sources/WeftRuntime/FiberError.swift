import SystemPackage

/// Misuse of the runtime, reported as a typed error instead of a crash or a hang.
public enum FiberError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A fiber-blocking call (named) was made outside a fiber of a running ``Runtime``.
    case notInFiber(operation: StaticString)
    /// ``JoinHandle/join()`` or ``JoinHandle/value`` was called a second time for the same fiber.
    case alreadyJoined
    /// The fiber was detached with ``JoinHandle/detach()``; it can no longer be joined.
    case detached
    /// A fiber tried to join itself, which could never finish.
    case joinedItself
    /// ``Runtime/run(options:_:)`` was called from a thread that already runs an executor: it would
    /// block that executor's fibers.
    case nestedRuntime
    /// ``Runtime/spawn(_:)`` was called after every fiber had finished and the runtime was stopping.
    case runtimeStopped
    /// ``Group/wait()`` is already being called by another fiber for the same group.
    case groupAlreadyWaited
    /// ``Runtime/run(options:_:)`` could not start an executor thread (`pthread_create` failed, for
    /// example with `EAGAIN` at the process's thread limit); no fiber ran.
    case executorStartFailed(Errno)

    /// A message naming the misuse.
    public var description: String {
        switch self {
        case .notInFiber(let operation): "\(operation): called outside a fiber of a running Runtime"
        case .alreadyJoined: "join: the fiber was already joined"
        case .detached: "join: the fiber was detached"
        case .joinedItself: "join: a fiber cannot join itself"
        case .nestedRuntime: "Runtime.run: called on an executor thread of a running Runtime"
        case .runtimeStopped: "spawn: the runtime has stopped"
        case .groupAlreadyWaited: "Group.wait: another fiber is already waiting for this group"
        case .executorStartFailed(let errno): "Runtime.run: could not start an executor thread: \(errno)"
        }
    }

    /// Compares two errors (for ``notInFiber(operation:)``, by operation name).
    /// - Parameters:
    ///   - lhs: An error.
    ///   - rhs: Another error.
    /// - Returns: Whether both describe the same misuse.
    public static func == (lhs: FiberError, rhs: FiberError) -> Bool { lhs.description == rhs.description }
}

/// Thrown by ``Fiber/withTimeout(_:_:)`` when the time ran out before the body finished: a
/// cancellation that came from the timeout, kept distinct from `CancellationError`.
public struct TimeoutError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The time limit that expired.
    public let timeout: Duration

    /// Creates the error.
    /// - Parameter timeout: The time limit that expired.
    public init(timeout: Duration) { self.timeout = timeout }

    /// A message naming the limit.
    public var description: String { "withTimeout: timed out after \(timeout)" }
}
