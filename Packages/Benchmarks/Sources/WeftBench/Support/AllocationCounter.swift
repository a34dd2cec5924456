import CWeftBenchSupport

#if canImport(Glibc)
import Glibc
#endif

/// Heap allocations of this process, counted by the malloc interposer in CWeftBenchSupport.
enum AllocationCounter {
    /// Allocations so far (malloc, calloc, realloc, and the aligned variants).
    static var allocations: UInt64 { UInt64(weft_bench_allocations()) }

    /// Allocations made while `body` runs.
    static func allocations(during body: () throws -> Void) rethrows -> UInt64 {
        let before = allocations
        try body()
        return allocations - before
    }

    /// Makes this process answer SIGUSR1 with a line `allocs=N` on standard output, so that the
    /// driver can bracket a measured window in a server child process it cannot call into.
    static func reportOnSignal() throws {
        guard weft_bench_report_allocations_on(SIGUSR1) == 0 else {
            throw BenchError("sigaction SIGUSR1", errno: errno)
        }
    }
}

/// A class whose instances always live on the heap, to prove the counter sees Swift allocations.
private final class CountedProbe {
    var value: Int

    init(_ value: Int) {
        self.value = value
    }
}

/// Hands an object to code the optimiser cannot see, so it cannot be promoted to the stack.
@_optimize(none)
private func escape(_ object: AnyObject) {}

extension AllocationCounter {
    /// Checks that the interposer really sees Swift object allocations in this binary (a linker
    /// change could silently bypass it and make every `allocs_per_op` figure read zero).
    /// - Throws: ``BenchError`` if 1000 class instances were not all counted.
    static func verify() throws {
        let counted = allocations {
            for index in 0..<1000 { escape(CountedProbe(index)) }
        }
        guard counted >= 1000 else {
            throw BenchError("the allocation counter saw \(counted) of 1000 Swift allocations")
        }
    }
}
