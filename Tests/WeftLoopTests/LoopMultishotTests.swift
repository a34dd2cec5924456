import CWeftAllocationCounter
import Foundation
import Glibc
import SystemPackage
import WeftLoop
import XCTest

/// Records every callback of a multishot operation: its result, whether more were to come, and the
/// buffer it carried. Optionally cancels the operation from its first callback, and closes accepted
/// descriptors (so leak checks see them go).
final class MultishotRecorder {
    struct Call: Equatable {
        var result: Int32
        var more: Bool
        var buffer: Int?
    }

    var calls: [Call] = []
    var bytes: [UInt8] = []
    var ring: LoopBufferRing?
    var releaseBuffers = true
    var cancelAfter: Int? = nil
    var closeAccepted = true
    weak var loop: Loop?

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
    var finals: Int { calls.filter { !$0.more }.count }
    var last: Call? { calls.last }

    static let callback: LoopCallback = { raw, context in
        let recorder = Unmanaged<MultishotRecorder>.fromOpaque(context!).takeUnretainedValue()
        let op = LoopOperation.pointer(raw)
        let result = op.pointee.result
        recorder.calls.append(Call(result: result, more: op.pointee.hasMore, buffer: op.pointee.bufferIndex))
        if op.pointee.kind == .acceptMultishot, result >= 0, recorder.closeAccepted { Glibc.close(result) }
        if let index = op.pointee.bufferIndex, let ring = recorder.ring {
            recorder.bytes.append(contentsOf: ring.bytes(index, count: Int(result)))
            if recorder.releaseBuffers { try? ring.release(index) }
        }
        if let limit = recorder.cancelAfter, recorder.calls.count == limit, op.pointee.hasMore {
            recorder.loop?.cancel(op)
        }
    }
}

final class LoopMultishotTests: LoopTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(loop.supportsMultishot, "the running kernel has no io_uring multishot receive with provided buffer rings (Linux 6.0)")
    }

    /// Runs the loop until `done` holds, failing (not hanging) after five seconds.
    private func run(until done: () -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !done() {
            if ContinuousClock.now > deadline {
                XCTFail("timed out", file: file, line: line)
                return
            }
            try loop.run(.timeout(.milliseconds(100)))
        }
    }

    // MARK: - Accept

    func testMultishotAcceptCallsBackOncePerConnectionUntilCancelled() throws {
        let (server, port) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        for _ in 0..<3 { _ = connected(to: port) }
        try run { recorder.calls.count >= 3 }
        // Connections made after the first results arrive are accepted by the same submission.
        for _ in 0..<2 { _ = connected(to: port) }
        try run { recorder.calls.count >= 5 }
        XCTAssertEqual(recorder.calls.count, 5)
        XCTAssertTrue(recorder.calls.allSatisfy { $0.more && $0.result >= 0 }, "\(recorder.calls)")
        XCTAssertTrue(op.pointee.isPending, "still armed")
        XCTAssertEqual(loop.pendingCount, 1)

        loop.cancel(op)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.calls.count, 6)
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
        XCTAssertFalse(op.pointee.isPending)
        // Nothing comes after the final callback, even with a connection waiting.
        _ = connected(to: port)
        try loop.run(.noWait)
        try loop.run(.timeout(.milliseconds(20)))
        XCTAssertEqual(recorder.calls.count, 6)
    }

    func testMultishotAcceptCancelledFromItsCallbackEndsWithOneFinalCallback() throws {
        let (server, port) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        recorder.loop = loop
        recorder.cancelAfter = 1
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        for _ in 0..<4 { _ = connected(to: port) }
        try loop.run()
        XCTAssertEqual(recorder.finals, 1, "\(recorder.calls)")
        XCTAssertEqual(recorder.last?.more, false)
        XCTAssertEqual(recorder.last?.result, -ECANCELED)
        XCTAssertTrue(recorder.calls.dropLast().allSatisfy { $0.more && $0.result >= 0 })
        XCTAssertGreaterThanOrEqual(recorder.calls.count, 2)

        // The operation can be submitted again after its final callback, and picks up where it left.
        let again = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: again.context)
        try run { recorder.calls.count - 1 + again.calls.count >= 4 }
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(again.finals, 1)
        XCTAssertEqual(recorder.calls.count - 1 + again.calls.count - 1, 4, "every connection accepted once")
    }

    func testMultishotAcceptCancelledBeforeAnyConnectionOrSubmission() throws {
        let (server, _) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run(.noWait)
        XCTAssertTrue(recorder.calls.isEmpty)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.calls, [.init(result: -ECANCELED, more: false, buffer: nil)])

        let early = make(.acceptMultishot(FileDescriptor(server)))
        let second = MultishotRecorder()
        loop.cancel(early)
        try loop.submit(early, callback: MultishotRecorder.callback, context: second.context)
        try loop.run()
        XCTAssertEqual(second.calls, [.init(result: -ECANCELED, more: false, buffer: nil)])
    }

    /// A tiny completion queue makes io_uring stop the multishot accept by itself when the queue
    /// fills (its last connection comes without `IORING_CQE_F_MORE`); the loop re-arms it, so the
    /// caller sees one stream of connections with more to come, and one final callback at cancel.
    func testMultishotAcceptSurvivesTheKernelDroppingIt() throws {
        try loop.close()
        loop = try Loop(options: Loop.Options(entries: 2))
        let (server, port) = listener()
        for _ in 0..<24 { _ = connected(to: port) }
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try run { recorder.calls.count >= 24 }
        XCTAssertEqual(recorder.calls.count, 24)
        XCTAssertTrue(recorder.calls.allSatisfy { $0.more && $0.result >= 0 }, "\(recorder.calls)")
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.finals, 1)
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
    }

    func testMultishotAcceptErrorsAreOneFinalCallback() throws {
        let (a, _) = socketPair()
        for (fd, expected) in [(Int32(-1), -EBADF), (9999, -EBADF), (a, -EINVAL)] {
            let recorder = MultishotRecorder()
            let op = make(.acceptMultishot(FileDescriptor(fd)))
            try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
            try loop.run()
            XCTAssertEqual(recorder.calls, [.init(result: expected, more: false, buffer: nil)], "fd \(fd)")
            XCTAssertEqual(op.pointee.error?.operation.description, "acceptMultishot")
        }
    }

    func testClosingTheLoopEndsAMultishotAcceptOnce() throws {
        let (server, port) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        _ = connected(to: port)
        try run { recorder.calls.count >= 1 }
        try loop.close()
        XCTAssertEqual(recorder.finals, 1)
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
        XCTAssertEqual(loop.pendingCount, 0)
    }

    // MARK: - Receive with a buffer ring

    func testMultishotRecvDeliversEachMessageInARingBuffer() throws {
        let (a, b) = socketPair()
        let ring = try LoopBufferRing(loop: loop, count: 8, size: 16)
        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let recorder = MultishotRecorder()
        recorder.ring = ring
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        var expected: [UInt8] = []
        for round in 0..<20 {
            let message = Array("message \(round);".utf8)
            expected += message
            XCTAssertEqual(Glibc.write(b, message, message.count), message.count)
            try run { recorder.bytes.count >= expected.count }
        }
        XCTAssertEqual(recorder.bytes, expected)
        XCTAssertTrue(recorder.calls.allSatisfy { $0.more && $0.result > 0 && $0.buffer != nil })
        XCTAssertEqual(ring.availableCount, 8, "every buffer given back")
        XCTAssertTrue(op.pointee.isPending)

        XCTAssertEqual(Glibc.shutdown(b, Int32(SHUT_WR)), 0)
        try loop.run()
        XCTAssertEqual(recorder.last, .init(result: 0, more: false, buffer: nil), "end of stream is the final callback")
        XCTAssertEqual(recorder.finals, 1)
        try ring.close()
    }

    func testMultishotRecvEndsWithENOBUFSWhenTheRingRunsDryAndResumesAfterRelease() throws {
        let (a, b) = socketPair()
        let ring = try LoopBufferRing(loop: loop, count: 2, size: 4)
        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let recorder = MultishotRecorder()
        recorder.ring = ring
        recorder.releaseBuffers = false
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run(.noWait)
        XCTAssertEqual(Glibc.write(b, "abcdefghijkl", 12), 12)
        try loop.run()
        XCTAssertEqual(recorder.calls.count, 3, "\(recorder.calls)")
        XCTAssertEqual(recorder.calls.prefix(2).map(\.result), [4, 4])
        XCTAssertTrue(recorder.calls.prefix(2).allSatisfy { $0.more && $0.buffer != nil })
        XCTAssertEqual(recorder.last, .init(result: -ENOBUFS, more: false, buffer: nil))
        XCTAssertEqual(op.pointee.error, LoopError(.noBufferSpace, operation: "recvMultishot"))
        XCTAssertEqual(ring.availableCount, 0)
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "abcdefgh")

        for call in recorder.calls { if let index = call.buffer { try ring.release(index) } }
        recorder.releaseBuffers = true
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try run { recorder.bytes.count >= 12 }
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "abcdefghijkl", "nothing lost")
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
        XCTAssertEqual(recorder.finals, 2)
        try ring.close()
    }

    // MARK: - Every buffer held while the peer's last bytes and its close arrive

    private func writeAll(_ text: String, to fd: Int32, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = Array(text.utf8)
        XCTAssertEqual(Glibc.write(fd, bytes, bytes.count), bytes.count, file: file, line: line)
    }

    /// Closes the peer's end: its FIN follows the bytes it wrote.
    private func closePeer(_ peer: Int32) {
        disown(peer)
        XCTAssertEqual(Glibc.close(peer), 0)
    }

    /// Submits a multishot receive on `local` into a new ring of two 4-byte buffers, with a
    /// recorder that keeps every buffer it is given (so the ring runs dry).
    private func receiveKeepingBuffers(
        from local: Int32
    ) throws -> (LoopBufferRing, UnsafeMutablePointer<LoopOperation>, MultishotRecorder) {
        let ring = try LoopBufferRing(loop: loop, count: 2, size: 4)
        let op = make(.recvMultishot(FileDescriptor(local), ring: ring))
        let recorder = MultishotRecorder()
        recorder.ring = ring
        recorder.releaseBuffers = false
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        return (ring, op, recorder)
    }

    /// The second half of the tests below: the receive has just ended with ENOBUFS while the caller
    /// holds every buffer. Gives them all back, submits the receive again (now giving each buffer back
    /// as soon as it is read) and checks that the stream goes on to `expected` in order, then ends
    /// exactly once with `end` (end of stream, or an error), and that nothing follows or stays held.
    private func resumeAfterNoBuffers(
        _ op: UnsafeMutablePointer<LoopOperation>, recorder: MultishotRecorder, ring: LoopBufferRing,
        expected: String, end: Int32 = 0, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let finals = recorder.finals
        XCTAssertEqual(recorder.last, .init(result: -ENOBUFS, more: false, buffer: nil), file: file, line: line)
        XCTAssertEqual(op.pointee.error, LoopError(.noBufferSpace, operation: "recvMultishot"), file: file, line: line)
        XCTAssertFalse(op.pointee.isPending, file: file, line: line)
        XCTAssertEqual(ring.availableCount, 0, "every buffer still held", file: file, line: line)

        for call in recorder.calls { if let index = call.buffer { try ring.release(index) } }
        XCTAssertEqual(ring.availableCount, ring.count, file: file, line: line)
        recorder.releaseBuffers = true
        let before = recorder.calls.count
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try run(until: { recorder.finals > finals }, file: file, line: line)
        let resumed = Array(recorder.calls[before...])
        XCTAssertEqual(
            String(decoding: recorder.bytes, as: UTF8.self), expected, "every byte, in order", file: file, line: line)
        XCTAssertEqual(
            resumed.last, .init(result: end, more: false, buffer: nil), "then the end: \(resumed)", file: file,
            line: line)
        XCTAssertTrue(
            resumed.dropLast().allSatisfy { $0.more && $0.result > 0 && $0.buffer != nil }, "\(resumed)",
            file: file, line: line)
        XCTAssertEqual(recorder.calls.filter { $0.result == end }.count, 1, "one end", file: file, line: line)
        XCTAssertEqual(ring.availableCount, ring.count, "every buffer given back", file: file, line: line)
        XCTAssertFalse(op.pointee.isPending, file: file, line: line)
        // Nothing comes after the final callback.
        try loop.run(.timeout(.milliseconds(20)))
        XCTAssertEqual(recorder.calls.count, before + resumed.count, file: file, line: line)
        try ring.close()
    }

    /// The caller holds both buffers when the peer's last bytes and its close arrive: the receive
    /// ends with ENOBUFS, and after the buffers come back those bytes arrive, then end of stream.
    func testMultishotRecvOverTCPKeepsBytesThatArriveWhileEveryBufferIsHeld() throws {
        let (local, peer) = tcpConnection()
        let (ring, op, recorder) = try receiveKeepingBuffers(from: local)
        writeAll("abcdefgh", to: peer)
        try run { recorder.bytes.count >= 8 || recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4])
        XCTAssertTrue(recorder.calls.allSatisfy { $0.more && $0.buffer != nil }, "\(recorder.calls)")
        XCTAssertEqual(ring.availableCount, 0)
        XCTAssertTrue(op.pointee.isPending, "nothing to receive: still armed")

        writeAll("ijklmn", to: peer)
        closePeer(peer)
        try run { recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ENOBUFS])
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "abcdefgh")
        try resumeAfterNoBuffers(op, recorder: recorder, ring: ring, expected: "abcdefghijklmn")
    }

    /// The peer sends more than the ring holds and closes before any buffer is used: the FIN waits
    /// behind the bytes the ring had no room for, and is reported only after them.
    func testMultishotRecvOverTCPKeepsBytesQueuedBeforeThePeersCloseWhenTheRingRunsDry() throws {
        let (local, peer) = tcpConnection()
        let (ring, op, recorder) = try receiveKeepingBuffers(from: local)
        try loop.run(.noWait)
        XCTAssertTrue(recorder.calls.isEmpty)

        writeAll("abcdefghijklmn", to: peer)
        closePeer(peer)
        try run { recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ENOBUFS])
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "abcdefgh")
        try resumeAfterNoBuffers(op, recorder: recorder, ring: ring, expected: "abcdefghijklmn")
    }

    /// The peer's bytes fill the ring exactly, then it closes: the end of stream also needs a free
    /// buffer, so the receive ends with ENOBUFS, and end of stream comes after the resubmission.
    func testMultishotRecvOverTCPEndOfStreamNeedsAFreeBufferToo() throws {
        let (local, peer) = tcpConnection()
        writeAll("abcdefgh", to: peer)
        closePeer(peer)
        let (ring, op, recorder) = try receiveKeepingBuffers(from: local)
        try run { recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ENOBUFS])
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "abcdefgh")
        try resumeAfterNoBuffers(op, recorder: recorder, ring: ring, expected: "abcdefgh")
    }

    /// Submitted again while the caller holds every buffer and nothing is to be read, the receive
    /// does not end at once: it waits, armed, until something arrives, which then ends it with ENOBUFS
    /// and stays in the socket for the next submission.
    func testMultishotRecvSubmittedWithEveryBufferHeldWaitsForSomethingToArrive() throws {
        let (local, peer) = tcpConnection()
        let (ring, op, recorder) = try receiveKeepingBuffers(from: local)
        writeAll("abcdefgh", to: peer)
        try run { recorder.bytes.count >= 8 || recorder.finals > 0 }
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ECANCELED])
        XCTAssertEqual(ring.availableCount, 0)

        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run(.noWait)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.calls.count, 3, "\(recorder.calls)")
        XCTAssertTrue(op.pointee.isPending, "nothing to receive: still armed")

        writeAll("ijkl", to: peer)
        closePeer(peer)
        try run { recorder.finals > 1 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ECANCELED, -ENOBUFS])
        try resumeAfterNoBuffers(op, recorder: recorder, ring: ring, expected: "abcdefghijkl")
    }

    /// The peer resets the connection while the caller holds every buffer: the error is not consumed
    /// by the ENOBUFS ending, and the resubmitted receive reports it.
    func testMultishotRecvOverTCPKeepsAResetThatArrivesWhileEveryBufferIsHeld() throws {
        let (local, peer) = tcpConnection()
        let (ring, op, recorder) = try receiveKeepingBuffers(from: local)
        writeAll("abcdefgh", to: peer)
        try run { recorder.bytes.count >= 8 || recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4])

        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        let size = socklen_t(MemoryLayout<Glibc.linger>.size)
        XCTAssertEqual(setsockopt(peer, SOL_SOCKET, SO_LINGER, &linger, size), 0, "a close that resets")
        closePeer(peer)
        try run { recorder.finals > 0 }
        XCTAssertEqual(recorder.calls.map(\.result), [4, 4, -ENOBUFS])
        try resumeAfterNoBuffers(op, recorder: recorder, ring: ring, expected: "abcdefgh", end: -ECONNRESET)
    }

    func testMultishotRecvCancelWhileIdleAndRingCloseRules() throws {
        let (a, _) = socketPair()
        let ring = try LoopBufferRing(loop: loop, count: 4, size: 64)
        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run(.noWait)
        XCTAssertThrowsError(try ring.close()) {
            XCTAssertEqual($0 as? LoopError, LoopError(.resourceBusy, operation: "LoopBufferRing.close"))
        }
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.calls, [.init(result: -ECANCELED, more: false, buffer: nil)])
        try ring.close()
        try ring.close()
        XCTAssertTrue(ring.isClosed)

        // A closed ring, or another loop's, is refused through the callback.
        let refused = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: refused.context)
        try loop.run()
        XCTAssertEqual(refused.calls, [.init(result: -EBADF, more: false, buffer: nil)])
        let other = try Loop()
        let foreign = try LoopBufferRing(loop: other, count: 4, size: 64)
        let foreignOp = make(.recvMultishot(FileDescriptor(a), ring: foreign))
        let refusedAgain = MultishotRecorder()
        try loop.submit(foreignOp, callback: MultishotRecorder.callback, context: refusedAgain.context)
        try loop.run()
        XCTAssertEqual(refusedAgain.calls.map(\.result), [-EBADF])
        try other.close()
        XCTAssertTrue(foreign.isClosed, "closing a loop closes its rings")
    }

    /// Datagrams keep their boundaries, so each one is a completion: with a tiny completion queue the
    /// kernel stops the receive by itself, and the loop re-arms it without the caller noticing.
    func testMultishotRecvSurvivesTheKernelDroppingIt() throws {
        try loop.close()
        loop = try Loop(options: Loop.Options(entries: 2))
        let (a, b) = socketPair(type: Int32(SOCK_DGRAM.rawValue))
        let ring = try LoopBufferRing(loop: loop, count: 64, size: 32)
        var expected: [UInt8] = []
        for index in 0..<24 {
            let message = Array("datagram \(index),".utf8)
            expected += message
            XCTAssertEqual(Glibc.send(b, message, message.count, 0), message.count)
        }
        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let recorder = MultishotRecorder()
        recorder.ring = ring
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try run { recorder.calls.count >= 24 }
        XCTAssertEqual(recorder.calls.count, 24)
        XCTAssertTrue(recorder.calls.allSatisfy { $0.more && $0.result > 0 }, "\(recorder.calls)")
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), String(decoding: expected, as: UTF8.self))
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.finals, 1)
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
        try ring.close()
    }

    /// Another thread cancels through the waker: one final callback, on the loop's thread.
    func testMultishotAcceptCancelledFromAnotherThread() throws {
        let (server, port) = listener()
        let op = make(.acceptMultishot(FileDescriptor(server)))
        let recorder = MultishotRecorder()
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        _ = connected(to: port)
        try run { recorder.calls.count >= 1 }
        struct Target: @unchecked Sendable { let op: UnsafeMutablePointer<LoopOperation> }
        let target = Target(op: op)
        let waker = loop.waker
        let thread = Thread { waker.cancel(target.op) }
        thread.start()
        try loop.run()
        XCTAssertEqual(recorder.calls.count, 2)
        XCTAssertEqual(recorder.last, .init(result: -ECANCELED, more: false, buffer: nil))
    }

    /// Descriptors opened O_NONBLOCK (as the epoll backend and C libraries leave them) must not make
    /// io_uring's multishot operations end with EAGAIN.
    func testMultishotOperationsOnNonBlockingDescriptors() throws {
        let (server, port) = listener()
        let (a, b) = socketPair()
        for fd in [server, a] { XCTAssertEqual(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0) }
        let accept = make(.acceptMultishot(FileDescriptor(server)))
        let accepted = MultishotRecorder()
        try loop.submit(accept, callback: MultishotRecorder.callback, context: accepted.context)
        let ring = try LoopBufferRing(loop: loop, count: 4, size: 16)
        let recv = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let received = MultishotRecorder()
        received.ring = ring
        try loop.submit(recv, callback: MultishotRecorder.callback, context: received.context)
        try loop.run(.noWait)
        for round in 0..<3 {
            _ = connected(to: port)
            XCTAssertEqual(Glibc.write(b, "n\(round)", 2), 2)
            try run { accepted.calls.count > round && received.bytes.count >= 2 * (round + 1) }
        }
        XCTAssertEqual(String(decoding: received.bytes, as: UTF8.self), "n0n1n2")
        XCTAssertTrue((accepted.calls + received.calls).allSatisfy { $0.more && $0.result > 0 })
        loop.cancel(accept)
        loop.cancel(recv)
        try loop.run()
        XCTAssertEqual(accepted.finals, 1)
        XCTAssertEqual(received.finals, 1)
        try ring.close()
    }

    func testBufferRingMisuseIsATypedError() throws {
        for (count, size) in [(0, 16), (3, 16), (65536, 16), (4, 0)] {
            XCTAssertThrowsError(try LoopBufferRing(loop: loop, count: count, size: size)) {
                XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "LoopBufferRing.init"))
            }
        }
        let (a, b) = socketPair()
        let ring = try LoopBufferRing(loop: loop, count: 4, size: 8)
        XCTAssertThrowsError(try ring.release(2)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.alreadyInProcess, operation: "LoopBufferRing.release"))
        }
        XCTAssertThrowsError(try ring.release(4)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "LoopBufferRing.release"))
        }
        XCTAssertNil(ring.buffer(-1))
        XCTAssertEqual(ring.bytes(99, count: 3).count, 0)

        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        let recorder = MultishotRecorder()
        recorder.ring = ring
        recorder.releaseBuffers = false
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        XCTAssertEqual(Glibc.write(b, "xyz", 3), 3)
        try run { !recorder.calls.isEmpty }
        let index = try XCTUnwrap(recorder.calls.first?.buffer)
        try ring.release(index)
        XCTAssertThrowsError(try ring.release(index), "returned twice") {
            XCTAssertEqual($0 as? LoopError, LoopError(.alreadyInProcess, operation: "LoopBufferRing.release"))
        }
        loop.cancel(op)
        try loop.run()
        try ring.close()
        XCTAssertThrowsError(try ring.release(index)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.badFileDescriptor, operation: "LoopBufferRing.release"))
        }
    }

    /// A message received, handed to the callback and its buffer given back: no heap allocation on
    /// the loop's thread once warm.
    func testMultishotRecvAllocatesNothingPerMessage() throws {
        guard weft_test_allocation_counting() == 1 else { throw XCTSkip("allocations are not counted here") }
        let (a, b) = socketPair()
        let ring = try LoopBufferRing(loop: loop, count: 16, size: 64)
        final class Counter {
            var received = 0
            var ring: LoopBufferRing!
        }
        let counter = Counter()
        counter.ring = ring
        let op = make(.recvMultishot(FileDescriptor(a), ring: ring))
        try loop.submit(
            op,
            callback: { raw, context in
                let counter = Unmanaged<Counter>.fromOpaque(context!).takeUnretainedValue()
                let op = LoopOperation.pointer(raw)
                if let index = op.pointee.bufferIndex {
                    counter.received += Int(op.pointee.result)
                    try? counter.ring.release(index)
                }
            }, context: Unmanaged.passUnretained(counter).toOpaque())
        var byte: UInt8 = 7
        func exchange(_ count: Int) throws {
            for _ in 0..<count {
                let before = counter.received
                _ = Glibc.write(b, &byte, 1)
                while counter.received == before { try loop.run(.once) }
            }
        }
        try exchange(100)
        let start = weft_test_thread_allocations()
        try exchange(1000)
        let allocations = weft_test_thread_allocations() - start
        XCTAssertEqual(allocations, 0, "allocations for 1000 messages")
        loop.cancel(op)
        try loop.run()
        try ring.close()
    }
}

/// The multishot contract against a kernel the test plays: results with more to come, a cancel
/// racing them, stray completions after the final one.
final class LoopScriptedMultishotTests: XCTestCase {
    func testMoreCompletionsThenOneFinalAndNothingAfter() throws {
        let kernel = ScriptedKernel()
        var options = Loop.Options()
        options.scripted = kernel
        let loop = try Loop(options: options)
        let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
        op.initialize(to: .acceptMultishot(FileDescriptor(rawValue: 5)))
        defer { op.deallocate() }
        let recorder = MultishotRecorder()
        recorder.closeAccepted = false
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        kernel.complete(op, result: 10, more: true)
        kernel.complete(op, result: 11, more: true)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.calls.map(\.result), [10, 11])
        XCTAssertTrue(op.pointee.isPending)
        XCTAssertThrowsError(try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)) {
            XCTAssertEqual(
                $0 as? LoopError, LoopError(.alreadyInProcess, operation: "submit"), "armed: not resubmittable")
        }
        loop.cancel(op)
        XCTAssertTrue(kernel.wasCancelled(op))
        // Results already on their way when the cancel was sent still arrive, then the final one.
        kernel.complete(op, result: 12, more: true)
        kernel.complete(op, result: -ECANCELED)
        kernel.complete(op, result: 13, more: true)
        kernel.complete(op, result: -ECANCELED)
        try loop.run()
        XCTAssertEqual(
            recorder.calls,
            [
                .init(result: 10, more: true, buffer: nil), .init(result: 11, more: true, buffer: nil),
                .init(result: 12, more: true, buffer: nil), .init(result: -ECANCELED, more: false, buffer: nil),
            ])
        XCTAssertEqual(loop.pendingCount, 0)
        try loop.close()
    }

    func testScriptedRingBuffersAreHeldUntilReleased() throws {
        let kernel = ScriptedKernel()
        var options = Loop.Options()
        options.scripted = kernel
        let loop = try Loop(options: options)
        let ring = try LoopBufferRing(loop: loop, count: 4, size: 8)
        let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
        op.initialize(to: .recvMultishot(FileDescriptor(rawValue: 5), ring: ring))
        defer { op.deallocate() }
        let recorder = MultishotRecorder()
        recorder.releaseBuffers = false
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        kernel.complete(op, result: 8, more: true, buffer: 2)
        kernel.complete(op, result: -ENOBUFS)
        try loop.run()
        XCTAssertEqual(
            recorder.calls,
            [.init(result: 8, more: true, buffer: 2), .init(result: -ENOBUFS, more: false, buffer: nil)])
        XCTAssertEqual(ring.availableCount, 3)
        try ring.release(2)
        XCTAssertEqual(ring.availableCount, 4)
        try ring.close()
        try loop.close()
    }
}
