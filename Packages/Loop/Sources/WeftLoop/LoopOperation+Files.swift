import SystemPackage

/// The `struct open_how` argument of ``LoopOperation/openat2(directory:path:how:)``.
public struct OpenHow: Sendable {
    /// `O_*` flags.
    public var flags: UInt64
    /// The mode for a created file.
    public var mode: UInt64
    /// `RESOLVE_*` flags.
    public var resolve: UInt64

    /// Creates the argument.
    /// - Parameters:
    ///   - flags: `O_*` flags.
    ///   - mode: The mode for a created file.
    ///   - resolve: `RESOLVE_*` flags.
    public init(flags: UInt64, mode: UInt64 = 0, resolve: UInt64 = 0) {
        self.flags = flags
        self.mode = mode
        self.resolve = resolve
    }
}

extension LoopOperation {
    /// Reads bytes (`read(2)`, or `pread(2)` at an offset). The result is the byte count, 0 at end of
    /// file. Regular files go to the thread pool on the epoll backend.
    /// - Parameters:
    ///   - descriptor: Any readable descriptor.
    ///   - buffer: Where the bytes go; valid until the callback runs.
    ///   - count: The buffer's capacity.
    ///   - offset: The file offset, or -1 for the descriptor's current position.
    /// - Returns: The operation, ready to submit.
    public static func read(
        _ descriptor: FileDescriptor, into buffer: UnsafeMutableRawPointer?, count: Int, at offset: Int64 = -1
    ) -> LoopOperation {
        var op = LoopOperation(kind: .read)
        op.fd = descriptor.rawValue
        op.buffer = buffer
        op.length = count
        op.offset = offset
        return op
    }

    /// Writes bytes (`write(2)`, or `pwrite(2)` at an offset). The result is the byte count written.
    /// - Parameters:
    ///   - descriptor: Any writable descriptor.
    ///   - buffer: The bytes; valid until the callback runs.
    ///   - count: How many bytes to write.
    ///   - offset: The file offset, or -1 for the descriptor's current position.
    /// - Returns: The operation, ready to submit.
    public static func write(
        _ descriptor: FileDescriptor, from buffer: UnsafeRawPointer?, count: Int, at offset: Int64 = -1
    ) -> LoopOperation {
        var op = LoopOperation(kind: .write)
        op.fd = descriptor.rawValue
        op.buffer = UnsafeMutableRawPointer(mutating: buffer)
        op.length = count
        op.offset = offset
        return op
    }

    /// This read or write on a buffer of the loop's registered-buffer table
    /// (``Loop/registerBuffers(_:)``): `.read(fd, into: p, count: n).onRegisteredBuffer(2)` reads
    /// into `p`, which must lie with its `n` bytes inside registered buffer 2. On io_uring the
    /// operation becomes `READ_FIXED` or `WRITE_FIXED`, and the kernel skips pinning and unpinning
    /// the buffer's pages for each call (they were pinned once, at registration); on epoll it is a
    /// plain read or write of the same bytes, so code runs unchanged on both.
    ///
    /// Valid for ``read(_:into:count:at:)`` and ``write(_:from:count:at:)`` on any descriptor; any
    /// other kind completes with `EINVAL`. An index outside the table (or a loop with no table), or
    /// bytes reaching outside the buffer, complete it with `EFAULT`, as the kernel would.
    /// - Parameter index: The buffer's index in the table.
    /// - Returns: The operation, marked.
    public func onRegisteredBuffer(_ index: Int) -> LoopOperation {
        var op = self
        op.tableIndex = Int32(clamping: max(-1, index))
        op.extras |= OperationExtras.registeredBuffer
        return op
    }

    /// The index of the registered buffer the operation uses (``onRegisteredBuffer(_:)``), or `nil`.
    public var registeredBufferIndex: Int? {
        extras & OperationExtras.registeredBuffer != 0 ? Int(tableIndex) : nil
    }

    /// Reads into several buffers (`readv(2)` / `preadv(2)`).
    /// - Parameters:
    ///   - descriptor: Any readable descriptor.
    ///   - vectors: An array of `struct iovec`; valid until the callback runs.
    ///   - count: The number of vectors.
    ///   - offset: The file offset, or -1 for the current position.
    /// - Returns: The operation, ready to submit.
    public static func readv(
        _ descriptor: FileDescriptor, vectors: UnsafeRawPointer, count: Int, at offset: Int64 = -1
    ) -> LoopOperation {
        var op = LoopOperation(kind: .readv)
        op.fd = descriptor.rawValue
        op.buffer = UnsafeMutableRawPointer(mutating: vectors)
        op.length = count
        op.offset = offset
        return op
    }

    /// Writes from several buffers (`writev(2)` / `pwritev(2)`).
    /// - Parameters:
    ///   - descriptor: Any writable descriptor.
    ///   - vectors: An array of `struct iovec`; valid until the callback runs.
    ///   - count: The number of vectors.
    ///   - offset: The file offset, or -1 for the current position.
    /// - Returns: The operation, ready to submit.
    public static func writev(
        _ descriptor: FileDescriptor, vectors: UnsafeRawPointer, count: Int, at offset: Int64 = -1
    ) -> LoopOperation {
        var op = LoopOperation(kind: .writev)
        op.fd = descriptor.rawValue
        op.buffer = UnsafeMutableRawPointer(mutating: vectors)
        op.length = count
        op.offset = offset
        return op
    }

    /// Opens a file (`openat(2)`; add `O_CLOEXEC` yourself). The result is the new descriptor.
    /// - Parameters:
    ///   - directory: The directory `path` is relative to, or `AT_FDCWD` (-100).
    ///   - path: A NUL-terminated path; valid until the callback runs.
    ///   - flags: `O_*` flags.
    ///   - mode: The mode for a created file.
    /// - Returns: The operation, ready to submit.
    public static func openat(
        directory: FileDescriptor = FileDescriptor(rawValue: -100), path: UnsafePointer<CChar>, flags: Int32,
        mode: UInt32 = 0o644
    ) -> LoopOperation {
        var op = LoopOperation(kind: .openat)
        op.fd = directory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: path)
        op.flags = UInt32(bitPattern: flags)
        op.mode = mode
        return op
    }

    /// Opens a file with `openat2(2)` and its resolution controls. The result is the new descriptor.
    /// - Parameters:
    ///   - directory: The directory `path` is relative to, or `AT_FDCWD` (-100).
    ///   - path: A NUL-terminated path; valid until the callback runs.
    ///   - how: The flags, mode and resolve flags; valid until the callback runs.
    /// - Returns: The operation, ready to submit.
    public static func openat2(
        directory: FileDescriptor = FileDescriptor(rawValue: -100), path: UnsafePointer<CChar>,
        how: UnsafePointer<OpenHow>
    ) -> LoopOperation {
        var op = LoopOperation(kind: .openat2)
        op.fd = directory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: path)
        op.address2 = UnsafeMutableRawPointer(mutating: how)
        return op
    }

    /// Reads a file's status (`statx(2)`) into a `struct statx`.
    /// - Parameters:
    ///   - directory: The directory `path` is relative to, or `AT_FDCWD` (-100).
    ///   - path: A NUL-terminated path (empty with `AT_EMPTY_PATH` for `directory` itself).
    ///   - flags: `AT_*` flags.
    ///   - mask: `STATX_*` fields wanted.
    ///   - status: At least ``statxSize`` bytes receiving the `struct statx`; see ``FileStatus``.
    /// - Returns: The operation, ready to submit.
    public static func statx(
        directory: FileDescriptor = FileDescriptor(rawValue: -100), path: UnsafePointer<CChar>, flags: Int32 = 0,
        mask: UInt32 = 0xfff, into status: UnsafeMutableRawPointer
    ) -> LoopOperation {
        var op = LoopOperation(kind: .statx)
        op.fd = directory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: path)
        op.flags = UInt32(bitPattern: flags)
        op.mode = mask
        op.buffer = status
        return op
    }

    /// The size in bytes of the `struct statx` a ``statx(directory:path:flags:mask:into:)`` fills.
    public static let statxSize = 256

    /// Flushes a file to storage (`fsync(2)`, or `fdatasync(2)`).
    /// - Parameters:
    ///   - descriptor: An open file.
    ///   - dataOnly: Whether to flush only the data (`fdatasync`).
    /// - Returns: The operation, ready to submit.
    public static func fsync(_ descriptor: FileDescriptor, dataOnly: Bool = false) -> LoopOperation {
        var op = LoopOperation(kind: .fsync)
        op.fd = descriptor.rawValue
        op.flags = dataOnly ? 1 : 0
        return op
    }

    /// Allocates or punches file space (`fallocate(2)`).
    /// - Parameters:
    ///   - descriptor: An open file.
    ///   - mode: `FALLOC_FL_*` flags, 0 to allocate.
    ///   - offset: The start of the range.
    ///   - length: The length of the range.
    /// - Returns: The operation, ready to submit.
    public static func fallocate(
        _ descriptor: FileDescriptor, mode: Int32 = 0, offset: Int64, length: Int64
    ) -> LoopOperation {
        var op = LoopOperation(kind: .fallocate)
        op.fd = descriptor.rawValue
        op.mode = UInt32(bitPattern: mode)
        op.offset = offset
        op.offset2 = length
        return op
    }

    /// Sets a file's length (`ftruncate(2)`; runs on the thread pool).
    /// - Parameters:
    ///   - descriptor: A file open for writing.
    ///   - length: The new length.
    /// - Returns: The operation, ready to submit.
    public static func ftruncate(_ descriptor: FileDescriptor, length: Int64) -> LoopOperation {
        var op = LoopOperation(kind: .ftruncate)
        op.fd = descriptor.rawValue
        op.offset = length
        return op
    }

    /// Renames a file (`renameat2(2)`).
    /// - Parameters:
    ///   - oldDirectory: The directory `oldPath` is relative to, or `AT_FDCWD`.
    ///   - oldPath: The current path; valid until the callback runs.
    ///   - newDirectory: The directory `newPath` is relative to, or `AT_FDCWD`.
    ///   - newPath: The new path; valid until the callback runs.
    ///   - flags: `RENAME_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func rename(
        from oldPath: UnsafePointer<CChar>, to newPath: UnsafePointer<CChar>,
        oldDirectory: FileDescriptor = FileDescriptor(rawValue: -100),
        newDirectory: FileDescriptor = FileDescriptor(rawValue: -100), flags: UInt32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .rename)
        op.fd = oldDirectory.rawValue
        op.fd2 = newDirectory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: oldPath)
        op.address2 = UnsafeMutableRawPointer(mutating: newPath)
        op.flags = flags
        return op
    }

    /// Removes a file, or a directory with `AT_REMOVEDIR` (`unlinkat(2)`).
    /// - Parameters:
    ///   - path: The path; valid until the callback runs.
    ///   - directory: The directory `path` is relative to, or `AT_FDCWD`.
    ///   - flags: 0 or `AT_REMOVEDIR` (0x200).
    /// - Returns: The operation, ready to submit.
    public static func unlink(
        _ path: UnsafePointer<CChar>, directory: FileDescriptor = FileDescriptor(rawValue: -100), flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .unlink)
        op.fd = directory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: path)
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Creates a directory (`mkdirat(2)`).
    /// - Parameters:
    ///   - path: The path; valid until the callback runs.
    ///   - directory: The directory `path` is relative to, or `AT_FDCWD`.
    ///   - mode: The new directory's permissions.
    /// - Returns: The operation, ready to submit.
    public static func mkdir(
        _ path: UnsafePointer<CChar>, directory: FileDescriptor = FileDescriptor(rawValue: -100), mode: UInt32 = 0o755
    ) -> LoopOperation {
        var op = LoopOperation(kind: .mkdir)
        op.fd = directory.rawValue
        op.address = UnsafeMutableRawPointer(mutating: path)
        op.mode = mode
        return op
    }

    /// Creates a hard link (`linkat(2)`).
    /// - Parameters:
    ///   - existing: The existing file's path; valid until the callback runs.
    ///   - newPath: The new link's path; valid until the callback runs.
    ///   - flags: `AT_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func link(
        _ existing: UnsafePointer<CChar>, to newPath: UnsafePointer<CChar>, flags: Int32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .link)
        op.fd = -100
        op.fd2 = -100
        op.address = UnsafeMutableRawPointer(mutating: existing)
        op.address2 = UnsafeMutableRawPointer(mutating: newPath)
        op.flags = UInt32(bitPattern: flags)
        return op
    }

    /// Creates a symbolic link (`symlinkat(2)`).
    /// - Parameters:
    ///   - target: What the link points to; valid until the callback runs.
    ///   - linkPath: The link's path; valid until the callback runs.
    /// - Returns: The operation, ready to submit.
    public static func symlink(_ target: UnsafePointer<CChar>, at linkPath: UnsafePointer<CChar>) -> LoopOperation {
        var op = LoopOperation(kind: .symlink)
        op.fd = -100
        op.address = UnsafeMutableRawPointer(mutating: target)
        op.address2 = UnsafeMutableRawPointer(mutating: linkPath)
        return op
    }

    /// Moves bytes between descriptors without copying through user space (`splice(2)`; one side must
    /// be a pipe). The result is the byte count moved.
    /// - Parameters:
    ///   - input: The source.
    ///   - inputOffset: The source offset, or -1 (required for pipes).
    ///   - output: The destination.
    ///   - outputOffset: The destination offset, or -1 (required for pipes).
    ///   - count: The most bytes to move.
    ///   - flags: `SPLICE_F_*` flags.
    /// - Returns: The operation, ready to submit.
    public static func splice(
        from input: FileDescriptor, offset inputOffset: Int64 = -1, to output: FileDescriptor,
        offset outputOffset: Int64 = -1, count: Int, flags: UInt32 = 0
    ) -> LoopOperation {
        var op = LoopOperation(kind: .splice)
        op.fd = input.rawValue
        op.offset = inputOffset
        op.fd2 = output.rawValue
        op.offset2 = outputOffset
        op.length = count
        op.flags = flags
        return op
    }

    /// Copies bytes from a file to a descriptor (`sendfile(2)`; runs on the thread pool). The result
    /// is the byte count copied.
    /// - Parameters:
    ///   - input: A file to read from.
    ///   - offset: Where to start reading in `input`, or -1 for its current position.
    ///   - output: The destination, such as a socket.
    ///   - count: The most bytes to copy.
    /// - Returns: The operation, ready to submit.
    public static func sendfile(
        from input: FileDescriptor, offset: Int64 = -1, to output: FileDescriptor, count: Int
    ) -> LoopOperation {
        var op = LoopOperation(kind: .sendfile)
        op.fd = output.rawValue
        op.fd2 = input.rawValue
        op.offset = offset
        op.length = count
        return op
    }
}
