import SystemPackage

extension LoopOperation {
    /// Receives bytes from a socket (`recv(2)`). The result is the byte count, 0 at end of stream.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - buffer: Where the bytes go; valid until the callback runs.
    ///   - count: The buffer's capacity in bytes.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func recv(
        _ descriptor: FileDescriptor, into buffer: UnsafeMutableRawPointer?, count: Int, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .recv)
        op.fd = descriptor.rawValue
        op.buffer = buffer
        op.length = count
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Sends bytes on a socket (`send(2)`, with `MSG_NOSIGNAL` so a closed peer is an `EPIPE` error,
    /// not a signal). The result is the byte count sent, which may be short.
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - buffer: The bytes; valid until the callback runs.
    ///   - count: How many bytes to send.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func send(
        _ descriptor: FileDescriptor, from buffer: UnsafeRawPointer?, count: Int, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .send)
        op.fd = descriptor.rawValue
        op.buffer = UnsafeMutableRawPointer(mutating: buffer)
        op.length = count
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Receives a message with ancillary data (`recvmsg(2)`), for example descriptors passed with
    /// `SCM_RIGHTS`. The result is the byte count; the header's lengths and flags are updated in place.
    /// - Parameters:
    ///   - descriptor: A socket.
    ///   - message: A `struct msghdr` (with its buffers); valid until the callback runs.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func recvmsg(
        _ descriptor: FileDescriptor, message: UnsafeMutableRawPointer, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .recvmsg)
        op.fd = descriptor.rawValue
        op.buffer = message
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Sends a message with ancillary data (`sendmsg(2)`, with `MSG_NOSIGNAL`).
    /// - Parameters:
    ///   - descriptor: A socket.
    ///   - message: A `struct msghdr` (with its buffers); valid until the callback runs.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func sendmsg(
        _ descriptor: FileDescriptor, message: UnsafeRawPointer, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .sendmsg)
        op.fd = descriptor.rawValue
        op.buffer = UnsafeMutableRawPointer(mutating: message)
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Accepts a connection (`accept4(2)` with `SOCK_CLOEXEC`; on the epoll backend the new socket is
    /// also non-blocking). The result is the new descriptor.
    /// - Parameters:
    ///   - descriptor: A listening socket.
    ///   - address: Where the peer's `sockaddr` goes, or `nil`; valid until the callback runs.
    ///   - addressCapacity: The capacity of `address` in bytes; after completion
    ///     ``acceptedAddressLength`` holds the peer address's length.
    /// - Returns: The operation, ready to submit.
    public static func accept(
        _ descriptor: FileDescriptor, address: UnsafeMutableRawPointer? = nil, addressCapacity: Int = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .accept)
        op.fd = descriptor.rawValue
        op.address = address
        op.addressLength = address == nil ? 0 : UInt32(addressCapacity)
        return op
    }

    /// Accepts a connection straight into the loop's registered-file table
    /// (``Loop/registerFiles(count:)``): the connection gets a slot instead of a descriptor, and
    /// operations name it with ``onRegisteredFile()``. The result is the slot. On io_uring the
    /// kernel installs the socket in the ring's table (an accept with a fixed-file target), so it
    /// never enters the process's descriptor table; on epoll the loop accepts a descriptor and keeps
    /// it in the slot. Either way the loop owns the connection: emptying the slot
    /// (``Loop/registerFile(_:at:)`` with `nil`), putting another file in it, or closing the loop
    /// closes it, and ``Loop/registeredFile(at:)`` shows no descriptor for it.
    ///
    /// Errors: `EBADF` when the loop has no table, `EINVAL` for a slot out of range, `ENFILE` when
    /// no slot is free (the connection is closed); otherwise those of `accept(2)`.
    /// - Parameters:
    ///   - descriptor: A listening socket (or its slot, with ``onRegisteredFile()``).
    ///   - slot: The slot to fill, replacing what it holds when the connection arrives, or `nil`
    ///     for any free slot.
    /// - Returns: The operation, ready to submit.
    public static func acceptDirect(_ descriptor: FileDescriptor, slot: Int? = nil) -> LoopOperation {
        var op = accept(descriptor)
        op.tableIndex = slot.map { Int32(clamping: max(-2, $0)) } ?? -1
        op.extras |= OperationExtras.directAccept
        return op
    }

    /// The peer address length written by a completed ``accept(_:address:addressCapacity:)``.
    public var acceptedAddressLength: Int { Int(addressLength) }

    /// Connects a socket (`connect(2)`). The result is 0.
    /// - Parameters:
    ///   - descriptor: A socket.
    ///   - address: The peer's `sockaddr`; valid until the callback runs.
    ///   - length: The address's length in bytes.
    /// - Returns: The operation, ready to submit.
    public static func connect(
        _ descriptor: FileDescriptor, address: UnsafeRawPointer, length: Int
    ) -> LoopOperation {
        var op = LoopOperation(kind: .connect)
        op.fd = descriptor.rawValue
        op.address = UnsafeMutableRawPointer(mutating: address)
        op.addressLength = UInt32(length)
        return op
    }

    /// Binds a socket to an address (`bind(2)`; completes at the next loop iteration, since the call
    /// never waits).
    /// - Parameters:
    ///   - descriptor: A socket.
    ///   - address: The local `sockaddr`; valid until the callback runs.
    ///   - length: The address's length in bytes.
    /// - Returns: The operation, ready to submit.
    public static func bind(_ descriptor: FileDescriptor, address: UnsafeRawPointer, length: Int) -> LoopOperation {
        var op = LoopOperation(kind: .bind)
        op.fd = descriptor.rawValue
        op.address = UnsafeMutableRawPointer(mutating: address)
        op.addressLength = UInt32(length)
        return op
    }

    /// Marks a socket as accepting connections (`listen(2)`; completes at the next loop iteration).
    /// - Parameters:
    ///   - descriptor: A bound socket.
    ///   - backlog: The queue length for pending connections.
    /// - Returns: The operation, ready to submit.
    public static func listen(_ descriptor: FileDescriptor, backlog: Int32 = 128) -> LoopOperation {
        var op = LoopOperation(kind: .listen)
        op.fd = descriptor.rawValue
        op.flags = UInt32(bitPattern: backlog)
        return op
    }

    /// Creates a socket (`socket(2)`; `SOCK_CLOEXEC` is added, and `SOCK_NONBLOCK` on the epoll
    /// backend). The result is the new descriptor.
    /// - Parameters:
    ///   - domain: `AF_INET`, `AF_INET6`, `AF_UNIX`, …
    ///   - type: `SOCK_STREAM`, `SOCK_DGRAM`, …
    ///   - protocol: The protocol, usually 0.
    /// - Returns: The operation, ready to submit.
    public static func socket(domain: Int32, type: Int32, protocol: Int32 = 0) -> LoopOperation {
        var op = LoopOperation(kind: .socket)
        op.fd = domain
        op.flags = UInt32(bitPattern: type)
        op.mode = UInt32(bitPattern: `protocol`)
        return op
    }

    /// Shuts down part of a full-duplex connection (`shutdown(2)`).
    /// - Parameters:
    ///   - descriptor: A connected socket.
    ///   - how: `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    /// - Returns: The operation, ready to submit.
    public static func shutdown(_ descriptor: FileDescriptor, how: Int32) -> LoopOperation {
        var op = LoopOperation(kind: .shutdown)
        op.fd = descriptor.rawValue
        op.flags = UInt32(bitPattern: how)
        return op
    }

    /// Closes a descriptor (`close(2)`). Close descriptors the loop has waited on through the loop
    /// (this operation or ``Loop/forget(_:)``), so the epoll backend drops its registration.
    /// - Parameter descriptor: The descriptor to close.
    /// - Returns: The operation, ready to submit.
    public static func close(_ descriptor: FileDescriptor) -> LoopOperation {
        var op = LoopOperation(kind: .close)
        op.fd = descriptor.rawValue
        return op
    }
}
