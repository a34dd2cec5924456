import WeftContext
import XCTest

final class StackPoolTests: PoolCheckedTestCase {
    func testSharedPoolThreadCacheReusesAndGoesBackWhenTheThreadEnds() {
        let before = StackPool.shared.statistics
        let reused = Shared(false)
        let inUseWhileCached = Shared(-1)
        let inUseOnThread = Shared(-2)
        onNewThread {
            // Seen from this thread, stacks other threads hold in their caches count as in use.
            inUseOnThread.value = StackPool.shared.statistics.compactInUse
            let stack = try! StackPool.shared.allocate(.compact)
            StackPool.shared.release(stack)
            inUseWhileCached.value = StackPool.shared.statistics.compactInUse
            let again = try! StackPool.shared.allocate(.compact)
            reused.value = again == stack
            StackPool.shared.release(again)
        }
        // The stack came straight back from the thread's cache, was counted as warm (not in use)
        // on that thread, and went back to the pool when the thread ended.
        XCTAssertTrue(reused.value)
        XCTAssertEqual(inUseWhileCached.value, inUseOnThread.value)
        XCTAssertEqual(StackPool.shared.statistics.compactInUse, before.compactInUse)
        let stack = try! StackPool.shared.allocate(.compact)
        StackPool.shared.release(stack)
        StackPool.shared.trim()
        XCTAssertEqual(StackPool.shared.statistics.compactInUse, before.compactInUse)
    }

    func testReleasedStacksAreReusedLastInFirstOut() throws {
        let pool = try StackPool(configuration: .init())
        let a = try pool.allocate()
        let b = try pool.allocate()
        XCTAssertEqual(pool.statistics.guardedInUse, 2)
        pool.release(a)
        pool.release(b)
        XCTAssertEqual(try pool.allocate(), b)
        XCTAssertEqual(try pool.allocate(), a)
        XCTAssertEqual(pool.statistics.reuses, 1, "b came from the slot, a from the list")
        pool.release(a)
        pool.release(b)
        XCTAssertEqual(pool.statistics.guardedInUse, 0)
        XCTAssertEqual(pool.statistics.guardedWarm, 2)
    }

    func testStacksPastTheHighWaterMarkGiveMemoryBack() throws {
        let pool = try StackPool(configuration: .init(highWaterMark: 2, maximumCachedGuardedStacks: 1))
        let stacks = try (0..<4).map { _ in try pool.allocate() }
        for stack in stacks {
            stack.bottom.storeBytes(of: 0xAB, as: UInt8.self)
            (stack.top - 1).storeBytes(of: 0xCD, as: UInt8.self)
            XCTAssertEqual(stack.size, 256 * 1024)
            XCTAssertEqual(stack.kind, .guarded)
        }
        for stack in stacks { pool.release(stack) }
        var statistics = pool.statistics
        XCTAssertEqual(statistics.guardedWarm, 2)
        XCTAssertEqual(statistics.guardedCold, 1)
        XCTAssertEqual(statistics.discards, 2)
        XCTAssertEqual(statistics.unmaps, 1)
        // Warm stacks first, newest first: the last released (stacks[3], kept in the pool's slot)
        // and the first (stacks[0]); the two in between went past the high-water mark. Then the
        // cold one kept mapped (stacks[1]), whose pages read back as zero.
        XCTAssertEqual(try pool.allocate(), stacks[3])
        XCTAssertEqual(try pool.allocate(), stacks[0])
        XCTAssertEqual(stacks[0].bottom.load(as: UInt8.self), 0xAB)
        let cold = try pool.allocate()
        XCTAssertEqual(cold, stacks[1])
        XCTAssertEqual(cold.bottom.load(as: UInt8.self), 0)
        XCTAssertEqual((cold.top - 1).load(as: UInt8.self), 0)
        for stack in [stacks[3], stacks[0], cold] { pool.release(stack) }
        pool.trim()
        statistics = pool.statistics
        XCTAssertEqual(statistics.guardedWarm, 0)
        XCTAssertEqual(statistics.guardedCold, 3)
        XCTAssertEqual(statistics.unmaps, 1)
        XCTAssertEqual(statistics.guardedInUse, 0)
    }

    func testCompactStacksShareMappings() throws {
        let pool = try StackPool(configuration: .init(compactStackSize: 16 * 1024, compactStacksPerMapping: 8))
        let stacks = try (0..<9).map { _ in try pool.allocate(.compact) }
        XCTAssertEqual(pool.statistics.compactMappings, 2)
        XCTAssertEqual(pool.statistics.compactInUse, 9)
        XCTAssertEqual(Set(stacks).count, 9)
        XCTAssertEqual(stacks[1].bottom, stacks[0].top, "adjacent in one mapping")
        for stack in stacks { pool.release(stack) }
        XCTAssertEqual(pool.statistics.compactInUse, 0)
        XCTAssertEqual(pool.statistics.compactWarm + pool.statistics.compactCold, 16)
    }

    func testInvalidConfigurationsAreRejected() {
        XCTAssertThrowsError(try StackPool(configuration: .init(guardedStackSize: 1024))) { error in
            guard case .invalidConfiguration = error as? StackError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try StackPool(configuration: .init(compactStacksPerMapping: 0)))
        XCTAssertThrowsError(try StackPool(configuration: .init(highWaterMark: -1)))
    }

    func testMappingLimitIsATypedError() throws {
        let pool = try StackPool(configuration: .init(guardedStackSize: 16 * 1024))
        var stacks: [Stack] = []
        stacks.reserveCapacity(70_000)
        var failure: StackError?
        while failure == nil {
            do {
                stacks.append(try pool.allocate())
            } catch {
                failure = error
            }
            if stacks.count > 70_000 { break }
        }
        for stack in stacks { pool.release(stack) }
        let count = stacks.count
        stacks = []
        pool.trim()
        guard case .mappingLimitReached(let limit, let mappings)? = failure else {
            return XCTFail("expected the mapping limit after \(count) stacks, got \(String(describing: failure))")
        }
        XCTAssertGreaterThanOrEqual(mappings + 8, limit)
        // Sanitizer runtimes hold thousands of mappings of their own.
        XCTAssertGreaterThan(count, limit / 4)
        XCTAssertTrue(failure!.description.contains("vm.max_map_count"))
        XCTAssertEqual(pool.statistics.guardedInUse, 0)
    }
}
