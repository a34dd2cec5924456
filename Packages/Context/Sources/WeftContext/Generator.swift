/// A `Sequence` whose elements are produced by a body that yields them, run as a ``Coroutine``.
///
/// ```swift
/// let fibonacci = Generator<Int> { yield in
///     var (a, b) = (0, 1)
///     while true { try yield(a); (a, b) = (b, a + b) }
/// }
/// print(Array(fibonacci.prefix(10)))  // [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
/// ```
///
/// Each iterator runs its own coroutine. Stopping early (as `prefix` does) releases the iterator,
/// which cancels the suspended body: `yield` throws ``CoroutineCancelled`` and the body unwinds.
public struct Generator<Element>: Sequence {
    /// Handed to the body: each call produces one element.
    public typealias Yield = Coroutine<Void, Element, Void>.Yielder

    @usableFromInline let body: @Sendable (Yield) throws -> Void
    @usableFromInline let stack: Stack.Kind
    @usableFromInline let pool: StackPool

    /// Creates a generator.
    /// - Parameters:
    ///   - stack: the class of stack each iterator's coroutine runs on.
    ///   - pool: where stacks come from.
    ///   - body: yields the elements in order; returning ends the sequence. An error other than
    ///     ``CoroutineCancelled`` thrown by it stops the process (a `Sequence` cannot throw).
    @inlinable
    public init(
        stack: Stack.Kind = .guarded,
        pool: StackPool = .shared,
        _ body: @escaping @Sendable (Yield) throws -> Void
    ) {
        self.body = body
        self.stack = stack
        self.pool = pool
    }

    /// Starts a new run of the body. Stops the process with a message if no stack can be had
    /// (a `Sequence` cannot throw); use ``Coroutine`` directly to handle ``StackError``.
    /// - Returns: an iterator over this run.
    @inlinable
    public func makeIterator() -> Iterator {
        let body = self.body
        do {
            return Iterator(coroutine: try Coroutine(stack: stack, pool: pool) { _, yielder in try body(yielder) })
        } catch {
            fatalError("Generator.makeIterator: \(error)")
        }
    }

    /// Iterates one run of a ``Generator``.
    public struct Iterator: IteratorProtocol {
        @usableFromInline var coroutine: Coroutine<Void, Element, Void>?

        @inlinable
        init(coroutine: Coroutine<Void, Element, Void>) { self.coroutine = coroutine }

        /// Resumes the body for the next element.
        /// - Returns: the next element, or `nil` once the body has returned.
        @inlinable
        public mutating func next() -> Element? {
            guard let running = coroutine else { return nil }
            do {
                switch try running.resume() {
                case .yielded(let element):
                    return element
                case .finished:
                    coroutine = nil
                    return nil
                }
            } catch {
                fatalError("Generator.Iterator.next: \(error)")
            }
        }
    }
}

/// A generator holds only its `@Sendable` body and where its stacks come from, so it can be shared
/// between threads (each iteration still runs its own coroutine).
extension Generator: Sendable {}
