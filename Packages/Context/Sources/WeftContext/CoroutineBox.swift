/// The generic part of a coroutine: the body. Values pass through the core's slots.
@usableFromInline
final class CoroutineBox<Input, Output, Result>: CoroutineCore, @unchecked Sendable {
    @usableFromInline let function: (Input, Coroutine<Input, Output, Result>.Yielder) throws -> Result

    @inlinable
    init(stack: Stack, pool: StackPool, function: @escaping (Input, Coroutine<Input, Output, Result>.Yielder) throws -> Result) {
        self.function = function
        super.init(stack: stack, pool: pool)
    }

    /// Runs on the coroutine's stack through the vtable, unspecialised: it touches the generic
    /// values only through typed pointers, which need no generic metadata lookups.
    override func runBody() {
        let input = inputSlot!.assumingMemoryBound(to: Input.self).move()
        do {
            let result = try function(input, Coroutine<Input, Output, Result>.Yielder(box: self))
            // No slot when `deinit` cancelled the body and it returned anyway: the result is dropped.
            resultSlot?.assumingMemoryBound(to: Result.self).initialize(to: result)
        } catch {
            failure = error
        }
    }
}
