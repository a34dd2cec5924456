import Glibc
import SystemPackage
import WeftLoop
import WeftTestSupport
import XCTest

/// Registered files: operations that name a slot of the loop's file table instead of a descriptor.
final class LoopRegisteredFileTests: LoopTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(loop.supportsRegisteredFiles, "the running kernel has no sparse registered-file tables for io_uring (Linux 5.19)")
    }

    func testOperationsOnRegisteredFilesMoveBytesAndCanBeRearmed() throws {
        let (a, b) = socketPair()
        try loop.registerFiles(count: 4)
        XCTAssertEqual(loop.registeredFileCount, 4)
        try loop.registerFile(FileDescriptor(a), at: 2)
        try loop.registerFile(FileDescriptor(b), at: 3)
        XCTAssertEqual(loop.registeredFile(at: 2), FileDescriptor(a))
        XCTAssertNil(loop.registeredFile(at: 0))

        var received = [UInt8](repeating: 0, count: 16)
        let message = Array("over slots".utf8)
        let recorder = Recorder()
        try received.withUnsafeMutableBytes { into in
            try message.withUnsafeBytes { from in
                let recv = make(
                    .recv(FileDescriptor(rawValue: 2), into: into.baseAddress, count: 16).onRegisteredFile())
                let send = make(
                    .send(FileDescriptor(rawValue: 3), from: from.baseAddress, count: from.count).onRegisteredFile())
                XCTAssertTrue(recv.pointee.usesRegisteredFile)
                for _ in 0..<3 {
                    try submit(recv, recorder)
                    try submit(send, recorder)
                    try loop.run()
                    XCTAssertEqual(try recv.pointee.get(), message.count)
                    XCTAssertEqual(try send.pointee.get(), message.count)
                }
            }
        }
        XCTAssertEqual(Array(received[0..<message.count]), message)
        XCTAssertEqual(recorder.results.count, 6)
    }

    func testMultishotReceiveOnARegisteredFile() throws {
        try XCTSkipUnless(loop.supportsMultishot, "the running kernel has no io_uring multishot receive")
        let (a, b) = socketPair()
        try loop.registerFiles(count: 1)
        try loop.registerFile(FileDescriptor(a), at: 0)
        let ring = try LoopBufferRing(loop: loop, count: 4, size: 32)
        let op = make(.recvMultishot(FileDescriptor(rawValue: 0), ring: ring).onRegisteredFile())
        let recorder = MultishotRecorder()
        recorder.ring = ring
        try loop.submit(op, callback: MultishotRecorder.callback, context: recorder.context)
        try loop.run(.noWait)
        XCTAssertEqual(Glibc.write(b, "slot", 4), 4)
        XCTAssertEqual(Glibc.shutdown(b, Int32(SHUT_WR)), 0)
        try loop.run()
        XCTAssertEqual(String(decoding: recorder.bytes, as: UTF8.self), "slot")
        XCTAssertEqual(recorder.last, .init(result: 0, more: false, buffer: nil))
        try ring.close()
    }

    func testRegisteredFileMisuseIsATypedError() throws {
        var byte: UInt8 = 0
        XCTAssertEqual(
            try perform(LoopOperation.recv(FileDescriptor(rawValue: 0), into: &byte, count: 1).onRegisteredFile()),
            -EBADF, "no table")
        XCTAssertThrowsError(try loop.registerFile(FileDescriptor(rawValue: 0), at: 0)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "registerFile"))
        }
        for count in [0, 65537] {
            XCTAssertThrowsError(try loop.registerFiles(count: count)) {
                XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "registerFiles"))
            }
        }
        try loop.registerFiles(count: 2)
        XCTAssertThrowsError(try loop.registerFiles(count: 2)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.resourceBusy, operation: "registerFiles"))
        }
        XCTAssertThrowsError(try loop.registerFile(FileDescriptor(rawValue: 9999), at: 0)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.badFileDescriptor, operation: "registerFile"))
        }
        XCTAssertThrowsError(try loop.registerFile(FileDescriptor(rawValue: 0), at: 2)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "registerFile"))
        }
        XCTAssertEqual(
            try perform(LoopOperation.recv(FileDescriptor(rawValue: 1), into: &byte, count: 1).onRegisteredFile()),
            -EBADF, "empty slot")
        XCTAssertEqual(
            try perform(LoopOperation.recv(FileDescriptor(rawValue: 5), into: &byte, count: 1).onRegisteredFile()),
            -EINVAL, "slot out of range")
        let (a, _) = socketPair()
        try loop.registerFile(FileDescriptor(a), at: 1)
        XCTAssertEqual(
            try perform(LoopOperation.close(FileDescriptor(rawValue: 1)).onRegisteredFile()), -EINVAL,
            "unsupported kind")
        // A negative descriptor names no slot (not slot 0, which holds a socket here).
        let (c, _) = socketPair()
        try loop.registerFile(FileDescriptor(c), at: 0)
        XCTAssertEqual(
            try perform(LoopOperation.send(FileDescriptor(rawValue: -1), from: &byte, count: 1).onRegisteredFile()),
            -EINVAL, "negative slot")
        try loop.registerFile(nil, at: 0)
        try loop.registerFile(nil, at: 1)
        XCTAssertNil(loop.registeredFile(at: 1))
        XCTAssertEqual(
            try perform(LoopOperation.recv(FileDescriptor(rawValue: 1), into: &byte, count: 1).onRegisteredFile()),
            -EBADF, "emptied slot")
    }
}

/// Direct accepts: connections that go straight into a slot of the registered-file table.
final class LoopDirectAcceptTests: LoopTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try XCTSkipUnless(loop.supportsRegisteredFiles, "the running kernel has no sparse registered-file tables for io_uring (Linux 5.19)")
    }

    private var bytes = [UInt8](repeating: 0, count: 64)
    /// Memory operations point into (it must outlive them).
    private var scratch: UnsafeMutableRawBufferPointer!

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        scratch?.deallocate()
    }

    /// `text` copied into ``scratch``, for an operation to send.
    private func staged(_ text: String) -> UnsafeMutableRawPointer {
        if scratch == nil { scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8) }
        scratch.copyBytes(from: text.utf8)
        return scratch.baseAddress!
    }

    /// What the peer `fd` reads next: the text, "" at end of stream, or a description of the error.
    private func peerReads(_ fd: Int32) -> String {
        let n = bytes.withUnsafeMutableBytes { receive(fd, into: $0.baseAddress!, count: $0.count) }
        guard let n else { return "nothing within 10 s" }
        if n < 0 { return n == -Int(ECONNRESET) ? "" : "errno \(-n)" }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }

    func testDirectAcceptPutsTheConnectionInASlotThatTheLoopOwns() throws {
        let (listening, port) = listener()
        try loop.registerFiles(count: 4)
        try loop.registerFile(FileDescriptor(listening), at: 0)
        let client = connected(to: port)
        let descriptors = OpenDescriptors.current()
        let slot = try perform(.acceptDirect(FileDescriptor(listening)))
        if loop.backendKind == .ioUring {
            XCTAssertEqual(OpenDescriptors.leaked(since: descriptors), [], "the connection never entered the descriptor table")
        }
        XCTAssertTrue((1..<4).contains(slot), "a free slot (slot 0 holds the listener): \(slot)")
        let taken = Int(slot)
        XCTAssertTrue(loop.isRegisteredFileSlotTaken(taken))
        XCTAssertNil(loop.registeredFile(at: taken), "the connection has no descriptor of its own")

        // Bytes both ways through the slot.
        XCTAssertEqual(Glibc.send(client, "ping", 4, 0), 4)
        var received = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(
            try received.withUnsafeMutableBytes {
                try perform(.recv(FileDescriptor(rawValue: slot), into: $0.baseAddress, count: 16).onRegisteredFile())
            }, 4)
        XCTAssertEqual(String(decoding: received[0..<4], as: UTF8.self), "ping")
        XCTAssertEqual(try perform(.send(FileDescriptor(rawValue: slot), from: staged("pong"), count: 4).onRegisteredFile()), 4)
        XCTAssertEqual(peerReads(client), "pong")

        // A slot asked for, with the listener named by its own slot.
        let second = connected(to: port)
        XCTAssertEqual(try perform(LoopOperation.acceptDirect(FileDescriptor(rawValue: 0), slot: 3).onRegisteredFile()), 3)
        XCTAssertEqual(try perform(.send(FileDescriptor(rawValue: 3), from: staged("three"), count: 5).onRegisteredFile()), 5)
        XCTAssertEqual(peerReads(second), "three")

        // Emptying a slot closes its connection: the peer reads the end of the stream.
        try loop.registerFile(nil, at: taken)
        XCTAssertFalse(loop.isRegisteredFileSlotTaken(taken))
        XCTAssertEqual(peerReads(client), "")
        // So does putting another file in it.
        let (a, _) = socketPair()
        try loop.registerFile(FileDescriptor(a), at: 3)
        XCTAssertEqual(peerReads(second), "")
        XCTAssertEqual(loop.registeredFile(at: 3), FileDescriptor(a))

        // Closing the loop closes a connection still in a slot.
        let third = connected(to: port)
        XCTAssertGreaterThanOrEqual(try perform(.acceptDirect(FileDescriptor(listening))), 1)
        try loop.close()
        loop = nil
        XCTAssertEqual(peerReads(third), "")
    }

    func testDirectAcceptMisuseIsATypedErrorAndAFullTableClosesTheConnection() throws {
        let (listening, port) = listener()
        let listener = FileDescriptor(listening)
        XCTAssertEqual(try perform(.acceptDirect(listener)), -EBADF, "no table")
        try loop.registerFiles(count: 1)
        XCTAssertEqual(try perform(.acceptDirect(listener, slot: 1)), -EINVAL, "slot out of range")
        XCTAssertEqual(try perform(.acceptDirect(listener, slot: -7)), -EINVAL, "negative slot")

        let (a, b) = socketPair()
        try loop.registerFile(FileDescriptor(a), at: 0)
        let client = connected(to: port)
        XCTAssertEqual(try perform(.acceptDirect(listener)), -ENFILE, "no free slot")
        XCTAssertEqual(peerReads(client), "", "the connection that found no slot is closed")

        // A slot cannot change under an operation that names it.
        let pending = make(LoopOperation.recv(FileDescriptor(rawValue: 0), into: staged(""), count: 1).onRegisteredFile())
        let recorder = Recorder()
        try submit(pending, recorder)
        try loop.run(.noWait)
        XCTAssertThrowsError(try loop.registerFile(nil, at: 0)) {
            XCTAssertEqual($0 as? LoopError, LoopError(.resourceBusy, operation: "registerFile"))
        }
        XCTAssertEqual(Glibc.send(b, "x", 1, 0), 1)
        try loop.run()
        XCTAssertEqual(recorder.results, [1])
        try loop.registerFile(nil, at: 0)
        XCTAssertFalse(loop.isRegisteredFileSlotTaken(0))
    }
}
