import SystemPackage

extension LoopOperation {
    /// Accepts connections on a listening socket, one callback per connection, from one submission
    /// (io_uring's multishot accept; on epoll the loop accepts in a loop each time the socket is
    /// readable). Each callback's ``result`` is a new descriptor (with `SOCK_CLOEXEC`, and
    /// non-blocking on epoll) or `-errno`.
    ///
    /// While ``hasMore`` is true the operation stays armed and pending. It ends with one final
    /// callback (``hasMore`` false): an error such as `EBADF` or `EINVAL`, or `ECANCELED` after
    /// ``Loop/cancel(_:)``. When the kernel stops a multishot accept by itself after a success (it
    /// may, for example when its completion queue overflows), the loop re-arms it transparently:
    /// that connection arrives with ``hasMore`` set, as usual. Any callback with a non-negative result
    /// carries a connection the callback owns, the final one included.
    ///
    /// The peer's address is not reported (a shared address buffer would be overwritten by the next
    /// connection); ask `getpeername(2)` for it.
    /// - Parameter descriptor: A listening socket.
    /// - Returns: The operation, ready to submit.
    public static func acceptMultishot(_ descriptor: FileDescriptor) -> LoopOperation {
        var op = LoopOperation(kind: .acceptMultishot)
        op.fd = descriptor.rawValue
        op.extras = OperationExtras.multishot
        return op
    }

    /// Receives messages on a socket into buffers of `ring`, one callback per message, from one
    /// submission (io_uring's multishot receive with a provided buffer ring; on epoll the loop
    /// receives into a free buffer of the pool each time the socket is readable).
    ///
    /// Each callback with a positive ``result`` names the buffer that holds the bytes in
    /// ``bufferIndex``; the caller reads them (``LoopBufferRing/bytes(_:count:)``) and gives the
    /// buffer back with ``LoopBufferRing/release(_:)``. While ``hasMore`` is true the operation stays
    /// armed. It ends with one final callback: result 0 at end of stream, `-ENOBUFS` when something
    /// arrived (bytes, end of stream or an error) while the caller held every buffer of the ring,
    /// `-ECANCELED` after ``Loop/cancel(_:)``, or another error. When the kernel stops the receive by
    /// itself after a success, the loop re-arms it transparently.
    ///
    /// `ENOBUFS` loses nothing: what arrived stays in the socket. Release buffers and submit the
    /// receive again; it delivers the remaining bytes in order, then the end of stream or the error.
    /// End of stream is never reported before the bytes sent ahead of it, and it too needs a free
    /// buffer. While every buffer is held and nothing arrives, the receive stays armed, also when it is
    /// submitted in that state. Both backends behave the same.
    ///
    /// The ring must belong to the same loop and stay open until the final callback (its
    /// ``LoopBufferRing/close()`` refuses with `EBUSY` meanwhile); a ring that is closed or belongs
    /// to another loop makes the submission complete with `EBADF`.
    /// - Parameters:
    ///   - descriptor: A connected stream socket (or a datagram socket).
    ///   - ring: The buffers to receive into.
    ///   - flags: `MSG_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func recvMultishot(
        _ descriptor: FileDescriptor, ring: LoopBufferRing, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .recvMultishot)
        op.fd = descriptor.rawValue
        op.mode = UInt32(ring.group)
        op.address2 = Unmanaged.passUnretained(ring).toOpaque()
        op.length = ring.size
        op.flags = UInt32(bitPattern: flags)
        op.extras = OperationExtras.multishot | OperationExtras.bufferRing
        return op
    }

    /// This operation with its descriptor read as a slot of the loop's registered-file table
    /// (``Loop/registerFiles(count:)``): `.recv(FileDescriptor(rawValue: 3), ...).onRegisteredFile()`
    /// receives from the file in slot 3. On io_uring the operation names the slot to the kernel
    /// (`IOSQE_FIXED_FILE`); on epoll the loop looks the slot up at submission.
    ///
    /// Valid for `recv`, `send`, `recvmsg`, `sendmsg`, `read`, `write`, `readv`, `writev`, `accept`,
    /// `connect`, `shutdown`, `fsync`, `poll` and the multishot operations; any other kind completes
    /// with `EINVAL`, as does a slot out of range (a negative one included). An empty slot, or a loop
    /// with no table, completes it with `EBADF`.
    /// - Returns: The operation, marked.
    public func onRegisteredFile() -> LoopOperation {
        var op = self
        op.fixedSlot = op.fd
        op.extras |= OperationExtras.registeredFile
        return op
    }

    /// Whether the operation names a registered-file slot (``onRegisteredFile()``).
    public var usesRegisteredFile: Bool { extras & OperationExtras.registeredFile != 0 }

    /// Whether the operation is one of the multishot kinds (``acceptMultishot(_:)``,
    /// ``recvMultishot(_:ring:flags:)``), which call back more than once per submission.
    public var isMultishot: Bool { extras & OperationExtras.multishot != 0 }
}
