import CWeftBenchSupport

#if canImport(Glibc)
import Glibc
#endif

/// A child process started by the driver (a server or the load client), optionally pinned to one CPU,
/// with its standard output on a pipe the driver reads line by line.
final class ChildProcess {
    /// Its process id.
    let pid: pid_t
    /// The command line, for error messages.
    let commandLine: String
    private var output: LineReader
    private var status: Int32?

    /// Starts `arguments[0]` (a path) with `arguments`; when `cpu` is given the child is confined to
    /// that CPU from its first instruction (the affinity is inherited, so no thread escapes it).
    init(_ arguments: [String], cpu: Int? = nil) throws {
        commandLine = arguments.joined(separator: " ")
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw BenchError("pipe", errno: errno) }
        // Neither end may leak into the child except as its stdout (dup2 clears the flag there).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }

        if let cpu, weft_bench_pin(0, Int32(cpu)) != 0 {
            let code = errno
            close(fds[0])
            close(fds[1])
            throw BenchError("pinning to CPU \(cpu)", errno: code)
        }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, arguments[0], &actions, nil, argv, environ)
        if cpu != nil { _ = weft_bench_unpin(0) }
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw BenchError("posix_spawn \(arguments[0])", errno: spawned)
        }
        pid = child
        output = LineReader(fd: fds[0])
    }

    deinit {
        if status == nil { terminate() }
        output.close()
    }

    /// The next line of its standard output, or nil at end of file.
    /// - Throws: ``BenchError`` when no line arrives within `timeout` seconds.
    func readLine(timeout: Double = 30) throws -> String? {
        try output.readLine(timeout: timeout, source: commandLine)
    }

    /// Every remaining line of its standard output, up to end of file.
    func readAllLines(timeout: Double = 60) throws -> [String] {
        var lines: [String] = []
        while let line = try readLine(timeout: timeout) { lines.append(line) }
        return lines
    }

    /// CPU time (user + system, all threads) it has used so far, in seconds, from /proc/PID/stat.
    func cpuSeconds() throws -> Double {
        let text = try readTextFile("/proc/\(pid)/stat")
        // The command name (field 2) may hold spaces; the numeric fields follow its closing ')'.
        guard let close = text.lastIndex(of: ")") else { throw BenchError("unreadable /proc/\(pid)/stat") }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError("unreadable /proc/\(pid)/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Sends it `signo`.
    func signal(_ signo: Int32) throws {
        guard kill(pid, signo) == 0 else { throw BenchError("kill \(pid)", errno: errno) }
    }

    /// Whether it has already exited (reaps it if so).
    var hasExited: Bool {
        if status != nil { return true }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = raw
            return true
        }
        return false
    }

    /// Waits for it to exit by itself and returns its exit code (128 + signal number if killed).
    /// - Throws: ``BenchError`` if it is still running after `timeout` seconds (it is then killed).
    @discardableResult
    func wait(timeout: Double = 30) throws -> Int32 {
        let deadline = monotonicSeconds() + timeout
        while !hasExited {
            if monotonicSeconds() > deadline {
                terminate()
                throw BenchError("\(commandLine) did not exit within \(Int(timeout)) s")
            }
            usleep(2000)
        }
        return exitCode
    }

    /// Stops it: SIGTERM, then SIGKILL if it is still there after two seconds; reaps it.
    func terminate() {
        guard !hasExited else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicSeconds() + 2
        while !hasExited {
            if monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                var raw: Int32 = 0
                waitpid(pid, &raw, 0)
                status = raw
                return
            }
            usleep(1000)
        }
    }

    private var exitCode: Int32 {
        guard let raw = status else { return -1 }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }
}

/// Buffered line reading from a pipe, with a timeout so that a stuck child cannot hang the driver.
struct LineReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var atEnd = false

    init(fd: Int32) {
        self.fd = fd
    }

    mutating func readLine(timeout: Double, source: String) throws -> String? {
        let deadline = monotonicSeconds() + timeout
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if atEnd {
                guard !buffer.isEmpty else { return nil }
                let line = String(decoding: buffer, as: UTF8.self)
                buffer.removeAll()
                return line
            }
            let remaining = deadline - monotonicSeconds()
            guard remaining > 0 else { throw BenchError("no output from \(source) within \(Int(timeout)) s") }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 1) * 1000))
            if ready < 0 {
                let code = errno
                if code == EINTR { continue }
                throw BenchError("poll on \(source)'s output", errno: code)
            }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR || code == EAGAIN { continue }
                throw BenchError("reading \(source)'s output", errno: code)
            }
            if count == 0 {
                atEnd = true
            } else {
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }

    func close() {
        _ = Glibc.close(fd)
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The whole content of a small text file such as /proc/PID/stat.
func readTextFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw BenchError("open \(path)", errno: errno) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            let code = errno
            if code == EINTR { continue }
            throw BenchError("read \(path)", errno: code)
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}
