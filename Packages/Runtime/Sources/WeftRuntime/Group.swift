import Synchronization

/// Structured concurrency for fibers: spawn children, wait for all of them, cancel them together.
///
/// With fail-fast (the default), the first child that throws an error other than
/// `CancellationError` cancels its siblings, and ``wait()`` throws that error once every child has
/// finished. A group is reusable: after ``wait()`` returns or throws it is empty and clean. A group
/// released while children run leaves them running (they are not joined).
public final class Group: Sendable {
    let core: GroupCore

    /// Creates an empty group.
    /// - Parameter failFast: Whether a child's failure cancels its siblings.
    public init(failFast: Bool = true) { core = GroupCore(failFast: failFast) }

    /// The number of children that have not finished.
    public var runningCount: Int { core.runningCount }

    /// Starts a child fiber in the group (on the calling executor, or the runtime's inject queue).
    /// - Parameter body: The child's body.
    /// - Throws: ``FiberError/notInFiber(operation:)`` outside a runtime thread;
    ///   ``FiberError/runtimeStopped`` from a task on an executor once every fiber has finished.
    public func spawn(_ body: @escaping @Sendable () throws -> Void) throws(FiberError) {
        let fiber: FiberCore
        do {
            fiber = try FiberCore.obtainHere(thunk: FiberCore.thunk(for: Void.self))
        } catch .notInFiber(_) {
            throw .notInFiber(operation: "Group.spawn")
        }
        fiber.holdBody(body)
        fiber.group = core
        if core.add(fiber) { fiber.cancel(timeout: false) }
        FiberCore.startHere(fiber)
    }

    /// Calls the observer's callback once, under the group's lock, when the last running child
    /// finishes. Returns `false`, adding nothing, if no child is running. For select arms that
    /// watch a group without a fiber waiting on it.
    /// - Parameter observer: The observer.
    /// - Returns: Whether it was added.
    package func addObserver(_ observer: any FiberObserver) -> Bool { core.addObserver(observer) }

    /// Removes an observer if it is still registered; when this returns, its callback is not running.
    /// - Parameter observer: The observer.
    package func removeObserver(_ observer: any FiberObserver) { core.removeObserver(observer) }

    /// Ends an observed wait as ``wait()`` does once every child has finished: throws the first
    /// child error, if any, and makes the group clean for reuse.
    /// - Throws: The first child error that is not `CancellationError`.
    package func finishObservedWait() throws {
        if let error = core.reset() { throw error }
    }

    /// Cancels every running child (and children spawned later, until ``wait()`` returns).
    public func cancelAll() { core.cancelAll() }

    /// Parks the calling fiber until every child has finished. If the caller is cancelled, the
    /// children are cancelled and the wait goes on (it never throws the caller's own cancellation).
    /// - Throws: The first child error that is not `CancellationError`; ``FiberError`` for misuse
    ///   (outside a fiber, two fibers waiting at once).
    public func wait() throws {
        guard let me = Executor.currentFiber else { throw FiberError.notInFiber(operation: "Group.wait") }
        if try core.register(me) {
            me.parkPassingOnCancellation { core.cancelAll() }
        }
        if let error = core.reset() { throw error }
    }
}

final class GroupCore: @unchecked Sendable {
    struct State: @unchecked Sendable {
        var running = 0
        var children: [ObjectIdentifier: FiberCore] = [:]
        var firstError: (any Error)?
        var waiter: FiberCore?
        /// Set once the waiter has been woken: children spawned and finished before it resumes
        /// must not wake it again (exactly one wake per park).
        var waiterWoken = false
        var cancelled = false
        /// Called (under the lock) when the last running child finishes.
        var observers = ObserverList()
    }

    let failFast: Bool
    let state = Mutex(State())

    init(failFast: Bool) { self.failFast = failFast }

    // Every function that locks is kept out of line: see the note on `FiberCore.cancel(timeout:)`.

    @inline(never)
    var runningCount: Int { state.withLock { $0.running } }

    /// Records a new child; returns whether it must start cancelled.
    @inline(never)
    func add(_ fiber: FiberCore) -> Bool {
        state.withLock { state in
            state.running += 1
            state.children[ObjectIdentifier(fiber)] = fiber
            return state.cancelled
        }
    }

    /// Registers the waiter; returns whether it must park (children are still running).
    @inline(never)
    func register(_ waiter: FiberCore) throws(FiberError) -> Bool {
        try state.withLock { state throws(FiberError) -> Bool in
            if state.waiter != nil { throw .groupAlreadyWaited }
            if state.running == 0 { return false }
            state.waiter = waiter
            return true
        }
    }

    @inline(never)
    func addObserver(_ observer: any FiberObserver) -> Bool {
        state.withLock { state in
            if state.running == 0 { return false }
            state.observers.add(observer)
            return true
        }
    }

    @inline(never)
    func removeObserver(_ observer: any FiberObserver) {
        state.withLock { $0.observers.remove(observer) }
    }

    /// Ends a wait: returns the first error and makes the group clean for reuse.
    @inline(never)
    func reset() -> (any Error)? {
        state.withLock { state -> (any Error)? in
            let error = state.firstError
            state.firstError = nil
            state.cancelled = false
            state.waiter = nil
            state.waiterWoken = false
            return error
        }
    }

    @inline(never)
    func cancelAll() {
        let children = state.withLock { state -> [FiberCore] in
            state.cancelled = true
            return Array(state.children.values)
        }
        for child in children { child.cancel(timeout: false) }
    }

    /// Called by the executor when a child's body has ended.
    @inline(never)
    func childFinished(_ fiber: FiberCore) {
        let (siblings, waiter) = state.withLock { state -> ([FiberCore], FiberCore?) in
            state.running -= 1
            state.children[ObjectIdentifier(fiber)] = nil
            var siblings: [FiberCore] = []
            if let error = fiber.failure, !(error is CancellationError) {
                if state.firstError == nil { state.firstError = error }
                if failFast && !state.cancelled {
                    state.cancelled = true
                    siblings = Array(state.children.values)
                }
            }
            var waiter: FiberCore? = nil
            if state.running == 0, let w = state.waiter, !state.waiterWoken {
                waiter = w
                // The waiter stays registered until it resumes, so a second waiter is refused;
                // a child spawned and finished meanwhile brings `running` to zero again, but the
                // waiter is woken once.
                state.waiterWoken = true
            }
            if state.running == 0 && !state.observers.isEmpty {
                // Under the lock, so a removal that returns has no callback still running.
                state.observers.notifyAll()
            }
            return (siblings, waiter)
        }
        for sibling in siblings { sibling.cancel(timeout: false) }
        if let waiter { FiberCore.wake(waiter) }
    }
}
