import Foundation
import Glibc
import SystemPackage
import WeftLoop
import XCTest

final class LoopFileTests: LoopTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        directory = NSTemporaryDirectory() + "weft-loop-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(Glibc.mkdir(directory, 0o755), 0)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
        try super.tearDownWithError()
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Pool work that blocks until a byte arrives on the pipe whose read end `argument` points to.
    private static let gated: LoopWork = { argument in
        var byte: UInt8 = 0
        return Int32(Glibc.read(argument!.load(as: Int32.self), &byte, 1))
    }

    /// A file of `count` copies of `byte`, opened read-write; returns its descriptor.
    private func filled(_ name: String, with byte: UInt8, count: Int) -> Int32 {
        let fd = Glibc.open(path(name), O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let bytes = [UInt8](repeating: byte, count: count)
        XCTAssertEqual(Glibc.write(fd, bytes, count), count)
        return fd
    }

    private func size(_ name: String) -> Int {
        var info = stat()
        XCTAssertEqual(stat(path(name), &info), 0)
        return Int(info.st_size)
    }

    /// A loop whose one pool thread is held by work that waits for a byte on `gate.write`, so that
    /// pool operations submitted next stay queued until the test writes it. The byte is also
    /// written before tear-down (which closes the loop, waiting for the work), should the test stop
    /// early; `gate.argument` is freed after that.
    private func loopWithBusyPool(_ recorder: Recorder) throws -> (read: Int32, write: Int32) {
        try loop.close()
        loop = try Loop(options: .init(threadPoolSize: 1))
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        let gate = (read: fds[0], write: fds[1])
        let argument = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        argument.initialize(to: gate.read)
        addTeardownBlock { [weak self] in
            _ = Glibc.write(gate.write, "x", 1)
            try? self?.loop?.close()
            argument.deallocate()
            Glibc.close(gate.read)
            Glibc.close(gate.write)
        }
        try submit(make(.work(Self.gated, argument: argument)), recorder)
        return gate
    }

    func testClosingADescriptorThatPoolOperationsNameKeepsItsNumberUntilTheyEnd() throws {
        // Before: the close freed the number at once, a file opened next took it, and the queued
        // ftruncate (a pool operation on both backends) truncated that other file.
        let recorder = Recorder()
        let gate = try loopWithBusyPool(recorder)
        let first = filled("first", with: 0x61, count: 100)
        try submit(make(.ftruncate(FileDescriptor(rawValue: first), length: 10)), recorder)
        try submit(make(.close(FileDescriptor(rawValue: first))), recorder)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.kinds, [.close], "the close waited")
        XCTAssertEqual(recorder.results, [0])
        let second = owned(filled("second", with: 0x62, count: 100))
        XCTAssertNotEqual(second, first, "the number was freed while a pool operation named it")
        XCTAssertEqual(Glibc.write(gate.write, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.kinds, [.close, .work, .ftruncate])
        XCTAssertEqual(recorder.results, [0, 1, -EBADF])
        XCTAssertEqual(size("first"), 100)
        XCTAssertEqual(size("second"), 100)
        XCTAssertEqual(fcntl(first, F_GETFD), -1, "the placeholder outlived the pool operations")
    }

    func testARetiredNumberRefusesPoolOperationsAndASecondClose() throws {
        let recorder = Recorder()
        let gate = try loopWithBusyPool(recorder)
        let fd = filled("file", with: 0x61, count: 100)
        try submit(make(.ftruncate(FileDescriptor(rawValue: fd), length: 10)), recorder)
        try submit(make(.close(FileDescriptor(rawValue: fd))), recorder)
        try submit(make(.ftruncate(FileDescriptor(rawValue: fd), length: 20)), recorder)
        try submit(make(.close(FileDescriptor(rawValue: fd))), recorder)
        try loop.run(.noWait)
        XCTAssertEqual(recorder.kinds, [.close, .ftruncate, .close])
        XCTAssertEqual(recorder.results, [0, -EBADF, -EBADF])
        // Not closed behind the pool's back: a read of the number fails, as on a closed descriptor.
        var byte: UInt8 = 0
        XCTAssertEqual(Glibc.read(fd, &byte, 1), -1)
        XCTAssertEqual(errno, EBADF)
        XCTAssertEqual(Glibc.write(gate.write, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.kinds, [.close, .ftruncate, .close, .work, .ftruncate])
        XCTAssertEqual(recorder.results, [0, -EBADF, -EBADF, 1, -EBADF])
        XCTAssertEqual(size("file"), 100)
        XCTAssertEqual(fcntl(fd, F_GETFD), -1)
        // Nothing is held once the pool is done: a close of a number no pool operation names is a
        // plain close.
        let again = owned(filled("again", with: 0x61, count: 10))
        XCTAssertEqual(try perform(.ftruncate(FileDescriptor(rawValue: again), length: 5)), 0)
        disown(again)
        XCTAssertEqual(try perform(.close(FileDescriptor(rawValue: again))), 0)
        XCTAssertEqual(fcntl(again, F_GETFD), -1)
        XCTAssertEqual(size("again"), 5)
    }

    func testOpenWriteReadStatSyncTruncateClose() throws {
        let file = path("data")
        let fd = try file.withCString { try perform(.openat(path: $0, flags: O_CREAT | O_RDWR | O_CLOEXEC, mode: 0o600)) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        let descriptor = FileDescriptor(owned(fd))
        var text: [UInt8] = Array("positional file io".utf8)
        XCTAssertEqual(try text.withUnsafeMutableBytes { try perform(.write(descriptor, from: $0.baseAddress, count: $0.count, at: 0)) }, 18)
        XCTAssertEqual(try text.withUnsafeMutableBytes { try perform(.write(descriptor, from: $0.baseAddress, count: 4, at: 100)) }, 4)
        var back = [UInt8](repeating: 0, count: 10)
        XCTAssertEqual(try back.withUnsafeMutableBytes { try perform(.read(descriptor, into: $0.baseAddress, count: 7, at: 11)) }, 7)
        XCTAssertEqual(String(decoding: back[0..<7], as: UTF8.self), "file io")
        XCTAssertEqual(try perform(.fsync(descriptor)), 0)
        XCTAssertEqual(try perform(.fsync(descriptor, dataOnly: true)), 0)

        let status = UnsafeMutableRawPointer.allocate(byteCount: LoopOperation.statxSize, alignment: 8)
        defer { status.deallocate() }
        XCTAssertEqual(try file.withCString { try perform(.statx(path: $0, into: status)) }, 0)
        var info = FileStatus(statx: status)
        XCTAssertEqual(info.size, 104)
        XCTAssertTrue(info.isRegularFile)
        XCTAssertEqual(info.mode & 0o777, 0o600)

        XCTAssertEqual(try perform(.ftruncate(descriptor, length: 5)), 0)
        XCTAssertEqual(try perform(.fallocate(descriptor, offset: 0, length: 8192)), 0)
        XCTAssertEqual(try "".withCString { try perform(.statx(directory: descriptor, path: $0, flags: 0x1000, into: status)) }, 0)
        info = FileStatus(statx: status)
        XCTAssertEqual(info.size, 8192)
        XCTAssertGreaterThanOrEqual(info.blocks, 16)

        disown(descriptor.rawValue)
        XCTAssertEqual(try perform(.close(descriptor)), 0)
    }

    func testSequentialReadAndVectoredFileIO() throws {
        let file = path("vectored")
        let fd = owned(Glibc.open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0o644))
        var a: [UInt8] = Array("one ".utf8)
        var b: [UInt8] = Array("two".utf8)
        try a.withUnsafeMutableBytes { pa in
            try b.withUnsafeMutableBytes { pb in
                var vectors = [iovec(iov_base: pa.baseAddress, iov_len: 4), iovec(iov_base: pb.baseAddress, iov_len: 3)]
                XCTAssertEqual(try perform(.writev(FileDescriptor(fd), vectors: &vectors, count: 2)), 7)
                XCTAssertEqual(try perform(.writev(FileDescriptor(fd), vectors: &vectors, count: 2, at: 7)), 7)
            }
        }
        var c = [UInt8](repeating: 0, count: 7)
        XCTAssertEqual(try c.withUnsafeMutableBytes { pc -> Int32 in
            var vectors = [iovec(iov_base: pc.baseAddress, iov_len: 7)]
            return try perform(.readv(FileDescriptor(fd), vectors: &vectors, count: 1, at: 7))
        }, 7)
        XCTAssertEqual(String(decoding: c, as: UTF8.self), "one two")
        lseek(fd, 0, SEEK_SET)
        var d = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(try d.withUnsafeMutableBytes { try perform(.read(FileDescriptor(fd), into: $0.baseAddress, count: 64)) }, 14)
        XCTAssertEqual(try d.withUnsafeMutableBytes { try perform(.read(FileDescriptor(fd), into: $0.baseAddress, count: 64)) }, 0, "end of file")
    }

    func testDirectoryOperations() throws {
        let sub = path("sub")
        XCTAssertEqual(try sub.withCString { try perform(.mkdir($0)) }, 0)
        XCTAssertEqual(try sub.withCString { try perform(.mkdir($0)) }, -EEXIST)
        let original = path("sub/original")
        Glibc.close(Glibc.open(original, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        let renamed = path("sub/renamed")
        XCTAssertEqual(try original.withCString { o in try renamed.withCString { try perform(.rename(from: o, to: $0)) } }, 0)
        let hard = path("hard")
        XCTAssertEqual(try renamed.withCString { o in try hard.withCString { try perform(.link(o, to: $0)) } }, 0)
        let soft = path("soft")
        XCTAssertEqual(try renamed.withCString { o in try soft.withCString { try perform(.symlink(o, at: $0)) } }, 0)
        var target = [CChar](repeating: 0, count: 256)
        XCTAssertEqual(readlink(soft, &target, 255), renamed.utf8.count)
        for name in [hard, soft, renamed] {
            XCTAssertEqual(try name.withCString { try perform(.unlink($0)) }, 0)
        }
        XCTAssertEqual(try sub.withCString { try perform(.unlink($0)) }, -EISDIR)
        XCTAssertEqual(try sub.withCString { try perform(.unlink($0, flags: 0x200)) }, 0)
        XCTAssertEqual(try sub.withCString { try perform(.unlink($0, flags: 0x200)) }, -ENOENT)
    }

    func testOpenErrorsAndOpenat2() throws {
        let missing = path("missing/file")
        XCTAssertEqual(try missing.withCString { try perform(.openat(path: $0, flags: O_RDONLY)) }, -ENOENT)
        let file = path("plain")
        Glibc.close(Glibc.open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        let dir = owned(Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        var how = OpenHow(flags: UInt64(O_RDONLY | O_CLOEXEC), resolve: 0x08 /* RESOLVE_BENEATH */)
        let fd = try "plain".withCString { try perform(.openat2(directory: FileDescriptor(dir), path: $0, how: &how)) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = owned(fd)
        XCTAssertEqual(try "../escape".withCString { try perform(.openat2(directory: FileDescriptor(dir), path: $0, how: &how)) }, -EXDEV)
    }

    func testSpliceAndSendfile() throws {
        let file = path("source")
        let fd = owned(Glibc.open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0o644))
        XCTAssertEqual(Glibc.write(fd, "spliced and sent", 16), 16)
        let (r, w) = pipePair()
        XCTAssertEqual(try perform(.splice(from: FileDescriptor(fd), offset: 0, to: FileDescriptor(w), count: 7)), 7)
        var buffer = [UInt8](repeating: 0, count: 32)
        XCTAssertEqual(Glibc.read(r, &buffer, 32), 7)
        XCTAssertEqual(String(decoding: buffer[0..<7], as: UTF8.self), "spliced")
        let (a, b) = socketPair()
        XCTAssertEqual(try perform(.sendfile(from: FileDescriptor(fd), offset: 12, to: FileDescriptor(a), count: 4)), 4)
        XCTAssertEqual(Glibc.read(b, &buffer, 32), 4)
        XCTAssertEqual(String(decoding: buffer[0..<4], as: UTF8.self), "sent")
    }
}
