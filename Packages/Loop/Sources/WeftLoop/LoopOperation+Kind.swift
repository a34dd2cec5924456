extension LoopOperation {
    /// What an operation does. Each kind names the system call it performs, which is also the
    /// operation name carried by its errors.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The kind's number.
        public let rawValue: UInt8

        /// Creates a kind from its number.
        /// - Parameter rawValue: The kind's number.
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// Completes at once with result 0: measures the loop's own overhead.
        public static let nop = Kind(rawValue: 1)
        /// Completes when a timer fires (result 0).
        public static let timer = Kind(rawValue: 2)
        /// `recv(2)`.
        public static let recv = Kind(rawValue: 3)
        /// `send(2)`.
        public static let send = Kind(rawValue: 4)
        /// `recvmsg(2)`, including ancillary data.
        public static let recvmsg = Kind(rawValue: 5)
        /// `sendmsg(2)`, including ancillary data.
        public static let sendmsg = Kind(rawValue: 6)
        /// `read(2)` / `pread(2)`.
        public static let read = Kind(rawValue: 7)
        /// `write(2)` / `pwrite(2)`.
        public static let write = Kind(rawValue: 8)
        /// `readv(2)` / `preadv(2)`.
        public static let readv = Kind(rawValue: 9)
        /// `writev(2)` / `pwritev(2)`.
        public static let writev = Kind(rawValue: 10)
        /// `accept4(2)`.
        public static let accept = Kind(rawValue: 11)
        /// `connect(2)`.
        public static let connect = Kind(rawValue: 12)
        /// `socket(2)`.
        public static let socket = Kind(rawValue: 13)
        /// `shutdown(2)`.
        public static let shutdown = Kind(rawValue: 14)
        /// `close(2)`.
        public static let close = Kind(rawValue: 15)
        /// Readiness of any descriptor, as `poll(2)` events.
        public static let poll = Kind(rawValue: 16)
        /// `openat(2)`.
        public static let openat = Kind(rawValue: 17)
        /// `openat2(2)`.
        public static let openat2 = Kind(rawValue: 18)
        /// `statx(2)`.
        public static let statx = Kind(rawValue: 19)
        /// `fsync(2)` / `fdatasync(2)`.
        public static let fsync = Kind(rawValue: 20)
        /// `fallocate(2)`.
        public static let fallocate = Kind(rawValue: 21)
        /// `ftruncate(2)`.
        public static let ftruncate = Kind(rawValue: 22)
        /// `renameat2(2)`.
        public static let rename = Kind(rawValue: 23)
        /// `unlinkat(2)`.
        public static let unlink = Kind(rawValue: 24)
        /// `mkdirat(2)`.
        public static let mkdir = Kind(rawValue: 25)
        /// `linkat(2)`.
        public static let link = Kind(rawValue: 26)
        /// `symlinkat(2)`.
        public static let symlink = Kind(rawValue: 27)
        /// `splice(2)`.
        public static let splice = Kind(rawValue: 28)
        /// `sendfile(2)`.
        public static let sendfile = Kind(rawValue: 29)
        /// Waits for a child process to exit through its pidfd and reaps it.
        public static let processWait = Kind(rawValue: 30)
        /// Runs a function on the loop's thread pool.
        public static let work = Kind(rawValue: 31)
        /// `bind(2)`.
        public static let bind = Kind(rawValue: 32)
        /// `listen(2)`.
        public static let listen = Kind(rawValue: 33)
        /// `accept4(2)` armed once for many connections (multishot).
        public static let acceptMultishot = Kind(rawValue: 34)
        /// `recv(2)` armed once for many messages, into buffers of a ``LoopBufferRing`` (multishot).
        public static let recvMultishot = Kind(rawValue: 35)

        /// The operation's name, as carried by its errors.
        public var name: StaticString {
            switch self {
            case .nop: "nop"
            case .timer: "timer"
            case .recv: "recv"
            case .send: "send"
            case .recvmsg: "recvmsg"
            case .sendmsg: "sendmsg"
            case .read: "read"
            case .write: "write"
            case .readv: "readv"
            case .writev: "writev"
            case .accept: "accept"
            case .connect: "connect"
            case .socket: "socket"
            case .shutdown: "shutdown"
            case .close: "close"
            case .poll: "poll"
            case .openat: "openat"
            case .openat2: "openat2"
            case .statx: "statx"
            case .fsync: "fsync"
            case .fallocate: "fallocate"
            case .ftruncate: "ftruncate"
            case .rename: "rename"
            case .unlink: "unlink"
            case .mkdir: "mkdir"
            case .link: "link"
            case .symlink: "symlink"
            case .splice: "splice"
            case .sendfile: "sendfile"
            case .processWait: "processWait"
            case .work: "work"
            case .bind: "bind"
            case .listen: "listen"
            case .acceptMultishot: "acceptMultishot"
            case .recvMultishot: "recvMultishot"
            default: "unknown"
            }
        }

        /// The operation's name.
        public var description: String { name.description }
    }
}
