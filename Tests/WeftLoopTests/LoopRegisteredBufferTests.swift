import Foundation
import Glibc
import SystemPackage
import WeftLoop
import XCTest

/// Registered buffers: reads and writes on buffers of the loop's table (io_uring's fixed buffers).
final class LoopRegisteredBufferTests: LoopTestCase {
    private static let page = 4096
    /// Three page-aligned pages; tests register some of them.
    private var memory: UnsafeMutableRawBufferPointer!

    override func setUpWithError() throws {
        try super.setUpWithError()
        memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * Self.page, alignment: Self.page)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
    }

    override func tearDownWithError() throws {
        try super.tearDownWithError()  // closes the loop, which drops its table
        memory.deallocate()
    }

    private func page(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: memory[index * Self.page..<(index + 1) * Self.page])
    }

    private func fill(_ buffer: UnsafeMutableRawBufferPointer, seed: Int) {
        for i in 0..<buffer.count { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ seed) }
    }

    func testFileWritesAndReadsThroughRegisteredBuffers() throws {
        try loop.registerBuffers([page(0), page(1)])
        XCTAssertEqual(loop.registeredBufferCount, 2)
        let path = NSTemporaryDirectory() + "weft-fixed-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = owned(open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600))
        XCTAssertGreaterThanOrEqual(fd, 0)
        unlink(path)
        let file = FileDescriptor(rawValue: fd)
        fill(page(0), seed: 3)

        let write = LoopOperation.write(file, from: page(0).baseAddress, count: Self.page, at: 8192).onRegisteredBuffer(0)
        XCTAssertEqual(write.registeredBufferIndex, 0)
        XCTAssertEqual(try perform(write), Int32(Self.page))
        // Part of it, into the middle of the other buffer.
        let into = page(1).baseAddress! + 500
        XCTAssertEqual(try perform(.read(file, into: into, count: 1000, at: 8192 + 100).onRegisteredBuffer(1)), 1000)
        XCTAssertEqual(memcmp(into, page(0).baseAddress! + 100, 1000), 0)
        XCTAssertEqual(page(1)[499], 0, "nothing written before the range")
        XCTAssertEqual(page(1)[1500], 0, "nothing written after the range")

        // What the kernel wrote, read back without the loop.
        var check = [UInt8](repeating: 0, count: Self.page)
        XCTAssertEqual(pread(fd, &check, Self.page, 8192), Self.page)
        XCTAssertTrue(check.elementsEqual(page(0)), "the file holds the registered buffer's bytes")
        // At the current position, and the end of the file.
        XCTAssertEqual(lseek(fd, 8192 + off_t(Self.page) - 10, SEEK_SET), 8192 + off_t(Self.page) - 10)
        XCTAssertEqual(try perform(.read(file, into: page(1).baseAddress, count: 100).onRegisteredBuffer(1)), 10)
        XCTAssertEqual(try perform(.read(file, into: page(1).baseAddress, count: 100).onRegisteredBuffer(1)), 0)
    }

    func testTCPBytesFlowThroughRegisteredBuffersAcrossRearms() throws {
        let (server, client) = tcpConnection()
        try loop.registerBuffers([page(0), page(1), page(2)])
        fill(page(0), seed: 11)
        let total = Self.page
        let recorder = Recorder()
        var sent = 0
        var received = 0
        // Four rounds of a quarter page each, each round a re-armed read and write.
        let read = make(.read(FileDescriptor(rawValue: server), into: page(1).baseAddress, count: 1).onRegisteredBuffer(1))
        let write = make(.write(FileDescriptor(rawValue: client), from: page(0).baseAddress, count: 1).onRegisteredBuffer(0))
        while received < total {
            if sent < total {
                write.pointee = LoopOperation.write(
                    FileDescriptor(rawValue: client), from: page(0).baseAddress! + sent, count: min(1024, total - sent)
                ).onRegisteredBuffer(0)
                try submit(write, recorder)
            }
            read.pointee = LoopOperation.read(
                FileDescriptor(rawValue: server), into: page(1).baseAddress! + received, count: total - received
            ).onRegisteredBuffer(1)
            try submit(read, recorder)
            try loop.run()
            if sent < total { sent += Int(try write.pointee.get()) }
            let got = try read.pointee.get()
            XCTAssertGreaterThan(got, 0)
            received += got
        }
        XCTAssertTrue(page(1).elementsEqual(page(0)), "every byte arrived, in order")
        XCTAssertEqual(page(2)[0], 0)
    }

    func testOnIoUringTheKernelUsesThePagesPinnedAtRegistration() throws {
        try XCTSkipUnless(loop.backendKind == .ioUring, "fixed buffers are io_uring's")
        // A page registered, then replaced in the address space by a fresh mapping: a fixed read
        // still lands in the pinned page (the old one), which a plain read would not.
        let size = Self.page
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            base != MAP_FAILED
        else { return XCTFail("mmap") }
        defer { munmap(base, size) }
        try loop.registerBuffers([UnsafeMutableRawBufferPointer(start: base, count: size)])
        XCTAssertEqual(mmap(base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), base)
        let (r, w) = pipePair()
        XCTAssertEqual(Glibc.write(w, "pinned", 6), 6)
        XCTAssertEqual(try perform(.read(FileDescriptor(rawValue: r), into: base, count: 6).onRegisteredBuffer(0)), 6)
        XCTAssertEqual(base.load(as: UInt8.self), 0, "the read went to the registered page, not the new mapping")
        try loop.unregisterBuffers()
    }

    func testRegisteredBufferMisuseIsATypedError() throws {
        let (a, b) = socketPair()
        let socket = FileDescriptor(rawValue: a)
        let base = page(0).baseAddress!
        XCTAssertEqual(try perform(.read(socket, into: base, count: 1).onRegisteredBuffer(0)), -EFAULT, "no table")
        XCTAssertThrowsError(try loop.unregisterBuffers()) {
            XCTAssertEqual($0 as? LoopError, LoopError(.noSuchAddressOrDevice, operation: "unregisterBuffers"))
        }
        for bad in [[], [UnsafeMutableRawBufferPointer(start: base, count: 0)]] {
            XCTAssertThrowsError(try loop.registerBuffers(bad)) {
                XCTAssertEqual($0 as? LoopError, LoopError(.invalidArgument, operation: "registerBuffers"))
            }
        }
        try loop.registerBuffers([page(0)])
        XCTAssertThrowsError(try loop.registerBuffers([page(1)])) {
            XCTAssertEqual($0 as? LoopError, LoopError(.resourceBusy, operation: "registerBuffers"))
        }
        XCTAssertEqual(try perform(.read(socket, into: base, count: 1).onRegisteredBuffer(1)), -EFAULT, "index out of range")
        XCTAssertEqual(try perform(.read(socket, into: base, count: 1).onRegisteredBuffer(-3)), -EFAULT, "negative index")
        XCTAssertEqual(
            try perform(.read(socket, into: page(1).baseAddress, count: 1).onRegisteredBuffer(0)), -EFAULT, "another buffer")
        XCTAssertEqual(
            try perform(.read(socket, into: base + 4000, count: 97).onRegisteredBuffer(0)), -EFAULT, "past its end")
        XCTAssertEqual(try perform(.recv(socket, into: base, count: 1).onRegisteredBuffer(0)), -EINVAL, "unsupported kind")

        // The table is busy while an operation uses it, pending or cancelled, and free after.
        let pending = make(.read(socket, into: base, count: 16).onRegisteredBuffer(0))
        let recorder = Recorder()
        try submit(pending, recorder)
        try loop.run(.noWait)
        XCTAssertTrue(pending.pointee.isPending)
        XCTAssertThrowsError(try loop.unregisterBuffers()) {
            XCTAssertEqual($0 as? LoopError, LoopError(.resourceBusy, operation: "unregisterBuffers"))
        }
        XCTAssertEqual(Glibc.write(b, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.results, [1])
        XCTAssertEqual(base.load(as: UInt8.self), UInt8(ascii: "x"))
        try submit(pending, recorder)
        try loop.run(.noWait)
        loop.cancel(pending)
        try loop.run()
        XCTAssertEqual(recorder.results, [1, -ECANCELED])
        try loop.unregisterBuffers()
        XCTAssertEqual(loop.registeredBufferCount, 0)
        XCTAssertEqual(try perform(.read(socket, into: base, count: 1).onRegisteredBuffer(0)), -EFAULT, "table gone")

        // Another table can follow.
        try loop.registerBuffers([page(1), page(2)])
        page(2).copyBytes(from: "after".utf8)
        XCTAssertEqual(try perform(.write(FileDescriptor(rawValue: b), from: page(2).baseAddress, count: 5).onRegisteredBuffer(1)), 5)
        XCTAssertEqual(try perform(.read(socket, into: page(1).baseAddress, count: 5).onRegisteredBuffer(0)), 5)
        XCTAssertEqual(String(decoding: page(1)[0..<5], as: UTF8.self), "after")

        try loop.close()
        XCTAssertThrowsError(try loop.registerBuffers([page(0)])) {
            XCTAssertEqual($0 as? LoopError, LoopError(.badFileDescriptor, operation: "registerBuffers"))
        }
        loop = nil
    }
}
