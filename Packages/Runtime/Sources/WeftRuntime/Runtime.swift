internal import Glibc
import Synchronization
import SystemPackage
import WeftContext
import WeftLoop

/// Runs fibers on one or more executors, each an OS thread with its own ``WeftLoop/Loop``.
///
/// ``run(options:_:)`` blocks the calling thread (which becomes executor 0), runs the body as the
/// first fiber, and returns its result once **every** fiber has finished, detached ones included:
/// a runtime never abandons a fiber in the middle of its stack. Cancel long-running fibers (or
/// give them a way to end) before the body returns.
///
/// ```swift
/// let total = try Runtime.run(options: .init(executors: .exact(2))) {
///     let handles = try (1...10).map { n in try Fiber.spawn { try Fiber.sleep(for: .milliseconds(n)); return n } }
///     return try handles.reduce(0) { try $0 + $1.join() }
/// }
/// ```
public final class Runtime: @unchecked Sendable {
    /// How many executors (OS threads, one loop each) a runtime runs.
    public enum Executors: Sendable, Equatable {
        /// One executor, on the thread that calls ``Runtime/run(options:_:)``.
        case one
        /// Exactly this many (at least 1).
        case exact(Int)
        /// One per CPU this process may use: the affinity mask, capped by a cgroup v2 CPU quota.
        case auto

        /// The number of executors this choice gives on this machine now.
        public var count: Int {
            switch self {
            case .one: 1
            case .exact(let n): max(1, n)
            case .auto: CPUCount.available()
            }
        }
    }

    /// How a runtime is set up.
    public struct Options: Sendable {
        /// How many executors to run. Default ``Executors/one``.
        public var executors: Executors
        /// Options of every executor's loop (the backend, among others).
        public var loop: Loop.Options
        /// The class of stack fibers get: guarded (default) or compact (for hundreds of thousands
        /// of parked fibers).
        public var stackKind: Stack.Kind
        /// The pool stacks come from; `nil` uses ``WeftContext/StackPool/shared``. Give a pool made
        /// with another ``WeftContext/StackPool/Configuration`` to change stack sizes.
        public var stackPool: StackPool?
        /// Makes starting the last executor's thread fail with this error (test hook).
        package var simulatedThreadStartFailure: Errno?

        /// Creates options.
        /// - Parameters:
        ///   - executors: How many executors to run.
        ///   - loop: Options of every executor's loop.
        ///   - stackKind: The class of stack fibers get.
        ///   - stackPool: The pool stacks come from, or `nil` for the shared pool.
        public init(
            executors: Executors = .one, loop: Loop.Options = Loop.Options(), stackKind: Stack.Kind = .guarded,
            stackPool: StackPool? = nil
        ) {
            self.executors = executors
            self.loop = loop
            self.stackKind = stackKind
            self.stackPool = stackPool
        }
    }

    /// Set once in `init` (the executors need `self`), read-only afterwards.
    @exclusivity(unchecked) private(set) var executors: [Executor] = []
    let stackPool: StackPool
    let stackKind: Stack.Kind
    let sleepers = Atomic<Int>(0)
    /// Fibers not yet finished, plus ``stopBit`` once the count has reached zero: from then on the
    /// runtime is stopping and no fiber may be added (one atomic, so a late spawn cannot slip in
    /// between the last finish and the stop).
    let live = Atomic<Int>(0)
    static let stopBit = 1 << 62
    /// With one executor, the fibers admitted on its thread are counted here instead of in
    /// ``live``, without a locked instruction: that thread admits them and finishes every fiber.
    /// The runtime stops once both counts are zero (see ``fiberFinished(_:)``).
    @exclusivity(unchecked) private var localLive = 0
    /// Whether this runtime has one executor (see ``localLive``).
    private let single: Bool

    var isStopping: Bool { live.load(ordering: .acquiring) & Runtime.stopBit != 0 }

    private struct Injected: @unchecked Sendable {
        var head: FiberCore?
        var tail: FiberCore?
        var count = 0
    }
    private let injected = Mutex(Injected())
    private let injectedCount = Atomic<Int>(0)

    private init(options: Options, loops: [Loop]) {
        stackPool = options.stackPool ?? StackPool.shared
        stackKind = options.stackKind
        single = loops.count == 1
        var made: [Executor] = []
        for (index, loop) in loops.enumerated() {
            made.append(Executor(index: index, runtime: self, loop: loop, shared: loops.count > 1))
        }
        executors = made
    }

    /// The number of executors.
    public var executorCount: Int { executors.count }

    /// The runtime whose executor runs the calling thread, or `nil` outside any runtime.
    public static var current: Runtime? { Executor.current?.runtime }

    /// An executor of this runtime as a Swift Concurrency `TaskExecutor`: tasks created with
    /// `Task(executorPreference:)` or inside `withTaskExecutorPreference` run their synchronous
    /// parts on that executor's thread, between fibers. Jobs that arrive after the runtime has
    /// stopped run on the thread that enqueues them.
    /// - Parameter index: Which executor (`0..<executorCount`); out-of-range values are clamped.
    /// - Returns: The executor.
    public func taskExecutor(_ index: Int = 0) -> any TaskExecutor {
        executors[min(max(0, index), executors.count - 1)]
    }

    /// A one-line summary of the scheduler state, for diagnosing a hang (racy snapshot).
    package var debugState: String {
        let parts = executors.map { e in
            "e\(e.index): queued=\(e.queued.load(ordering: .relaxed)) sleeping=\(e.sleeping.load(ordering: .relaxed)) "
                + "inbox=\(e.inboxCount.load(ordering: .relaxed)) cancelsTaken=\(e.cancelsTaken.load(ordering: .relaxed)) "
                + "loop[\(e.loop.debugState)]"
        }
        return "live=\(live.load(ordering: .relaxed))+\(localLive) injected=\(injectedCount.load(ordering: .relaxed)) "
            + "stopping=\(isStopping) " + parts.joined(separator: " ")
    }

    /// Waits in the executors' loops that failed with a transient error and were retried after a
    /// pause (for tests; see `Executor.poll(_:)`).
    package var loopWaitRetries: Int { executors.reduce(0) { $0 + $1.waitRetries.load(ordering: .relaxed) } }

    /// Fiber objects the calling executor has reused for new fibers (see `Executor.recycle(_:)`);
    /// nil outside an executor. For tests.
    package static var fiberObjectsReusedHere: Int? { Executor.current?.reusedFibers }

    /// Fiber objects alive in the process (every runtime) that were made while
    /// ``tracksFiberObjects`` was on: a leak check for tests.
    package static var liveFiberObjects: Int { FiberCounters.liveObjects.load(ordering: .acquiring) }

    /// Whether new fiber objects are counted in ``liveFiberObjects`` (off by default: counting
    /// costs two locked instructions per fiber). Objects made while it is off are never counted,
    /// so the figure stays exact whenever it is turned on.
    package static var tracksFiberObjects: Bool {
        get { FiberCounters.tracking.load(ordering: .relaxed) }
        set { FiberCounters.tracking.store(newValue, ordering: .relaxed) }
    }

    /// Runs `body` as the first fiber of a new runtime and blocks until every fiber has finished.
    ///
    /// The calling thread becomes executor 0; further executors get their own threads, which end
    /// before this returns, as do their loops.
    /// - Parameters:
    ///   - options: Executors, loop and stack settings.
    ///   - body: The first fiber's body; it must be nonisolated (it may run on any executor).
    /// - Returns: The body's result.
    /// - Throws: What the body threw; ``FiberError/nestedRuntime`` when called on an executor thread;
    ///   ``WeftLoop/LoopError`` when a loop cannot be set up; ``FiberError/executorStartFailed(_:)``
    ///   when an executor thread cannot be started (nothing has run then).
    public static func run<T: Sendable>(
        options: Options = Options(), _ body: @escaping @Sendable () throws -> T
    ) throws -> T {
        if Executor.currentUnmanaged != nil { throw FiberError.nestedRuntime }
        let count = options.executors.count
        var loops: [Loop] = []
        for _ in 0..<count { loops.append(try Loop(options: options.loop)) }
        let runtime = Runtime(options: options, loops: loops)
        // Every executor thread starts before the first fiber, so a failure leaves nothing running.
        var threads: [pthread_t] = []
        var startError: Errno? = nil
        for executor in runtime.executors.dropFirst() {
            let box = Unmanaged.passRetained(executor).toOpaque()
            var thread = pthread_t()
            var started: Int32
            if let simulated = options.simulatedThreadStartFailure, executor === runtime.executors.last {
                started = simulated.rawValue
            } else {
                started = pthread_create(&thread, nil, { raw in
                    let executor = Unmanaged<Executor>.fromOpaque(raw!).takeRetainedValue()
                    executor.runScheduler()
                    return nil
                }, box)
            }
            if started != 0 {
                Unmanaged<Executor>.fromOpaque(box).release()
                startError = Errno(rawValue: started)
                break
            }
            threads.append(thread)
        }
        if let startError {
            runtime.stopUnstarted()
            for thread in threads { pthread_join(thread, nil) }
            for executor in runtime.executors { try? executor.loop.close() }
            throw FiberError.executorStartFailed(startError)
        }
        let root = FiberCore.make(body)
        runtime.admit(root)
        runtime.executors[0].push(root)
        runtime.executors[0].runScheduler()
        for thread in threads { pthread_join(thread, nil) }
        CancelsInFlight.drain()
        for executor in runtime.executors { try? executor.loop.close() }
        return try root.takeResult(T.self).get()
    }

    // MARK: Fibers

    /// Counts a new fiber and gives it its self-reference (released when it finishes). Called on
    /// an executor thread of this runtime, or by ``run(options:_:)`` before it starts; from any
    /// thread for a fiber counted already (``countExternal()``, `countedAtSpawn`).
    func admit(_ fiber: FiberCore) {
        fiber.runtime = self
        if fiber.countedAtSpawn {
            fiber.countedAtSpawn = false
        } else if single {
            localLive += 1
            fiber.countedLocally = true
        } else {
            live.wrappingAdd(1, ordering: .relaxed)
        }
        _ = Unmanaged.passRetained(fiber)
    }

    /// Counts a fiber added from outside any fiber of this runtime (a plain thread, a task), in
    /// ``live``, unless the runtime is stopping.
    /// - Throws: ``FiberError/runtimeStopped`` once every fiber has finished.
    func countExternal() throws(FiberError) {
        var count = live.load(ordering: .acquiring)
        while true {
            if count & Runtime.stopBit != 0 { throw .runtimeStopped }
            let (done, original) = live.compareExchange(expected: count, desired: count + 1, ordering: .acquiringAndReleasing)
            if done { return }
            count = original
        }
    }

    /// Queues a new fiber: on the calling executor when there is one, else on the inject queue.
    func schedule(_ fiber: FiberCore) {
        if let executor = Executor.current, executor.runtime === self {
            executor.push(fiber)
        } else {
            inject(fiber)
        }
    }

    /// Spawns a fiber from any thread (a fiber, a task, a plain thread) while the runtime runs.
    /// - Parameter body: The fiber's body.
    /// - Returns: A handle to join, cancel or detach the fiber.
    /// - Throws: ``FiberError/runtimeStopped`` once every fiber has finished and the runtime is
    ///   stopping.
    public func spawn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws(FiberError) -> JoinHandle<T> {
        try countExternal()
        let fiber = FiberCore.make(body)
        fiber.countedAtSpawn = true
        admit(fiber)
        schedule(fiber)
        return JoinHandle(fiber: fiber)
    }

    @inline(never)  // Mutex: see the note on `FiberCore.cancel(timeout:)`.
    private func inject(_ fiber: FiberCore) {
        fiber.queueNext = nil
        injected.withLock { queue in
            if let tail = queue.tail {
                tail.queueNext = Unmanaged.passUnretained(fiber).toOpaque()
            } else {
                queue.head = fiber
            }
            queue.tail = fiber
            queue.count += 1
        }
        injectedCount.add(1, ordering: .sequentiallyConsistent)
        wakeIdle(except: nil)
    }

    var hasInjected: Bool { injectedCount.load(ordering: .sequentiallyConsistent) > 0 }

    @inline(never)
    func popInjected() -> FiberCore? {
        if injectedCount.load(ordering: .acquiring) == 0 { return nil }
        let fiber = injected.withLock { queue -> FiberCore? in
            guard let head = queue.head else { return nil }
            queue.head = head.queueNext.map { Unmanaged<FiberCore>.fromOpaque($0).takeUnretainedValue() }
            if queue.head == nil { queue.tail = nil }
            queue.count -= 1
            head.queueNext = nil
            return head
        }
        if fiber != nil { injectedCount.subtract(1, ordering: .relaxed) }
        return fiber
    }

    /// Wakes one sleeping executor (other than `except`), if any sleeps.
    func wakeIdle(except: Executor?) {
        for executor in executors where executor !== except {
            if executor.sleeping.load(ordering: .sequentiallyConsistent) {
                executor.waker.wake()
                return
            }
        }
        if except == nil, let first = executors.first { first.waker.wake() }
    }

    /// Stops a runtime that never ran a fiber (an executor thread could not start).
    private func stopUnstarted() {
        live.store(Runtime.stopBit, ordering: .sequentiallyConsistent)
        for executor in executors { executor.waker.wake() }
    }

    /// Called by an executor when a fiber has finished; the last one stops the runtime.
    func fiberFinished(_ fiber: FiberCore) {
        if fiber.countedLocally {
            localLive -= 1
            if localLive != 0 || live.load(ordering: .acquiring) != 0 { return }
        } else {
            if live.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue != 0 || localLive != 0 { return }
        }
        // A spawn from outside may have raised the count again meanwhile: then this is no stop.
        let (stopped, _) = live.compareExchange(expected: 0, desired: Runtime.stopBit, ordering: .sequentiallyConsistent)
        if stopped {
            for executor in executors { executor.waker.wake() }
        }
    }
}

/// How many CPUs this process may use.
enum CPUCount {
    static func available() -> Int {
        var count = affinityCount() ?? 0
        if count == 0 { count = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
        if let quota = cgroupQuota() { count = min(count, quota) }
        return max(1, count)
    }

    /// The number of CPUs in this thread's affinity mask (the `Cpus_allowed` mask the kernel shows
    /// in `/proc/self/status`, the same as `sched_getaffinity`, which Glibc's module does not export).
    static func affinityCount() -> Int? {
        guard let text = readFirstLine(of: "/proc/self/status", startingWith: "Cpus_allowed:") else { return nil }
        let mask = text.dropFirst("Cpus_allowed:".count)
        var count = 0
        for character in mask {
            if let digit = character.hexDigitValue { count += digit.nonzeroBitCount }
        }
        return count
    }

    static func readFirstLine(of path: String, startingWith prefix: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if line.hasPrefix(prefix) { return line }
        }
        return nil
    }

    /// The cgroup v2 CPU limit (`cpu.max`: quota and period), rounded up, or `nil` for none.
    static func cgroupQuota() -> Int? {
        guard let text = readFirstLine(of: "/sys/fs/cgroup/cpu.max", startingWith: "") else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let quota = Int(parts[0]), let period = Int(parts[1]), period > 0 else { return nil }
        return max(1, (quota + period - 1) / period)
    }
}
