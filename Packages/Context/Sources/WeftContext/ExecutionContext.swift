internal import CWeftContext

/// A raw execution context: a stack pointer and what a switch must carry with it (the Swift
/// exclusivity access set, sanitizer state, the identity shown in overflow reports).
///
/// This is the low-level API a scheduler builds on; ``Coroutine`` is built on it too. A context is
/// either *made on a stack* (``init(stack:id:entry:argument:)``), in which case its record lives
/// at the top of that stack and nothing is allocated, or a *resumer* (``makeResumer()``) that stands
/// for whatever stack switches into contexts (an OS thread's own stack, or another context).
///
/// ``switch(to:transfer:)`` saves the running context's state into `self` and resumes `target`;
/// the call returns when some other context switches back to `self`, yielding the transfer pointer
/// that switch carried. There is no allocation, closure or lock on the switch path, and it works
/// on any thread: a suspended context may be resumed from another OS thread.
public struct ExecutionContext: @unchecked Sendable, Hashable {
    /// The function a new context starts in: `entry(transfer, argument)` on the context's own stack.
    /// `transfer` is the pointer carried by the first switch into it. It must never return: it
    /// ends with ``exit(to:transfer:)``.
    public typealias Entry = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

    /// Address of the record (the C `weft_fiber`).
    @usableFromInline let record: UnsafeMutableRawPointer

    init(record: UnsafeMutableRawPointer) { self.record = record }

    var fiber: UnsafeMutablePointer<weft_fiber> { record.assumingMemoryBound(to: weft_fiber.self) }

    /// Bytes taken from the top of a stack by the context's record (rounded to 16).
    public static var recordSize: Int { Int(weft_fiber_record_size()) }

    /// Makes a new context on `stack`: the first switch to it calls `entry(transfer, argument)`.
    ///
    /// The record is placed at the top of the stack; the context's frames start below it.
    /// - Parameters:
    ///   - stack: the stack to run on; it must outlive the context and hold no other context.
    ///   - reservingTop: bytes at the top of the stack left free for the caller (rounded to 16).
    ///   - id: a number shown in stack-overflow reports (0: they show the stack's address instead).
    ///   - entry: the C-convention function the context starts in; it must never return.
    ///   - argument: passed to `entry` unchanged.
    public init(stack: Stack, reservingTop: Int = 0, id: UInt64 = 0, entry: Entry, argument: UnsafeMutableRawPointer?) {
        let reserved = (reservingTop + 15) & ~15
        let made = weft_fiber_make(
            stack.bottom, stack.size - reserved,
            UnsafeMutableRawPointer(bitPattern: stack.guardAddress), stack.guardSize,
            stack.kind == .compact ? 1 : 0, id, entry, argument)!
        made.pointee.stack_bytes = stack.size
        self.init(record: UnsafeMutableRawPointer(made))
    }

    /// Makes a heap-allocated resumer context, standing for the stack that calls
    /// ``switch(to:transfer:)`` with it as `self` (typically an OS thread's own stack).
    /// Free it with ``destroyResumer()``.
    /// - Returns: the new resumer.
    public static func makeResumer() -> ExecutionContext {
        ExecutionContext(record: UnsafeMutableRawPointer(weft_fiber_thread_create()!))
    }

    /// Makes a resumer context in caller-owned memory of ``recordSize`` bytes, 16-byte aligned.
    /// - Parameter memory: where the record goes; it must outlive the resumer's use.
    /// - Returns: the resumer.
    public static func makeResumer(in memory: UnsafeMutableRawPointer) -> ExecutionContext {
        let fiber = memory.bindMemory(to: weft_fiber.self, capacity: 1)
        weft_fiber_resumer_init(fiber)
        return ExecutionContext(record: memory)
    }

    /// Frees a resumer made by ``makeResumer()``.
    public func destroyResumer() { weft_fiber_thread_destroy(fiber) }

    /// Makes a context whose entry has exited (``exit(to:transfer:)``), or that never ran, start
    /// again on the same stack: the next switch into it runs `entry(transfer, argument)` from the
    /// top of the stack, as a context just made there would. Costs a fraction of releasing the
    /// context, returning the stack and making a new one, which is why a scheduler keeps a
    /// finished context to run its next coroutine on.
    ///
    /// Only for a context made on a stack, and never one that is suspended in the middle of its
    /// entry: whatever its frames hold would be abandoned.
    /// - Parameters:
    ///   - entry: Where the context starts; it must end with ``exit(to:transfer:)``.
    ///   - argument: Passed to `entry`.
    public func restart(entry: Entry, argument: UnsafeMutableRawPointer?) {
        weft_fiber_restart(fiber, entry, argument)
    }

    /// Releases the per-context state a sanitizer keeps; call it once the context is finished or
    /// abandoned, before its stack goes back to the pool.
    public func release() { weft_fiber_release(fiber) }

    /// Saves the running context into `self` and resumes `target`, carrying `transfer`.
    ///
    /// Does the whole switch: saves and restores the Swift exclusivity access set, checks a compact
    /// stack's canary, keeps overflow reports and sanitizers informed.
    /// - Parameters:
    ///   - target: a suspended or new context.
    ///   - transfer: handed to `target` (as its entry's first argument or as the return value of
    ///     the switch it is suspended in).
    /// - Returns: the transfer pointer of the switch that later resumes `self`.
    @discardableResult
    public func `switch`(to target: ExecutionContext, transfer: UnsafeMutableRawPointer? = nil) -> UnsafeMutableRawPointer? {
        weft_fiber_switch(fiber, target.fiber, transfer)
    }

    /// Switches to `target` for the last time: `self` is finished and is never resumed.
    /// - Parameters:
    ///   - target: a suspended context.
    ///   - transfer: handed to `target`.
    public func exit(to target: ExecutionContext, transfer: UnsafeMutableRawPointer? = nil) -> Never {
        weft_fiber_exit(fiber, target.fiber, transfer)
    }

    /// The bare register switch without exclusivity, canary or sanitizer handling: only for
    /// measuring the routine itself. Code that runs Swift on both sides must use ``switch(to:transfer:)``.
    /// - Parameters:
    ///   - target: a suspended or new context.
    ///   - transfer: handed to `target`.
    /// - Returns: the transfer pointer of the switch that later resumes `self`.
    @discardableResult
    public func switchWithoutHooks(to target: ExecutionContext, transfer: UnsafeMutableRawPointer? = nil) -> UnsafeMutableRawPointer? {
        weft_fiber_switch_raw(fiber, target.fiber, transfer)
    }

    /// The context made on a stack that is running on the calling thread, or `nil` on a thread's
    /// own stack.
    public static var current: ExecutionContext? {
        weft_fiber_current().map { ExecutionContext(record: UnsafeMutableRawPointer($0)) }
    }

    /// The lowest usable address of the stack this context was made on (`nil` for a resumer):
    /// code can compare the address of a local with it to see how much stack is left.
    public var stackLowerBound: UnsafeRawPointer? {
        fiber.pointee.thread_root != 0 ? nil : UnsafeRawPointer(fiber.pointee.stack_lo)
    }

    /// The id given at creation (shown in overflow reports).
    public var id: UInt64 { fiber.pointee.id }

    /// Whether switches on the calling thread skip the Swift runtime's two exclusivity calls when
    /// they would do nothing (no access open on the thread, none saved in either context). The
    /// thread's access-list head is looked up once per thread; `false` means it could not be found
    /// with this runtime and every switch makes both calls -- still correct, only slower.
    public static var skipsIdleExclusivityCalls: Bool { weft_access_tracking_found() != 0 }

    /// Installs the stack-overflow reporter (done automatically at the first switch to a guarded
    /// stack on each thread).
    public static func installOverflowReporter() { weft_overflow_install() }

    /// Which sanitizer annotations this build of the library compiled in (`"address"`, `"thread"`).
    public static var sanitizers: [String] {
        let bits = weft_sanitizers()
        return (bits & 1 != 0 ? ["address"] : []) + (bits & 2 != 0 ? ["thread"] : [])
    }
}
