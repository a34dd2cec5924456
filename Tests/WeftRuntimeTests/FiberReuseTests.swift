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
        final class Tracked: Sendable {
            let freed: Counter
            init(_ freed: Counter) { self.freed = freed }
            deinit { freed.add() }
        }
        try runBoth { _ in
            // Detached: freed as the fiber finishes, though its handle is still held here (with
            // reuse or without).
            for round in 1...20 {
                let fiber = try Fiber.spawn { Tracked(freed) }
                try fiber.detach()
                while !fiber.isFinished { try Fiber.yield() }
                XCTAssertTrue(RuntimeTestCase.eventually { freed.value >= round }, "round \(round): \(freed.value)")
            }
            // Handles dropped unjoined: freed at the latest when the object is reused or its
            // executor stops.
            for _ in 0..<20 { _ = try Fiber.spawn { Tracked(freed) } }
            for _ in 0..<100 { try Fiber.spawn {}.join() }
        }
        XCTAssertEqual(freed.value, 2 * 40)
    }
}
