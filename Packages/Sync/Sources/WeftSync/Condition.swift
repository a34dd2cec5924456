/// A condition variable used with a ``Mutex`` (or ``RecursiveMutex``): ``wait(_:)`` releases the
/// mutex and parks atomically with respect to ``signal()`` and ``broadcast()``, and owns the mutex
/// again when it returns or throws.
///
/// **Fairness:** ``signal()`` wakes the longest waiter (FIFO); the woken waiter then queues for the
/// mutex like any other locker (hand-off there). Spurious wake-ups do not happen, but re-check the
/// predicate in a loop anyway: another fiber may change it before the waiter gets the mutex.
public final class Condition: Sendable {
    let waiters = Guarded(WaitQueue())

    /// Creates a condition.
    public init() {}

    /// Releases `mutex`, parks until signalled, and takes `mutex` again. A suspension point.
    /// - Parameter mutex: A mutex the caller owns.
    /// - Throws: `CancellationError`; ``SyncError/notOwner(operation:)`` if the caller does not own
    ///   `mutex`. The caller owns `mutex` again in every case but the last.
    public func wait(_ mutex: Mutex) throws { try wait(mutex.core, timeout: nil) }

    /// Like ``wait(_:)``, at most `timeout`.
    /// - Parameters:
    ///   - mutex: A mutex the caller owns.
    ///   - timeout: The longest wait.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, ``SyncError/notOwner(operation:)``.
    public func wait(_ mutex: Mutex, timeout: Duration) throws { try wait(mutex.core, timeout: timeout) }

    /// Releases every level of `mutex`, parks until signalled, and takes it back at the same depth.
    /// - Parameters:
    ///   - mutex: A recursive mutex the caller owns.
    ///   - timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, ``SyncError/notOwner(operation:)``.
    public func wait(_ mutex: RecursiveMutex, timeout: Duration? = nil) throws { try wait(mutex.core, timeout: timeout) }

    private func wait(_ lock: LockCore, timeout: Duration?) throws {
        guard lock.isOwnedByCaller else { throw SyncError.notOwner(operation: "Condition.wait") }
        var depth = 0
        var released = false
        var failure: (any Error)? = nil
        do {
            _ = try blockingWait(
                "Condition.wait", timeout: timeout, cancellable: true,
                enqueue: { node in
                    guard let node else { return .waiting }
                    waiters.withLock { $0.append(node) }
                    // Queued before the mutex is released: a signal sent after that finds the node.
                    depth = (try? lock.unlockAll("Condition.wait")) ?? 1
                    released = true
                    return .waiting
                },
                dequeue: { node in waiters.withLock { $0.remove(node) } })
        } catch {
            failure = error
        }
        if released { lock.relock(depth: depth) }
        if let failure { throw failure }
    }

    /// Wakes the longest waiter, if any.
    public func signal() {
        let waiter = waiters.withLock { $0.claimFirst() }
        if let waiter { Parking.wake(waiter.pointee.parking) }
    }

    /// Wakes every waiter.
    public func broadcast() {
        let woken = waiters.withLock { $0.claimAll() }
        woken.wakeAll()
    }
}

import WeftRuntime
