import WeftRuntime

/// A channel where every subscriber receives every message, with a bounded history.
///
/// ``send(_:)`` never waits: it stores the message in a ring of `capacity` messages, overwriting
/// the oldest, and wakes every waiting subscriber. A subscriber that falls more than `capacity`
/// messages behind gets ``SyncError/lagged(missed:)`` once, telling it how many it missed, and then
/// continues with the oldest message still kept.
///
/// **Fairness:** a send releases all waiting subscribers at once.
public final class BroadcastChannel<Element: Sendable>: Sendable {
    struct State: @unchecked Sendable {
        var ring: [Element?]
        var sent: UInt64 = 0
        var closed = false
        var waiters = WaitQueue()
    }
    let state: Guarded<State>
    /// How many messages are kept for slow subscribers.
    public let capacity: Int

    /// Creates a broadcast channel.
    /// - Parameter capacity: Messages kept for subscribers that fall behind (at least 1).
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        state = Guarded(State(ring: Array(repeating: nil, count: max(1, capacity))))
    }

    /// A new subscriber that receives messages sent from now on.
    /// - Returns: The subscriber.
    public func subscribe() -> Subscriber { Subscriber(channel: self, cursor: state.withLock { $0.sent }) }

    /// Sends a message to every subscriber (never waits).
    /// - Parameter value: The message.
    /// - Throws: ``SyncError/closed(operation:)`` once the channel is closed.
    public func send(_ value: Element) throws(SyncError) {
        let (woken, evicted) = try state.withLock { state throws(SyncError) -> (WaitQueue, Element?) in
            if state.closed { throw .closed(operation: "BroadcastChannel.send") }
            // The message it replaces is moved out and dropped after the lock: its deinitialiser
            // may suspend, and must not run under a spin lock.
            var message: Element? = value
            swap(&state.ring[Int(state.sent % UInt64(capacity))], &message)
            state.sent += 1
            return (state.waiters.claimAll(), message)
        }
        woken.wakeAll()
        _ = consume evicted
    }

    /// Closes the channel: subscribers receive what is kept, then ``SyncError/closed(operation:)``.
    public func close() {
        let woken = state.withLock { state in
            state.closed = true
            return state.waiters.claimAll(closed: true)
        }
        woken.wakeAll()
    }

    /// One subscriber's position in a ``BroadcastChannel``. Use it from one fiber or thread at a
    /// time.
    public final class Subscriber: Sendable {
        let channel: BroadcastChannel
        let cursor: Guarded<UInt64>

        init(channel: BroadcastChannel, cursor: UInt64) {
            self.channel = channel
            self.cursor = Guarded(cursor)
        }

        enum Step {
            case value(Element), lagged(Int), closed, empty
        }

        /// Whether ``step(_:)`` would find something (a message, a lag or the close) without
        /// moving the cursor.
        func isReady(_ state: State) -> Bool {
            state.closed || cursor.withLock { $0 < state.sent }
        }

        func step(_ state: inout State) -> Step {
            cursor.withLock { cursor in
                let capacity = UInt64(channel.capacity)
                let oldest = state.sent > capacity ? state.sent - capacity : 0
                if cursor < oldest {
                    let missed = Int(oldest - cursor)
                    cursor = oldest
                    return .lagged(missed)
                }
                if cursor < state.sent {
                    let value = state.ring[Int(cursor % capacity)]!
                    cursor += 1
                    return .value(value)
                }
                return state.closed ? .closed : .empty
            }
        }

        /// Turns a step into the receive's result: `nil` once closed and drained.
        func result(_ step: Step) throws(SyncError) -> Element? {
            switch step {
            case .value(let value): return value
            case .lagged(let missed): throw .lagged(missed: missed)
            case .closed, .empty: return nil
            }
        }

        /// Receives the next message if one is ready.
        /// - Returns: The message, or `nil` if none is ready.
        /// - Throws: ``SyncError/lagged(missed:)``, ``SyncError/closed(operation:)``.
        public func tryReceive() throws(SyncError) -> Element? {
            switch channel.state.withLock({ step(&$0) }) {
            case .value(let value): return value
            case .lagged(let missed): throw .lagged(missed: missed)
            case .closed: throw .closed(operation: "BroadcastChannel.tryReceive")
            case .empty: return nil
            }
        }

        /// Receives the next message, parking until there is one. A suspension point.
        /// - Parameter timeout: The longest wait, or `nil` for none.
        /// - Returns: The message.
        /// - Throws: ``SyncError/lagged(missed:)``, ``SyncError/closed(operation:)``,
        ///   ``SyncError/timedOut(operation:)``, `CancellationError`.
        public func receive(timeout: Duration? = nil) throws -> Element {
            while true {
                var result: Step = .empty
                _ = try blockingWait(
                    "BroadcastChannel.receive", timeout: timeout, cancellable: true,
                    enqueue: { node in
                        channel.state.withLock { state in
                            result = step(&state)
                            if case .empty = result {
                                return state.waiters.wait(node)
                            }
                            return .done
                        }
                    },
                    dequeue: { node in channel.state.withLock { $0.waiters.remove(node) } })
                switch result {
                case .value(let value): return value
                case .lagged(let missed): throw SyncError.lagged(missed: missed)
                case .closed: throw SyncError.closed(operation: "BroadcastChannel.receive")
                case .empty: continue
                }
            }
        }
    }
}
