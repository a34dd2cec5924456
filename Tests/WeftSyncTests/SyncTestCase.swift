import Foundation
import WeftContext
import WeftRuntime
import WeftSync
import XCTest

import struct Synchronization.Atomic

/// A thread-safe counter for test bodies.
final class Counter: Sendable {
    let atomic = Atomic<Int>(0)
    @discardableResult func add(_ n: Int = 1) -> Int { atomic.add(n, ordering: .sequentiallyConsistent).newValue }
    var value: Int { atomic.load(ordering: .sequentiallyConsistent) }
}

/// A thread-safe bag of integers (received items, undelivered items, …).
final class Bag: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int] = []
    func add(_ item: Int) { lock.withLock { items.append(item) } }
    func add<S: Sequence>(contentsOf more: S) where S.Element == Int { lock.withLock { items.append(contentsOf: more) } }
    var all: [Int] { lock.withLock { items } }
}

/// Unprotected state for tests that check a lock's mutual exclusion (a race makes them fail).
final class Unprotected: @unchecked Sendable {
    var value = 0
    var inside = 0
    var maximum = 0
}

/// The base of every WeftSync test: ``runBoth(_:)`` runs the body as the first fiber of a runtime
/// with one executor and again with three (backend from `WEFT_BACKEND`), and checks after each run
/// that no stack or fiber object leaked.
class SyncTestCase: XCTestCase {
    static let flavours = [1, 3]

    /// The pool every run gets. Under ThreadSanitizer guarded stacks are unmapped when released
    /// rather than reused: TSan cannot see the pool's lock hand a stack to another thread (see
    /// Scripts/tsan.supp), so a fiber on a reused stack would be reported against the fiber that
    /// ran there before. A fresh mapping starts with clean shadow memory.
    static func makePool() throws -> StackPool {
        if ExecutionContext.sanitizers.contains("thread") {
            return try StackPool(
                configuration: .init(compactStacksPerMapping: 256, highWaterMark: 0, maximumCachedGuardedStacks: 0))
        }
        return try StackPool(configuration: .init(compactStacksPerMapping: 256))
    }

    func runBoth(file: StaticString = #filePath, line: UInt = #line, _ body: @escaping @Sendable (_ executors: Int) throws -> Void) throws {
        for count in Self.flavours {
            let pool = try Self.makePool()
            Runtime.tracksFiberObjects = true
            let objects = Runtime.liveFiberObjects
            try Runtime.run(options: .init(executors: .exact(count), stackPool: pool)) { try body(count) }
            let statistics = pool.statistics
            XCTAssertEqual(statistics.guardedInUse, 0, "stacks leaked (\(count) executors)", file: file, line: line)
            XCTAssertTrue(
                Self.eventually { Runtime.liveFiberObjects <= objects }, "fiber objects leaked (\(count) executors)",
                file: file, line: line)
        }
    }

    /// Waits (up to 5 s) for a condition another thread makes true.
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<5000 {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }

    /// Starts an OS thread running `body`; returns an event set when it has finished.
    @discardableResult
    static func thread(_ body: @escaping @Sendable () -> Void) -> ResetEvent {
        let done = ResetEvent()
        let thread = Thread {
            body()
            done.set()
        }
        thread.start()
        return done
    }

    /// Parks the fiber until `condition` holds, yielding between checks (for conditions that
    /// another fiber makes true without a signal, such as "the waiter has queued").
    static func until(_ condition: () -> Bool) throws {
        var spins = 0
        while !condition() {
            spins += 1
            if spins > 200_000 { XCTFail("condition never became true"); return }
            if spins % 100 == 0 { try Fiber.sleep(for: .microseconds(100)) } else { try Fiber.yield() }
        }
    }
}
