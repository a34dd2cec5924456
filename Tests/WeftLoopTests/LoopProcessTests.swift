import Foundation
import Glibc
import Synchronization
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

    func testSignalsArrivingMoreOftenThanATimerDoNotHoldItOff() throws {
        // A handler, so that the signal interrupts the loop's wait (EINTR) rather than ending the
        // process; unblocked on this thread, the one that runs the loop.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        XCTAssertEqual(sigaction(SIGUSR2, &action, &previous), 0)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGUSR2)
        var mask = sigset_t()
        pthread_sigmask(SIG_UNBLOCK, &unblock, &mask)
        let target = pthread_self()
        let stop = Atomic<Bool>(false)
        let stopped = Atomic<Bool>(false)
        let sent = Atomic<Int>(0)
        let budget = 2000
        // One signal a millisecond, far more often than the timer's 30 ms, until told to stop or
        // out of budget (so that a timer held off fails the test instead of hanging it).
        let signaller = Thread {
            while !stop.load(ordering: .sequentiallyConsistent) && sent.load(ordering: .sequentiallyConsistent) < budget {
                pthread_kill(target, SIGUSR2)
                sent.add(1, ordering: .sequentiallyConsistent)
                usleep(1000)
            }
            stopped.store(true, ordering: .sequentiallyConsistent)
        }
        signaller.start()
        let op = make(.timer(after: .milliseconds(30)))
        let recorder = Recorder()
        try submit(op, recorder)
        try loop.run()
        let sentBeforeItFired = sent.load(ordering: .sequentiallyConsistent)
        stop.store(true, ordering: .sequentiallyConsistent)
        while !stopped.load(ordering: .sequentiallyConsistent) { sched_yield() }
        pthread_sigmask(SIG_SETMASK, &mask, nil)
        sigaction(SIGUSR2, &previous, nil)
        XCTAssertEqual(recorder.results, [0])
        XCTAssertGreaterThan(sentBeforeItFired, 0)
        XCTAssertLessThan(sentBeforeItFired, budget, "the timer fired only once the signals stopped")
    }
}
