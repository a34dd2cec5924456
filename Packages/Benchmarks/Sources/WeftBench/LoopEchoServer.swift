import SystemPackage
import WeftLoop

#if canImport(Glibc)
import Glibc
#endif

/// `WeftBench serve-loop-echo --backend io_uring|epoll [--multishot] --port P`: the WeftLoop callback echo server
/// the `loop` suite measures. It does what the C baselines do, through the loop: one accept in flight,
/// re-armed on completion; per connection one operation that alternates between a recv into a 4 KiB
/// buffer and a send of what arrived (re-sent until all is out). Connection memory is allocated at
/// accept and freed at close, so the steady state allocates nothing.
func serveLoopEcho(_ arguments: [String]) throws {
    let port = try ServerProcess.port(in: arguments)
    let name = ServerProcess.option("backend", in: arguments) ?? "io_uring"
    guard let backend = LoopBackendKind(rawValue: name), backend != .scripted else {
        throw BenchError("--backend must be io_uring or epoll, not \(name)")
    }
    let loop = try Loop(options: Loop.Options(backend: backend, entries: 4096))
    let listener = try Network.listen(port: port, nonBlocking: false)
    if arguments.contains("--multishot") {
        try serveLoopMultishotEcho(loop: loop, listener: listener)
        return
    }
    let server = LoopEchoServer(loop: loop, listener: listener)
    try server.acceptNext()
    // Runs until the driver kills the process: the accept is always pending.
    try loop.run(.untilDone)
}

/// One connection: its operation, which is a recv or a send at any time, and its buffer.
private struct EchoConnection {
    var operation: LoopOperation
    let fd: Int32
    var length = 0
    var sent = 0
    let buffer: UnsafeMutableRawPointer
    unowned(unsafe) let server: LoopEchoServer
}

private let echoBufferSize = 4096
private let operationOffset = MemoryLayout<EchoConnection>.offset(of: \EchoConnection.operation)!

private final class LoopEchoServer {
    let loop: Loop
    let listener: Int32
    let acceptOperation: UnsafeMutablePointer<LoopOperation>

    init(loop: Loop, listener: Int32) {
        self.loop = loop
        self.listener = listener
        acceptOperation = .allocate(capacity: 1)
        acceptOperation.initialize(to: .accept(FileDescriptor(rawValue: listener)))
    }

    func acceptNext() throws(LoopError) {
        acceptOperation.pointee = .accept(FileDescriptor(rawValue: listener))
        try loop.submit(acceptOperation, callback: { _, context in
            Unmanaged<LoopEchoServer>.fromOpaque(context!).takeUnretainedValue().accepted()
        }, context: Unmanaged.passUnretained(self).toOpaque())
    }

    private func accepted() {
        let fd = acceptOperation.pointee.result
        if fd >= 0 {
            let connection = UnsafeMutablePointer<EchoConnection>.allocate(capacity: 1)
            connection.initialize(
                to: EchoConnection(
                    operation: .nop(), fd: fd,
                    buffer: .allocate(byteCount: echoBufferSize, alignment: 16), server: self))
            receive(connection)
        } else if fd != -EAGAIN && fd != -EINTR && fd != -ECONNABORTED && fd != -EMFILE {
            fail(acceptOperation.pointee.error.map { "\($0)" } ?? "accept")
        }
        do { try acceptNext() } catch { fail("\(error)") }
    }

    private func receive(_ connection: UnsafeMutablePointer<EchoConnection>) {
        connection.pointee.operation = .recv(
            FileDescriptor(rawValue: connection.pointee.fd), into: connection.pointee.buffer, count: echoBufferSize)
        submit(connection) { raw, context in
            let connection = context!.assumingMemoryBound(to: EchoConnection.self)
            let received = LoopOperation.pointer(raw).pointee.result
            if received <= 0 {
                connection.pointee.server.close(connection)
                return
            }
            connection.pointee.length = Int(received)
            connection.pointee.sent = 0
            connection.pointee.server.sendRest(connection)
        }
    }

    private func sendRest(_ connection: UnsafeMutablePointer<EchoConnection>) {
        connection.pointee.operation = .send(
            FileDescriptor(rawValue: connection.pointee.fd), from: connection.pointee.buffer + connection.pointee.sent,
            count: connection.pointee.length - connection.pointee.sent)
        submit(connection) { raw, context in
            let connection = context!.assumingMemoryBound(to: EchoConnection.self)
            let sent = LoopOperation.pointer(raw).pointee.result
            if sent < 0 {
                connection.pointee.server.close(connection)
                return
            }
            connection.pointee.sent += Int(sent)
            if connection.pointee.sent < connection.pointee.length {
                connection.pointee.server.sendRest(connection)
            } else {
                connection.pointee.server.receive(connection)
            }
        }
    }

    private func submit(_ connection: UnsafeMutablePointer<EchoConnection>, _ callback: LoopCallback) {
        let operation = (UnsafeMutableRawPointer(connection) + operationOffset).assumingMemoryBound(
            to: LoopOperation.self)
        do {
            try loop.submit(operation, callback: callback, context: UnsafeMutableRawPointer(connection))
        } catch {
            fail("\(error)")
        }
    }

    /// Closes with close(2), as the C servers do, after telling the loop (the epoll backend keeps
    /// descriptors registered, and the number will be reused by a later accept).
    private func close(_ connection: UnsafeMutablePointer<EchoConnection>) {
        let fd = connection.pointee.fd
        loop.forget(FileDescriptor(rawValue: fd))
        _ = Glibc.close(fd)
        connection.pointee.buffer.deallocate()
        connection.deinitialize(count: 1)
        connection.deallocate()
    }

    private func fail(_ message: String) -> Never {
        var text = "serve-loop-echo: \(message)\n"
        text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        exit(1)
    }
}
