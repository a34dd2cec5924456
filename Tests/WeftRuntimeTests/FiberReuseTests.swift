import Synchronization
import WeftContext
import WeftRuntime
import XCTest

/// A finished fiber's object is reused for a later spawn on the same executor once no handle
/// references it: the new fiber must see none of the old one's state, and a handle still held
/// must keep its own fiber.
final class FiberReuseTests: RuntimeTestCase {
    /// Reuse is off under ThreadSanitizer (see `Executor.recycles`).
    private var reuses: Bool { !ExecutionContext.sanitizers.contains("thread") }

    func testSpawnAndJoinInALoopReusesFiberObjects() throws {
        let reused = try runBoth(executors: [1]) { _ -> Int in
            let before = Runtime.fiberObjectsReusedHere!
            for i in 0..<1000 { XCTAssertEqual(try Fiber.spawn { i * 2 }.join(), i * 2) }
            return Runtime.fiberObjectsReusedHere! - before
        }
        if reuses { XCTAssertGreaterThan(reused[0], 900) } else { XCTAssertEqual(reused[0], 0) }
    }

    func testAHeldHandleKeepsItsOwnFiber() throws {
        try runBoth { _ in
            // Finished but not joined: its object is the newest on the executor's list, and only
            // this handle keeps it from being reused.
            let held = try Fiber.spawn { 42 }
            while !held.isFinished { try Fiber.yield() }
            let detached = try Fiber.spawn { 2 }
            try detached.detach()
            while !detached.isFinished { try Fiber.yield() }
            for i in 0..<200 { XCTAssertEqual(try Fiber.spawn { i }.join(), i) }
            XCTAssertThrowsError(try detached.join()) { XCTAssertEqual($0 as? FiberError, .detached) }
            XCTAssertEqual(try held.join(), 42)
            XCTAssertThrowsError(try held.join()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
        }
    }

    func testAReusedObjectCarriesNoCancellationErrorOrLocalOfTheFiberBefore() throws {
        let local = FiberLocal<Int>(default: 0)
        let reuses = self.reuses
        try runBoth(executors: [1]) { _ in
            let before = Runtime.fiberObjectsReusedHere!
            for _ in 0..<5 {
                // Each handle goes at the end of its statement or block, so each spawn below takes
                // the object of the fiber that finished just before (with reuse on).
                XCTAssertThrowsError(try Fiber.spawn { () throws -> Int in throw FiberError.detached }.join())
                do {
                    let cancelled = try Fiber.spawn { try local.withValue(7) { try Fiber.sleep(for: .seconds(5)) } }
                    cancelled.cancel()
                    XCTAssertThrowsError(try cancelled.join()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
                }
                let value = try Fiber.spawn { () throws -> Int in
                    XCTAssertFalse(Fiber.isCancelled)
                    XCTAssertEqual(local.value, 0)
                    try Fiber.yield()
                    return 5
                }.join()
                XCTAssertEqual(value, 5)
                // A cancellation of a new fiber takes (the old one's cancel bits would swallow it).
                do {
                    let sleeper = try Fiber.spawn { try Fiber.sleep(for: .seconds(5)) }
                    try Fiber.yield()
                    sleeper.cancel()
                    XCTAssertThrowsError(try sleeper.join()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
                }
            }
            let reused = Runtime.fiberObjectsReusedHere! - before
            if reuses { XCTAssertGreaterThanOrEqual(reused, 15) } else { XCTAssertEqual(reused, 0) }
        }
    }

    func testResultsNobodyCanTakeAreFreedAsTheFiberFinishes() throws {
        let freed = Counter()
        try runBoth { _ in
            // Detached: freed as the fiber finishes, though its handle is still held here (with
            // reuse or without).
            for round in 1...20 {
                let fiber = try Fiber.spawn { Tracked(freed) }
                try fiber.detach()
                while !fiber.isFinished { try Fiber.yield() }
                XCTAssertTrue(RuntimeTestCase.eventually { freed.value >= round }, "round \(round): \(freed.value)")
            }
            // Handles dropped after the fiber finished: freed at the latest when the object is
            // reused or its executor stops.
            for _ in 0..<20 {
                let fiber = try Fiber.spawn { Tracked(freed) }
                while !fiber.isFinished { try Fiber.yield() }
            }
            for _ in 0..<100 { try Fiber.spawn {}.join() }
        }
        XCTAssertEqual(freed.value, 2 * 40)
    }

    func testAResultWhoseHandlesWereDroppedIsFreedAsTheFiberFinishes() throws {
        let freed = Counter()
        try runBoth(executors: [1]) { _ in
            // With one executor the fiber runs and finishes within the spawner's yield, and is let
            // go before the spawner resumes.
            for round in 1...20 {
                _ = try Fiber.spawn { Tracked(freed) }
                try Fiber.yield()
                #if DEBUG
                // Unoptimised, the runtime's own temporaries still reference the fiber as it is let
                // go: its result goes when its object is reused, by the next round's spawn (or, with
                // reuse off, as those temporaries go).
                XCTAssertGreaterThanOrEqual(freed.value, round - 1)
                #else
                XCTAssertEqual(freed.value, round)
                #endif
            }
        }
        XCTAssertEqual(freed.value, 20)
    }

    /// The deinitialisers of what a finished fiber leaves (a result nobody takes, its error) run
    /// while the runtime lets the fiber go or reuses its object, on whatever fiber is running then;
    /// if they suspend, that fiber may go on on another executor. The executors' own lists and queues
    /// must then be left to their own threads (debug builds assert it) and nothing may be lost.
    func testDeinitialisersThatSuspendWhileAFinishedFiberIsLetGo() throws {
        let made = Counter()
        let freed = Counter()
        try runBoth(executors: [2, 3]) { _ in
            let stop = Counter()
            // Busy executors: fibers suspended in a deinitialiser are often resumed by another one.
            let workers = try (0..<6).map { _ in
                try Fiber.spawn { while stop.value == 0 { try Fiber.sleep(for: .microseconds(200)) } }
            }
            for i in 0..<1200 {
                switch i % 4 {
                case 0:
                    // Detached: the result goes as the fiber finishes.
                    try Fiber.spawn { Suspending(made, freed) }.detach()
                case 1:
                    // Every handle dropped at once: likewise.
                    _ = try Fiber.spawn { Suspending(made, freed) }
                case 2:
                    // The handle dropped after the fiber finished: the result goes when its object
                    // is reused by a later spawn (or its executor stops).
                    let fiber = try Fiber.spawn { Suspending(made, freed) }
                    while !fiber.isFinished { try Fiber.yield() }
                default:
                    // Detached and failed: the error goes as the fiber finishes.
                    try Fiber.spawn { () throws -> Int in throw SuspendingError(payload: Suspending(made, freed)) }.detach()
                }
                try Fiber.yield()
            }
            stop.add()
            for worker in workers { try worker.join() }
        }
        XCTAssertGreaterThan(made.value, 0)
        XCTAssertEqual(freed.value, made.value)
    }
}

/// Counts its deinitialisations.
private final class Tracked: Sendable {
    let freed: Counter
    init(_ freed: Counter) { self.freed = freed }
    deinit { freed.add() }
}

/// A value whose deinitialiser suspends the fiber it runs on (when it runs on one).
private final class Suspending: Sendable {
    let freed: Counter
    init(_ made: Counter, _ freed: Counter) {
        self.freed = freed
        made.add()
    }
    deinit {
        try? Fiber.sleep(for: .microseconds(50))
        freed.add()
    }
}

private struct SuspendingError: Error {
    let payload: Suspending
}
