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

/// What an ``ObservedArm`` watches: a runtime object that reports its completion to observers.
protocol ObservedSource {
    associatedtype Output
    func addObserver(_ observer: any FiberObserver) -> Bool
    func removeObserver(_ observer: any FiberObserver)
    /// The winning arm's result.
    func finishObserved() throws -> Output
}

extension JoinHandle: ObservedSource {
    func finishObserved() throws -> T { try takeFinishedResult() }
}

extension Group: ObservedSource {
    func finishObserved() throws { try finishObservedWait() }
}

/// A select arm over a fiber or a group, which is itself the observer it registers: one
/// allocation per arm, reused when the select registers again. Registering adds the arm as an
/// observer (`false` means the source has completed already: claim at once); the completion
/// claims and wakes the select; `finish` produces the result, for the winning arm only.
///
/// `waiter` is written by the select's thread before the arm is added and read by the completing
/// thread under the source's observer lock, which the adding and the removal take too.
final class ObservedArm<Source: ObservedSource>: FiberObserver, @unchecked Sendable {
    let source: Source
    var waiter: SelectWaiter?
    var added = false
    var nextObserver: (any FiberObserver)?

    init(_ source: Source) { self.source = source }

    func fiberCompleted() {
        if let waiter, waiter.claim() { waiter.wake() }
    }

    func register(_ waiter: SelectWaiter) -> SelectRegistration {
        withdraw()
        self.waiter = waiter
        if source.addObserver(self) {
            added = true
            return .registered
        }
        return waiter.claim() ? .completed : .lost
    }

    func withdraw() {
        if added {
            source.removeObserver(self)
            added = false
        }
    }

    /// The select case; its closures capture only the arm.
    var selectCase: SelectCase<Source.Output> {
        SelectCase(
            register: { [self] waiter in register(waiter) },
            unregister: { [self] _ in withdraw() },
            finish: { [self] _ in try source.finishObserved() })
    }
}

extension JoinHandle {
    /// A select arm that completes with the fiber's result once it has finished.
    ///
    /// The arm joins the fiber only if it wins: when another arm wins, the handle can still be
    /// joined (or selected on) later. Works from fibers and plain threads.
    /// - Returns: The arm (its result throws what the fiber threw, or ``WeftRuntime/FiberError``
    ///   if the handle was joined or detached already).
    /// - Throws: Nothing today; kept so that callers written for the earlier form still compile.
    public func onJoin() throws -> SelectCase<T> { ObservedArm(self).selectCase }
}

extension Group {
    /// A select arm that completes when every child of the group has finished, with the group's
    /// first error if any. Like ``WeftRuntime/Group/wait()``, a winning arm leaves the group clean
    /// for reuse; a losing arm changes nothing. Works from fibers and plain threads.
    /// - Returns: The arm.
    /// - Throws: Nothing today; kept so that callers written for the earlier form still compile.
    public func onWait() throws -> SelectCase<Void> { ObservedArm(self).selectCase }
}

