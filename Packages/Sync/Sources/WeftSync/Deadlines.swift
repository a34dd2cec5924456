// Deadline variants of the blocking calls: a deadline is turned into the time left when the call
// starts (a deadline already past still tries once, like a zero timeout).

/// The time from now until `deadline`, at least zero.
func remaining(until deadline: ContinuousClock.Instant) -> Duration {
    max(.zero, deadline - ContinuousClock.now)
}

extension Mutex {
    /// Takes the lock, waiting until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, ``SyncError/alreadyOwned(operation:)``.
    public func lock(deadline: ContinuousClock.Instant) throws { try lock(timeout: remaining(until: deadline)) }
}

extension Semaphore {
    /// Takes a permit, waiting until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(deadline: ContinuousClock.Instant) throws { try wait(timeout: remaining(until: deadline)) }
}

extension ResetEvent {
    /// Waits for the event until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(deadline: ContinuousClock.Instant) throws { try wait(timeout: remaining(until: deadline)) }
}

extension Notify {
    /// Waits for a notification until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func wait(deadline: ContinuousClock.Instant) throws { try wait(timeout: remaining(until: deadline)) }
}

extension Future {
    /// Waits for the value until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Returns: The value.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func get(deadline: ContinuousClock.Instant) throws -> Value { try get(timeout: remaining(until: deadline)) }
}

extension RwLock {
    /// Takes a read lock, waiting until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func readLock(deadline: ContinuousClock.Instant) throws { try readLock(timeout: remaining(until: deadline)) }

    /// Takes the write lock, waiting until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`,
    ///   ``SyncError/alreadyOwned(operation:)``.
    public func writeLock(deadline: ContinuousClock.Instant) throws { try writeLock(timeout: remaining(until: deadline)) }
}

extension Condition {
    /// Like ``wait(_:)``, until `deadline` at the latest.
    /// - Parameters:
    ///   - mutex: A mutex the caller owns.
    ///   - deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, ``SyncError/notOwner(operation:)``.
    ///   The caller owns `mutex` again in every case but the last.
    public func wait(_ mutex: Mutex, deadline: ContinuousClock.Instant) throws {
        try wait(mutex, timeout: remaining(until: deadline))
    }

    /// Releases every level of `mutex` and waits like ``wait(_:)``, until `deadline` at the latest.
    /// - Parameters:
    ///   - mutex: A recursive mutex the caller owns.
    ///   - deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, ``SyncError/notOwner(operation:)``.
    public func wait(_ mutex: RecursiveMutex, deadline: ContinuousClock.Instant) throws {
        try wait(mutex, timeout: remaining(until: deadline))
    }
}

extension Barrier {
    /// Waits for the round to fill, until `deadline` at the latest (a caller that gives up no
    /// longer counts as arrived).
    /// - Parameter deadline: When to give up.
    /// - Returns: `true` for the last caller of the round.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    @discardableResult
    public func wait(deadline: ContinuousClock.Instant) throws -> Bool { try wait(timeout: remaining(until: deadline)) }
}

extension Channel {
    /// Sends a value, waiting until `deadline` at the latest.
    /// - Parameters:
    ///   - value: The value.
    ///   - deadline: When to give up.
    /// - Throws: ``SyncError/timedOut(operation:)``, ``SyncError/closed(operation:)``,
    ///   `CancellationError`; in each case the value was not delivered.
    public func send(_ value: Element, deadline: ContinuousClock.Instant) throws {
        try send(value, timeout: remaining(until: deadline))
    }

    /// Receives a value, waiting until `deadline` at the latest.
    /// - Parameter deadline: When to give up.
    /// - Returns: The value.
    /// - Throws: ``SyncError/timedOut(operation:)``, ``SyncError/closed(operation:)``, `CancellationError`.
    public func receive(deadline: ContinuousClock.Instant) throws -> Element {
        try receive(timeout: remaining(until: deadline))
    }
}

/// ``select(_:timeout:)`` with a deadline instead of a timeout.
/// - Parameters:
///   - cases: The arms.
///   - deadline: When to give up.
/// - Returns: The winning arm's result.
/// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, or what the winning arm throws.
public func select<R>(_ cases: SelectCase<R>..., deadline: ContinuousClock.Instant) throws -> R {
    try select(cases, timeout: remaining(until: deadline))
}
