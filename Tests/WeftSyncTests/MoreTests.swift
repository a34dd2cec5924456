import WeftRuntime
import WeftSync
import XCTest

final class MoreTests: SyncTestCase {
    func testDeadlines() throws {
        try runBoth { _ in
            let channel = Channel<Int>()
            let start = ContinuousClock.now
            XCTAssertThrowsError(try channel.receive(deadline: start + .milliseconds(10))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Channel.receive"))
            }
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(10))
            XCTAssertThrowsError(try channel.send(1, deadline: .now - .seconds(1)))
            XCTAssertThrowsError(try select(channel.onReceive(), deadline: .now + .milliseconds(1)))
            let mutex = Mutex()
            try mutex.lock(deadline: .now)
            try mutex.unlock()
            let future = Future<Int>()
            try future.set(1)
            XCTAssertEqual(try future.get(deadline: .now), 1)
        }
    }

    func testWaitsThatBeginCancelledThrowAndLeaveThePrimitivesUsable() throws {
        try runBoth { executors in
            let mutex = Mutex()
            try mutex.lock()
            let rwLock = RwLock()
            try rwLock.writeLock()
            let semaphore = Semaphore(permits: 0)
            let notify = Notify()
            let event = ResetEvent()
            let future = Future<Int>()
            let channel = Channel<Int>()
            let full = Channel<Int>(capacity: 1)
            try full.send(0)
            // Each would wait; its fiber is cancelled before it runs (with one executor; with
            // several it may already wait), so the wait begins, or is, cancelled. The wait takes
            // the primitive's lock, finds it must wait, sees the cancellation and must let go of
            // the lock with nothing queued.
            let waits: [(String, @Sendable () throws -> Void)] = [
                ("Mutex.lock", { try mutex.lock() }),
                ("RwLock.readLock", { try rwLock.readLock() }),
                ("RwLock.writeLock", { try rwLock.writeLock() }),
                ("Semaphore.wait", { try semaphore.wait() }),
                ("Notify.wait", { try notify.wait() }),
                ("ResetEvent.wait", { try event.wait() }),
                ("Future.get", { _ = try future.get() }),
                ("Channel.receive", { _ = try channel.receive() }),
                ("Channel.send", { try full.send(1) }),
            ]
            for (name, wait) in waits {
                let fiber = try Fiber.spawn { () -> Bool in
                    do { try wait() } catch is CancellationError { return true }
                    return false
                }
                fiber.cancel()
                XCTAssertTrue(try fiber.join(), "\(name), \(executors) executors")
            }
            XCTAssertEqual(mutex.waiterCount, 0)
            XCTAssertEqual(rwLock.waiterCount, 0)
            XCTAssertEqual(semaphore.waiterCount, 0)
            XCTAssertEqual(notify.waiterCount, 0)
            XCTAssertEqual(event.waiterCount, 0)
            XCTAssertEqual(future.waiterCount, 0)
            XCTAssertEqual(channel.waitingReceivers, 0)
            XCTAssertEqual(full.waitingSenders, 0)
            // Every primitive still works (a lock left held would hang here).
            try mutex.unlock()
            try mutex.lock()
            try mutex.unlock()
            try rwLock.writeUnlock()
            try rwLock.readLock()
            try rwLock.readUnlock()
            semaphore.signal()
            try semaphore.wait()
            notify.notifyOne()
            try notify.wait()
            event.set()
            try event.wait()
            try future.set(3)
            XCTAssertEqual(try future.get(), 3)
            XCTAssertFalse(try channel.trySend(1))
            XCTAssertEqual(try full.tryReceive(), 0)
            XCTAssertNil(try full.tryReceive())
        }
    }

    func testConditionWithRecursiveMutexRestoresDepth() throws {
        try runBoth { _ in
            let mutex = RecursiveMutex()
            let condition = Condition()
            let ready = ResetEvent()
            let waiter = try Fiber.spawn { () -> Bool in
                try mutex.lock()
                try mutex.lock()
                ready.set()
                try condition.wait(mutex)
                try mutex.unlock()
                try mutex.unlock()
                return true
            }
            try ready.wait()
            try Self.until { condition.waiterCount == 1 }
            // The waiter released both levels while it waits.
            XCTAssertTrue(mutex.tryLock())
            try mutex.unlock()
            condition.signal()
            XCTAssertTrue(try waiter.join())
            XCTAssertThrowsError(try mutex.unlock())
        }
    }

    func testSelectOverNotifyAndSemaphoreConsumesOnlyTheWinner() throws {
        try runBoth { _ in
            let notify = Notify()
            let semaphore = Semaphore(permits: 0)
            notify.notifyOne()
            semaphore.signal()
            let first = try select(notify.onNotified().map { "notify" }, semaphore.onWait().map { "semaphore" })
            XCTAssertEqual(first, "notify")
            XCTAssertEqual(semaphore.availablePermits, 1)
            let second = try select(notify.onNotified().map { "notify" }, semaphore.onWait().map { "semaphore" })
            XCTAssertEqual(second, "semaphore")
            let waiter = try Fiber.spawn {
                try select(notify.onNotified().map { "notify" }, semaphore.onWait().map { "semaphore" })
            }
            try Self.until { notify.waiterCount == 1 && semaphore.waiterCount == 1 }
            semaphore.signal()
            XCTAssertEqual(try waiter.join(), "semaphore")
            XCTAssertEqual(notify.waiterCount, 0)
            // The losing arm took nothing: a new notification is stored for the next wait.
            notify.notifyOne()
            try notify.wait(timeout: .milliseconds(100))
        }
    }

    func testBarrierAndBroadcastWaitsAreCancellable() throws {
        try runBoth { _ in
            let barrier = Barrier(parties: 3)
            let party = try Fiber.spawn { () -> Bool in
                do { try barrier.wait() } catch is CancellationError { return true }
                return false
            }
            try Self.until { barrier.waiterCount == 1 }
            party.cancel()
            XCTAssertTrue(try party.join())
            // The cancelled party no longer counts: two more arrivals do not trip the barrier.
            let second = try Fiber.spawn { try barrier.wait(timeout: .milliseconds(20)) }
            XCTAssertThrowsError(try barrier.wait(timeout: .milliseconds(20)))
            XCTAssertThrowsError(try second.join())

            let broadcast = BroadcastChannel<Int>(capacity: 2)
            let subscriber = broadcast.subscribe()
            let reader = try Fiber.spawn { () -> Bool in
                do { _ = try subscriber.receive() } catch is CancellationError { return true }
                return false
            }
            try Self.until { broadcast.waiterCount == 1 }
            reader.cancel()
            XCTAssertTrue(try reader.join())
            try broadcast.send(1)
            XCTAssertEqual(try subscriber.receive(), 1)
        }
    }

    func testRwLockBetweenThreadsAndFibers() throws {
        try runBoth { _ in
            let lock = RwLock()
            let shared = Unprotected()
            let threads = (0..<2).map { _ in
                Self.thread {
                    for _ in 0..<500 {
                        try! lock.withWriteLock { shared.value += 1 }
                        _ = try! lock.withReadLock { shared.value }
                    }
                }
            }
            let fibers = try (0..<3).map { _ in
                try Fiber.spawn {
                    for round in 0..<500 {
                        try lock.withWriteLock {
                            let before = shared.value
                            if round % 25 == 0 { try Fiber.yield() }
                            shared.value = before + 1
                        }
                    }
                }
            }
            for fiber in fibers { try fiber.join() }
            for thread in threads { try thread.wait() }
            XCTAssertEqual(shared.value, 2500)
        }
    }

    func testShieldedWaitIgnoresCancellation() throws {
        try runBoth { _ in
            let event = ResetEvent()
            let waiter = try Fiber.spawn { () -> Bool in
                try Fiber.withCancellationShield { try event.wait() }
                return Fiber.isCancelled
            }
            try Self.until { event.waiterCount == 1 }
            waiter.cancel()
            try Fiber.yield()
            XCTAssertEqual(event.waiterCount, 1)
            event.set()
            XCTAssertTrue(try waiter.join())
        }
    }
}

final class ThreadSelectTests: SyncTestCase {
    func testSelectFromAThreadAgainstFibers() throws {
        try runBoth { _ in
            let a = Channel<Int>()
            let b = Channel<Int>(capacity: 2)
            let stop = ResetEvent()
            let received = Bag()
            let thread = Self.thread {
                while true {
                    let value = try! select(a.onReceive().map { $0 ?? -1 }, b.onReceive().map { $0 ?? -1 }, stop.onWait().map { -2 })
                    if value == -2 { return }
                    received.add(value)
                }
            }
            let senders = try [a, b].enumerated().map { index, channel in
                try Fiber.spawn { for value in 0..<200 { try channel.send(index * 1000 + value) } }
            }
            for sender in senders { try sender.join() }
            try Self.until { received.all.count == 400 }
            stop.set()
            try thread.wait()
            XCTAssertEqual(received.all.sorted(), ((0..<200).map { $0 } + (0..<200).map { 1000 + $0 }).sorted())
        }
    }

    func testSelectTimeoutOnAThread() throws {
        let channel = Channel<Int>()
        let outcome = Bag()
        try Self.thread {
            do { _ = try select(channel.onReceive(), timeout: .milliseconds(5)) } catch SyncError.timedOut { outcome.add(1) } catch {}
        }.wait()
        XCTAssertEqual(outcome.all, [1])
        XCTAssertEqual(channel.waitingReceivers, 0)
    }
}
