/// A kernel played by a test: it records what the loop submits and cancels, and delivers the
/// completions the test chooses, in the order and with the results it chooses (short reads,
/// ECANCELED, EAGAIN, errors, a completion racing a cancel). Makes the loop's own logic, exactly one
/// callback per submission above all, testable without timing.
/// Used from the loop's thread only; `Sendable` so it can travel in ``Loop/Options``.
package final class ScriptedKernel: @unchecked Sendable {
    /// Every operation submitted, in order (kept after completion).
    package private(set) var submitted: [UnsafeMutablePointer<LoopOperation>] = []
    /// Every cancel the loop passed down, in order.
    package private(set) var cancelled: [UnsafeMutablePointer<LoopOperation>] = []
    /// Completions queued by the test, delivered at the loop's next wait.
    private var queued: [Completion] = []
    /// How many waits the loop has made.
    package private(set) var waits = 0

    /// Creates an empty kernel.
    package init() {}

    /// One completion the test queued.
    struct Completion {
        var op: UnsafeMutablePointer<LoopOperation>
        var result: Int32
        var more: Bool
        var buffer: Int32
    }

    /// Queues a completion; the loop delivers it at its next wait.
    /// - Parameters:
    ///   - op: A submitted operation.
    ///   - result: Its result or -errno.
    ///   - more: For a multishot operation, whether it stays armed (the kernel's `IORING_CQE_F_MORE`).
    ///   - buffer: For a multishot receive, the buffer of its ring that holds the bytes.
    package func complete(
        _ op: UnsafeMutablePointer<LoopOperation>, result: Int32, more: Bool = false, buffer: Int? = nil
    ) {
        queued.append(Completion(op: op, result: result, more: more, buffer: Int32(buffer ?? -1)))
    }

    /// Whether the loop asked to cancel the operation.
    package func wasCancelled(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool {
        cancelled.contains(op)
    }

    fileprivate func record(submit op: UnsafeMutablePointer<LoopOperation>) { submitted.append(op) }
    fileprivate func record(cancel op: UnsafeMutablePointer<LoopOperation>) { cancelled.append(op) }

    fileprivate func takeQueued() -> [Completion] {
        waits += 1
        defer { queued = [] }
        return queued
    }
}

/// The backend over a ``ScriptedKernel``.
final class ScriptedBackend: LoopBackend {
    let kind = LoopBackendKind.scripted
    private let kernel: ScriptedKernel
    private let remote: LoopRemote

    init(kernel: ScriptedKernel, remote: LoopRemote) {
        self.kernel = kernel
        self.remote = remote
    }

    /// Every completion is the script's to deliver.
    func attemptNow(_ op: UnsafeMutablePointer<LoopOperation>) -> Int32? { nil }

    var pollDescriptor: Int32 { remote.eventDescriptor }
    /// Timers are the script's to deliver, like every other completion.
    func keepsTimerInLoop(_ op: UnsafeMutablePointer<LoopOperation>) -> Bool { false }

    func submit(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        op.pointee.place = OperationPlace.kernel
        kernel.record(submit: op)
    }

    func cancel(_ op: UnsafeMutablePointer<LoopOperation>, loop: Loop) {
        kernel.record(cancel: op)
    }

    func wait(loop: Loop, timeoutNanoseconds: Int64?) throws(LoopError) -> Bool {
        // The script never blocks: a test that waits for something it did not queue gets control
        // back instead of a hang.
        let completions = kernel.takeQueued()
        if remote.wakePending.load(ordering: .acquiring) { remote.acknowledgeWake() }
        for completion in completions {
            let op = completion.op
            op.pointee.bufferID = completion.buffer
            if completion.buffer >= 0 { Loop.acceptedRing(of: op)?.markHeld(completion.buffer) }
            if completion.more {
                loop.completeMore(op, result: completion.result)
            } else {
                loop.complete(op, result: completion.result)
            }
        }
        return !completions.isEmpty
    }

    func cancelAll(loop: Loop) {
        for op in kernel.submitted where op.pointee.isPending && op.pointee.place == OperationPlace.kernel {
            kernel.complete(op, result: -125)
        }
    }

    func forget(_ descriptor: Int32, loop: Loop) {}

    func shutdown() {}
}
