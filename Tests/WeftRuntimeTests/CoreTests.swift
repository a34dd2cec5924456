import Synchronization
import SystemPackage
import WeftLoop
import WeftRuntime
import XCTest

final class CoreTests: RuntimeTestCase {
    func testRunReturnsTheBodyResult() throws {
        let results = try runBoth { executors in executors * 10 }
        XCTAssertEqual(results, [10, 30])
    }

    func testRunRethrowsTheBodyError() throws {
        struct Failure: Error {}
        for count in Self.flavours {
            XCTAssertThrowsError(try Runtime.run(options: .init(executors: .exact(count))) { () throws -> Int in throw Failure() }) {
                XCTAssertTrue($0 is Failure)
            }
        }
    }

    func testSpawnAndJoinManyFibers() throws {
        let results = try runBoth { _ in
            let handles = try (0..<1000).map { n in try Fiber.spawn { n * 2 } }
            return try handles.reduce(0) { try $0 + $1.join() }
        }
        XCTAssertEqual(results, [999_000, 999_000])
    }

    func testJoinReturnsTheChildError() throws {
        struct Failure: Error, Equatable { let code: Int }
        try runBoth { _ in
            let handle = try Fiber.spawn { () throws -> Int in throw Failure(code: 7) }
            XCTAssertThrowsError(try handle.join()) { XCTAssertEqual($0 as? Failure, Failure(code: 7)) }
        }
    }

    func testYieldInterleavesFibers() throws {
        try runBoth { executors in
            let turns = Counter()
            let handles = try (0..<4).map { _ in
                try Fiber.spawn {
                    for _ in 0..<100 {
                        turns.add()
                        try Fiber.yield()
                    }
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(turns.value, 400)
        }
    }

    func testSleepParksOnlyTheFiber() throws {
        try runBoth { executors in
            let ticks = Counter()
            let sleeper = try Fiber.spawn { () throws -> Int in
                // On one executor the ticker can only run while this fiber is parked in its sleep.
                var sleeps = 0
                while ticks.value < 10 {
                    try Fiber.sleep(for: .milliseconds(1))
                    sleeps += 1
                }
                return sleeps
            }
            let busy = try Fiber.spawn {
                for _ in 0..<10 {
                    ticks.add()
                    try Fiber.yield()
                }
            }
            try busy.join()
            let sleeps = try sleeper.join()
            // On one executor the sleeper ran first, so it slept; on three the ticker may finish first.
            if executors == 1 { XCTAssertGreaterThan(sleeps, 0) }
            XCTAssertEqual(ticks.value, 10)
        }
    }

    func testManySleepersFinish() throws {
        try runBoth { _ in
            let done = Counter()
            let handles = try (0..<500).map { n in
                try Fiber.spawn {
                    try Fiber.sleep(for: .microseconds(n % 50))
                    done.add()
                }
            }
            for handle in handles { try handle.join() }
            XCTAssertEqual(done.value, 500)
        }
    }

    func testDetachedFibersFinishBeforeRunReturns() throws {
        let done = Counter()
        try runBoth { _ in
            for _ in 0..<50 {
                try Fiber.spawn {
                    try Fiber.sleep(for: .milliseconds(2))
                    done.add()
                }.detach()
            }
        }
        XCTAssertEqual(done.value, 100)
    }

    func testBusyFiberDoesNotStarveTheLoop() throws {
        try runBoth { _ in
            let flag = Counter()
            let spinner = try Fiber.spawn {
                var spins = 0
                while flag.value == 0 {
                    spins += 1
                    try Fiber.yield()
                }
                return spins
            }
            let timer = try Fiber.spawn {
                try Fiber.sleep(for: .milliseconds(5))
                flag.add()
            }
            try timer.join()
            XCTAssertGreaterThan(try spinner.join(), 0)
        }
    }

    func testBusyFibersDoNotStarveFibersSpawnedFromOutside() throws {
        // The executors' queues never empty (every fiber yields in a loop); a fiber spawned from a
        // plain thread goes to the inject queue and must still get its turn.
        try runBoth { count in
            let runtime = Runtime.current!
            let injected = Counter()
            let ran = Counter()
            let spinners = try (0..<count).map { _ in
                try Fiber.spawn { () throws -> Int in
                    while injected.value == 0 { try Fiber.yield() }
                    // Bounded, so that a starved fiber fails the test instead of hanging it.
                    var spins = 0
                    while ran.value == 0 && spins < 100_000 {
                        spins += 1
                        try Fiber.yield()
                    }
                    return spins
                }
            }
            let thread = Thread {
                _ = try? runtime.spawn { ran.add() }
                injected.add()
            }
            thread.start()
            for spinner in spinners { XCTAssertLessThan(try spinner.join(), 100_000, "the injected fiber never ran") }
            XCTAssertEqual(ran.value, 1)
        }
    }

    func testExecutorsCount() throws {
        XCTAssertEqual(Runtime.Executors.one.count, 1)
        XCTAssertEqual(Runtime.Executors.exact(4).count, 4)
        XCTAssertEqual(Runtime.Executors.exact(0).count, 1)
        XCTAssertGreaterThanOrEqual(Runtime.Executors.auto.count, 1)
        let count = try Runtime.run(options: .init(executors: .auto)) { Runtime.current?.executorCount ?? 0 }
        XCTAssertEqual(count, Runtime.Executors.auto.count)
    }

    func testFibersRunOnEveryExecutor() throws {
        // With work on the queue, idle executors steal; every executor ends up running fibers.
        // The fibers keep going until all three were seen (or a generous limit, so that a broken
        // scheduler fails instead of hanging).
        let seen = try runBoth(executors: [3]) { _ in
            let seen = IndexSet()
            let limit = ContinuousClock.now + .seconds(20)
            let handles = try (0..<300).map { _ in
                try Fiber.spawn {
                    while seen.values.count < 3 && ContinuousClock.now < limit {
                        seen.insert(Fiber.executorIndex)
                        try Fiber.sleep(for: .microseconds(100))
                    }
                }
            }
            for handle in handles { try handle.join() }
            return seen.values
        }
        XCTAssertEqual(seen.first, [0, 1, 2])
    }

    func testFiberLocalValuesAreScopedPerFiber() throws {
        let local = FiberLocal<Int>(default: -1)
        try runBoth { _ in
            XCTAssertEqual(local.value, -1)
            try local.withValue(1) {
                let child = try Fiber.spawn { local.value }
                XCTAssertEqual(try child.join(), -1)
                try Fiber.sleep(for: .milliseconds(1))
                XCTAssertEqual(local.value, 1)
                try local.withValue(2) {
                    try Fiber.yield()
                    XCTAssertEqual(local.value, 2)
                }
                XCTAssertEqual(local.value, 1)
            }
            XCTAssertEqual(local.value, -1)
        }
        XCTAssertEqual(local.value, -1)
    }

    func testFiberLocalValuesFollowMigratingFibers() throws {
        let local = FiberLocal<Int>(default: -1)
        try runBoth { _ in
            let handles = try (0..<50).map { n in
                try Fiber.spawn { () throws -> Int in
                    try local.withValue(n) {
                        var wrong = 0
                        for _ in 0..<100 {
                            try Fiber.yield()
                            if local.value != n { wrong += 1 }
                        }
                        return wrong
                    }
                }
            }
            for handle in handles { XCTAssertEqual(try handle.join(), 0) }
        }
    }

    func testSpawnBlockingRunsOffTheExecutor() throws {
        try runBoth { _ in
            let ticks = Counter()
            let ticker = try Fiber.spawn {
                for _ in 0..<5 {
                    ticks.add()
                    try Fiber.yield()
                }
            }
            let value = try Fiber.spawnBlocking { () -> Int in
                usleep(20_000)
                return 42
            }
            XCTAssertEqual(value, 42)
            try ticker.join()
            XCTAssertEqual(ticks.value, 5)
            struct Failure: Error {}
            XCTAssertThrowsError(try Fiber.spawnBlocking { () throws -> Int in throw Failure() }) { XCTAssertTrue($0 is Failure) }
        }
    }
}
