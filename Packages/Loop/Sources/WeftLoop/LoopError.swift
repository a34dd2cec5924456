import SystemPackage

/// An error from the event loop: the system error number and the operation that produced it.
///
/// Errors never allocate: the operation name is a static string, so completing an operation with an
/// error costs the same as completing it with a result.
public struct LoopError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The system error number, as swift-system's `Errno`.
    public let code: Errno
    /// The name of the operation or loop call that failed, such as `"recv"` or `"submit"`.
    public let operation: StaticString

    /// Creates an error for an operation.
    /// - Parameters:
    ///   - code: The system error number.
    ///   - operation: The name of the operation that failed.
    public init(_ code: Errno, operation: StaticString) {
        self.code = code
        self.operation = operation
    }

    /// Whether the error means the operation was cancelled (`ECANCELED`).
    public var isCancellation: Bool { code == .canceled }

    /// A message naming the operation and the error, such as `recv: Connection reset by peer (ECONNRESET)`.
    public var description: String { "\(operation): \(code)" }

    /// Compares the error number and the operation name.
    /// - Parameters:
    ///   - lhs: An error.
    ///   - rhs: Another error.
    /// - Returns: Whether both carry the same code for the same operation.
    public static func == (lhs: LoopError, rhs: LoopError) -> Bool {
        lhs.code == rhs.code && lhs.operation.description == rhs.operation.description
    }
}
