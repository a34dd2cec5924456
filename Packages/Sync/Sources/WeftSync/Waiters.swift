// Test hooks: how many fibers or threads queue in a primitive, so tests can wait for a waiter to
// have parked instead of sleeping and hoping.

extension Mutex {
    package var waiterCount: Int { core.state.withLock { $0.waiters.count } }
}

extension RwLock {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension Condition {
    package var waiterCount: Int { waiters.withLock { $0.count } }
}

extension Semaphore {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension ResetEvent {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension Notify {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension Barrier {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension Future {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}

extension Channel {
    package var waitingSenders: Int { state.withLock { $0.senders.count } }
    package var waitingReceivers: Int { state.withLock { $0.receivers.count } }
}

extension BroadcastChannel {
    package var waiterCount: Int { state.withLock { $0.waiters.count } }
}
