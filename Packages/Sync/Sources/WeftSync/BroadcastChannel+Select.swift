import WeftRuntime

extension BroadcastChannel.Subscriber: Selectable {
    /// A select arm that receives this subscriber's next message; its result is `nil` once the
    /// channel is closed and every kept message was read. If another arm wins, the subscriber's
    /// position does not move.
    ///
    /// The arm throws ``SyncError/lagged(missed:)`` when it won because the subscriber fell behind
    /// (the next receive continues with the oldest message still kept).
    /// - Returns: The arm.
    public func onReceive() -> SelectCase<Element?> {
        SelectCase(
            register: { [self] waiter in
                channel.state.withLock { state in
                    // The message is taken in `finish`, by the arm that won: the subscriber has
                    // one reader at a time, and sends only add messages.
                    if isReady(state) { return waiter.claim() ? .completed : .lost }
                    state.waiters.append(waiter.node)
                    return .registered
                }
            },
            unregister: { [self] waiter in channel.state.withLock { $0.waiters.remove(waiter.node) } },
            finish: { [self] _ in try result(channel.state.withLock { step(&$0) }) })
    }

    /// ``onReceive()``.
    public func selectCase() -> SelectCase<Element?> { onReceive() }

    /// This subscriber's messages for async code: `for try await message in subscriber.values`.
    /// Waiting suspends the task (no thread is blocked).
    ///
    /// Iteration ends once the channel is closed and every kept message was read. Falling behind
    /// throws ``SyncError/lagged(missed:)`` (which ends a `for try await` loop; an iterator driven
    /// by hand may call `next()` again and continues with the oldest message still kept).
    public var values: AsyncValues { AsyncValues(subscriber: self) }

    /// A subscriber's messages as an `AsyncSequence`.
    public struct AsyncValues: AsyncSequence, Sendable {
        let subscriber: BroadcastChannel.Subscriber

        /// The async iterator.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let subscriber: BroadcastChannel.Subscriber

            /// Receives the next message, suspending the task while none is ready.
            /// - Returns: The message, or `nil` once the channel is closed and drained.
            /// - Throws: ``SyncError/lagged(missed:)``; `CancellationError` if the task is
            ///   cancelled while it waits (no message is taken then).
            public mutating func next() async throws -> Element? { try await subscriber.receiveAsync() }
        }

        /// Makes the async iterator.
        /// - Returns: The iterator.
        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(subscriber: subscriber) }
    }

    /// A receive for async code: a heap-boxed parking resumed through a continuation.
    func receiveAsync() async throws -> Element? {
        while true {
            try Task.checkCancellation()
            let parking = AsyncParking()
            let wait = AsyncWaitNode<Void>(parking: parking.parking, slot: ())
            defer { wait.free() }
            let ready = channel.state.withLock { state -> Step? in
                let next = step(&state)
                if case .empty = next {
                    state.waiters.append(wait.node)
                    return nil
                }
                return next
            }
            if let ready { return try result(ready) }
            let outcome = await parking.park()
            if outcome < Parking.Claim.firstSignal {
                channel.state.withLock { $0.waiters.remove(wait.node) }
                throw CancellationError()
            }
            // Woken by a send or the close: the next step finds it.
        }
    }
}
