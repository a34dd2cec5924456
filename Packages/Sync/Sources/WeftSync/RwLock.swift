import WeftRuntime

/// A readers-writer lock: many readers or one writer.
///
/// **Fairness: FIFO hand-off, no writer starvation.** A reader gets in at once only when no writer
/// holds the lock and nobody queues; otherwise it queues behind the waiting writer. A release hands
/// the lock to the front of the queue: one writer, or every reader up to the next writer.
///
/// Write ownership belongs to the fiber or thread that locked; read locks are counted, not owned.
public final class RwLock: Sendable {
    struct State {
        var readers = 0
        var writer: UInt = 0
        var waiters = WaitQueue()

        /// Takes a read lock if no writer holds the lock and nobody queues.
        mutating func enterReading() -> Bool {
            if writer != 0 || !waiters.isEmpty { return false }
            readers += 1
            return true
        }

        /// Takes the write lock for `me` if it is free and nobody queues.
        mutating func enterWriting(_ me: UInt) -> Bool {
            if writer != 0 || readers > 0 || !waiters.isEmpty { return false }
            writer = me
            return true
        }

        /// Serves the front of the queue while it can; returns the claimed waiters to wake.
        mutating func grant() -> WaitQueue {
            var woken = WaitQueue()
            while let node = waiters.head {
                if node.pointee.tag == 0 {
                    if writer != 0 { break }
                    waiters.remove(node)
                    if node.pointee.claim() {
                        readers += 1
                        woken.appendClaimed(node)
                    }
                } else {
                    if writer != 0 || readers > 0 { break }
                    waiters.remove(node)
                    if node.pointee.claim() {
                        writer = node.pointee.tag
                        woken.appendClaimed(node)
                        break
                    }
                }
            }
            return woken
        }
    }
    let state = Guarded(State())

    /// Creates an unlocked lock.
    public init() {}

    /// Takes a read lock if that needs no wait.
    /// - Returns: Whether the caller now holds a read lock.
    public func tryReadLock() -> Bool {
        state.withLock { $0.enterReading() }
    }

    /// Takes a read lock, parking while a writer holds or waits. A suspension point.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    public func readLock(timeout: Duration? = nil) throws {
        state.lock()
        let shared = state.storage
        if shared.pointee.enterReading() {
            state.unlock()
            return
        }
        _ = try blockingWait(
            "RwLock.readLock", timeout: timeout, cancellable: true, tag: 0,
            publish: { node in shared.pointee.waiters.append(node) },
            unlock: { state.unlock() },
            dequeue: { node in dequeue(node) })
    }

    /// Releases a read lock.
    /// - Throws: ``SyncError/notOwner(operation:)`` if no read lock is held.
    public func readUnlock() throws(SyncError) {
        let woken = try state.withLock { state throws(SyncError) -> WaitQueue in
            guard state.readers > 0 else { throw .notOwner(operation: "RwLock.readUnlock") }
            state.readers -= 1
            return state.grant()
        }
        woken.wakeAll()
    }

    /// Takes the write lock if it is free and nobody queues.
    /// - Returns: Whether the caller now holds the write lock.
    /// - Throws: ``SyncError/alreadyOwned(operation:)`` if the caller holds it already.
    public func tryWriteLock() throws(SyncError) -> Bool {
        let me = Parking.currentIdentity
        return try state.withLock { state throws(SyncError) -> Bool in
            if state.writer == me { throw .alreadyOwned(operation: "RwLock.tryWriteLock") }
            return state.enterWriting(me)
        }
    }

    /// Takes the write lock, parking while readers or another writer hold it. A suspension point.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`,
    ///   ``SyncError/alreadyOwned(operation:)``.
    public func writeLock(timeout: Duration? = nil) throws {
        let me = Parking.currentIdentity
        state.lock()
        let shared = state.storage
        if shared.pointee.writer == me {
            state.unlock()
            throw SyncError.alreadyOwned(operation: "RwLock.writeLock")
        }
        if shared.pointee.enterWriting(me) {
            state.unlock()
            return
        }
        _ = try blockingWait(
            "RwLock.writeLock", timeout: timeout, cancellable: true, tag: me,
            publish: { node in shared.pointee.waiters.append(node) },
            unlock: { state.unlock() },
            dequeue: { node in dequeue(node) })
    }

    /// Releases the write lock.
    /// - Throws: ``SyncError/notOwner(operation:)`` if the caller does not hold it.
    public func writeUnlock() throws(SyncError) {
        let me = Parking.currentIdentity
        let woken = try state.withLock { state throws(SyncError) -> WaitQueue in
            guard state.writer == me else { throw .notOwner(operation: "RwLock.writeUnlock") }
            state.writer = 0
            return state.grant()
        }
        woken.wakeAll()
    }

    /// Runs `body` under a read lock.
    /// - Parameter body: The reading code.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` or ``readLock(timeout:)`` throws.
    public func withReadLock<R>(_ body: () throws -> R) throws -> R {
        try readLock()
        defer { try? readUnlock() }
        return try body()
    }

    /// Runs `body` under the write lock.
    /// - Parameter body: The writing code.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` or ``writeLock(timeout:)`` throws.
    public func withWriteLock<R>(_ body: () throws -> R) throws -> R {
        try writeLock()
        defer { try? writeUnlock() }
        return try body()
    }

    /// A queued waiter gave up: readers behind a departed writer may now get in.
    private func dequeue(_ node: UnsafeMutablePointer<WaitNode>) {
        let woken = state.withLock { state -> WaitQueue in
            state.waiters.remove(node)
            return state.grant()
        }
        woken.wakeAll()
    }
}
