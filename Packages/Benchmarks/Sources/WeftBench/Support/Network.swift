#if canImport(Glibc)
import Glibc
#endif

/// Plain-socket helpers for benchmark setup (never on a measured path).
enum Network {
    /// A TCP port on 127.0.0.1 that nothing listens on right now, chosen by the kernel.
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket", errno: errno) }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw BenchError("bind 127.0.0.1:0", errno: errno) }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw BenchError("getsockname", errno: errno) }
        return UInt16(bigEndian: address.sin_port)
    }

    /// A listening TCP socket on 127.0.0.1:`port` (SO_REUSEADDR, backlog 4096), for servers that
    /// create their listener before handing it to an event loop.
    static func listen(port: UInt16, nonBlocking: Bool) throws -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw BenchError("socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: port)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw BenchError("bind 127.0.0.1:\(port)", errno: code)
        }
        guard Glibc.listen(fd, 4096) == 0 else {
            let code = errno
            close(fd)
            throw BenchError("listen", errno: code)
        }
        return fd
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`, probing with connect; fails if
    /// `server` exits first or nothing listens within `timeout` seconds.
    static func waitUntilListening(port: UInt16, server: ChildProcess, timeout: Double = 10) throws {
        let deadline = monotonicSeconds() + timeout
        while true {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw BenchError("socket", errno: errno) }
            var address = loopback(port: port)
            let connected = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            close(fd)
            if connected == 0 { return }
            if server.hasExited { throw BenchError("\(server.commandLine) exited before listening") }
            if monotonicSeconds() > deadline {
                throw BenchError("\(server.commandLine) did not listen on port \(port) within \(Int(timeout)) s")
            }
            usleep(5000)
        }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
