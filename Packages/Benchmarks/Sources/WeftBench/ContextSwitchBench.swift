#if canImport(Glibc)
import Glibc
#endif
import WeftContext

/// The two ends of a ping-pong, reached by the entry through its argument pointer.
private struct PingPong {
    var resumer: ExecutionContext
    var context: ExecutionContext?
    var hooks: Bool
}

private let pingPongEntry: ExecutionContext.Entry = { _, argument in
    let state = argument!.assumingMemoryBound(to: PingPong.self)
    let context = state.pointee.context!
    let resumer = state.pointee.resumer
    if state.pointee.hooks {
        while true { context.switch(to: resumer) }
    } else {
        while true { context.switchWithoutHooks(to: resumer) }
    }
}

/// Nanoseconds per switch (one direction), best of five runs of a million round trips.
func measureSwitch(hooks: Bool) -> Double {
    let pool = StackPool.shared
    let stack = try! pool.allocate()
    let state = UnsafeMutablePointer<PingPong>.allocate(capacity: 1)
    state.initialize(to: PingPong(resumer: .makeResumer(), context: nil, hooks: hooks))
    let context = ExecutionContext(stack: stack, entry: pingPongEntry, argument: UnsafeMutableRawPointer(state))
    state.pointee.context = context
    let resumer = state.pointee.resumer
    let rounds = 1_000_000
    var best = Double.infinity
    for _ in 0..<5 {
        let start = nowNanoseconds()
        if hooks {
            for _ in 0..<rounds { resumer.switch(to: context) }
        } else {
            for _ in 0..<rounds { resumer.switchWithoutHooks(to: context) }
        }
        best = min(best, (nowNanoseconds() - start) / Double(rounds * 2))
    }
    // The context is parked forever in its loop: abandon it and reuse the stack.
    context.release()
    pool.release(stack)
    resumer.destroyResumer()
    state.deallocate()
    return best
}

/// Runs a C baseline from $WEFT_BENCH_C_BIN and returns the number on its last output line.
func runCBaseline(_ name: String) throws -> Double? {
    guard let directory = getenv("WEFT_BENCH_C_BIN") else {
        print("context: WEFT_BENCH_C_BIN is not set (run through Scripts/bench); skipping the C baseline")
        return nil
    }
    let path = String(cString: directory) + "/" + name
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    var argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, &argv, environ)
    posix_spawn_file_actions_destroy(&actions)
    free(argv[0])
    close(fds[1])
    defer { close(fds[0]) }
    guard spawned == 0 else {
        print("context: cannot run \(path): error \(spawned)")
        return nil
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fds[0], &buffer, buffer.count)
        if count <= 0 { break }
        output.append(contentsOf: buffer[0..<count])
    }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let text = String(decoding: output, as: UTF8.self)
    let last = text.split(separator: "\n").last.map(String.init) ?? ""
    return Double(last)
}
