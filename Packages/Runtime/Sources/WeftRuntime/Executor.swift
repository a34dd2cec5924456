internal import CWeftRuntime
internal import Glibc
import Synchronization
import WeftContext
import WeftLoop

/// One executor: an OS thread with its own loop and run queue.
///
/// The run queue is an intrusive FIFO of fibers (links live in the fibers, so queueing allocates
/// nothing). With one executor only its own thread touches it, without any lock: wakes from other
/// threads (tasks resuming fibers) go through the locked inbox. With several executors, other
/// executors push wakes into it and idle ones steal half of it, so it sits behind a small spin lock
/// held for a few pointer moves.
final class Executor: @unchecked Sendable, TaskExecutor {
    /// What the fiber that just switched out asked for.
    enum Action {
        case none, yield, park, parkCancellable, finish, hop
    }

    struct Inbox: @unchecked Sendable {
        /// Fibers woken by other threads (one executor only), linked through `queueNext`.
        var wokenHead: UnsafeMutableRawPointer?
        var wokenTail: UnsafeMutableRawPointer?
        var wokenCount = 0
        var cancels: [FiberCore] = []
        var forgets: [ForgetRequest] = []
        var jobs: [UnownedJob] = []
        var closed = false
    }

    let index: Int
    unowned(unsafe) let runtime: Runtime
    let loop: Loop
    let waker: LoopWaker
    let resumer: ExecutionContext

    /// Whether other executors share this queue (steal from it, push into it): then it is locked.
    let shared: Bool
    private let queueLock = Atomic<Bool>(false)
    @exclusivity(unchecked) private var head: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var tail: UnsafeMutableRawPointer?
    /// Fibers in the queue (written under the lock, read without it as a hint).
    let queued = Atomic<Int>(0)
    let sleeping = Atomic<Bool>(false)

    private let inbox = Mutex(Inbox())
    let inboxCount = Atomic<Int>(0)
    /// Cancel requests this executor has applied (a diagnostic for hangs).
    let cancelsTaken = Atomic<Int>(0)
    /// Waits in the loop that failed with a transient error and were retried (see ``poll(_:)``).
    let waitRetries = Atomic<Int>(0)

    // Owner-thread state.
    /// The fiber running now (unretained: it keeps itself alive until it finishes; use
    /// `_withUnsafeGuaranteedRef` on hot paths, which costs no reference counting).
    @exclusivity(unchecked) var running: Unmanaged<FiberCore>?
    /// The fiber running now, as a strong reference.
    var current: FiberCore? { running?.takeUnretainedValue() }
    /// The fiber that switched out last and what it asked for: whatever context resumes next
    /// handles it (``completeSwitch()``), once the fiber's registers are saved.
    @exclusivity(unchecked) private var previous: Unmanaged<FiberCore>?
    @exclusivity(unchecked) var action: Action = .none
    @exclusivity(unchecked) var hopTarget: Executor?
    /// Fibers dispatched so far; ``dispatchesAtPoll`` is the count when the loop was last polled.
    @exclusivity(unchecked) private var dispatches = 0
    @exclusivity(unchecked) private var dispatchesAtPoll = 0
    /// Direct fiber-to-fiber switches in a row before the scheduler gets a turn to poll the loop.
    static let directSwitchLimit = 64
    /// Fiber operations that may still complete at once, without a park, before the running fiber
    /// yields (see ``Fiber/perform(_:)``).
    @exclusivity(unchecked) var immediateBudget = Executor.immediateLimit
    /// How many operations in a row complete without a park before a fiber yields.
    static let immediateLimit = 32
    /// Waits in the loop that failed in a row (see ``poll(_:)``).
    @exclusivity(unchecked) private var failedWaits = 0
    /// Fiber objects that finished here, kept for reuse (``recycle(_:)``): a retained list linked
    /// through `queueNext`, newest first, at most ``recycledLimit`` long.
    @exclusivity(unchecked) private var recycledHead: UnsafeMutableRawPointer?
    @exclusivity(unchecked) private var recycledCount = 0
    static let recycledLimit = 64
    /// Fiber objects reused here so far (for tests; read it on this executor's thread).
    @exclusivity(unchecked) private(set) var reusedFibers = 0
    /// Whether finished fiber objects are reused. Not under ThreadSanitizer: a fiber's last handle
    /// is often dropped on another thread, and the reference count that orders that thread's last
    /// reads before the reuse lives in the Swift runtime, which ThreadSanitizer does not see; it
    /// would report each reuse as a race with the reads.
    private let recycles: Bool
    @exclusivity(unchecked) private var identityNext: UInt = 0
    @exclusivity(unchecked) private var identityEnd: UInt = 0

    /// The runtime and its stack pool, unretained for the switch paths (both outlive every executor;
    /// reading an `unowned(unsafe)` reference still costs a retain and release per use).
    private let runtimeRef: Unmanaged<Runtime>
    private let stackPoolRef: Unmanaged<StackPool>
    private let stackKind: Stack.Kind
    /// The context of the fiber that finished last here, with its stack, kept for the next fiber
    /// (``prepare(_:)``): restarting it costs a fraction of a release to the pool and a new
    /// context. One per executor; back to the pool when the scheduler ends. Not kept for a pool
    /// that retains no stacks (``WeftContext/StackPool/Configuration/highWaterMark`` 0).
    @exclusivity(unchecked) private var spare: (context: ExecutionContext, stack: Stack)?
    private let keepsSpare: Bool

    init(index: Int, runtime: Runtime, loop: Loop, shared: Bool) {
        self.index = index
        self.shared = shared
        self.runtime = runtime
        runtimeRef = Unmanaged.passUnretained(runtime)
        stackPoolRef = Unmanaged.passUnretained(runtime.stackPool)
        stackKind = runtime.stackKind
        keepsSpare = runtime.stackPool.configuration.highWaterMark > 0
        recycles = !ExecutionContext.sanitizers.contains("thread")
        self.loop = loop
        self.waker = loop.waker
        self.resumer = ExecutionContext.makeResumer()
    }

    deinit { resumer.destroyResumer() }

    // MARK: The current executor

    /// The executor running on the calling thread, unretained. Read it afresh after every switch:
    /// a fiber may resume on another thread.
    @inline(__always)
    static var currentUnmanaged: Unmanaged<Executor>? {
        guard let raw = weft_runtime_executor() else { return nil }
        return Unmanaged<Executor>.fromOpaque(raw)
    }

    /// The executor running on the calling thread.
    static var current: Executor? { currentUnmanaged?.takeUnretainedValue() }

    /// The fiber running on the calling thread.
    static var currentFiber: FiberCore? { currentUnmanaged?._withUnsafeGuaranteedRef { $0.running?.takeUnretainedValue() } }

    // MARK: Run queue

    @inline(__always)
    private func lock() {
        if !shared { return }
        var spins = 0
        while !queueLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins > 64 { sched_yield() }
        }
    }

    @inline(__always)
    private func unlock() {
        if shared { queueLock.store(false, ordering: .releasing) }
    }

    @inline(__always)
    private var isCurrent: Bool {
        Executor.currentUnmanaged?.toOpaque() == Unmanaged.passUnretained(self).toOpaque()
    }

    /// Queues a runnable fiber here, from any thread; wakes this executor if it sleeps.
    ///
    /// From another thread, nothing of this executor is touched once the fiber is visible: another
    /// thread may run it to its end then, and if it was the last fiber the runtime may return and
    /// free its executors. Whether to wake is read under the queue's lock, and the wake goes
    /// through a copy of the waker (which keeps the loop's wake descriptor alive; a closed one
    /// ignores it).
    func push(_ fiber: FiberCore) {
        if isCurrent {
            pushLocal(fiber)
        } else {
            let wake = shared ? append(fiber, fromOutside: true).wake : handOver(fiber)
            wake?.wake()
        }
    }

    /// The queue is this executor's thread's alone: hand the fiber over through the inbox.
    /// Returns the waker if this executor sleeps (see ``push(_:)``).
    @inline(never)  // Mutex: see the note on `FiberCore.cancel(timeout:)`.
    private func handOver(_ fiber: FiberCore) -> LoopWaker? {
        let raw = Unmanaged.passUnretained(fiber).toOpaque()
        fiber.queueNext = nil
        return inbox.withLock { inbox in
            if let tail = inbox.wokenTail {
                Unmanaged<FiberCore>.fromOpaque(tail)._withUnsafeGuaranteedRef { $0.queueNext = raw }
            } else {
                inbox.wokenHead = raw
            }
            inbox.wokenTail = raw
            inbox.wokenCount += 1
            inboxCount.add(1, ordering: .sequentiallyConsistent)
            return sleeping.load(ordering: .sequentiallyConsistent) ? waker : nil
        }
    }

    /// Queues a runnable fiber from this executor's own thread; with work to share, wakes an idle
    /// executor to steal it.
    @inline(__always)
    func pushLocal(_ fiber: FiberCore) {
        assert(isCurrent, "a fiber was queued as local from another executor's thread")
        let count = append(fiber).count
        if shared && count > 1 && runtimeRef._withUnsafeGuaranteedRef({ $0.sleepers.load(ordering: .sequentiallyConsistent) }) > 0 {
            runtime.wakeIdle(except: self)
        }
    }

    /// Links a fiber at the back of the queue. Returns the new count and, `fromOutside`, the waker
    /// if this executor sleeps, read before the lock is released (see ``push(_:)``).
    @inline(__always)
    @discardableResult
    private func append(_ fiber: FiberCore, fromOutside: Bool = false) -> (count: Int, wake: LoopWaker?) {
        let raw = Unmanaged.passUnretained(fiber).toOpaque()
        fiber.queueNext = nil
        lock()
        if let tail { Unmanaged<FiberCore>.fromOpaque(tail)._withUnsafeGuaranteedRef { $0.queueNext = raw } } else { head = raw }
        tail = raw
        let count: Int
        if shared {
            count = queued.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
        } else {
            count = queued.load(ordering: .relaxed) + 1
            queued.store(count, ordering: .relaxed)
        }
        let wake = fromOutside && sleeping.load(ordering: .sequentiallyConsistent) ? waker : nil
        unlock()
        return (count, wake)
    }

    /// Takes the next fiber (unretained: a queued fiber keeps itself alive until it finishes).
    private func pop() -> Unmanaged<FiberCore>? {
        if queued.load(ordering: .relaxed) == 0 { return nil }
        lock()
        guard let raw = head else {
            unlock()
            return nil
        }
        let fiber = Unmanaged<FiberCore>.fromOpaque(raw)
        head = fiber._withUnsafeGuaranteedRef { f in
            let next = f.queueNext
            f.queueNext = nil
            return next
        }
        if head == nil { tail = nil }
        // Changed only under the lock: a plain store, not a locked decrement. (An increment is
        // sequentially consistent with several executors: see `push`.)
        queued.store(queued.load(ordering: .relaxed) - 1, ordering: .relaxed)
        unlock()
        return fiber
    }

    /// Takes about half of this executor's unpinned queued fibers (for a thief).
    func stealHalf() -> [FiberCore] {
        if queued.load(ordering: .relaxed) < 1 { return [] }
        var stolen: [FiberCore] = []
        lock()
        let want = (queued.load(ordering: .relaxed) + 1) / 2
        var previous: UnsafeMutableRawPointer? = nil
        var node = head
        while let raw = node, stolen.count < want {
            let fiber = Unmanaged<FiberCore>.fromOpaque(raw).takeUnretainedValue()
            let next = fiber.queueNext
            if fiber.pinned {
                previous = raw
            } else {
                if let previous {
                    Unmanaged<FiberCore>.fromOpaque(previous).takeUnretainedValue().queueNext = next
                } else {
                    head = next
                }
                if tail == raw { tail = previous }
                fiber.queueNext = nil
                stolen.append(fiber)
            }
            node = next
        }
        queued.store(queued.load(ordering: .relaxed) - stolen.count, ordering: .relaxed)
        unlock()
        return stolen
    }

    // MARK: Inbox (cancel requests and Swift Concurrency jobs from other threads)

    /// Cancels the fiber's pending operation on this executor's loop (now when called on this
    /// executor's thread, else at its next iteration).
    @inline(never)  // Mutex: see the note on `FiberCore.cancel(timeout:)`.
    func requestCancel(_ fiber: FiberCore) {
        if Executor.currentUnmanaged?.toOpaque() == Unmanaged.passUnretained(self).toOpaque() {
            cancelPendingOperation(of: fiber)
            return
        }
        inbox.withLock { inbox in
            inbox.cancels.append(fiber)
            inboxCount.add(1, ordering: .sequentiallyConsistent)
        }
        waker.wake()
    }

    /// On this executor's thread: the fiber's operation is pending here exactly while
    /// `ioExecutor` names this executor (only this thread's callbacks clear it).
    private func cancelPendingOperation(of fiber: FiberCore) {
        guard fiber.ioExecutor.load(ordering: .acquiring) == index + 1, let op = fiber.pendingOp else { return }
        // A shielded fiber's operation runs to its natural end; the cancellation waits for the
        // shield. A request that waited in the inbox while the operation it was meant for
        // completed, and the fiber took its `CancellationError` (or its timeout was claimed),
        // must not cancel the operation the fiber does next (`cancelPending` is false then).
        if !fiber.cancelPending { return }
        loop.cancel(op)
    }

    /// Asks this executor's loop to forget a descriptor about to be closed (at its next iteration,
    /// from its own thread, which is the only one that may touch the loop).
    @inline(never)  // Mutex: see the note on `FiberCore.cancel(timeout:)`.
    func requestForget(_ request: ForgetRequest) {
        inbox.withLock { inbox in
            inbox.forgets.append(request)
            inboxCount.add(1, ordering: .sequentiallyConsistent)
        }
        waker.wake()
    }

    @inline(never)
    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let accepted = inbox.withLock { inbox -> Bool in
            if inbox.closed { return false }
            inbox.jobs.append(unowned)
            inboxCount.add(1, ordering: .sequentiallyConsistent)
            return true
        }
        if accepted {
            waker.wake()
        } else {
            // The runtime has stopped: run the job here rather than lose it.
            unowned.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    private func drainInbox() {
        if inboxCount.load(ordering: .acquiring) == 0 { return }
        let (woken, wokenCount, cancels, forgets, jobs) = inbox.withLock { inbox in
            let taken = (inbox.wokenHead, inbox.wokenCount, inbox.cancels, inbox.forgets, inbox.jobs)
            inbox.wokenHead = nil
            inbox.wokenTail = nil
            inbox.wokenCount = 0
            inbox.cancels = []
            inbox.forgets = []
            inbox.jobs = []
            return taken
        }
        // Each entry raised the count inside the lock, so this read-modify-write comes after every
        // one of those in the count's order: ThreadSanitizer sees from it that the entries were
        // handed over before what follows. The lock alone orders them, but when it went through its
        // slow path, which is not instrumented (see Scripts/tsan.supp), ThreadSanitizer could not
        // tell, and reported a woken fiber's first run against its waker's read of `lastExecutor`.
        inboxCount.subtract(wokenCount + cancels.count + forgets.count + jobs.count, ordering: .acquiringAndReleasing)
        var next = woken
        while let raw = next {
            let fiber = Unmanaged<FiberCore>.fromOpaque(raw).takeUnretainedValue()
            next = fiber.queueNext
            pushLocal(fiber)
        }
        if !cancels.isEmpty { cancelsTaken.add(cancels.count, ordering: .relaxed) }
        for fiber in cancels { cancelPendingOperation(of: fiber) }
        for request in forgets {
            loop.forget(request.descriptor)
            request.acknowledge()
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
    }

    // MARK: Scheduling

    /// Runs this executor on the calling thread until the runtime stops.
    func runScheduler() {
        weft_runtime_set_executor(Unmanaged.passUnretained(self).toOpaque())
        defer { weft_runtime_set_executor(nil) }
        while true {
            if let fiber = pop() {
                fiber._withUnsafeGuaranteedRef { run($0) }
                // Fibers that keep the queue busy must not starve the loop's completions, nor the
                // fibers spawned from outside (otherwise taken only when the queue is empty).
                if dispatches &- dispatchesAtPoll >= Executor.directSwitchLimit {
                    dispatchesAtPoll = dispatches
                    poll(.noWait)
                    drainInbox()
                    if let injected = runtime.popInjected() { run(injected) }
                }
                continue
            }
            drainInbox()
            dispatchesAtPoll = dispatches
            poll(.noWait)
            if queued.load(ordering: .relaxed) > 0 { continue }
            if let fiber = runtime.popInjected() {
                run(fiber)
                continue
            }
            if runtime.executors.count > 1 && steal() { continue }
            if runtime.isStopping && loop.pendingCount == 0 { break }
            sleep()
        }
        drainInbox()
        let jobs = inbox.withLock { inbox in
            inbox.closed = true
            let jobs = inbox.jobs
            inbox.jobs = []
            return jobs
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        if let (context, stack) = spare {
            spare = nil
            context.release()
            stackPoolRef._withUnsafeGuaranteedRef { $0.release(stack) }
        }
        while let raw = recycledHead {
            let fiber = Unmanaged<FiberCore>.fromOpaque(raw)
            recycledHead = fiber._withUnsafeGuaranteedRef { $0.queueNext }
            fiber.release()
        }
        recycledCount = 0
    }

    /// Runs one iteration of the loop.
    ///
    /// The wait fails only when the kernel cannot take it: short of memory or busy (`ENOMEM`,
    /// `EAGAIN`, `EBUSY`, `ENOBUFS`), which passes, or because the loop's own descriptor is no longer
    /// the one it opened (`EBADF`, `EINVAL`, `EFAULT`: code that does not own it closed or reused it),
    /// which does not. The first kind is retried after a pause that doubles from 1 ms to 64 ms, so an
    /// executor never spins on it. The second leaves every fiber on this executor waiting for
    /// completions that can never be reported, and stops the process with a message that names the
    /// executor, the call and the error, as Go and Tokio do, rather than hang it or spin.
    @inline(__always)
    private func poll(_ mode: Loop.RunMode) {
        do throws(LoopError) {
            try loop.run(mode)
            if failedWaits != 0 { failedWaits = 0 }
        } catch {
            waitFailed(error)
        }
    }

    /// Polls the loop once without waiting, from a fiber running on this executor (the loop is
    /// never running then: fibers run between the scheduler's polls).
    @inline(never)
    func pollNow() { poll(.noWait) }

    @inline(never)
    private func waitFailed(_ error: LoopError) {
        switch error.code {
        case .noMemory, .resourceTemporarilyUnavailable, .resourceBusy, .noBufferSpace, .interrupted:
            waitRetries.wrappingAdd(1, ordering: .relaxed)
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000 << min(failedWaits, 6))
            var left = timespec()
            failedWaits += 1
            while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
        default:
            fatalError("WeftRuntime: executor \(index) cannot wait in its \(loop.backendKind.rawValue) loop: \(error)")
        }
    }

    /// Waits in the loop until a completion or a wake. The flag is raised before the queues are
    /// checked again, and pushers check the flag after queueing, so no wake is lost.
    private func sleep() {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        runtime.sleepers.add(1, ordering: .sequentiallyConsistent)
        if queued.load(ordering: .sequentiallyConsistent) == 0 && inboxCount.load(ordering: .sequentiallyConsistent) == 0
            && !runtime.hasInjected && !runtime.isStopping
        {
            poll(.once)
        }
        runtime.sleepers.subtract(1, ordering: .sequentiallyConsistent)
        sleeping.store(false, ordering: .sequentiallyConsistent)
    }

    /// Moves half of the busiest other executor's queue here.
    private func steal() -> Bool {
        let executors = runtime.executors
        var victim: Executor? = nil
        var most = 0
        for other in executors where other !== self {
            let count = other.queued.load(ordering: .relaxed)
            if count > most {
                most = count
                victim = other
            }
        }
        guard let victim else { return false }
        let stolen = victim.stealHalf()
        if stolen.isEmpty { return false }
        for fiber in stolen { pushLocal(fiber) }
        return true
    }

    /// Gives a fiber taken from a queue its stack and context if it has none yet (its first run);
    /// a fiber that cannot get a stack is completed with the error. Returns whether it can run.
    private func prepare(_ fiber: FiberCore) -> Bool {
        if fiber.context != nil { return true }
        let argument = Unmanaged.passUnretained(fiber).toOpaque()
        if let (context, stack) = spare {
            spare = nil
            context.restart(entry: fiberEntry, argument: argument)
            fiber.stack = stack
            fiber.context = context
            return true
        }
        do {
            let stack = try stackPoolRef._withUnsafeGuaranteedRef { try $0.allocate(stackKind) }
            fiber.stack = stack
            fiber.context = ExecutionContext(stack: stack, entry: fiberEntry, argument: argument)
            return true
        } catch {
            fiber.failStart(error)
            fiber.complete()
            release(fiber)
            return false
        }
    }

    /// Makes `fiber` the running fiber of this executor (just before switching into it).
    @inline(__always)
    private func begin(_ fiber: FiberCore) {
        fiber.pinned = false
        fiber.lastExecutor = Unmanaged.passUnretained(self)
        running = Unmanaged.passUnretained(fiber)
        immediateBudget = Executor.immediateLimit
        dispatches &+= 1
    }

    /// Switches into a runnable fiber from the scheduler, and handles what the last fiber to switch
    /// out asked for when control comes back (it may be another fiber: fibers switch to each other
    /// directly).
    private func run(_ fiber: FiberCore) {
        guard prepare(fiber) else { return }
        begin(fiber)
        resumer.switch(to: fiber.context!)
        completeSwitch()
    }

    /// Called on the running fiber's stack as it switches out with `action`: records what it asked
    /// for and returns the context to switch to. That is the next fiber of this executor's queue (a
    /// direct switch, without a trip through the scheduler), or the scheduler when the queue is
    /// empty and after ``directSwitchLimit`` direct switches, so the loop is polled.
    /// The context that resumes runs ``completeSwitch()`` (``FiberCore/switchOut(_:)`` arranges it).
    ///
    /// A fiber that yields or parks on its way to the next fiber of an executor whose queue no
    /// other thread touches is handled before the switch (``leave(_:action:)``), with nothing left
    /// for ``completeSwitch()``.
    @inline(__always)
    func switchTarget(after fiber: FiberCore, action: Action) -> ExecutionContext {
        if dispatches &- dispatchesAtPoll < Executor.directSwitchLimit {
            while let next = pop() {
                let ready = next._withUnsafeGuaranteedRef { n -> ExecutionContext? in
                    guard prepare(n) else { return nil }
                    begin(n)
                    return n.context!
                }
                if let ready {
                    if !shared && (action == .yield || action == .park || action == .parkCancellable) {
                        leave(fiber, action: action)
                    } else {
                        self.action = action
                        previous = Unmanaged.passUnretained(fiber)
                    }
                    return ready
                }
            }
        }
        self.action = action
        previous = Unmanaged.passUnretained(fiber)
        running = nil
        return resumer
    }

    /// Carries out a yield or park before the switch to the next fiber, on an executor whose queue
    /// only its own thread touches. Nothing can resume the fiber before the switch has saved its
    /// registers: the fiber switched to runs only after that, and wakes from other threads go
    /// through the inbox, which the scheduler reads on this thread.
    @inline(__always)
    private func leave(_ fiber: FiberCore, action: Action) {
        if action == .yield || !park(fiber, cancellable: action == .parkCancellable) { pushLocal(fiber) }
    }

    /// Moves a fiber that switched out (or is about to) for a park from running to parked, and
    /// returns true; or returns false when it was woken first (it is running again and must be
    /// queued). A cancellable park finds a cancellation that came first and resumes the fiber for it.
    @inline(__always)
    private func park(_ fiber: FiberCore, cancellable: Bool) -> Bool {
        let (parked, _) = fiber.runState.compareExchange(
            expected: FiberCore.Run.running,
            desired: cancellable ? FiberCore.Run.parkedCancellable : FiberCore.Run.parked,
            ordering: .sequentiallyConsistent)
        if !parked {
            fiber.runState.store(FiberCore.Run.running, ordering: .relaxed)
            return false
        }
        // `cancel` may have looked before the state changed. (A cancellable park is never shielded,
        // and the fiber may be running elsewhere already: its shield depth is not read here.)
        if cancellable && fiber.requestPending { fiber.resumeCancelled() }
        return true
    }

    /// The other half of a switch, on the context that was resumed: handles what the fiber that
    /// switched out asked for (now that its registers are saved, other executors may take it).
    ///
    /// Never inlined into a function that switches: see the note on `FiberCore.cancel(timeout:)`.
    @inline(never)
    func completeSwitch() {
        guard let previous else { return }
        self.previous = nil
        let action = self.action
        self.action = .none
        previous._withUnsafeGuaranteedRef { finishSwitch(of: $0, action: action) }
    }

    @inline(__always)
    private func finishSwitch(of fiber: FiberCore, action: Action) {
        switch action {
        case .yield, .none:
            pushLocal(fiber)
        case .park, .parkCancellable:
            // Woken before the switch finished: run it again.
            if !park(fiber, cancellable: action == .parkCancellable) { pushLocal(fiber) }
        case .hop:
            let target = hopTarget!
            hopTarget = nil
            fiber.pinned = true
            target.push(fiber)
        case .finish:
            let context = fiber.context!
            let stack = fiber.stack!
            fiber.context = nil
            fiber.stack = nil
            if keepsSpare && spare == nil {
                spare = (context, stack)
            } else {
                context.release()
                stackPoolRef._withUnsafeGuaranteedRef { $0.release(stack) }
            }
            release(fiber)
        }
    }

    /// Counts a new fiber in the runtime (``Runtime/admit(_:)``) without reference counting.
    @inline(__always)
    func admit(_ fiber: FiberCore) { runtimeRef._withUnsafeGuaranteedRef { $0.admit(fiber) } }

    /// Lets go of a completed fiber once nothing runs on its stack: what it holds for user code
    /// (``FiberCore/dropUnreachable(checkingHandles:)``), its count in the runtime, and the
    /// reference it held on itself since it was spawned.
    ///
    /// The first step runs deinitialisers, which may suspend the fiber this runs on (it runs on
    /// the next fiber's stack, or the scheduler's): that fiber may go on on another executor, so
    /// the rest is done by whichever executor runs it then. Nothing of this executor's own state
    /// is touched after user code ran.
    private func release(_ fiber: FiberCore) {
        if fiber.dropUnreachable(checkingHandles: recycles) {
            Executor.currentUnmanaged!._withUnsafeGuaranteedRef { $0.settleFinished(fiber) }
        } else {
            settleFinished(fiber)
        }
    }

    private func settleFinished(_ fiber: FiberCore) {
        runtimeRef._withUnsafeGuaranteedRef { $0.fiberFinished(fiber) }
        recycle(fiber)
    }

    /// Keeps a finished fiber object, with the reference it held on itself, for a later spawn on
    /// this executor; or lets it go when the list is full. A spawn takes it only once nothing else
    /// references it (``takeRecycledFiber()``): then no handle can see it again, and reusing it
    /// saves the allocation, the deinitialisation and the free (a quarter of a spawn and join).
    /// From this executor's thread only.
    private func recycle(_ fiber: FiberCore) {
        assert(isCurrent, "a fiber object was recycled on another executor's thread")
        if !recycles || recycledCount >= Executor.recycledLimit {
            // The last step: the deinitialiser of a result it still holds may run here.
            Unmanaged.passUnretained(fiber).release()
            return
        }
        fiber.queueNext = recycledHead
        recycledHead = Unmanaged.passUnretained(fiber).toOpaque()
        recycledCount += 1
    }

    /// The next identity from this executor's block (see `Identities`). This executor's thread only.
    func nextIdentity() -> UInt {
        if identityNext == identityEnd {
            identityNext = Identities.takeBlock()
            identityEnd = identityNext &+ Identities.block
        }
        defer { identityNext &+= 1 }
        return identityNext
    }

    /// The most recently finished fiber object, if nothing but this list references it any more;
    /// else nil, and the list lets go of that object (whoever still holds it frees it). From this
    /// executor's thread only.
    func takeRecycledFiber() -> FiberCore? {
        assert(isCurrent, "a recycled fiber object was taken on another executor's thread")
        guard let raw = recycledHead else { return nil }
        var fiber = Unmanaged<FiberCore>.fromOpaque(raw).takeRetainedValue()
        recycledHead = fiber.queueNext
        recycledCount -= 1
        // Unique: every handle is gone, and a handle is the only way anything reaches a finished
        // fiber (queues, joiners and the loop hold running or parked fibers only).
        if !FiberCore.isSoleReference(&fiber) { return nil }
        reusedFibers &+= 1
        return fiber
    }
}
