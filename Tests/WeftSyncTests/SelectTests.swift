import WeftRuntime
import WeftSync
import XCTest

final class SelectTests: SyncTestCase {
    enum Arm: Equatable { case a(Int?), b(Int?), event, sent }

    func testSelectTakesTheReadyArm() throws {
        try runBoth { _ in
            let a = Channel<Int>(capacity: 1)
            let b = Channel<Int>(capacity: 1)
            let event = ResetEvent()
            try b.send(2)
            let first = try select(a.onReceive().map { Arm.a($0) }, b.onReceive().map { Arm.b($0) }, event.onWait().map { Arm.event })
            XCTAssertEqual(first, .b(2))
            event.set()
            let second = try select(a.onReceive().map { Arm.a($0) }, event.onWait().map { Arm.event })
            XCTAssertEqual(second, .event)
            // A send arm on a full channel loses to a ready receive.
            try a.send(1)
            try b.send(3)
            let third = try select(a.onSend(9).map { Arm.sent }, b.onReceive().map { Arm.b($0) })
            XCTAssertEqual(third, .b(3))
            XCTAssertEqual(try a.receive(), 1)
            XCTAssertNil(try a.tryReceive())
        }
    }

    func testAReceiveCaseSelectedAgainReportsTheCloseNotTheLastValue() throws {
        try runBoth { _ in
            // Buffered: the value is taken at registration, the close found there.
            let buffered = Channel<Int>(capacity: 1)
            let incoming = buffered.onReceive()
            try buffered.send(7)
            XCTAssertEqual(try select(incoming), 7)
            buffered.close()
            XCTAssertNil(try select(incoming))
            // Unbuffered: the value is handed to the waiting case, and so is the close.
            let handOff = Channel<Int>()
            let arm = handOff.onReceive()
            let sender = try Fiber.spawn { try handOff.send(9) }
            XCTAssertEqual(try select(arm), 9)
            try sender.join()
            let closer = try Fiber.spawn {
                try SyncTestCase.until { handOff.waitingReceivers == 1 }
                handOff.close()
            }
            XCTAssertNil(try select(arm))
            try closer.join()
        }
    }

    func testAReadyArmCompletesTheSelectOfACancelledFiber() throws {
        try runBoth { _ in
            let ready = Channel<Int>(capacity: 1)
            let idle = Channel<Int>(capacity: 1)
            try ready.send(3)
            let fiber = try Fiber.spawn { () -> [String] in
                while !Fiber.isCancelled { try? Fiber.yield() }
                var seen: [String] = []
                // Ready: completes at once, and the cancellation stays pending.
                seen.append("\(try select(ready.onReceive().map { $0 ?? -1 }, idle.onReceive().map { $0 ?? -2 }))")
                do {
                    _ = try select(idle.onReceive().map { $0 ?? -2 })
                    seen.append("waited")
                } catch is CancellationError {
                    seen.append("cancelled")
                }
                return seen
            }
            fiber.cancel()
            XCTAssertEqual(try fiber.join(), ["3", "cancelled"])
        }
    }

    func testSelectWaitsForTheFirstPeer() throws {
        try runBoth { _ in
            let a = Channel<Int>()
            let b = Channel<Int>()
            let sender = try Fiber.spawn {
                try Self.until { b.waitingReceivers == 1 }
                try b.send(5)
            }
            let result = try select(a.onReceive().map { Arm.a($0) }, b.onReceive().map { Arm.b($0) })
            XCTAssertEqual(result, .b(5))
            XCTAssertEqual(a.waitingReceivers, 0)
            try sender.join()
            // A select send arm meets a plain receiver.
            let receiver = try Fiber.spawn { try a.receive() }
            try select(a.onSend(8), b.onSend(9))
            XCTAssertEqual(try receiver.join(), 8)
            XCTAssertEqual(b.waitingSenders, 0)
            // Closed channels complete the arm: nil for a receive, an error for a send.
            a.close()
            XCTAssertEqual(try select(a.onReceive().map { Arm.a($0) }, b.onReceive().map { Arm.b($0) }), .a(nil))
            XCTAssertThrowsError(try select(a.onSend(1))) { XCTAssertEqual($0 as? SyncError, .closed(operation: "Channel.onSend")) }
        }
    }

    func testSelectTimesOutAndIsCancelled() throws {
        try runBoth { _ in
            let a = Channel<Int>()
            XCTAssertThrowsError(try select(a.onReceive(), timeout: .milliseconds(5))) {
                XCTAssertEqual($0 as? SyncError, .timedOut(operation: "select"))
            }
            XCTAssertEqual(a.waitingReceivers, 0)
            let waiter = try Fiber.spawn { () -> Bool in
                do { try select(a.onReceive().map { _ in }, a.onSend(1)) } catch is CancellationError { return true }
                return false
            }
            try Self.until { a.waitingReceivers == 1 && a.waitingSenders == 1 }
            waiter.cancel()
            XCTAssertTrue(try waiter.join())
            XCTAssertEqual(a.waitingReceivers + a.waitingSenders, 0)
        }
    }

    func testSelectOnJoinHandlesFuturesAndGroups() throws {
        try runBoth { _ in
            let gate = ResetEvent()
            let slow = try Fiber.spawn { () -> Int in try gate.wait(); return 1 }
            let fast = try Fiber.spawn { () -> Int in 2 }
            let winner = try select(slow.onJoin(), fast.onJoin())
            XCTAssertEqual(winner, 2)
            let future = Future<Int>()
            let group = Group()
            try group.spawn { try gate.wait() }
            let setter = try Fiber.spawn { try future.set(3) }
            // One arm per group (it waits on the group); it can serve several selects.
            let groupDone = try group.onWait().map { -1 }
            XCTAssertEqual(try select(future.onGet(), groupDone), 3)
            try setter.join()
            gate.set()
            XCTAssertEqual(try select(groupDone, Channel<Int>().onReceive().map { $0 ?? -2 }), -1)
        }
    }

    func testALosingJoinArmLeavesTheFiberJoinable() throws {
        try runBoth { _ in
            let gate = ResetEvent()
            let slow = try Fiber.spawn { () -> Int in try gate.wait(); return 1 }
            let fast = try Fiber.spawn { () -> Int in 2 }
            // The slow arm registers an observer and loses: the fiber is neither joined nor watched.
            XCTAssertEqual(try select(slow.onJoin(), fast.onJoin()), 2)
            XCTAssertFalse(slow.isFinished)
            XCTAssertThrowsError(try fast.join()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
            // Selected again, it wins once the fiber finishes, woken by the observer.
            let waiter = try Fiber.spawn { try select(slow.onJoin(), Channel<Int>().onReceive().map { $0 ?? -1 }) }
            gate.set()
            XCTAssertEqual(try waiter.join(), 1)
            XCTAssertThrowsError(try slow.join()) { XCTAssertEqual($0 as? FiberError, .alreadyJoined) }
            // From a plain thread too.
            let later = try Fiber.spawn { () -> Int in 3 }
            XCTAssertEqual(try Fiber.spawnBlocking { try select(later.onJoin()) }, 3)
        }
    }

    func testEverySelectWatchingOneFiberOrGroupWakes() throws {
        try runBoth { executors in
            let gate = ResetEvent()
            let watched = try Fiber.spawn { () -> Int in try gate.wait(); return 7 }
            let group = Group()
            try group.spawn { try gate.wait() }
            let idle = Channel<Int>()
            // Several selects (two arms on the fiber in some) observe one fiber and one group at
            // once: each arm is its own observer in the fiber's and the group's lists.
            let watchers = try (0..<6).map { index in
                try Fiber.spawn { () -> String in
                    do {
                        if index % 3 == 2 {
                            return try select(group.onWait().map { "group" }, idle.onReceive().map { _ in "idle" })
                        }
                        var arms = [try watched.onJoin().map { "joined \($0)" }]
                        if index % 3 == 1 { arms.append(try watched.onJoin().map { "again \($0)" }) }
                        return try select(arms + [idle.onReceive().map { _ in "idle" }])
                    } catch let error as FiberError {
                        return "\(error)"
                    }
                }
            }
            // The idle arm registers last in each select: once all six wait on it, every arm on
            // the fiber and the group is registered.
            try Self.until { idle.waitingReceivers == 6 }
            XCTAssertFalse(watched.isFinished)
            gate.set()
            let outcomes = try watchers.map { try $0.join() }
            let joined = outcomes.filter { $0.hasSuffix(" 7") }
            XCTAssertEqual(joined.count, 1, "\(outcomes), \(executors) executors")
            XCTAssertEqual(outcomes.filter { $0 == "group" }.count, 2, "\(outcomes)")
            // The others woke too and found the fiber joined already.
            XCTAssertEqual(outcomes.filter { $0 == "\(FiberError.alreadyJoined)" }.count, 3, "\(outcomes)")
        }
    }

    func testAGroupArmWatchesWithoutAWaiterAndALosingArmChangesNothing() throws {
        try runBoth { _ in
            struct Failure: Error {}
            let gate = ResetEvent()
            let group = Group(failFast: false)
            try group.spawn { try gate.wait() }
            try group.spawn { try gate.wait(); throw Failure() }
            let ready = Channel<Int>(capacity: 1)
            try ready.send(5)
            // The group arm loses: the group keeps its children and a later wait still sees them.
            XCTAssertEqual(try select(try group.onWait().map { -1 }, ready.onReceive().map { $0 ?? -2 }), 5)
            XCTAssertEqual(group.runningCount, 2)
            // From a plain thread, woken by the observer when the last child finishes.
            let watcher = try Fiber.spawn { () -> Bool in
                try Fiber.spawnBlocking { () -> Bool in
                    do { try select(try group.onWait()) } catch is Failure { return true }
                    return false
                }
            }
            gate.set()
            XCTAssertTrue(try watcher.join(), "the winning arm reports the child's error")
            // The winning arm left the group clean: a new child and a plain wait work.
            try group.spawn {}
            try group.wait()
        }
    }

    func testTwoSelectsCompeteForOneItem() throws {
        try runBoth { _ in
            for _ in 0..<20 {
                let channel = Channel<Int>()
                let other = Channel<Int>()
                let got = Counter()
                let selects = try (0..<2).map { _ in
                    try Fiber.spawn {
                        do {
                            if try select(channel.onReceive(), other.onReceive(), timeout: .milliseconds(20)) != nil { got.add() }
                        } catch SyncError.timedOut {}
                    }
                }
                try Self.until { channel.waitingReceivers >= 1 }
                try channel.send(1)
                for handle in selects { try handle.join() }
                XCTAssertEqual(got.value, 1)
            }
        }
    }

    func testCancelWhileSendersCommitConservesItems() throws {
        try runBoth { _ in
            let channel = Channel<Int>()
            let idle = Channel<Int>()
            let received = Bag()
            let undelivered = Bag()
            let senders = try (0..<4).map { sender in
                try Fiber.spawn {
                    for index in 0..<200 {
                        let value = sender * 1000 + index
                        do { try channel.send(value) } catch { undelivered.add(value) }
                    }
                }
            }
            var done = 0
            while done < 800 {
                let selector = try Fiber.spawn { () -> Int? in
                    do { return try select(channel.onReceive(), idle.onReceive()) } catch { return nil }
                }
                if Bool.random() { try Fiber.yield() }
                selector.cancel()
                if let value = try selector.join() { received.add(value) }
                done = received.all.count + undelivered.all.count
            }
            for sender in senders { try sender.join() }
            let all = (received.all + undelivered.all).sorted()
            XCTAssertEqual(all, (0..<4).flatMap { sender in (0..<200).map { sender * 1000 + $0 } }.sorted())
            XCTAssertTrue(undelivered.all.isEmpty)
        }
    }
}

final class SelectSendRaceTests: SyncTestCase {
    /// Selects that send are cancelled while receivers take values: a select send that returned
    /// delivered its value, one that threw did not; nothing is duplicated.
    func testCancelledSelectSendsConserveItems() throws {
        try runBoth { _ in
            for capacity in [0, 2] {
                let channel = Channel<Int>(capacity: capacity)
                let idle = Channel<Int>()
                let received = Bag()
                let delivered = Bag()
                let receivers = try (0..<3).map { _ in
                    try Fiber.spawn { for value in channel { received.add(value) } }
                }
                for value in 0..<400 {
                    let sender = try Fiber.spawn { () -> Bool in
                        do {
                            try select(channel.onSend(value), idle.onReceive().map { _ in })
                            return true
                        } catch {
                            return false
                        }
                    }
                    if Bool.random() { try Fiber.yield() }
                    sender.cancel()
                    if try sender.join() { delivered.add(value) }
                }
                channel.close()
                for receiver in receivers { try receiver.join() }
                XCTAssertEqual(received.all.sorted(), delivered.all.sorted(), "capacity \(capacity)")
                XCTAssertFalse(delivered.all.isEmpty)
            }
        }
    }
}
