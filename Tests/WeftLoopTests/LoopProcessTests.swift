import Glibc
import SystemPackage
import WeftLoop
import XCTest

final class LoopProcessTests: LoopTestCase {
    private func spawn(_ script: String) throws -> pid_t {
        var pid: pid_t = 0
        let args = ["/bin/sh", "-c", script]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        XCTAssertEqual(posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ), 0)
        return pid
    }

    func testProcessWaitReportsExitStatus() throws {
        let pid = try spawn("exit 3")
        let pidfd = try Loop.openProcessDescriptor(pid)
        defer { Glibc.close(pidfd.rawValue) }
        let op = make(.processWait(pidfd))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        XCTAssertEqual(recorder.results, [0])
        XCTAssertEqual(op.pointee.processExitCode, 1)  // CLD_EXITED
        XCTAssertEqual(op.pointee.processExitStatus, 3)
    }

    func testProcessWaitReportsASignal() throws {
        let pid = try spawn("sleep 30")
        let pidfd = try Loop.openProcessDescriptor(pid)
        defer { Glibc.close(pidfd.rawValue) }
        let op = make(.processWait(pidfd))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        XCTAssertTrue(recorder.results.isEmpty)
        kill(pid, SIGKILL)
        try loop.run()
        XCTAssertEqual(recorder.results, [0])
        XCTAssertEqual(op.pointee.processExitCode, 2)  // CLD_KILLED
        XCTAssertEqual(op.pointee.processExitStatus, SIGKILL)
    }

    func testProcessDescriptorErrors() {
        XCTAssertThrowsError(try Loop.openProcessDescriptor(-1)) { error in
            XCTAssertEqual((error as? LoopError)?.operation.description, "pidfd_open")
        }
    }

    func testSignalsThroughASignalDescriptor() throws {
        let signals = try LoopSignals([SIGUSR1])
        defer { signals.close() }
        let info = UnsafeMutableRawPointer.allocate(byteCount: LoopSignals.infoSize, alignment: 8)
        defer { info.deallocate() }
        let op = make(.read(signals.descriptor, into: info, count: LoopSignals.infoSize))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run(.noWait)
        XCTAssertTrue(recorder.results.isEmpty)
        // Directed at this thread, where the signal is blocked, so the descriptor gets it.
        XCTAssertEqual(pthread_kill(pthread_self(), SIGUSR1), 0)
        try loop.run()
        XCTAssertEqual(recorder.results, [Int32(LoopSignals.infoSize)])
        XCTAssertEqual(LoopSignals.signalNumber(info), SIGUSR1)
    }
}
