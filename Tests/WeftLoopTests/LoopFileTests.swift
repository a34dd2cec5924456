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
