import Foundation
import Glibc

/// The process's open descriptors, for the leak checks that end the tests.
public enum OpenDescriptors {
    /// The descriptors open now, without the one this call reads `/proc/self/fd` through (it
    /// takes the lowest free number, which a descriptor leaked later would take in its turn).
    public static func current() -> Set<Int32> {
        let listing = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard listing >= 0 else { return [] }
        guard let directory = fdopendir(listing) else {
            close(listing)
            return []
        }
        defer { closedir(directory) }
        var descriptors = Set<Int32>()
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let descriptor = Int32(name), descriptor != listing { descriptors.insert(descriptor) }
        }
        return descriptors
    }

    /// What a descriptor refers to (`socket:[1234]`, a path), or nil if it is not open.
    public static func describe(_ descriptor: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)")
    }

    /// The descriptors open now that were not in `before`, described. Left out: timerfds, which
    /// Dispatch opens, one per clock and priority, the first time something sleeps on it (at a
    /// moment no test controls; Weft never makes timerfds), and descriptors another thread closed
    /// again before they could be described.
    public static func leaked(since before: Set<Int32>) -> [String] {
        current().subtracting(before).sorted().compactMap { descriptor in
            guard let target = describe(descriptor), target != "anon_inode:[timerfd]" else { return nil }
            return "\(descriptor) -> \(target)"
        }
    }
}
