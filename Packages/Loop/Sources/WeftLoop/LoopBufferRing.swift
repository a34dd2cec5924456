internal import CWeftLoop

/// A set of equal-sized receive buffers that a loop hands out to multishot receives
/// (``LoopOperation/recvMultishot(_:ring:flags:)``): the operation picks a free buffer for each
/// message, its callback says which one (``LoopOperation/bufferIndex``), and the caller gives the
/// buffer back with ``release(_:)`` when it is done with the bytes.
///
/// On io_uring this is a provided buffer ring registered with the kernel (a buffer group), so the
/// kernel chooses the buffer when data arrives and no buffer is tied to an idle connection. On epoll
/// the same type is a plain pool the loop takes a buffer from when the socket is readable. Either way
/// the memory is allocated once, when the ring is created; receiving allocates nothing.
///
/// When every buffer is out, a multishot receive that has something to deliver (bytes, end of stream
/// or an error) ends with `ENOBUFS` (its final callback) and leaves it in the socket: release buffers
/// and submit it again to receive the rest. Use the ring from the loop's thread only.
///
/// ```swift
/// let ring = try LoopBufferRing(loop: loop, count: 64, size: 4096)
/// op.initialize(to: .recvMultishot(fd, ring: ring))
/// try loop.submit(op, callback: { raw, context in
///     let op = LoopOperation.pointer(raw)
///     if let index = op.pointee.bufferIndex {
///         consume(ring.bytes(index, count: Int(op.pointee.result)))
///         try? ring.release(index)
///     }
///     if !op.pointee.hasMore { /* ended: EOF, error, ENOBUFS or cancel */ }
/// }, context: nil)
/// ```
public final class LoopBufferRing {
    /// How many buffers the ring holds.
    public let count: Int
    /// The size of each buffer in bytes.
    public let size: Int
    /// The buffer group the ring is registered under (io_uring's `bgid`).
    public let group: UInt16

    weak var loop: Loop?
    /// Whether the kernel picks the buffers (io_uring); otherwise the loop does (epoll, scripted).
    let kernelRing: Bool
    /// Multishot receives submitted with this ring whose final callback has not run.
    @exclusivity(unchecked) package var users = 0
    /// Whether ``close()`` (or the loop's close) released the ring.
    @exclusivity(unchecked) public private(set) var isClosed = false

    private let memory: UnsafeMutableRawPointer
    /// The io_uring ring entries (page-aligned), or nil for a pool.
    private let entries: UnsafeMutableRawPointer?
    /// 1 while the caller holds the buffer (between the callback that delivered it and its release).
    private let held: UnsafeMutablePointer<UInt8>
    /// The pool's free buffer indices, a stack (epoll and scripted only).
    private let free: UnsafeMutablePointer<UInt16>
    @exclusivity(unchecked) private var freeCount: Int

    /// Creates a ring of `count` buffers of `size` bytes and registers it with the loop.
    /// - Parameters:
    ///   - loop: The loop whose multishot receives will use it.
    ///   - count: How many buffers: a power of two from 1 to 32768 (io_uring's limit, kept on every
    ///     backend so code moves between them unchanged).
    ///   - size: Each buffer's size in bytes, at least 1.
    /// - Throws: ``LoopError`` (`LoopBufferRing.init`) with `EINVAL` for a bad count or size, `EBADF`
    ///   when the loop is closed, `ENOSPC` when the loop has 65536 rings already, or the kernel's
    ///   error when io_uring refuses the registration.
    public init(loop: Loop, count: Int, size: Int) throws(LoopError) {
        guard count >= 1, count <= 32768, count & (count - 1) == 0, size >= 1, size <= Int(UInt32.max) else {
            throw LoopError(.invalidArgument, operation: "LoopBufferRing.init")
        }
        if loop.isClosed { throw LoopError(.badFileDescriptor, operation: "LoopBufferRing.init") }
        guard let group = loop.freeBufferGroup() else {
            throw LoopError(.noSpace, operation: "LoopBufferRing.init")
        }
        self.count = count
        self.size = size
        self.group = group
        self.loop = loop
        kernelRing = loop.backendKind == .ioUring
        memory = .allocate(byteCount: count * size, alignment: 4096)
        held = .allocate(capacity: count)
        held.initialize(repeating: 0, count: count)
        free = .allocate(capacity: count)
        freeCount = count
        for index in 0..<count { free[index] = UInt16(count - 1 - index) }
        if kernelRing {
            // One 16-byte io_uring_buf per buffer; the kernel wants the array page-aligned.
            let ringEntries = UnsafeMutableRawPointer.allocate(byteCount: max(4096, count * 16), alignment: 4096)
            ringEntries.initializeMemory(as: UInt8.self, repeating: 0, count: max(4096, count * 16))
            weft_buf_ring_init(ringEntries)
            for index in 0..<count {
                weft_buf_ring_add(
                    ringEntries, UInt32(count), memory + index * size, UInt32(size), UInt16(index))
            }
            entries = ringEntries
        } else {
            entries = nil
        }
        let r = loop.backend.registerBufferRing(entries: entries, count: count, group: group)
        if r < 0 {
            release()
            throw LoopError(.init(rawValue: -r), operation: "LoopBufferRing.init")
        }
        loop.adopt(self)
    }

    deinit {
        if !isClosed { release() }
    }

    /// The number of buffers not held by the caller (in the kernel's ring or the pool).
    public var availableCount: Int { count - heldCount }
    @exclusivity(unchecked) private var heldCount = 0

    /// The start of buffer `index` (its full ``size`` is usable).
    /// - Parameter index: A buffer index, `0..<count`.
    /// - Returns: The buffer's address, or `nil` for an index out of range or a closed ring.
    public func buffer(_ index: Int) -> UnsafeMutableRawPointer? {
        guard index >= 0, index < count, !isClosed else { return nil }
        return memory + index * size
    }

    /// The bytes a callback received into buffer `index`.
    /// - Parameters:
    ///   - index: The operation's ``LoopOperation/bufferIndex``.
    ///   - count: The operation's ``LoopOperation/result`` (clamped to the buffer size).
    /// - Returns: The bytes; empty for an index out of range or a closed ring.
    public func bytes(_ index: Int, count: Int) -> UnsafeRawBufferPointer {
        guard let start = buffer(index) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: start, count: max(0, min(count, size)))
    }

    /// Gives a buffer back to the ring, so later messages can be received into it.
    /// - Parameter index: The index a callback delivered in ``LoopOperation/bufferIndex``.
    /// - Throws: ``LoopError`` (`LoopBufferRing.release`): `EINVAL` for an index out of range,
    ///   `EALREADY` for a buffer the caller does not hold (returned twice, or never delivered), `EBADF`
    ///   after the ring was closed.
    public func release(_ index: Int) throws(LoopError) {
        if isClosed { throw LoopError(.badFileDescriptor, operation: "LoopBufferRing.release") }
        guard index >= 0, index < count else { throw LoopError(.invalidArgument, operation: "LoopBufferRing.release") }
        guard held[index] == 1 else { throw LoopError(.alreadyInProcess, operation: "LoopBufferRing.release") }
        held[index] = 0
        heldCount -= 1
        if let entries {
            weft_buf_ring_add(entries, UInt32(count), memory + index * size, UInt32(size), UInt16(index))
        } else {
            free[freeCount] = UInt16(index)
            freeCount += 1
        }
    }

    /// Unregisters the ring and frees its memory. Buffers the caller still holds become invalid.
    /// - Throws: ``LoopError`` (`LoopBufferRing.close`) with `EBUSY` while a multishot receive
    ///   submitted with this ring has not had its final callback (cancel it first). Closing twice does
    ///   nothing.
    public func close() throws(LoopError) {
        if isClosed { return }
        if users > 0 { throw LoopError(.resourceBusy, operation: "LoopBufferRing.close") }
        if let loop, !loop.isClosed {
            _ = loop.backend.unregisterBufferRing(group: group)
            loop.disown(self)
        }
        release()
    }

    /// Frees the memory; the kernel no longer knows the ring (unregistered, or its loop closed).
    func release() {
        if isClosed { return }
        isClosed = true
        memory.deallocate()
        entries?.deallocate()
        held.deallocate()
        free.deallocate()
    }

    /// Records that the kernel (or a scripted kernel) handed buffer `index` to the caller. In a pool
    /// the buffer also leaves the free stack, so its release cannot push it twice.
    func markHeld(_ index: Int32) {
        guard index >= 0, Int(index) < count, !isClosed, held[Int(index)] == 0 else { return }
        if !kernelRing {
            guard let slot = (0..<freeCount).first(where: { free[$0] == UInt16(index) }) else { return }
            freeCount -= 1
            free[slot] = free[freeCount]
        }
        held[Int(index)] = 1
        heldCount += 1
    }

    /// Takes a free buffer from the pool (epoll and scripted), or nil when none is left.
    func take() -> Int32? {
        guard freeCount > 0, !isClosed else { return nil }
        freeCount -= 1
        let index = Int(free[freeCount])
        held[index] = 1
        heldCount += 1
        return Int32(index)
    }

    /// Puts back a buffer taken with ``take()`` that received nothing.
    func putBack(_ index: Int32) {
        held[Int(index)] = 0
        heldCount -= 1
        free[freeCount] = UInt16(index)
        freeCount += 1
    }
}
