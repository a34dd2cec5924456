/// A manual-reset event: once ``set()``, every waiter and every later ``wait()`` passes until
/// ``reset()``.
///
/// **Fairness:** ``set()`` releases all waiters at once; there is no queue order to keep.
public final class ResetEvent: Sendable {
    struct State: QueuedState {
        var isSet = false
        var waiters = WaitQueue()
    }
    let state = Guarded(State())

    /// Creates an event, initially not set.
    public init() {}

    /// Whether the event is set (a snapshot).
    public var isSet: Bool { state.withLock { $0.isSet } }

    /// Sets the event and releases every waiter.
    public func set() {
        let woken = state.withLock { state in
            state.isSet = true
            return state.waiters.claimAll()
        }
        woken.wakeAll()
    }

    /// Clears the event: later waits park until the next ``set()``.
    public func reset() { state.withLock { $0.isSet = false } }

    /// Parks until the event is set (returns at once if it is). A suspension point.
    /// - Throws: `CancellationError`.
    public func wait() throws { try wait(timeout: nil) }

    /// Parks until the event is set, at most `timeout`.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(timeout: Duration?) throws {
        state.lock()
        let shared = state.storage
        if shared.pointee.isSet {
            state.unlock()
            return
        }
        try state.waitHoldingLock("ResetEvent.wait", timeout: timeout, cancellable: true)
    }
}
