import WeftRuntime

/// One arm's waiter, handed to a ``SelectCase``'s registration: it carries the select's single
/// claim, shared by all of its arms.
public struct SelectWaiter {
    package let node: UnsafeMutablePointer<WaitNode>

    /// Claims the whole select for this arm; only the winner may consume anything for it.
    package func claim() -> Bool { node.pointee.claim() }

    /// Gives back a claim this arm took itself during registration when, under its primitive's
    /// lock, there turned out to be nothing to consume. Only valid before the select parks.
    package func unclaim() { node.pointee.parking.pointee.state.store(Parking.Claim.waiting, ordering: .releasing) }
}

/// What registering one arm of a select did.
public enum SelectRegistration: Sendable {
    /// The arm's waiter is queued in its primitive.
    case registered
    /// The arm claimed the select and completed at once.
    case completed
    /// Another arm's peer claimed the select first; this arm did nothing.
    case lost
    /// The arm claimed, found nothing after all and gave the claim back: register everything again.
    case retry
}

/// One arm of a ``select(_:timeout:)``: how to register with a waitable, withdraw from it, and
/// produce the arm's result once it won.
///
/// Primitives make cases (``Channel/onReceive()``, ``ResetEvent/onWait()``, …); a new kind of
/// waitable conforms to ``Selectable`` and builds its case from the same waiting core.
public struct SelectCase<Output> {
    let register: (SelectWaiter) -> SelectRegistration
    let unregister: (SelectWaiter) -> Void
    let finish: (SelectWaiter) throws -> Output

    /// Creates a case from its three steps.
    /// - Parameters:
    ///   - register: Under the waitable's lock: complete at once (after claiming the waiter), or
    ///     queue the waiter.
    ///   - unregister: Remove the waiter if it is still queued.
    ///   - finish: After this arm won: the result (may throw, e.g. a closed channel).
    package init(
        register: @escaping (SelectWaiter) -> SelectRegistration, unregister: @escaping (SelectWaiter) -> Void,
        finish: @escaping (SelectWaiter) throws -> Output
    ) {
        self.register = register
        self.unregister = unregister
        self.finish = finish
    }

    /// The same case with its result transformed (run only if this arm wins).
    /// - Parameter transform: Maps the arm's result into the select's common result type.
    /// - Returns: The mapped case.
    public func map<U>(_ transform: @escaping (Output) throws -> U) -> SelectCase<U> {
        let finish = self.finish
        return SelectCase<U>(register: register, unregister: unregister) { try transform(finish($0)) }
    }
}

/// Something a ``select(_:timeout:)`` can wait for.
public protocol Selectable {
    /// What the arm produces when it wins.
    associatedtype SelectOutput
    /// A fresh select arm for this waitable.
    func selectCase() -> SelectCase<SelectOutput>
}

/// Waits for the first of several arms to complete and returns its result.
///
/// Exactly one arm completes: a peer commits an item to an arm only after claiming the whole
/// select, so an item is never taken by two selects or lost when the select is cancelled, times
/// out or loses the race to another arm. Arms are tried in order when several are ready at once.
/// A suspension point.
///
/// ```swift
/// let text = try select(
///     jobs.onReceive().map { job in "job \(job ?? -1)" },
///     stop.onWait().map { "stop" },
///     timeout: .seconds(1))
/// ```
/// - Parameters:
///   - cases: The arms.
///   - timeout: The longest wait, or `nil` for none.
/// - Returns: The winning arm's result.
/// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, or what the winning arm
///   throws.
public func select<R>(_ cases: SelectCase<R>..., timeout: Duration? = nil) throws -> R {
    try select(cases, timeout: timeout)
}

/// ``select(_:timeout:)`` over an array of arms.
/// - Parameters:
///   - cases: The arms.
///   - timeout: The longest wait, or `nil` for none.
/// - Returns: The winning arm's result.
/// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, or what the winning arm throws.
public func select<R>(_ cases: [SelectCase<R>], timeout: Duration? = nil) throws -> R {
    try Parking.checkCancellation()
    var parking = Parking()
    return try withUnsafeMutablePointer(to: &parking) { parking throws -> R in
        let nodes = UnsafeMutablePointer<WaitNode>.allocate(capacity: max(1, cases.count))
        defer { nodes.deallocate() }
        while true {
            var registered = 0
            var completedHere = false
            var retry = false
            for index in cases.indices {
                (nodes + index).initialize(to: WaitNode(parking: parking, code: Parking.Claim.firstSignal + index))
                let outcome = cases[index].register(SelectWaiter(node: nodes + index))
                if case .registered = outcome {
                    registered += 1
                    continue
                }
                if case .completed = outcome { completedHere = true }
                if case .retry = outcome { retry = true }
                break
            }
            if retry {
                for index in 0..<registered { cases[index].unregister(SelectWaiter(node: nodes + index)) }
                // With every node withdrawn nobody can claim any more; if a peer claimed an arm
                // before that, its value is committed to that arm and its wake is on its way.
                if parking.pointee.outcome == Parking.Claim.waiting { continue }
                _ = Parking.park(parking, timeout: nil, cancellable: false)
            } else {
                if !completedHere {
                    if parking.pointee.outcome == Parking.Claim.waiting {
                        _ = Parking.park(parking, timeout: timeout, cancellable: true)
                    } else {
                        // A peer claimed an arm during registration: its wake is on its way.
                        _ = Parking.park(parking, timeout: nil, cancellable: false)
                    }
                }
                for index in 0..<registered { cases[index].unregister(SelectWaiter(node: nodes + index)) }
            }
            let outcome = parking.pointee.outcome
            if outcome >= Parking.Claim.firstSignal {
                let index = outcome - Parking.Claim.firstSignal
                return try cases[index].finish(SelectWaiter(node: nodes + index))
            }
            if outcome == Parking.Claim.cancelled { throw CancellationError() }
            throw SyncError.timedOut(operation: "select")
        }
    }
}

/// A heap cell for a select arm's hand-over value.
final class SelectSlot<Value>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Value?>

    init(_ value: Value? = nil) {
        pointer = UnsafeMutablePointer<Value?>.allocate(capacity: 1)
        pointer.initialize(to: value)
    }

    deinit {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}

/// A heap cell holding a select send arm's value.
final class SelectValue<Value>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Value>

    init(_ value: Value) {
        pointer = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        pointer.initialize(to: value)
    }

    deinit {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}
