import WeftRuntime

/// A counting semaphore: ``wait()`` takes a permit, parking while there is none; ``signal(_:)``
/// gives permits back.
///
/// **Fairness: hand-off.** A released permit goes straight to the longest waiter (FIFO); a newcomer
/// cannot take it first.
public final class Semaphore: Sendable {
    struct State: QueuedState {
        var permits: Int
        var waiters = WaitQueue()
    }
    let state: Guarded<State>

    /// Creates a semaphore.
    /// - Parameter permits: The initial number of permits (negative counts as 0).
    public init(permits: Int) { state = Guarded(State(permits: max(0, permits))) }

    /// The permits available now (a snapshot).
    public var availablePermits: Int { state.withLock { $0.permits } }

    /// Takes a permit if one is available.
    /// - Returns: Whether a permit was taken.
    public func tryWait() -> Bool {
        state.withLock { state in
            if state.permits > 0 {
                state.permits -= 1
                return true
            }
            return false
        }
    }

    /// Takes a permit, parking until one is available. A suspension point.
    /// - Throws: `CancellationError`.
    public func wait() throws { try wait(timeout: nil, "Semaphore.wait") }

    /// Takes a permit, waiting at most `timeout`.
    /// - Parameter timeout: The longest wait.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(timeout: Duration) throws { try wait(timeout: timeout, "Semaphore.wait") }

    private func wait(timeout: Duration?, _ operation: StaticString) throws {
        state.lock()
        let shared = state.storage
        if shared.pointee.permits > 0 {
            shared.pointee.permits -= 1
            state.unlock()
            return
        }
        try state.waitHoldingLock(operation, timeout: timeout, cancellable: true)
    }

    /// Returns `count` permits, each handed to a waiter if one waits.
    /// - Parameter count: How many permits (default 1).
    public func signal(_ count: Int = 1) {
        var woken = WaitQueue()
        state.withLock { state in
            for _ in 0..<max(0, count) {
                if let waiter = state.waiters.claimFirst() {
                    woken.appendClaimed(waiter)
                } else {
                    state.permits += 1
                }
            }
        }
        woken.wakeAll()
    }
}
