import WeftRuntime

/// The shared implementation of ``Mutex`` and ``RecursiveMutex``: an owner identity, a depth and a
/// FIFO of waiters, with hand-off on unlock.
final class LockCore: Sendable {
    struct State: QueuedState {
        var owner: UInt = 0
        var depth = 0
        var waiters = WaitQueue()
    }

    let state = Guarded(State())
    let recursive: Bool
    let name: StaticString

    init(recursive: Bool, name: StaticString) {
        self.recursive = recursive
        self.name = name
    }

    enum Attempt { case acquired, busy, reentered }

    @inline(__always)
    private func attempt(_ state: inout State, _ me: UInt) -> Attempt {
        if state.owner == 0 {
            state.owner = me
            state.depth = 1
            return .acquired
        }
        if state.owner == me {
            if !recursive { return .reentered }
            state.depth += 1
            return .acquired
        }
        return .busy
    }

    func tryLock() throws(SyncError) -> Bool {
        let me = Parking.currentIdentity
        switch state.withLock({ attempt(&$0, me) }) {
        case .acquired: return true
        case .busy: return false
        case .reentered: throw .alreadyOwned(operation: "\(name).tryLock")
        }
    }

    func lock(_ operation: StaticString, timeout: Duration?, cancellable: Bool) throws {
        let me = Parking.currentIdentity
        // One lock round: acquired, or (still holding the state's lock) queued behind the owner.
        state.lock()
        let shared = state.storage
        switch attempt(&shared.pointee, me) {
        case .acquired:
            state.unlock()
            return
        case .reentered:
            state.unlock()
            throw SyncError.alreadyOwned(operation: "\(operation)")
        case .busy: break
        }
        try state.waitHoldingLock(operation, timeout: timeout, cancellable: cancellable, tag: me)
    }

    /// Releases one level; at depth zero hands the lock to the first waiter.
    func unlock(_ operation: StaticString) throws(SyncError) {
        let me = Parking.currentIdentity
        let next = try state.withLock { state throws(SyncError) -> UnsafeMutablePointer<Parking>? in
            guard state.owner == me else { throw .notOwner(operation: "\(operation)") }
            state.depth -= 1
            if state.depth > 0 { return nil }
            if let waiter = state.waiters.claimFirst() {
                state.owner = waiter.pointee.tag
                state.depth = 1
                return waiter.pointee.parking
            }
            state.owner = 0
            return nil
        }
        if let next { Parking.wake(next) }
    }

    /// Releases every level (for a condition wait) and returns the depth to restore.
    func unlockAll(_ operation: StaticString) throws(SyncError) -> Int {
        let depth = try state.withLock { state throws(SyncError) -> Int in
            guard state.owner == Parking.currentIdentity else { throw .notOwner(operation: "\(operation)") }
            let depth = state.depth
            state.depth = 1
            return depth
        }
        try unlock(operation)
        return depth
    }

    /// Takes the lock again after a condition wait, whatever happens, and restores the depth.
    func relock(depth: Int) {
        // Uncancellable and unlimited: the caller must own the lock again before it returns.
        try? lock("Condition.wait", timeout: nil, cancellable: false)
        state.withLock { $0.depth = depth }
    }

    var isLocked: Bool { state.withLock { $0.owner != 0 } }
    var isOwnedByCaller: Bool {
        let me = Parking.currentIdentity
        return state.withLock { $0.owner == me }
    }
}
