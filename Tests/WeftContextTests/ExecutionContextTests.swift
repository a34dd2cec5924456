import Glibc
import WeftContext
import XCTest

/// State for raw-context tests; entries get it through their argument pointer.
private final class PingPong {
    var resumer = ExecutionContext.makeResumer()
    var context: ExecutionContext?
    var rounds = 0
    var seen: [Int] = []
    /// The top of the context's stack (``depthEntry``).
    var top = 0
}

private let pingPongEntry: ExecutionContext.Entry = { transfer, argument in
    let state = Unmanaged<PingPong>.fromOpaque(argument!).takeUnretainedValue()
    var value = Int(bitPattern: transfer)
    for _ in 0..<state.rounds {
        state.seen.append(value)
        value = Int(bitPattern: state.context!.switch(to: state.resumer, transfer: UnsafeMutableRawPointer(bitPattern: value * 2)))
    }
    state.context!.exit(to: state.resumer, transfer: nil)
}

final class ExecutionContextTests: PoolCheckedTestCase {
    func testTransferValuesTravelBothWays() throws {
        let stack = try StackPool.shared.allocate()
        defer { StackPool.shared.release(stack) }
        let state = PingPong()
        defer { state.resumer.destroyResumer() }
        state.rounds = 1000
        let context = ExecutionContext(stack: stack, id: 7, entry: pingPongEntry, argument: Unmanaged.passUnretained(state).toOpaque())
        state.context = context
        XCTAssertEqual(context.id, 7)
        XCTAssertNotNil(context.stackLowerBound)
        XCTAssertNil(state.resumer.stackLowerBound)
        var back: [Int] = []
        for round in 1...1000 {
            let reply = state.resumer.switch(to: context, transfer: UnsafeMutableRawPointer(bitPattern: round))
            back.append(Int(bitPattern: reply))
        }
        XCTAssertNil(state.resumer.switch(to: context, transfer: UnsafeMutableRawPointer(bitPattern: 1)))
        context.release()
        XCTAssertEqual(state.seen, Array(1...1000))
        XCTAssertEqual(back, (1...1000).map { $0 * 2 })
        XCTAssertNil(ExecutionContext.current)
    }

    func testIdleExclusivityCallsAreSkippedOnEveryThread() {
        // The runtime's access-list head is found on this toolchain, on the main thread and on a
        // new one (each thread looks for its own).
        XCTAssertTrue(ExecutionContext.skipsIdleExclusivityCalls)
        let onOther = Shared(false)
        onNewThread { onOther.value = ExecutionContext.skipsIdleExclusivityCalls }
        XCTAssertTrue(onOther.value)
    }

    func testRawContextMigratesAcrossThreads() throws {
        let stack = try StackPool.shared.allocate(.compact)
        defer { StackPool.shared.release(stack) }
        let state = PingPong()
        state.rounds = 4
        let context = ExecutionContext(stack: stack, entry: pingPongEntry, argument: Unmanaged.passUnretained(state).toOpaque())
        state.context = context
        let shared = Shared(state)
        for round in 1...5 {
            onNewThread {
                let me = ExecutionContext.makeResumer()
                let old = shared.value.resumer
                shared.value.resumer = me
                _ = me.switch(to: shared.value.context!, transfer: UnsafeMutableRawPointer(bitPattern: round))
                shared.value.resumer = old
                me.destroyResumer()
            }
        }
        context.release()
        state.resumer.destroyResumer()
        XCTAssertEqual(state.seen, [1, 2, 3, 4])
    }

    func testARestartedContextRunsItsNewEntryFromTheTopOfTheSameStack() throws {
        for kind in [Stack.Kind.guarded, .compact] {
            let stack = try StackPool.shared.allocate(kind)
            defer { StackPool.shared.release(stack) }
            let state = PingPong()
            defer { state.resumer.destroyResumer() }
            let context = ExecutionContext(stack: stack, entry: pingPongEntry, argument: Unmanaged.passUnretained(state).toOpaque())
            state.context = context
            var depths: Set<Int> = []
            for run in 1...200 {
                // Each run is a new coroutine with its own state and round count.
                let runState = PingPong()
                runState.resumer.destroyResumer()
                runState.resumer = state.resumer
                runState.context = context
                runState.rounds = run % 3 + 1
                runState.top = Int(bitPattern: stack.top)
                // The first restart finds a context that never ran, the others one that exited.
                context.restart(entry: depthEntry, argument: Unmanaged.passUnretained(runState).toOpaque())
                var replies: [Int] = []
                while true {
                    let reply = state.resumer.switch(to: context, transfer: UnsafeMutableRawPointer(bitPattern: run))
                    guard let reply else { break }
                    replies.append(Int(bitPattern: reply))
                }
                XCTAssertEqual(runState.seen.count, runState.rounds, "\(kind) run \(run)")
                XCTAssertEqual(replies.count, runState.rounds, "\(kind) run \(run)")
                depths.insert(replies[0])
            }
            context.release()
            // Under AddressSanitizer locals live on its fake stack: no depth to compare.
            if ExecutionContext.sanitizers.contains("address") { continue }
            // Every run started at the same depth: a restart begins at the top of the stack.
            XCTAssertEqual(depths.count, 1, "\(kind): start depths \(depths)")
            let depth = try XCTUnwrap(depths.first)
            XCTAssertGreaterThan(depth, 0)
            XCTAssertLessThan(depth, 16 * 1024, "\(kind): the first frame sits \(depth) bytes below the top")
        }
    }
}

/// Replies with how far below the top of its stack a local sits, `rounds` times, then exits.
private let depthEntry: ExecutionContext.Entry = { transfer, argument in
    let state = Unmanaged<PingPong>.fromOpaque(argument!).takeUnretainedValue()
    var marker = 0
    let depth = withUnsafeMutablePointer(to: &marker) { state.top - Int(bitPattern: $0) }
    for _ in 0..<state.rounds {
        state.seen.append(Int(bitPattern: transfer))
        _ = state.context!.switch(to: state.resumer, transfer: UnsafeMutableRawPointer(bitPattern: depth))
    }
    state.context!.exit(to: state.resumer, transfer: nil)
}
