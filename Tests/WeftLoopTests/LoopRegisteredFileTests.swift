import Glibc
import SystemPackage
import WeftLoop
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
        try loop.registerFile(nil, at: 1)
        XCTAssertNil(loop.registeredFile(at: 1))
        XCTAssertEqual(
            try perform(LoopOperation.recv(FileDescriptor(rawValue: 1), into: &byte, count: 1).onRegisteredFile()),
            -EBADF, "emptied slot")
    }
}
