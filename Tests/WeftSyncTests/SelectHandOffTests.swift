import WeftRuntime
import WeftSync
import XCTest

final class SelectHandOffTests: SyncTestCase {
    /// A select arm served by a hand-off (a semaphore permit, a notification to all, a broadcast
    /// message) unregisters afterwards: that must not drop the waiters queued behind it.
    func testWaitersQueuedBehindAServedSelectArmStayQueued() throws {
        try runBoth { _ in
            let semaphore = Semaphore(permits: 0)
            let idle = Channel<Int>()
            let selecting = try Fiber.spawn { try select(semaphore.onWait(), idle.onReceive().map { _ in }) }
            try Self.until { semaphore.waiterCount == 1 }
            let plain = try Fiber.spawn { try semaphore.wait(timeout: .seconds(30)) }
            try Self.until { semaphore.waiterCount == 2 }
            semaphore.signal()
            try selecting.join()
            XCTAssertEqual(semaphore.waiterCount, 1)
            semaphore.signal()
            try plain.join()

            let notify = Notify()
            let first = try Fiber.spawn { try select(notify.onNotified(), idle.onReceive().map { _ in }) }
            try Self.until { notify.waiterCount == 1 }
            notify.notifyAll()
            try first.join()
            let later = try Fiber.spawn { try notify.wait(timeout: .seconds(30)) }
            try Self.until { notify.waiterCount == 1 }
            XCTAssertEqual(notify.waiterCount, 1)
            notify.notifyAll()
            try later.join()

            let broadcast = BroadcastChannel<Int>(capacity: 4)
            let early = broadcast.subscribe()
            let reader = try Fiber.spawn { try select(early.onReceive(), idle.onReceive()) }
            try Self.until { broadcast.waiterCount == 1 }
            try broadcast.send(1)
            XCTAssertEqual(try reader.join(), 1)
            XCTAssertEqual(broadcast.waiterCount, 0)
        }
    }
}
