import WeftContext

/// A struct whose mutating method suspends in the middle: while suspended, the caller's dynamic
/// exclusive access to the stored property holding it is still open.
struct HeldCounter {
    var count = 0

    mutating func bump(suspendingWith suspend: () -> Void) {
        count += 1
        suspend()
        count += 1
    }
}

final class CounterHolder {
    var counter = HeldCounter()
}

/// Context A suspends inside an exclusive access to `holder.counter`; context B then reads the
/// same property; A is resumed on another OS thread and ends its access. With the exclusivity
/// save/restore each context has its own access set (as Swift tasks do), so this runs; with the
/// bare switch B sees A's access as its own thread's and the runtime reports a conflict (or, if B
/// did not run, `swift_endAccess` on the other thread crashes).
final class ExclusivityScenario: @unchecked Sendable {
    let holder = CounterHolder()
    let hooks: Bool
    let runSecond: Bool
    var resumer = ExecutionContext.makeResumer()
    var first: ExecutionContext?
    var second: ExecutionContext?
    var observed = -1

    init(hooks: Bool, runSecond: Bool = true) {
        self.hooks = hooks
        self.runSecond = runSecond
    }

    func go(_ from: ExecutionContext, _ to: ExecutionContext) {
        if hooks { from.switch(to: to) } else { from.switchWithoutHooks(to: to) }
    }

    /// Runs the scenario; returns the counter (2 when everything worked).
    func run(pool: StackPool) throws -> Int {
        let stackA = try pool.allocate()
        let stackB = try pool.allocate(.compact)
        let argument = Unmanaged.passUnretained(self).toOpaque()
        let a = ExecutionContext(stack: stackA, entry: exclusivityEntryA, argument: argument)
        let b = ExecutionContext(stack: stackB, entry: exclusivityEntryB, argument: argument)
        first = a
        second = b
        let mainResumer = resumer
        go(mainResumer, a)
        if runSecond { go(mainResumer, b) }
        onNewThread {
            let threadResumer = ExecutionContext.makeResumer()
            self.resumer = threadResumer
            self.go(threadResumer, a)
            threadResumer.destroyResumer()
        }
        mainResumer.destroyResumer()
        a.release()
        if !runSecond {
            // B never ran: finish it so its stack can go back.
            resumer = ExecutionContext.makeResumer()
            go(resumer, b)
            resumer.destroyResumer()
        }
        b.release()
        pool.release(stackA)
        pool.release(stackB)
        return holder.counter.count
    }
}

private let exclusivityEntryA: ExecutionContext.Entry = { _, argument in
    let scenario = Unmanaged<ExclusivityScenario>.fromOpaque(argument!).takeUnretainedValue()
    scenario.holder.counter.bump { scenario.go(scenario.first!, scenario.resumer) }
    scenario.first!.exit(to: scenario.resumer)
}

private let exclusivityEntryB: ExecutionContext.Entry = { _, argument in
    let scenario = Unmanaged<ExclusivityScenario>.fromOpaque(argument!).takeUnretainedValue()
    scenario.observed = scenario.holder.counter.count
    scenario.second!.exit(to: scenario.resumer)
}
