import WeftRuntime

extension Channel: Sequence {
    /// Iterates over received values inside a fiber (or a thread): `for value in channel { … }`.
    ///
    /// Iteration ends when the channel is closed and drained, and also when the fiber is cancelled
    /// while it waits (the cancellation then counts as delivered; check `Fiber.isCancelled` or a
    /// flag of your own if the difference matters).
    public struct Iterator: IteratorProtocol {
        let channel: Channel

        /// Receives the next value.
        /// - Returns: The value, or `nil` once the channel is closed and drained (or on cancellation).
        public mutating func next() -> Element? { try? channel.receive() }
    }

    /// An iterator that receives until the channel is closed.
    /// - Returns: The iterator.
    public func makeIterator() -> Iterator { Iterator(channel: self) }

    /// The values of the channel for async code: `for try await value in channel.values { … }`.
    /// Waiting suspends the task (no thread is blocked); cancelling the task ends the wait with
    /// `CancellationError` and takes no value.
    public var values: AsyncValues { AsyncValues(channel: self) }

    /// The channel as an `AsyncSequence`.
    public struct AsyncValues: AsyncSequence, Sendable {
        let channel: Channel

        /// The async iterator.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: Channel

            /// Receives the next value, suspending the task while none is ready.
            /// - Returns: The value, or `nil` once the channel is closed and drained.
            /// - Throws: `CancellationError` if the task is cancelled while it waits.
            public mutating func next() async throws -> Element? { try await channel.receiveAsync() }
        }

        /// Makes the async iterator.
        /// - Returns: The iterator.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }
    }

    enum AsyncStep { case value(Element), closed, waiting }

    /// A receive for async code: a heap-boxed parking resumed through a continuation, and the
    /// node and slot in one allocation.
    func receiveAsync() async throws -> Element? {
        if let value = try? tryReceive() { return value }
        try Task.checkCancellation()
        let parking = AsyncParking()
        let wait = AsyncWaitNode<Element?>(parking: parking.parking, slot: nil)
        defer { wait.free() }
        var wake: UnsafeMutablePointer<Parking>? = nil
        let step = state.withLock { state -> AsyncStep in
            if let value = state.take(&wake) { return .value(value) }
            if state.closed { return .closed }
            state.receivers.append(wait.node)
            return .waiting
        }
        if let wake { Parking.wake(wake) }
        switch step {
        case .value(let value): return value
        case .closed: return nil
        case .waiting: break
        }
        let outcome = await parking.park()
        if outcome >= Parking.Claim.firstSignal {
            return wait.node.pointee.closed ? nil : wait.slot.pointee
        }
        state.withLock { $0.receivers.remove(wait.node) }
        throw CancellationError()
    }
}
