import WeftRuntime
import WeftSync
import XCTest

final class ChannelTests: SyncTestCase {
    func testUnbufferedPingPong() throws {
        try runBoth { _ in
            let ping = Channel<Int>()
            let pong = Channel<Int>()
            let echo = try Fiber.spawn {
                for value in ping { try pong.send(value + 1) }
            }
            for value in 0..<1000 { try ping.send(value); XCTAssertEqual(try pong.receive(), value + 1) }
            ping.close()
            try echo.join()
        }
    }

    func testManyProducersAndConsumersDeliverEachValueOnce() throws {
        for capacity in [0, 1, 16] {
            try runBoth { _ in
                let channel = Channel<Int>(capacity: capacity)
                let received = Bag()
                let consumers = try (0..<4).map { _ in
                    try Fiber.spawn { for value in channel { received.add(value) } }
                }
                let producers = try (0..<4).map { producer in
                    try Fiber.spawn { for index in 0..<500 { try channel.send(producer * 1000 + index) } }
                }
                for producer in producers { try producer.join() }
                channel.close()
                for consumer in consumers { try consumer.join() }
                let expected = (0..<4).flatMap { producer in (0..<500).map { producer * 1000 + $0 } }
                XCTAssertEqual(received.all.sorted(), expected.sorted(), "capacity \(capacity)")
            }
        }
    }

    func testFibersAndThreadsMixed() throws {
        try runBoth { _ in
            let toFibers = Channel<Int>(capacity: 4)
            let toThreads = Channel<Int>()
            let fromThreads = Bag()
            let fromFibers = Bag()
            let threadProducer = Self.thread {
                for value in 0..<500 { try! toFibers.send(value) }
            }
            let threadConsumer = Self.thread {
                for value in toThreads { fromFibers.add(value) }
            }
            let fiberConsumer = try Fiber.spawn { for _ in 0..<500 { fromThreads.add(try toFibers.receive()) } }
            for value in 0..<500 { try toThreads.send(value) }
            toThreads.close()
            try fiberConsumer.join()
            try threadProducer.wait()
            try threadConsumer.wait()
            XCTAssertEqual(fromThreads.all, Array(0..<500))
            XCTAssertEqual(fromFibers.all, Array(0..<500))
        }
    }

    func testTryAndTimedVariants() throws {
        try runBoth { _ in
            let channel = Channel<Int>(capacity: 1)
            XCTAssertNil(try channel.tryReceive())
            XCTAssertTrue(try channel.trySend(1))
            XCTAssertFalse(try channel.trySend(2))
            XCTAssertThrowsError(try channel.send(2, timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Channel.send"))
            }
            XCTAssertEqual(try channel.receive(timeout: .milliseconds(5)), 1)
            XCTAssertThrowsError(try channel.receive(timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "Channel.receive"))
            }
            let unbuffered = Channel<Int>()
            XCTAssertFalse(try unbuffered.trySend(1))
            let receiver = try Fiber.spawn { try unbuffered.receive() }
            try Self.until { unbuffered.waitingReceivers == 1 }
            XCTAssertTrue(try unbuffered.trySend(7))
            XCTAssertEqual(try receiver.join(), 7)
        }
    }

    func testCancelledWaitsLoseNoValue() throws {
        try runBoth { _ in
            let channel = Channel<Int>()
            let receiver = try Fiber.spawn { () -> Bool in
                do { _ = try channel.receive() } catch is CancellationError { return true }
                return false
            }
            try Self.until { channel.waitingReceivers == 1 }
            receiver.cancel()
            XCTAssertTrue(try receiver.join())
            XCTAssertEqual(channel.waitingReceivers, 0)
            let sender = try Fiber.spawn { () -> Bool in
                do { try channel.send(5) } catch is CancellationError { return true }
                return false
            }
            try Self.until { channel.waitingSenders == 1 }
            sender.cancel()
            XCTAssertTrue(try sender.join())
            XCTAssertNil(try channel.tryReceive())
        }
    }

    func testCloseGracefullyAndImmediately() throws {
        try runBoth { _ in
            let channel = Channel<Int>(capacity: 4)
            try channel.send(1)
            try channel.send(2)
            channel.close()
            XCTAssertThrowsError(try channel.send(3)) { XCTAssertEqual($0 as? SyncError, .closed(operation: "Channel.send")) }
            XCTAssertThrowsError(try channel.trySend(3)) { XCTAssertEqual($0 as? SyncError, .closed(operation: "Channel.trySend")) }
            XCTAssertEqual(Array(channel), [1, 2])
            XCTAssertThrowsError(try channel.receive()) { XCTAssertEqual($0 as? SyncError, .closed(operation: "Channel.receive")) }
            XCTAssertThrowsError(try channel.tryReceive())

            let full = Channel<Int>(capacity: 2)
            try full.send(1)
            try full.send(2)
            let blockedSender = try Fiber.spawn { () -> SyncError? in
                do { try full.send(3) } catch { return error as? SyncError }
                return nil
            }
            try Self.until { full.waitingSenders == 1 }
            XCTAssertEqual(full.closeImmediately(), [1, 2])
            XCTAssertEqual(try blockedSender.join(), .closed(operation: "Channel.send"))
            XCTAssertThrowsError(try full.receive())

            let empty = Channel<Int>()
            let blockedReceivers = try (0..<3).map { _ in
                try Fiber.spawn { () -> SyncError? in
                    do { _ = try empty.receive() } catch { return error as? SyncError }
                    return nil
                }
            }
            try Self.until { empty.waitingReceivers == 3 }
            empty.close()
            for receiver in blockedReceivers { XCTAssertEqual(try receiver.join(), .closed(operation: "Channel.receive")) }
        }
    }

    func testAsyncConsumerOfFiberProducer() throws {
        try runBoth { _ in
            let channel = Channel<Int>()
            let consumer = Task { () throws -> [Int] in
                var values: [Int] = []
                for try await value in channel.values { values.append(value) }
                return values
            }
            for value in 0..<100 { try channel.send(value) }
            channel.close()
            let values = try Fiber.await { try await consumer.value }
            XCTAssertEqual(values, Array(0..<100))
            // Cancelling a waiting task takes no value.
            let idle = Channel<Int>()
            let waiting = Task { () -> Bool in
                var iterator = idle.values.makeAsyncIterator()
                do { _ = try await iterator.next() } catch is CancellationError { return true } catch {}
                return false
            }
            try Self.until { idle.waitingReceivers == 1 }
            waiting.cancel()
            XCTAssertTrue(try Fiber.await { await waiting.value })
            XCTAssertEqual(idle.waitingReceivers, 0)
        }
    }

    func testBroadcastReachesEverySubscriberAndReportsLag() throws {
        try runBoth { _ in
            let channel = BroadcastChannel<Int>(capacity: 4)
            let subscribers = (0..<3).map { _ in channel.subscribe() }
            let handles = try subscribers.map { subscriber in
                try Fiber.spawn { () -> [Int] in
                    var values: [Int] = []
                    while true {
                        do {
                            values.append(try subscriber.receive())
                        } catch SyncError.closed {
                            return values
                        } catch SyncError.lagged {
                            continue
                        }
                    }
                }
            }
            let slow = channel.subscribe()
            try Self.until { channel.waiterCount == 3 }
            for value in 0..<3 {
                try channel.send(value)
                try Self.until { channel.waiterCount == 3 }
            }
            for value in 3..<10 { try channel.send(value) }
            XCTAssertThrowsError(try slow.receive()) { XCTAssertEqual($0 as? SyncError, .lagged(missed: 6)) }
            XCTAssertEqual(try slow.receive(), 6)
            channel.close()
            XCTAssertThrowsError(try channel.send(11))
            for handle in handles {
                let values = try handle.join()
                XCTAssertEqual(Array(values.prefix(3)), [0, 1, 2])
                XCTAssertEqual(values.last, 9)
            }
            XCTAssertEqual(try slow.tryReceive(), 7)
            XCTAssertEqual(try slow.receive(timeout: .milliseconds(5)), 8)
            XCTAssertEqual(try slow.receive(), 9)
            XCTAssertThrowsError(try slow.receive()) {
                XCTAssertEqual($0 as? SyncError, .closed(operation: "BroadcastChannel.receive"))
            }
        }
    }
}
