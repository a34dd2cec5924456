/// A fiber-aware mutual-exclusion lock: a fiber that waits for it parks (its executor keeps running
/// other fibers); an OS thread blocks.
///
/// **Fairness: hand-off.** Waiters queue in FIFO order and ``unlock()`` passes ownership directly to
/// the first of them, so a waiter cannot be overtaken (no barging) and nobody starves; the price is
/// a context switch per contended hand-over.
///
/// Ownership belongs to the fiber (or thread) that locked: a fiber keeps it across executors. Misuse
/// is reported, not trapped: unlocking a mutex the caller does not own throws
/// ``SyncError/notOwner(operation:)``, locking one it already owns throws
/// ``SyncError/alreadyOwned(operation:)`` (use ``RecursiveMutex`` to nest).
///
/// The type is `WeftSync.Mutex`; code that also imports `Synchronization` writes it qualified.
public final class Mutex: Sendable {
    let core: LockCore

    /// Creates an unlocked mutex.
    public init() { core = LockCore(recursive: false, name: "Mutex") }

    /// Takes the lock, parking the caller while another owner holds it. A suspension point.
    /// - Throws: `CancellationError` if the fiber is cancelled before it gets the lock;
    ///   ``SyncError/alreadyOwned(operation:)``.
    public func lock() throws { try core.lock("Mutex.lock", timeout: nil, cancellable: true) }

    /// Takes the lock, waiting at most `timeout`.
    /// - Parameter timeout: The longest wait.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`,
    ///   ``SyncError/alreadyOwned(operation:)``.
    public func lock(timeout: Duration) throws { try core.lock("Mutex.lock", timeout: timeout, cancellable: true) }

    /// Takes the lock; cancellation does not interrupt the wait (it stays pending for the next
    /// suspension point).
    /// - Throws: ``SyncError/alreadyOwned(operation:)``.
    public func lockUncancellable() throws(SyncError) {
        do {
            try core.lock("Mutex.lockUncancellable", timeout: nil, cancellable: false)
        } catch let error as SyncError {
            throw error
        } catch {
            preconditionFailure("an uncancellable, untimed lock cannot fail with \(error)")
        }
    }

    /// Takes the lock if it is free.
    /// - Returns: Whether the caller now owns the lock.
    /// - Throws: ``SyncError/alreadyOwned(operation:)``.
    public func tryLock() throws(SyncError) -> Bool { try core.tryLock() }

    /// Releases the lock, handing it to the first waiter if there is one.
    /// - Throws: ``SyncError/notOwner(operation:)`` if the caller does not own it.
    public func unlock() throws(SyncError) { try core.unlock("Mutex.unlock") }

    /// Runs `body` holding the lock (taken without cancellation, so `body` always runs once
    /// the call starts), and releases it afterwards, even when `body` throws.
    /// - Parameter body: The critical section.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws; ``SyncError/alreadyOwned(operation:)``.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try lockUncancellable()
        defer { try? unlock() }
        return try body()
    }

    /// Whether some fiber or thread holds the lock (a snapshot).
    public var isLocked: Bool { core.isLocked }
}

/// A ``Mutex`` that its owner may lock again: each ``lock()`` needs a matching ``unlock()``.
///
/// **Fairness: hand-off** (FIFO), as for ``Mutex``.
public final class RecursiveMutex: Sendable {
    let core: LockCore

    /// Creates an unlocked recursive mutex.
    public init() { core = LockCore(recursive: true, name: "RecursiveMutex") }

    /// Takes the lock (or one more level of it). A suspension point when it must wait.
    /// - Throws: `CancellationError`.
    public func lock() throws { try core.lock("RecursiveMutex.lock", timeout: nil, cancellable: true) }

    /// Takes the lock, waiting at most `timeout`.
    /// - Parameter timeout: The longest wait.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func lock(timeout: Duration) throws {
        try core.lock("RecursiveMutex.lock", timeout: timeout, cancellable: true)
    }

    /// Takes the lock if it is free or already the caller's.
    /// - Returns: Whether the caller now holds one more level.
    public func tryLock() -> Bool { (try? core.tryLock()) ?? false }

    /// Releases one level; the last one hands the lock to the first waiter.
    /// - Throws: ``SyncError/notOwner(operation:)``.
    public func unlock() throws(SyncError) { try core.unlock("RecursiveMutex.unlock") }

    /// Runs `body` holding one level of the lock (taken without cancellation).
    /// - Parameter body: The critical section.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try core.lock("RecursiveMutex.withLock", timeout: nil, cancellable: false)
        defer { try? unlock() }
        return try body()
    }
}
