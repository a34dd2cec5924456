import Glibc
import WeftContext
import WeftTestSupport
import XCTest

/// Failures that must stop the process with a clear message first, each checked in a child process.
final class CrashTests: XCTestCase {
    func testGuardPageOverflowIsReportedThenKillsWithSIGSEGV() {
        let outcome = runChild(scenario: "overflow")
        if !ExecutionContext.sanitizers.isEmpty {
            // The signal is handed on to the sanitizer's handler, which reports and exits.
            XCTAssertTrue(outcome.stderr.contains("Sanitizer: stack-overflow"), outcome.stderr)
        } else {
            XCTAssertEqual(outcome.signal, SIGSEGV, outcome.stderr)
        }
        XCTAssertTrue(outcome.stderr.contains("weft: stack overflow in context on stack 0x"), outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("(stack size \(StackPool.shared.configuration.guardedStackSize) bytes)"), outcome.stderr)
    }

    func testCompactStackCanaryIsCheckedAtSwitch() {
        let outcome = runChild(scenario: "canary")
        XCTAssertEqual(outcome.signal, SIGABRT, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("compact stack of 32768 bytes): its canary was overwritten"), outcome.stderr)
    }

    func testYieldAfterCancellationTraps() {
        let outcome = runChild(scenario: "yield-after-cancel")
        XCTAssertEqual(outcome.signal, SIGABRT, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("caught CoroutineCancelled and yielded again"), outcome.stderr)
    }

    func testYieldOutsideTheBodyTraps() {
        let outcome = runChild(scenario: "yield-outside")
        XCTAssertEqual(outcome.signal, SIGABRT, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("called outside its coroutine's body"), outcome.stderr)
    }

    func testExclusivityViolationWithoutSaveRestore() throws {
        // The bare switch also skips the sanitizers' fiber annotations, which they treat as fatal.
        try XCTSkipUnless(ExecutionContext.sanitizers.isEmpty, "the bare switch cannot run under a sanitizer")
        let outcome = runChild(scenario: "exclusivity-without-hooks")
        XCTAssertNotNil(outcome.signal, "the bare switch must break exclusivity tracking: \(outcome.stderr)")
        XCTAssertTrue(outcome.stderr.contains("Simultaneous accesses"), outcome.stderr)
    }

    func testAccessEndedOnAnotherThreadWithoutSaveRestoreCrashes() throws {
        try XCTSkipUnless(ExecutionContext.sanitizers.isEmpty, "the bare switch cannot run under a sanitizer")
        let outcome = runChild(scenario: "exclusivity-migration-without-hooks")
        XCTAssertNotNil(outcome.signal, "ending an access on another thread must fail without the save/restore: \(outcome.stderr)")
        XCTAssertFalse(outcome.stderr.contains("survived"), outcome.stderr)
    }

    func testExclusivityHeldAcrossSwitchAndMigrationWithSaveRestore() throws {
        let baseline = StackPool.shared.statistics
        let scenario = ExclusivityScenario(hooks: true)
        XCTAssertEqual(try scenario.run(pool: .shared), 2)
        XCTAssertNotEqual(scenario.observed, -1, "the second context ran")
        XCTAssertEqual(try ExclusivityScenario(hooks: true, runSecond: false).run(pool: .shared), 2)
        XCTAssertEqual(StackPool.shared.statistics.guardedInUse, baseline.guardedInUse)
        XCTAssertEqual(StackPool.shared.statistics.compactInUse, baseline.compactInUse)
    }
}
