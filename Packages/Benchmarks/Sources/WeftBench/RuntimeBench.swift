import Synchronization
import SystemPackage
import WeftLoop
import WeftRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The `runtime` suite (WeftRuntime): scheduler costs measured in this process (yield ping-pong,
/// spawn and join, scaling of a CPU-bound fan-out over two executors), and a fiber-per-connection
/// echo server as a child process under the C load client, against the C servers in the same run.
func runRuntimeBenchmarks() throws {
    try AllocationCounter.verify()
    try runYieldPingPong()
    try runSpawnJoin()
    try runScaling()
    try runFiberEchoBenchmarks()
}

// MARK: - Scheduler

/// `runtime.yield_pingpong_ns`: two fibers on one executor yield to each other; the figure is the
/// time per yield, which is one hand-off from one fiber to the other through the run queue. Median
/// of five runs.
private func runYieldPingPong() throws {
    let yields = 1_000_000
    var samples: [Double] = []
    for _ in 0..<5 {
        let elapsed = try Runtime.run(options: benchOptions(executors: .one)) { () -> Double in
            let other = try Fiber.spawn {
                for _ in 0..<yields { try Fiber.yield() }
            }
            try Fiber.yield()
            let start = monotonicSeconds()
            for _ in 0..<yields { try Fiber.yield() }
            let elapsed = monotonicSeconds() - start
            try other.join()
            return elapsed
        }
        // Both fibers yield `yields` times in the window: 2 × yields hand-offs.
        samples.append(elapsed * 1e9 / Double(2 * yields))
    }
    report("runtime", "yield_pingpong_ns", median(samples))
}

/// `runtime.spawn_join_ns`: spawn an empty fiber and join it, one executor, pooled stacks, after a
/// warm-up; also `runtime.spawn_allocs`, heap allocations per spawn and join. Median of five runs.
private func runSpawnJoin() throws {
    let count = 200_000
    var samples: [Double] = []
    var allocations: [Double] = []
    for _ in 0..<5 {
        let (elapsed, allocated) = try Runtime.run(options: benchOptions(executors: .one)) { () -> (Double, UInt64) in
            for _ in 0..<1000 { try Fiber.spawn {}.join() }
            let before = AllocationCounter.allocations
            let start = monotonicSeconds()
            for _ in 0..<count { try Fiber.spawn {}.join() }
            let elapsed = monotonicSeconds() - start
            return (elapsed, AllocationCounter.allocations - before)
        }
        samples.append(elapsed * 1e9 / Double(count))
        allocations.append(Double(allocated) / Double(count))
    }
    report("runtime", "spawn_join_ns", median(samples))
    report("runtime", "spawn_allocs", median(allocations))
}

/// `runtime.scaling_2`: a CPU-bound fan-out (256 fibers, each hashing in slices with a yield between
/// slices) on two executors over one: throughput ratio, median of three pairs.
private func runScaling() throws {
    func fanOut(_ executors: Runtime.Executors) throws -> Double {
        try Runtime.run(options: benchOptions(executors: executors)) { () -> Double in
            let start = monotonicSeconds()
            let sum = Atomic<UInt64>(0)
            let group = Group()
            for seed in 0..<256 {
                try group.spawn {
                    var h = UInt64(seed) &+ 0x9E37_79B9_7F4A_7C15
                    for _ in 0..<40 {
                        for _ in 0..<20_000 { h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9 }
                        try Fiber.yield()
                    }
                    sum.wrappingAdd(h, ordering: .relaxed)
                }
            }
            try group.wait()
            let elapsed = monotonicSeconds() - start
            if sum.load(ordering: .relaxed) == 42 { print("") }  // keeps the work observable
            return elapsed
        }
    }
    var ratios: [Double] = []
    for _ in 0..<3 {
        let one = try fanOut(.one)
        let two = try fanOut(.exact(2))
        ratios.append(one / two)
    }
    report("runtime", "scaling_2", median(ratios))
}

private func benchOptions(executors: Runtime.Executors, backend: LoopBackendKind = .ioUring) -> Runtime.Options {
    Runtime.Options(executors: executors, loop: Loop.Options(backend: backend, entries: 4096))
}

// MARK: - Echo

/// The fiber echo figures: one executor, a fiber per connection, against the C server of the same
/// backend; 1000 connections × 64 bytes (and 64 × 4 KiB on io_uring), five interleaved rounds.
private func runFiberEchoBenchmarks() throws {
    let small = EchoLoad(connections: 1000, messageSize: 64, seconds: 2, warmup: 0.5)
    let large = EchoLoad(connections: 64, messageSize: 4096, seconds: 2, warmup: 0.5)
    let roundCount = 5
    let cUring = try EchoServer.c("uring_echo_server")
    let cEpoll = try EchoServer.c("epoll_echo_server")
    let fiberUring = try EchoServer.driver("fiber_echo io_uring", ["serve-fiber-echo", "--backend", "io_uring"])
    let fiberEpoll = try EchoServer.driver("fiber_echo epoll", ["serve-fiber-echo", "--backend", "epoll"])
    let rounds = try runEchoRounds([cUring, fiberUring, cEpoll, fiberEpoll], load: small, rounds: roundCount)
    let largeRounds = try runEchoRounds([cUring, fiberUring], load: large, rounds: 3)
    let throughput: (EchoResult) -> Double = { $0.messagesPerSecond }
    let cpu: (EchoResult) -> Double = { $0.cpuMicrosecondsPerMessage }

    report("runtime", "echo_msgs_per_s", rounds.median(fiberUring).messagesPerSecond.rounded())
    report("runtime", "c_echo_msgs_per_s", rounds.median(cUring).messagesPerSecond.rounded())
    report("runtime", "echo_vs_c", rounds.medianRatio(fiberUring, cUring, throughput))
    report("runtime", "echo_p99_us", rounds.median(fiberUring).p99Microseconds)
    report("runtime", "c_echo_p99_us", rounds.median(cUring).p99Microseconds)
    report("runtime", "echo_epoll_msgs_per_s", rounds.median(fiberEpoll).messagesPerSecond.rounded())
    report("runtime", "echo_epoll_vs_c_epoll", rounds.medianRatio(fiberEpoll, cEpoll, throughput))
    report("runtime", "echo_4k_vs_c", largeRounds.medianRatio(fiberUring, cUring, throughput))
    report("runtime", "echo_cpu_us_per_msg", rounds.median(fiberUring).cpuMicrosecondsPerMessage)
    report("runtime", "c_echo_cpu_us_per_msg", rounds.median(cUring).cpuMicrosecondsPerMessage)
    report("runtime", "echo_cpu_vs_c", rounds.medianRatio(fiberUring, cUring, cpu))
    report("runtime", "allocs_per_op", rounds.median(fiberUring).allocationsPerMessage ?? -1)
    report("runtime", "allocs_per_op_epoll", rounds.median(fiberEpoll).allocationsPerMessage ?? -1)

    var table = EchoTable()
    for server in [cUring, fiberUring, cEpoll, fiberEpoll] { table.add(server.name, rounds.median(server)) }
    table.deferPrinting(
        title: "fiber echo: \(small.connections) connections x \(small.messageSize) bytes, "
            + "\(Int(small.seconds)) s windows, median of \(roundCount) rounds")
}

/// `WeftBench serve-fiber-echo --backend io_uring|epoll --port P [--executors N]`: the
/// fiber-per-connection echo server the suite measures. The acceptor fiber spawns one fiber per
/// connection; each receives into a 4 KiB buffer on its own stack and sends back what arrived.
/// The only allocations are per connection (the fiber); the steady state allocates nothing.
func serveFiberEcho(_ arguments: [String]) throws {
    let port = try ServerProcess.port(in: arguments)
    let name = ServerProcess.option("backend", in: arguments) ?? "io_uring"
    guard let backend = LoopBackendKind(rawValue: name), backend != .scripted else {
        throw BenchError("--backend must be io_uring or epoll, not \(name)")
    }
    let executors = Int(ServerProcess.option("executors", in: arguments) ?? "1") ?? 1
    let listener = try Network.listen(port: port, nonBlocking: false)
    try Runtime.run(options: benchOptions(executors: .exact(executors), backend: backend)) {
        while true {
            let connection = try Fiber.accept(FileDescriptor(rawValue: listener))
            try Fiber.spawn { echoConnection(connection) }.detach()
        }
    }
}

private func echoConnection(_ connection: FileDescriptor) {
    withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 16) { buffer in
        while true {
            guard let received = try? Fiber.recv(connection, into: buffer), received > 0 else { break }
            guard (try? Fiber.sendAll(connection, UnsafeRawBufferPointer(rebasing: buffer[0..<received]))) != nil else { break }
        }
    }
    try? Fiber.close(connection)
}
