/// Misuse of a ``Coroutine``, reported by ``Coroutine/resume(_:)`` instead of corrupting anything.
public enum CoroutineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The coroutine's body already returned or threw.
    case finished
    /// The coroutine is running right now: on another thread, or it is (indirectly) the one
    /// trying to resume it, e.g. its body resumed a coroutine that now resumes it back.
    case alreadyRunning
    /// The coroutine's own body called `resume` on it.
    case resumedFromInside

    /// A sentence naming the operation.
    public var description: String {
        switch self {
        case .finished: return "Coroutine.resume: the coroutine has finished"
        case .alreadyRunning: return "Coroutine.resume: the coroutine is already running (on another thread, or it is resuming this one)"
        case .resumedFromInside: return "Coroutine.resume: a coroutine cannot resume itself"
        }
    }
}

/// Thrown by ``Coroutine/Yielder/yield(_:)`` when the coroutine was released while suspended:
/// the body should let it propagate so its frames unwind and release what they hold.
public struct CoroutineCancelled: Error, Sendable, Equatable, CustomStringConvertible {
    /// Creates the error.
    public init() {}

    /// A sentence saying what happened.
    public var description: String { "Coroutine: released while suspended; its body is unwinding" }
}

/// What one ``Coroutine/resume(_:)`` produced.
public enum CoroutineStep<Output, Result> {
    /// The body yielded this value and is suspended.
    case yielded(Output)
    /// The body returned this value; the coroutine is finished.
    case finished(Result)
}

extension CoroutineStep: Sendable where Output: Sendable, Result: Sendable {}
extension CoroutineStep: Equatable where Output: Equatable, Result: Equatable {}
