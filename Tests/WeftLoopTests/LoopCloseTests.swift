import Foundation
import Glibc
import Synchronization
import SystemPackage
import WeftLoop
import XCTest

/// `Loop.close()` cancels everything pending and returns once every callback has run, whatever
/// state the operations are in (each test runs the loop on a thread of its own, as a ring belongs to
/// the thread that first runs it, and fails rather than hangs if `close()` does not return).
final class LoopCloseTests: XCTestCase {
    /// The last result a callback recorded.
    final class Result: Sendable {
        let value = Atomic<Int32>(Int32.min)
        var recorded: Int32 { value.load(ordering: .sequentiallyConsistent) }
    }

    static let record: LoopCallback = { raw, context in
        Unmanaged<Result>.fromOpaque(context!).takeUnretainedValue().value.store(
            LoopOperation.pointer(raw).pointee.result, ordering: .sequentiallyConsistent)
    }

    /// Runs `body` on a thread of its own; false if it did not return within `seconds`.
    private func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread {
            body()
            done.signal()
        }.start()
        return done.wait(timeout: .now() + seconds) == .success
    }

    private static let gatedWork: LoopWork = { argument in
        let gate = Unmanaged<Gate>.fromOpaque(argument!).takeUnretainedValue()
        gate.started.add(1, ordering: .sequentiallyConsistent)
        while gate.open.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }
        return 7
    }

    func testCloseWaitsForThreadPoolWorkThatIsRunning() throws {
        // io_uring: the close's cancel-all also ended the poll on the wake eventfd, so the pool's
        // completion was never noticed and close() waited forever.
        let gate = Gate()
        let result = Result()
        let closed = finishes(within: 10) {
            let loop = try! Loop()
            let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
            op.initialize(to: .work(Self.gatedWork, argument: Unmanaged.passUnretained(gate).toOpaque()))
            try! loop.submit(op, callback: Self.record, context: Unmanaged.passUnretained(result).toOpaque())
            try! loop.run(.noWait)
            while gate.started.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }
            // Opened once close() is waiting: after it has cancelled everything (the work runs on).
            Thread {
                usleep(100_000)
                gate.open.store(1, ordering: .sequentiallyConsistent)
            }.start()
            try! loop.close()
            op.deinitialize(count: 1)
            op.deallocate()
        }
        XCTAssertTrue(closed, "close() did not return")
        XCTAssertEqual(result.recorded, 7)
    }

    func testCloseCancelsThreadPoolWorkNotStarted() throws {
        let gate = Gate()
        let first = Result()
        let second = Result()
        let closed = finishes(within: 10) {
            let loop = try! Loop(options: .init(threadPoolSize: 1))
            let argument = Unmanaged.passUnretained(gate).toOpaque()
            let ops = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 2)
            ops.initialize(to: .work(Self.gatedWork, argument: argument))
            (ops + 1).initialize(to: .work(Self.gatedWork, argument: argument))
            try! loop.submit(ops, callback: Self.record, context: Unmanaged.passUnretained(first).toOpaque())
            try! loop.submit(ops + 1, callback: Self.record, context: Unmanaged.passUnretained(second).toOpaque())
            try! loop.run(.noWait)
            // The one pool thread runs the first; the second waits in the queue.
            while gate.started.load(ordering: .sequentiallyConsistent) == 0 { usleep(1000) }
            gate.open.store(1, ordering: .sequentiallyConsistent)
            try! loop.close()
            ops.deinitialize(count: 2)
            ops.deallocate()
        }
        XCTAssertTrue(closed, "close() did not return")
        XCTAssertEqual(first.recorded, 7)
        XCTAssertEqual(second.recorded, -ECANCELED, "work queued when the loop closed ran")
        XCTAssertEqual(gate.started.load(ordering: .sequentiallyConsistent), 1)
    }

    func testCloseRightAfterSubmittingReceivesWithNothingToRead() throws {
        // io_uring answers a MSG_DONTWAIT receive (and, on some kernels, any receive on a
        // non-blocking socket) with EAGAIN, after which the backend waits for readiness: a wait
        // armed after the close's cancel-all was never cancelled.
        for flags in [Int32(0), Int32(MSG_DONTWAIT)] {
            var fds: [Int32] = [-1, -1]
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds), 0)
            let result = Result()
            let (reading, other) = (fds[0], fds[1])
            let closed = finishes(within: 10) {
                let loop = try! Loop()
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
                let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
                op.initialize(to: .recv(FileDescriptor(rawValue: reading), into: buffer, count: 8, flags: flags))
                try! loop.submit(op, callback: Self.record, context: Unmanaged.passUnretained(result).toOpaque())
                try! loop.close()
                op.deinitialize(count: 1)
                op.deallocate()
                buffer.deallocate()
            }
            XCTAssertTrue(closed, "close() did not return (flags \(flags))")
            XCTAssertEqual(result.recorded, -ECANCELED, "flags \(flags)")
            if closed {
                Glibc.close(reading)
                Glibc.close(other)
            }
        }
    }
}
