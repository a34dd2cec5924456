/// The generic part of a coroutine: the body and the values passing in and out.
final class CoroutineBox<Input, Output, Result>: CoroutineCore, @unchecked Sendable {
    let function: (Input, Coroutine<Input, Output, Result>.Yielder) throws -> Result
    var input: Input?
    var output: Output?
    var outcome: Swift.Result<Result, any Error>?

    init(stack: Stack, pool: StackPool, function: @escaping (Input, Coroutine<Input, Output, Result>.Yielder) throws -> Result) {
        self.function = function
        super.init(stack: stack, pool: pool)
    }

    override func runBody() {
        let value = input.take()!
        do {
            outcome = .success(try function(value, Coroutine<Input, Output, Result>.Yielder(box: self)))
        } catch {
            outcome = .failure(error)
        }
    }
}
