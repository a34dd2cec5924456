import WeftRuntime
import WeftSync
import XCTest

final class EventTests: SyncTestCase {
    func testSemaphoreBoundsConcurrency() throws {
        try runBoth { _ in
            let semaphore = Semaphore(permits: 3)
            let inside = Counter()
            let peak = Counter()
            let handles = try (0..<10).map { _ in
                try Fiber.spawn {
                    for _ in 0..<50 {
                        try semaphore.wait()
                        let now = inside.add()
                        if now > peak.value { peak.atomic.store(now, ordering: .relaxed) }
                        XCTAssertLessThanOrEqual(now, 3)
                        try Fiber.yield()
                        inside.add(-1)
                        semaphore.signal()
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertLessThanOrEqual(peak.value, 3)
            XCTAssertEqual(semaphore.availablePermits, 3)
        }
    }

    func testSemaphoreTryTimedCancelledAndThreads() throws {
        try runBoth { _ in
            let semaphore = Semaphore(permits: 1)
            XCTAssertTrue(semaphore.tryWait())
            XCTAssertFalse(semaphore.tryWait())
            XCTAssertThrowsError(try semaphore.wait(timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Semaphore.wait"))
            }
            let cancelled = try Fiber.spawn { () -> Bool in
                do { try semaphore.wait() } catch is CancellationError { return true }
                return false
            }
            try Self.until { semaphore.waiterCount == 1 }
            cancelled.cancel()
            XCTAssertTrue(try cancelled.join())
            // A thread waits; a fiber signals.
            let threadDone = Self.thread { try! semaphore.wait() }
            try Self.until { semaphore.waiterCount == 1 }
            semaphore.signal()
            try threadDone.wait()
            // A thread times out.
            let timedOut = Counter()
            try Self.thread {
                do { try semaphore.wait(timeout: .milliseconds(5)) } catch { timedOut.add() }
            }.wait()
            XCTAssertEqual(timedOut.value, 1)
            XCTAssertEqual(semaphore.availablePermits, 0)
        }
    }

    func testResetEventReleasesEveryWaiter() throws {
        try runBoth { _ in
            let event = ResetEvent()
            let passed = Counter()
            let handles = try (0..<10).map { _ in try Fiber.spawn { try event.wait(); passed.add() } }
            let thread = Self.thread { try! event.wait(); passed.add() }
            try Self.until { event.waiterCount == 11 }
            XCTAssertEqual(passed.value, 0)
            event.set()
            for handle in handles { try handle.join() }
            try thread.wait()
            XCTAssertEqual(passed.value, 11)
            try event.wait()
            event.reset()
            XCTAssertFalse(event.isSet)
            XCTAssertThrowsError(try event.wait(timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "ResetEvent.wait"))
            }
            let cancelled = try Fiber.spawn { () -> Bool in
                do { try event.wait() } catch is CancellationError { return true }
                return false
            }
            try Self.until { event.waiterCount == 1 }
            cancelled.cancel()
            XCTAssertTrue(try cancelled.join())
            XCTAssertEqual(event.waiterCount, 0)
        }
    }

    func testNotifyKeepsOnePermit() throws {
        try runBoth { _ in
            let notify = Notify()
            notify.notifyOne()
            notify.notifyOne()
            try notify.wait()
            XCTAssertThrowsError(try notify.wait(timeout: .milliseconds(5)))
            let woken = Counter()
            let handles = try (0..<4).map { _ in try Fiber.spawn { try notify.wait(); woken.add() } }
            try Self.until { notify.waiterCount == 4 }
            notify.notifyOne()
            try Self.until { woken.value == 1 }
            notify.notifyAll()
            for handle in handles { try handle.join() }
            XCTAssertEqual(woken.value, 4)
            // notifyAll leaves no permit.
            XCTAssertThrowsError(try notify.wait(timeout: .milliseconds(5)))
        }
    }

    func testABarrierPartyThatWasCancelledDoesNotCountInTheRound() throws {
        // The party is cancelled while it waits and has claimed its own wait, but has not left
        // the barrier yet (it settles its timer first) when the next one arrives: that arrival
        // must not complete a round of two on its own.
        try Runtime.run(options: .init(executors: .one)) {
            let barrier = Barrier(parties: 2)
            let party = try Fiber.spawn { () -> String in
                do {
                    try barrier.wait(timeout: .seconds(30))
                    return "passed"
                } catch {
                    return "\(error)"
                }
            }
            try SyncTestCase.until { barrier.waiterCount == 1 }
            party.cancel()
            try Fiber.yield()
            var passedAlone = false
            do {
                try barrier.wait(timeout: .milliseconds(200))
                passedAlone = true
            } catch {
                XCTAssertEqual(error as? SyncError, .timedOut(operation: "Barrier.wait"))
            }
            XCTAssertFalse(passedAlone)
            XCTAssertEqual(try party.join(), "CancellationError()")
            // The barrier is whole again: a round of two completes, with one leader.
            let other = try Fiber.spawn { try barrier.wait() }
            let leaderHere = try barrier.wait()
            XCTAssertNotEqual(try other.join(), leaderHere)
            XCTAssertEqual(barrier.waiterCount, 0)
        }
    }

    func testBarrierRoundsAndLeaders() throws {
        try runBoth { _ in
            let barrier = Barrier(parties: 4)
            let leaders = Counter()
            let phase = Counter()
            let handles = try (0..<4).map { _ in
                try Fiber.spawn {
                    for round in 0..<20 {
                        XCTAssertGreaterThanOrEqual(phase.value, round * 4)
                        phase.add()
                        if try barrier.wait() { leaders.add() }
                        XCTAssertGreaterThanOrEqual(phase.value, (round + 1) * 4)
                        try barrier.wait()
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(leaders.value, 20)
            // A party that times out leaves the round.
            XCTAssertThrowsError(try barrier.wait(timeout: .milliseconds(5)))
            XCTAssertEqual(barrier.waiterCount, 0)
            let two = Barrier(parties: 2)
            let other = try Fiber.spawn { try two.wait() }
            try two.wait()
            _ = try other.join()
        }
    }

    func testFutureManyWaitersAndMisuse() throws {
        try runBoth { _ in
            let future = Future<Int>()
            XCTAssertNil(future.tryGet())
            let handles = try (0..<8).map { _ in try Fiber.spawn { try future.get() } }
            let fromThread = Counter()
            let thread = Self.thread { fromThread.add(try! future.get()) }
            try Self.until { future.waiterCount == 9 }
            try future.set(42)
            XCTAssertThrowsError(try future.set(43)) { XCTAssertEqual($0 as? SyncError, .alreadySet(operation: "Future.set")) }
            for handle in handles { XCTAssertEqual(try handle.join(), 42) }
            try thread.wait()
            XCTAssertEqual(fromThread.value, 42)
            XCTAssertEqual(try future.get(), 42)
            let never = Future<Int>()
            XCTAssertThrowsError(try never.get(timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Future.get"))
            }
            let cancelled = try Fiber.spawn { () -> Bool in
                do { _ = try never.get() } catch is CancellationError { return true }
                return false
            }
            try Self.until { never.waiterCount == 1 }
            cancelled.cancel()
            XCTAssertTrue(try cancelled.join())
        }
    }

    func testThreadToThreadWithoutRuntime() throws {
        let event = ResetEvent()
        let channel = Channel<Int>(capacity: 0)
        let received = Bag()
        let consumer = Self.thread {
            while let value = try? channel.receive() { received.add(value) }
        }
        let producer = Self.thread {
            for value in 0..<100 { try! channel.send(value) }
            channel.close()
            event.set()
        }
        try event.wait()
        try producer.wait()
        try consumer.wait()
        XCTAssertEqual(received.all, Array(0..<100))
    }
}
