// The `sync` suite: WeftSync channels and mutexes between fibers (issue 5's figures).
import WeftRuntime
import WeftSync

func runSyncBenchmarks() throws {
    report("sync", "channel_msgs_per_s", try measureChannelThroughput(messages: 10_000_000))
    report("sync", "channel_pingpong_ns", try measurePingPong(capacity: 1, rounds: 200_000))
    report("sync", "unbuffered_pingpong_ns", try measurePingPong(capacity: 0, rounds: 200_000))
    report("sync", "mutex_contended_ns", try measureContendedMutex(fibers: 4, executors: 2, operations: 250_000))
    report("sync", "allocs_per_msg", try measureChannelAllocations(messages: 100_000))
    let (selectTime, selectAllocations) = try measureSelect(rounds: 200_000)
    report("sync", "select_ns", selectTime)
    report("sync", "select_allocs", selectAllocations)
}

/// `sync.select_ns` and `sync.select_allocs`: a `select` over the receive arms of two buffered
/// channels, one of which holds a value (sent just before, on one fiber): time and heap
/// allocations per select, arms and result mapping included.
private func measureSelect(rounds: Int) throws -> (Double, Double) {
    try Runtime.run {
        let a = Channel<Int>(capacity: 1)
        let b = Channel<Int>(capacity: 1)
        var sum = 0
        func round(_ value: Int) throws {
            try (value & 1 == 0 ? a : b).send(value)
            sum &+= try select(a.onReceive().map { $0 ?? -1 }, b.onReceive().map { $0 ?? -1 })
        }
        for value in 0..<10_000 { try round(value) }
        let start = nowNanoseconds()
        for value in 0..<rounds { try round(value) }
        let elapsed = nowNanoseconds() - start
        let allocations = try AllocationCounter.allocations {
            for value in 0..<10_000 { try round(value) }
        }
        let expected = (0..<10_000).reduce(0, &+) * 2 + (0..<rounds).reduce(0, &+)
        guard sum == expected else { throw BenchError("select delivered a sum of \(sum), not \(expected)") }
        return (elapsed / Double(rounds), Double(allocations) / 10_000)
    }
}

/// One producer and one consumer fiber on one executor, capacity 1024: messages per second.
private func measureChannelThroughput(messages: Int) throws -> Double {
    let seconds = try Runtime.run {
        let channel = Channel<Int>(capacity: 1024)
        let start = nowNanoseconds()
        let consumer = try Fiber.spawn {
            var sum = 0
            for _ in 0..<messages { sum &+= try channel.receive() }
            return sum
        }
        for value in 0..<messages { try channel.send(value) }
        _ = try consumer.join()
        return (nowNanoseconds() - start) / 1e9
    }
    return (Double(messages) / seconds).rounded()
}

/// A round trip through two channels of `capacity` between two fibers on one executor.
private func measurePingPong(capacity: Int, rounds: Int) throws -> Double {
    try Runtime.run {
        let ping = Channel<Int>(capacity: capacity)
        let pong = Channel<Int>(capacity: capacity)
        let echo = try Fiber.spawn {
            for _ in 0..<rounds { try pong.send(try ping.receive()) }
        }
        let start = nowNanoseconds()
        for value in 0..<rounds {
            try ping.send(value)
            _ = try pong.receive()
        }
        let elapsed = nowNanoseconds() - start
        try echo.join()
        return (elapsed / Double(rounds)).rounded()
    }
}

/// Lock and unlock per operation, `fibers` fibers contending on `executors` executors.
private func measureContendedMutex(fibers: Int, executors: Int, operations: Int) throws -> Double {
    try Runtime.run(options: .init(executors: .exact(executors))) {
        let mutex = WeftSync.Mutex()
        let counter = Counter()
        let start = nowNanoseconds()
        let handles = try (0..<fibers).map { _ in
            try Fiber.spawn {
                for _ in 0..<operations {
                    try mutex.lockUncancellable()
                    counter.value &+= 1
                    try mutex.unlock()
                }
            }
        }
        for handle in handles { try handle.join() }
        let elapsed = nowNanoseconds() - start
        precondition(counter.value == fibers * operations)
        return (elapsed / Double(fibers * operations)).rounded()
    }
}

/// Heap allocations per message in steady state (buffered channel, blocking on both sides).
private func measureChannelAllocations(messages: Int) throws -> Double {
    try Runtime.run {
        let channel = Channel<Int>(capacity: 64)
        let consumer = try Fiber.spawn {
            var sum = 0
            while let value = try? channel.receive() { sum &+= value }
            return sum
        }
        for value in 0..<10_000 { try channel.send(value) }
        let allocations = try AllocationCounter.allocations {
            for value in 0..<messages { try channel.send(value) }
        }
        channel.close()
        _ = try consumer.join()
        return Double(allocations) / Double(messages)
    }
}

/// A counter the fibers of the contended-mutex benchmark update under the WeftSync mutex.
private final class Counter: @unchecked Sendable {
    var value = 0
}
