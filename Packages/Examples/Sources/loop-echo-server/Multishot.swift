// The `--multishot` flavour of the echo server: one multishot accept serves every connection, and
// each connection has one multishot receive into a buffer ring shared by all connections (no
// buffer is tied to an idle connection) plus one send that echoes straight from the ring's buffers.
// A buffer goes back to the ring once its bytes are sent; when every buffer is out, a receive ends
// with ENOBUFS and is re-armed as soon as a buffer comes back: its own connection's, once it has
// sent what it holds, or another connection's when it holds none (re-arming at once would only end
// with ENOBUFS again while the data waits in the socket).
import Glibc
import SystemPackage
import WeftLoop

/// The connections whose receive ended with ENOBUFS while they held no buffer: each is re-armed
/// when some connection gives a buffer back.
final class BufferWaiters {
    var connections: [MultishotConnection] = []

    /// A buffer came back to the ring: re-arm the connection that waited longest.
    func bufferReleased() {
        if !connections.isEmpty { connections.removeFirst().receive() }
    }
}

/// One connection: its armed receive, its send, and the ring buffers waiting to be echoed.
final class MultishotConnection {
    let fd: FileDescriptor
    let loop: Loop
    let ring: LoopBufferRing
    let waiters: BufferWaiters
    let receiveOperation = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
    let sendOperation = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
    /// Received buffers (index, byte count) in arrival order; the first one is being sent.
    var queue: [(index: Int, count: Int)] = []
    var sent = 0
    var receiving = false
    var sending = false
    /// The receive ended with ENOBUFS: submit it again once this connection gave buffers back.
    var rearm = false
    /// The peer is gone or a call failed: close once neither operation is pending.
    var closing = false

    init(fd: FileDescriptor, loop: Loop, ring: LoopBufferRing, waiters: BufferWaiters) {
        self.fd = fd
        self.loop = loop
        self.ring = ring
        self.waiters = waiters
        receiveOperation.initialize(to: .nop())
        sendOperation.initialize(to: .nop())
        queue.reserveCapacity(ring.count)
    }

    deinit {
        receiveOperation.deallocate()
        sendOperation.deallocate()
    }

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ context: UnsafeMutableRawPointer?) -> MultishotConnection {
        Unmanaged<MultishotConnection>.fromOpaque(context!).takeUnretainedValue()
    }

    func receive() {
        receiveOperation.initialize(to: .recvMultishot(fd, ring: ring))
        receiving = true
        rearm = false
        do {
            try loop.submit(receiveOperation, callback: MultishotConnection.received, context: context)
        } catch {
            print("echo: \(error)")
            receiving = false
            closing = true
        }
    }

    static let received: LoopCallback = { raw, context in
        let connection = MultishotConnection.from(context)
        let op = LoopOperation.pointer(raw)
        if let index = op.pointee.bufferIndex {
            connection.queue.append((index, Int(op.pointee.result)))
            if !connection.sending { connection.sendFront() }
        }
        if op.pointee.hasMore { return }
        // The final callback: the receive is no longer armed.
        connection.receiving = false
        if op.pointee.result == -ENOBUFS {
            if connection.sending { connection.rearm = true } else { connection.waiters.connections.append(connection) }
            return
        }
        connection.closing = true
        connection.closeIfIdle()
    }

    func sendFront() {
        let (index, count) = queue[0]
        sendOperation.initialize(to: .send(fd, from: ring.buffer(index)! + sent, count: count - sent))
        sending = true
        do {
            try loop.submit(sendOperation, callback: MultishotConnection.didSend, context: context)
        } catch {
            print("echo: \(error)")
            sending = false
            closing = true
        }
    }

    static let didSend: LoopCallback = { raw, context in
        let connection = MultishotConnection.from(context)
        let result = LoopOperation.pointer(raw).pointee.result
        connection.sending = false
        guard result > 0 else {
            connection.closing = true
            if connection.receiving { connection.loop.cancel(connection.receiveOperation) }
            return connection.closeIfIdle()
        }
        connection.sent += Int(result)
        if connection.sent < connection.queue[0].count { return connection.sendFront() }
        try? connection.ring.release(connection.queue.removeFirst().index)
        connection.waiters.bufferReleased()
        connection.sent = 0
        if !connection.queue.isEmpty {
            connection.sendFront()
        } else if connection.rearm {
            connection.receive()
        } else {
            connection.closeIfIdle()
        }
    }

    /// Gives the held buffers back and closes the socket through the loop once nothing is pending.
    func closeIfIdle() {
        guard closing, !receiving, !sending else { return }
        for held in queue {
            try? ring.release(held.index)
            waiters.bufferReleased()
        }
        queue.removeAll(keepingCapacity: true)
        sendOperation.initialize(to: .close(fd))
        do {
            try loop.submit(sendOperation, callback: MultishotConnection.closed, context: context)
        } catch {
            print("echo: \(error)")
        }
    }

    static let closed: LoopCallback = { _, context in
        // The connection's one retain, taken when it was accepted, ends here.
        Unmanaged<MultishotConnection>.fromOpaque(context!).release()
    }
}

/// The listener's multishot accept: one submission, one callback per connection; submitted again
/// only if it ends (an error, or the kernel giving up on it).
final class MultishotServer {
    let loop: Loop
    let listener: FileDescriptor
    let ring: LoopBufferRing
    let waiters = BufferWaiters()
    let accept = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)

    init(loop: Loop, listener: FileDescriptor) throws {
        self.loop = loop
        self.listener = listener
        // 16 buffers of 4 KiB shared by every connection, created on the loop's thread: few enough
        // that a handful of busy clients runs the ring dry, so the ENOBUFS path is exercised too.
        ring = try LoopBufferRing(loop: loop, count: 16, size: 4096)
        accept.initialize(to: .acceptMultishot(listener))
    }

    func arm() throws {
        accept.initialize(to: .acceptMultishot(listener))
        try loop.submit(accept, callback: MultishotServer.accepted, context: Unmanaged.passUnretained(self).toOpaque())
    }

    static let accepted: LoopCallback = { raw, context in
        let server = Unmanaged<MultishotServer>.fromOpaque(context!).takeUnretainedValue()
        let op = LoopOperation.pointer(raw)
        let result = op.pointee.result
        if result >= 0 {
            let connection = MultishotConnection(
                fd: FileDescriptor(rawValue: result), loop: server.loop, ring: server.ring, waiters: server.waiters)
            _ = Unmanaged.passRetained(connection)
            connection.receive()
        } else {
            print("echo: accept: \(Errno(rawValue: -result))")
        }
        if !op.pointee.hasMore {
            do { try server.arm() } catch { print("echo: \(error)") }
        }
    }
}
