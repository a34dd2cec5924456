// Fibers on three executors, started from top-level code in main.swift.
//
//   swift run multi-executor
//
// Top-level code in main.swift is isolated to the main actor, and a closure Swift infers to be
// main-actor isolated traps (SIGILL) when it runs on another thread. Fiber bodies are `@Sendable`
// closures, which are nonisolated, so the ones below may run on any executor: this program spawns
// fibers from here that sleep, yield and migrate between executor threads, and checks that work
// really ran on more than one thread. It exits 0 on success.
import Glibc
import Synchronization
import WeftRuntime

let fibers = 300
let threadsSeen = Mutex<Set<UInt>>([])

/// Records the thread running the caller. Never inlined: `Mutex` locks in the name of the current
/// thread, and a thread-local address computed before a suspension must not be reused after it
/// (the fiber may have moved to another thread; see Docs/Runtime.md).
@inline(never)
func note() {
    let me = UInt(pthread_self())
    threadsSeen.withLock { _ = $0.insert(me) }
}

let total = try Runtime.run(options: .init(executors: .exact(3))) {
    let group = Group()
    let sum = Atomic<Int>(0)
    for n in 1...fibers {
        try group.spawn {
            note()
            try Fiber.sleep(for: .microseconds(50 * (n % 7)))
            note()
            for _ in 0..<5 {
                try Fiber.yield()
                note()
            }
            sum.add(n, ordering: .relaxed)
        }
    }
    try group.wait()
    return sum.load(ordering: .relaxed)
}

let expected = fibers * (fibers + 1) / 2
let threads = threadsSeen.withLock { $0.count }
print("multi-executor: \(fibers) fibers summed \(total) (expected \(expected)) on \(threads) executor thread(s)")
guard total == expected, threads > 1 else {
    print("multi-executor: FAILED")
    exit(1)
}
