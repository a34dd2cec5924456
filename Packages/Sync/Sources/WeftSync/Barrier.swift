/// A reusable barrier for a fixed number of parties: each ``wait()`` parks until `parties` callers
/// have arrived, then all of them continue and the barrier starts over.
///
/// **Fairness:** the last arrival releases everyone at once. A waiter that is cancelled or times
/// out leaves the barrier (it no longer counts as arrived).
public final class Barrier: Sendable {
    struct State {
        var arrived = 0
        var waiters = WaitQueue()
    }
    let state = Guarded(State())
    /// The number of parties per round.
    public let parties: Int

    /// Creates a barrier.
    /// - Parameter parties: Callers per round (at least 1).
    public init(parties: Int) { self.parties = max(1, parties) }

    /// Waits for the round to fill. A suspension point.
    /// - Returns: `true` for exactly one caller per round (the last to arrive).
    /// - Throws: `CancellationError`.
    @discardableResult
    public func wait() throws -> Bool { try wait(timeout: nil) }

    /// Waits for the round to fill, at most `timeout`.
    /// - Parameter timeout: The longest wait, or `nil` for none.
    /// - Returns: `true` for the last caller of the round.
    /// - Throws: ``SyncError/timedOut(operation:)``, `CancellationError`.
    @discardableResult
    public func wait(timeout: Duration?) throws -> Bool {
        var leader = false
        var woken = WaitQueue()
        _ = try blockingWait(
            "Barrier.wait", timeout: timeout, cancellable: true,
            enqueue: { node in
                // Arriving counts once: no fast first pass.
                guard let node else { return .waiting }
                return state.withLock { state in
                    state.arrived += 1
                    if state.arrived == parties {
                        state.arrived = 0
                        woken = state.waiters.claimAll()
                        leader = true
                        return .done
                    }
                    return state.waiters.wait(node)
                }
            },
            dequeue: { node in
                state.withLock { state in
                    if node.pointee.linked {
                        state.waiters.remove(node)
                        state.arrived -= 1
                    }
                }
            })
        woken.wakeAll()
        return leader
    }
}
