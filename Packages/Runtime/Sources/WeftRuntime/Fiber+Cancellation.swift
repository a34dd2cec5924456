import WeftLoop

extension Fiber {
    /// Runs `body` with cancellation deferred: suspension points inside do not throw
    /// `CancellationError` and pending operations are not cancelled; a cancellation that arrives
    /// meanwhile is delivered at the first suspension point after the shield. Nests.
    /// - Parameter body: The shielded code.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public static func withCancellationShield<R>(_ body: () throws -> R) rethrows -> R {
        guard let fiber = Executor.currentFiber else { return try body() }
        fiber.shieldDepth += 1
        defer {
            // The fiber may have migrated; `fiber` is the same object on any executor.
            fiber.shieldDepth -= 1
        }
        return try body()
    }

    /// Runs `body` with a time limit. When the time runs out the fiber is cancelled (its pending
    /// operation is cancelled in the loop); if `body` then ends with `CancellationError`, this
    /// throws ``TimeoutError`` instead. If `body` finishes before the cancellation reaches it, its
    /// result counts. Timeouts nest: each converts only the cancellation it caused.
    /// - Parameters:
    ///   - duration: The time limit.
    ///   - body: The code to run.
    /// - Returns: What `body` returns.
    /// - Throws: ``TimeoutError``, what `body` throws, ``FiberError/notInFiber(operation:)``.
    public static func withTimeout<R>(_ duration: Duration, _ body: () throws -> R) throws -> R {
        guard let home = Executor.current, let fiber = home.current else {
            throw FiberError.notInFiber(operation: "withTimeout")
        }
        var frame = TimeoutFrame(fiber: fiber)
        var timer = LoopOperation.timer(after: duration)
        let outcome: Result<R, any Error> = withUnsafeMutablePointer(to: &frame) { frame in
            withUnsafeMutablePointer(to: &timer) { timer in
                do {
                    try home.loop.submit(timer, callback: timeoutCallback, context: UnsafeMutableRawPointer(frame))
                } catch {
                    return .failure(error)
                }
                let outcome = Result { try body() }
                fiber.settleTimer(timer, frame: frame, home: home)
                return outcome
            }
        }
        if frame.fired {
            fiber.claimTimeout()
            if case .failure(let error) = outcome, error is CancellationError {
                fiber.takeTimeoutConversion()
                throw TimeoutError(timeout: duration)
            }
        }
        return try outcome.get()
    }
}

/// The state a ``Fiber/withTimeout(_:_:)`` shares with its timer's callback (on the fiber's stack;
/// both run on the executor that owns the timer, so plain fields suffice).
struct TimeoutFrame: FiberTimerFrame {
    unowned(unsafe) let fiber: FiberCore
    var fired = false
    var done = false
    var waiting = false

    init(fiber: FiberCore) { self.fiber = fiber }
}

let timeoutCallback: LoopCallback = { raw, context in
    let frame = context!.assumingMemoryBound(to: TimeoutFrame.self)
    let op = LoopOperation.pointer(raw)
    frame.pointee.done = true
    if op.pointee.result == 0 {
        frame.pointee.fired = true
        frame.pointee.fiber.cancel(timeout: true)
    }
    if frame.pointee.waiting { FiberCore.wake(frame.pointee.fiber) }
}

extension FiberCore {
    /// Moves the running fiber to `target`'s run queue (pinned there until it runs).
    func hop(to target: Executor) {
        Executor.currentUnmanaged!._withUnsafeGuaranteedRef { $0.hopTarget = target }
        switchOut(.hop)
    }
}

/// The state a fiber shares with the callback of a loop timer it armed on its home executor: the
/// callback sets `done`, and wakes the fiber if it is `waiting` for the callback.
protocol FiberTimerFrame {
    var done: Bool { get }
    var waiting: Bool { get set }
}

extension FiberCore {
    /// Finishes with a timer this fiber armed on `home`'s loop before the timer's frame ends: the
    /// timer belongs to that loop, so the fiber goes back there, cancels the timer if it has not
    /// completed, and waits for its callback.
    func settleTimer<Frame: FiberTimerFrame>(
        _ timer: UnsafeMutablePointer<LoopOperation>, frame: UnsafeMutablePointer<Frame>, home: Executor
    ) {
        if Executor.currentUnmanaged?.toOpaque() != Unmanaged.passUnretained(home).toOpaque() {
            hop(to: home)
        }
        if !frame.pointee.done {
            home.loop.cancel(timer)
            frame.pointee.waiting = true
            park()
        }
    }
}
