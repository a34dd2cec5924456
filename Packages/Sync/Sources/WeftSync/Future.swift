/// A value set once and read by any number of waiters.
///
/// **Fairness:** ``set(_:)`` releases every waiter at once.
public final class Future<Value: Sendable>: Sendable {
    struct State: QueuedState, @unchecked Sendable {
        var value: Value?
        var waiters = WaitQueue()
    }
    let state = Guarded(State())

    /// Creates a future with no value yet.
    public init() {}

    /// Whether the value is set (a snapshot).
    public var isSet: Bool { state.withLock { $0.value != nil } }

    /// Sets the value and releases every waiter.
    /// - Parameter value: The value.
    /// - Throws: ``SyncError/alreadySet(operation:)`` if it was set before (the first value stays).
    public func set(_ value: Value) throws(SyncError) {
        let woken = try state.withLock { state throws(SyncError) -> WaitQueue in
            if state.value != nil { throw .alreadySet(operation: "Future.set") }
            state.value = value
            return state.waiters.claimAll()
        }
        woken.wakeAll()
    }

    /// The value if it is set.
    public func tryGet() -> Value? { state.withLock { $0.value } }

    /// Parks until the value is set and returns it. A suspension point.
    /// - Returns: The value.
    /// - Throws: `CancellationError`.
    public func get() throws -> Value { try get(timeout: nil) }

    /// Parks until the value is set, at most `timeout`.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Returns: The value.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func get(timeout: Duration?) throws -> Value {
        state.lock()
        let shared = state.storage
        if let value = shared.pointee.value {
            state.unlock()
            return value
        }
        try state.waitHoldingLock("Future.get", timeout: timeout, cancellable: true)
        return state.withLock { $0.value! }
    }
}
