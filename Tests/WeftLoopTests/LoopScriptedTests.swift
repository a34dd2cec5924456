import Glibc
import SystemPackage
import WeftLoop
import XCTest

/// The loop's own logic against a kernel the test plays: completions in any order, with any result,
/// racing cancels, stray duplicates.
final class LoopScriptedTests: XCTestCase {
    private var kernel: ScriptedKernel!
    private var loop: Loop!
    private let capacity = 8
    private lazy var ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: capacity)

    override func setUpWithError() throws {
        kernel = ScriptedKernel()
        var options = Loop.Options()
        options.scripted = kernel
        loop = try Loop(options: options)
        for i in 0..<capacity { (ops + i).initialize(to: .nop()) }
    }

    override func tearDownWithError() throws {
        XCTAssertEqual(loop.pendingCount, 0)
        try loop.close()
        ops.deallocate()
    }

    private func submit(_ op: UnsafeMutablePointer<LoopOperation>, _ recorder: Recorder) throws {
        try loop.submit(op, callback: Recorder.callback, context: recorder.context)
    }

    func testCompletionsInAnyOrderWithAnyResult() throws {
        XCTAssertEqual(loop.backendKind, .scripted)
        let recorder = Recorder()
        var buffer = [UInt8](repeating: 0, count: 16)
        let a = ops, b = ops + 1, c = ops + 2
        a.initialize(to: .recv(FileDescriptor(rawValue: 5), into: &buffer, count: 16))
        b.initialize(to: .send(FileDescriptor(rawValue: 5), from: &buffer, count: 16))
        c.initialize(to: .timer(after: .seconds(1)))
        for op in [a, b, c] { try submit(op, recorder) }
        XCTAssertEqual(kernel.submitted, [a, b, c])
        kernel.complete(c, result: 0)
        kernel.complete(a, result: 3)  // a short read
        kernel.complete(b, result: -ECONNRESET)
        try loop.run()
        XCTAssertEqual(recorder.kinds, [.timer, .recv, .send])
        XCTAssertEqual(recorder.results, [0, 3, -ECONNRESET])
        XCTAssertEqual(b.pointee.error, LoopError(.connectionReset, operation: "send"))
    }

    func testCompletionRacingCancelDeliversTheNaturalResultOnce() throws {
        let recorder = Recorder()
        let a = ops
        a.initialize(to: .recv(FileDescriptor(rawValue: 5), into: nil, count: 0))
        try submit(a, recorder)
        loop.cancel(a)
        loop.cancel(a)
        XCTAssertEqual(kernel.cancelled, [a], "a second cancel is not passed down")
        // The kernel finished the receive before it saw the cancel, then reports the cancel's own
        // outcome as a second completion: the loop must ignore that one.
        kernel.complete(a, result: 7)
        kernel.complete(a, result: -ECANCELED)
        try loop.run()
        XCTAssertEqual(recorder.results, [7])
        loop.cancel(a)
        XCTAssertEqual(kernel.cancelled.count, 1, "cancel after completion does nothing")
    }

    func testCancelledWhileTheKernelIsBusy() throws {
        let recorder = Recorder()
        let a = ops, b = ops + 1
        a.initialize(to: .accept(FileDescriptor(rawValue: 3)))
        b.initialize(to: .timer(after: .seconds(5)))
        try submit(a, recorder)
        try submit(b, recorder)
        loop.cancel(b)
        kernel.complete(b, result: -ECANCELED)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.results, [-ECANCELED])
        XCTAssertTrue(a.pointee.isPending)
        kernel.complete(a, result: -EAGAIN)
        kernel.complete(a, result: -EAGAIN)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED, -EAGAIN])
    }

    func testCancelBeforeSubmitNeverReachesTheKernel() throws {
        let recorder = Recorder()
        loop.cancel(ops)
        try submit(ops, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
        XCTAssertTrue(kernel.submitted.isEmpty)
    }

    func testRemoteCancelIsWithdrawnWhenTheOperationCompletesFirst() throws {
        let recorder = Recorder()
        let a = ops
        try submit(a, recorder)
        loop.waker.cancel(a)
        kernel.complete(a, result: 0)
        try loop.run()
        XCTAssertEqual(recorder.results, [0])
        XCTAssertTrue(kernel.cancelled.isEmpty, "the request died with the operation")
        try submit(a, recorder)
        kernel.complete(a, result: 0)
        try loop.run()
        XCTAssertEqual(recorder.results, [0, 0])
    }

    func testRemoteCancelReachesThePendingOperation() throws {
        let recorder = Recorder()
        let a = ops
        try submit(a, recorder)
        loop.waker.cancel(a)
        loop.waker.cancel(a)
        try loop.run(.noWait)
        XCTAssertEqual(kernel.cancelled, [a])
        kernel.complete(a, result: -ECANCELED)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testEINTRAfterCancelIsReportedAsCancellation() throws {
        let recorder = Recorder()
        try submit(ops, recorder)
        loop.cancel(ops)
        kernel.complete(ops, result: -EINTR)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCloseCompletesWhatTheKernelStillHolds() throws {
        let recorder = Recorder()
        try submit(ops, recorder)
        try submit(ops + 1, recorder)
        kernel.complete(ops + 1, result: 0)
        try loop.close()
        XCTAssertEqual(recorder.results.sorted(), [-ECANCELED, 0])
    }
}
