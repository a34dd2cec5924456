import Dispatch
import Glibc
import SystemPackage
import WeftLoop
import XCTest

/// The epoll backend remembers that a TCP socket is drained after a short receive, and lets the next
/// receive wait for the edge without trying first. These tests check that the shortcut is taken, and
/// that the cases where a short receive does not prove the queue empty (datagrams, the end of stream
/// arriving with the data, urgent data) still complete. On io_uring they check the same results.
final class LoopReadinessTests: LoopTestCase {
    private var buffer: UnsafeMutableRawPointer!

    override func setUpWithError() throws {
        try super.setUpWithError()
        buffer = .allocate(byteCount: 64, alignment: 16)
    }

    override func tearDownWithError() throws {
        buffer.deallocate()
        try super.tearDownWithError()
    }

    /// Receives skipped so far; nil on a backend without the shortcut.
    private var awaitingEdge: Int? { loop.receivesAwaitingEdge }

    /// Receives up to 64 bytes on `fd` (giving up after 10 s, so a receive no edge wakes fails the
    /// test instead of hanging it), with `before` run after the submission and before the loop runs.
    private func receive(_ fd: Int32, flags: Int32 = 0, before: () -> Void = {}) throws -> (Int32, String) {
        let op = make(.recv(FileDescriptor(fd), into: buffer, count: 64, flags: flags).withTimeout(.seconds(10)))
        let recorder = Recorder()
        try submit(op, recorder)
        before()
        try loop.run()
        XCTAssertEqual(recorder.results.count, 1)
        let result = recorder.results.first ?? Int32.min
        let text = result > 0 ? String(decoding: UnsafeRawBufferPointer(start: buffer, count: Int(result)), as: UTF8.self) : ""
        return (result, text)
    }

    private func write(_ fd: Int32, _ text: String, flags: Int32 = 0) {
        let sent = text.utf8CString.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, text.utf8.count, flags) }
        XCTAssertEqual(sent, text.utf8.count)
    }

    func testAShortTCPReceiveLetsTheNextOneWaitForTheEdgeWithoutTrying() throws {
        let (local, peer) = tcpConnection()
        // The first receive finds nothing and waits, which registers the socket.
        XCTAssertEqual(try receive(local) { write(peer, "0123456789") }.1, "0123456789")
        let skipped = awaitingEdge

        // 10 of 64 bytes: the queue was empty, so the next receive waits untried; new bytes wake it.
        XCTAssertEqual(try receive(local) { write(peer, "abcde") }.1, "abcde")
        if let skipped { XCTAssertEqual(awaitingEdge, skipped + 1, "the receive after a short one tried first") }

        // Bytes that arrived before the receive was submitted: their edge is still to be collected.
        write(peer, String(repeating: "x", count: 64))
        XCTAssertEqual(try receive(local).0, 64)
        if let skipped { XCTAssertEqual(awaitingEdge, skipped + 2) }

        // A full receive proves nothing, so the next one tries at once and finds the bytes.
        write(peer, "xyz")
        XCTAssertEqual(try receive(local).1, "xyz")
        if let skipped { XCTAssertEqual(awaitingEdge, skipped + 2, "a receive after a full one waited") }

        // "xyz" was short, so the peek waits for its edge; a peek leaves the bytes where they are,
        // so it does not mark the socket drained, and the receive after it tries at once.
        write(peer, "peek")
        XCTAssertEqual(try receive(local, flags: Int32(MSG_PEEK)).1, "peek")
        if let skipped { XCTAssertEqual(awaitingEdge, skipped + 3) }
        XCTAssertEqual(try receive(local).1, "peek")
        if let skipped { XCTAssertEqual(awaitingEdge, skipped + 3, "a peek marked the socket drained") }
    }

    func testDatagramsAreReceivedOneByOneWithoutWaitingForAnEdge() throws {
        let (local, peer) = socketPair(type: Int32(SOCK_DGRAM.rawValue))
        let before = awaitingEdge
        // Both datagrams arrive under one edge; the first receive is short, and the second datagram
        // must still be received without another edge.
        XCTAssertEqual(try receive(local) { write(peer, "first"); write(peer, "second") }.1, "first")
        XCTAssertEqual(try receive(local).1, "second")
        XCTAssertEqual(awaitingEdge, before)
    }

    func testTheEndOfStreamThatCameWithTheBytesIsReceived() throws {
        let (local, peer) = tcpConnection()
        // The bytes and the FIN arrive under one edge; the short receive must not hide the FIN.
        XCTAssertEqual(try receive(local) { write(peer, "last words"); Glibc.shutdown(peer, Int32(SHUT_WR)) }.1, "last words")
        XCTAssertEqual(try receive(local).0, 0)
    }

    func testBytesAfterTheUrgentMarkAreReceived() throws {
        let (local, peer) = tcpConnection()
        // A receive stops short at the urgent mark with bytes still queued behind it.
        let first = try receive(local) {
            write(peer, "abc")
            write(peer, "!", flags: Int32(MSG_OOB))
            write(peer, "efg")
        }
        XCTAssertEqual(first.1, "abc")
        XCTAssertEqual(try receive(local).1, "efg")
    }

    func testAPollForUrgentDataWakesWhenItArrives() throws {
        let (local, peer) = tcpConnection()
        let poll = make(.poll(FileDescriptor(local), events: Int16(POLLPRI)).withTimeout(.seconds(10)))
        let recorder = Recorder()
        try submit(poll, recorder)
        write(peer, "!", flags: Int32(MSG_OOB))
        try loop.run()
        XCTAssertEqual(recorder.results.count, 1)
        let events = recorder.results.first ?? -1
        XCTAssertTrue(events > 0 && events & Int32(POLLPRI) != 0, "poll for POLLPRI returned \(events)")
    }
}

/// Where `epoll_pwait2` is missing (Linux before 5.11, or refused by a seccomp filter), the epoll
/// backend waits with `epoll_wait` and millisecond timeouts. Each test runs on the backend
/// `WEFT_BACKEND` selects (the switch only changes how epoll waits).
final class LoopWaitFallbackTests: LoopTestCase {
    override func setUpWithError() throws {
        Loop.simulateMissingEpollPwait2(true)
        try super.setUpWithError()
    }

    override func tearDownWithError() throws {
        Loop.simulateMissingEpollPwait2(false)
        try super.tearDownWithError()
    }

    private static func threadCPUNanoseconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Int(time.tv_sec) * 1_000_000_000 + Int(time.tv_nsec)
    }

    func testTimersAndSocketsWakeTheLoopWithoutSpinning() throws {
        // A bound on a broken wait that would never return: the loop is stopped (a run returns),
        // and the assertions below fail instead of the test hanging.
        let waker = loop.waker
        let watchdog = DispatchWorkItem { waker.stop() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 20, execute: watchdog)
        defer { watchdog.cancel() }

        let (local, peer) = socketPair()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        defer { buffer.deallocate() }
        let receive = make(.recv(FileDescriptor(local), into: buffer, count: 16))
        let timer = make(.timer(after: .milliseconds(100)))
        let received = Recorder()
        let fired = Recorder()
        try submit(receive, received)
        try submit(timer, fired)

        let clock = ContinuousClock()
        let start = clock.now
        let cpuBefore = Self.threadCPUNanoseconds()
        // Other events (the socket's first edge, say writable) may end a wait before the timer.
        while fired.results.isEmpty && clock.now - start < .seconds(20) { try loop.run(.once) }
        XCTAssertEqual(fired.results, [0])
        XCTAssertGreaterThanOrEqual(clock.now - start, .milliseconds(100), "the timer fired early")
        // A wait that spun (a zero timeout) burns the whole 100 ms on this thread.
        XCTAssertLessThan(Self.threadCPUNanoseconds() - cpuBefore, 50_000_000, "the loop spun while it waited")

        XCTAssertEqual(Glibc.write(peer, "ping", 4), 4)
        try loop.run()
        XCTAssertEqual(received.results, [4])
    }
}
