import WeftRuntime

extension ResetEvent: Selectable {
    /// A select arm that completes when the event is set.
    /// - Returns: The arm.
    public func onWait() -> SelectCase<Void> {
        SelectCase(
            register: { [self] waiter in
                state.withLock { state in
                    if state.isSet { return waiter.claim() ? .completed : .lost }
                    state.waiters.append(waiter.node)
                    return .registered
                }
            },
            unregister: { [self] waiter in state.withLock { $0.waiters.remove(waiter.node) } },
            finish: { _ in })
    }

    /// ``onWait()``.
    public func selectCase() -> SelectCase<Void> { onWait() }
}

extension Notify: Selectable {
    /// A select arm that completes when notified (consuming the notification only if it wins).
    /// - Returns: The arm.
    public func onNotified() -> SelectCase<Void> {
        SelectCase(
            register: { [self] waiter in
                state.withLock { state in
                    if state.permit {
                        if !waiter.claim() { return .lost }
                        state.permit = false
                        return .completed
                    }
                    state.waiters.append(waiter.node)
                    return .registered
                }
            },
            unregister: { [self] waiter in state.withLock { $0.waiters.remove(waiter.node) } },
            finish: { _ in })
    }

    /// ``onNotified()``.
    public func selectCase() -> SelectCase<Void> { onNotified() }
}

extension Semaphore: Selectable {
    /// A select arm that takes a permit (only if it wins).
    /// - Returns: The arm.
    public func onWait() -> SelectCase<Void> {
        SelectCase(
            register: { [self] waiter in
                state.withLock { state in
                    if state.permits > 0 {
                        if !waiter.claim() { return .lost }
                        state.permits -= 1
                        return .completed
                    }
                    state.waiters.append(waiter.node)
                    return .registered
                }
            },
            unregister: { [self] waiter in state.withLock { $0.waiters.remove(waiter.node) } },
            finish: { _ in })
    }

    /// ``onWait()``.
    public func selectCase() -> SelectCase<Void> { onWait() }
}

extension Future: Selectable {
    /// A select arm that completes with the value once it is set.
    /// - Returns: The arm.
    public func onGet() -> SelectCase<Value> {
        SelectCase(
            register: { [self] waiter in
                state.withLock { state in
                    if state.value != nil { return waiter.claim() ? .completed : .lost }
                    state.waiters.append(waiter.node)
                    return .registered
                }
            },
            unregister: { [self] waiter in state.withLock { $0.waiters.remove(waiter.node) } },
            finish: { [self] _ in state.withLock { $0.value! } })
    }

    /// ``onGet()``.
    public func selectCase() -> SelectCase<Value> { onGet() }
}

/// A fiber's outcome carried across fibers (errors are not `Sendable` in general; this one is
/// written once and read after the future publishes it).
struct Outcome<T>: @unchecked Sendable {
    let result: Result<T, any Error>
}

extension JoinHandle {
    /// A select arm that completes with the fiber's result.
    ///
    /// It joins the fiber (from a small watcher fiber), so the handle cannot be joined again; if
    /// another arm wins, the result is dropped when the fiber ends. Call it in a fiber.
    /// - Returns: The arm.
    /// - Throws: ``WeftRuntime/FiberError`` (outside a runtime, or the handle was joined or
    ///   detached already: then the arm's result is that error).
    public func onJoin() throws -> SelectCase<T> {
        let done = Future<Outcome<T>>()
        let handle = self
        _ = try Fiber.spawn {
            let outcome = Outcome(result: Result { try handle.join() })
            try? done.set(outcome)
        }
        return done.onGet().map { try $0.result.get() }
    }
}

extension Group {
    /// A select arm that completes when every child of the group has finished, with the group's
    /// first error if any (it waits on the group from a small watcher fiber). Call it in a fiber.
    /// - Returns: The arm.
    /// - Throws: ``WeftRuntime/FiberError`` outside a runtime.
    public func onWait() throws -> SelectCase<Void> {
        let done = Future<Outcome<Void>>()
        let group = self
        _ = try Fiber.spawn {
            let outcome = Outcome(result: Result { try group.wait() })
            try? done.set(outcome)
        }
        return done.onGet().map { try $0.result.get() }
    }
}

