import Synchronization
import WeftRuntime


/// A waiter in a primitive's queue. It lives on the waiting fiber's or thread's stack (a select has
/// one per arm, all sharing one ``WeftRuntime/Parking``), and is linked and unlinked only under the
/// primitive's lock.
@usableFromInline
package struct WaitNode: @unchecked Sendable {
    @usableFromInline package var next: UnsafeMutablePointer<WaitNode>?
    @usableFromInline package var previous: UnsafeMutablePointer<WaitNode>?
    /// The waiter's claim and wake-up.
    @usableFromInline package let parking: UnsafeMutablePointer<Parking>
    /// The claim code that means "this node was served".
    @usableFromInline package let code: Int
    /// Where a value is handed over (a sender's value, a receiver's empty slot).
    @usableFromInline package var slot: UnsafeMutableRawPointer?
    /// Primitive-specific: the owner identity of a lock waiter, read or write for a RwLock, …
    @usableFromInline package var tag: UInt
    /// Set under the lock before the claim when the primitive was closed rather than served.
    @usableFromInline package var closed = false
    @usableFromInline package var linked = false

    @inlinable
    package init(parking: UnsafeMutablePointer<Parking>, code: Int, slot: UnsafeMutableRawPointer? = nil, tag: UInt = 0) {
        self.parking = parking
        self.code = code
        self.slot = slot
        self.tag = tag
    }

    /// Tries to serve this waiter (claims its parking with this node's code).
    @inlinable
    package func claim() -> Bool { parking.pointee.claim(code) }
}

/// An intrusive FIFO of ``WaitNode``s. Not thread-safe: a primitive keeps it under its lock.
@usableFromInline
package struct WaitQueue: @unchecked Sendable {
    @usableFromInline package internal(set) var head: UnsafeMutablePointer<WaitNode>?
    @usableFromInline var tail: UnsafeMutablePointer<WaitNode>?
    /// The number of linked nodes (stale ones included until a claimer drops them).
    @usableFromInline package internal(set) var count = 0

    @inlinable
    package init() {}

    @usableFromInline package var isEmpty: Bool { head == nil }

    @inlinable
    package mutating func append(_ node: UnsafeMutablePointer<WaitNode>) {
        node.pointee.next = nil
        node.pointee.previous = tail
        if let tail { tail.pointee.next = node } else { head = node }
        tail = node
        node.pointee.linked = true
        count += 1
    }

    /// Appends `node` if there is one (the first pass of ``blockingWait`` has none) and says the
    /// caller must wait.
    @inlinable
    mutating func wait(_ node: UnsafeMutablePointer<WaitNode>?) -> Enqueued {
        if let node { append(node) }
        return .waiting
    }

    /// Appends a node claimed from a primitive's queue to a detached list of waiters to wake
    /// (``wakeAll()``). The node counts as unlinked: a select arm that unregisters it afterwards
    /// must not touch the primitive's queue (which it would corrupt, dropping other waiters).
    @inlinable
    package mutating func appendClaimed(_ node: UnsafeMutablePointer<WaitNode>) {
        append(node)
        node.pointee.linked = false
    }

    /// Unlinks `node` if it is still linked (idempotent).
    @inlinable
    package mutating func remove(_ node: UnsafeMutablePointer<WaitNode>) {
        guard node.pointee.linked else { return }
        let next = node.pointee.next
        let previous = node.pointee.previous
        if let previous { previous.pointee.next = next } else { head = next }
        if let next { next.pointee.previous = previous } else { tail = previous }
        node.pointee.next = nil
        node.pointee.previous = nil
        node.pointee.linked = false
        count -= 1
    }

    /// Unlinks waiters from the front until one is claimed, and returns it (its owner stays parked
    /// until the caller wakes it). Waiters whose claim is lost (cancelled, timed out, served by
    /// another arm of their select) are dropped on the way. Waiters of `excluding` (the caller's
    /// own select) are skipped and stay queued: a select never meets itself.
    @inlinable
    package mutating func claimFirst(excluding: UnsafeMutablePointer<Parking>? = nil) -> UnsafeMutablePointer<WaitNode>? {
        var cursor = head
        while let node = cursor {
            cursor = node.pointee.next
            if let excluding, node.pointee.parking == excluding { continue }
            remove(node)
            if node.pointee.claim() { return node }
        }
        return nil
    }

    /// Whether a waiter other than `excluding`'s is queued (it may be stale).
    @inlinable
    package func hasWaiter(excluding: UnsafeMutablePointer<Parking>?) -> Bool {
        var cursor = head
        while let node = cursor {
            if node.pointee.parking != excluding { return true }
            cursor = node.pointee.next
        }
        return false
    }

    /// Claims every waiter (marking them closed when asked) and returns them as a detached list,
    /// to wake with ``wakeAll()`` once the lock is released.
    @inlinable
    package mutating func claimAll(closed: Bool = false) -> WaitQueue {
        var claimed = WaitQueue()
        while let node = head {
            remove(node)
            if closed { node.pointee.closed = true }
            if node.pointee.claim() { claimed.appendClaimed(node) }
        }
        return claimed
    }

    /// Marks every node of a detached list of claimed waiters `closed` (before they are woken).
    @inlinable
    package mutating func markClosed() {
        var node = head
        while let current = node {
            node = current.pointee.next
            current.pointee.closed = true
        }
    }

    /// Wakes every node of a detached list of claimed waiters.
    @inlinable
    package func wakeAll() {
        var node = head
        while let current = node {
            node = current.pointee.next
            Parking.wake(current.pointee.parking)
        }
    }
}

/// What a blocking call's `enqueue` step decided, under the primitive's lock.
@usableFromInline
enum Enqueued: Sendable {
    /// The call completed at once; the node was never published.
    case done
    /// The node is in the queue: park.
    case waiting
}

/// A blocking path for primitives whose wait does more than queue a node under one lock (a
/// barrier counts the arrival, a condition releases its mutex, a broadcast receiver steps its
/// cursor): try to complete at once under the primitive's lock; otherwise check cancellation,
/// publish a node (or complete at once after all), park until claimed, and on a lost wait unlink
/// the node. A call that completes at once is not a suspension point. The other primitives keep
/// their lock from the attempt to the node's publication (the form with `publish` and `unlock`),
/// which takes the lock once instead of twice.
///
/// - Parameters:
///   - operation: Named in ``SyncError/timedOut(operation:)``.
///   - timeout: `nil` waits without limit.
///   - cancellable: Whether the call is a suspension point that fiber cancellation ends.
///   - tag: Stored in the node for the primitive.
///   - slot: Stored in the node for hand-over.
///   - enqueue: Under the primitive's lock: complete at once, or append the node (when given)
///     and wait. Called with `nil` first, then with the node.
///   - dequeue: Under the primitive's lock: forget a node whose wait was lost (it may be unlinked
///     already).
/// - Returns: Whether the primitive was closed rather than served.
/// - Throws: `CancellationError`, ``SyncError/timedOut(operation:)``.
@inlinable
func blockingWait(
    _ operation: StaticString, timeout: Duration?, cancellable: Bool, tag: UInt = 0,
    slot: UnsafeMutableRawPointer? = nil,
    enqueue: (UnsafeMutablePointer<WaitNode>?) -> Enqueued,
    dequeue: (UnsafeMutablePointer<WaitNode>) -> Void
) throws -> Bool {
    // First pass without a node: most calls complete here, with no parking set up.
    if case .done = enqueue(nil) { return false }
    var parking = Parking()
    if cancellable && parking.takeCancellation() { throw CancellationError() }
    return try withUnsafeMutablePointer(to: &parking) { parking throws -> Bool in
        var node = WaitNode(parking: parking, code: Parking.Claim.firstSignal, slot: slot, tag: tag)
        return try withUnsafeMutablePointer(to: &node) { node throws -> Bool in
            if case .done = enqueue(node) { return false }
            return try parkQueued(operation, parking, node, timeout: timeout, cancellable: cancellable, dequeue: dequeue)
        }
    }
}

/// ``blockingWait(_:timeout:cancellable:tag:slot:enqueue:dequeue:)`` for a caller
/// that holds the primitive's lock (``Guarded/lock()``) and has just found it must wait: the
/// cancellation check, the node's publication and the lock's release happen in that same lock
/// round, so a call that waits takes the lock once before it parks, not twice.
///
/// - Parameters:
///   - operation: Named in ``SyncError/timedOut(operation:)``.
///   - timeout: `nil` waits without limit.
///   - cancellable: Whether the call is a suspension point that fiber cancellation ends.
///   - tag: Stored in the node for the primitive.
///   - slot: Stored in the node for hand-over.
///   - publish: Under the held lock: append the node to the primitive's queue.
///   - unlock: Releases the held lock; called exactly once, before the park or the throw.
///   - dequeue: Under the primitive's lock (taken again): forget a node whose wait was lost.
/// - Returns: Whether the primitive was closed rather than served.
/// - Throws: `CancellationError`, ``SyncError/timedOut(operation:)``.
@inlinable
func blockingWait(
    _ operation: StaticString, timeout: Duration?, cancellable: Bool, tag: UInt = 0,
    slot: UnsafeMutableRawPointer? = nil,
    publish: (UnsafeMutablePointer<WaitNode>) -> Void,
    unlock: () -> Void,
    dequeue: (UnsafeMutablePointer<WaitNode>) -> Void
) throws -> Bool {
    var parking = Parking()
    if cancellable && parking.takeCancellation() {
        unlock()
        throw CancellationError()
    }
    return try withUnsafeMutablePointer(to: &parking) { parking throws -> Bool in
        var node = WaitNode(parking: parking, code: Parking.Claim.firstSignal, slot: slot, tag: tag)
        return try withUnsafeMutablePointer(to: &node) { node throws -> Bool in
            publish(node)
            unlock()
            return try parkQueued(operation, parking, node, timeout: timeout, cancellable: cancellable, dequeue: dequeue)
        }
    }
}

/// A primitive's state whose waiters queue in one ``WaitQueue``.
protocol QueuedState {
    var waiters: WaitQueue { get set }
}

extension Guarded where Value: QueuedState {
    /// ``blockingWait(_:timeout:cancellable:tag:slot:publish:unlock:dequeue:)`` for a primitive
    /// whose waiters queue in its state's `waiters`, called holding this lock (``lock()``) once the
    /// attempt found the caller must wait; the lock is released before the park or the throw.
    func waitHoldingLock(_ operation: StaticString, timeout: Duration?, cancellable: Bool, tag: UInt = 0) throws {
        let shared = storage
        _ = try blockingWait(
            operation, timeout: timeout, cancellable: cancellable, tag: tag,
            publish: { node in shared.pointee.waiters.append(node) },
            unlock: { unlock() },
            dequeue: { node in withLock { $0.waiters.remove(node) } })
    }
}

/// The end of a blocking call whose node is published: parks until claimed and, on a lost wait,
/// unlinks the node and throws.
@inlinable
func parkQueued(
    _ operation: StaticString, _ parking: UnsafeMutablePointer<Parking>, _ node: UnsafeMutablePointer<WaitNode>,
    timeout: Duration?, cancellable: Bool, dequeue: (UnsafeMutablePointer<WaitNode>) -> Void
) throws -> Bool {
    let outcome = Parking.park(parking, timeout: timeout, cancellable: cancellable)
    if outcome >= Parking.Claim.firstSignal { return node.pointee.closed }
    dequeue(node)
    if outcome == Parking.Claim.cancelled { throw CancellationError() }
    throw SyncError.timedOut(operation: "\(operation)")
}

/// A waiter node and a hand-over slot for an async wait, in one allocation: an async function
/// cannot keep them on a stack across its suspension, and boxing each costs two allocations.
struct AsyncWaitNode<Slot> {
    let node: UnsafeMutablePointer<WaitNode>
    let slot: UnsafeMutablePointer<Slot>
    private let raw: UnsafeMutableRawPointer

    /// - Parameters:
    ///   - parking: The waiter's parking.
    ///   - slot: The slot's initial value.
    init(parking: UnsafeMutablePointer<Parking>, slot initial: Slot) {
        let alignment = MemoryLayout<Slot>.alignment
        let offset = (MemoryLayout<WaitNode>.stride + alignment - 1) / alignment * alignment
        raw = UnsafeMutableRawPointer.allocate(
            byteCount: offset + MemoryLayout<Slot>.size, alignment: max(MemoryLayout<WaitNode>.alignment, alignment))
        slot = (raw + offset).bindMemory(to: Slot.self, capacity: 1)
        slot.initialize(to: initial)
        node = raw.bindMemory(to: WaitNode.self, capacity: 1)
        node.initialize(to: WaitNode(parking: parking, code: Parking.Claim.firstSignal, slot: UnsafeMutableRawPointer(slot)))
    }

    /// Frees both, once the node is out of every queue.
    func free() {
        node.deinitialize(count: 1)
        slot.deinitialize(count: 1)
        raw.deallocate()
    }
}

