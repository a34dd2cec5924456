import Glibc
import SystemPackage
import WeftLoop
import XCTest

final class LoopCoreTests: LoopTestCase {
    func testBackendFollowsEnvironment() {
        if let env = ProcessInfo.processInfo.environment["WEFT_BACKEND"] {
            XCTAssertEqual(loop.backendKind.rawValue, env)
        }
        XCTAssertNil(loop.fallbackReason)
    }

    func testNopCompletesOnceWithZero() throws {
        XCTAssertEqual(try perform(.nop()), 0)
    }

    /// The io_uring submission fast path takes exactly the kinds its mask names; an extra bit would
    /// send a kind that runs outside the ring (or a timer the loop keeps) to the kernel.
    func testEntryKindsAreTheKindsTheRingRunsAlone() {
        XCTAssertEqual(Loop.misclassifiedEntryKinds, [])
    }

    func testCallbackNeverRunsInsideSubmit() throws {
        let op = make(.nop())
        let recorder = Recorder()
        try submit(op, recorder)
        XCTAssertTrue(recorder.results.isEmpty)
        XCTAssertTrue(op.pointee.isPending)
        XCTAssertEqual(loop.pendingCount, 1)
        try loop.run()
        XCTAssertEqual(recorder.results, [0])
        XCTAssertFalse(op.pointee.isPending)
    }

    func testRearmFromCallback() throws {
        let op = make(.timer(after: .milliseconds(1)))
        let recorder = Recorder()
        recorder.loop = loop
        recorder.rearm = 20
        try loop.submit(op, callback: Recorder.rearming, context: recorder.context)
        try loop.run()
        XCTAssertEqual(recorder.results, Array(repeating: 0, count: 21))
    }

    func testRelativeTimersOnEveryClock() throws {
        for clock in [LoopClock.monotonic, .realtime, .boottime] {
            let start = LoopClock.monotonic.now().totalNanoseconds
            XCTAssertEqual(try perform(.timer(after: .milliseconds(5), clock: clock)), 0)
            XCTAssertGreaterThanOrEqual(LoopClock.monotonic.now().totalNanoseconds - start, 4_000_000)
        }
    }

    func testAbsoluteTimersOnEveryClock() throws {
        for clock in [LoopClock.monotonic, .realtime, .boottime] {
            let deadline = TimeSpec(nanoseconds: clock.now().totalNanoseconds + 3_000_000)
            XCTAssertEqual(try perform(.timer(at: deadline, clock: clock)), 0)
            XCTAssertGreaterThanOrEqual(clock.now().totalNanoseconds, deadline.totalNanoseconds)
        }
        XCTAssertEqual(try perform(.timer(at: TimeSpec(seconds: 1, nanoseconds: 0))), 0, "a past deadline fires")
        XCTAssertEqual(try perform(.timer(after: .seconds(-3))), 0, "a negative interval fires")
    }

    func testThousandsOfTimers() throws {
        let count = 5000
        let ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: count)
        defer { ops.deallocate() }
        let recorder = Recorder()
        for i in 0..<count {
            (ops + i).initialize(to: .timer(after: .microseconds((i * 7919) % 20000)))
            try submit(ops + i, recorder)
        }
        XCTAssertEqual(loop.pendingCount, count)
        try loop.run()
        XCTAssertEqual(recorder.results.count, count)
        XCTAssertTrue(recorder.results.allSatisfy { $0 == 0 })
    }

    /// Timers fire in deadline order whatever the submission order, and a timer cancelled while
    /// others are pending completes with ECANCELED without disturbing the rest.
    func testTimersFireInDeadlineOrder() throws {
        final class Order {
            var fired: [UnsafeMutableRawPointer] = []
            var results: [Int32] = []
        }
        let count = 40
        let ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: count)
        defer { ops.deallocate() }
        let order = Order()
        let callback: LoopCallback = { raw, context in
            let order = Unmanaged<Order>.fromOpaque(context!).takeUnretainedValue()
            order.fired.append(raw)
            order.results.append(LoopOperation.pointer(raw).pointee.result)
        }
        // Deadlines 1..40 ms, submitted in a scrambled order.
        for i in 0..<count {
            let slot = (i * 17) % count
            (ops + slot).initialize(to: .timer(after: .milliseconds(slot + 1)))
        }
        for i in 0..<count {
            try loop.submit(ops + (i * 17) % count, callback: callback, context: Unmanaged.passUnretained(order).toOpaque())
        }
        if loop.backendKind != .scripted {
            let wait = try XCTUnwrap(loop.embeddingTimeout, "the earliest timer bounds an embedding host's wait")
            XCTAssertLessThanOrEqual(wait, .milliseconds(1))
        }
        loop.cancel(ops + 20)
        try loop.run()
        XCTAssertEqual(order.fired.count, count)
        XCTAssertEqual(order.fired.first, UnsafeMutableRawPointer(ops + 20), "the cancelled timer completes first")
        XCTAssertEqual(order.results.first, -ECANCELED)
        let rest = order.fired.dropFirst().map { ($0 - UnsafeMutableRawPointer(ops)) / MemoryLayout<LoopOperation>.stride }
        XCTAssertEqual(rest, (0..<count).filter { $0 != 20 }, "timers fire in deadline order")
        XCTAssertTrue(order.results.dropFirst().allSatisfy { $0 == 0 })
    }

    func testSubmissionBurstLargerThanTheRing() throws {
        try loop.close()
        loop = try Loop(options: .init(entries: 8))
        let count = 3000
        let ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: count)
        defer { ops.deallocate() }
        let recorder = Recorder()
        for i in 0..<count {
            (ops + i).initialize(to: i % 2 == 0 ? .nop() : .timer(after: .zero))
            try submit(ops + i, recorder)
        }
        try loop.run()
        XCTAssertEqual(recorder.results.count, count)
        XCTAssertTrue(recorder.results.allSatisfy { $0 == 0 })
    }

    func testRunModes() throws {
        try loop.run(.noWait)
        try loop.run(.untilDone)
        try loop.run(.timeout(.milliseconds(2)))
        let op = make(.timer(after: .milliseconds(2)))
        let recorder = Recorder()
        try submit(op, recorder)
        while recorder.results.isEmpty { try loop.run(.once) }
        XCTAssertEqual(recorder.results, [0])
        let long = make(.timer(after: .seconds(30)))
        try submit(long, recorder)
        try loop.run(.timeout(.milliseconds(1)))
        try loop.run(.noWait)
        XCTAssertEqual(recorder.results.count, 1)
        loop.cancel(long)
        try loop.run()
        XCTAssertEqual(recorder.results.last, -ECANCELED)
    }

    func testStopEndsRun() throws {
        let stopper: LoopCallback = { raw, context in
            Unmanaged<Loop>.fromOpaque(context!).takeUnretainedValue().stop()
        }
        let long = make(.timer(after: .seconds(30)))
        let recorder = Recorder()
        try submit(long, recorder)
        let nop = make(.nop())
        try loop.submit(nop, callback: stopper, context: Unmanaged.passUnretained(loop).toOpaque())
        try loop.run()
        XCTAssertTrue(long.pointee.isPending)
        loop.cancel(long)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testMisuseIsATypedError() throws {
        let op = make(.timer(after: .seconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        XCTAssertThrowsError(try submit(op, recorder)) { error in
            XCTAssertEqual(error as? LoopError, LoopError(.alreadyInProcess, operation: "submit"))
        }
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])

        let reentrant: LoopCallback = { raw, context in
            let loop = Unmanaged<Loop>.fromOpaque(context!).takeUnretainedValue()
            do {
                try loop.run(.noWait)
                XCTFail("run inside a callback must throw")
            } catch {
                XCTAssertEqual((error as? LoopError)?.code, .alreadyInProcess)
            }
            do {
                try loop.close()
                XCTFail("close inside a callback must throw")
            } catch {
                XCTAssertEqual((error as? LoopError)?.operation.description, "close")
            }
        }
        let nop = make(.nop())
        try loop.submit(nop, callback: reentrant, context: Unmanaged.passUnretained(loop).toOpaque())
        try loop.run()

        try loop.close()
        XCTAssertTrue(loop.isClosed)
        XCTAssertThrowsError(try submit(make(.nop()), recorder)) { error in
            XCTAssertEqual(error as? LoopError, LoopError(.badFileDescriptor, operation: "submit"))
        }
        XCTAssertThrowsError(try loop.run()) { error in
            XCTAssertEqual((error as? LoopError)?.code, .badFileDescriptor)
        }
        loop.cancel(op)
        try loop.close()
    }

    func testErrorsCarryTheOperationName() throws {
        let op = make(.recv(FileDescriptor(-1), into: nil, count: 0))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [-EBADF])
        XCTAssertThrowsError(try op.pointee.get()) { error in
            let error = error as! LoopError
            XCTAssertEqual(error.code, .badFileDescriptor)
            XCTAssertEqual(error.operation.description, "recv")
            XCTAssertTrue(error.description.hasPrefix("recv: "))
        }
        XCTAssertEqual(op.pointee.error?.code, .badFileDescriptor)
    }

    func testCloseCancelsPendingOperations() throws {
        let (a, _) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 16)
        let recorder = Recorder()
        try buffer.withUnsafeMutableBytes { bytes in
            try submit(make(.recv(FileDescriptor(a), into: bytes.baseAddress, count: 16)), recorder)
            try submit(make(.timer(after: .seconds(60))), recorder)
            try loop.close()
        }
        XCTAssertEqual(recorder.results, [-ECANCELED, -ECANCELED])
        XCTAssertEqual(loop.pendingCount, 0)
    }

    func testFallsBackToEpollWhenTheRingCannotBeSetUp() throws {
        var options = Loop.Options()
        options.simulatedRingFailure = .permissionDenied
        options.readsEnvironment = false
        let fallback = try Loop(options: options)
        XCTAssertEqual(fallback.backendKind, .epoll)
        XCTAssertEqual(fallback.fallbackReason?.hasPrefix("io_uring_setup: "), true)
        let op = make(.timer(after: .milliseconds(1)))
        let recorder = Recorder()
        try fallback.submit(op, callback: Recorder.callback, context: recorder.context)
        try fallback.run()
        XCTAssertEqual(recorder.results, [0])
        try fallback.close()

        options.backend = .ioUring
        XCTAssertThrowsError(try Loop(options: options)) { error in
            XCTAssertEqual(error as? LoopError, LoopError(.permissionDenied, operation: "io_uring_setup"))
        }
    }

    func testDefaultChoiceIsIoUring() throws {
        var options = Loop.Options()
        options.readsEnvironment = false
        let chosen = try Loop(options: options)
        XCTAssertEqual(chosen.backendKind, .ioUring)
        XCTAssertNil(chosen.fallbackReason)
        try chosen.close()
    }

    func testPollDescriptorEmbedsTheLoop() throws {
        let op = make(.timer(after: .milliseconds(5)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        var host = pollfd(fd: loop.pollDescriptor.rawValue, events: Int16(POLLIN), revents: 0)
        while recorder.results.isEmpty {
            let limit = loop.embeddingTimeout.map { Int32($0.components.seconds * 1000) + Int32($0.components.attoseconds / 1_000_000_000_000_000) + 1 } ?? 10_000
            XCTAssertGreaterThanOrEqual(Glibc.poll(&host, 1, limit), 0)
            try loop.run(.noWait)
        }
        XCTAssertEqual(recorder.results, [0])
    }

    func testWorkRunsOnThePool() throws {
        let work: LoopWork = { argument in
            argument!.assumingMemoryBound(to: Int32.self).pointee * 2
        }
        var value: Int32 = 21
        let result = try withUnsafeMutablePointer(to: &value) { try perform(.work(work, argument: $0)) }
        XCTAssertEqual(result, 42)
    }
}
