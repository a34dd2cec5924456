import WeftRuntime
import WeftSync
import XCTest

final class DeadlineTests: SyncTestCase {
    func testRwLockDeadlines() throws {
        try runBoth { _ in
            let lock = RwLock()
            // A deadline already past still tries once.
            let past = ContinuousClock.now - .seconds(1)
            try lock.readLock(deadline: past)
            try lock.readUnlock()
            try lock.writeLock(deadline: past)
            try lock.writeUnlock()
            try lock.writeLock()
            let soon = ContinuousClock.now + .milliseconds(5)
            let reader = try Fiber.spawn { () -> SyncError? in
                do { try lock.readLock(deadline: soon) } catch { return error as? SyncError }
                return nil
            }
            XCTAssertEqual(try reader.join(), .timedOut(operation: "RwLock.readLock"))
            let writer = try Fiber.spawn { () -> SyncError? in
                do { try lock.writeLock(deadline: soon) } catch { return error as? SyncError }
                return nil
            }
            XCTAssertEqual(try writer.join(), .timedOut(operation: "RwLock.writeLock"))
            XCTAssertEqual(lock.waiterCount, 0)
            // Woken before the deadline: a reader, then a writer after it.
            let late = ContinuousClock.now + .seconds(30)
            let patientReader = try Fiber.spawn {
                try lock.readLock(deadline: late)
                try lock.readUnlock()
            }
            try Self.until { lock.waiterCount == 1 }
            try lock.writeUnlock()
            try patientReader.join()
            try lock.readLock()
            let patientWriter = try Fiber.spawn {
                try lock.writeLock(deadline: late)
                try lock.writeUnlock()
            }
            try Self.until { lock.waiterCount == 1 }
            try lock.readUnlock()
            try patientWriter.join()
            XCTAssertTrue(try lock.tryWriteLock())
            try lock.writeUnlock()
        }
    }

    func testConditionDeadlines() throws {
        try runBoth { _ in
            let mutex = WeftSync.Mutex()
            let condition = Condition()
            try mutex.lock()
            XCTAssertThrowsError(try condition.wait(mutex, deadline: .now + .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Condition.wait"))
            }
            // The mutex is owned again after the timeout.
            try mutex.unlock()
            let flag = Counter()
            let waiter = try Fiber.spawn {
                try mutex.lock()
                while flag.value == 0 { try condition.wait(mutex, deadline: .now + .seconds(30)) }
                try mutex.unlock()
            }
            try Self.until { condition.waiterCount == 1 }
            try mutex.withLock { _ = flag.add() }
            condition.signal()
            try waiter.join()
            // A recursive mutex comes back at its depth, whether the wait timed out or was woken.
            let recursive = RecursiveMutex()
            try recursive.lock()
            try recursive.lock()
            XCTAssertThrowsError(try condition.wait(recursive, deadline: .now + .milliseconds(5)))
            try recursive.unlock()
            try recursive.unlock()
            XCTAssertThrowsError(try recursive.unlock())
            let recursiveWaiter = try Fiber.spawn {
                try recursive.lock()
                try recursive.lock()
                try condition.wait(recursive, deadline: .now + .seconds(30))
                try recursive.unlock()
                try recursive.unlock()
            }
            try Self.until { condition.waiterCount == 1 }
            condition.broadcast()
            try recursiveWaiter.join()
            XCTAssertTrue(recursive.tryLock())
            try recursive.unlock()
        }
    }

    func testBarrierDeadlines() throws {
        try runBoth { _ in
            XCTAssertTrue(try Barrier(parties: 1).wait(deadline: .now - .seconds(1)))
            let barrier = Barrier(parties: 2)
            XCTAssertThrowsError(try barrier.wait(deadline: .now + .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Barrier.wait"))
            }
            XCTAssertEqual(barrier.waiterCount, 0)
            // The timed-out party left: the round needs two new arrivals.
            let party = try Fiber.spawn { try barrier.wait(deadline: .now + .seconds(30)) }
            try Self.until { barrier.waiterCount == 1 }
            let leader = try barrier.wait(deadline: .now + .seconds(30))
            let other = try party.join()
            XCTAssertTrue(leader != other)
            XCTAssertTrue(leader)
        }
    }
}
