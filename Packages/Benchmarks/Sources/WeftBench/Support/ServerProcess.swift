#if canImport(Glibc)
import Glibc
#endif

/// Set-up shared by the driver's `serve-*` subcommands, which run as child processes of a benchmark.
enum ServerProcess {
    /// Raises the open-file limit (a thousand connections exceed the usual soft limit), ignores
    /// SIGPIPE (a client may go away mid-send), and installs the SIGUSR1 allocation report.
    static func prepare() throws {
        var limit = rlimit()
        if getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(RLIMIT_NOFILE_VALUE, &limit)
        }
        signal(SIGPIPE, SIG_IGN)
        try AllocationCounter.reportOnSignal()
    }

    /// The value of `--name VALUE` in a subcommand's arguments.
    static func option(_ name: String, in arguments: [String]) -> String? {
        guard let index = arguments.firstIndex(of: "--" + name), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    /// The port given as `--port P`.
    static func port(in arguments: [String]) throws -> UInt16 {
        guard let text = option("port", in: arguments), let port = UInt16(text) else {
            throw BenchError("a server subcommand needs --port P (1...65535)")
        }
        return port
    }
}

/// RLIMIT_NOFILE imports as an enum case on glibc; the functions take its raw value.
private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
