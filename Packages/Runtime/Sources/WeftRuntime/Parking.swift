internal import Glibc
import Synchronization
import WeftLoop

/// The parking core of WeftSync: one waiting fiber, OS thread or task, and the single atomic
/// claim that decides who ends its wait.
///
/// A `Parking` lives on the waiter's stack (or, for a task, in a small heap box). Whoever moves
/// `state` from ``Claim/waiting`` to anything else owns the outcome and must call ``wake(_:)``
/// exactly once afterwards (unless it is the waiter itself); everyone else leaves the waiter alone.
/// The candidates are the primitive handing off (a claim code ≥ ``Claim/firstSignal``), a
/// cancellation (``Claim/cancelled``: a fiber claims it itself when cancellation resumes it; for a
/// task, its cancellation handler) and a timer (``Claim/timedOut``).
@usableFromInline
package struct Parking: ~Copyable {
    /// Claim codes.
    @usableFromInline
    package enum Claim {
        @usableFromInline package static let waiting = 0
        @usableFromInline package static let cancelled = 1
        @usableFromInline package static let timedOut = 2
        /// Signal codes start here; a select adds the index of the arm that won.
        @usableFromInline package static let firstSignal = 3
    }

    @usableFromInline package let state = Atomic<Int>(Claim.waiting)
    @usableFromInline let fiber: Unmanaged<FiberCore>?
    /// Unretained: the thread's parker lives as long as the thread, which waits while a waker may use it.
    let thread: Unmanaged<ThreadParker>?
    unowned(unsafe) let task: AsyncParking?

    /// A parking for the calling fiber, or for the calling thread when it runs no fiber.
    @usableFromInline
    package init() {
        if let fiber = Parking.runningFiber {
            self.fiber = fiber
            thread = nil
        } else {
            fiber = nil
            thread = Unmanaged.passUnretained(ThreadParker.current)
        }
        task = nil
    }

    init(task: AsyncParking) {
        fiber = nil
        thread = nil
        self.task = task
    }

    /// The fiber running on the calling thread, without reference counting (it outlives the call).
    @inline(__always)
    static var runningFiber: Unmanaged<FiberCore>? {
        guard let executor = Executor.currentUnmanaged else { return nil }
        return executor._withUnsafeGuaranteedRef { $0.running }
    }

    /// `Fiber.checkCancellation()` without reference counting, for the fast paths of WeftSync.
    @usableFromInline
    package static func checkCancellation() throws(CancellationError) {
        guard let fiber = runningFiber else { return }
        if deliverCancellation(fiber) { throw CancellationError() }
    }

    /// For a parking's own fiber, at a suspension point: whether a cancellation is pending (then
    /// it counts as delivered, and the caller throws `CancellationError`). False for threads and
    /// tasks. Cheaper than a throwing check on the path that does not throw.
    @inlinable
    package func takeCancellation() -> Bool {
        guard let fiber else { return false }
        return Parking.deliverCancellation(fiber)
    }

    @usableFromInline
    static func deliverCancellation(_ fiber: Unmanaged<FiberCore>) -> Bool {
        fiber._withUnsafeGuaranteedRef { $0.takeCancellation() }
    }

    /// Tries to end the wait with `code`; true if this call won.
    @inlinable
    package func claim(_ code: Int) -> Bool {
        state.compareExchange(expected: Claim.waiting, desired: code, ordering: .acquiringAndReleasing).exchanged
    }

    /// The claim code (``Claim/waiting`` while nobody has claimed).
    @inlinable
    package var outcome: Int { state.load(ordering: .acquiring) }

    /// Whether the waiter is a fiber (it can be cancelled and timed out on its loop).
    package var isFiber: Bool { fiber != nil }

    /// Resumes the waiter after a successful claim. Reads everything it needs before the wake:
    /// the waiter's frame may be gone right after.
    @usableFromInline
    package static func wake(_ parking: UnsafeMutablePointer<Parking>) {
        if let fiber = parking.pointee.fiber {
            fiber._withUnsafeGuaranteedRef { FiberCore.wake($0) }
        } else if let thread = parking.pointee.thread {
            thread._withUnsafeGuaranteedRef { $0.unpark() }
        } else if let task = parking.pointee.task {
            let retained = task
            retained.unpark()
        }
    }

    /// Parks the caller until its parking is claimed, and returns the claim code.
    ///
    /// - Parameters:
    ///   - parking: The caller's parking, already reachable by the primitive.
    ///   - timeout: After this long a timer claims ``Claim/timedOut`` (for fibers a timer on the
    ///     executor's loop; for threads a timed condition wait). `nil` waits without limit.
    ///   - cancellable: Whether cancelling the fiber claims ``Claim/cancelled`` (outside a shield).
    ///     A cancelled outcome counts as the delivered cancellation.
    @usableFromInline
    package static func park(_ parking: UnsafeMutablePointer<Parking>, timeout: Duration?, cancellable: Bool) -> Int {
        if let fiber = parking.pointee.fiber {
            fiber._withUnsafeGuaranteedRef { parkFiber($0, parking, timeout: timeout, cancellable: cancellable) }
        } else {
            parking.pointee.thread!._withUnsafeGuaranteedRef { $0.park(parking, timeout: timeout) }
        }
        let outcome = parking.pointee.outcome
        if outcome == Claim.cancelled, let fiber = parking.pointee.fiber { fiber._withUnsafeGuaranteedRef { $0.markDelivered() } }
        return outcome
    }

    private static func parkFiber(
        _ fiber: FiberCore, _ parking: UnsafeMutablePointer<Parking>, timeout: Duration?, cancellable: Bool
    ) {
        guard let timeout else {
            wait(fiber, parking, cancellable: cancellable)
            return
        }
        let home = Executor.current!
        var frame = ParkingTimerFrame(parking: parking, fiber: fiber)
        var timer = LoopOperation.timer(after: timeout)
        withUnsafeMutablePointer(to: &frame) { frame in
            withUnsafeMutablePointer(to: &timer) { timer in
                do {
                    try home.loop.submit(timer, callback: parkingTimerCallback, context: UnsafeMutableRawPointer(frame))
                } catch {
                    frame.pointee.done = true
                    if parking.pointee.claim(Claim.timedOut) { FiberCore.wake(fiber) }
                }
                wait(fiber, parking, cancellable: cancellable)
                fiber.settleTimer(timer, frame: frame, home: home)
            }
        }
    }

    /// Parks until the parking is claimed and its claimer's wake arrived. A cancellable wait that
    /// cancellation resumes claims itself as cancelled; if a claimer was first, its wake is on the
    /// way (exactly one per claim) and is absorbed here, so no stray wake reaches a later park.
    @inline(__always)
    private static func wait(_ fiber: FiberCore, _ parking: UnsafeMutablePointer<Parking>, cancellable: Bool) {
        guard cancellable else {
            fiber.park()
            return
        }
        if fiber.parkCancellable() && !parking.pointee.claim(Claim.cancelled) {
            // Claimed by someone else meanwhile: wait for their wake, no longer cancellable.
            fiber.park()
        }
    }

    /// An identity for the calling fiber or thread (owner checks of locks).
    @usableFromInline
    package static var currentIdentity: UInt {
        if let fiber = runningFiber { return fiber._withUnsafeGuaranteedRef { $0.identity } }
        // Not `pthread_self()`: the C library gives a finished thread's value to the next one.
        return ThreadParker.current.identity
    }
}

/// What a fiber's timed wait shares with its timer callback (both on the home executor's thread).
struct ParkingTimerFrame: FiberTimerFrame {
    let parking: UnsafeMutablePointer<Parking>
    unowned(unsafe) let fiber: FiberCore
    var done = false
    var waiting = false
}

let parkingTimerCallback: LoopCallback = { raw, context in
    let frame = context!.assumingMemoryBound(to: ParkingTimerFrame.self)
    frame.pointee.done = true
    if LoopOperation.pointer(raw).pointee.result == 0 && frame.pointee.parking.pointee.claim(Parking.Claim.timedOut) {
        FiberCore.wake(frame.pointee.fiber)
        return
    }
    if frame.pointee.waiting { FiberCore.wake(frame.pointee.fiber) }
}

/// A per-thread mutex and condition variable for OS threads that wait in WeftSync.
final class ThreadParker: @unchecked Sendable {
    /// The thread's identity for owner checks (see `Identities`).
    let identity = Identities.take()
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var woken = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<ThreadParker>.fromOpaque(raw).release() }
        }
        return key
    }()

    /// The calling thread's parker (made on first use, released when the thread ends).
    static var current: ThreadParker {
        if let raw = pthread_getspecific(key) { return Unmanaged<ThreadParker>.fromOpaque(raw).takeUnretainedValue() }
        let parker = ThreadParker()
        pthread_setspecific(key, Unmanaged.passRetained(parker).toOpaque())
        return parker
    }

    func park(_ parking: UnsafeMutablePointer<Parking>, timeout: Duration?) {
        var deadline = timespec()
        if let timeout {
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let (seconds, attoseconds) = max(timeout, .zero).components
            var nanoseconds = Int(deadline.tv_nsec) + Int(attoseconds / 1_000_000_000)
            deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
            nanoseconds %= 1_000_000_000
            deadline.tv_nsec = nanoseconds
        }
        var timed = timeout != nil
        pthread_mutex_lock(mutex)
        while !woken {
            if timed {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT && !woken {
                    if parking.pointee.claim(Parking.Claim.timedOut) { break }
                    // Someone else claimed first: their wake is on its way.
                    timed = false
                }
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        woken = false
        pthread_mutex_unlock(mutex)
    }

    func unpark() {
        pthread_mutex_lock(mutex)
        woken = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }
}

/// A parking for async code: the parking in a heap box, resumed through a continuation.
package final class AsyncParking: @unchecked Sendable {
    package let parking: UnsafeMutablePointer<Parking>
    private struct State {
        var continuation: UnsafeContinuation<Void, Never>?
        var woken = false
    }
    private let state = Mutex(State())

    package init() {
        parking = UnsafeMutablePointer<Parking>.allocate(capacity: 1)
        parking.initialize(to: Parking(task: self))
    }

    deinit {
        parking.deinitialize(count: 1)
        parking.deallocate()
    }

    func unpark() {
        let continuation = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            state.woken = true
            let continuation = state.continuation
            state.continuation = nil
            return continuation
        }
        continuation?.resume()
    }

    /// Suspends until the parking is claimed (cancelling the task claims ``Parking/Claim/cancelled``)
    /// and returns the claim code.
    package func park() async -> Int {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.woken { return true }
                    state.continuation = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            if parking.pointee.claim(Parking.Claim.cancelled) { unpark() }
        }
        return parking.pointee.outcome
    }
}
