import WeftRuntime
import XCTest

final class TimeoutTests: RuntimeTestCase {
    func testTimeoutExpiresWithTimeoutError() throws {
        try runBoth { _ in
            XCTAssertThrowsError(try Fiber.withTimeout(.milliseconds(5)) { try Fiber.sleep(for: .seconds(3600)) }) {
                XCTAssertEqual($0 as? TimeoutError, TimeoutError(timeout: .milliseconds(5)))
            }
            // The fiber is not left cancelled.
            XCTAssertFalse(Fiber.isCancelled)
            try Fiber.sleep(for: .milliseconds(1))
        }
    }

    func testBodyFinishingFirstReturnsItsValue() throws {
        try runBoth { _ in
            let value = try Fiber.withTimeout(.seconds(3600)) { () throws -> Int in
                try Fiber.sleep(for: .milliseconds(1))
                return 9
            }
            XCTAssertEqual(value, 9)
        }
    }

    func testInnerTimeoutFiresFirst() throws {
        try runBoth { _ in
            let outcome = try Fiber.withTimeout(.seconds(3600)) { () throws -> String in
                do {
                    try Fiber.withTimeout(.milliseconds(2)) { try Fiber.sleep(for: .seconds(3600)) }
                    return "no timeout"
                } catch let error as TimeoutError {
                    return "inner \(error.timeout)"
                }
            }
            XCTAssertEqual(outcome, "inner \(Duration.milliseconds(2))")
        }
    }

    func testOuterTimeoutFiresInsideInner() throws {
        try runBoth { _ in
            XCTAssertThrowsError(
                try Fiber.withTimeout(.milliseconds(2)) {
                    try Fiber.withTimeout(.seconds(3600)) { try Fiber.sleep(for: .seconds(3600)) }
                }
            ) { XCTAssertEqual($0 as? TimeoutError, TimeoutError(timeout: .milliseconds(2))) }
        }
    }

    func testTimeoutsRacingCompletion() throws {
        // Timer and body finish at about the same time: either outcome is valid, but never a
        // stray cancellation afterwards, and never anything else.
        try runBoth { _ in
            var values = 0
            var timeouts = 0
            for n in 0..<200 {
                do {
                    let value = try Fiber.withTimeout(.microseconds(n % 20)) { () throws -> Int in
                        try Fiber.sleep(for: .microseconds(n % 17))
                        return n
                    }
                    XCTAssertEqual(value, n)
                    values += 1
                } catch is TimeoutError {
                    timeouts += 1
                }
                XCTAssertFalse(Fiber.isCancelled)
            }
            XCTAssertEqual(values + timeouts, 200)
        }
    }

    func testTimeoutAcrossMigration() throws {
        // The body yields many times, so on several executors it may move; the timer stays on the
        // loop that armed it and is cancelled there.
        try runBoth { _ in
            for _ in 0..<20 {
                let busy = try (0..<4).map { _ in try Fiber.spawn { for _ in 0..<50 { try Fiber.yield() } } }
                let value = try Fiber.withTimeout(.seconds(3600)) { () throws -> Int in
                    for _ in 0..<50 { try Fiber.yield() }
                    return 1
                }
                XCTAssertEqual(value, 1)
                for handle in busy { try handle.join() }
            }
        }
    }

    // Each request gets its own CancellationError, whatever was delivered before it.

    func testATimeoutInCleanupCodeAfterADeliveredCancellationFires() throws {
        let results = try runBoth(executors: [1]) { _ -> String in
            let child = try Fiber.spawn { () -> String in
                do {
                    try Fiber.sleep(for: .seconds(3600))
                    return "not cancelled"
                } catch {}
                // Cleanup after the delivered cancellation, bounded by a timeout of its own.
                let start = ContinuousClock.now
                do {
                    try Fiber.withTimeout(.milliseconds(20)) {
                        while ContinuousClock.now - start < .seconds(5) { try Fiber.yield() }
                    }
                    return "timeout lost"
                } catch is TimeoutError {
                    return "timed out"
                } catch {
                    return "other: \(error)"
                }
            }
            try Fiber.yield()
            child.cancel()
            return try child.join()
        }
        XCTAssertEqual(results, ["timed out"])
    }

    func testACancelDuringATimedOutBodysCleanupIsDeliveredAfterTheTimeout() throws {
        let results = try runBoth(executors: [1]) { _ -> String in
            let inCleanup = Counter()
            let cancelled = Counter()
            let child = try Fiber.spawn { () -> String in
                do {
                    try Fiber.withTimeout(.milliseconds(5)) {
                        do { try Fiber.sleep(for: .seconds(3600)) } catch {
                            inCleanup.add()
                            // Shielded cleanup that lasts until the cancel below has arrived.
                            Fiber.withCancellationShield {
                                while cancelled.value == 0 { try? Fiber.yield() }
                            }
                            throw error
                        }
                    }
                    return "no timeout"
                } catch is TimeoutError {}
                do {
                    try Fiber.sleep(for: .seconds(2))
                    return "cancel lost"
                } catch is CancellationError {
                    return "cancelled"
                }
            }
            while inCleanup.value == 0 { try Fiber.yield() }
            child.cancel()
            cancelled.add()
            return try child.join()
        }
        XCTAssertEqual(results, ["cancelled"])
    }

    func testAnOuterTimeoutFiringWhileAnInnerOnesErrorIsHandledStillInterrupts() throws {
        let results = try runBoth(executors: [1]) { _ -> String in
            let outerFired = Counter()
            do {
                try Fiber.withTimeout(.milliseconds(30)) {
                    do {
                        try Fiber.withTimeout(.milliseconds(5)) {
                            do { try Fiber.sleep(for: .seconds(3600)) } catch {
                                // Shielded until the outer timeout has certainly fired.
                                Fiber.withCancellationShield { _ = try? Fiber.sleep(for: .milliseconds(60)) }
                                outerFired.add()
                                throw error
                            }
                        }
                    } catch is TimeoutError {}
                    let start = ContinuousClock.now
                    while ContinuousClock.now - start < .seconds(5) { try Fiber.yield() }
                }
                return "outer timeout lost"
            } catch let error as TimeoutError {
                return "timed out \(error.timeout)"
            }
        }
        XCTAssertEqual(results, ["timed out \(Duration.milliseconds(30))"])
    }
}
