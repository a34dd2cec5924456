import WeftRuntime

/// One arm's waiter, handed to a ``SelectArm``'s ``SelectArm/register(_:)``: it carries the
/// select's single claim, shared by all of its arms.
///
/// A waitable keeps the waiters of its arms in a ``SelectWaiterQueue`` under its own lock. Whoever
/// ends the wait (the arm itself when it is ready at once, or a peer later) first wins
/// ``claim()``; a peer that won then calls ``wake()`` once, after releasing its lock. Two waiters
/// are equal when they are the same arm of the same select.
public struct SelectWaiter: Hashable, @unchecked Sendable {
    @usableFromInline package let node: UnsafeMutablePointer<WaitNode>

    @inlinable
    package init(node: UnsafeMutablePointer<WaitNode>) { self.node = node }

    /// Claims the whole select for this arm: only the caller that gets `true` may consume or
    /// commit anything for the arm (and, if it is a peer, must then call ``wake()``). Call it under
    /// the waitable's lock, so that consuming and claiming are one step for other users.
    /// - Returns: Whether this call won the select.
    public func claim() -> Bool { node.pointee.claim() }

    /// Gives back a claim this arm took itself during ``SelectArm/register(_:)`` when, still under
    /// its waitable's lock, there turned out to be nothing to consume (register then returns
    /// ``SelectRegistration/retry``). Never valid anywhere else: calling it when the select is
    /// not claimed for this arm stops the program with a message naming the call.
    public func unclaim() {
        let parking = node.pointee.parking
        let given = parking.pointee.state.compareExchange(
            expected: node.pointee.code, desired: Parking.Claim.waiting, ordering: .releasing
        ).exchanged
        precondition(given, "SelectWaiter.unclaim: the select is not claimed for this arm")
    }

    /// Resumes the select after a peer's successful ``claim()``. Call it once, outside the
    /// waitable's lock; the waiter may be gone right after.
    public func wake() { Parking.wake(node.pointee.parking) }

    /// Whether `other` belongs to the same select (a select never serves itself: a waitable that
    /// pairs waiters, like a channel's senders and receivers, skips its own select's other arms).
    /// - Parameter other: Another waiter.
    /// - Returns: Whether both are arms of one select.
    public func isSameSelect(as other: SelectWaiter) -> Bool { node.pointee.parking == other.node.pointee.parking }
}

/// The intrusive FIFO in which a waitable keeps the queued waiters of its select arms. Nothing is
/// allocated: each waiter's storage belongs to the select that waits.
///
/// Not thread-safe: keep it under the waitable's lock, like the state it guards.
public struct SelectWaiterQueue: @unchecked Sendable {
    var queue = WaitQueue()

    /// An empty queue.
    public init() {}

    init(queue: WaitQueue) { self.queue = queue }

    /// Whether no waiter is queued (stale ones count until a claim drops them).
    public var isEmpty: Bool { queue.isEmpty }

    /// The number of queued waiters (stale ones included).
    public var count: Int { queue.count }

    /// Queues a waiter (from ``SelectArm/register(_:)``).
    /// - Parameter waiter: The arm's waiter.
    public mutating func append(_ waiter: SelectWaiter) { queue.append(waiter.node) }

    /// Unlinks a waiter if it is still queued (from ``SelectArm/unregister(_:)``; idempotent).
    /// - Parameter waiter: The arm's waiter.
    public mutating func remove(_ waiter: SelectWaiter) { queue.remove(waiter.node) }

    /// Unlinks waiters from the front until one is claimed and returns it; waiters whose select
    /// was already won elsewhere (another arm, a cancellation, a timeout) are dropped on the way.
    /// Wake the returned waiter with ``SelectWaiter/wake()`` once the lock is released.
    /// - Parameter excluding: A waiter whose select's arms are skipped and stay queued (an arm
    ///   that pairs with the queue's waiters during its own registration must not meet its own
    ///   select), or `nil`.
    /// - Returns: The claimed waiter, or `nil` if none could be claimed.
    public mutating func claimFirst(excluding: SelectWaiter? = nil) -> SelectWaiter? {
        queue.claimFirst(excluding: excluding?.node.pointee.parking).map(SelectWaiter.init(node:))
    }

    /// Whether a waiter of another select than `excluding`'s is queued (it may be stale: claiming
    /// it may still fail). A pairing arm checks this before claiming its own select.
    /// - Parameter excluding: The asking arm's waiter, or `nil`.
    /// - Returns: Whether such a waiter is queued.
    public func hasWaiter(excluding: SelectWaiter?) -> Bool { queue.hasWaiter(excluding: excluding?.node.pointee.parking) }

    /// Claims every queued waiter and returns them as a detached queue, to wake with ``wakeAll()``
    /// once the lock is released.
    /// - Returns: The claimed waiters.
    public mutating func claimAll() -> SelectWaiterQueue { SelectWaiterQueue(queue: queue.claimAll()) }

    /// Wakes every waiter of a queue returned by ``claimAll()``.
    public func wakeAll() { queue.wakeAll() }
}

/// What a select arm of a new waitable implements; ``SelectCase/init(_:)`` turns it into an arm.
///
/// A select calls ``register(_:)`` on each of its arms in order, parks until one arm's waiter is
/// claimed (or the select is cancelled or times out), calls ``unregister(_:)`` on every arm it
/// registered, and finally ``finish(_:)`` on the winner only. Make one arm value per
/// ``Selectable/selectCase()`` call: it may keep per-wait state (a slot a peer fills).
///
/// The rule that keeps items from being lost or duplicated: nothing is consumed for an arm, by the
/// arm itself or by a peer, except by whoever won ``SelectWaiter/claim()`` for it, and the
/// consuming happens under the same lock as that claim.
public protocol SelectArm {
    /// What the arm produces when it wins.
    associatedtype Output

    /// Try now, or enqueue: under the waitable's lock, if it is ready, claim the waiter, consume
    /// and return ``SelectRegistration/completed`` (or ``SelectRegistration/lost`` if the claim
    /// failed: consume nothing then); otherwise append the waiter to the waitable's
    /// ``SelectWaiterQueue`` and return ``SelectRegistration/registered``. A peer that later
    /// claims the queued waiter commits the item for this arm (under the same lock) and wakes it.
    /// - Parameter waiter: This arm's waiter.
    /// - Returns: What happened.
    func register(_ waiter: SelectWaiter) -> SelectRegistration

    /// Dequeue: remove the waiter if it is still queued (it may have been taken already). Called
    /// for every registered arm once the select is decided, the winner included.
    /// - Parameter waiter: This arm's waiter.
    func unregister(_ waiter: SelectWaiter)

    /// Commit: produce the result, called only for the arm that won, after ``unregister(_:)``.
    /// - Parameter waiter: This arm's waiter.
    /// - Returns: The arm's result.
    /// - Throws: What the arm reports (a closed channel, for example).
    func finish(_ waiter: SelectWaiter) throws -> Output
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
/// Primitives make cases (``Channel/onReceive()``, ``ResetEvent/onWait()``, …); a waitable defined
/// elsewhere implements ``SelectArm`` and wraps it with ``init(_:)``.
public struct SelectCase<Output> {
    @usableFromInline let register: (SelectWaiter) -> SelectRegistration
    @usableFromInline let unregister: (SelectWaiter) -> Void
    @usableFromInline let finish: (SelectWaiter) throws -> Output

    /// Creates a case from its three steps.
    /// - Parameters:
    ///   - register: Under the waitable's lock: complete at once (after claiming the waiter), or
    ///     queue the waiter.
    ///   - unregister: Remove the waiter if it is still queued.
    ///   - finish: After this arm won: the result (may throw, e.g. a closed channel).
    @inlinable
    package init(
        register: @escaping (SelectWaiter) -> SelectRegistration, unregister: @escaping (SelectWaiter) -> Void,
        finish: @escaping (SelectWaiter) throws -> Output
    ) {
        self.register = register
        self.unregister = unregister
        self.finish = finish
    }

    /// Creates a case from an arm of a waitable defined outside WeftSync.
    /// - Parameter arm: The arm (one per select it takes part in).
    @inlinable
    public init<Arm: SelectArm>(_ arm: Arm) where Arm.Output == Output {
        self.init(register: arm.register, unregister: arm.unregister, finish: arm.finish)
    }

    /// The same case with its result transformed (run only if this arm wins).
    /// - Parameter transform: Maps the arm's result into the select's common result type.
    /// - Returns: The mapped case.
    @inlinable
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
@inlinable
public func select<R>(_ cases: SelectCase<R>..., timeout: Duration? = nil) throws -> R {
    try select(cases, timeout: timeout)
}

/// ``select(_:timeout:)`` over an array of arms.
/// - Parameters:
///   - cases: The arms.
///   - timeout: The longest wait, or `nil` for none.
/// - Returns: The winning arm's result.
/// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`, or what the winning arm throws.
///
/// Inlined, so that it and the primitives' arms are specialised for `R` where they are used (a
/// generic call would look the types' metadata up at run time on every select); the waiters live on
/// the caller's stack.
@inlinable
public func select<R>(_ cases: [SelectCase<R>], timeout: Duration? = nil) throws -> R {
    // No cancellation check before the arms are tried: an arm that is ready completes the select
    // even in a cancelled fiber, as for every primitive; the cancellation ends the park below.
    var parking = Parking()
    return try withUnsafeMutablePointer(to: &parking) { parking throws -> R in
        try withUnsafeTemporaryAllocation(of: WaitNode.self, capacity: max(1, cases.count)) { buffer throws -> R in
            let nodes = buffer.baseAddress!
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
}

/// The state of one channel select arm in a single allocation: the channel (the header) and the
/// value handed over (the one element: a receive arm's `Element?` slot, or a send arm's value).
/// The arm's closures capture only this object, so they need no context of their own.
@usableFromInline
final class ChannelArm<Element: Sendable, Value>: ManagedBuffer<Channel<Element>, Value> {
    /// A new arm on `channel` holding `value`.
    @inlinable
    static func make(_ channel: Channel<Element>, _ value: Value) -> ChannelArm {
        let arm = unsafeDowncast(create(minimumCapacity: 1) { _ in channel }, to: ChannelArm.self)
        arm.withUnsafeMutablePointerToElements { $0.initialize(to: value) }
        return arm
    }

    /// The value's address, stable while the arm lives (the node's hand-over slot points here).
    @inlinable
    var slot: UnsafeMutablePointer<Value> { withUnsafeMutablePointerToElements { $0 } }

    deinit { _ = withUnsafeMutablePointerToElements { $0.deinitialize(count: 1) } }
}
