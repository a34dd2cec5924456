/// A binary min-heap of timer operations ordered by deadline, each operation remembering its index so
/// a cancel removes it in O(log n). The array grows with the number of pending timers and keeps its
/// capacity, so steady-state timers allocate nothing.
struct TimerHeap {
    private var items: [UnsafeMutablePointer<LoopOperation>] = []

    init() { items.reserveCapacity(64) }

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var earliest: UnsafeMutablePointer<LoopOperation>? { items.first }

    mutating func insert(_ op: UnsafeMutablePointer<LoopOperation>) {
        op.pointee.heapIndex = items.count
        items.append(op)
        siftUp(items.count - 1)
    }

    mutating func remove(_ op: UnsafeMutablePointer<LoopOperation>) {
        let index = op.pointee.heapIndex
        guard index >= 0, index < items.count, items[index] == op else { return }
        let last = items.count - 1
        if index != last {
            swapAt(index, last)
        }
        items.removeLast()
        op.pointee.heapIndex = -1
        if index < items.count {
            siftDown(index)
            siftUp(index)
        }
    }

    mutating func popFirst() -> UnsafeMutablePointer<LoopOperation>? {
        guard let first = items.first else { return nil }
        remove(first)
        return first
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        items.swapAt(a, b)
        items[a].pointee.heapIndex = a
        items[b].pointee.heapIndex = b
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            if items[child].pointee.deadline >= items[parent].pointee.deadline { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let n = items.count
        while true {
            let left = 2 * parent + 1
            if left >= n { return }
            var smallest = left
            let right = left + 1
            if right < n && items[right].pointee.deadline < items[left].pointee.deadline { smallest = right }
            if items[smallest].pointee.deadline >= items[parent].pointee.deadline { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }
}
