/// The `loop` suite (WeftLoop). Until the loop's callback API is merged it measures the C baselines
/// alone, labelled `loop.c_*`, so the figures the ratios will be taken against are on record.
func runLoopBenchmarks() throws {
    try AllocationCounter.verify()
    let nopCount = 1_000_000
    let nopBatch = 64
    var nopRates: [Double] = []
    for _ in 0..<3 {
        let fields = try Programs.runToCompletion(
            [try Programs.cBaseline("uring_nop"), String(nopCount), String(nopBatch)], cpu: serverCPU)
        guard let rate = fields["ops_per_s"] else { throw BenchError("uring_nop printed no ops_per_s") }
        nopRates.append(rate)
    }
    report("loop", "c_nop_ops_per_s", median(nopRates).rounded())

    let load = EchoLoad()
    let uring = try EchoServer.c("uring_echo_server")
    let epoll = try EchoServer.c("epoll_echo_server")
    let results = try runEchoRounds([uring, epoll], load: load, rounds: 3)
    var table = EchoTable()
    for (label, server) in [("c_uring", uring), ("c_epoll", epoll)] {
        let result = results.median(server)
        table.add(server.name, result)
        report("loop", "\(label)_echo_msgs_per_s", result.messagesPerSecond.rounded())
        report("loop", "\(label)_echo_cpu_us_per_msg", result.cpuMicrosecondsPerMessage)
        report("loop", "\(label)_echo_p99_us", result.p99Microseconds)
    }
    table.deferPrinting(title: "loop echo: \(load.connections) connections x \(load.messageSize) bytes, median of 3")
}
