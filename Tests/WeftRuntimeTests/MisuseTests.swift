import Foundation
import SystemPackage
import WeftLoop
import WeftRuntime
import WeftTestSupport
import XCTest

final class MisuseTests: RuntimeTestCase {
    func testBlockingCallsOutsideAFiberThrow() {
        XCTAssertThrowsError(try Fiber.sleep(for: .milliseconds(1))) {
            XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "timer"))
        }
        XCTAssertThrowsError(try Fiber.yield()) { XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "yield")) }
        XCTAssertThrowsError(try Fiber.spawn { 1 }) { XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "spawn")) }
        XCTAssertThrowsError(try Fiber.withTimeout(.seconds(1)) { 1 }) {
            XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "withTimeout"))
        }
        XCTAssertThrowsError(try Fiber.spawnBlocking { 1 }) {
            XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "spawnBlocking"))
        }
        XCTAssertThrowsError(try Fiber.await { 1 }) { XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "await")) }
        XCTAssertThrowsError(try Group().wait()) { XCTAssertEqual($0 as? FiberError, .notInFiber(operation: "Group.wait")) }
        XCTAssertFalse(Fiber.isInFiber)
    }

    func testJoinMisuse() throws {
        try runBoth { _ in
            let handle = try Fiber.spawn { 1 }
            XCTAssertEqual(try handle.join(), 1)
            XCTAssertThrowsError(try handle.join()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
            XCTAssertThrowsError(try handle.detach()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }

            let detached = try Fiber.spawn { 2 }
            try detached.detach()
            XCTAssertThrowsError(try detached.join()) { XCTAssertEqual($0 as? FiberError, .detached) }

            let selfJoin = Counter()
            let box = HandleBox()
            let me = try Fiber.spawn { () throws -> Void in
                while box.handle == nil { try Fiber.yield() }
                XCTAssertThrowsError(try box.handle!.join()) { XCTAssertEqual($0 as? FiberError, .joinedItself) }
                selfJoin.add()
            }
            box.handle = me
            try me.join()
            XCTAssertEqual(selfJoin.value, 1)
        }
    }

    func testConcurrentJoinsOfOneFiberLetExactlyOneWin() throws {
        try runBoth { executors in
            for round in 0..<50 {
                let release = Counter()
                let child = try Fiber.spawn { () throws -> Int in
                    while release.value == 0 { try Fiber.yield() }
                    return round
                }
                let won = Counter()
                let refused = Counter()
                let joiners = try (0..<3).map { _ in
                    try Fiber.spawn {
                        do {
                            let value = try child.join()
                            XCTAssertEqual(value, round)
                            won.add()
                        } catch {
                            XCTAssertEqual(error as? FiberError, .alreadyJoined)
                            refused.add()
                        }
                    }
                }
                // Let every joiner reach its join (or its refusal) before the child may end, so
                // the refused ones meet a fiber that has a joiner waiting.
                while won.value + refused.value < 2 { try Fiber.yield() }
                release.add()
                for joiner in joiners { try joiner.join() }
                XCTAssertEqual(won.value, 1, "round \(round), \(executors) executors")
                XCTAssertEqual(refused.value, 2, "round \(round), \(executors) executors")
                XCTAssertThrowsError(try child.detach()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
            }
        }
    }

    func testFibersSpawnedFromOtherThreadsKeepTheRuntimeRunning() throws {
        let done = Counter()
        try runBoth { _ in
            let runtime = Runtime.current!
            // Spawned from a pool thread (counted apart from the executors' own spawns), each
            // spawning a child from its executor in turn; nobody joins, and the body returns first.
            // The children outlive their parents, waiting on a task: no operation of theirs is
            // pending in a loop, so only the count of live fibers keeps the runtime going.
            try Fiber.spawnBlocking {
                for _ in 0..<20 {
                    try runtime.spawn {
                        try Fiber.spawn {
                            try Fiber.await { try await Task.sleep(for: .milliseconds(5)) }
                            done.add()
                        }.detach()
                        try Fiber.sleep(for: .milliseconds(1))
                        done.add()
                    }.detach()
                }
            }
        }
        XCTAssertEqual(done.value, 80, "Runtime.run returned before every fiber finished")
    }

    func testAMultishotOperationIsRefusedByPerform() throws {
        // Its later callbacks would outlive the caller's frame, where the operation lives.
        try runBoth { _ in
            var accept = LoopOperation.acceptMultishot(FileDescriptor(rawValue: -1))
            XCTAssertThrowsError(try Fiber.perform(&accept)) {
                XCTAssertEqual(($0 as? LoopError)?.code, .invalidArgument, "\($0)")
                XCTAssertEqual(($0 as? LoopError).map { "\($0.operation)" }, "acceptMultishot", "\($0)")
            }
            XCTAssertFalse(accept.isPending)
        }
    }

    func testSpawnAfterTheRuntimeStoppedIsRefused() throws {
        let runtime = try Runtime.run { Runtime.current! }
        XCTAssertThrowsError(try runtime.spawn { 1 }) { XCTAssertEqual($0 as? FiberError, .runtimeStopped) }
    }

    func testNestedRunIsRefused() throws {
        try runBoth { _ in
            XCTAssertThrowsError(try Runtime.run { 1 }) { XCTAssertEqual($0 as? FiberError, .nestedRuntime) }
        }
    }

    func testAnExecutorThreadThatCannotStartIsATypedErrorAndNothingRuns() throws {
        let descriptors = OpenDescriptors.current()
        var options = Runtime.Options(executors: .exact(3))
        options.simulatedThreadStartFailure = .resourceTemporarilyUnavailable
        let ran = Counter()
        XCTAssertThrowsError(try Runtime.run(options: options) { ran.add() }) {
            XCTAssertEqual($0 as? FiberError, .executorStartFailed(.resourceTemporarilyUnavailable))
            XCTAssertTrue("\($0)".contains("could not start an executor thread"), "\($0)")
        }
        XCTAssertEqual(ran.value, 0, "the body ran although the runtime failed to start")
        // The executor that did start has stopped and every loop is closed.
        XCTAssertEqual(OpenDescriptors.leaked(since: descriptors), [])
        // And the next runtime starts normally.
        XCTAssertEqual(try Runtime.run(options: .init(executors: .exact(3))) { 7 }, 7)
    }

    func testLoopErrorsAreTyped() throws {
        try runBoth { _ in
            var byte: UInt8 = 0
            XCTAssertThrowsError(try withUnsafeMutableBytes(of: &byte) { try Fiber.recv(FileDescriptor(rawValue: 9999), into: $0) }) {
                XCTAssertEqual(($0 as? LoopError)?.operation.description, "recv")
            }
        }
    }
}

/// A handle handed to the fiber it names (set once before the fiber reads it).
final class HandleBox: @unchecked Sendable {
    var handle: JoinHandle<Void>? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    private var stored: JoinHandle<Void>?
    private let lock = NSLock()
}
