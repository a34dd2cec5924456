internal import Glibc
import Synchronization
import WeftContext
import WeftLoop

/// Identities for owner checks (`FiberCore.identity`, a thread's in `ThreadParker`): one
/// process-wide sequence, so no fiber or thread ever has another's, even at a reused address or
/// thread block. Executors take blocks of it, one atomic operation per block.
enum Identities {
    static let next = Atomic<UInt>(1)
    static let block: UInt = 4096

    /// One identity, for a fiber made outside an executor or a thread.
    static func take() -> UInt { next.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// A block of `block` identities, starting at the returned one.
    static func takeBlock() -> UInt { next.wrappingAdd(block, ordering: .relaxed).oldValue }
}

/// Cancellations under way on any thread (``FiberCore/cancel(timeout:)``). A canceller that found
/// its fiber unfinished goes on to reach the fiber's executors; ``Runtime/run(options:_:)`` waits
/// for those before it closes them and returns, so that a cancel that started just before the
/// last fiber finished never reaches a runtime that is gone.
///
/// Counted process-wide (the runtime may be gone when a canceller starts), in two counts: new
/// cancellations go to the one `epoch` names, and a drain moves `epoch` on and waits for the other
/// to empty. A canceller that found its fiber unfinished read `epoch` before that fiber finished,
/// so before the drain moved it: it is in the count the drain waits for. One that reads `epoch`
/// after the move finds its fiber finished and touches nothing. So a drain waits only for the
/// cancellations under way as it starts, however many other runtimes start meanwhile.
enum CancelsInFlight {
    static let epoch = Atomic<Int>(0)
    static let even = Atomic<Int>(0)
    static let odd = Atomic<Int>(0)
    /// One drain at a time, so that `epoch` does not move again under a drain that waits.
    static let drains = Mutex<Void>(())

    /// Counts a cancellation in; returns what to pass to ``leave(_:)``.
    static func enter() -> Int {
        let slot = epoch.load(ordering: .sequentiallyConsistent) & 1
        if slot == 0 { even.add(1, ordering: .sequentiallyConsistent) } else { odd.add(1, ordering: .sequentiallyConsistent) }
        return slot
    }

    static func leave(_ slot: Int) {
        if slot == 0 { even.subtract(1, ordering: .releasing) } else { odd.subtract(1, ordering: .releasing) }
    }

    private static func count(_ slot: Int) -> Int {
        slot == 0 ? even.load(ordering: .sequentiallyConsistent) : odd.load(ordering: .sequentiallyConsistent)
    }

    /// Waits out the cancellations under way (each takes microseconds).
    static func drain() {
        drains.withLock { _ in
            let slot = epoch.add(1, ordering: .sequentiallyConsistent).oldValue & 1
            #if DEBUG
            if count(slot) != 0 { RuntimeTestHooks.fire(RuntimeTestHooks.runWaitsForCancels) }
            #endif
            while count(slot) != 0 { sched_yield() }
        }
    }
}

/// Process-wide count of fiber objects for leak checks, kept only once a test turns it on
/// (``Runtime/tracksFiberObjects``): two locked instructions per fiber are not worth paying in
/// production for a figure only tests read.
enum FiberCounters {
    static let tracking = Atomic<Bool>(false)
    static let liveObjects = Atomic<Int>(0)
}

/// A fiber: scheduling links, park state, cancellation, join protocol, and its body and result.
///
/// The class is not generic, so nothing on the scheduler's paths (running the body, finishing,
/// deinit) looks up generic metadata: the body and then the result live in ``storage``, and the
/// one piece of code that knows their type is ``thunk``, a closure specialised where the fiber is
/// spawned (see `FiberCore.make(_:)`).
///
/// Fields marked `@exclusivity(unchecked)` are touched by one thread at a time, handed over by the
/// park/wake protocol (`runState`) or the run-queue lock; the dynamic checks would cost more than the
/// switch.
@usableFromInline
final class FiberCore: @unchecked Sendable {
    /// `runState` values: the park/wake protocol that never loses a wake.
    enum Run {
        /// Running, queued, or about to park.
        static let running = 0
        /// Switched out and waiting for a wake.
        static let parked = 1
        /// Woken before its park completed: the scheduler requeues it instead of parking it.
        static let notified = 2
        /// Switched out in a cancellable wait (``parkCancellable()``: a WeftSync primitive, a join,
        /// a group, a task): a wake or a cancellation, whichever moves it first, makes it runnable.
        static let parkedCancellable = 3
    }

    /// `completion`: the join protocol in one word. Flag bits, and the address of the fiber
    /// waiting in a join (heap objects are 16-byte aligned), so a join claims the fiber and
    /// registers as its waiter with one compare-and-swap, and the only one that can: a join that
    /// finds the fiber claimed writes nothing.
    enum Completion {
        /// The body has ended and its result is kept.
        static let finished = 1
        /// Claimed by a join or an await: later joins fail.
        static let joined = 2
        /// Detached: later joins fail.
        static let detached = 4
        /// An await waits for the end (``waiterContinuation``).
        static let awaited = 8
        /// The claim bits.
        static let claimed = joined | detached
        /// The flag bits; the rest is the joining fiber's address, or zero.
        static let flags = 15
    }

    /// `cancelBits`: the cancellation requests and which of them a `CancellationError` has covered.
    /// Bit 0: cancelled from outside; bit 1: that was delivered; bit 2: the last delivery was the
    /// one that covered it (see ``takeTimeoutConversion()``). Bits 3…31: timeouts that fired and
    /// were not yet claimed; bits 32…: how many of those a delivery covered. A request is pending
    /// while it is not covered, so one that arrives after a delivery (a timeout armed in cleanup
    /// code, a cancel during a timed-out body's cleanup) gets its own `CancellationError`.
    enum CancelBit {
        static let external = 1
        static let externalDelivered = 2
        static let externalInLastDelivery = 4
        static let timeoutUnit = 8
        static let deliveredTimeoutUnit = 1 << 32
        static let countMask = (1 << 29) - 1

        static func fired(_ bits: Int) -> Int { (bits >> 3) & countMask }
        static func deliveredTimeouts(_ bits: Int) -> Int { (bits >> 32) & countMask }
        static func pending(_ bits: Int) -> Bool {
            (bits & external != 0 && bits & externalDelivered == 0) || fired(bits) > deliveredTimeouts(bits)
        }
    }

    /// Set when the fiber is admitted into a runtime (before it is queued).
    @exclusivity(unchecked) unowned(unsafe) var runtime: Runtime! = nil
    @exclusivity(unchecked) var context: ExecutionContext?
    @exclusivity(unchecked) var stack: Stack?
    /// Link in an executor's run queue (an unretained `FiberCore`; fibers keep themselves alive
    /// until they finish).
    @exclusivity(unchecked) var queueNext: UnsafeMutableRawPointer?
    /// Set while the fiber must run on the executor it is queued on (it hopped there to finish
    /// with that executor's loop): stealers leave it.
    @exclusivity(unchecked) var pinned = false
    /// Counted in its one-executor runtime's `localLive` rather than `live` (see `Runtime.admit`).
    @exclusivity(unchecked) var countedLocally = false
    /// Counted in its runtime's `live` already when it was obtained (``obtainHere(thunk:)`` outside
    /// a fiber), so that admitting it counts nothing more.
    @exclusivity(unchecked) var countedAtSpawn = false
    /// The executor the fiber last ran on: wakes from other threads queue it there.
    @exclusivity(unchecked) var lastExecutor: Unmanaged<Executor>?
    let runState = Atomic<Int>(Run.running)

    /// ``Completion`` bits and the joining fiber.
    let completion = Atomic<Int>(0)
    /// Whether the body has ended (its result, if not yet taken, is kept).
    var isFinished: Bool { completion.load(ordering: .acquiring) & Completion.finished != 0 }
    /// The task awaiting the fiber (``JoinHandle/value``), set by the one that claimed the join.
    @exclusivity(unchecked) var waiterContinuation: UnsafeContinuation<Void, Never>?

    let cancelBits = Atomic<Int>(0)
    /// Index + 1 of the executor whose loop holds this fiber's pending operation, or 0.
    let ioExecutor = Atomic<Int>(0)
    /// The pending operation (on this fiber's stack); valid while `ioExecutor` names an executor.
    @exclusivity(unchecked) var pendingOp: UnsafeMutablePointer<LoopOperation>?
    @exclusivity(unchecked) var shieldDepth = 0
    /// Set by whoever made the fiber runnable out of ``parkCancellable()`` because of a
    /// cancellation (before queueing it, so the fiber reads it after it resumes; the queue orders
    /// the two, the atomic only keeps ThreadSanitizer from flagging a hand-over it cannot see).
    let wokenByCancel = Atomic<Bool>(false)

    /// Called once when the fiber completes (WeftSync's select arms), behind `observerLock`; the
    /// callbacks run under the lock, so a removal that returns has no callback still running.
    /// `observed` is raised before the first observer is added, so a fiber nobody observes
    /// finishes without taking the lock (the pair with `completion` is sequentially consistent).
    private let observerLock = Atomic<Bool>(false)
    private let observed = Atomic<Bool>(false)
    @exclusivity(unchecked) private var observers = ObserverList()
    @exclusivity(unchecked) private var observersNotified = false

    @exclusivity(unchecked) var group: GroupCore?
    @usableFromInline @exclusivity(unchecked) var failure: (any Error)?
    @exclusivity(unchecked) var locals: [ObjectIdentifier: any Sendable]?

    /// What ``storage`` holds: nothing, the body, or the result.
    @usableFromInline enum Stored {
        @usableFromInline static let nothing: UInt8 = 0
        @usableFromInline static let body: UInt8 = 1
        @usableFromInline static let result: UInt8 = 2
    }

    /// Room for the body (a closure) and later the result (`Result<T, any Error>`) when they fit in
    /// four words, as they do for most types; larger values go in a box it points to.
    @usableFromInline @exclusivity(unchecked) var storage: (Int, Int, Int, Int) = (0, 0, 0, 0)
    @usableFromInline @exclusivity(unchecked) var stored = Stored.nothing
    /// Runs, fails or destroys what ``storage`` holds; the only code that knows its type (replaced
    /// when the object is reused, see ``reuse(thunk:identity:)``).
    @usableFromInline @exclusivity(unchecked) var thunk: FiberThunk
    /// Whether this object is in ``FiberCounters/liveObjects`` (made while tracking was on).
    private let counted: Bool
    /// This fiber's identity for owner checks (WeftSync's locks): unique in the process, for fibers
    /// and threads alike (``Identities``), and new for each fiber an object is reused for, so a
    /// fiber that finished holding a lock is never taken for a later one at its address.
    @exclusivity(unchecked) private(set) var identity: UInt

    @usableFromInline
    init(thunk: @escaping FiberThunk) {
        identity = Executor.currentUnmanaged?._withUnsafeGuaranteedRef { $0.nextIdentity() } ?? Identities.take()
        self.thunk = thunk
        counted = FiberCounters.tracking.load(ordering: .relaxed)
        if counted { FiberCounters.liveObjects.wrappingAdd(1, ordering: .relaxed) }
    }

    deinit {
        if stored != Stored.nothing { thunk(self, .destroy) }
        if counted { FiberCounters.liveObjects.wrappingSubtract(1, ordering: .relaxed) }
    }

    /// A fiber object for a new fiber running what `thunk` knows: one that finished on the calling
    /// executor and that nothing else references any more (see `Executor.takeRecycledFiber()`),
    /// reset to the state of a new one; or nil.
    @usableFromInline
    static func recycled(thunk: @escaping FiberThunk) -> FiberCore? {
        recycled(thunk: thunk, on: Executor.currentUnmanaged)
    }

    private static func recycled(thunk: @escaping FiberThunk, on executor: Unmanaged<Executor>?) -> FiberCore? {
        guard let executor, let fiber = executor._withUnsafeGuaranteedRef({ $0.takeRecycledFiber() }) else { return nil }
        // The identity is taken before the reuse runs any user code (see `reuse(thunk:identity:)`).
        fiber.reuse(thunk: thunk, identity: executor._withUnsafeGuaranteedRef { $0.nextIdentity() })
        return fiber
    }

    /// The non-generic first half of ``Fiber/spawn(_:)``: a fiber object for a new fiber, the
    /// object of one that finished on the calling executor if it is free (recycled), else a new one.
    ///
    /// Making it may run user code (the deinitialiser of a result nobody took, see ``reuse(thunk:identity:)``)
    /// that suspends, so the caller may be on another executor afterwards: ``startHere(_:)`` reads
    /// the executor again.
    @usableFromInline
    static func obtainHere(thunk: @escaping FiberThunk) throws(FiberError) -> FiberCore {
        guard let executor = Executor.currentUnmanaged else { throw .notInFiber(operation: "spawn") }
        // Outside a fiber (a task's job, or a deinitialiser the scheduler runs) every fiber may have
        // finished and the runtime be stopping: the new fiber is counted now, as `Runtime.spawn`
        // counts its own, or refused. (Inside one, the caller itself keeps the runtime going.)
        let outside = executor._withUnsafeGuaranteedRef { $0.running == nil }
        if outside { try executor.takeUnretainedValue().runtime.countExternal() }
        let fiber = recycled(thunk: thunk, on: executor) ?? FiberCore(thunk: thunk)
        fiber.countedAtSpawn = outside
        return fiber
    }

    /// The second half: admits the fiber, which holds its body now, and queues it on the calling
    /// executor.
    @usableFromInline
    static func startHere(_ fiber: FiberCore) {
        Executor.currentUnmanaged!._withUnsafeGuaranteedRef { e in
            e.admit(fiber)
            e.pushLocal(fiber)
        }
    }

    /// Lets go of what a finished fiber holds for user code that nobody can take any more, once
    /// nothing runs on its stack (whether or not its object is kept for reuse): its fiber-local
    /// values, its error (its group read it when the fiber completed), and its result when the
    /// fiber is detached or, with `checkingHandles`, when no handle to it is left (the caller
    /// holds the fiber's own reference). A result that may still be joined stays; if its last
    /// handle goes unjoined later, it is freed when the object is reused or its executor stops.
    ///
    /// Returns whether anything was dropped: deinitialisers ran then, and they may have suspended
    /// the calling fiber, which may go on on another executor.
    func dropUnreachable(checkingHandles: Bool) -> Bool {
        var dropped = false
        // Tested first: storing nil calls into the runtime to release even an empty value.
        if locals != nil {
            locals = nil
            dropped = true
        }
        if failure != nil {
            failure = nil
            dropped = true
        }
        // The flags before `stored`: unless the fiber is detached or nobody can reach it, a joiner
        // on another thread may be taking the result right now.
        let word = completion.load(ordering: .acquiring)
        if word & Completion.detached != 0
            || (checkingHandles && word & Completion.claimed == 0 && isOnlySelfReferenced())
        {
            if stored == Stored.result {
                thunk(self, .destroy)
                dropped = true
            }
        }
        return dropped
    }

    /// Whether the fiber's own reference (held from its spawn until its object is recycled or
    /// freed) is the only one: no handle exists, so none can be made again.
    private func isOnlySelfReferenced() -> Bool {
        // Borrows the fiber's own reference for the check and gives it back.
        var me = Unmanaged.passUnretained(self).takeRetainedValue()
        let unique = FiberCore.isSoleReference(&me)
        _ = Unmanaged.passRetained(me)
        return unique
    }

    /// Whether `fiber` holds the only reference to its object. The last other one may have been
    /// dropped on another thread: its release (a releasing decrement) must be ordered before what
    /// the caller then does to the object. The runtime's uniqueness check loads the count without
    /// ordering on some platforms; the fence after it supplies that (on x86-64 it costs nothing).
    @inline(__always)
    static func isSoleReference(_ fiber: inout FiberCore) -> Bool {
        guard isKnownUniquelyReferenced(&fiber) else { return false }
        atomicMemoryFence(ordering: .acquiring)
        return true
    }

    /// Resets a finished fiber object that nothing else references to the state of a new one.
    /// What its finish already cleared (context, stack, group, locals, waiter, pending operation,
    /// I/O owner) is left as it is.
    private func reuse(thunk: @escaping FiberThunk, identity: UInt) {
        // A result nobody took (its last handle was dropped unjoined after the fiber finished).
        if stored != Stored.nothing { self.thunk(self, .destroy) }
        self.thunk = thunk
        self.identity = identity
        queueNext = nil
        pinned = false
        countedLocally = false
        lastExecutor = nil
        runState.store(Run.running, ordering: .relaxed)
        completion.store(0, ordering: .relaxed)
        cancelBits.store(0, ordering: .relaxed)
        wokenByCancel.store(false, ordering: .relaxed)
        shieldDepth = 0
        if observed.load(ordering: .relaxed) {
            observed.store(false, ordering: .relaxed)
            observersNotified = false
        }
    }

    /// Runs the body on the fiber's stack and keeps its result.
    func runBody() { thunk(self, .run) }

    /// Completes a fiber that could not start (no stack) with `error`.
    func failStart(_ error: any Error) {
        failure = error
        thunk(self, .fail)
    }

    // MARK: Cancellation

    /// Whether a cancellation is waiting to be delivered at the next suspension point.
    var cancelPending: Bool {
        if shieldDepth > 0 { return false }
        return requestPending
    }

    /// Whether a request is waiting to be delivered, whatever the shield (which only the fiber
    /// reads: other threads use this where they know the fiber is not shielded).
    var requestPending: Bool { CancelBit.pending(cancelBits.load(ordering: .sequentiallyConsistent)) }

    /// Throws the pending cancellation once (called by the fiber itself at suspension points).
    func checkCancellation() throws(CancellationError) {
        if takeCancellation() { throw CancellationError() }
    }

    /// Whether a cancellation is pending; if so it counts as delivered from now on (the caller
    /// throws `CancellationError`).
    @inline(__always)
    func takeCancellation() -> Bool {
        if !cancelPending { return false }
        markDelivered()
        return true
    }

    /// ``checkCancellation()`` for hot paths. `CancellationError` is a resilient type, so every
    /// function with a typed `throws(CancellationError)` call site looks up its metadata and sizes a
    /// stack slot on each call; an untyped throw from an out-of-line function costs nothing until
    /// it throws.
    @inline(__always)
    func throwIfCancelled() throws {
        if cancelPending { try deliverCancellation() }
    }

    /// Marks the pending cancellation as delivered and throws it (out of line: see
    /// ``throwIfCancelled()``).
    @inline(never)
    func deliverCancellation() throws {
        markDelivered()
        throw CancellationError()
    }

    /// Marks every request made so far as delivered (a `CancellationError` was thrown for them, or
    /// an operation failed with it).
    func markDelivered() {
        var bits = cancelBits.load(ordering: .relaxed)
        while true {
            var new = bits & ~(CancelBit.countMask << 32) & ~CancelBit.externalInLastDelivery
            new |= CancelBit.fired(bits) << 32
            if bits & CancelBit.external != 0 && bits & CancelBit.externalDelivered == 0 {
                new |= CancelBit.externalDelivered | CancelBit.externalInLastDelivery
            }
            let (done, original) = cancelBits.compareExchange(expected: bits, desired: new, ordering: .relaxed)
            if done { return }
            bits = original
        }
    }

    /// Requests cancellation from any thread: the flag, then the pending operation, then a
    /// cancellable park (``parkCancellable()``).
    ///
    /// Functions here and in the executor that take a `Synchronization.Mutex` are never inlined:
    /// the mutex locks with the thread id read from a thread-local, and within one function LLVM
    /// may reuse a thread-local address computed before a context switch; after the fiber
    /// migrated, the lock would be taken in another thread's name (the kernel then reports a
    /// recursive lock, or worse).
    @inline(never)
    func cancel(timeout: Bool) {
        if timeout {
            cancelBits.add(CancelBit.timeoutUnit, ordering: .sequentiallyConsistent)
        } else {
            let old = cancelBits.bitwiseOr(CancelBit.external, ordering: .sequentiallyConsistent).oldValue
            if old & CancelBit.external != 0 { return }
        }
        // Counted before the fiber is looked at: either `run` waits for this cancel, or the
        // fiber is seen finished here and the runtime is not touched (both sides fence).
        let slot = CancelsInFlight.enter()
        defer { CancelsInFlight.leave(slot) }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if isFinished { return }
        #if DEBUG
        RuntimeTestHooks.fire(RuntimeTestHooks.cancelFoundFiberUnfinished)
        #endif
        let owner = ioExecutor.load(ordering: .sequentiallyConsistent)
        if owner != 0 { runtime.executors[owner - 1].requestCancel(self) }
        // A fiber in a cancellable wait: make it runnable; it ends or passes on the cancellation
        // itself when it resumes. Pairs with the check in `Executor.finishSwitch` (both sides
        // write, then read the other's word, sequentially consistent: one of them sees the other).
        if runState.load(ordering: .sequentiallyConsistent) == Run.parkedCancellable {
            #if DEBUG
            RuntimeTestHooks.fire(RuntimeTestHooks.cancelFoundCancellableWait)
            #endif
            resumeCancelled()
        }
    }

    /// Makes the fiber runnable out of ``parkCancellable()`` for a cancellation, if nothing else
    /// made it runnable first.
    func resumeCancelled() {
        if runState.compareExchange(
            expected: Run.parkedCancellable, desired: Run.running, ordering: .sequentiallyConsistent
        ).exchanged {
            wokenByCancel.store(true, ordering: .relaxed)
            lastExecutor!._withUnsafeGuaranteedRef { $0.push(self) }
        }
    }

    /// Claims one fired timeout (its `withTimeout` is ending): it no longer counts, nor does one
    /// delivery of it. Another timeout that fired after that delivery stays pending, so an outer
    /// timeout that fires while an inner one's error is handled still interrupts the body.
    func claimTimeout() {
        var bits = cancelBits.load(ordering: .relaxed)
        while true {
            var new = bits - CancelBit.timeoutUnit
            if CancelBit.deliveredTimeouts(bits) > 0 { new -= CancelBit.deliveredTimeoutUnit }
            let (done, original) = cancelBits.compareExchange(
                expected: bits, desired: new, ordering: .acquiringAndReleasing)
            if done { return }
            bits = original
        }
    }

    /// Called when a `withTimeout` turns the `CancellationError` it caused into a `TimeoutError`:
    /// if the same delivery also covered a cancellation from outside, that one is pending again
    /// (the caller gets a `CancellationError` at its next suspension point instead of losing it).
    func takeTimeoutConversion() {
        var bits = cancelBits.load(ordering: .relaxed)
        while bits & CancelBit.externalInLastDelivery != 0 {
            let new = bits & ~(CancelBit.externalDelivered | CancelBit.externalInLastDelivery)
            let (done, original) = cancelBits.compareExchange(expected: bits, desired: new, ordering: .relaxed)
            if done { return }
            bits = original
        }
    }

    // MARK: Park and wake

    /// Switches the running fiber out with `action`, to the next fiber of its executor or to the
    /// scheduler, and returns when it is resumed (possibly on another executor), after finishing
    /// the switch there.
    @inline(__always)
    func switchOut(_ action: Executor.Action) {
        let target = Executor.currentUnmanaged!._withUnsafeGuaranteedRef { e in
            e.switchTarget(after: self, action: action)
        }
        context!.switch(to: target)
        // Read the executor afresh: the fiber may have been resumed by another one.
        Executor.currentUnmanaged!._withUnsafeGuaranteedRef { $0.completeSwitch() }
    }

    /// Puts the running fiber at the back of its executor's run queue and switches out; it
    /// continues when the scheduler picks it again (possibly on another executor).
    func yieldNow() { switchOut(.yield) }

    /// Polls the executor's loop once, without waiting, right after `op` was submitted; if that
    /// completed it (its callback ran and found this fiber running, so it marked it notified),
    /// takes the notification back and returns true: the caller goes on without parking. After a
    /// budget of such completions in a row the fiber yields, as for operations that complete at
    /// once on epoll (``Fiber/perform(_:)``).
    func completesEagerly(_ op: UnsafeMutablePointer<LoopOperation>, on executor: Executor) -> Bool {
        executor.pollNow()
        if op.pointee.isPending { return false }
        let taken = runState.compareExchange(expected: Run.notified, desired: Run.running, ordering: .acquiringAndReleasing)
        precondition(taken.exchanged, "a completed operation's wake was not recorded")
        executor.immediateBudget -= 1
        if executor.immediateBudget <= 0 {
            executor.immediateBudget = Executor.immediateLimit
            yieldNow()
        }
        return true
    }

    /// Switches out of the running fiber until ``wake(_:)``; returns on whatever executor resumes
    /// it. Exactly one wake is expected per park (a wake that comes first is kept).
    func park() { switchOut(.park) }

    /// ``park()`` for a wait that cancellation may end: returns after a ``wake(_:)`` or
    /// once the fiber is cancelled (outside a shield), whichever comes first, and says whether
    /// the cancellation ended it (then the wake that the wait's owner may still send must be
    /// absorbed: see `Parking.park`). Costs no more than a plain park: nothing is installed for
    /// the canceller, which finds the fiber through `runState`.
    @inline(__always)
    func parkCancellable() -> Bool {
        if shieldDepth > 0 {
            park()
            return false
        }
        switchOut(.parkCancellable)
        while wokenByCancel.load(ordering: .relaxed) {
            wokenByCancel.store(false, ordering: .relaxed)
            if cancelPending { return true }
            // The canceller found an earlier cancellable wait of this fiber and was delayed past
            // it: the fiber has delivered that request since, and this wait is not its to end.
            // (Nothing else marks requests delivered, so a canceller that is on time always
            // finds its request pending here.) The wait goes on.
            switchOut(.parkCancellable)
        }
        return false
    }

    /// Parks until the one wake the caller arranged (a join, a group, a task's result). If the
    /// fiber is cancelled meanwhile (outside a shield), runs `passOn` once (cancel what it waits
    /// for) and goes on waiting: the wait itself never fails with the fiber's own cancellation.
    @inline(__always)
    func parkPassingOnCancellation(_ passOn: () -> Void) {
        if parkCancellable() {
            passOn()
            park()
        }
    }

    /// Makes a parked fiber runnable, or, if it has not finished parking, makes its park return at
    /// once. Any thread.
    static func wake(_ fiber: FiberCore) {
        var state = fiber.runState.load(ordering: .acquiring)
        while true {
            if state == Run.parked || state == Run.parkedCancellable {
                let (done, original) = fiber.runState.compareExchange(
                    expected: state, desired: Run.running, ordering: .sequentiallyConsistent)
                if done {
                    fiber.lastExecutor!._withUnsafeGuaranteedRef { $0.push(fiber) }
                    return
                }
                state = original
            } else if state == Run.running {
                let (done, original) = fiber.runState.compareExchange(
                    expected: Run.running, desired: Run.notified, ordering: .acquiringAndReleasing)
                if done { return }
                state = original
            } else {
                return
            }
        }
    }
}

/// What a fiber's ``FiberCore/thunk`` is asked to do.
@usableFromInline
enum FiberThunkAction {
    /// Take the body, run it, keep its result (and the error in `failure`).
    case run
    /// Drop the body and keep `failure` as the result.
    case fail
    /// Drop whatever is kept (the fiber is being freed).
    case destroy
}

/// The type-aware part of a fiber, made by `FiberCore.make(_:)` where the result type is known.
@usableFromInline
typealias FiberThunk = @Sendable (FiberCore, FiberThunkAction) -> Void

extension FiberCore {
    /// Makes a fiber that runs `body`. Inlined into the spawning code, so the thunk is specialised
    /// for `T` there and needs no generic metadata at run time.
    @inlinable
    static func make<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> FiberCore {
        let thunk = thunk(for: T.self)
        let fiber = recycled(thunk: thunk) ?? FiberCore(thunk: thunk)
        fiber.holdBody(body)
        return fiber
    }

    /// The thunk of fibers whose result is a `T`.
    @inlinable
    static func thunk<T: Sendable>(for _: T.Type) -> FiberThunk {
        { fiber, action in fiber.act(action, resultType: T.self) }
    }

    /// Keeps the body of a fiber not yet started.
    @inlinable
    func holdBody<T: Sendable>(_ body: @escaping @Sendable () throws -> T) {
        keep(body)
        stored = Stored.body
    }

    @inlinable
    func act<T: Sendable>(_ action: FiberThunkAction, resultType: T.Type) {
        typealias Body = @Sendable () throws -> T
        switch action {
        case .run:
            let body = take(Body.self)
            let result: Result<T, any Error>
            do {
                result = .success(try body())
            } catch {
                failure = error
                result = .failure(error)
            }
            keep(result)
            stored = Stored.result
        case .fail:
            drop(Body.self)
            keep(Result<T, any Error>.failure(failure!))
            stored = Stored.result
        case .destroy:
            if stored == Stored.body { drop(Body.self) } else if stored == Stored.result { drop(Result<T, any Error>.self) }
            stored = Stored.nothing
        }
    }

    /// Moves the fiber's result out (the fiber has finished; called once, by its joiner).
    @inlinable
    func takeResult<T: Sendable>(_: T.Type) -> Result<T, any Error> {
        precondition(stored == Stored.result, "a fiber's result was taken twice")
        stored = Stored.nothing
        return take(Result<T, any Error>.self)
    }

    /// Whether a `Value` is kept inline in ``storage`` (else in a box ``storage`` points to).
    @inlinable
    static func fitsInline<Value>(_: Value.Type) -> Bool {
        MemoryLayout<Value>.size <= MemoryLayout<(Int, Int, Int, Int)>.size
            && MemoryLayout<Value>.alignment <= MemoryLayout<Int>.alignment
    }

    @inlinable
    func keep<Value>(_ value: Value) {
        withUnsafeMutableBytes(of: &storage) { raw in
            if FiberCore.fitsInline(Value.self) {
                raw.baseAddress!.initializeMemory(as: Value.self, to: value)
            } else {
                let box = UnsafeMutablePointer<Value>.allocate(capacity: 1)
                box.initialize(to: value)
                raw.storeBytes(of: UnsafeMutableRawPointer(box), as: UnsafeMutableRawPointer.self)
            }
        }
    }

    @inlinable
    func take<Value>(_: Value.Type) -> Value {
        withUnsafeMutableBytes(of: &storage) { raw in
            if FiberCore.fitsInline(Value.self) {
                return raw.baseAddress!.assumingMemoryBound(to: Value.self).move()
            }
            let box = raw.load(as: UnsafeMutablePointer<Value>.self)
            let value = box.move()
            box.deallocate()
            return value
        }
    }

    @inlinable
    func drop<Value>(_: Value.Type) { _ = take(Value.self) }
}

/// The loop callback of every fiber-blocking operation: runs on the executor whose loop had it.
let fiberOperationCallback: LoopCallback = { _, context in
    // No reference counting (a strong local cost a retain and a release, two locked instructions
    // per completion): the parked fiber keeps itself alive until it finishes.
    Unmanaged<FiberCore>.fromOpaque(context!)._withUnsafeGuaranteedRef { fiber in
        fiber.pendingOp = nil
        fiber.ioExecutor.store(0, ordering: .releasing)
        FiberCore.wake(fiber)
    }
}

/// Every fiber context starts here, on its own stack.
let fiberEntry: ExecutionContext.Entry = { _, argument in
    Executor.currentUnmanaged!._withUnsafeGuaranteedRef { $0.completeSwitch() }
    let fiber = Unmanaged<FiberCore>.fromOpaque(argument!)
    runFiberBody(fiber)
    // Nothing on this stack may hold a reference past this point: the stack is never unwound.
    exitFiber(fiber)
}

@inline(never)
private func runFiberBody(_ fiber: Unmanaged<FiberCore>) {
    fiber._withUnsafeGuaranteedRef { $0.runBody() }
}

@inline(never)
private func exitFiber(_ fiber: Unmanaged<FiberCore>) -> Never {
    // The joiner can run as soon as the result is published; the stack and the fiber's own
    // reference are let go by whatever runs next, once this stack is left for good.
    fiber._withUnsafeGuaranteedRef { $0.complete() }
    let target = Executor.currentUnmanaged!._withUnsafeGuaranteedRef { e in
        fiber._withUnsafeGuaranteedRef { e.switchTarget(after: $0, action: .finish) }
    }
    let me = fiber._withUnsafeGuaranteedRef { $0.context! }
    me.exit(to: target)
}

extension FiberCore {
    /// Publishes the end of the fiber's body: tells its group, and wakes its joiner.
    @inline(never)  // May take a `Mutex`: see the note on `cancel(timeout:)`.
    func complete() {
        if let group {
            self.group = nil
            group.childFinished(self)
        }
        let old = completion.bitwiseOr(Completion.finished, ordering: .sequentiallyConsistent).oldValue
        if let joiner = UnsafeMutableRawPointer(bitPattern: old & ~Completion.flags) {
            // Unretained: a parked fiber keeps itself alive.
            Unmanaged<FiberCore>.fromOpaque(joiner)._withUnsafeGuaranteedRef { FiberCore.wake($0) }
        } else if old & Completion.awaited != 0, let continuation = waiterContinuation {
            waiterContinuation = nil
            continuation.resume()
        }
        if !observed.load(ordering: .sequentiallyConsistent) { return }
        lockObservers()
        observersNotified = true
        observers.notifyAll()
        unlockObservers()
    }

    @inline(__always)
    private func lockObservers() {
        while !observerLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            sched_yield()
        }
    }

    @inline(__always)
    private func unlockObservers() { observerLock.store(false, ordering: .releasing) }

    /// Adds a completion observer; `false` (and nothing added) if the fiber has completed already.
    func addObserver(_ observer: any FiberObserver) -> Bool {
        observed.store(true, ordering: .sequentiallyConsistent)
        lockObservers()
        defer { unlockObservers() }
        // A completion that did not see `observed` is visible here.
        if observersNotified || completion.load(ordering: .sequentiallyConsistent) & Completion.finished != 0 { return false }
        observers.add(observer)
        return true
    }

    /// Removes an observer if it is still there; once this returns, its callback is not running.
    func removeObserver(_ observer: any FiberObserver) {
        lockObservers()
        observers.remove(observer)
        unlockObservers()
    }
}

#if DEBUG
/// Points in the runtime where a test can stop a thread, to force an interleaving (debug builds).
package enum RuntimeTestHooks {
    /// Runs on the cancelling thread after a cancellation found the fiber in a cancellable wait
    /// and before it makes the fiber runnable.
    package static let cancelFoundCancellableWait = Mutex<(@Sendable () -> Void)?>(nil)
    /// Runs on the cancelling thread once a cancellation found its fiber unfinished, before it
    /// reaches the fiber's executors.
    package static let cancelFoundFiberUnfinished = Mutex<(@Sendable () -> Void)?>(nil)
    /// Runs as `Runtime.run`, every fiber finished, starts waiting for cancellations under way.
    package static let runWaitsForCancels = Mutex<(@Sendable () -> Void)?>(nil)

    /// Runs the hook set at `point`, if any (outside the lock: a hook may wait for another thread).
    static func fire(_ point: borrowing Mutex<(@Sendable () -> Void)?>) {
        if let hook = point.withLock({ $0 }) { hook() }
    }
}
#endif
