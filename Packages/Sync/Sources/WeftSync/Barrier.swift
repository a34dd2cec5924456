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
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            var leader = false
            let remaining = deadline.map { max(.zero, $0 - ContinuousClock.now) }
            let again = try blockingWait(
                "Barrier.wait", timeout: remaining, cancellable: true,
                enqueue: { node in
                    // Arriving counts once: no fast first pass.
                    guard let node else { return .waiting }
                    let (enqueued, woken) = state.withLock { state -> (Enqueued, WaitQueue) in
                        state.arrived += 1
                        if state.arrived < parties { return (state.waiters.wait(node), WaitQueue()) }
                        // The round is full if every other arrival is still waiting. One that was
                        // cancelled or timed out has claimed its own wait and is about to leave:
                        // it does not count, and then the round is short.
                        var woken = state.waiters.claimAll()
                        if woken.count == parties - 1 {
                            state.arrived = 0
                            leader = true
                            return (.done, woken)
                        }
                        // Short: the waiters claimed here arrive again (woken with `closed` set,
                        // they loop), and this caller waits as the first of the round.
                        woken.markClosed()
                        state.arrived = 1
                        return (state.waiters.wait(node), woken)
                    }
                    woken.wakeAll()
                    return enqueued
                },
                dequeue: { node in
                    state.withLock { state in
                        if node.pointee.linked {
                            state.waiters.remove(node)
                            state.arrived -= 1
                        }
                    }
                })
            if !again { return leader }
        }
    }
}
