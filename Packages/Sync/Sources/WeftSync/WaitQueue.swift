import Synchronization
import WeftRuntime

/// Synchronization's lock, under a name that does not clash with ``Mutex``.
typealias Guarded<Value: ~Copyable> = Synchronization.Mutex<Value>

/// A waiter in a primitive's queue. It lives on the waiting fiber's or thread's stack (a select has
/// one per arm, all sharing one ``WeftRuntime/Parking``), and is linked and unlinked only under the
/// primitive's lock.
package struct WaitNode: @unchecked Sendable {
    package var next: UnsafeMutablePointer<WaitNode>?
    package var previous: UnsafeMutablePointer<WaitNode>?
    /// The waiter's claim and wake-up.
    package let parking: UnsafeMutablePointer<Parking>
    /// The claim code that means "this node was served".
    package let code: Int
    /// Where a value is handed over (a sender's value, a receiver's empty slot).
    package var slot: UnsafeMutableRawPointer?
    /// Primitive-specific: the owner identity of a lock waiter, read or write for a RwLock, …
    package var tag: UInt
    /// Set under the lock before the claim when the primitive was closed rather than served.
    package var closed = false
    package var linked = false

    package init(parking: UnsafeMutablePointer<Parking>, code: Int, slot: UnsafeMutableRawPointer? = nil, tag: UInt = 0) {
        self.parking = parking
        self.code = code
        self.slot = slot
        self.tag = tag
    }

    /// Tries to serve this waiter (claims its parking with this node's code).
    @inline(__always)
    package func claim() -> Bool { parking.pointee.claim(code) }
}

/// An intrusive FIFO of ``WaitNode``s. Not thread-safe: a primitive keeps it under its lock.
package struct WaitQueue: @unchecked Sendable {
    package private(set) var head: UnsafeMutablePointer<WaitNode>?
    private var tail: UnsafeMutablePointer<WaitNode>?
    /// The number of linked nodes (stale ones included until a claimer drops them).
    package private(set) var count = 0

    package init() {}

    package var isEmpty: Bool { head == nil }

    package mutating func append(_ node: UnsafeMutablePointer<WaitNode>) {
        node.pointee.next = nil
        node.pointee.previous = tail
        if let tail { tail.pointee.next = node } else { head = node }
        tail = node
        node.pointee.linked = true
        count += 1
    }

    /// Unlinks `node` if it is still linked (idempotent).
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
    package mutating func claimAll(closed: Bool = false) -> WaitQueue {
        var claimed = WaitQueue()
        while let node = head {
            remove(node)
            if closed { node.pointee.closed = true }
            if node.pointee.claim() { claimed.append(node) }
        }
        return claimed
    }

    /// Wakes every node of a detached list of claimed waiters.
    package func wakeAll() {
        var node = head
        while let current = node {
            node = current.pointee.next
            Parking.wake(current.pointee.parking)
        }
    }
}

/// What a blocking call's `enqueue` step decided, under the primitive's lock.
enum Enqueued {
    /// The call completed at once; the node was never published.
    case done
    /// The node is in the queue: park.
    case waiting
}

/// The one blocking path of every primitive: check cancellation, publish a node under the
/// primitive's lock (or complete at once), park until claimed, and on a lost wait unlink the node.
///
/// - Parameters:
///   - operation: Named in ``SyncError/timedOut(operation:)``.
///   - timeout: `nil` waits without limit.
///   - cancellable: Whether the call is a suspension point that fiber cancellation ends.
///   - tag: Stored in the node for the primitive.
///   - slot: Stored in the node for hand-over.
///   - enqueue: Under the primitive's lock: complete at once or append the node.
///   - dequeue: Under the primitive's lock: forget a node whose wait was lost (it may be unlinked
///     already).
/// - Returns: Whether the primitive was closed rather than served.
/// - Throws: `CancellationError`, ``SyncError/timedOut(operation:)``.
@inline(__always)
func blockingWait(
    _ operation: StaticString, timeout: Duration?, cancellable: Bool, tag: UInt = 0,
    slot: UnsafeMutableRawPointer? = nil,
    enqueue: (UnsafeMutablePointer<WaitNode>) -> Enqueued,
    dequeue: (UnsafeMutablePointer<WaitNode>) -> Void
) throws -> Bool {
    if cancellable { try Fiber.checkCancellation() }
    var parking = Parking()
    return try withUnsafeMutablePointer(to: &parking) { parking throws -> Bool in
        var node = WaitNode(parking: parking, code: Parking.Claim.firstSignal, slot: slot, tag: tag)
        return try withUnsafeMutablePointer(to: &node) { node throws -> Bool in
            if case .done = enqueue(node) { return false }
            let outcome = Parking.park(parking, timeout: timeout, cancellable: cancellable)
            if outcome >= Parking.Claim.firstSignal { return node.pointee.closed }
            dequeue(node)
            if outcome == Parking.Claim.cancelled { throw CancellationError() }
            throw SyncError.timedOut(operation: "\(operation)")
        }
    }
}
