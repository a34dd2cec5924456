import Glibc
import SystemPackage
import WeftLoop
import XCTest

final class LoopSocketTests: LoopTestCase {
    func testSocketBindListenAcceptConnectEcho() throws {
        let created = try perform(.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue)))
        XCTAssertGreaterThanOrEqual(created, 0)
        let server = owned(created)
        var any = Self.loopback(port: 0)
        XCTAssertEqual(try perform(.bind(FileDescriptor(server), address: &any, length: MemoryLayout<sockaddr_in>.size)), 0)
        XCTAssertEqual(try perform(.listen(FileDescriptor(server), backlog: 16)), 0)
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(server, $0, &length) }
        }
        var target = Self.loopback(port: UInt16(bigEndian: bound.sin_port))

        let client = owned(try perform(.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue))))
        var peer = sockaddr_in()
        let accept = make(.accept(FileDescriptor(server), address: &peer, addressCapacity: MemoryLayout<sockaddr_in>.size))
        let connect = make(.connect(FileDescriptor(client), address: &target, length: MemoryLayout<sockaddr_in>.size))
        let recorder = Recorder()
        try submit(accept, recorder)
        try submit(connect, recorder)
        try loop.run()
        XCTAssertEqual(connect.pointee.result, 0)
        let accepted = owned(Int32(try accept.pointee.get()))
        XCTAssertEqual(accept.pointee.acceptedAddressLength, MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(peer.sin_family, sa_family_t(AF_INET))

        let message: [UInt8] = Array("hello, loop".utf8)
        var received = [UInt8](repeating: 0, count: 64)
        try received.withUnsafeMutableBytes { into in
            try message.withUnsafeBytes { from in
                let recv = make(.recv(FileDescriptor(accepted), into: into.baseAddress, count: 64))
                let send = make(.send(FileDescriptor(client), from: from.baseAddress, count: from.count))
                try submit(recv, recorder)
                try submit(send, recorder)
                try loop.run()
                XCTAssertEqual(try send.pointee.get(), message.count)
                XCTAssertEqual(try recv.pointee.get(), message.count)
            }
        }
        XCTAssertEqual(Array(received[0..<message.count]), message)

        XCTAssertEqual(try perform(.shutdown(FileDescriptor(client), how: Int32(SHUT_WR))), 0)
        XCTAssertEqual(
            try received.withUnsafeMutableBytes { try perform(.recv(FileDescriptor(accepted), into: $0.baseAddress, count: 64)) }, 0,
            "end of stream after shutdown")
        disown(client)
        XCTAssertEqual(try perform(.close(FileDescriptor(client))), 0)
    }

    func testConnectRefused() throws {
        let (probe, port) = listener()
        disown(probe)
        Glibc.close(probe)
        let client = owned(socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        var target = Self.loopback(port: port)
        XCTAssertEqual(try perform(.connect(FileDescriptor(client), address: &target, length: MemoryLayout<sockaddr_in>.size)), -ECONNREFUSED)
    }

    func testAConnectToAUnixListenerWithAFullBacklogIsNeverReportedAsConnected() throws {
        // An abstract address (a leading NUL): nothing to clean up on disk.
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array("\0weft-backlog-\(getpid())".utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (i, byte) in name.enumerated() { path[i] = byte }
        }
        let length = MemoryLayout<sa_family_t>.size + name.count
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(length)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 0), 0)
        func rawConnect(_ fd: Int32) -> Int32 {
            let r = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(length)) }
            }
            return r == 0 ? 0 : -errno
        }
        // A backlog of 0 lets one connection in; the next finds it full.
        let first = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(first) }
        XCTAssertEqual(rawConnect(first), 0)
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(probe) }
        try XCTSkipUnless(rawConnect(probe) == -EAGAIN, "this kernel does not refuse a connect to a full Unix backlog")
        let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        defer { close(client) }
        let op = withUnsafePointer(to: &address) { make(.connect(FileDescriptor(rawValue: client), address: $0, length: length)) }
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        // Room again, for a backend that waits for it (io_uring's connect does).
        let accepted = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        defer { close(accepted) }
        try loop.run()
        var peer = sockaddr_un()
        var peerLength = socklen_t(MemoryLayout<sockaddr_un>.size)
        let connected = withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(client, $0, &peerLength) }
        } == 0
        // Either the backend waited for room and connected, or it reported what the kernel said.
        XCTAssertEqual(recorder.results, [connected ? 0 : -EAGAIN], "connected: \(connected)")
    }

    func testSendToClosedPeerIsAnErrorNotASignal() throws {
        let (a, b) = socketPair()
        disown(b)
        Glibc.close(b)
        var byte: UInt8 = 1
        XCTAssertEqual(try perform(.send(FileDescriptor(a), from: &byte, count: 1)), -EPIPE)
    }

    func testBadDescriptorsAreErrors() throws {
        var byte: UInt8 = 0
        XCTAssertEqual(try perform(.send(FileDescriptor(-5), from: &byte, count: 1)), -EBADF)
        XCTAssertEqual(try perform(.read(FileDescriptor(9999), into: &byte, count: 1)), -EBADF)
        XCTAssertEqual(try perform(.accept(FileDescriptor(-1))), -EBADF)
        XCTAssertEqual(try perform(.close(FileDescriptor(-1))), -EBADF)
    }

    func testBadAddressIsAnError() throws {
        let (a, b) = socketPair()
        XCTAssertEqual(Glibc.write(b, "abc", 3), 3)
        XCTAssertEqual(try perform(.recv(FileDescriptor(a), into: UnsafeMutableRawPointer(bitPattern: 8), count: 16)), -EFAULT)
    }

    func testPendingRecvCompletesWhenDataArrives() throws {
        let (a, b) = socketPair()
        var buffer = [UInt8](repeating: 0, count: 4)
        let recorder = Recorder()
        try buffer.withUnsafeMutableBytes { bytes in
            let op = make(.recv(FileDescriptor(a), into: bytes.baseAddress, count: 4))
            try submit(op, recorder)
            try loop.run(.noWait)
            XCTAssertTrue(recorder.results.isEmpty)
            XCTAssertEqual(Glibc.write(b, "abcdef", 6), 6)
            try loop.run()
        }
        XCTAssertEqual(recorder.results, [4], "a short buffer gets a partial read")
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), "abcd")
    }

    /// Streams 4 MiB through a socket pair with small kernel buffers, so sends come back short and
    /// both sides keep waiting for readiness; each callback re-arms its operation for the rest.
    func testLargeTransferWithShortSendsAndReceives() throws {
        let (a, b) = socketPair()
        var small: Int32 = 4096
        setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, 4)
        setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, 4)
        let total = 4 << 20
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        let sink = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 8)
        defer {
            source.deallocate()
            sink.deallocate()
        }
        for i in 0..<total { source[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        final class Transfer {
            var sent = 0
            var received = 0
            var sends = 0
            var receives = 0
            var failure: Int32 = 0
            var onSend: LoopCallback?
            var onReceive: LoopCallback?
            let total: Int
            let source: UnsafeMutableRawBufferPointer
            let sink: UnsafeMutableRawBufferPointer
            let a: Int32
            let b: Int32
            unowned let loop: Loop
            init(loop: Loop, total: Int, source: UnsafeMutableRawBufferPointer, sink: UnsafeMutableRawBufferPointer, a: Int32, b: Int32) {
                self.loop = loop
                self.total = total
                self.source = source
                self.sink = sink
                self.a = a
                self.b = b
            }
        }
        let transfer = Transfer(loop: loop, total: total, source: source, sink: sink, a: a, b: b)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        let onSend: LoopCallback = { raw, context in
            let t = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let op = LoopOperation.pointer(raw)
            guard op.pointee.result > 0 else { t.failure = op.pointee.result; return }
            t.sent += Int(op.pointee.result)
            t.sends += 1
            if t.sent < t.total {
                op.initialize(to: .send(FileDescriptor(t.a), from: t.source.baseAddress! + t.sent, count: t.total - t.sent))
                try? t.loop.submit(op, callback: t.onSend!, context: context)
            }
        }
        let onReceive: LoopCallback = { raw, context in
            let t = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
            let op = LoopOperation.pointer(raw)
            guard op.pointee.result > 0 else { t.failure = op.pointee.result; return }
            t.received += Int(op.pointee.result)
            t.receives += 1
            if t.received < t.total {
                op.initialize(to: .recv(FileDescriptor(t.b), into: t.sink.baseAddress! + t.received, count: min(65536, t.total - t.received)))
                try? t.loop.submit(op, callback: t.onReceive!, context: context)
            }
        }
        transfer.onSend = onSend
        transfer.onReceive = onReceive
        let send = make(.send(FileDescriptor(a), from: source.baseAddress, count: total))
        let recv = make(.recv(FileDescriptor(b), into: sink.baseAddress, count: 65536))
        try loop.submit(send, callback: onSend, context: context)
        try loop.submit(recv, callback: onReceive, context: context)
        try loop.run()
        XCTAssertEqual(transfer.failure, 0)
        XCTAssertEqual(transfer.sent, total)
        XCTAssertEqual(transfer.received, total)
        XCTAssertGreaterThan(transfer.receives, 1)
        XCTAssertEqual(memcmp(source.baseAddress!, sink.baseAddress!, total), 0)
    }

    func testVectoredIO() throws {
        let (a, b) = socketPair()
        var one: [UInt8] = Array("abc".utf8)
        var two: [UInt8] = Array("defg".utf8)
        var out = [UInt8](repeating: 0, count: 3)
        var out2 = [UInt8](repeating: 0, count: 4)
        try one.withUnsafeMutableBytes { p1 in
            try two.withUnsafeMutableBytes { p2 in
                var vectors = [iovec(iov_base: p1.baseAddress, iov_len: 3), iovec(iov_base: p2.baseAddress, iov_len: 4)]
                XCTAssertEqual(try perform(.writev(FileDescriptor(a), vectors: &vectors, count: 2)), 7)
            }
        }
        try out.withUnsafeMutableBytes { p1 in
            try out2.withUnsafeMutableBytes { p2 in
                var vectors = [iovec(iov_base: p1.baseAddress, iov_len: 3), iovec(iov_base: p2.baseAddress, iov_len: 4)]
                XCTAssertEqual(try perform(.readv(FileDescriptor(b), vectors: &vectors, count: 2)), 7)
            }
        }
        XCTAssertEqual(out + out2, Array("abcdefg".utf8))
    }

    func testDescriptorPassingWithSendmsgAndRecvmsg() throws {
        let (a, b) = socketPair()
        let (pipeRead, pipeWrite) = pipePair()
        let controlSize = 64
        let control = UnsafeMutableRawPointer.allocate(byteCount: controlSize, alignment: 8)
        let byte = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        let iov = UnsafeMutablePointer<iovec>.allocate(capacity: 1)
        let message = UnsafeMutablePointer<msghdr>.allocate(capacity: 1)
        defer {
            control.deallocate()
            byte.deallocate()
            iov.deallocate()
            message.deallocate()
        }
        byte.pointee = 42
        iov.initialize(to: iovec(iov_base: byte, iov_len: 1))
        message.initialize(to: msghdr())
        message.pointee.msg_iov = iov
        message.pointee.msg_iovlen = 1
        message.pointee.msg_control = control
        let cmsgLength = MemoryLayout<cmsghdr>.size + MemoryLayout<Int32>.size
        message.pointee.msg_controllen = (cmsgLength + 7) & ~7
        let header = control.assumingMemoryBound(to: cmsghdr.self)
        header.pointee.cmsg_len = cmsgLength
        header.pointee.cmsg_level = SOL_SOCKET
        header.pointee.cmsg_type = Int32(SCM_RIGHTS)
        (control + MemoryLayout<cmsghdr>.size).storeBytes(of: pipeWrite, as: Int32.self)
        XCTAssertEqual(try perform(.sendmsg(FileDescriptor(a), message: message)), 1)

        memset(control, 0, controlSize)
        byte.pointee = 0
        message.pointee.msg_controllen = controlSize
        XCTAssertEqual(try perform(.recvmsg(FileDescriptor(b), message: message)), 1)
        XCTAssertEqual(byte.pointee, 42)
        XCTAssertEqual(header.pointee.cmsg_type, Int32(SCM_RIGHTS))
        let passed = owned((control + MemoryLayout<cmsghdr>.size).load(as: Int32.self))
        XCTAssertNotEqual(passed, pipeWrite)
        XCTAssertEqual(Glibc.write(passed, "z", 1), 1)
        var got: UInt8 = 0
        XCTAssertEqual(Glibc.read(pipeRead, &got, 1), 1)
        XCTAssertEqual(got, UInt8(ascii: "z"))
    }

    func testPollOnAnyDescriptor() throws {
        let (r, w) = pipePair()
        XCTAssertEqual(try perform(.poll(FileDescriptor(w), events: Int16(POLLOUT))) & Int32(POLLOUT), Int32(POLLOUT))
        let op = make(.poll(FileDescriptor(r), events: Int16(POLLIN)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        XCTAssertTrue(recorder.results.isEmpty)
        XCTAssertEqual(Glibc.write(w, "x", 1), 1)
        try loop.run()
        XCTAssertEqual(recorder.results.first.map { $0 & Int32(POLLIN) }, Int32(POLLIN))
        disown(w)
        Glibc.close(w)
        XCTAssertNotEqual(try perform(.poll(FileDescriptor(r), events: Int16(POLLIN))) & Int32(POLLHUP | POLLIN), 0)
    }

    func testPipeReadWrite() throws {
        let (r, w) = pipePair()
        var input: [UInt8] = Array("pipe data".utf8)
        var output = [UInt8](repeating: 0, count: 32)
        let recorder = Recorder()
        try output.withUnsafeMutableBytes { into in
            let read = make(.read(FileDescriptor(r), into: into.baseAddress, count: 32))
            try submit(read, recorder)
            try loop.run(.noWait)
            XCTAssertEqual(try input.withUnsafeMutableBytes { try perform(.write(FileDescriptor(w), from: $0.baseAddress, count: $0.count)) }, 9)
            try loop.run()
        }
        XCTAssertEqual(recorder.results.last, 9)
        XCTAssertEqual(Array(output[0..<9]), input)
    }
}
