import Foundation
import Glibc
import SystemPackage
import WeftLoop
import WeftTestSupport
import XCTest

/// Collects the results of the callbacks given it as context.
final class Recorder {
    var results: [Int32] = []
    var kinds: [LoopOperation.Kind] = []
    var rearm = 0
    weak var loop: Loop?

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static let callback: LoopCallback = { raw, context in
        let recorder = Unmanaged<Recorder>.fromOpaque(context!).takeUnretainedValue()
        let op = LoopOperation.pointer(raw)
        recorder.results.append(op.pointee.result)
        recorder.kinds.append(op.pointee.kind)
    }

    /// Re-submits the operation from its own callback while `rearm` is positive.
    static let rearming: LoopCallback = { raw, context in
        let recorder = Unmanaged<Recorder>.fromOpaque(context!).takeUnretainedValue()
        let op = LoopOperation.pointer(raw)
        recorder.results.append(op.pointee.result)
        if recorder.rearm > 0 {
            recorder.rearm -= 1
            try? recorder.loop?.submit(op, callback: Recorder.rearming, context: context)
        }
    }
}

/// The base of every loop test: a loop on the backend `WEFT_BACKEND` selects, and checks after each
/// test that no operation is pending and no descriptor leaked.
class LoopTestCase: XCTestCase {
    var loop: Loop!
    private var descriptorsBefore: Set<Int32> = []
    private var allocated: [UnsafeMutablePointer<LoopOperation>] = []
    private var closeAfter: [Int32] = []
    private var keptAlive: [AnyObject] = []

    override func setUpWithError() throws {
        descriptorsBefore = OpenDescriptors.current()
        loop = try Loop()
    }

    override func tearDownWithError() throws {
        if let loop {
            XCTAssertEqual(loop.pendingCount, 0, "operations still pending after the test")
            try loop.close()
        }
        loop = nil
        keptAlive = []
        for op in allocated {
            op.deinitialize(count: 1)
            op.deallocate()
        }
        allocated = []
        for fd in closeAfter { Glibc.close(fd) }
        closeAfter = []
        let leaked = OpenDescriptors.leaked(since: descriptorsBefore)
        XCTAssertTrue(leaked.isEmpty, "descriptors leaked: \(leaked)")
    }

    /// Places an operation in memory that lives until the end of the test.
    func make(_ value: LoopOperation) -> UnsafeMutablePointer<LoopOperation> {
        let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
        op.initialize(to: value)
        allocated.append(op)
        return op
    }

    /// Keeps a callback's context alive until the loop has closed at the end of the test (a test
    /// that fails with operations pending has their callbacks run then).
    func keepAlive(_ object: AnyObject) {
        keptAlive.append(object)
    }

    /// Closes the descriptor at the end of the test.
    func owned(_ fd: Int32) -> Int32 {
        closeAfter.append(fd)
        return fd
    }

    func disown(_ fd: Int32) {
        closeAfter.removeAll { $0 == fd }
    }

    func submit(_ op: UnsafeMutablePointer<LoopOperation>, _ recorder: Recorder) throws {
        try loop.submit(op, callback: Recorder.callback, context: recorder.context)
    }

    /// Runs one operation to completion and returns its raw result.
    func perform(_ value: LoopOperation) throws -> Int32 {
        let op = make(value)
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results.count, 1)
        return recorder.results.first ?? Int32.min
    }

    func socketPair(type: Int32 = Int32(SOCK_STREAM.rawValue)) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &fds), 0)
        return (owned(fds[0]), owned(fds[1]))
    }

    func pipePair() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        return (owned(fds[0]), owned(fds[1]))
    }

    /// A listening TCP socket on 127.0.0.1 and its port.
    func listener() -> (Int32, UInt16) {
        let fd = owned(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                XCTAssertEqual(Glibc.bind(fd, $0, length), 0)
                XCTAssertEqual(getsockname(fd, $0, &length), 0)
            }
        }
        XCTAssertEqual(Glibc.listen(fd, 64), 0)
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A TCP socket connected to 127.0.0.1:`port` (the listener's backlog completes the connection
    /// before anyone accepts it), closed at the end of the test.
    func connected(to port: UInt16) -> Int32 {
        let fd = owned(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        var address = Self.loopback(port: port)
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(r, 0, "connect")
        return fd
    }

    /// A loopback TCP connection: the loop's end (accepted) and the peer's (a blocking client).
    func tcpConnection() -> (local: Int32, peer: Int32) {
        let (server, port) = listener()
        let peer = connected(to: port)
        let local = owned(Glibc.accept(server, nil, nil))
        XCTAssertGreaterThanOrEqual(local, 0)
        return (local, peer)
    }

    /// Receives on a blocking descriptor, giving up after 10 s so a broken test fails instead of
    /// hanging: the byte count, 0 at end of stream, -errno on an error, or nil when nothing came.
    func receive(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Int? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&entry, 1, 10_000) == 1 else { return nil }
        let n = Glibc.recv(fd, buffer, count, 0)
        return n < 0 ? -Int(errno) : n
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }
}

extension FileDescriptor {
    init(_ fd: Int32) { self.init(rawValue: fd) }
}
