// A TCP echo server with a fiber per connection: plain blocking-style code, no callbacks, no async.
//
//   swift run echo-server [--port 7000] [--executors N|auto] [--backend io_uring|epoll]
//
// Serves on 127.0.0.1 until killed. Each connection's fiber receives into a buffer on its own stack
// and sends back what arrived; a waiting fiber parks and its executor runs the others.
import ExampleSupport
import Glibc
import SystemPackage
import WeftLoop
import WeftRuntime

func usage() -> Never {
    print("usage: echo-server [--port N] [--executors N|auto] [--backend io_uring|epoll]")
    exit(2)
}

var port: UInt16 = 7000
var options = Runtime.Options()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port":
        guard let value = arguments.popFirst().flatMap({ UInt16($0) }) else { usage() }
        port = value
    case "--executors":
        guard let value = arguments.popFirst() else { usage() }
        if value == "auto" {
            options.executors = .auto
        } else if let n = Int(value), n > 0 {
            options.executors = .exact(n)
        } else {
            usage()
        }
    case "--backend":
        guard let value = arguments.popFirst().flatMap({ LoopBackendKind(rawValue: $0) }), value != .scripted else { usage() }
        options.loop.backend = value
    default:
        usage()
    }
}

/// Echoes until the peer closes or fails.
func serve(_ connection: FileDescriptor) {
    defer { try? Fiber.close(connection) }
    withUnsafeTemporaryAllocation(byteCount: 16384, alignment: 16) { buffer in
        do {
            while true {
                let count = try Fiber.recv(connection, into: buffer)
                if count == 0 { return }
                try Fiber.sendAll(connection, UnsafeRawBufferPointer(rebasing: buffer[..<count]))
            }
        } catch {
            // A reset peer ends its connection, not the server.
        }
    }
}

do {
    let listener = try listenOnLoopback(port: port)
    let banner = "echo: listening on 127.0.0.1:\(port), \(options.executors.count) executor(s)"
    try Runtime.run(options: options) {
        print(banner)
        fflush(nil)
        while true {
            let connection = try Fiber.accept(listener)
            try Fiber.spawn { serve(connection) }.detach()
        }
    }
} catch {
    print("echo: \(error)")
    exit(1)
}
