import Foundation
import Glibc

/// The process's open descriptors, for the leak checks that end the tests.
public enum OpenDescriptors {
    /// The descriptors open now. The list includes the descriptor that reads `/proc/self/fd`
    /// itself; ``leaked(since:)`` knows to leave it out.
    public static func current() -> Set<Int32> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return Set(names.compactMap { Int32($0) })
    }

    /// What a descriptor refers to (`socket:[1234]`, a path), or nil if it is not open.
    public static func describe(_ descriptor: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
    }

    /// The descriptors open now that were not in `before`, described. Left out: descriptors that
    /// were closed again by the time they are described (the listing's own directory descriptor,
    /// whose number moves when another descriptor takes the one it had), and timerfds, which
    /// Dispatch opens, one per clock and priority, the first time something sleeps on it (at a
    /// moment no test controls; Weft never makes timerfds).
    public static func leaked(since before: Set<Int32>) -> [String] {
        current().subtracting(before).sorted().compactMap { descriptor in
            guard let target = describe(descriptor), target != "anon_inode:[timerfd]" else { return nil }
            return "\(descriptor) -> \(target)"
        }
    }
}
