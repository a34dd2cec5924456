import WeftRuntime
import WeftSync
import XCTest

final class StressTests: SyncTestCase {
    /// Producers and consumers (plain receives, timed receives and selects) under random
    /// cancellation: every value a send was called with is received exactly once or reported
    /// undelivered by that send.
    func testRandomCancellationConservesEveryItem() throws {
        try runBoth { _ in
            for capacity in [0, 4] {
                let channel = Channel<Int>(capacity: capacity)
                let other = Channel<Int>()
                let received = Bag()
                let undelivered = Bag()
                let producers = try (0..<60).map { producer in
                    try Fiber.spawn {
                        for index in 0..<10 {
                            let value = producer * 100 + index
                            do { try channel.send(value) } catch { undelivered.add(value) }
                        }
                    }
                }
                // Two OS threads produce too, with timed sends (threads cannot be cancelled).
                let threads = (60..<62).map { producer in
                    Self.thread {
                        for index in 0..<10 {
                            let value = producer * 100 + index
                            do {
                                try channel.send(value, timeout: .microseconds(Int.random(in: 0..<2000)))
                            } catch {
                                undelivered.add(value)
                            }
                        }
                    }
                }
                var rounds = 0
                while received.all.count + undelivered.all.count < 620 {
                    rounds += 1
                    let consumer = try Fiber.spawn {
                        do {
                            for _ in 0..<5 {
                                switch Int.random(in: 0..<3) {
                                case 0: received.add(try channel.receive())
                                case 1: received.add(try channel.receive(timeout: .microseconds(Int.random(in: 0..<300))))
                                default:
                                    if let value = try select(channel.onReceive(), other.onReceive()) { received.add(value) }
                                }
                            }
                        } catch {}
                    }
                    for _ in 0..<Int.random(in: 0..<4) { try Fiber.yield() }
                    consumer.cancel()
                    if Int.random(in: 0..<4) == 0 { producers.randomElement()!.cancel() }
                    try consumer.join()
                    XCTAssertLessThan(rounds, 1_000_000)
                }
                for producer in producers { try producer.join() }
                for thread in threads { try thread.wait() }
                XCTAssertNil(try channel.tryReceive())
                let all = (received.all + undelivered.all).sorted()
                XCTAssertEqual(all, (0..<62).flatMap { producer in (0..<10).map { producer * 100 + $0 } }.sorted())
            }
        }
    }

    /// Waits of every kind cancelled while peers signal: no wake is lost (everything finishes) and
    /// the primitives end up clean.
    func testCancellationChurnLosesNoWake() throws {
        try runBoth { _ in
            let mutex = Mutex()
            let semaphore = Semaphore(permits: 2)
            let notify = Notify()
            let completed = Counter()
            let workers = try (0..<40).map { index in
                try Fiber.spawn {
                    for _ in 0..<20 {
                        do {
                            switch index % 3 {
                            case 0:
                                try mutex.lock()
                                try Fiber.yield()
                                try mutex.unlock()
                            case 1:
                                try semaphore.wait()
                                defer { semaphore.signal() }
                                try Fiber.yield()
                            default:
                                try notify.wait(timeout: .milliseconds(1))
                            }
                            completed.add()
                        } catch is CancellationError {
                            // Drop a held mutex if the yield was the point that threw.
                            if mutex.isLocked { try? mutex.unlock() }
                        } catch {}
                    }
                }
            }
            for round in 0..<200 {
                if round % 3 == 0 { workers.randomElement()!.cancel() }
                notify.notifyOne()
                try Fiber.yield()
            }
            for worker in workers { try worker.join() }
            XCTAssertFalse(mutex.isLocked)
            XCTAssertEqual(semaphore.availablePermits, 2)
            XCTAssertEqual(mutex.waiterCount + semaphore.waiterCount + notify.waiterCount, 0)
            XCTAssertGreaterThan(completed.value, 0)
        }
    }
    /// A parked receive cancelled while a sender hands it a value, both from other executors and
    /// threads: the value is received or stays in the channel (never lost, never both), and the
    /// wake of a hand-off that lost to the cancellation reaches no later wait (a stray wake would
    /// end the shielded wait below early, as a timeout).
    func testCancelRacingAHandOffLeavesNoStrayWake() throws {
        try runBoth { _ in
            for round in 0..<300 {
                let channel = Channel<Int>()
                let later = Channel<Int>(capacity: 1)
                let parked = ResetEvent()
                let receiver = try Fiber.spawn { () -> Int? in
                    parked.set()
                    let value = try? channel.receive()
                    // Not cancellable: only the sentinel may end it.
                    let sentinel = try Fiber.withCancellationShield { try later.receive() }
                    XCTAssertEqual(sentinel, -1)
                    return value
                }
                try parked.wait()
                try Self.until { channel.waitingReceivers == 1 }
                let sent = Counter()
                let sender = Self.thread {
                    if round % 2 == 0, (try? channel.trySend(round)) == true { sent.add() }
                }
                if round % 3 == 0 { try Fiber.yield() }
                receiver.cancel()
                try sender.wait()
                let leftover = try channel.tryReceive()
                try later.send(-1)
                let received = try receiver.join()
                // Delivered exactly when the send says so (an unbuffered channel keeps nothing).
                XCTAssertEqual(received, sent.value == 1 ? round : nil, "round \(round)")
                XCTAssertNil(leftover)
                XCTAssertEqual(channel.waitingReceivers, 0)
            }
        }
    }
}
