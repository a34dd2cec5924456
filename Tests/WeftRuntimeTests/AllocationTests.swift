import CWeftAllocationCounter
import SystemPackage
import WeftLoop
import WeftRuntime
import XCTest

/// The fiber I/O path allocates nothing in steady state: the operation lives on the fiber's stack,
/// the callback is a C function, queues are intrusive.
final class AllocationTests: RuntimeTestCase {
    override func setUpWithError() throws {
        try XCTSkipIf(weft_test_allocation_counting() == 0, "a sanitizer owns malloc: allocations are not counted")
    }

    func testSendAndReceiveAllocateNothing() throws {
        // One executor: the fiber, the scheduler and the loop callbacks all run on one thread, whose
        // allocations are counted.
        let counts = try runBoth(executors: [1]) { _ -> [UInt64] in
            let (a, b) = Self.socketPair()
            var outgoing = [UInt8](repeating: 1, count: 64)
            var incoming = [UInt8](repeating: 0, count: 64)
            var samples: [UInt64] = []
            samples.reserveCapacity(4)
            try outgoing.withUnsafeMutableBytes { out in
                try incoming.withUnsafeMutableBytes { into in
                    for round in 0..<4 {
                        let before = weft_test_thread_allocations()
                        for _ in 0..<1000 {
                            _ = try Fiber.send(a, UnsafeRawBufferPointer(out))
                            var received = 0
                            while received < 64 {
                                received += try Fiber.recv(b, into: UnsafeMutableRawBufferPointer(rebasing: into[received...]))
                            }
                            try Fiber.yield()
                        }
                        let after = weft_test_thread_allocations()
                        // The first round warms up (loop tables, pool slots).
                        if round > 0 { samples.append(after - before) }
                    }
                }
            }
            try Fiber.close(a)
            try Fiber.close(b)
            return samples
        }
        XCTAssertEqual(counts.first, [0, 0, 0], "allocations per 1000 send/recv/yield rounds")
    }

    func testSpawnAndJoinAllocateNothingOnceFiberObjectsAreReused() throws {
        let counts = try runBoth(executors: [1]) { _ -> UInt64 in
            for _ in 0..<100 { _ = try Fiber.spawn { 7 }.join() }
            let before = weft_test_thread_allocations()
            var sum = 0
            // A body that captures nothing: a closure that captures allocates its context.
            for _ in 0..<1000 { sum += try Fiber.spawn { 7 }.join() }
            let after = weft_test_thread_allocations()
            XCTAssertEqual(sum, 7000)
            return after - before
        }
        #if DEBUG
        // Unoptimised, `FiberCore.make` is not specialised, and the thunk it makes captures the
        // result type: one allocation for its context. Optimised, it captures nothing.
        XCTAssertEqual(counts.first, 1000, "allocations per 1000 spawns and joins")
        #else
        XCTAssertEqual(counts.first, 0, "allocations per 1000 spawns and joins")
        #endif
    }

    func testTheCounterCounts() {
        let before = weft_test_thread_allocations()
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        memory.deallocate()
        XCTAssertGreaterThan(weft_test_thread_allocations(), before)
    }

    func testSleepAllocatesNothing() throws {
        let counts = try runBoth(executors: [1]) { _ -> UInt64 in
            try Fiber.sleep(for: .zero)
            let before = weft_test_thread_allocations()
            for _ in 0..<1000 { try Fiber.sleep(for: .zero) }
            return weft_test_thread_allocations() - before
        }
        XCTAssertEqual(counts, [0])
    }
}
