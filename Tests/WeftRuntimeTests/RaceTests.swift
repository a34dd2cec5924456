import Synchronization
import WeftRuntime
import XCTest

/// Wakes that arrive before the park completes, on one executor and across executors.
final class RaceTests: RuntimeTestCase {
    func testTaskThatFinishesAtOnceWakesTheFiber() throws {
        // The task may resume the fiber before the fiber has switched out.
        try runBoth { _ in
            for n in 0..<500 {
                XCTAssertEqual(try Fiber.await { n }, n)
            }
        }
    }

    func testJoinRacingChildCompletion() throws {
        // Children finish on whatever executor ran them while the parent registers as joiner.
        try runBoth { _ in
            for n in 0..<3000 {
                let child = try Fiber.spawn { n }
                if n % 2 == 0 { try Fiber.yield() }
                XCTAssertEqual(try child.join(), n)
            }
        }
    }

    func testPingPongAcrossExecutors() throws {
        try runBoth { _ in
            let (a, b) = Self.socketPair()
            let rounds = 2000
            let ponger = try Fiber.spawn {
                for _ in 0..<rounds {
                    guard let byte = try Self.receiveByte(b) else { return }
                    try Self.sendByte(b, byte &+ 1)
                }
            }
            var value: UInt8 = 0
            for _ in 0..<rounds {
                try Self.sendByte(a, value)
                let answer = try Self.receiveByte(a)
                XCTAssertEqual(answer, value &+ 1)
                value = (answer ?? 0) &+ 1
            }
            try ponger.join()
            try Fiber.close(a)
            try Fiber.close(b)
        }
    }

    func testJoinChain() throws {
        // Each fiber joins the one spawned before it: wakes travel down a chain of executors.
        try runBoth { _ in
            var previous = try Fiber.spawn { 0 }
            for _ in 0..<500 {
                let before = previous
                previous = try Fiber.spawn { try before.join() + 1 }
            }
            XCTAssertEqual(try previous.join(), 500)
        }
    }

    func testAsyncJoinRacingCompletion() throws {
        try runBoth { _ in
            for n in 0..<300 {
                let handle = try Fiber.spawn { n }
                XCTAssertEqual(try Fiber.await { try await handle.value }, n)
            }
        }
    }
}
