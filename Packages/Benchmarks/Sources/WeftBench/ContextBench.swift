#if canImport(Glibc)
import Glibc
#endif
import WeftContext

/// The `context` suite (WeftContext): switch cost with and without the runtime hooks, the ratio to
/// a minimal C switch measured in the same run, coroutine create/destroy cost and the resident
/// memory of parked coroutines on both stack classes.
func runContextBenchmarks() throws {
    let full = measureSwitch(hooks: true)
    let raw = measureSwitch(hooks: false)
    report("context", "switch_ns", full)
    report("context", "switch_raw_ns", raw)
    if let c = try runCBaseline("context_switch") {
        report("context", "c_switch_ns", c)
        report("context", "switch_vs_c", full / c)
    }
    report("context", "create_destroy_ns", try measureCreateDestroy())
    report("context", "create_destroy_allocs", try measureCreateDestroyAllocations())
    let parts = try measureCreateDestroyParts()
    report("context", "pool_cycle_ns", parts.pool)
    report("context", "create_unstarted_ns", parts.unstarted)
    report("context", "parked_bytes", try measureParked(kind: .compact, count: 200_000))
    report("context", "parked_guarded_bytes", try measureParked(kind: .guarded, count: nil))
}

/// Monotonic clock in nanoseconds.
func nowNanoseconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) * 1e9 + Double(time.tv_nsec)
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    _ = withUnsafeMutablePointer(to: &size) { sizePointer in
        withUnsafeMutablePointer(to: &resident) { residentPointer in
            withVaList([sizePointer, residentPointer]) { vfscanf(file, "%ld %ld", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}
