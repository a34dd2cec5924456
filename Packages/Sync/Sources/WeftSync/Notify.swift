/// A wake-up signal between fibers and threads: ``notifyOne()`` wakes one waiter, or, when nobody
/// waits, leaves one permit so the next ``wait()`` returns at once (a notification is never lost);
/// ``notifyAll()`` wakes every current waiter and leaves no permit.
///
/// **Fairness: hand-off**, FIFO: ``notifyOne()`` wakes the longest waiter.
public final class Notify: Sendable {
    struct State: QueuedState {
        var permit = false
        var waiters = WaitQueue()
    }
    let state = Guarded(State())

    /// Creates a notify with no stored permit.
    public init() {}

    /// Wakes the longest waiter, or stores one permit (permits do not add up).
    public func notifyOne() {
        let waiter = state.withLock { state -> UnsafeMutablePointer<WaitNode>? in
            if let waiter = state.waiters.claimFirst() { return waiter }
            state.permit = true
            return nil
        }
        if let waiter { Parking.wake(waiter.pointee.parking) }
    }

    /// Wakes every fiber or thread waiting now.
    public func notifyAll() {
        let woken = state.withLock { $0.waiters.claimAll() }
        woken.wakeAll()
    }

    /// Parks until notified (or consumes the stored permit). A suspension point.
    /// - Throws: `CancellationError`.
    public func wait() throws { try wait(timeout: nil) }

    /// Parks until notified, at most `timeout`.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(timeout: Duration?) throws {
        state.lock()
        let shared = state.storage
        if shared.pointee.permit {
            shared.pointee.permit = false
            state.unlock()
            return
        }
        try state.waitHoldingLock("Notify.wait", timeout: timeout, cancellable: true)
    }
}

import WeftRuntime
