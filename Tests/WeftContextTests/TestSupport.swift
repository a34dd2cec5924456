import Foundation
import Glibc
import WeftContext
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

/// What a child process did.
struct ChildOutcome {
    var signal: Int32?
    var exitCode: Int32?
    var stderr: String
}

/// Re-runs this test binary in a child process for one scenario of `ChildScenarios`, capturing its
/// standard error, and waits for it.
func runChild(scenario: String) -> ChildOutcome {
    let path = "/tmp/weft-context-child-\(getpid())-\(scenario).err"
    var exe = [UInt8](repeating: 0, count: 4096)
    let length = exe.withUnsafeMutableBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { readlink("/proc/self/exe", $0.baseAddress!, 4095) }
    }
    precondition(length > 0, "readlink /proc/self/exe")
    let executable = String(decoding: exe[0..<length], as: UTF8.self)
    let arguments = [executable, "WeftContextTests.ChildScenarios/testScenario"]
    var environment = ProcessInfo.processInfo.environment
    environment["WEFT_CONTEXT_SCENARIO"] = scenario
    environment["SWIFT_BACKTRACE"] = "enable=no"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 2, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, &argv, &envp)
    posix_spawn_file_actions_destroy(&actions)
    argv.forEach { free($0) }
    envp.forEach { free($0) }
    precondition(spawned == 0, "posix_spawn failed: \(spawned)")
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    unlink(path)
    let low = status & 0x7f
    if low == 0 { return ChildOutcome(signal: nil, exitCode: (status >> 8) & 0xff, stderr: text) }
    return ChildOutcome(signal: low, exitCode: nil, stderr: text)
}
