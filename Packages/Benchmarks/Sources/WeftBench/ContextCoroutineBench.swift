#if canImport(Glibc)
import Glibc
#endif
import WeftContext

/// Nanoseconds to create a coroutine (pooled stack), run it to completion and release it.
func measureCreateDestroy() throws -> Double {
    let rounds = 200_000
    var best = Double.infinity
    var total = 0
    for _ in 0..<5 {
        let start = nowNanoseconds()
        for index in 0..<rounds {
            let coroutine = try Coroutine<Int, Int, Int> { value, _ in value + 1 }
            if case .finished(let value) = try coroutine.resume(index) { total &+= value }
        }
        best = min(best, (nowNanoseconds() - start) / Double(rounds))
    }
    if total == 0 { print("context: unexpected zero") }
    return best
}

/// Heap allocations per create/run/release cycle (the malloc interposer's count over many cycles).
func measureCreateDestroyAllocations() throws -> Double {
    let rounds = 10_000
    var total = 0
    let allocations = try AllocationCounter.allocations {
        for index in 0..<rounds {
            let coroutine = try Coroutine<Int, Int, Int> { value, _ in value + 1 }
            if case .finished(let value) = try coroutine.resume(index) { total &+= value }
        }
    }
    if total == 0 { print("context: unexpected zero") }
    return Double(allocations) / Double(rounds)
}

/// Nanoseconds for the parts of create/destroy: a pool allocate+release (the shared pool, looked
/// up once as a coroutine does), and a coroutine created and released without running (stack,
/// object, records; no switch).
func measureCreateDestroyParts() throws -> (pool: Double, unstarted: Double) {
    let rounds = 200_000
    var pool = Double.infinity
    var unstarted = Double.infinity
    for _ in 0..<5 {
        let shared = StackPool.shared
        var start = nowNanoseconds()
        for _ in 0..<rounds { shared.release(try shared.allocate()) }
        pool = min(pool, (nowNanoseconds() - start) / Double(rounds))
        start = nowNanoseconds()
        for _ in 0..<rounds { _ = try Coroutine<Int, Int, Int> { value, _ in value } }
        unstarted = min(unstarted, (nowNanoseconds() - start) / Double(rounds))
    }
    return (pool, unstarted)
}

/// Resident bytes per parked coroutine: `count` coroutines (all the mapping limit allows when nil)
/// each resumed once and parked in a yield; RSS measured from /proc/self/statm before and after.
func measureParked(kind: Stack.Kind, count: Int?) throws -> Double {
    let pool = try StackPool(configuration: .init(maximumCachedGuardedStacks: 100_000))
    let target: Int
    if let count {
        target = count
    } else {
        // Leave room for the mappings malloc and the runtime still need.
        target = max(0, (maxMapCount() - mapCount() - 2000) / 2)
    }
    var coroutines: [Coroutine<Void, Int, Void>] = []
    coroutines.reserveCapacity(target)
    let before = residentBytes()
    for index in 0..<target {
        let coroutine = try Coroutine<Void, Int, Void>(stack: kind, pool: pool) { _, yielder in
            var local = index
            while true { local += try yielder.yield(local) == () ? 1 : 0 }
        }
        _ = try coroutine.resume()
        coroutines.append(coroutine)
    }
    let after = residentBytes()
    let perCoroutine = Double(after - before) / Double(max(target, 1))
    if kind == .guarded { print("context: \(target) parked coroutines on guarded stacks") }
    coroutines.removeAll()
    return perCoroutine.rounded()
}

/// vm.max_map_count.
func maxMapCount() -> Int {
    guard let file = fopen("/proc/sys/vm/max_map_count", "r") else { return 65530 }
    defer { fclose(file) }
    var value = 0
    _ = withUnsafeMutablePointer(to: &value) { pointer in withVaList([pointer]) { vfscanf(file, "%ld", $0) } }
    return value
}

/// Mappings this process holds (lines of /proc/self/maps).
func mapCount() -> Int {
    guard let file = fopen("/proc/self/maps", "r") else { return 0 }
    defer { fclose(file) }
    var lines = 0
    while true {
        let c = getc(file)
        if c == EOF { break }
        if c == 10 { lines += 1 }
    }
    return lines
}
