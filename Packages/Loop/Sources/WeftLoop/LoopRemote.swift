internal import CWeftLoop
import Synchronization

/// An operation address that crosses threads under the remote lock.
struct OperationReference: @unchecked Sendable {
    var pointer: UnsafeMutablePointer<LoopOperation>?
}

/// The part of a loop other threads may touch: the wakeup eventfd, the stop flag, cancel requests and
/// thread-pool completions. Lists are intrusive (links live in the operations), so posting costs no
/// allocation. Outlives the loop while a ``LoopWaker`` holds it, so a late wake never writes to a
/// closed (or reused) descriptor.
package final class LoopRemote: @unchecked Sendable {
    struct Queues {
        var closed = false
        var cancelHead = OperationReference()
        var completedHead = OperationReference()
        var completedTail = OperationReference()
    }

    let eventDescriptor: Int32
    /// Set while a wake is written and not yet consumed: many wakes cost one eventfd write.
    let wakePending = Atomic<Bool>(false)
    let stopRequested = Atomic<Bool>(false)
    /// Requests and completions queued; the loop looks at the lock only when this is non-zero.
    let queued = Atomic<Int>(0)
    let queues = Mutex(Queues())

    init() throws(LoopError) {
        let fd = weft_eventfd()
        if fd < 0 { throw LoopError(.init(rawValue: -fd), operation: "eventfd") }
        eventDescriptor = fd
    }

    /// Wakes the loop if it is blocked, or makes its next wait return at once. The eventfd write
    /// happens under the lock so it cannot race ``close()`` onto a reused descriptor; it happens only
    /// when no wake is already pending, so the lock is rare even in a storm.
    func wake() {
        // Sequentially consistent, as the loop's side (`acknowledgeWake`, then its look at
        // `queued`): a store followed by a load on each side, which weaker orderings would let both
        // miss on a weakly ordered CPU (the loop would wait and no wake would be written).
        if !wakePending.exchange(true, ordering: .sequentiallyConsistent) {
            queues.withLock { q in
                if !q.closed { _ = weft_eventfd_signal(eventDescriptor) }
            }
        }
    }

    deinit { close() }

    /// Closes the eventfd when the loop closes; later wakes do nothing.
    func close() {
        queues.withLock { q in
            if q.closed { return }
            q.closed = true
            _ = weft_close(eventDescriptor)
        }
    }

    /// Called by the loop thread once it has consumed the eventfd, before it drains the queues: a wake
    /// posted after this point writes the eventfd again, so none is lost.
    func acknowledgeWake() {
        wakePending.store(false, ordering: .sequentiallyConsistent)
    }

    /// Whether the kernel has no expedited private memory barrier (registered once per process).
    private static let membarrierUnavailable: Bool = weft_membarrier_register() != 0
    /// Whether completions must fence (``Loop/complete(_:result:)``): only when the kernel has no
    /// expedited private memory barrier, which lets the cancelling side pay for both. (Kept per
    /// loop: reading a global costs a call on every completion.)
    let completionsFence = LoopRemote.membarrierUnavailable

    /// Queues a cancel request, unless the loop has started completing the operation.
    ///
    /// A handshake with ``Loop/complete(_:result:)``, which marks the operation `completing`,
    /// then looks for requests: either it sees this one and withdraws it, or this side sees the
    /// mark (after a barrier on every thread, or with fences on both sides) and withdraws it. So
    /// no request outlives the callback, after which the memory may be submitted again or freed.
    func requestCancel(_ op: UnsafeMutablePointer<LoopOperation>) {
        let queuedNow = queues.withLock { q -> Bool in
            if op.pointee.remoteQueued { return false }
            op.pointee.remoteQueued = true
            op.pointee.remotePrev = nil
            op.pointee.remoteNext = q.cancelHead.pointer
            q.cancelHead.pointer?.pointee.remotePrev = op
            q.cancelHead.pointer = op
            queued.add(1, ordering: .sequentiallyConsistent)
            return true
        }
        if queuedNow {
            if completionsFence || weft_membarrier() != 0 {
                atomicMemoryFence(ordering: .sequentiallyConsistent)
            }
            if weft_flag_load(op.pointer(to: \.completing)!) != 0 {
                withdrawCancel(op)
                return
            }
        }
        wake()
    }

    func postCompletion(_ op: UnsafeMutablePointer<LoopOperation>) {
        queues.withLock { q in
            op.pointee.completedNext = nil
            if let tail = q.completedTail.pointer { tail.pointee.completedNext = op } else { q.completedHead.pointer = op }
            q.completedTail.pointer = op
            queued.add(1, ordering: .sequentiallyConsistent)
        }
        wake()
    }

    /// Removes a completing operation from the cancel requests, so no request outlives it.
    func withdrawCancel(_ op: UnsafeMutablePointer<LoopOperation>) {
        queues.withLock { q in
            guard op.pointee.remoteQueued else { return }
            op.pointee.remoteQueued = false
            if let prev = op.pointee.remotePrev { prev.pointee.remoteNext = op.pointee.remoteNext } else {
                q.cancelHead.pointer = op.pointee.remoteNext
            }
            op.pointee.remoteNext?.pointee.remotePrev = op.pointee.remotePrev
            op.pointee.remoteNext = nil
            op.pointee.remotePrev = nil
            queued.subtract(1, ordering: .relaxed)
        }
    }

    /// Takes every queued completion, and hands each cancel request to `cancel` under the lock (a
    /// request may be posted again at any moment, so its links are only safe to follow while locked).
    func drain(cancel: (UnsafeMutablePointer<LoopOperation>) -> Void) -> UnsafeMutablePointer<LoopOperation>? {
        queues.withLock { q in
            var count = 0
            var op = q.cancelHead.pointer
            while let current = op {
                op = current.pointee.remoteNext
                current.pointee.remoteQueued = false
                current.pointee.remoteNext = nil
                current.pointee.remotePrev = nil
                count += 1
                cancel(current)
            }
            q.cancelHead.pointer = nil
            let completed = q.completedHead.pointer
            var c = completed
            while let current = c {
                count += 1
                c = current.pointee.completedNext
            }
            q.completedHead.pointer = nil
            q.completedTail.pointer = nil
            queued.subtract(count, ordering: .relaxed)
            return completed
        }
    }
}

/// A handle other threads use to wake, stop, or cancel operations of a ``Loop``. It is `Sendable`;
/// the loop itself is not, and must be used only from the thread that runs it.
public struct LoopWaker: Sendable {
    let remote: LoopRemote

    /// Wakes the loop: a blocked ``Loop/run(_:)`` returns from its wait (``Loop/RunMode/once`` returns).
    /// Thread-safe and coalescing: any number of wakes before the loop notices cost one eventfd write,
    /// and a wake sent at any moment is never lost.
    public func wake() { remote.wake() }

    /// Asks the loop to stop: the running ``Loop/run(_:)`` returns after the current iteration.
    public func stop() {
        remote.stopRequested.store(true, ordering: .sequentiallyConsistent)
        remote.wake()
    }

    /// Asks the loop's thread to cancel an operation, as ``Loop/cancel(_:)`` would.
    ///
    /// The operation's memory must stay valid until its callback runs, which the caller guarantees by
    /// calling this only while it knows the operation is pending (for example, while the fiber that
    /// owns it is parked on it). If the operation completes first, the request is withdrawn and the
    /// callback gets the natural result.
    /// - Parameter operation: A submitted operation of this loop.
    public func cancel(_ operation: UnsafeMutablePointer<LoopOperation>) { remote.requestCancel(operation) }
}
