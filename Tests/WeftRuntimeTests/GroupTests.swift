import WeftRuntime
import XCTest

final class GroupTests: RuntimeTestCase {
    struct Failure: Error, Equatable { let code: Int }

    func testWaitForEveryChild() throws {
        try runBoth { _ in
            let group = Group()
            let done = Counter()
            for n in 0..<100 {
                try group.spawn {
                    try Fiber.sleep(for: .microseconds(n))
                    done.add()
                }
            }
            try group.wait()
            XCTAssertEqual(done.value, 100)
            XCTAssertEqual(group.runningCount, 0)
        }
    }

    func testFailFastCancelsSiblingsAndThrowsTheFirstError() throws {
        try runBoth { _ in
            let group = Group()
            let cancelled = Counter()
            for _ in 0..<10 {
                try group.spawn {
                    do {
                        try Fiber.sleep(for: .seconds(3600))
                    } catch is CancellationError {
                        cancelled.add()
                        throw CancellationError()
                    }
                }
            }
            try group.spawn {
                try Fiber.sleep(for: .milliseconds(1))
                throw Failure(code: 3)
            }
            XCTAssertThrowsError(try group.wait()) { XCTAssertEqual($0 as? Failure, Failure(code: 3)) }
            XCTAssertEqual(cancelled.value, 10)
        }
    }

    func testWithoutFailFastSiblingsFinish() throws {
        try runBoth { _ in
            let group = Group(failFast: false)
            let done = Counter()
            try group.spawn { throw Failure(code: 1) }
            for _ in 0..<5 {
                try group.spawn {
                    try Fiber.sleep(for: .milliseconds(2))
                    done.add()
                }
            }
            XCTAssertThrowsError(try group.wait()) { XCTAssertEqual($0 as? Failure, Failure(code: 1)) }
            XCTAssertEqual(done.value, 5)
        }
    }

    func testCancelAllAndReuse() throws {
        try runBoth { _ in
            let group = Group()
            for _ in 0..<5 { try group.spawn { try Fiber.sleep(for: .seconds(3600)) } }
            group.cancelAll()
            try group.wait()
            // Reusable: a clean state after wait.
            let done = Counter()
            for _ in 0..<5 { try group.spawn { try Fiber.yield(); done.add() } }
            try group.wait()
            XCTAssertEqual(done.value, 5)
        }
    }

    func testChildrenThatFinishBeforeTheWokenWaiterResumesWakeItOnce() throws {
        // The last child wakes the waiter; until the waiter resumes it stays registered, and a
        // child spawned and finished meanwhile (here from another executor) brings the count to
        // zero again. A second wake would make the waiter's next park return at once: its join
        // would then take the result of a fiber that has not finished.
        try runBoth(executors: [3]) { _ in
            let group = Group()
            let stop = Counter()
            let spawners = try (0..<2).map { _ in
                try Fiber.spawn {
                    while stop.value == 0 {
                        try group.spawn {}
                        try Fiber.yield()
                    }
                }
            }
            for round in 0..<2000 {
                try group.spawn {}
                try group.wait()
                XCTAssertEqual(try Fiber.spawn { () throws -> Int in try Fiber.yield(); return round }.join(), round)
            }
            stop.add()
            for spawner in spawners { try spawner.join() }
            try group.wait()
        }
    }

    func testCancellingTheWaiterCancelsTheChildren() throws {
        try runBoth { _ in
            let started = Counter()
            let waiter = try Fiber.spawn { () throws -> Bool in
                let group = Group()
                for _ in 0..<5 {
                    try group.spawn {
                        started.add()
                        try Fiber.sleep(for: .seconds(3600))
                    }
                }
                try group.wait()
                return Fiber.isCancelled
            }
            while started.value < 5 { try Fiber.yield() }
            waiter.cancel()
            // wait returned normally (children were cancelled); the waiter's own cancellation is pending.
            XCTAssertEqual(try waiter.join(), true)
        }
    }
}
