internal import Glibc
import Synchronization

/// The small lock that guards each primitive's state: a test-and-set spin lock (yielding the thread
/// under contention) around a value, held for a few pointer moves only.
///
/// Not `Synchronization.Mutex`: that lock records its owner's thread id, which the optimiser may
/// read once and reuse across a fiber switch in the same function (the fiber then resumes on
/// another thread), making it report a recursive lock or an unlock by a non-owner. This lock has no
/// owner, so a fiber that locks and unlocks on different threads across separate critical sections
/// is fine. It is never held across a switch.
@usableFromInline
struct Guarded<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    @usableFromInline let flag = Atomic<Bool>(false)
    @usableFromInline let storage: UnsafeMutablePointer<Value>

    @usableFromInline
    init(_ value: consuming Value) {
        storage = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        storage.initialize(to: value)
    }

    deinit {
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inlinable
    func withLock<R: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        if !flag.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { lockSlowly() }
        defer { flag.store(false, ordering: .releasing) }
        return try body(&storage.pointee)
    }

    /// Takes the lock, for a caller that must keep it past a scope: a blocking call that found
    /// it has to wait, and publishes its waiter in the same lock round
    /// (``blockingWait(_:timeout:cancellable:tag:slot:publish:unlock:dequeue:)``). Pair with
    /// ``unlock()``; reach the value through ``storage`` meanwhile.
    @inlinable
    func lock() {
        if !flag.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { lockSlowly() }
    }

    /// Releases a lock taken with ``lock()``.
    @inlinable
    func unlock() { flag.store(false, ordering: .releasing) }

    @usableFromInline
    @inline(never)
    func lockSlowly() {
        var spins = 0
        while true {
            if !flag.load(ordering: .relaxed)
                && flag.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
            {
                return
            }
            spins += 1
            if spins > 32 { sched_yield() }
        }
    }
}
