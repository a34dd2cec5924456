#if canImport(Glibc)
import Glibc
#endif

/// An echo server to measure: a C baseline or one of the driver's own `serve-*` subcommands, started
/// as a child process so its CPU time (and, for Swift servers, its allocations) is its own.
struct EchoServer {
    /// A short label for tables and errors.
    let name: String
    /// The command line without the port, which ``runEcho(_:load:)`` appends as the last argument.
    let arguments: [String]
    /// Whether the server answers SIGUSR1 with `allocs=N` (see ``AllocationCounter/reportOnSignal()``).
    let reportsAllocations: Bool

    /// A C baseline from $WEFT_BENCH_C_BIN, called as `PROGRAM PORT`.
    static func c(_ program: String) throws -> EchoServer {
        EchoServer(name: program, arguments: [try Programs.cBaseline(program)], reportsAllocations: false)
    }

    /// A `WeftBench SUBCOMMAND ... --port PORT` server of this driver.
    static func driver(_ name: String, _ subcommand: [String]) throws -> EchoServer {
        EchoServer(name: name, arguments: [try Programs.driver()] + subcommand + ["--port"], reportsAllocations: true)
    }
}

/// The closed-loop load applied by the C load client.
struct EchoLoad {
    var connections = 1000
    var messageSize = 64
    var seconds = 3.0
    var warmup = 1.0
}

/// What one echo run measured over its window.
struct EchoResult {
    var messagesPerSecond: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var messages: Double
    /// Server CPU time (user + system) over the measured window.
    var serverCPUSeconds: Double
    /// Server heap allocations over the measured window, when the server reports them.
    var serverAllocations: UInt64?

    var cpuMicrosecondsPerMessage: Double { serverCPUSeconds * 1e6 / max(messages, 1) }
    var allocationsPerMessage: Double? { serverAllocations.map { Double($0) / max(messages, 1) } }
}

/// The server is pinned to this CPU, the load client to the other.
let serverCPU = 0
let clientCPU = 1

/// Starts `server` on a free port (pinned to ``serverCPU``), waits until it listens, runs the C load
/// client against it (pinned to ``clientCPU``), and samples the server's CPU time and allocation
/// count exactly when the client reports that its measured window opens and closes.
func runEcho(_ server: EchoServer, load: EchoLoad) throws -> EchoResult {
    let port = try Network.freePort()
    let process = try ChildProcess(server.arguments + [String(port)], cpu: serverCPU)
    defer { process.terminate() }
    try Network.waitUntilListening(port: port, server: process)

    let client = try ChildProcess(
        [
            try Programs.cBaseline("load_client"), "127.0.0.1", String(port), String(load.connections),
            String(load.messageSize), String(load.seconds), String(load.warmup), "hold",
        ],
        cpu: clientCPU
    )
    defer { client.terminate() }
    var cpuStart = 0.0
    var cpuEnd = 0.0
    var allocationsStart: UInt64 = 0
    var allocationsEnd: UInt64 = 0
    var fields: [String: Double] = [:]
    let limit = load.warmup + load.seconds + 30
    while let line = try client.readLine(timeout: limit) {
        switch line {
        case "phase=measure":
            cpuStart = try process.cpuSeconds()
            if server.reportsAllocations { allocationsStart = try allocationReport(from: process) }
        case "phase=done":
            cpuEnd = try process.cpuSeconds()
            if server.reportsAllocations { allocationsEnd = try allocationReport(from: process) }
            // The client keeps its connections open until told: closing them makes the server
            // fail receives (and allocate their errors) after the measured window.
            try client.signal(SIGUSR2)
        default:
            fields.merge(parseFields(line)) { $1 }
        }
    }
    let code = try client.wait()
    guard code == 0 else { throw BenchError("load client against \(server.name) exited with status \(code)") }
    guard let rate = fields["msgs_per_s"], let messages = fields["msgs"] else {
        throw BenchError("load client against \(server.name) printed no result")
    }
    if process.hasExited { throw BenchError("\(server.name) exited during the run") }
    return EchoResult(
        messagesPerSecond: rate,
        p50Microseconds: fields["p50_us"] ?? 0,
        p99Microseconds: fields["p99_us"] ?? 0,
        messages: messages,
        serverCPUSeconds: cpuEnd - cpuStart,
        serverAllocations: server.reportsAllocations ? allocationsEnd - allocationsStart : nil
    )
}

/// Asks a server for its allocation count (SIGUSR1) and reads the `allocs=N` line it answers with.
private func allocationReport(from process: ChildProcess) throws -> UInt64 {
    try process.signal(SIGUSR1)
    while let line = try process.readLine(timeout: 10) {
        if line.hasPrefix("allocs="), let count = UInt64(line.dropFirst(7)) { return count }
    }
    throw BenchError("\(process.commandLine) closed its output without reporting allocations")
}

/// Every run of each server, in round order.
struct EchoRounds {
    /// Runs per server name; index `k` of every array is round `k`.
    var runs: [String: [EchoResult]] = [:]

    /// The server's median run by throughput.
    func median(_ server: EchoServer) -> EchoResult {
        let results = runs[server.name] ?? []
        return results.sorted { $0.messagesPerSecond < $1.messagesPerSecond }[results.count / 2]
    }

    /// The median over rounds of `metric(a) / metric(b)`, pairing runs of the same round so that
    /// noise which hit both alike cancels out.
    func medianRatio(_ a: EchoServer, _ b: EchoServer, _ metric: (EchoResult) -> Double) -> Double {
        let pairs = zip(runs[a.name] ?? [], runs[b.name] ?? [])
        return WeftBench.median(pairs.map { metric($0) / max(metric($1), .leastNonzeroMagnitude) })
    }
}

/// Runs every server `rounds` times, interleaved (A B C, A B C, ...) so that a burst of noise on the
/// shared machine hits all of them alike.
func runEchoRounds(_ servers: [EchoServer], load: EchoLoad, rounds: Int) throws -> EchoRounds {
    var collected = EchoRounds()
    for _ in 0..<rounds {
        for server in servers { collected.runs[server.name, default: []].append(try runEcho(server, load: load)) }
    }
    return collected
}

/// The median of some samples.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}
