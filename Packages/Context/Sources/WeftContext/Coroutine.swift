/// An asymmetric stackful coroutine, usable without any scheduler: ``resume(_:)`` runs its body
/// until the body yields a value or returns a result.
///
/// ```swift
/// let running = try Coroutine<Int, Int, String> { first, yielder in
///     var total = first
///     while total < 10 { total += try yielder.yield(total) }
///     return "done at \(total)"
/// }
/// try running.resume(1)   // .yielded(1)
/// try running.resume(5)   // .yielded(6)
/// try running.resume(5)   // .finished("done at 11")
/// ```
///
/// The body runs on its own stack from a ``StackPool``; the stack goes back to the pool as soon as
/// the body finishes. A suspended coroutine may be resumed from any thread, one resume at a time.
///
/// Releasing a coroutine while it is suspended resumes it one last time: the pending
/// ``Yielder/yield(_:)`` throws ``CoroutineCancelled`` so the body unwinds and releases what its
/// frames hold. A body that catches that error and yields again stops the process with a message
/// (it cannot be suspended forever on memory that is being freed).
public final class Coroutine<Input, Output, Result>: CoroutineCore, @unchecked Sendable {
    /// Handed to the body: suspends it with a value for the resumer.
    ///
    /// Valid only inside the body of the coroutine that received it; using it elsewhere stops the
    /// process with a message.
    public struct Yielder {
        // Unmanaged, not a strong or unowned reference: a reference loaded for the call would be
        // retained by the suspended frame, and a released coroutine could never be cancelled.
        @usableFromInline let box: Unmanaged<Coroutine<Input, Output, Result>>

        @usableFromInline
        init(box: Coroutine<Input, Output, Result>) { self.box = Unmanaged.passUnretained(box) }

        /// Suspends the body, handing `value` to the caller of ``Coroutine/resume(_:)``.
        /// - Parameter value: what this resume returns as ``CoroutineStep/yielded(_:)``.
        /// - Returns: the value given to the next ``Coroutine/resume(_:)``.
        /// - Throws: ``CoroutineCancelled`` when the coroutine was released while suspended.
        @inlinable
        public func yield(_ value: Output) throws(CoroutineCancelled) -> Input {
            let resumed: Bool = box._withUnsafeGuaranteedRef { box in
                box.yieldSlot().assumingMemoryBound(to: Output.self).initialize(to: value)
                return box.suspendBody()
            }
            guard resumed else { throw CoroutineCancelled() }
            return box._withUnsafeGuaranteedRef { $0.inputSlot!.assumingMemoryBound(to: Input.self).move() }
        }

        /// Same as ``yield(_:)``.
        /// - Parameter value: what the resume returns.
        /// - Returns: the value given to the next resume.
        /// - Throws: ``CoroutineCancelled`` when the coroutine was released while suspended.
        @inlinable
        @discardableResult
        public func callAsFunction(_ value: Output) throws(CoroutineCancelled) -> Input {
            try yield(value)
        }
    }

    @usableFromInline let function: (Input, Yielder) throws -> Result

    /// Here for the benefit of the inlinable code below: the coroutine is its own core.
    @usableFromInline var box: Coroutine<Input, Output, Result> { self }

    /// Creates a suspended coroutine; the body first runs at the first ``resume(_:)``.
    /// - Parameters:
    ///   - stack: the class of stack to run on.
    ///   - pool: where the stack comes from and returns to; `nil` (the default) is
    ///     ``StackPool/shared``.
    ///   - body: receives the first resume's value and a ``Yielder``; its result finishes the coroutine.
    /// - Throws: ``StackError`` when no stack can be had.
    @inlinable
    public init(
        stack: Stack.Kind = .guarded,
        pool: StackPool? = nil,
        body: @escaping @Sendable (Input, Yielder) throws -> Result
    ) throws(StackError) {
        function = body
        try super.init(kind: stack, pool: pool)
    }

    /// Runs on the coroutine's stack through the vtable, unspecialised: it touches the generic
    /// values only through typed pointers, which need no generic metadata lookups.
    override func runBody() {
        let input = inputSlot!.assumingMemoryBound(to: Input.self).move()
        do {
            let result = try function(input, Yielder(box: self))
            // No slot when `deinit` cancelled the body and it returned anyway: the result is dropped.
            resultSlot?.assumingMemoryBound(to: Result.self).initialize(to: result)
        } catch {
            failure = error
        }
    }

    /// Runs the body until it yields or finishes.
    /// - Parameter value: the body's first argument on the first resume; afterwards what the pending
    ///   ``Yielder/yield(_:)`` returns.
    /// - Returns: the yielded value, or the result when the body returned.
    /// - Throws: ``CoroutineError`` on misuse (finished, running elsewhere, resumed from its own
    ///   body), or whatever the body threw (the coroutine is then finished).
    @inlinable
    public func resume(_ value: Input) throws -> CoroutineStep<Output, Result> {
        try box.begin()
        // The slots live on this stack for the duration of the switch; the body moves the input
        // out and initialises exactly one of output (it yielded) or result (it returned).
        return try withUnsafeTemporaryAllocation(of: Input.self, capacity: 1) { input in
            try withUnsafeTemporaryAllocation(of: Output.self, capacity: 1) { output in
                try withUnsafeTemporaryAllocation(of: Result.self, capacity: 1) { result in
                    input.baseAddress!.initialize(to: value)
                    box.inputSlot = UnsafeMutableRawPointer(input.baseAddress!)
                    box.outputSlot = UnsafeMutableRawPointer(output.baseAddress!)
                    box.resultSlot = UnsafeMutableRawPointer(result.baseAddress!)
                    box.enterBody()
                    box.inputSlot = nil
                    box.outputSlot = nil
                    box.resultSlot = nil
                    if box.bodyFinished {
                        let failure = box.failure
                        box.failure = nil
                        if let failure {
                            box.settle()
                            throw failure
                        }
                        let value = result.baseAddress!.move()
                        box.settle()
                        return .finished(value)
                    }
                    let value = output.baseAddress!.move()
                    box.settle()
                    return .yielded(value)
                }
            }
        }
    }

    /// Whether the body has returned or thrown.
    public var isFinished: Bool { phase.load(ordering: .acquiring) == Phase.finished.rawValue }
}

extension Coroutine where Input == Void {
    /// Runs the body until it yields or finishes (for coroutines that take no input).
    /// - Returns: the yielded value, or the result when the body returned.
    /// - Throws: ``CoroutineError`` on misuse, or whatever the body threw.
    @inlinable
    public func resume() throws -> CoroutineStep<Output, Result> { try resume(()) }
}
