import Foundation
import Synchronization
import WeftRuntime
import XCTest

final class BridgeTests: RuntimeTestCase {
    func testFiberAwaitsARealAsyncAPI() throws {
        try runBoth { _ in
            let value = try Fiber.await { () async throws -> Int in
                try await Task.sleep(for: .milliseconds(2))
                return await withTaskGroup(of: Int.self) { group in
                    for n in 1...4 { group.addTask { n } }
                    return await group.reduce(0, +)
                }
            }
            XCTAssertEqual(value, 10)
        }
    }

    func testAwaitDoesNotBlockTheExecutor() throws {
        try runBoth { _ in
            let ticks = Counter()
            let ticker = try Fiber.spawn {
                for _ in 0..<5 {
                    ticks.add()
                    try Fiber.sleep(for: .microseconds(100))
                }
            }
            // The task waits until the ticker has run, which it can only do if the awaiting fiber
            // parked instead of blocking its thread.
            try Fiber.await { () async throws -> Void in
                while ticks.value < 5 { try await Task.sleep(for: .milliseconds(1)) }
            }
            try ticker.join()
        }
    }

    func testCancellingTheFiberCancelsTheTask() throws {
        try runBoth { _ in
            let started = Counter()
            let handle = try Fiber.spawn { () throws -> Void in
                try Fiber.await { () async throws -> Void in
                    started.add()
                    try await Task.sleep(for: .seconds(3600))
                }
            }
            while started.value == 0 { try Fiber.sleep(for: .milliseconds(1)) }
            handle.cancel()
            XCTAssertThrowsError(try handle.join()) { XCTAssertTrue($0 is CancellationError) }
        }
    }

    func testAsyncCodeAwaitsAFiber() throws {
        try runBoth { _ in
            let handle = try Fiber.spawn { () throws -> Int in
                try Fiber.sleep(for: .milliseconds(2))
                return 21
            }
            let doubled = try Fiber.await { try await handle.value * 2 }
            XCTAssertEqual(doubled, 42)
            XCTAssertThrowsError(try handle.join()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
        }
    }

    func testCancellingTheAwaitingTaskCancelsTheFiber() throws {
        try runBoth { _ in
            let started = Counter()
            let handle = try Fiber.spawn { () throws -> Int in
                started.add()
                try Fiber.sleep(for: .seconds(3600))
                return 1
            }
            while started.value == 0 { try Fiber.yield() }
            let outcome = try Fiber.await { () async -> String in
                let task = Task { try await handle.value }
                task.cancel()
                do {
                    _ = try await task.value
                    return "value"
                } catch is CancellationError {
                    return "fiber cancelled"
                } catch {
                    return "\(error)"
                }
            }
            XCTAssertEqual(outcome, "fiber cancelled")
        }
    }

    func testExecutorsServeAsTaskExecutors() throws {
        try runBoth { executors in
            let runtime = Runtime.current!
            let indices = try Fiber.await { () async -> [Int?] in
                var seen: [Int?] = []
                for index in 0..<executors {
                    let value = await withTaskExecutorPreference(runtime.taskExecutor(index)) { () async -> Int? in
                        Fiber.executorIndex
                    }
                    seen.append(value)
                }
                return seen
            }
            XCTAssertEqual(indices, Array(0..<executors))
        }
    }

    func testSpawnFromATask() throws {
        try runBoth { _ in
            let runtime = Runtime.current!
            let value = try Fiber.await { () async throws -> Int in
                let handle = try runtime.spawn { () throws -> Int in
                    try Fiber.sleep(for: .milliseconds(1))
                    return 7
                }
                return try await handle.value
            }
            XCTAssertEqual(value, 7)
        }
    }

    func testASpawnFromATaskAfterEveryFiberFinishedIsRefused() throws {
        // One executor: the task's jobs run on it. The last fiber's end resumes the task there,
        // after the runtime has started to stop; a fiber spawned then would never run.
        final class Outcome: Sendable { let text = Mutex<String?>(nil) }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        try Runtime.run(options: .init(executors: .exact(1))) {
            let runtime = Runtime.current!
            let last = try Fiber.spawn { try Fiber.spawnBlocking { release.wait() } }
            Task(executorPreference: runtime.taskExecutor(0)) {
                try? await last.value
                let result: String
                do {
                    let late = try Fiber.spawn { 2 }
                    result = "spawned, got \(try await late.value)"
                } catch {
                    result = "\(error)"
                }
                outcome.text.withLock { $0 = result }
                done.signal()
            }
            release.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "the task never finished")
        XCTAssertEqual(outcome.text.withLock { $0 }, "\(FiberError.runtimeStopped)")
    }
}
