import Glibc
import WeftContext
import WeftRuntime
import WeftSync
import XCTest

final class LockTests: SyncTestCase {
    func testMutexExcludesContendingFibers() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let shared = Unprotected()
            let handles = try (0..<8).map { _ in
                try Fiber.spawn {
                    for round in 0..<500 {
                        try mutex.lock()
                        shared.inside += 1
                        shared.maximum = max(shared.maximum, shared.inside)
                        let before = shared.value
                        if round % 7 == 0 { try Fiber.yield() }
                        shared.value = before + 1
                        shared.inside -= 1
                        try mutex.unlock()
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(shared.value, 4000)
            XCTAssertEqual(shared.maximum, 1)
            XCTAssertFalse(mutex.isLocked)
        }
    }

    func testMutexBetweenFibersAndThreads() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let shared = Unprotected()
            let threads = (0..<2).map { _ in
                Self.thread {
                    for _ in 0..<2000 {
                        try! mutex.withLock { shared.value += 1 }
                    }
                }
            }
            let fibers = try (0..<4).map { _ in
                try Fiber.spawn {
                    for round in 0..<1000 {
                        try mutex.withLock {
                            let before = shared.value
                            if round % 50 == 0 { try Fiber.yield() }
                            shared.value = before + 1
                        }
                    }
                }
            }
            for fiber in fibers { try fiber.join() }
            for done in threads { try done.wait() }
            XCTAssertEqual(shared.value, 8000)
        }
    }

    func testMutexMisuseIsReported() throws {
        try runBoth { _ in
            let mutex = Mutex()
            XCTAssertThrowsError(try mutex.unlock()) { XCTAssertEqual($0 as? SyncError, .notOwner(operation: "Mutex.unlock")) }
            try mutex.lock()
            XCTAssertThrowsError(try mutex.lock()) { XCTAssertEqual($0 as? SyncError, .alreadyOwned(operation: "Mutex.lock")) }
            let other = try Fiber.spawn { () -> SyncError? in
                do { try mutex.unlock() } catch { return error as? SyncError }
                return nil
            }
            XCTAssertEqual(try other.join(), .notOwner(operation: "Mutex.unlock"))
            XCTAssertFalse(try Fiber.spawn { try mutex.tryLock() }.join())
            try mutex.unlock()
            XCTAssertTrue(try mutex.tryLock())
            try mutex.unlock()
        }
    }

    func testALockLeftLockedByAFinishedFiberIsNotOwnedByTheNextFiber() throws {
        // The next fiber spawned on the executor usually gets the finished fiber's object (it is
        // reused) or its address (the allocator reuses it): it must not pass for the owner.
        try runBoth { _ in
            for _ in 0..<20 {
                let mutex = Mutex()
                try Fiber.spawn { try mutex.lock() }.join()
                let next = try Fiber.spawn { () -> SyncError? in
                    do { try mutex.unlock() } catch { return error as? SyncError }
                    return nil
                }
                XCTAssertEqual(try next.join(), .notOwner(operation: "Mutex.unlock"))
                XCTAssertFalse(try Fiber.spawn { try mutex.tryLock() }.join())
                XCTAssertTrue(mutex.isLocked)
            }
        }
    }

    func testAFiberIdentityIsNeverRepeated() throws {
        // One object is reused for every spawn and join here: the identity must stay new well past
        // what a 16-bit counter would allow. Under ThreadSanitizer objects are not reused (and each
        // fiber maps a fresh stack, which makes 70,000 of them take minutes): nothing to test.
        if ExecutionContext.sanitizers.contains("thread") {
            throw XCTSkip("fiber objects are not reused under ThreadSanitizer")
        }
        try Runtime.run(options: .init(executors: .one)) {
            let mutex = Mutex()
            try Fiber.spawn { try mutex.lock() }.join()
            var unlockedBy: Int? = nil
            for i in 1...70_000 where unlockedBy == nil {
                if try Fiber.spawn({ (try? mutex.unlock()) != nil }).join() { unlockedBy = i }
            }
            XCTAssertNil(unlockedBy)
        }
    }

    func testALockLeftLockedByAFinishedThreadIsNotOwnedByTheNextThread() throws {
        // The C library gives a joined thread's thread block (and so its `pthread_self()`) to the
        // next thread it starts.
        let unlocked = Counter()
        for _ in 0..<20 {
            let mutex = Mutex()
            Self.runJoinedThread { try? mutex.lock() }
            Self.runJoinedThread { if (try? mutex.unlock()) != nil { unlocked.add() } }
            XCTAssertTrue(mutex.isLocked)
        }
        XCTAssertEqual(unlocked.value, 0)
    }

    /// Runs `body` on a new thread and joins it.
    private static func runJoinedThread(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, Unmanaged.passRetained(Box(body)).toOpaque())
        precondition(started == 0, "pthread_create failed")
        pthread_join(thread, nil)
    }

    func testMutexTimedAndCancelledLocks() throws {
        try runBoth { _ in
            let mutex = Mutex()
            try mutex.lock()
            let timed = try Fiber.spawn { () -> SyncError? in
                do { try mutex.lock(timeout: .milliseconds(20)) } catch { return error as? SyncError }
                return nil
            }
            XCTAssertEqual(try timed.join(), .timedOut(operation: "Mutex.lock"))
            let cancelled = try Fiber.spawn { () -> Bool in
                do { try mutex.lock() } catch is CancellationError { return true }
                return false
            }
            try Self.until { mutex.waiterCount == 1 }
            cancelled.cancel()
            XCTAssertTrue(try cancelled.join())
            XCTAssertEqual(mutex.waiterCount, 0)
            // The uncancellable lock keeps waiting through a cancellation.
            let stubborn = try Fiber.spawn { () -> Bool in
                try mutex.lockUncancellable()
                try mutex.unlock()
                return Fiber.isCancelled
            }
            try Self.until { mutex.waiterCount == 1 }
            stubborn.cancel()
            try Fiber.sleep(for: .milliseconds(5))
            try mutex.unlock()
            XCTAssertTrue(try stubborn.join())
            XCTAssertFalse(mutex.isLocked)
        }
    }

    func testMutexHandsOffInArrivalOrder() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let order = Bag()
            try mutex.lock()
            var handles: [JoinHandle<Void>] = []
            for index in 0..<5 {
                handles.append(try Fiber.spawn { try mutex.withLock { order.add(index) } })
                try Self.until { mutex.waiterCount == index + 1 }
            }
            try mutex.unlock()
            for handle in handles { try handle.join() }
            XCTAssertEqual(order.all, [0, 1, 2, 3, 4])
        }
    }

    func testMutexWithTimeoutFromTheRuntime() throws {
        try runBoth { _ in
            let mutex = Mutex()
            try mutex.lock()
            let waiter = try Fiber.spawn { () -> Bool in
                do { try Fiber.withTimeout(.milliseconds(10)) { try mutex.lock() } } catch is TimeoutError { return true }
                return false
            }
            XCTAssertTrue(try waiter.join())
            try mutex.unlock()
        }
    }

    func testRecursiveMutexNests() throws {
        try runBoth { _ in
            let mutex = RecursiveMutex()
            try mutex.lock()
            try mutex.lock()
            XCTAssertFalse(try Fiber.spawn { mutex.tryLock() }.join())
            try mutex.unlock()
            XCTAssertFalse(try Fiber.spawn { mutex.tryLock() }.join())
            try mutex.unlock()
            XCTAssertThrowsError(try mutex.unlock())
            let total = Counter()
            let handles = try (0..<4).map { _ in
                try Fiber.spawn {
                    for _ in 0..<100 {
                        _ = try mutex.withLock { try mutex.withLock { total.add() } }
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(total.value, 400)
        }
    }

    func testRwLockReadersShareWritersExclude() throws {
        try runBoth { _ in
            let lock = RwLock()
            let shared = Unprotected()
            let readersInside = Counter()
            let maxReaders = Counter()
            let handles = try (0..<8).map { index in
                try Fiber.spawn {
                    for round in 0..<200 {
                        if index % 4 == 0 {
                            try lock.withWriteLock {
                                XCTAssertEqual(readersInside.value, 0)
                                shared.inside += 1
                                XCTAssertEqual(shared.inside, 1)
                                let before = shared.value
                                if round % 10 == 0 { try Fiber.yield() }
                                shared.value = before + 1
                                shared.inside -= 1
                            }
                        } else {
                            try lock.withReadLock {
                                let now = readersInside.add()
                                if now > maxReaders.value { maxReaders.atomic.store(now, ordering: .relaxed) }
                                XCTAssertEqual(shared.inside, 0)
                                if round % 5 == 0 { try Fiber.yield() }
                                readersInside.add(-1)
                            }
                        }
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(shared.value, 400)
            XCTAssertGreaterThan(maxReaders.value, 1)
        }
    }

    func testRwLockTimeoutsCancellationAndMisuse() throws {
        try runBoth { _ in
            let lock = RwLock()
            XCTAssertThrowsError(try lock.readUnlock())
            XCTAssertThrowsError(try lock.writeUnlock())
            try lock.readLock()
            let writer = try Fiber.spawn { () -> SyncError? in
                do { try lock.writeLock(timeout: .milliseconds(10)) } catch { return error as? SyncError }
                return nil
            }
            XCTAssertEqual(try writer.join(), .timedOut(operation: "RwLock.writeLock"))
            // A queued writer holds back new readers; when it is cancelled, they get in.
            let blocked = try Fiber.spawn { () -> Bool in
                do { try lock.writeLock() } catch is CancellationError { return true }
                return false
            }
            try Self.until { lock.waiterCount == 1 }
            XCTAssertFalse(lock.tryReadLock())
            let reader = try Fiber.spawn { try lock.readLock(); try lock.readUnlock() }
            try Self.until { lock.waiterCount == 2 }
            blocked.cancel()
            XCTAssertTrue(try blocked.join())
            try reader.join()
            try lock.readUnlock()
            XCTAssertTrue(try lock.tryWriteLock())
            XCTAssertThrowsError(try lock.tryWriteLock())
            try lock.writeUnlock()
        }
    }

    func testConditionProducerConsumer() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let condition = Condition()
            let shared = Unprotected()
            let consumed = Counter()
            let consumers = try (0..<3).map { _ in
                try Fiber.spawn {
                    while true {
                        try mutex.lock()
                        while shared.value == 0 && shared.inside == 0 { try condition.wait(mutex) }
                        if shared.value == 0 {
                            try mutex.unlock()
                            return
                        }
                        shared.value -= 1
                        consumed.add()
                        try mutex.unlock()
                    }
                }
            }
            for _ in 0..<300 {
                try mutex.withLock { shared.value += 1 }
                condition.signal()
                if Int.random(in: 0..<4) == 0 { try Fiber.yield() }
            }
            try mutex.withLock { shared.inside = 1 }
            condition.broadcast()
            for consumer in consumers { try consumer.join() }
            XCTAssertEqual(consumed.value, 300)
        }
    }

    func testConditionTimeoutCancellationAndMisuse() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let condition = Condition()
            XCTAssertThrowsError(try condition.wait(mutex)) {
                XCTAssertEqual($0 as? SyncError, .notOwner(operation: "Condition.wait"))
            }
            try mutex.lock()
            XCTAssertThrowsError(try condition.wait(mutex, timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Condition.wait"))
            }
            // The mutex is owned again after the timeout.
            try mutex.unlock()
            let waiter = try Fiber.spawn { () -> Bool in
                try mutex.lock()
                defer { try? mutex.unlock() }
                do { try condition.wait(mutex) } catch is CancellationError { return mutex.isLocked }
                return false
            }
            try Self.until { condition.waiterCount == 1 }
            waiter.cancel()
            XCTAssertTrue(try waiter.join())
            XCTAssertFalse(mutex.isLocked)
        }
    }
}
