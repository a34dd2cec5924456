#if canImport(Glibc)
import Glibc
#endif

/// A benchmark that could not run: names what failed, with errno's text when a syscall failed.
struct BenchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }

    /// An error for a failed syscall; `code` must be errno read right after the call.
    init(_ operation: String, errno code: Int32) {
        self.description = "\(operation): \(String(cString: strerror(code)))"
    }
}
