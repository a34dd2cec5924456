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
