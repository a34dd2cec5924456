/// The table for people printed after a suite's echo figures: one row per server run.
struct EchoTable {
    private var rows: [[String]] = [["server", "msgs/s", "p50 us", "p99 us", "cpu us/msg", "allocs/msg"]]

    /// Adds the median run of `server`.
    mutating func add(_ server: String, _ result: EchoResult) {
        rows.append([
            server,
            String(Int64(result.messagesPerSecond.rounded())),
            format3(result.p50Microseconds),
            format3(result.p99Microseconds),
            format3(result.cpuMicrosecondsPerMessage),
            result.allocationsPerMessage.map(format3) ?? "-",
        ])
    }

    /// Queues the table to print after all figure lines (see ``deferTable(_:_:)``).
    func deferPrinting(title: String) {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        let lines = rows.map { row in
            row.indices.map { column in
                let cell = row[column]
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + padding : padding + cell
            }.joined(separator: "  ")
        }
        deferTable(title, lines)
    }
}
