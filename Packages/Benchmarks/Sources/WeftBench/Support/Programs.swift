#if canImport(Glibc)
import Glibc
#endif

/// Where the programs a benchmark spawns live.
enum Programs {
    /// The path of a C baseline built by Scripts/bench into $WEFT_BENCH_C_BIN.
    static func cBaseline(_ name: String) throws -> String {
        guard let directory = getenv("WEFT_BENCH_C_BIN") else {
            throw BenchError("WEFT_BENCH_C_BIN is not set: run benchmarks through Scripts/bench")
        }
        let path = String(cString: directory) + "/" + name
        guard access(path, X_OK) == 0 else { throw BenchError("C baseline \(path) is missing; run Scripts/bench") }
        return path
    }

    /// The path of this driver's own executable, to start its server subcommands as child processes.
    static func driver() throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { throw BenchError("readlink /proc/self/exe", errno: errno) }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs a short-lived program pinned to `cpu` and returns its `key=value` output fields.
    static func runToCompletion(_ arguments: [String], cpu: Int?, timeout: Double = 60) throws -> [String: Double] {
        let child = try ChildProcess(arguments, cpu: cpu)
        let lines = try child.readAllLines(timeout: timeout)
        let code = try child.wait(timeout: timeout)
        guard code == 0 else { throw BenchError("\(child.commandLine) exited with status \(code)") }
        var fields: [String: Double] = [:]
        for line in lines { fields.merge(parseFields(line)) { $1 } }
        return fields
    }
}

/// The numeric `key=value` pairs of one output line, for example the load client's result line.
func parseFields(_ line: String) -> [String: Double] {
    var fields: [String: Double] = [:]
    for pair in line.split(separator: " ") {
        let parts = pair.split(separator: "=", maxSplits: 1)
        if parts.count == 2, let value = Double(parts[1]) { fields[String(parts[0])] = value }
    }
    return fields
}
