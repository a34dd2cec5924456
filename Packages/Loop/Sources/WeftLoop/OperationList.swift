/// An intrusive FIFO of operations linked through their `next`/`prev` fields: queueing costs no
/// allocation, and removing any member (a cancel) is O(1).
struct OperationList {
    private(set) var head: UnsafeMutablePointer<LoopOperation>? = nil
    private var tail: UnsafeMutablePointer<LoopOperation>? = nil

    var isEmpty: Bool { head == nil }

    mutating func append(_ op: UnsafeMutablePointer<LoopOperation>) {
        op.pointee.next = nil
        op.pointee.prev = tail
        if let tail { tail.pointee.next = op } else { head = op }
        tail = op
    }

    mutating func remove(_ op: UnsafeMutablePointer<LoopOperation>) {
        if let prev = op.pointee.prev { prev.pointee.next = op.pointee.next } else { head = op.pointee.next }
        if let next = op.pointee.next { next.pointee.prev = op.pointee.prev } else { tail = op.pointee.prev }
        op.pointee.next = nil
        op.pointee.prev = nil
    }

    mutating func popFirst() -> UnsafeMutablePointer<LoopOperation>? {
        guard let first = head else { return nil }
        remove(first)
        return first
    }
}
