import Glibc
import WeftContext
import XCTest

/// State for raw-context tests; entries get it through their argument pointer.
private final class PingPong {
    var resumer = ExecutionContext.makeResumer()
    var context: ExecutionContext?
    var rounds = 0
    var seen: [Int] = []
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
}
