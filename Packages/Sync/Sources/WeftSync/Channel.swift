import WeftRuntime

/// A multi-producer, multi-consumer FIFO channel between fibers, threads and async code.
///
/// With `capacity` 0 the channel is *unbuffered*: a send completes only when a receiver takes the
/// value (a rendezvous). Otherwise up to `capacity` values wait in a ring buffer allocated once,
/// and sends park only when it is full. Nothing is allocated per message.
///
/// **Fairness: hand-off, FIFO on both sides.** A value goes straight to the longest-waiting
/// receiver; when a receiver frees buffer space, the longest-waiting sender's value moves in.
///
/// **Closing.** ``close()`` is graceful: values already buffered can still be received, then
/// receivers get ``SyncError/closed(operation:)`` (or `nil` from ``tryReceive()`` / the end of
/// iteration); parked senders fail with ``SyncError/closed(operation:)`` and keep their values.
/// ``closeImmediately()`` also discards the buffer and returns the values that were not delivered.
///
/// Every value sent is received exactly once or reported undelivered (a send that throws, or
/// ``closeImmediately()``'s result), including under cancellation, timeouts and ``select(_:timeout:)``.
public final class Channel<Element: Sendable>: Sendable {
    @usableFromInline
    struct State: @unchecked Sendable {
        @usableFromInline let buffer: UnsafeMutablePointer<Element>
        @usableFromInline let capacity: Int
        @usableFromInline var head = 0
        @usableFromInline var count = 0
        @usableFromInline var closed = false
        @usableFromInline var senders = WaitQueue()
        @usableFromInline var receivers = WaitQueue()

        @inlinable
        mutating func push(_ value: Element) {
            var index = head + count
            if index >= capacity { index -= capacity }
            (buffer + index).initialize(to: value)
            count += 1
        }

        @inlinable
        mutating func pop() -> Element {
            let value = (buffer + head).move()
            head += 1
            if head == capacity { head = 0 }
            count -= 1
            return value
        }

        /// Takes the next value: a buffered one (refilling the space from a parked sender) or a
        /// parked sender's. `wake` gets the sender to resume once the lock is released.
        @inlinable
        mutating func take(
            _ wake: inout UnsafeMutablePointer<Parking>?, excluding: UnsafeMutablePointer<Parking>? = nil
        ) -> Element? {
            if count > 0 {
                let value = pop()
                if let sender = senders.claimFirst(excluding: excluding) {
                    push(sender.pointee.slot!.assumingMemoryBound(to: Element.self).pointee)
                    wake = sender.pointee.parking
                }
                return value
            }
            if let sender = senders.claimFirst(excluding: excluding) {
                wake = sender.pointee.parking
                return sender.pointee.slot!.assumingMemoryBound(to: Element.self).pointee
            }
            return nil
        }

        /// Gives `value` to the longest-waiting receiver or the buffer; false if neither can take it.
        @inlinable
        mutating func give(
            _ value: Element, _ wake: inout UnsafeMutablePointer<Parking>?,
            excluding: UnsafeMutablePointer<Parking>? = nil
        ) -> Bool {
            if let receiver = receivers.claimFirst(excluding: excluding) {
                receiver.pointee.slot!.assumingMemoryBound(to: Element?.self).pointee = value
                wake = receiver.pointee.parking
                return true
            }
            if count < capacity {
                push(value)
                return true
            }
            return false
        }
    }

    @usableFromInline let state: Guarded<State>
    /// The buffer size (0: unbuffered).
    public let capacity: Int

    /// Creates a channel.
    /// - Parameter capacity: How many values may wait in the buffer; 0 (the default) makes an
    ///   unbuffered channel.
    public init(capacity: Int = 0) {
        self.capacity = Swift.max(0, capacity)
        let buffer = UnsafeMutablePointer<Element>.allocate(capacity: Swift.max(1, capacity))
        state = Guarded(State(buffer: buffer, capacity: Swift.max(0, capacity)))
    }

    deinit {
        state.withLock { state in
            while state.count > 0 { _ = state.pop() }
            state.buffer.deallocate()
        }
    }

    /// Values in the buffer now (a snapshot).
    public var count: Int { state.withLock { $0.count } }

    /// Whether the channel is closed (values may still be buffered).
    public var isClosed: Bool { state.withLock { $0.closed } }

    // MARK: Send

    /// Sends a value, parking while no receiver or buffer space is available. A suspension point.
    /// - Parameter value: The value.
    /// - Throws: ``SyncError/closed(operation:)`` (the value was not delivered), `CancellationError`
    ///   (not delivered either).
    @inlinable
    public func send(_ value: Element) throws { try send(value, timeout: nil) }

    /// Sends a value, waiting at most `timeout` for a receiver or buffer space.
    /// - Parameters:
    ///   - value: The value.
    ///   - timeout: The longest wait, or `nil` for none.
    /// - Throws: ``SyncError/timedOut(operation:)``, ``SyncError/closed(operation:)``,
    ///   `CancellationError`; in each case the value was not delivered.
    @inlinable
    public func send(_ value: Element, timeout: Duration?) throws {
        // One lock round: buffer space and no parked receiver (the steady state of a busy buffered
        // channel), a parked receiver to hand the value to, or else (still holding the lock) the
        // sender's node in the queue.
        state.lock()
        let shared = state.storage
        if shared.pointee.closed {
            state.unlock()
            throw SyncError.closed(operation: "Channel.send")
        }
        var wake: UnsafeMutablePointer<Parking>? = nil
        if shared.pointee.receivers.head == nil {
            if shared.pointee.count < shared.pointee.capacity {
                shared.pointee.push(value)
                state.unlock()
                return
            }
        } else if shared.pointee.give(value, &wake) {
            state.unlock()
            if let wake { Parking.wake(wake) }
            return
        }
        try sendSlowly(value, timeout: timeout)
    }

    /// The rest of ``send(_:timeout:)``, entered holding the lock: no receiver and no buffer space,
    /// so the sender queues its value and waits.
    @inlinable
    @inline(never)
    func sendSlowly(_ value: Element, timeout: Duration?) throws {
        let shared = state.storage
        var value = value
        let closed = try withUnsafeMutablePointer(to: &value) { pointer throws -> Bool in
            try blockingWait(
                "Channel.send", timeout: timeout, cancellable: true, slot: UnsafeMutableRawPointer(pointer),
                publish: { node in shared.pointee.senders.append(node) },
                unlock: { state.unlock() },
                dequeue: { node in state.withLock { $0.senders.remove(node) } })
        }
        if closed { throw SyncError.closed(operation: "Channel.send") }
    }

    /// Sends a value if a receiver waits or the buffer has space.
    /// - Parameter value: The value.
    /// - Returns: Whether the value was delivered.
    /// - Throws: ``SyncError/closed(operation:)``.
    @inlinable
    public func trySend(_ value: Element) throws(SyncError) -> Bool {
        var wake: UnsafeMutablePointer<Parking>? = nil
        let sent = try state.withLock { state throws(SyncError) -> Bool in
            if state.closed { throw .closed(operation: "Channel.trySend") }
            return state.give(value, &wake)
        }
        if let wake { Parking.wake(wake) }
        return sent
    }

    // MARK: Receive

    /// Receives the next value, parking until there is one. A suspension point.
    /// - Returns: The value.
    /// - Throws: ``SyncError/closed(operation:)`` once the channel is closed and drained;
    ///   `CancellationError` (no value was taken).
    @inlinable
    public func receive() throws -> Element { try receive(timeout: nil) }

    /// Receives the next value, waiting at most `timeout`.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Returns: The value.
    /// - Throws: ``SyncError/timedOut(operation:)``, ``SyncError/closed(operation:)``,
    ///   `CancellationError`; no value was taken in each case.
    @inlinable
    public func receive(timeout: Duration?) throws -> Element {
        // One lock round: a buffered value and no parked sender to move in (nobody is woken), a
        // value from `take` (which serves parked senders too), or else (still holding the lock)
        // the receiver's node in the queue.
        state.lock()
        let shared = state.storage
        if shared.pointee.count > 0 && shared.pointee.senders.head == nil {
            let value = shared.pointee.pop()
            state.unlock()
            return value
        }
        var wake: UnsafeMutablePointer<Parking>? = nil
        if let value = shared.pointee.take(&wake) {
            state.unlock()
            if let wake { Parking.wake(wake) }
            return value
        }
        if shared.pointee.closed {
            state.unlock()
            throw SyncError.closed(operation: "Channel.receive")
        }
        return try receiveSlowly(timeout: timeout)
    }

    /// The rest of ``receive(timeout:)``, entered holding the lock: nothing to take and the
    /// channel open, so the receiver queues and waits.
    @inlinable
    @inline(never)
    func receiveSlowly(timeout: Duration?) throws -> Element {
        let shared = state.storage
        var received: Element? = nil
        _ = try withUnsafeMutablePointer(to: &received) { pointer throws -> Bool in
            try blockingWait(
                "Channel.receive", timeout: timeout, cancellable: true, slot: UnsafeMutableRawPointer(pointer),
                publish: { node in shared.pointee.receivers.append(node) },
                unlock: { state.unlock() },
                dequeue: { node in state.withLock { $0.receivers.remove(node) } })
        }
        if let received { return received }
        throw SyncError.closed(operation: "Channel.receive")
    }

    /// Receives a value if one is ready.
    /// - Returns: The value, or `nil` if none is ready.
    /// - Throws: ``SyncError/closed(operation:)`` once the channel is closed and drained.
    @inlinable
    public func tryReceive() throws(SyncError) -> Element? {
        var wake: UnsafeMutablePointer<Parking>? = nil
        let value = try state.withLock { state throws(SyncError) -> Element? in
            if let value = state.take(&wake) { return value }
            if state.closed { throw .closed(operation: "Channel.tryReceive") }
            return nil
        }
        if let wake { Parking.wake(wake) }
        return value
    }

    // MARK: Close

    /// Closes the channel gracefully: buffered values stay receivable; parked receivers (there are
    /// none while values are buffered) and parked senders fail with
    /// ``SyncError/closed(operation:)``. Idempotent.
    public func close() {
        let (receivers, senders) = state.withLock { state in
            state.closed = true
            return (state.receivers.claimAll(closed: true), state.senders.claimAll(closed: true))
        }
        receivers.wakeAll()
        senders.wakeAll()
    }

    /// Closes the channel and discards its buffer.
    /// - Returns: The buffered values that will never be received, oldest first.
    @discardableResult
    public func closeImmediately() -> [Element] {
        let (dropped, receivers, senders) = state.withLock { state in
            state.closed = true
            var dropped: [Element] = []
            while state.count > 0 { dropped.append(state.pop()) }
            return (dropped, state.receivers.claimAll(closed: true), state.senders.claimAll(closed: true))
        }
        receivers.wakeAll()
        senders.wakeAll()
        return dropped
    }

    // MARK: Select

    /// A select arm that receives a value; its result is `nil` if the channel is closed and drained.
    /// - Returns: The arm.
    @inlinable
    public func onReceive() -> SelectCase<Element?> {
        let arm = ChannelArm<Element, Element?>.make(self, nil)
        return SelectCase(
            register: { waiter in arm.header.registerReceive(waiter, into: arm.slot) },
            unregister: { waiter in arm.header.state.withLock { $0.receivers.remove(waiter.node) } },
            finish: { waiter in
                // Taken out, so a case selected again starts empty (and holds no value meanwhile).
                defer { arm.slot.pointee = nil }
                return waiter.node.pointee.closed ? nil : arm.slot.pointee
            })
    }

    /// A select arm that sends `value`; it throws ``SyncError/closed(operation:)`` if it won because
    /// the channel closed. If another arm wins, `value` was not sent.
    /// - Parameter value: The value to send.
    /// - Returns: The arm.
    @inlinable
    public func onSend(_ value: Element) -> SelectCase<Void> {
        let arm = ChannelArm<Element, Element>.make(self, value)
        return SelectCase(
            register: { waiter in arm.header.registerSend(waiter, from: arm.slot) },
            unregister: { waiter in arm.header.state.withLock { $0.senders.remove(waiter.node) } },
            finish: { waiter in
                if waiter.node.pointee.closed { throw SyncError.closed(operation: "Channel.onSend") }
            })
    }

    /// A receive arm's registration: under the lock, take a value now (after claiming the select)
    /// or queue the waiter with `slot` to receive into.
    @inlinable
    func registerReceive(_ waiter: SelectWaiter, into slot: UnsafeMutablePointer<Element?>) -> SelectRegistration {
        var wake: UnsafeMutablePointer<Parking>? = nil
        let outcome = state.withLock { state -> SelectRegistration in
            let me = waiter.node.pointee.parking
            if state.count > 0 || state.senders.hasWaiter(excluding: me) || state.closed {
                if !waiter.claim() { return .lost }
                if let value = state.take(&wake, excluding: me) {
                    slot.pointee = value
                    return .completed
                }
                if state.closed {
                    waiter.node.pointee.closed = true
                    return .completed
                }
                // Only stale senders were queued (now dropped); other arms may have lost their
                // nodes to peers meanwhile, so start over.
                waiter.unclaim()
                return .retry
            }
            waiter.node.pointee.slot = UnsafeMutableRawPointer(slot)
            state.receivers.append(waiter.node)
            return .registered
        }
        if let wake { Parking.wake(wake) }
        return outcome
    }

    /// A send arm's registration: under the lock, hand the value over now (after claiming the
    /// select) or queue the waiter with the value at `value`.
    @inlinable
    func registerSend(_ waiter: SelectWaiter, from value: UnsafeMutablePointer<Element>) -> SelectRegistration {
        var wake: UnsafeMutablePointer<Parking>? = nil
        let outcome = state.withLock { state -> SelectRegistration in
            let me = waiter.node.pointee.parking
            if state.closed || state.receivers.hasWaiter(excluding: me) || state.count < state.capacity {
                if !waiter.claim() { return .lost }
                if state.closed {
                    waiter.node.pointee.closed = true
                    return .completed
                }
                if state.give(value.pointee, &wake, excluding: me) { return .completed }
                waiter.unclaim()
                return .retry
            }
            // A sender's slot holds the value itself (an `Element`, not an optional).
            waiter.node.pointee.slot = UnsafeMutableRawPointer(value)
            state.senders.append(waiter.node)
            return .registered
        }
        if let wake { Parking.wake(wake) }
        return outcome
    }
}

extension Channel: Selectable {
    /// ``onReceive()``.
    public func selectCase() -> SelectCase<Element?> { onReceive() }
}
