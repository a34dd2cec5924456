import Foundation
import Glibc
import SystemPackage
import WeftLoop
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
    private var descriptorsBefore = 0
    private var allocated: [UnsafeMutablePointer<LoopOperation>] = []
    private var closeAfter: [Int32] = []

    override func setUpWithError() throws {
        descriptorsBefore = Self.openDescriptorCount()
        loop = try Loop()
    }

    override func tearDownWithError() throws {
        if let loop {
            XCTAssertEqual(loop.pendingCount, 0, "operations still pending after the test")
            try loop.close()
        }
        loop = nil
        for op in allocated {
            op.deinitialize(count: 1)
            op.deallocate()
        }
        allocated = []
        for fd in closeAfter { Glibc.close(fd) }
        closeAfter = []
        XCTAssertEqual(Self.openDescriptorCount(), descriptorsBefore, "descriptors leaked")
    }

    static func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// Places an operation in memory that lives until the end of the test.
    func make(_ value: LoopOperation) -> UnsafeMutablePointer<LoopOperation> {
        let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
        op.initialize(to: value)
        allocated.append(op)
        return op
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
