internal import CWeftContext
import Synchronization

/// The non-generic part of a ``Coroutine``: its stack, its two contexts and its state machine.
/// The entry function only knows this class (it cannot name the generic parameters).
///
/// Values travel between `resume` and `yield` through slots on the resumer's stack (raw pointers
/// set by each resume), not through generic stored properties: the generic code is specialised in
/// the caller's module and the non-generic core never needs generic metadata at run time.
///
/// Public only because ``Coroutine`` inherits from it (one object per coroutine instead of two);
/// it has no public members.
public class CoroutineCore: @unchecked Sendable {
    // The mutable state below is only touched by whoever holds the `running` phase (the state
    // machine serialises resumers), so the dynamic exclusivity checks, which cost more than the
    // switch itself, are turned off for it.
    enum Phase: Int {
        case created, suspended, running, finished
    }

    /// Where `stack` goes back. Not retained when it is ``StackPool/shared``, which lives as long as
    /// the process: a coroutine on the shared pool then costs no reference counting on the pool
    /// (a retain and a release are atomic operations, a fair share of a create/destroy cycle).
    let poolReference: Unmanaged<StackPool>
    let poolRetained: Bool
    @exclusivity(unchecked) var stack: Stack?
    /// The context running the body, on `stack`.
    @exclusivity(unchecked) var body: ExecutionContext
    /// The context of whoever resumed the body; its record sits at the very top of `stack`.
    let resumer: ExecutionContext
    let phase = Atomic<Int>(Phase.created.rawValue)
    /// Set by the body before its last switch out.
    @exclusivity(unchecked) @usableFromInline var bodyFinished = false
    /// Where the next value for the body waits (an initialised `Input`, moved out by the body).
    @exclusivity(unchecked) @usableFromInline var inputSlot: UnsafeMutableRawPointer?
    /// Where the body puts a yielded `Output` (uninitialised memory of the current resume).
    @exclusivity(unchecked) @usableFromInline var outputSlot: UnsafeMutableRawPointer?
    /// Where the body puts its `Result` when it returns (uninitialised memory of the current resume).
    @exclusivity(unchecked) @usableFromInline var resultSlot: UnsafeMutableRawPointer?
    /// What the body threw, if it did.
    @exclusivity(unchecked) @usableFromInline var failure: (any Error)?
    /// Set by `deinit` before resuming a suspended body so that its `yield` throws.
    @exclusivity(unchecked) var cancelling = false

    /// Takes a stack of class `kind` from `pool` (``StackPool/shared`` when nil) and makes the
    /// body's context on it.
    @usableFromInline
    init(kind: Stack.Kind, pool: StackPool?) throws(StackError) {
        let stack: Stack
        if let pool {
            stack = try pool.allocate(kind)
            poolRetained = pool !== StackPool.shared
            poolReference = poolRetained ? .passRetained(pool) : .passUnretained(pool)
        } else {
            stack = try StackPool.shared.allocate(kind)
            poolRetained = false
            poolReference = .passUnretained(StackPool.shared)
        }
        self.stack = stack
        let recordSize = ExecutionContext.recordSize
        let resumerMemory = stack.top - recordSize
        self.resumer = ExecutionContext.makeResumer(in: resumerMemory)
        // `body` is set below once `self` exists; the record address is what the entry needs.
        self.body = resumer
        self.body = ExecutionContext(
            // No id (a shared counter would cost an atomic per coroutine): overflow reports name
            // the coroutine by its stack address.
            stack: stack, reservingTop: recordSize, id: 0, entry: coroutineEntry,
            argument: Unmanaged.passUnretained(self).toOpaque())
    }

    /// Runs the body to its end (overridden by the generic subclass); on the coroutine's stack.
    func runBody() {}

    /// Moves to `running`, or says why not.
    @usableFromInline
    func begin() throws(CoroutineError) {
        var current = phase.load(ordering: .acquiring)
        while true {
            switch Phase(rawValue: current)! {
            case .finished:
                throw .finished
            case .running:
                if let running = ExecutionContext.current, running == body { throw .resumedFromInside }
                throw .alreadyRunning
            case .created, .suspended:
                let (exchanged, original) = phase.compareExchange(
                    expected: current, desired: Phase.running.rawValue, ordering: .acquiringAndReleasing)
                if exchanged { return }
                current = original
            }
        }
    }

    /// Switches into the body and back; afterwards either the body is suspended or finished (then
    /// its stack is back in the pool). The caller collects what the body left, then calls `settle`.
    @usableFromInline
    func enterBody() {
        resumer.switch(to: body)
        if bodyFinished {
            body.release()
            if let stack { poolReference._withUnsafeGuaranteedRef { $0.release(stack) } }
            stack = nil
        }
    }

    /// Publishes the new phase; from here another thread may resume the coroutine.
    @usableFromInline
    func settle() {
        phase.store((bodyFinished ? Phase.finished : Phase.suspended).rawValue, ordering: .releasing)
    }

    /// Called on the body's stack before a yield: stops the process with a message on misuse.
    /// - Returns: where the yielded value goes.
    @usableFromInline
    func yieldSlot() -> UnsafeMutableRawPointer {
        if cancelling {
            weft_fatal(
                "weft: Coroutine.Yielder.yield: the coroutine was released while suspended and its body caught "
                    + "CoroutineCancelled and yielded again; a released coroutine's body must unwind")
        }
        guard ExecutionContext.current == body, let slot = outputSlot else {
            weft_fatal("weft: Coroutine.Yielder.yield: called outside its coroutine's body")
        }
        return slot
    }

    /// Called on the body's stack after the yielded value is in place: suspends until resumed.
    /// - Returns: false when resumed by `deinit` (the body must unwind).
    @usableFromInline
    func suspendBody() -> Bool {
        body.switch(to: resumer)
        return !cancelling
    }

    deinit {
        switch Phase(rawValue: phase.load(ordering: .acquiring))! {
        case .suspended:
            cancelling = true
            phase.store(Phase.running.rawValue, ordering: .relaxed)
            enterBody()
            settle()
            if !bodyFinished {
                weft_fatal("weft: Coroutine deinit: the body did not finish after cancellation")
            }
        case .created:
            body.release()
            if let stack { poolReference._withUnsafeGuaranteedRef { $0.release(stack) } }
        case .running:
            weft_fatal("weft: Coroutine released by its own body while running")
        case .finished:
            break
        }
        if poolRetained { poolReference.release() }
    }
}

/// Every coroutine context starts here, on its own stack.
private let coroutineEntry: ExecutionContext.Entry = { _, argument in
    let core = Unmanaged<CoroutineCore>.fromOpaque(argument!)
    runCoroutineBody(core)
    // Nothing on this stack may hold a reference past this point: the stack is never unwound.
    core._withUnsafeGuaranteedRef { finish($0) }
}

@inline(never)
private func runCoroutineBody(_ core: Unmanaged<CoroutineCore>) {
    core._withUnsafeGuaranteedRef { $0.runBody() }
}

@inline(never)
private func finish(_ core: CoroutineCore) -> Never {
    core.bodyFinished = true
    core.body.exit(to: core.resumer)
}
