import Glibc
import SystemPackage
import WeftLoop
import XCTest

/// Per-operation deadlines (`withTimeout`): linked timeouts on io_uring, the loop's timer heap on
/// epoll and for what the kernel does not run.
final class LoopTimeoutTests: LoopTestCase {
    func testAnOperationPastItsDeadlineCompletesOnceWithETIME() throws {
        let (a, _) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        let op = make(.recv(FileDescriptor(a), into: &buffer, count: 8).withTimeout(.milliseconds(30)))
        XCTAssertTrue(op.pointee.hasTimeout)
        let recorder = Recorder()
        let start = ContinuousClock.now
        try submit(op, recorder)
        try loop.run()
        let elapsed = ContinuousClock.now - start
        XCTAssertEqual(recorder.results, [-ETIME])
        XCTAssertEqual(op.pointee.error, LoopError(.timeout, operation: "recv"))
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(29))
        try loop.run(.timeout(.milliseconds(10)))
        XCTAssertEqual(recorder.results.count, 1, "exactly one callback")
    }

    func testAnOperationThatCompletesFirstKeepsItsResultAndDropsTheDeadline() throws {
        let (a, b) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        let op = make(.recv(FileDescriptor(a), into: &buffer, count: 8).withTimeout(.seconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        XCTAssertEqual(Glibc.write(b, "abc", 3), 3)
        try loop.run()
        XCTAssertEqual(recorder.results, [3])
        XCTAssertNil(loop.embeddingTimeout, "no deadline left in the loop's heap")
        XCTAssertEqual(loop.pendingCount, 0)
    }

    func testACancelBeforeTheDeadlineIsACancellation() throws {
        let (a, _) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        let op = make(.recv(FileDescriptor(a), into: &buffer, count: 8).withTimeout(.seconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
        XCTAssertNil(loop.embeddingTimeout)
    }

    /// A descriptor opened O_NONBLOCK makes io_uring report EAGAIN and the loop wait for readiness with
    /// a poll: the deadline must hold across that step too.
    func testTheDeadlineHoldsWhileWaitingForReadinessOnANonBlockingSocket() throws {
        let (a, _) = socketPair()
        XCTAssertEqual(fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK), 0)
        var buffer = [UInt8](repeating: 0, count: 8)
        let op = make(.recv(FileDescriptor(a), into: &buffer, count: 8).withTimeout(.milliseconds(20)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ETIME])
    }

    func testEachSubmissionGetsItsDeadlineAfresh() throws {
        let (a, b) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        let op = make(.recv(FileDescriptor(a), into: &buffer, count: 8).withTimeout(.milliseconds(20)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ETIME])
        try submit(op, recorder)
        XCTAssertEqual(Glibc.write(b, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ETIME, 1])
    }

    func testAMultishotAcceptEndsAtItsDeadline() throws {
        try XCTSkipUnless(loop.supportsMultishot, "the running kernel has no io_uring multishot operations")
        let (server, _) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)).withTimeout(.milliseconds(20)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run()
        XCTAssertEqual(recorder.calls, [.init(result: -ETIME, more: false, buffer: nil)])
    }

    func testManyDeadlinesExpireInOrderWithOneCallbackEach() throws {
        let (a, _) = socketPair()
        let count = 200
        let recorder = Recorder()
        for index in 0..<count {
            let op = make(
                .poll(FileDescriptor(a), events: Int16(POLLIN)).withTimeout(.microseconds(100 * (count - index))))
            try submit(op, recorder)
        }
        try loop.run()
        XCTAssertEqual(recorder.results.count, count)
        XCTAssertTrue(recorder.results.allSatisfy { $0 == -ETIME })
    }

    func testATimerTakesNoTimeout() throws {
        XCTAssertEqual(try perform(LoopOperation.timer(after: .milliseconds(1)).withTimeout(.seconds(1))), -EINVAL)
    }
}

/// Deadlines against a kernel the test plays: the loop's heap asks for the cancel, and the result
/// the kernel then reports decides the callback (ETIME for the cancel, the natural result if it won).
final class LoopScriptedTimeoutTests: XCTestCase {
    func testTheDeadlineCancelsAndACompletionThatWonTheRaceKeepsItsResult() throws {
        let kernel = ScriptedKernel()
        var options = Loop.Options()
        options.scripted = kernel
        let loop = try Loop(options: options)
        let ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 2)
        defer { ops.deallocate() }
        ops.initialize(
            to: LoopOperation.recv(FileDescriptor(rawValue: 5), into: nil, count: 0).withTimeout(.nanoseconds(1)))
        (ops + 1).initialize(
            to: LoopOperation.recv(FileDescriptor(rawValue: 6), into: nil, count: 0).withTimeout(.nanoseconds(1)))
        let recorder = Recorder()
        for op in [ops, ops + 1] { try loop.submit(op, callback: Recorder.callback, context: recorder.context) }
        try loop.run(.noWait)
        XCTAssertTrue(kernel.wasCancelled(ops) && kernel.wasCancelled(ops + 1), "the deadline asked for cancels")
        XCTAssertTrue(recorder.results.isEmpty)
        kernel.complete(ops, result: -ECANCELED)
        kernel.complete(ops + 1, result: 7)  // finished before the cancel reached it
        try loop.run()
        XCTAssertEqual(recorder.results, [-ETIME, 7])
        try loop.close()
    }
}
