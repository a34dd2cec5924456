import Foundation
import Glibc
import WeftContext
import WeftTestSupport
import XCTest

/// Base class: every test must leave the shared pool's in-use counters where it found them.
class PoolCheckedTestCase: XCTestCase {
    private var baseline = StackPool.Statistics()

    override func setUp() {
        super.setUp()
        baseline = StackPool.shared.statistics
    }

    override func tearDown() {
        let now = StackPool.shared.statistics
        XCTAssertEqual(now.guardedInUse, baseline.guardedInUse, "guarded stacks leaked")
        XCTAssertEqual(now.compactInUse, baseline.compactInUse, "compact stacks leaked")
        super.tearDown()
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts `body` on a new OS thread; join it with `pthread_join` (a thread's cached stacks go back to
/// the pool only when it has ended, so leak checks must come after the join).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let argument = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let created = pthread_create(&thread, nil, { argument in
        Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, argument)
    precondition(created == 0, "pthread_create failed")
    return thread
}

/// Runs `body` on a new OS thread and waits for it to end.
func onNewThread(_ body: @escaping @Sendable () -> Void) {
    pthread_join(startThread(body), nil)
}

/// A value shared between threads that the tests synchronise explicitly (by joining threads).
final class Shared<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// Re-runs this test binary in a child process for one scenario of `ChildScenarios`.
func runChild(scenario: String) -> ChildOutcome {
    runChild(test: "WeftContextTests.ChildScenarios/testScenario", variable: "WEFT_CONTEXT_SCENARIO", scenario: scenario)
}
