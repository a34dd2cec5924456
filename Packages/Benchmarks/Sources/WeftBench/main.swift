// Benchmark driver: `WeftBench SUITE...`, run through Scripts/bench. Each suite prints its figures as
// `SUITE.METRIC: NUMBER` lines (see Report.swift); the C baselines are in $WEFT_BENCH_C_BIN.
#if canImport(Glibc)
import Glibc
#endif

let suites: [(name: String, run: () throws -> Void)] = [
    ("context", runContextBenchmarks),
    ("loop", runLoopBenchmarks),
]

var requested = Array(CommandLine.arguments.dropFirst())
if requested == ["all"] { requested = suites.map(\.name) }
if requested.isEmpty {
    print("usage: WeftBench SUITE... (suites: \(suites.map(\.name).joined(separator: ", ")), all)")
    exit(2)
}
for name in requested {
    guard let suite = suites.first(where: { $0.name == name }) else {
        print("WeftBench: unknown suite '\(name)' (suites: \(suites.map(\.name).joined(separator: ", ")))")
        exit(2)
    }
    do {
        try suite.run()
    } catch {
        print("WeftBench: suite \(name) failed: \(error)")
        exit(1)
    }
}
