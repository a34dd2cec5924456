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
/// The observer an arm registered, shared by its register and unregister steps (one select at a
/// time uses an arm, on one thread).
final class ObserverBox: @unchecked Sendable {
    var observer: FiberObserver?
}

/// A select arm over a runtime object that reports its completion to observers (a fiber, a group):
/// registering adds an observer that claims and wakes the select; `add` returning `false` means it
/// has completed already. `finish` produces the result, only for the winning arm.
private func observedArm<Output>(
    add: @escaping (FiberObserver) -> Bool, remove: @escaping (FiberObserver) -> Void,
    finish: @escaping () throws -> Output
) -> SelectCase<Output> {
    let box = ObserverBox()
    return SelectCase(
        register: { waiter in
            if let previous = box.observer { remove(previous) }
            let observer = FiberObserver { if waiter.claim() { waiter.wake() } }
            box.observer = observer
            if add(observer) { return .registered }
            box.observer = nil
            return waiter.claim() ? .completed : .lost
        },
        unregister: { _ in
            if let observer = box.observer {
                remove(observer)
                box.observer = nil
            }
        },
        finish: { _ in try finish() })
}


extension JoinHandle {
    /// A select arm that completes with the fiber's result once it has finished.
    ///
    /// The arm joins the fiber only if it wins: when another arm wins, the handle can still be
    /// joined (or selected on) later. Works from fibers and plain threads.
    /// - Returns: The arm (its result throws what the fiber threw, or ``WeftRuntime/FiberError``
    ///   if the handle was joined or detached already).
    /// - Throws: Nothing today; kept so that callers written for the earlier form still compile.
    public func onJoin() throws -> SelectCase<T> {
        let handle = self
        return observedArm(
            add: { handle.addObserver($0) }, remove: { handle.removeObserver($0) },
            finish: { try handle.takeFinishedResult() })
    }
}

extension Group {
    /// A select arm that completes when every child of the group has finished, with the group's
    /// first error if any. Like ``WeftRuntime/Group/wait()``, a winning arm leaves the group clean
    /// for reuse; a losing arm changes nothing. Works from fibers and plain threads.
    /// - Returns: The arm.
    /// - Throws: Nothing today; kept so that callers written for the earlier form still compile.
    public func onWait() throws -> SelectCase<Void> {
        let group = self
        return observedArm(
            add: { group.addObserver($0) }, remove: { group.removeObserver($0) },
            finish: { try group.finishObservedWait() })
    }
}

