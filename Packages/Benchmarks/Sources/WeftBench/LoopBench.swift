import CWeftBenchSupport
import Foundation
import Synchronization
import SystemPackage
import WeftLoop

#if canImport(Glibc)
import Glibc
#endif

/// The `loop` suite (WeftLoop): NOP throughput and a million timers in this process, and echo servers
/// as child processes under the C load client, each against its C baseline measured in the same run.
func runLoopBenchmarks() throws {
    try AllocationCounter.verify()
    try runNopBenchmark()
    try runFixedBufferBenchmark()
    try runTimerBenchmark()
    try runWakeBenchmark()
    try runEchoBenchmarks()
}

// MARK: - Cross-thread wakes

/// Round trips per wake ping-pong run.
private let wakeRounds = 100_000

/// `loop.wake_roundtrips_per_s`: two WeftLoop io_uring loops on two threads (pinned to CPUs 0 and 1)
/// wake each other in turn through their wakers (an eventfd write, watched by a multishot poll).
/// `loop.c_wake_eventfd_roundtrips_per_s` and `loop.c_wake_msgring_roundtrips_per_s`: the same
/// ping-pong in C with the bare mechanisms, eventfd against `IORING_OP_MSG_RING` (a completion posted
/// from one ring into the other), and `loop.wake_msgring_vs_eventfd` their ratio: above 1 would mean
/// MSG_RING pays; the `cpu_us_per_round_trip` figures are both threads' CPU time per round trip.
/// Medians of three interleaved rounds.
private func runWakeBenchmark() throws {
    var loopRates: [Double] = []
    var eventfdRates: [Double] = []
    var msgringRates: [Double] = []
    var ratios: [Double] = []
    var eventfdCPU: [Double] = []
    var msgringCPU: [Double] = []
    for _ in 0..<3 {
        let program = try Programs.cBaseline("wake_pingpong")
        let eventfd = try Programs.runToCompletion([program, "eventfd", String(wakeRounds)], cpu: nil)
        let msgring = try Programs.runToCompletion([program, "msgring", String(wakeRounds)], cpu: nil)
        guard let e = eventfd["round_trips_per_s"], let m = msgring["round_trips_per_s"] else {
            throw BenchError("wake_pingpong printed no round_trips_per_s")
        }
        eventfdRates.append(e)
        msgringRates.append(m)
        eventfdCPU.append(eventfd["cpu_us_per_round_trip"] ?? -1)
        msgringCPU.append(msgring["cpu_us_per_round_trip"] ?? -1)
        ratios.append(m / e)
        loopRates.append(try loopWakeRate())
    }
    report("loop", "wake_roundtrips_per_s", median(loopRates).rounded())
    report("loop", "c_wake_eventfd_roundtrips_per_s", median(eventfdRates).rounded())
    report("loop", "c_wake_msgring_roundtrips_per_s", median(msgringRates).rounded())
    report("loop", "wake_msgring_vs_eventfd", median(ratios))
    report("loop", "c_wake_eventfd_cpu_us_per_round_trip", median(eventfdCPU))
    report("loop", "c_wake_msgring_cpu_us_per_round_trip", median(msgringCPU))
    report("loop", "wake_vs_c_eventfd", median(loopRates) / median(eventfdRates))
}

/// What the two ping-pong threads share: the ball (odd: the responder's turn, even: the starter's,
/// -1: stop) and each side's waker once its loop exists.
private final class WakeCourt: Sendable {
    let ball = Atomic<Int>(0)
    let wakers = Mutex<[LoopWaker?]>([nil, nil])
    let finished = Atomic<Int>(0)
}

private func loopWakeRate() throws -> Double {
    let court = WakeCourt()
    let responder = Thread {
        _ = weft_bench_pin(0, 1)
        guard let loop = try? Loop(options: Loop.Options(backend: .ioUring)) else { return }
        court.wakers.withLock { $0[1] = loop.waker }
        while court.wakers.withLock({ $0[0] == nil }) { sched_yield() }
        let starter = court.wakers.withLock { $0[0]! }
        while true {
            let ball = court.ball.load(ordering: .acquiring)
            if ball == -1 { break }
            if ball & 1 == 1 {
                court.ball.store(ball + 1, ordering: .releasing)
                starter.wake()
            } else {
                try? loop.run(.once)
            }
        }
        try? loop.close()
        court.finished.store(1, ordering: .releasing)
    }
    responder.start()
    guard weft_bench_pin(0, 0) == 0 else { throw BenchError("pinning the driver", errno: errno) }
    defer { _ = weft_bench_unpin(0) }
    let loop = try Loop(options: Loop.Options(backend: .ioUring))
    court.wakers.withLock { $0[0] = loop.waker }
    while court.wakers.withLock({ $0[1] == nil }) { sched_yield() }
    let other = court.wakers.withLock { $0[1]! }
    let start = monotonicSeconds()
    for round in 0..<wakeRounds {
        court.ball.store(2 * round + 1, ordering: .releasing)
        other.wake()
        while court.ball.load(ordering: .acquiring) != 2 * round + 2 { try loop.run(.once) }
    }
    let elapsed = monotonicSeconds() - start
    court.ball.store(-1, ordering: .releasing)
    other.wake()
    while court.finished.load(ordering: .acquiring) == 0 { sched_yield() }
    try loop.close()
    return Double(wakeRounds) / elapsed
}

// MARK: - NOP

/// NOPs per run and per batch; the C baseline gets the same two numbers.
private let nopCount = 1_000_000
private let nopBatch = 64

/// `loop.nop_ops_per_s`, `loop.c_nop_ops_per_s`, `loop.nop_vs_c` (median of per-round ratios) and
/// `loop.nop_allocs_per_op`. Both sides run pinned to the same CPU, interleaved, seven rounds (a
/// round is about 0.15 s; with three, one disturbed round on a shared machine moved the median by
/// several hundredths).
private func runNopBenchmark() throws {
    var loopRates: [Double] = []
    var cRates: [Double] = []
    var ratios: [Double] = []
    var allocationsPerOp: [Double] = []
    for _ in 0..<7 {
        let fields = try Programs.runToCompletion(
            [try Programs.cBaseline("uring_nop"), String(nopCount), String(nopBatch)], cpu: serverCPU)
        guard let cRate = fields["ops_per_s"] else { throw BenchError("uring_nop printed no ops_per_s") }
        guard weft_bench_pin(0, Int32(serverCPU)) == 0 else { throw BenchError("pinning the driver", errno: errno) }
        defer { _ = weft_bench_unpin(0) }
        let (rate, allocations) = try loopNopRate()
        cRates.append(cRate)
        loopRates.append(rate)
        ratios.append(rate / cRate)
        allocationsPerOp.append(allocations)
    }
    report("loop", "nop_ops_per_s", median(loopRates).rounded())
    report("loop", "c_nop_ops_per_s", median(cRates).rounded())
    report("loop", "nop_vs_c", median(ratios))
    report("loop", "nop_allocs_per_op", median(allocationsPerOp))
}

/// Runs `nopCount` NOPs through a WeftLoop io_uring loop in batches of `nopBatch` (submit a batch, run
/// until it has completed), after a warm-up; returns operations per second and allocations per op.
private func loopNopRate() throws -> (Double, Double) {
    let loop = try Loop(options: Loop.Options(backend: .ioUring, entries: max(64, nopBatch)))
    let operations = UnsafeMutablePointer<LoopOperation>.allocate(capacity: nopBatch)
    operations.initialize(repeating: .nop(), count: nopBatch)
    let completed = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    completed.initialize(to: 0)
    defer {
        operations.deinitialize(count: nopBatch)
        operations.deallocate()
        completed.deallocate()
    }
    let callback: LoopCallback = { _, context in
        context!.assumingMemoryBound(to: Int.self).pointee += 1
    }
    func runBatches(_ total: Int) throws {
        var done = 0
        while done < total {
            let count = min(nopBatch, total - done)
            for index in 0..<count { try loop.submit(operations + index, callback: callback, context: completed) }
            try loop.run(.untilDone)
            done += count
        }
    }
    try runBatches(nopCount / 10)
    completed.pointee = 0
    let allocationsBefore = AllocationCounter.allocations
    let start = monotonicSeconds()
    try runBatches(nopCount)
    let elapsed = monotonicSeconds() - start
    let allocations = AllocationCounter.allocations - allocationsBefore
    guard completed.pointee == nopCount else {
        throw BenchError("\(completed.pointee) of \(nopCount) NOP callbacks ran")
    }
    try loop.close()
    return (Double(nopCount) / elapsed, Double(allocations) / Double(nopCount))
}

// MARK: - Registered buffers

/// Reads in flight in the registered-buffer runs.
private let fileReadDepth = 16

/// Registered buffers (``Loop/registerBuffers(_:)``, so `READ_FIXED`) against plain ones, reading a
/// file through a WeftLoop io_uring loop, 16 reads in flight (submit a batch, run until it has
/// completed), plain and registered runs interleaved, medians of three:
/// - `loop.read_4k_per_s`, `loop.read_4k_fixed_per_s` and `loop.read_4k_fixed_vs_plain`: 4 KiB reads
///   from the page cache (the kernel copies; registering saves the per-call buffer import);
/// - `loop.read_direct_64k_per_s`, `loop.read_direct_64k_fixed_per_s`,
///   `loop.read_direct_64k_fixed_vs_plain`, and `loop.read_direct_64k_fixed_cpu_vs_plain` (process
///   CPU per read, registered over plain): 64 KiB `O_DIRECT` reads, where the kernel would otherwise
///   pin and unpin the buffer's pages on every read. Reported as -1 where the temporary directory's
///   file system refuses `O_DIRECT`.
/// Above 1 for the rates (below 1 for CPU) means registering pays.
private func runFixedBufferBenchmark() throws {
    let path = NSTemporaryDirectory() + "weft-bench-read-\(getpid())"
    let fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw BenchError("creating \(path)", errno: errno) }
    defer { close(fd) }
    let fileSize = 64 << 20
    var chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
    for offset in stride(from: 0, to: fileSize, by: chunk.count) {
        guard pwrite(fd, &chunk, chunk.count, off_t(offset)) == chunk.count else {
            throw BenchError("writing \(path)", errno: errno)
        }
    }
    guard fsync(fd) == 0 else { throw BenchError("fsync \(path)", errno: errno) }
    let direct = weft_bench_open_direct(path)
    unlink(path)
    defer { if direct >= 0 { close(direct) } }

    func compare(_ descriptor: Int32, block: Int, reads: Int, name: String) throws {
        var plain: [ReadRate] = []
        var fixed: [ReadRate] = []
        for _ in 0..<3 {
            plain.append(try fileReadRate(descriptor, fileSize: fileSize, block: block, reads: reads, registered: false))
            fixed.append(try fileReadRate(descriptor, fileSize: fileSize, block: block, reads: reads, registered: true))
        }
        report("loop", "\(name)_per_s", median(plain.map(\.perSecond)).rounded())
        report("loop", "\(name)_fixed_per_s", median(fixed.map(\.perSecond)).rounded())
        report("loop", "\(name)_fixed_vs_plain", median(zip(fixed, plain).map { $0.perSecond / $1.perSecond }))
        report("loop", "\(name)_fixed_cpu_vs_plain", median(zip(fixed, plain).map { $0.cpuPerRead / $1.cpuPerRead }))
    }
    try compare(fd, block: 4096, reads: 200_000, name: "read_4k")
    if direct >= 0 {
        try compare(direct, block: 64 << 10, reads: 20_000, name: "read_direct_64k")
    } else {
        for metric in ["per_s", "fixed_per_s", "fixed_vs_plain", "fixed_cpu_vs_plain"] {
            report("loop", "read_direct_64k_\(metric)", -1)
        }
    }
}

/// Reads per second and process CPU seconds per read of one registered-buffer run.
private struct ReadRate {
    var perSecond: Double
    var cpuPerRead: Double
}

/// Reads `reads` blocks of `block` bytes from `fd` at scattered offsets, `fileReadDepth` at a time,
/// after a warm-up. Every read must return a whole block.
private func fileReadRate(_ fd: Int32, fileSize: Int, block: Int, reads: Int, registered: Bool) throws -> ReadRate {
    let loop = try Loop(options: Loop.Options(backend: .ioUring, entries: 64))
    let memory = UnsafeMutableRawPointer.allocate(byteCount: block * fileReadDepth, alignment: 4096)
    let operations = UnsafeMutablePointer<LoopOperation>.allocate(capacity: fileReadDepth)
    operations.initialize(repeating: .nop(), count: fileReadDepth)
    let bytes = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    bytes.initialize(to: 0)
    defer {
        operations.deinitialize(count: fileReadDepth)
        operations.deallocate()
        memory.deallocate()
        bytes.deallocate()
    }
    if registered {
        try loop.registerBuffers((0..<fileReadDepth).map {
            UnsafeMutableRawBufferPointer(start: memory + $0 * block, count: block)
        })
    }
    let callback: LoopCallback = { raw, context in
        context!.assumingMemoryBound(to: Int.self).pointee += Int(LoopOperation.pointer(raw).pointee.result)
    }
    let blocks = fileSize / block
    func run(_ total: Int) throws {
        var done = 0
        while done < total {
            let count = min(fileReadDepth, total - done)
            for index in 0..<count {
                // A stride prime to the block count visits every block, out of order.
                let read = LoopOperation.read(
                    FileDescriptor(rawValue: fd), into: memory + index * block, count: block,
                    at: Int64((done + index) &* 7919 % blocks * block))
                operations[index] = registered ? read.onRegisteredBuffer(index) : read
                try loop.submit(operations + index, callback: callback, context: bytes)
            }
            try loop.run(.untilDone)
            done += count
        }
    }
    try run(reads / 10)
    bytes.pointee = 0
    let cpuStart = processCPUSeconds()
    let start = monotonicSeconds()
    try run(reads)
    let elapsed = monotonicSeconds() - start
    let cpu = processCPUSeconds() - cpuStart
    guard bytes.pointee == reads * block else {
        throw BenchError("file reads returned \(bytes.pointee) of \(reads * block) bytes")
    }
    try loop.close()
    return ReadRate(perSecond: Double(reads) / elapsed, cpuPerRead: cpu / Double(reads))
}

/// User and system CPU time of this process so far, in seconds.
private func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

// MARK: - Timers

/// `loop.timers_1m_ms` (io_uring) and `loop.timers_1m_epoll_ms`: wall time to arm one million
/// relative timers, with timeouts spread evenly over 0–1 ms (a thousand per microsecond), and run the
/// loop until every one has fired. Median of three; the operations are created before the clock starts.
private func runTimerBenchmark() throws {
    for (metric, backend) in [("timers_1m_ms", LoopBackendKind.ioUring), ("timers_1m_epoll_ms", .epoll)] {
        var samples: [Double] = []
        for _ in 0..<3 { samples.append(try millionTimers(backend)) }
        report("loop", metric, median(samples))
    }
}

private func millionTimers(_ backend: LoopBackendKind) throws -> Double {
    let count = 1_000_000
    let loop = try Loop(options: Loop.Options(backend: backend, entries: 4096))
    let timers = UnsafeMutablePointer<LoopOperation>.allocate(capacity: count)
    for index in 0..<count {
        (timers + index).initialize(to: .timer(after: .nanoseconds(index)))
    }
    let fired = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    fired.initialize(to: 0)
    defer {
        timers.deinitialize(count: count)
        timers.deallocate()
        fired.deallocate()
    }
    let start = monotonicSeconds()
    for index in 0..<count {
        try loop.submit(timers + index, callback: { _, context in
            context!.assumingMemoryBound(to: Int.self).pointee += 1
        }, context: fired)
    }
    try loop.run(.untilDone)
    let elapsed = monotonicSeconds() - start
    guard fired.pointee == count else { throw BenchError("\(fired.pointee) of \(count) timers fired") }
    try loop.close()
    return elapsed * 1000
}

// MARK: - Echo

/// The echo figures: WeftLoop's callback server on each backend against the C server of the same
/// kind, 1000 connections × 64 bytes, five interleaved rounds of 2 s windows (short windows, more
/// rounds: the machine is shared, and a median of paired ratios shrugs off a noisy round).
private func runEchoBenchmarks() throws {
    let load = EchoLoad(connections: 1000, messageSize: 64, seconds: 2, warmup: 0.5)
    let roundCount = 5
    let cUring = try EchoServer.c("uring_echo_server")
    let cEpoll = try EchoServer.c("epoll_echo_server")
    let loopUring = try EchoServer.driver("loop_echo io_uring", ["serve-loop-echo", "--backend", "io_uring"])
    let loopEpoll = try EchoServer.driver("loop_echo epoll", ["serve-loop-echo", "--backend", "epoll"])
    let multishotUring = try EchoServer.driver(
        "loop_echo_multishot io_uring", ["serve-loop-echo", "--backend", "io_uring", "--multishot"])
    let multishotEpoll = try EchoServer.driver(
        "loop_echo_multishot epoll", ["serve-loop-echo", "--backend", "epoll", "--multishot"])
    let servers = [cUring, loopUring, multishotUring, cEpoll, loopEpoll, multishotEpoll]
    let rounds = try runEchoRounds(servers, load: load, rounds: roundCount)
    let throughput: (EchoResult) -> Double = { $0.messagesPerSecond }
    let cpu: (EchoResult) -> Double = { $0.cpuMicrosecondsPerMessage }

    report("loop", "echo_msgs_per_s", rounds.median(loopUring).messagesPerSecond.rounded())
    report("loop", "c_echo_msgs_per_s", rounds.median(cUring).messagesPerSecond.rounded())
    report("loop", "echo_vs_c", rounds.medianRatio(loopUring, cUring, throughput))
    report("loop", "echo_epoll_msgs_per_s", rounds.median(loopEpoll).messagesPerSecond.rounded())
    report("loop", "c_epoll_echo_msgs_per_s", rounds.median(cEpoll).messagesPerSecond.rounded())
    report("loop", "echo_epoll_vs_c_epoll", rounds.medianRatio(loopEpoll, cEpoll, throughput))
    report("loop", "echo_cpu_us_per_msg", rounds.median(loopUring).cpuMicrosecondsPerMessage)
    report("loop", "c_echo_cpu_us_per_msg", rounds.median(cUring).cpuMicrosecondsPerMessage)
    report("loop", "echo_cpu_vs_c", rounds.medianRatio(loopUring, cUring, cpu))
    report("loop", "echo_epoll_cpu_vs_c_epoll", rounds.medianRatio(loopEpoll, cEpoll, cpu))
    report("loop", "allocs_per_op", rounds.median(loopUring).allocationsPerMessage ?? -1)
    report("loop", "allocs_per_op_epoll", rounds.median(loopEpoll).allocationsPerMessage ?? -1)
    // The multishot variant: one multishot accept, a multishot receive per connection into a shared
    // buffer ring, sends straight from the ring buffers.
    report("loop", "echo_multishot_msgs_per_s", rounds.median(multishotUring).messagesPerSecond.rounded())
    report("loop", "echo_multishot_vs_c", rounds.medianRatio(multishotUring, cUring, throughput))
    report("loop", "echo_multishot_cpu_us_per_msg", rounds.median(multishotUring).cpuMicrosecondsPerMessage)
    report("loop", "echo_multishot_cpu_vs_c", rounds.medianRatio(multishotUring, cUring, cpu))
    report("loop", "allocs_per_op_multishot", rounds.median(multishotUring).allocationsPerMessage ?? -1)
    report("loop", "echo_multishot_epoll_vs_c_epoll", rounds.medianRatio(multishotEpoll, cEpoll, throughput))
    report("loop", "allocs_per_op_multishot_epoll", rounds.median(multishotEpoll).allocationsPerMessage ?? -1)

    var table = EchoTable()
    for server in servers { table.add(server.name, rounds.median(server)) }
    table.deferPrinting(
        title: "loop echo: \(load.connections) connections x \(load.messageSize) bytes, "
            + "\(Int(load.seconds)) s windows, median of \(roundCount) rounds")
}
