/// A handle to a spawned fiber: join it for its result, cancel it, or detach it.
///
/// Copies share the fiber; the fiber is joined at most once in all (``join()`` or ``value``).
/// Dropping every handle without joining lets the fiber run to its end, like ``detach()``.
public struct JoinHandle<T: Sendable>: Sendable {
    @usableFromInline let fiber: FiberCore

    @usableFromInline
    init(fiber: FiberCore) { self.fiber = fiber }

    /// Whether the fiber has finished.
    public var isFinished: Bool { fiber.isFinished }

    /// Whether the fiber is switched out waiting for a wake (racy snapshot, for tests that must
    /// wait until a fiber has handled one).
    package var isParked: Bool {
        let state = fiber.runState.load(ordering: .acquiring)
        return state == FiberCore.Run.parked || state == FiberCore.Run.parkedCancellable
    }

    /// The fiber's scheduling state, for diagnosing a hang (racy snapshot).
    package var debugState: String {
        "run=\(fiber.runState.load(ordering: .relaxed)) completion=\(fiber.completion.load(ordering: .relaxed)) "
            + "cancel=\(fiber.cancelBits.load(ordering: .relaxed)) io=\(fiber.ioExecutor.load(ordering: .relaxed)) "
            + "op=\(fiber.pendingOp.map { "\($0.pointee.kind) pending=\($0.pointee.isPending) place=\($0.pointee.place) cancelRequested=\($0.pointee.cancelRequested)" } ?? "-") "
            + "last=\(fiber.lastExecutor?.takeUnretainedValue().index ?? -1) pinned=\(fiber.pinned)"
            + {
                let io = fiber.ioExecutor.load(ordering: .relaxed)
                guard io > 0, let op = fiber.pendingOp else { return "" }
                return " trace[\(fiber.runtime.executors[io - 1].loop.debugTrace(of: UnsafeMutableRawPointer(op)))]"
            }()
    }

    /// Requests cancellation of the fiber: it gets one `CancellationError` at its next suspension
    /// point, and its pending operation is cancelled. Idempotent; any thread; no effect once it has
    /// finished.
    public func cancel() { fiber.cancel(timeout: false) }

    /// Gives up joining: the fiber runs to its end and its result is dropped. Later joins throw
    /// ``FiberError/detached``.
    /// - Throws: ``FiberError/alreadyJoined`` if the fiber was joined already.
    public func detach() throws(FiberError) {
        var word = fiber.completion.load(ordering: .relaxed)
        while word & FiberCore.Completion.claimed == 0 {
            let (done, original) = fiber.completion.compareExchange(
                expected: word, desired: word | FiberCore.Completion.detached, ordering: .acquiringAndReleasing)
            if done { return }
            word = original
        }
        if word & FiberCore.Completion.joined != 0 { throw .alreadyJoined }
    }

    private func claim() throws(FiberError) { try fiber.claimJoin() }

    /// Calls the observer's callback once when the fiber completes, from the thread that completes
    /// it (keep it short: it runs under a lock). Returns `false`, adding nothing, if the fiber has
    /// completed already. For select arms that watch a fiber without joining it.
    /// - Parameter observer: The observer.
    /// - Returns: Whether it was added.
    package func addObserver(_ observer: any FiberObserver) -> Bool { fiber.addObserver(observer) }

    /// Removes an observer if it is still registered; when this returns, its callback is not running.
    /// - Parameter observer: The observer.
    package func removeObserver(_ observer: any FiberObserver) { fiber.removeObserver(observer) }

    /// Joins a fiber that has finished, from a fiber or a plain thread, without waiting.
    /// - Returns: The fiber's result.
    /// - Throws: What the fiber threw; ``FiberError/alreadyJoined`` or ``FiberError/detached``.
    package func takeFinishedResult() throws -> T {
        precondition(isFinished, "takeFinishedResult: the fiber has not finished")
        try claim()
        return try fiber.takeResult(T.self).get()
    }

    /// Parks the calling fiber until the fiber finishes and returns its result.
    ///
    /// If the caller is cancelled meanwhile, the cancellation is passed to the joined fiber and
    /// `join` keeps waiting: it never throws the caller's own cancellation (the caller sees it at
    /// its next suspension point).
    /// - Returns: The fiber's result.
    /// - Throws: What the fiber threw; ``FiberError`` for misuse (outside a fiber, joining twice or
    ///   a detached fiber, joining itself).
    @inlinable
    public func join() throws -> T {
        try fiber.waitForJoin()
        return try fiber.takeResult(T.self).get()
    }

    /// Waits for the fiber from async code, without blocking a thread. Cancelling the awaiting task
    /// cancels the fiber (the value then is whatever the fiber ends with).
    /// - Returns: The fiber's result.
    /// - Throws: What the fiber threw; ``FiberError/alreadyJoined`` or ``FiberError/detached``.
    public var value: T {
        get async throws {
            try claim()
            let fiber = self.fiber
            if !fiber.isFinished {
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        fiber.waiterContinuation = continuation
                        if !fiber.registerAwait() {
                            fiber.waiterContinuation = nil
                            continuation.resume()
                        }
                    }
                } onCancel: {
                    fiber.cancel(timeout: false)
                }
                // Only `complete()` resumes the wait, after publishing the finish. Reading the word
                // again (acquiring) orders the result after the fiber's writes through the word
                // itself; the resumption alone does not show ThreadSanitizer that order when it
                // came before the task suspended.
                precondition(fiber.isFinished, "JoinHandle.value resumed before the fiber finished")
            }
            return try fiber.takeResult(T.self).get()
        }
    }
}

/// Told once when a fiber completes (``JoinHandle/addObserver(_:)``) or a group's last running
/// child finishes (``Group/addObserver(_:)``): WeftSync's select arms over fibers and groups are
/// their own observers, so registering one allocates nothing.
package protocol FiberObserver: AnyObject, Sendable {
    /// Called once, from the thread that completes the fiber or the group, under the observed
    /// object's lock: keep it short.
    func fiberCompleted()

    /// The link of the observed object's list of observers: storage only, touched by WeftRuntime
    /// under that object's lock. An observer is in at most one list at a time.
    var nextObserver: (any FiberObserver)? { get set }
}

/// The observers of a fiber or a group, linked through ``FiberObserver/nextObserver``: adding one
/// allocates nothing. Not thread-safe: its owner keeps it under a lock.
struct ObserverList {
    private var head: (any FiberObserver)?

    var isEmpty: Bool { head == nil }

    mutating func add(_ observer: any FiberObserver) {
        observer.nextObserver = head
        head = observer
    }

    /// Unlinks `observer` if it is in the list.
    mutating func remove(_ observer: any FiberObserver) {
        var previous: (any FiberObserver)? = nil
        var node = head
        while let current = node {
            if current === observer {
                if let previous { previous.nextObserver = current.nextObserver } else { head = current.nextObserver }
                current.nextObserver = nil
                return
            }
            previous = current
            node = current.nextObserver
        }
    }

    /// Empties the list and tells each observer (the select arms of different selects: the order
    /// does not matter).
    mutating func notifyAll() {
        var node = head
        head = nil
        while let current = node {
            node = current.nextObserver
            current.nextObserver = nil
            current.fiberCompleted()
        }
    }
}

extension FiberCore {
    /// Claims the join and, given a joining fiber's address, registers that fiber as the waiter
    /// in the same compare-and-swap unless the fiber has finished. Returns whether it had finished.
    @discardableResult
    func claimJoin(waiter address: Int = 0) throws(FiberError) -> Bool {
        assert(address & Completion.flags == 0, "a fiber object's address must leave the flag bits clear")
        var word = completion.load(ordering: .relaxed)
        while true {
            if word & Completion.joined != 0 { throw .alreadyJoined }
            if word & Completion.detached != 0 { throw .detached }
            let finished = word & Completion.finished != 0
            let (done, original) = completion.compareExchange(
                expected: word, desired: word | Completion.joined | (finished ? 0 : address), ordering: .acquiringAndReleasing)
            if done { return finished }
            word = original
        }
    }

    /// Registers the claimer's ``waiterContinuation``; false (nothing registered) when the fiber
    /// has finished.
    func registerAwait() -> Bool {
        // Acquiring: a fiber found finished here has its result read next.
        var word = completion.load(ordering: .acquiring)
        while word & Completion.finished == 0 {
            let (done, original) = completion.compareExchange(
                expected: word, desired: word | Completion.awaited, ordering: .acquiringAndReleasing)
            if done { return true }
            word = original
        }
        return false
    }

    /// The non-generic half of ``JoinHandle/join()``: claims the join and parks the calling fiber
    /// until this one has finished.
    @usableFromInline
    func waitForJoin() throws(FiberError) {
        guard let running = Executor.currentUnmanaged?._withUnsafeGuaranteedRef({ $0.running }) else {
            throw .notInFiber(operation: "join")
        }
        // No reference counting on the joiner: it is running, so it is alive.
        if let error = running._withUnsafeGuaranteedRef({ waitForJoin(by: $0, running) }) { throw error }
    }

    private func waitForJoin(by me: FiberCore, _ unmanaged: Unmanaged<FiberCore>) -> FiberError? {
        if me === self { return .joinedItself }
        do {
            // Cancelling the joiner cancels this fiber; the join goes on waiting for it.
            if try !claimJoin(waiter: Int(bitPattern: unmanaged.toOpaque())) {
                me.parkPassingOnCancellation { cancel(timeout: false) }
            }
            return nil
        } catch {
            return error
        }
    }
}
