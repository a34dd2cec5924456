// A TCP echo server with a fiber per connection: plain blocking-style code, no callbacks, no async.
//
//   swift run echo-server [--port 7000] [--executors N|auto] [--backend io_uring|epoll]
//
// Serves on 127.0.0.1 until killed. Each connection's fiber receives into a buffer on its own stack
// and sends back what arrived; a waiting fiber parks and its executor runs the others.
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

/// A listening TCP socket on 127.0.0.1.
func listen(port: UInt16) throws -> FileDescriptor {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, Glibc.listen(fd, 1024) == 0 else {
        let failure = Errno(rawValue: errno)
        Glibc.close(fd)
        throw failure
    }
    return FileDescriptor(rawValue: fd)
}

do {
    let listener = try listen(port: port)
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
