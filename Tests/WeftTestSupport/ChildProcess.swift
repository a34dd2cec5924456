import Foundation
import Glibc

/// What a child process did.
public struct ChildOutcome: Sendable {
    /// The signal that ended it, if one did.
    public var signal: Int32?
    /// Its exit status, if it exited.
    public var exitCode: Int32?
    /// What it wrote to standard error.
    public var stderr: String
}

/// Re-runs this test binary in a child process for one scenario, capturing its standard error, and
/// waits for it. The child runs only `test` (an XCTest name such as `Module.Class/testMethod`), with
/// `variable` set to `scenario` in its environment; that test reads the variable and does nothing
/// without it. For behaviour that must end the process: a stack overflow, a misuse that traps.
public func runChild(test: String, variable: String, scenario: String) -> ChildOutcome {
    let path = "/tmp/weft-child-\(getpid())-\(scenario).err"
    var exe = [UInt8](repeating: 0, count: 4096)
    let length = exe.withUnsafeMutableBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { readlink("/proc/self/exe", $0.baseAddress!, 4095) }
    }
    precondition(length > 0, "readlink /proc/self/exe")
    let executable = String(decoding: exe[0..<length], as: UTF8.self)
    let arguments = [executable, test]
    var environment = ProcessInfo.processInfo.environment
    environment[variable] = scenario
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
