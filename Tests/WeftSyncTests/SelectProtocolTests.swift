import WeftRuntime
import WeftSync
import XCTest

import Glibc

/// A waitable defined outside WeftSync, built only on its public select protocol: a mailbox of
/// integers that hands each posted value to exactly one taker (a queued select arm first).
final class Mailbox: Sendable {
    struct State: @unchecked Sendable {
        var pending: [Int] = []
        var waiters = SelectWaiterQueue()
        /// Where a claimed waiter's value goes (its arm reads it after winning).
        var slots: [SelectWaiter: Slot] = [:]
    }

    final class Slot: @unchecked Sendable {
        var value: Int?
    }

    let state = PthreadLocked(State())

    /// Hands `value` to the first queued arm that can still be claimed, or keeps it.
    func post(_ value: Int) {
        let woken = state.withLock { state -> SelectWaiter? in
            if let waiter = state.waiters.claimFirst() {
                state.slots.removeValue(forKey: waiter)!.value = value
                return waiter
            }
            state.pending.append(value)
            return nil
        }
        woken?.wake()
    }

    var queued: Int { state.withLock { $0.waiters.count } }
    var kept: [Int] { state.withLock { $0.pending } }

    struct Arm: SelectArm {
        let mailbox: Mailbox
        let slot = Slot()

        func register(_ waiter: SelectWaiter) -> SelectRegistration {
            mailbox.state.withLock { state in
                if !state.pending.isEmpty {
                    guard waiter.claim() else { return .lost }
                    slot.value = state.pending.removeFirst()
                    return .completed
                }
                state.waiters.append(waiter)
                state.slots[waiter] = slot
                return .registered
            }
        }

        func unregister(_ waiter: SelectWaiter) {
            mailbox.state.withLock { state in
                state.waiters.remove(waiter)
                state.slots[waiter] = nil
            }
        }

        func finish(_ waiter: SelectWaiter) throws -> Int { slot.value! }
    }
}

extension Mailbox: Selectable {
    func selectCase() -> SelectCase<Int> { SelectCase(Arm(mailbox: self)) }
}

final class PublicSelectProtocolTests: SyncTestCase {
    func testAWaitableFromOutsideTheModuleTakesPartInSelect() throws {
        try runBoth { _ in
            let mailbox = Mailbox()
            let channel = Channel<Int>()
            // Ready at once.
            mailbox.post(1)
            XCTAssertEqual(try select(channel.onReceive().map { $0 ?? -1 }, mailbox.selectCase()), 1)
            // Queued, then served by a peer; the channel arm withdraws.
            let poster = try Fiber.spawn {
                try Self.until { mailbox.queued == 1 }
                mailbox.post(2)
            }
            XCTAssertEqual(try select(channel.onReceive().map { $0 ?? -1 }, mailbox.selectCase()), 2)
            try poster.join()
            XCTAssertEqual(channel.waitingReceivers, 0)
            // Loses to the channel: the mailbox arm withdraws and a later post is kept.
            let sender = try Fiber.spawn {
                try Self.until { channel.waitingReceivers == 1 }
                try channel.send(3)
            }
            XCTAssertEqual(try select(mailbox.selectCase(), channel.onReceive().map { $0 ?? -1 }), 3)
            try sender.join()
            XCTAssertEqual(mailbox.queued, 0)
            mailbox.post(4)
            XCTAssertEqual(mailbox.kept, [4])
            // Times out and is cancelled without a trace.
            XCTAssertEqual(try select(mailbox.selectCase()), 4)
            XCTAssertThrowsError(try select(mailbox.selectCase(), timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "select"))
            }
            XCTAssertEqual(mailbox.queued, 0)
            let cancelled = try Fiber.spawn { () -> Bool in
                do { _ = try select(mailbox.selectCase()) } catch is CancellationError { return true }
                return false
            }
            try Self.until { mailbox.queued == 1 }
            cancelled.cancel()
            XCTAssertTrue(try cancelled.join())
            mailbox.post(5)
            XCTAssertEqual(mailbox.kept, [5])
        }
    }

    func testAnOutsideWaitableSelectedFromAThread() throws {
        try runBoth { _ in
            let mailbox = Mailbox()
            let got = Bag()
            let done = Self.thread {
                for _ in 0..<50 { got.add(try! select(mailbox.selectCase(), timeout: .seconds(30))) }
            }
            for value in 0..<50 {
                mailbox.post(value)
                if value % 5 == 0 { try Fiber.yield() }
            }
            try done.wait()
            XCTAssertEqual(got.all, Array(0..<50))
            XCTAssertEqual(mailbox.queued, 0)
        }
    }

    func testOutsideWaitableConservesItemsUnderCancellation() throws {
        try runBoth { _ in
            let mailbox = Mailbox()
            let idle = Channel<Int>()
            let received = Bag()
            let poster = try Fiber.spawn {
                for value in 0..<300 {
                    mailbox.post(value)
                    if value % 3 == 0 { try Fiber.yield() }
                }
            }
            var rounds = 0
            while received.all.count + mailbox.kept.count < 300 || !poster.isFinished {
                rounds += 1
                let taker = try Fiber.spawn { () -> Int? in
                    try? select(mailbox.selectCase(), idle.onReceive().map { $0 ?? -1 })
                }
                if Bool.random() { try Fiber.yield() }
                taker.cancel()
                if let value = try taker.join() { received.add(value) }
                if rounds > 100_000 { break }
            }
            try poster.join()
            XCTAssertEqual((received.all + mailbox.kept).sorted(), Array(0..<300))
        }
    }
}

/// An outside waitable that pairs waiters, like a channel: a rendezvous point where a give arm
/// meets a take arm. A pairing arm claims its own select first, then a peer from another select
/// (``SelectWaiterQueue/claimFirst(excluding:)``); if every queued peer was stale it gives its claim
/// back and asks for a retry.
final class Rendezvous: Sendable {
    struct State: @unchecked Sendable {
        var givers = SelectWaiterQueue()
        var takers = SelectWaiterQueue()
        var slots: [SelectWaiter: Mailbox.Slot] = [:]
    }
    let state = PthreadLocked(State())

    var queued: Int { state.withLock { $0.givers.count + $0.takers.count } }

    /// Pairs `waiter` with a peer of `peers`, or queues it in `own`; `exchange` moves the value
    /// between the two slots.
    static func register(
        _ waiter: SelectWaiter, _ slot: Mailbox.Slot, state: inout State,
        peers: WritableKeyPath<State, SelectWaiterQueue>, own: WritableKeyPath<State, SelectWaiterQueue>,
        exchange: (_ mine: Mailbox.Slot, _ peer: Mailbox.Slot) -> Void
    ) -> (SelectRegistration, SelectWaiter?) {
        if state[keyPath: peers].hasWaiter(excluding: waiter) {
            guard waiter.claim() else { return (.lost, nil) }
            if let peer = state[keyPath: peers].claimFirst(excluding: waiter) {
                XCTAssertFalse(peer.isSameSelect(as: waiter))
                exchange(slot, state.slots.removeValue(forKey: peer)!)
                return (.completed, peer)
            }
            waiter.unclaim()
            return (.retry, nil)
        }
        state[keyPath: own].append(waiter)
        state.slots[waiter] = slot
        return (.registered, nil)
    }

    func unregister(_ waiter: SelectWaiter, from queue: WritableKeyPath<State, SelectWaiterQueue>) {
        state.withLock { state in
            state[keyPath: queue].remove(waiter)
            state.slots[waiter] = nil
        }
    }

    struct Give: SelectArm {
        let point: Rendezvous
        let slot: Mailbox.Slot
        init(point: Rendezvous, value: Int) {
            self.point = point
            slot = Mailbox.Slot()
            slot.value = value
        }
        func register(_ waiter: SelectWaiter) -> SelectRegistration {
            let (outcome, peer) = point.state.withLock { state in
                Rendezvous.register(waiter, slot, state: &state, peers: \.takers, own: \.givers) { $1.value = $0.value }
            }
            peer?.wake()
            return outcome
        }
        func unregister(_ waiter: SelectWaiter) { point.unregister(waiter, from: \.givers) }
        func finish(_ waiter: SelectWaiter) throws -> Int? { nil }
    }

    struct Take: SelectArm {
        let point: Rendezvous
        let slot = Mailbox.Slot()
        func register(_ waiter: SelectWaiter) -> SelectRegistration {
            let (outcome, peer) = point.state.withLock { state in
                Rendezvous.register(waiter, slot, state: &state, peers: \.givers, own: \.takers) { $0.value = $1.value }
            }
            peer?.wake()
            return outcome
        }
        func unregister(_ waiter: SelectWaiter) { point.unregister(waiter, from: \.takers) }
        func finish(_ waiter: SelectWaiter) throws -> Int? { slot.value }
    }
}

final class PairingSelectProtocolTests: SyncTestCase {
    func testAPairingWaitableSkipsItsOwnSelect() throws {
        try runBoth { _ in
            let point = Rendezvous()
            // One select offers both sides: they must not meet each other.
            let both = try Fiber.spawn { () -> Int? in
                try select(SelectCase(Rendezvous.Give(point: point, value: 1)), SelectCase(Rendezvous.Take(point: point)))
            }
            try Self.until { point.queued == 2 }
            // A plain giver from another select pairs with the waiting take arm.
            XCTAssertNil(try select(SelectCase(Rendezvous.Give(point: point, value: 7))))
            XCTAssertEqual(try both.join(), 7)
            XCTAssertEqual(point.queued, 0)
        }
    }
}

/// A value guarded by a pthread mutex, for the outside waitables above. ThreadSanitizer intercepts
/// pthread mutexes, but not the contended path of `Synchronization.Mutex` (see Scripts/tsan.supp):
/// with that lock, a queued select arm's node (on the selecting thread's stack) written under the
/// lock and read by a poster under the lock after a contended hand-over was reported as a race.
final class PthreadLocked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
