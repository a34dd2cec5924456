internal import CWeftLoop
internal import Glibc

/// Where a pending operation is kept; lets ``Loop/cancel(_:)`` find it without searching.
package enum OperationPlace {
    static let none: UInt8 = 0
    static let ready: UInt8 = 1
    static let poolQueued: UInt8 = 2
    static let poolRunning: UInt8 = 3
    static let readers: UInt8 = 4
    static let writers: UInt8 = 5
    static let pollers: UInt8 = 6
    static let timers: UInt8 = 7
    static let kernel: UInt8 = 8
    static let backlog: UInt8 = 9
    /// In the kernel (io_uring) with nothing but its callback left to do when it completes: no
    /// extras, no process to reap, no cancel sent after it.
    static let plainInKernel: UInt8 = 10
}

/// The loop's own bounded thread pool for calls that would block (regular files on the epoll
/// backend, `ftruncate`, `sendfile`, ``LoopOperation/work(_:argument:)``). Threads start on demand up
/// to a bound and exit after staying idle, so an idle loop holds no threads. Finished operations go
/// back to the loop through ``LoopRemote`` and a wake; the queue is intrusive, so nothing allocates.
final class LoopThreadPool: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var head: UnsafeMutablePointer<LoopOperation>? = nil
    private var tail: UnsafeMutablePointer<LoopOperation>? = nil
    private var threads = 0
    private var idle = 0
    private var closing = false
    private let maxThreads: Int
    private let idleSeconds: Int
    private let remote: LoopRemote
    private let nonblockingSockets: Bool

    init(remote: LoopRemote, maxThreads: Int, idleSeconds: Int, nonblockingSockets: Bool) {
        self.remote = remote
        self.maxThreads = max(1, maxThreads)
        self.idleSeconds = max(1, idleSeconds)
        self.nonblockingSockets = nonblockingSockets
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// The number of live pool threads.
    var threadCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return threads
    }

    /// Queues an operation; returns 0, or -errno when no thread could be started to run it.
    func enqueue(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32 {
        pthread_mutex_lock(mutex)
        op.pointee.place = OperationPlace.poolQueued
        op.pointee.next = nil
        op.pointee.prev = tail
        if let tail { tail.pointee.next = op } else { head = op }
        tail = op
        var startError: Int32 = 0
        if idle == 0 && threads < maxThreads {
            threads += 1
            let started = weft_thread_start(
                { arg in
                    Unmanaged<LoopThreadPool>.fromOpaque(arg!).takeRetainedValue().workLoop()
                    return nil
                }, Unmanaged.passRetained(self).toOpaque())
            if started < 0 {
                threads -= 1
                Unmanaged.passUnretained(self).release()
                if threads == 0 {
                    unlink(op, to: OperationPlace.none)
                    startError = started
                }
            }
        } else {
            pthread_cond_signal(condition)
        }
        pthread_mutex_unlock(mutex)
        return startError
    }

    /// Removes a queued operation that has not started; returns whether it was removed.
    func cancel(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard op.pointee.place == OperationPlace.poolQueued else { return false }
        unlink(op, to: OperationPlace.none)
        return true
    }

    /// Takes every queued operation that has not started out of the queue (the loop is closing:
    /// they complete with ECANCELED instead of running).
    func takeQueued() -> [UnsafeMutablePointer<LoopOperation>] {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        var taken: [UnsafeMutablePointer<LoopOperation>] = []
        while let op = head {
            unlink(op, to: OperationPlace.none)
            taken.append(op)
        }
        return taken
    }

    /// Lets idle threads exit at once.
    func close() {
        pthread_mutex_lock(mutex)
        closing = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Takes an operation out of the queue and marks where it is now. The mark is stored
    /// atomically, in one step: ``Loop/cancel(_:)`` reads it from the loop's thread without the
    /// lock (it acts on `poolQueued` only under the lock, through ``cancel(_:)``).
    private func unlink(_ op: UnsafeMutablePointer<LoopOperation>, to place: UInt8) {
        if let prev = op.pointee.prev { prev.pointee.next = op.pointee.next } else { head = op.pointee.next }
        if let next = op.pointee.next { next.pointee.prev = op.pointee.prev } else { tail = op.pointee.prev }
        op.pointee.next = nil
        op.pointee.prev = nil
        weft_flag_store(op.pointer(to: \.place)!, place)
    }

    private func workLoop() {
        pthread_mutex_lock(mutex)
        while true {
            if let op = head {
                unlink(op, to: OperationPlace.poolRunning)
                pthread_mutex_unlock(mutex)
                let result = LoopSystem.perform(op, nonblockingSockets: nonblockingSockets)
                op.pointee.rawResult = result
                remote.postCompletion(op)
                pthread_mutex_lock(mutex)
                continue
            }
            if closing { break }
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_sec += idleSeconds
            idle += 1
            let waited = pthread_cond_timedwait(condition, mutex, &deadline)
            idle -= 1
            if waited == ETIMEDOUT && head == nil { break }
        }
        threads -= 1
        pthread_mutex_unlock(mutex)
    }
}
