import SystemPackage
import WeftLoop

#if canImport(Glibc)
    import Glibc
#endif

/// `WeftBench serve-loop-echo --multishot ...`: the same echo service as ``serveLoopEcho(_:)``, built
/// on multishot operations: one multishot accept for the listener, and per connection one multishot
/// receive into a shared buffer ring (no buffer tied to an idle connection) plus one send operation
/// that echoes straight from the ring buffer, which goes back to the ring when the send is done.
func serveLoopMultishotEcho(loop: Loop, listener: Int32) throws {
    let server = try MultishotEchoServer(loop: loop, listener: listener)
    try server.acceptAll()
    try loop.run(.untilDone)
}

/// Buffers in the shared ring: above the benchmark's thousand connections, each holding at most a
/// few buffers (one message in flight in a closed loop, sometimes split in two segments).
private let ringBufferCount = 4096
private let ringBufferSize = 2048
/// Received buffers a connection may hold while its send is busy.
private let queueCapacity = 8

/// One connection: its armed receive, its send, and the ring buffers waiting to be echoed.
private struct MultishotConnection {
    var receive: LoopOperation
    var send: LoopOperation
    let fd: Int32
    unowned(unsafe) let server: MultishotEchoServer
    /// Held buffers in arrival order: (index, length) pairs in a small circular queue.
    var queue:
        (
            (Int32, Int32), (Int32, Int32), (Int32, Int32), (Int32, Int32), (Int32, Int32), (Int32, Int32),
            (Int32, Int32), (Int32, Int32)
        ) = ((0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0))
    var queueHead = 0
    var queued = 0
    var sent = 0
    var sending = false
    var receiving = false
    /// The receive ended with ENOBUFS: re-arm it once buffers come back.
    var rearm = false
    /// The peer is gone or an operation failed: close once both operations are idle.
    var closing = false
}

private let receiveOffset = MemoryLayout<MultishotConnection>.offset(of: \MultishotConnection.receive)!
private let sendOffset = MemoryLayout<MultishotConnection>.offset(of: \MultishotConnection.send)!

private final class MultishotEchoServer {
    let loop: Loop
    let listener: Int32
    let ring: LoopBufferRing
    let acceptOperation: UnsafeMutablePointer<LoopOperation>
    /// Connections whose receive ended with ENOBUFS while they held no buffer: each is re-armed
    /// when a buffer comes back (at once, it would only end with ENOBUFS again).
    private var waitingForBuffer: [UnsafeMutablePointer<MultishotConnection>] = []

    init(loop: Loop, listener: Int32) throws {
        self.loop = loop
        self.listener = listener
        waitingForBuffer.reserveCapacity(ringBufferCount)
        ring = try LoopBufferRing(loop: loop, count: ringBufferCount, size: ringBufferSize)
        acceptOperation = .allocate(capacity: 1)
        acceptOperation.initialize(to: .acceptMultishot(FileDescriptor(rawValue: listener)))
    }

    func acceptAll() throws(LoopError) {
        acceptOperation.pointee = .acceptMultishot(FileDescriptor(rawValue: listener))
        try loop.submit(
            acceptOperation,
            callback: { raw, context in
                let server = Unmanaged<MultishotEchoServer>.fromOpaque(context!).takeUnretainedValue()
                server.accepted(more: LoopOperation.pointer(raw).pointee.hasMore)
            }, context: Unmanaged.passUnretained(self).toOpaque())
    }

    private func accepted(more: Bool) {
        let fd = acceptOperation.pointee.result
        if fd >= 0 {
            let connection = UnsafeMutablePointer<MultishotConnection>.allocate(capacity: 1)
            connection.initialize(to: MultishotConnection(receive: .nop(), send: .nop(), fd: fd, server: self))
            receive(connection)
        } else if fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED && fd != -EMFILE {
            fail(acceptOperation.pointee.error.map { "\($0)" } ?? "acceptMultishot")
        }
        if !more {
            do { try acceptAll() } catch { fail("\(error)") }
        }
    }

    private static func receiveOperation(_ c: UnsafeMutablePointer<MultishotConnection>) -> UnsafeMutablePointer<
        LoopOperation
    > {
        (UnsafeMutableRawPointer(c) + receiveOffset).assumingMemoryBound(to: LoopOperation.self)
    }

    private static func sendOperation(_ c: UnsafeMutablePointer<MultishotConnection>) -> UnsafeMutablePointer<
        LoopOperation
    > {
        (UnsafeMutableRawPointer(c) + sendOffset).assumingMemoryBound(to: LoopOperation.self)
    }

    private func receive(_ connection: UnsafeMutablePointer<MultishotConnection>) {
        connection.pointee.receive = .recvMultishot(FileDescriptor(rawValue: connection.pointee.fd), ring: ring)
        connection.pointee.receiving = true
        connection.pointee.rearm = false
        do {
            try loop.submit(
                Self.receiveOperation(connection),
                callback: { raw, context in
                    let connection = context!.assumingMemoryBound(to: MultishotConnection.self)
                    connection.pointee.server.received(connection, LoopOperation.pointer(raw))
                }, context: UnsafeMutableRawPointer(connection))
        } catch {
            fail("\(error)")
        }
    }

    private func received(
        _ connection: UnsafeMutablePointer<MultishotConnection>, _ op: UnsafeMutablePointer<LoopOperation>
    ) {
        if let index = op.pointee.bufferIndex {
            if connection.pointee.queued == queueCapacity || connection.pointee.closing {
                release(index)
                connection.pointee.closing = true
            } else {
                enqueue(connection, Int32(index), op.pointee.result)
                if !connection.pointee.sending { sendNext(connection) }
            }
        }
        if op.pointee.hasMore { return }
        connection.pointee.receiving = false
        if op.pointee.result == -ENOBUFS && !connection.pointee.closing {
            // Buffers come back as sends finish: this connection's last send re-arms the receive, or,
            // when it holds none, the next buffer any connection gives back.
            if connection.pointee.sending { connection.pointee.rearm = true } else { waitingForBuffer.append(connection) }
            return
        }
        if op.pointee.result <= 0 { connection.pointee.closing = true }
        closeIfIdle(connection)
    }

    private func enqueue(_ connection: UnsafeMutablePointer<MultishotConnection>, _ index: Int32, _ length: Int32) {
        let slot = (connection.pointee.queueHead + connection.pointee.queued) % queueCapacity
        withUnsafeMutableBytes(of: &connection.pointee.queue) {
            $0.baseAddress!.assumingMemoryBound(to: (Int32, Int32).self)[slot] = (index, length)
        }
        connection.pointee.queued += 1
    }

    private func front(_ connection: UnsafeMutablePointer<MultishotConnection>) -> (Int32, Int32) {
        withUnsafeBytes(of: &connection.pointee.queue) {
            $0.baseAddress!.assumingMemoryBound(to: (Int32, Int32).self)[connection.pointee.queueHead]
        }
    }

    private func sendNext(_ connection: UnsafeMutablePointer<MultishotConnection>) {
        let (index, length) = front(connection)
        let start = ring.buffer(Int(index))! + connection.pointee.sent
        connection.pointee.send = .send(
            FileDescriptor(rawValue: connection.pointee.fd), from: start, count: Int(length) - connection.pointee.sent)
        connection.pointee.sending = true
        do {
            try loop.submit(
                Self.sendOperation(connection),
                callback: { raw, context in
                    let connection = context!.assumingMemoryBound(to: MultishotConnection.self)
                    connection.pointee.server.sentSome(connection, LoopOperation.pointer(raw).pointee.result)
                }, context: UnsafeMutableRawPointer(connection))
        } catch {
            fail("\(error)")
        }
    }

    private func sentSome(_ connection: UnsafeMutablePointer<MultishotConnection>, _ result: Int32) {
        connection.pointee.sending = false
        if result < 0 {
            connection.pointee.closing = true
            dropQueue(connection)
            if connection.pointee.receiving { loop.cancel(Self.receiveOperation(connection)) }
            closeIfIdle(connection)
            return
        }
        connection.pointee.sent += Int(result)
        let (index, length) = front(connection)
        if connection.pointee.sent < Int(length) {
            sendNext(connection)
            return
        }
        release(Int(index))
        connection.pointee.sent = 0
        connection.pointee.queueHead = (connection.pointee.queueHead + 1) % queueCapacity
        connection.pointee.queued -= 1
        if connection.pointee.queued > 0 {
            sendNext(connection)
        } else if connection.pointee.rearm {
            receive(connection)
        } else {
            closeIfIdle(connection)
        }
    }

    /// Gives a buffer back to the ring and re-arms a connection that waits for one.
    private func release(_ index: Int) {
        try? ring.release(index)
        if let waiting = waitingForBuffer.popLast() { receive(waiting) }
    }

    private func dropQueue(_ connection: UnsafeMutablePointer<MultishotConnection>) {
        while connection.pointee.queued > 0 {
            release(Int(front(connection).0))
            connection.pointee.queueHead = (connection.pointee.queueHead + 1) % queueCapacity
            connection.pointee.queued -= 1
        }
    }

    /// Closes with close(2), as the C servers do, once neither operation is pending.
    private func closeIfIdle(_ connection: UnsafeMutablePointer<MultishotConnection>) {
        guard connection.pointee.closing, !connection.pointee.sending, !connection.pointee.receiving else { return }
        dropQueue(connection)
        let fd = connection.pointee.fd
        loop.forget(FileDescriptor(rawValue: fd))
        _ = Glibc.close(fd)
        connection.deinitialize(count: 1)
        connection.deallocate()
    }

    private func fail(_ message: String) -> Never {
        var text = "serve-loop-echo --multishot: \(message)\n"
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        exit(1)
    }
}
