import Glibc
import Synchronization
import SystemPackage
import WeftLoop
import XCTest

final class LoopCancelTests: LoopTestCase {
    func testCancelBeforeSubmission() throws {
        let op = make(.timer(after: .seconds(30)))
        loop.cancel(op)
        loop.cancel(op)
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
        XCTAssertEqual(op.pointee.error?.isCancellation, true)
    }

    func testCancelPendingTimer() throws {
        let op = make(.timer(after: .seconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCancelPendingRecvTwice() throws {
        let (a, _) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        let recorder = Recorder()
        try buffer.withUnsafeMutableBytes { bytes in
            let op = make(.recv(FileDescriptor(a), into: bytes.baseAddress, count: 8))
            try submit(op, recorder)
            try loop.run(.noWait)
            loop.cancel(op)
            loop.cancel(op)
            try loop.run()
            loop.cancel(op)
            try loop.run()
        }
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCancelInTheSameBatchAsANonBlockingRecv() throws {
        // A recv on a non-blocking socket with nothing to read, cancelled before the loop runs: on
        // io_uring both entries go to the kernel in one batch, the recv completes at once with
        // EAGAIN (which the backend turns into a readiness wait) and the cancel finds nothing.
        // The cancellation was requested all the same, so the result must be ECANCELED, not EAGAIN.
        let (a, _) = socketPair()
        XCTAssertEqual(fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK), 0)
        var buffer = [UInt8](repeating: 0, count: 8)
        let recorder = Recorder()
        try buffer.withUnsafeMutableBytes { bytes in
            let op = make(.recv(FileDescriptor(a), into: bytes.baseAddress, count: 8))
            try submit(op, recorder)
            loop.cancel(op)
            try loop.run()
        }
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCancelPendingAccept() throws {
        let (listening, _) = listener()
        let op = make(.accept(FileDescriptor(listening)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCancelAfterCompletionDoesNothing() throws {
        let op = make(.nop())
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        loop.cancel(op)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.results, [0])
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [0, 0], "a completed operation is reusable and not left cancelled")
    }

    func testCancelRacingCompletionGivesOneCallback() throws {
        let (a, b) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 8)
        for _ in 0..<200 {
            XCTAssertEqual(Glibc.write(b, "x", 1), 1)
            let recorder = Recorder()
            try buffer.withUnsafeMutableBytes { bytes in
                let op = make(.recv(FileDescriptor(a), into: bytes.baseAddress, count: 8))
                try submit(op, recorder)
                loop.cancel(op)
                try loop.run()
                loop.cancel(op)
                try loop.run(.noWait)
            }
            XCTAssertEqual(recorder.results.count, 1)
            let result = recorder.results[0]
            XCTAssertTrue(result == 1 || result == -ECANCELED, "unexpected \(result)")
            if result == -ECANCELED { XCTAssertEqual(Glibc.read(a, &buffer, 8), 1) }
        }
    }

    func testCancelPendingPollAndReuse() throws {
        let (r, w) = pipePair()
        let op = make(.poll(FileDescriptor(r), events: Int16(POLLIN)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        loop.cancel(op)
        try loop.run()
        op.initialize(to: .poll(FileDescriptor(r), events: Int16(POLLIN)))
        try submit(op, recorder)
        XCTAssertEqual(Glibc.write(w, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.results.count, 2)
        XCTAssertEqual(recorder.results[0], -ECANCELED)
        XCTAssertNotEqual(recorder.results[1] & Int32(POLLIN), 0)
    }

    /// An operation reused from its own callback while a cancel sent for its previous submission is
    /// still unanswered. On io_uring a NOP cancelled before the loop runs completes at once, and the
    /// cancel's answer (ENOENT: nothing left to cancel) comes back after it; if the NOP's callback ran
    /// before that answer, the answer would find the operation pending again and cancel the receive
    /// it now is (the loop traps first, on the cancel count). The NOP's completion waits for the
    /// answer, so the receive is left alone: a second NOP, submitted after it, sends the byte it
    /// waits for. (On epoll the cancel has nothing to race; the test checks the same outcome.)
    func testUnansweredCancelSparesTheOperationsNextSubmission() throws {
        let (a, b) = socketPair()
        let scenario = ReuseAfterCancel(loop: loop, receiver: a, sender: b, op: make(.nop()), nudge: make(.nop()))
        keepAlive(scenario)
        try loop.submit(scenario.op, callback: ReuseAfterCancel.reuse, context: scenario.context)
        loop.cancel(scenario.op)
        try loop.run()
        XCTAssertNil(scenario.failure)
        XCTAssertEqual(scenario.results.count, 2)
        XCTAssertTrue(scenario.results.first == 0 || scenario.results.first == -ECANCELED, "NOP: \(scenario.results)")
        XCTAssertEqual(scenario.results.last, 1, "the receive, cancelled by nobody, gets the byte")
        XCTAssertEqual(scenario.buffer.load(as: UInt8.self), UInt8(ascii: "x"))
    }

    func testCancelFromAnotherThread() throws {
        let op = make(.timer(after: .seconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        let waker = loop.waker
        let address = UInt(bitPattern: op)
        let thread = Thread {
            waker.cancel(UnsafeMutablePointer<LoopOperation>(bitPattern: address)!)
        }
        thread.start()
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }

    func testCancelledPoolWork() throws {
        // One pool thread, held busy by the first job, so the second is still queued when cancelled.
        try loop.close()
        loop = try Loop(options: .init(threadPoolSize: 1))
        let gate = Gate()
        let blocker: LoopWork = { argument in
            let gate = Unmanaged<Gate>.fromOpaque(argument!).takeUnretainedValue()
            gate.started.add(1, ordering: .releasing)
            while gate.open.load(ordering: .acquiring) == 0 { sched_yield() }
            return 7
        }
        let recorder = Recorder()
        let argument = Unmanaged.passUnretained(gate).toOpaque()
        let first = make(.work(blocker, argument: argument))
        let second = make(.work(blocker, argument: argument))
        try submit(first, recorder)
        while gate.started.load(ordering: .acquiring) == 0 { sched_yield() }
        try submit(second, recorder)
        loop.cancel(second)
        loop.cancel(first)
        gate.open.store(1, ordering: .releasing)
        try loop.run()
        XCTAssertEqual(recorder.results.sorted(), [-ECANCELED, 7])
    }
}

/// A flag a pool job spins on until the test opens it.
final class Gate: Sendable {
    let open = Atomic<Int32>(0)
    let started = Atomic<Int32>(0)
}

/// ``LoopCancelTests/testUnansweredCancelSparesTheOperationsNextSubmission()``: its operation's first
/// callback reuses it for a receive and submits a NOP whose callback sends the byte received.
private final class ReuseAfterCancel {
    let loop: Loop
    let receiver: Int32
    let sender: Int32
    let op: UnsafeMutablePointer<LoopOperation>
    let nudge: UnsafeMutablePointer<LoopOperation>
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    var results: [Int32] = []
    var failure: LoopError?

    init(
        loop: Loop, receiver: Int32, sender: Int32, op: UnsafeMutablePointer<LoopOperation>,
        nudge: UnsafeMutablePointer<LoopOperation>
    ) {
        self.loop = loop
        self.receiver = receiver
        self.sender = sender
        self.op = op
        self.nudge = nudge
        buffer.storeBytes(of: 0, as: UInt8.self)
    }

    deinit { buffer.deallocate() }

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static let reuse: LoopCallback = { raw, context in
        let scenario = Unmanaged<ReuseAfterCancel>.fromOpaque(context!).takeUnretainedValue()
        scenario.results.append(LoopOperation.pointer(raw).pointee.result)
        guard scenario.results.count == 1 else { return }
        scenario.op.initialize(to: .recv(FileDescriptor(scenario.receiver), into: scenario.buffer, count: 8))
        do throws(LoopError) {
            try scenario.loop.submit(scenario.op, callback: reuse, context: context)
            try scenario.loop.submit(scenario.nudge, callback: send, context: context)
        } catch {
            scenario.failure = error
            scenario.loop.cancel(scenario.op)
        }
    }

    static let send: LoopCallback = { _, context in
        let scenario = Unmanaged<ReuseAfterCancel>.fromOpaque(context!).takeUnretainedValue()
        if Glibc.write(scenario.sender, "x", 1) != 1 {
            scenario.failure = LoopError(Errno(rawValue: errno), operation: "write")
            scenario.loop.cancel(scenario.op)
        }
    }
}
