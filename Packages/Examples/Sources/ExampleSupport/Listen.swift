// What the example servers share: a listening TCP socket on loopback.
import Glibc
import SystemPackage

/// Opens a TCP socket on 127.0.0.1 and listens on it.
/// - Parameter port: The port to bind.
/// - Returns: The listening descriptor (blocking, close-on-exec; the loop's backends adapt it).
/// - Throws: The `Errno` of the call that failed (`socket`, `bind` or `listen`).
public func listenOnLoopback(port: UInt16) throws(Errno) -> FileDescriptor {
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
