// A TCP echo server on WeftLoop alone: no fibers, only operations and C callbacks.
//
//   swift run loop-echo-server [--port 7000] [--backend io_uring|epoll] [--multishot]
//
// Serves on 127.0.0.1 until killed. Each connection owns two operations (receive, send) and one
// buffer, allocated once when it is accepted; every callback re-arms the next operation, so the
// steady state allocates nothing. `--multishot` serves with multishot operations and a shared
// buffer ring instead (Multishot.swift).
import ExampleSupport
import Glibc
import SystemPackage
import WeftLoop

/// Everything one connection needs, at stable addresses for as long as it is open.
final class Connection {
    let fd: FileDescriptor
    let loop: Loop
    let operation = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
    var pending = 0
    var sent = 0

    init(fd: FileDescriptor, loop: Loop) {
        self.fd = fd
        self.loop = loop
        operation.initialize(to: .nop())
    }

    deinit {
        operation.deallocate()
        buffer.deallocate()
    }

    var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func from(_ context: UnsafeMutableRawPointer?) -> Connection {
        Unmanaged<Connection>.fromOpaque(context!).takeUnretainedValue()
    }

    func receive() {
        operation.initialize(to: .recv(fd, into: buffer, count: 65536))
        submit(Connection.received)
    }

    func sendRest() {
        operation.initialize(to: .send(fd, from: buffer + sent, count: pending - sent))
        submit(Connection.didSend)
    }

    func close() {
        operation.initialize(to: .close(fd))
        submit(Connection.closed)
    }

    private func submit(_ callback: LoopCallback) {
        do {
            try loop.submit(operation, callback: callback, context: context)
        } catch {
            print("echo: \(error)")
            Unmanaged.passUnretained(self).release()
        }
    }

    static let received: LoopCallback = { raw, context in
        let connection = Connection.from(context)
        let count = LoopOperation.pointer(raw).pointee.result
        guard count > 0 else { return connection.close() }
        connection.pending = Int(count)
        connection.sent = 0
        connection.sendRest()
    }

    static let didSend: LoopCallback = { raw, context in
        let connection = Connection.from(context)
        let count = LoopOperation.pointer(raw).pointee.result
        guard count > 0 else { return connection.close() }
        connection.sent += Int(count)
        if connection.sent < connection.pending { connection.sendRest() } else { connection.receive() }
    }

    static let closed: LoopCallback = { _, context in
        // The connection's one retain, taken when it was accepted, ends here.
        Unmanaged<Connection>.fromOpaque(context!).release()
    }
}

/// The listening socket and its accept operation, re-armed after every connection.
final class Server {
    let loop: Loop
    let listener: FileDescriptor
    let accept = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)

    init(loop: Loop, listener: FileDescriptor) {
        self.loop = loop
        self.listener = listener
        accept.initialize(to: .accept(listener))
    }

    func arm() throws {
        accept.initialize(to: .accept(listener))
        try loop.submit(accept, callback: Server.accepted, context: Unmanaged.passUnretained(self).toOpaque())
    }

    static let accepted: LoopCallback = { raw, context in
        let server = Unmanaged<Server>.fromOpaque(context!).takeUnretainedValue()
        let result = LoopOperation.pointer(raw).pointee.result
        if result >= 0 {
            let connection = Connection(fd: FileDescriptor(rawValue: result), loop: server.loop)
            _ = Unmanaged.passRetained(connection)
            connection.receive()
        } else {
            print("echo: accept: \(Errno(rawValue: -result))")
        }
        do { try server.arm() } catch { print("echo: \(error)") }
    }
}

var port: UInt16 = 7000
var options = Loop.Options()
var multishot = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port":
        guard let value = arguments.popFirst().flatMap({ UInt16($0) }) else {
            print("usage: loop-echo-server [--port N] [--backend io_uring|epoll] [--multishot]")
            exit(2)
        }
        port = value
    case "--backend":
        guard let value = arguments.popFirst().flatMap({ LoopBackendKind(rawValue: $0) }), value != .scripted else {
            print("usage: loop-echo-server [--port N] [--backend io_uring|epoll] [--multishot]")
            exit(2)
        }
        options.backend = value
    case "--multishot":
        multishot = true
    default:
        print("usage: loop-echo-server [--port N] [--backend io_uring|epoll] [--multishot]")
        exit(2)
    }
}

do {
    let loop = try Loop(options: options)
    let listener = try listenOnLoopback(port: port)
    var servers: (Server?, MultishotServer?) = (nil, nil)
    if multishot {
        servers.1 = try MultishotServer(loop: loop, listener: listener)
        try servers.1!.arm()
    } else {
        servers.0 = Server(loop: loop, listener: listener)
        try servers.0!.arm()
    }
    print("echo: listening on 127.0.0.1:\(port) with \(loop.backendKind)\(multishot ? ", multishot" : "")")
    // Scripts wait for this line; standard output is block-buffered when it is not a terminal.
    fflush(nil)
    try loop.run()
    withExtendedLifetime(servers) {}
} catch {
    print("echo: \(error)")
    exit(1)
}
