import Foundation
import Glibc
import Synchronization
import SystemPackage
import WeftLoop
import WeftRuntime
import XCTest

final class CancellationTests: RuntimeTestCase {
    func testCancelBeforeStartThrowsAtTheFirstSuspensionPoint() throws {
        try runBoth { executors in
            let reached = Counter()
            let handle = try Fiber.spawn {
                reached.add()
                try Fiber.yield()
                reached.add()
            }
            handle.cancel()
            if executors == 1 {
                // The child cannot start before this fiber parks in join.
                XCTAssertThrowsError(try handle.join()) { XCTAssertTrue($0 is CancellationError) }
                XCTAssertEqual(reached.value, 1)
            } else {
                // Another executor may have taken the child and run it to the end before the
                // cancel; if the cancel came first, the yield is where it lands.
                do {
                    try handle.join()
                    XCTAssertEqual(reached.value, 2)
                } catch {
                    XCTAssertTrue(error is CancellationError)
                    XCTAssertEqual(reached.value, 1)
                }
            }
        }
    }

    func testCancelWhileParkedInReceiveCancelsTheOperation() throws {
        try runBoth { _ in
            let (a, b) = Self.socketPair()
            defer {
                try? Fiber.close(a)
                try? Fiber.close(b)
            }
            let parked = Counter()
            let reader = try Fiber.spawn { () throws -> UInt8? in
                parked.add()
                return try Self.receiveByte(b)
            }
            // The reader has started (and so is parked or about to park in recv).
            while parked.value == 0 { try Fiber.yield() }
            reader.cancel()
            XCTAssertThrowsError(try reader.join()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
        }
    }

    func testCancelWhileSleepingWakesTheFiber() throws {
        try runBoth { _ in
            let started = Counter()
            let sleeper = try Fiber.spawn {
                started.add()
                try Fiber.sleep(for: .seconds(3600))
            }
            while started.value == 0 { try Fiber.yield() }
            sleeper.cancel()
            XCTAssertThrowsError(try sleeper.join()) { XCTAssertTrue($0 is CancellationError) }
        }
    }

    func testCancellationIsDeliveredOnce() throws {
        try runBoth { _ in
            let handle = try Fiber.spawn { () throws -> Int in
                var thrown = 0
                while true {
                    do {
                        try Fiber.sleep(for: .seconds(3600))
                    } catch is CancellationError {
                        thrown += 1
                        break
                    }
                }
                // Cleanup after the one delivery can still use suspension points.
                try Fiber.sleep(for: .milliseconds(1))
                try Fiber.yield()
                return thrown
            }
            try Fiber.sleep(for: .milliseconds(1))
            handle.cancel()
            handle.cancel()
            XCTAssertEqual(try handle.join(), 1)
        }
    }

    func testShieldDefersCancellation() throws {
        try runBoth { _ in
            let started = Counter()
            let cancelled = Counter()
            let handle = try Fiber.spawn { () throws -> String in
                try Fiber.withCancellationShield {
                    started.add()
                    // Parked in loop operations while cancelled: they run to their natural end.
                    while cancelled.value == 0 { try Fiber.sleep(for: .milliseconds(1)) }
                    try Fiber.sleep(for: .milliseconds(1))
                    XCTAssertFalse(Fiber.isCancelled)
                }
                do {
                    try Fiber.yield()
                    return "not delivered"
                } catch is CancellationError {
                    return "delivered after the shield"
                }
            }
            while started.value == 0 { try Fiber.yield() }
            handle.cancel()
            cancelled.add()
            XCTAssertEqual(try handle.join(), "delivered after the shield")
        }
    }

    func testCancelAfterFinishHasNoEffect() throws {
        try runBoth { _ in
            let handle = try Fiber.spawn { 5 }
            while !handle.isFinished { try Fiber.yield() }
            handle.cancel()
            XCTAssertEqual(try handle.join(), 5)
        }
    }

    func testJoinPassesTheJoinersCancellationToTheChild() throws {
        try runBoth { _ in
            let childStarted = Counter()
            let parentJoining = Counter()
            let parent = try Fiber.spawn { () throws -> String in
                let child = try Fiber.spawn { () throws -> String in
                    childStarted.add()
                    try Fiber.sleep(for: .seconds(3600))
                    return "slept"
                }
                parentJoining.add()
                // join does not throw the parent's own cancellation: it cancels the child.
                do {
                    _ = try child.join()
                    return "child finished"
                } catch is CancellationError {
                    // The child's error, not the parent's: the parent's is still pending.
                    return Fiber.isCancelled ? "child cancelled, parent pending" : "parent cancellation lost"
                }
            }
            while childStarted.value == 0 || parentJoining.value == 0 { try Fiber.yield() }
            parent.cancel()
            XCTAssertEqual(try parent.join(), "child cancelled, parent pending")
        }
    }

    func testCancelFromAnotherThreadWhileParked() throws {
        try runBoth { _ in
            let started = Counter()
            let sleeper = try Fiber.spawn {
                started.add()
                try Fiber.sleep(for: .seconds(3600))
            }
            while started.value == 0 { try Fiber.yield() }
            // A plain OS thread (a pool thread) cancels.
            try Fiber.spawnBlocking { sleeper.cancel() }
            XCTAssertThrowsError(try sleeper.join()) { XCTAssertTrue($0 is CancellationError) }
        }
    }

    func testCancellingASpawnBlockingStillQueuedSkipsItsBody() throws {
        // One executor, so every call shares one loop's pool (four threads by default).
        try runBoth(executors: [1]) { _ in
            let release = DispatchSemaphore(value: 0)
            let started = Counter()
            let blockers = try (0..<4).map { _ in
                try Fiber.spawn {
                    try Fiber.spawnBlocking {
                        started.add()
                        release.wait()
                    }
                }
            }
            // Every pool thread is now busy.
            while started.value < 4 { try Fiber.sleep(for: .milliseconds(1)) }
            let ranQueued = Counter()
            let queued = try Fiber.spawn { try Fiber.spawnBlocking { ranQueued.add() } }
            // Wait until its work item is in the pool's queue, behind the busy threads.
            while !queued.debugState.contains("op=work pending=true") { try Fiber.yield() }
            queued.cancel()
            XCTAssertThrowsError(try queued.join()) { XCTAssertTrue($0 is CancellationError, "\($0)") }
            for _ in 0..<4 { release.signal() }
            for blocker in blockers { try blocker.join() }
            XCTAssertEqual(started.value, 4)
            XCTAssertEqual(ranQueued.value, 0, "a cancelled work item still ran")
        }
    }

    func testRandomCancellationStress() throws {
        // Bounded in time: rounds run for WEFT_STRESS_SECONDS (default 1) per flavour, at least 5.
        // Invariants: every fiber ends, with its value, a CancellationError or a TimeoutError, and
        // nothing leaks (checked by runBoth).
        let seconds = Double(ProcessInfo.processInfo.environment["WEFT_STRESS_SECONDS"] ?? "") ?? 1
        // Readers on several executors share one socket: a cancel that reaches io_uring while their
        // receives are being retried after a byte arrived used to be lost (about one run in a
        // hundred, debug, three executors); see Docs/Runtime.md.
        let flavours = RuntimeTestCase.flavours
        try runBoth(executors: flavours) { _ in
            var generator = SystemRandomNumberGenerator()
            let finished = Counter()
            let cancelled = Counter()
            let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
            var rounds = 0
            while rounds < 5 || ContinuousClock.now < deadline {
                rounds += 1
                let (a, b) = Self.socketPair()
                let handles = try (0..<50).map { n in
                    try Fiber.spawn { () throws -> Int in
                        switch n % 4 {
                        case 0: try Fiber.sleep(for: .microseconds(n * 10))
                        case 1: try Fiber.yield()
                        case 2: _ = try Fiber.withTimeout(.microseconds(50)) { try Fiber.sleep(for: .microseconds(n * 3)) }
                        default:
                            if n % 8 == 3 { try Self.sendByte(a, UInt8(n)) } else { _ = try Self.receiveByte(b) }
                        }
                        return n
                    }
                }
                for handle in handles where Bool.random(using: &generator) { handle.cancel() }
                // WEFT_WATCHDOG=1 prints the scheduler and every unfinished fiber's state when a round
                // takes more than 8 s (a hang seen rarely on io_uring with three executors).
                let finishedNow = Counter()
                if ProcessInfo.processInfo.environment["WEFT_WATCHDOG"] != nil {
                    let runtime = Runtime.current!
                    let watched = handles
                    Thread {
                        // Polls, so that it lets go of the handles soon after a normal round.
                        for _ in 0..<80 where finishedNow.value == 0 { usleep(100_000) }
                        if finishedNow.value == 0 {
                            var text = "WATCHDOG \(runtime.debugState)\n"
                            for (n, h) in watched.enumerated() where !h.isFinished { text += "  \(n): \(h.debugState)\n" }
                            FileHandle.standardError.write(text.data(using: .utf8)!)
                        }
                    }.start()
                }
                for (n, handle) in handles.enumerated() {
                    do {
                        let value = try handle.join()
                        XCTAssertEqual(value, n)
                        finished.add()
                    } catch is CancellationError {
                        cancelled.add()
                    } catch is TimeoutError {
                        finished.add()
                    } catch {
                        XCTFail("unexpected \(error)")
                    }
                    // Readers whose writer was cancelled would wait forever: release them.
                    if n % 8 == 3 { handles[n + 4 < handles.count ? n + 4 : n].cancel() }
                }
                finishedNow.add()
                try Fiber.close(a)
                try Fiber.close(b)
            }
            XCTAssertEqual(finished.value + cancelled.value, rounds * 50)
        }
    }

    func testACancelRequestLeftInTheInboxDoesNotCancelALaterOperation() throws {
        // The request waits in executor 0's inbox (a task holds the executor's thread) while the
        // fiber's timer completes on its own; the fiber then takes its CancellationError, and the
        // request must not cancel the cleanup operation it submits next.
        let results = try runBoth(executors: [1]) { _ -> String in
            let runtime = Runtime.current!
            let child = try Fiber.spawn { () -> String in
                try Fiber.sleep(for: .milliseconds(20))
                do {
                    try Fiber.checkCancellation()
                    return "not cancelled"
                } catch {}
                do {
                    try Fiber.sleep(for: .milliseconds(1))
                    return "cleanup ok"
                } catch {
                    return "cleanup failed: \(error)"
                }
            }
            try Fiber.yield()  // the child's timer is submitted
            Task(executorPreference: runtime.taskExecutor(0)) {
                let requested = DispatchSemaphore(value: 0)
                Thread {
                    child.cancel()
                    requested.signal()
                }.start()
                requested.wait()
                // Keep the executor until the child's timer has expired (60 ms after it was armed).
                usleep(60_000)
            }
            return try child.join()
        }
        XCTAssertEqual(results, ["cleanup ok"])
    }

    #if DEBUG
    /// A cancellation that found the fiber in one cancellable wait, and was delayed until the fiber
    /// had delivered it and entered another cancellable wait, must not end that other wait (here a
    /// join, which would pass the stale cancellation on to the child it waits for).
    func testACancellationDelayedPastItsWaitDoesNotEndALaterOne() throws {
        try runBoth(executors: [1]) { _ in
            let firstChildStarted = DispatchSemaphore(value: 0)
            let releaseFirstChild = DispatchSemaphore(value: 0)
            let secondChildStarted = DispatchSemaphore(value: 0)
            let releaseSecondChild = DispatchSemaphore(value: 0)
            // The canceller stops between seeing the first wait and making the fiber runnable; it
            // lets the first wait end normally and goes on once the fiber waits again.
            RuntimeTestHooks.cancelFoundCancellableWait.withLock {
                $0 = {
                    releaseFirstChild.signal()
                    secondChildStarted.wait()
                }
            }
            defer { RuntimeTestHooks.cancelFoundCancellableWait.withLock { $0 = nil } }
            let fiber = try Fiber.spawn { () throws -> [String] in
                // One executor: each child starts only once this fiber is parked in its join.
                let first = try Fiber.spawn {
                    firstChildStarted.signal()
                    try Fiber.spawnBlocking { releaseFirstChild.wait() }
                }
                try first.join()
                var outcome: [String] = []
                do { try Fiber.checkCancellation() } catch { outcome.append("delivered") }
                let second = try Fiber.spawn { () -> String in
                    secondChildStarted.signal()
                    let finished = (try? Fiber.spawnBlocking { releaseSecondChild.wait() }) != nil
                    return finished && !Fiber.isCancelled ? "child not cancelled" : "child cancelled"
                }
                outcome.append(try second.join())
                return outcome
            }
            let canceller = Thread {
                firstChildStarted.wait()
                fiber.cancel()
                // The fiber has handled that wake once it is parked again: waiting on (with the
                // fix), or having passed the cancellation on to the child first (without it).
                while !fiber.isParked { sched_yield() }
                releaseSecondChild.signal()
            }
            canceller.start()
            XCTAssertEqual(try fiber.join(), ["delivered", "child not cancelled"])
        }
    }

    /// `run` must not close the executors and return while a cancellation that found its fiber
    /// unfinished still has to reach them (it would use a runtime that is gone).
    func testRunWaitsForACancellationUnderWayBeforeItReturns() throws {
        let cancellerPaused = DispatchSemaphore(value: 0)
        let resume = DispatchSemaphore(value: 0)
        let runReturned = Atomic<Bool>(false)
        let sawRunReturned = Atomic<Bool>(false)
        RuntimeTestHooks.cancelFoundFiberUnfinished.withLock {
            $0 = {
                cancellerPaused.signal()
                resume.wait()
                sawRunReturned.store(runReturned.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
            }
        }
        RuntimeTestHooks.runWaitsForCancels.withLock { $0 = { resume.signal() } }
        defer {
            RuntimeTestHooks.cancelFoundFiberUnfinished.withLock { $0 = nil }
            RuntimeTestHooks.runWaitsForCancels.withLock { $0 = nil }
        }
        let finished = Atomic<Bool>(false)
        try Runtime.run {
            let fiber = try Fiber.spawn { try Fiber.spawnBlocking { cancellerPaused.wait() } }
            let thread = Thread {
                fiber.cancel()
                finished.store(true, ordering: .sequentiallyConsistent)
            }
            thread.start()
            // The fiber ends once the canceller is paused (or at once, with the CancellationError,
            // if the cancel came before it started); then every fiber has finished.
            _ = try? fiber.join()
        }
        runReturned.store(true, ordering: .sequentiallyConsistent)
        resume.signal()
        while !finished.load(ordering: .sequentiallyConsistent) { sched_yield() }
        XCTAssertFalse(sawRunReturned.load(ordering: .sequentiallyConsistent), "run returned while a cancel was under way")
    }
    #endif
}
