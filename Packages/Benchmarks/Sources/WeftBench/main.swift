// Benchmark driver: `WeftBench SUITE...`, run through Scripts/bench. Each suite prints its figures as
// `SUITE.METRIC: NUMBER` lines (see Report.swift); the C baselines are in $WEFT_BENCH_C_BIN.
// `WeftBench serve-NAME --port P ...` runs one of the driver's own servers, which the suites start as
// child processes so that the server's CPU time and allocations are measured apart from the client's.
#if canImport(Glibc)
import Glibc
#endif

let suites: [(name: String, run: () throws -> Void)] = [
    ("context", runContextBenchmarks),
    ("loop", runLoopBenchmarks),
    ("runtime", runRuntimeBenchmarks),
    ("sync", runSyncBenchmarks),
]

let servers: [(name: String, run: ([String]) throws -> Void)] = [
    ("serve-loop-echo", serveLoopEcho),
    ("serve-fiber-echo", serveFiberEcho),
]

var requested = Array(CommandLine.arguments.dropFirst())
if let first = requested.first, let server = servers.first(where: { $0.name == first }) {
    do {
        try ServerProcess.prepare()
        try server.run(Array(requested.dropFirst()))
        exit(0)
    } catch {
        var message = "WeftBench \(first): \(error)\n"
        message.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        exit(1)
    }
}
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
printDeferredTables()
