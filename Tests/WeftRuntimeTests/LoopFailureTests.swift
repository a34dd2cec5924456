import Foundation
import Glibc
import SystemPackage
import WeftLoop
import WeftRuntime
import WeftTestSupport
import XCTest

/// What an executor does when its loop cannot wait: retries what passes, stops on what does not.
final class LoopFailureTests: RuntimeTestCase {
    /// Transient failures (`ENOMEM` here) are retried after a pause that doubles: the fibers go on,
    /// and the executor neither gives up nor spins.
    func testTransientWaitFailuresAreRetriedAfterAPause() throws {
        for executors in RuntimeTestCase.flavours {
            var options = Runtime.Options(executors: .exact(executors))
            options.loop.simulatedWaitFailures = (.noMemory, 4)
            let start = ContinuousClock.now
            let retries = try Runtime.run(options: options) { () -> Int in
                // The first park sends executor 0 into its loop, whose first four waits fail.
                try Fiber.sleep(for: .milliseconds(1))
                let (a, b) = RuntimeTestCase.socketPair()
                defer {
                    try? a.close()
                    try? b.close()
                }
                let echo = try Fiber.spawn {
                    var byte: UInt8 = 0
                    _ = try withUnsafeMutableBytes(of: &byte) { try Fiber.recv(b, into: $0) }
                    _ = try withUnsafeBytes(of: &byte) { try Fiber.send(b, $0) }
                }
                var byte: UInt8 = 42
                _ = try withUnsafeBytes(of: &byte) { try Fiber.send(a, $0) }
                byte = 0
                _ = try withUnsafeMutableBytes(of: &byte) { try Fiber.recv(a, into: $0) }
                try echo.join()
                XCTAssertEqual(byte, 42)
                return Runtime.current!.loopWaitRetries
            }
            // The executor the first fiber slept on went through all four before the sleep could
            // end; the others may still have been in theirs.
            XCTAssertGreaterThanOrEqual(retries, 4, "\(executors) executors")
            XCTAssertLessThanOrEqual(retries, 4 * executors, "\(executors) executors")
            if executors == 1 {
                // Pauses of 1, 2, 4 and 8 ms came before the first wait that worked. (With several
                // executors the fiber may have moved to one that was through its failures.)
                XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(15))
            }
        }
    }

    /// A failure that cannot pass (the loop's descriptor is no longer its own) stops the process
    /// with a message naming the executor, the call and the error, instead of spinning or hanging.
    func testAWaitFailureThatCannotPassStopsTheProcessWithAMessage() {
        let outcome = runChild(
            test: "WeftRuntimeTests.LoopFailureScenarios/testScenario", variable: "WEFT_RUNTIME_SCENARIO",
            scenario: "wait-ebadf")
        // A trap; under a sanitizer, its handler reports the signal and exits with a failure.
        XCTAssertTrue(outcome.signal != nil || (outcome.exitCode ?? 0) != 0, outcome.stderr)
        XCTAssertFalse(outcome.stderr.contains("the runtime went on"), outcome.stderr)
        let backend = (try? Loop())?.backendKind.rawValue ?? "?"
        let call = backend == "epoll" ? "epoll_wait" : "io_uring_enter"
        XCTAssertTrue(
            outcome.stderr.contains("WeftRuntime: executor 0 cannot wait in its \(backend) loop: \(call): "),
            outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("\(Errno.badFileDescriptor)"), outcome.stderr)
    }
}

/// Scenarios of `LoopFailureTests` that end the process, run in a child process (this test binary
/// re-executed with WEFT_RUNTIME_SCENARIO set). Without that variable the test does nothing.
final class LoopFailureScenarios: XCTestCase {
    func testScenario() throws {
        guard let scenario = ProcessInfo.processInfo.environment["WEFT_RUNTIME_SCENARIO"] else { return }
        switch scenario {
        case "wait-ebadf":
            var options = Runtime.Options()
            options.loop.simulatedWaitFailures = (.badFileDescriptor, 1)
            try Runtime.run(options: options) { try Fiber.sleep(for: .milliseconds(1)) }
            FileHandle.standardError.write("the runtime went on after its loop failed\n".data(using: .utf8)!)
        default:
            XCTFail("unknown scenario \(scenario)")
        }
    }
}
