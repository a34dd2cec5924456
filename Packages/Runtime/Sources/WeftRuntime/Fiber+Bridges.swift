internal import Glibc
import WeftLoop

/// A pointer handed to another thread that writes through it before a wake (the wake orders it).
struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
}

/// A fiber reference handed to a task.
struct SendableFiber: @unchecked Sendable {
    let fiber: FiberCore
}

extension Fiber {
    /// Runs an `async` function from a fiber: the fiber parks (its thread keeps running other
    /// fibers), a task runs `body`, and its result wakes the fiber. Cancelling the fiber cancels
    /// the task, and the fiber keeps waiting for the task's outcome.
    /// - Parameter body: The async code, run in a detached task.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (`CancellationError` counts as the fiber's delivered
    ///   cancellation when the fiber was cancelled); `CancellationError` if the fiber was already
    ///   cancelled; ``FiberError/notInFiber(operation:)``.
    public static func `await`<R: Sendable>(_ body: @escaping @Sendable () async throws -> R) throws -> R {
        let fiber = try requireFiber("await")
        try fiber.checkCancellation()
        var slot: Result<R, any Error>? = nil
        return try withUnsafeMutablePointer(to: &slot) { pointer in
            let target = SendablePointer(pointer: pointer)
            let waiter = SendableFiber(fiber: fiber)
            let task = Task.detached {
                let outcome: Result<R, any Error>
                do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
                target.pointer.pointee = outcome
                FiberCore.wake(waiter.fiber)
            }
            fiber.parkPassingOnCancellation { task.cancel() }
            let outcome = pointer.pointee!
            if case .failure(let error) = outcome, error is CancellationError, fiber.cancelPending {
                fiber.markDelivered()
            }
            return try outcome.get()
        }
    }

    /// Runs blocking code on the loop's thread pool while the fiber parks; the executor's thread
    /// keeps running other fibers. Cancelling the fiber before the pool starts `body` skips it
    /// (`CancellationError`); once started, it runs to its end.
    /// - Parameter body: The blocking code (it runs on a pool thread).
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws; `CancellationError`; ``WeftLoop/LoopError`` (`work`);
    ///   ``FiberError/notInFiber(operation:)``.
    public static func spawnBlocking<R: Sendable>(_ body: @Sendable () throws -> R) throws -> R {
        _ = try requireFiber("spawnBlocking")
        return try withoutActuallyEscaping(body) { body in
            var result: Result<R, any Error>? = nil
            // A concrete closure type, so the C work function can call it without generics.
            var run: () -> Void = { result = Result { try body() } }
            try withUnsafeMutablePointer(to: &run) { run in
                var op = LoopOperation.work(blockingWork, argument: UnsafeMutableRawPointer(run))
                _ = try perform(&op)
            }
            return try result!.get()
        }
    }
}

let blockingWork: LoopWork = { argument in
    argument!.assumingMemoryBound(to: (() -> Void).self).pointee()
    return 0
}
