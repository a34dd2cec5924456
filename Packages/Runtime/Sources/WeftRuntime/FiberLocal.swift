/// A value bound per fiber, like a task-local value for fibers (Swift's `@TaskLocal` follows the OS
/// thread, not the fiber, so it must not be used to carry values through fiber code).
///
/// Bindings are scoped with ``withValue(_:_:)`` and visible only to the fiber that made them
/// (children do not inherit them). Outside a fiber, ``value`` is the default and ``withValue(_:_:)``
/// runs its body without binding anything.
public final class FiberLocal<Value: Sendable>: Sendable {
    let defaultValue: Value

    /// Creates a fiber-local key.
    /// - Parameter defaultValue: What ``value`` reads where nothing is bound.
    public init(default defaultValue: Value) { self.defaultValue = defaultValue }

    /// The value bound in the calling fiber, or the default.
    public var value: Value {
        guard let fiber = Executor.currentFiber, let stored = fiber.locals?[ObjectIdentifier(self)] else {
            return defaultValue
        }
        return stored as! Value
    }

    /// Binds `value` in the calling fiber while `body` runs.
    /// - Parameters:
    ///   - value: The value to bind.
    ///   - body: The code that sees it.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws.
    public func withValue<R>(_ value: Value, _ body: () throws -> R) rethrows -> R {
        guard let fiber = Executor.currentFiber else { return try body() }
        let key = ObjectIdentifier(self)
        let previous = fiber.locals?[key]
        if fiber.locals == nil { fiber.locals = [:] }
        fiber.locals![key] = value
        defer { fiber.locals![key] = previous }
        return try body()
    }
}
