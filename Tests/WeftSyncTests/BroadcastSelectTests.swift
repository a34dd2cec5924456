import WeftRuntime
import WeftSync
import XCTest

final class BroadcastSelectTests: SyncTestCase {
    func testBroadcastSelectArm() throws {
        try runBoth { _ in
            let broadcast = BroadcastChannel<Int>(capacity: 2)
            let subscriber = broadcast.subscribe()
            let other = Channel<Int>()
            // Ready at once.
            try broadcast.send(1)
            XCTAssertEqual(try select(subscriber.onReceive().map { $0 ?? -1 }, other.onReceive().map { _ in -9 }), 1)
            // Waits, then a send wakes it.
            let sender = try Fiber.spawn {
                try Self.until { broadcast.waiterCount == 1 }
                try broadcast.send(2)
            }
            XCTAssertEqual(try select(other.onReceive().map { _ in -9 }, subscriber.onReceive().map { $0 ?? -1 }), 2)
            try sender.join()
            XCTAssertEqual(broadcast.waiterCount + other.waitingReceivers, 0)
            // Losing to another arm leaves the subscriber's position alone.
            try broadcast.send(3)
            let ready = Channel<Int>(capacity: 1)
            try ready.send(7)
            XCTAssertEqual(try select(ready.onReceive().map { $0 ?? -1 }, subscriber.onReceive().map { $0 ?? -1 }), 7)
            XCTAssertEqual(try subscriber.tryReceive(), 3)
            // Lag is thrown by the arm; the next receive continues.
            for value in 4...7 { try broadcast.send(value) }
            XCTAssertThrowsError(try select(subscriber.onReceive())) { XCTAssertEqual($0 as? SyncError, .lagged(missed: 2)) }
            XCTAssertEqual(try select(subscriber.onReceive()), 6)
            // Timeout, then close: kept messages first, then nil.
            XCTAssertEqual(try select(subscriber.onReceive()), 7)
            XCTAssertThrowsError(try select(subscriber.onReceive(), timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "select"))
            }
            XCTAssertEqual(broadcast.waiterCount, 0)
            let closer = try Fiber.spawn {
                try Self.until { broadcast.waiterCount == 1 }
                broadcast.close()
            }
            XCTAssertNil(try select(subscriber.onReceive()))
            try closer.join()
        }
    }

    func testBroadcastAsyncSequence() throws {
        try runBoth { _ in
            let broadcast = BroadcastChannel<Int>(capacity: 128)
            let subscribers = (0..<2).map { _ in broadcast.subscribe() }
            let readers = subscribers.map { subscriber in
                Task { () throws -> [Int] in
                    var values: [Int] = []
                    for try await value in subscriber.values { values.append(value) }
                    return values
                }
            }
            for value in 0..<100 { try broadcast.send(value) }
            broadcast.close()
            for reader in readers { XCTAssertEqual(try Fiber.await { try await reader.value }, Array(0..<100)) }
            // Lag is thrown; the iterator continues afterwards. Cancelling a waiting task takes nothing.
            let small = BroadcastChannel<Int>(capacity: 1)
            let late = small.subscribe()
            try small.send(1)
            try small.send(2)
            let lagged = Task { () -> [String] in
                var iterator = late.values.makeAsyncIterator()
                var seen: [String] = []
                do { _ = try await iterator.next() } catch { seen.append("\(error)") }
                if let value = try? await iterator.next() { seen.append("\(value)") }
                return seen
            }
            XCTAssertEqual(
                try Fiber.await { await lagged.value },
                [SyncError.lagged(missed: 1).description, "2"])
            let waiting = Task { () -> Bool in
                var iterator = late.values.makeAsyncIterator()
                do { _ = try await iterator.next() } catch is CancellationError { return true } catch {}
                return false
            }
            try Self.until { small.waiterCount == 1 }
            waiting.cancel()
            XCTAssertTrue(try Fiber.await { await waiting.value })
            XCTAssertEqual(small.waiterCount, 0)
            try small.send(3)
            XCTAssertEqual(try late.tryReceive(), 3)
        }
    }

    /// Selects on a subscriber are cancelled at random while messages arrive: the subscriber
    /// still reads every message once, in order (an arm that did not win took nothing).
    func testCancelledBroadcastSelectsSkipNothing() throws {
        try runBoth { _ in
            let broadcast = BroadcastChannel<Int>(capacity: 512)
            let subscriber = broadcast.subscribe()
            let idle = Channel<Int>()
            let sender = try Fiber.spawn {
                for value in 0..<400 {
                    try broadcast.send(value)
                    if value % 2 == 0 { try Fiber.yield() }
                }
                broadcast.close()
            }
            var read: [Int] = []
            var closed = false
            while !closed {
                let reader = try Fiber.spawn { () -> Int?? in
                    do {
                        return .some(try select(subscriber.onReceive(), idle.onReceive().map { _ in -1 }))
                    } catch is CancellationError {
                        return .none
                    }
                }
                if Bool.random() { try Fiber.yield() }
                reader.cancel()
                switch try reader.join() {
                case .some(.some(let value)): read.append(value)
                case .some(.none): closed = true
                case .none: break
                }
            }
            try sender.join()
            XCTAssertEqual(read, Array(0..<400))
            XCTAssertEqual(broadcast.waiterCount, 0)
        }
    }
}
