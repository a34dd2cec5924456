import Synchronization

/// Prints one figure in the machine-readable form every suite uses: `SUITE.METRIC: NUMBER`.
func report(_ suite: String, _ metric: String, _ value: Double) {
    let text: String
    if value == value.rounded() && abs(value) < 1e15 {
        text = String(Int64(value))
    } else {
        text = String(format3(value))
    }
    print("\(suite).\(metric): \(text)")
}

/// Three decimals, without Foundation.
func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded()
    let whole = Int64(scaled / 1000)
    let frac = Int64(abs(scaled)) % 1000
    let sign = value < 0 && whole == 0 ? "-" : ""
    let fracText = String(frac)
    return "\(sign)\(whole)." + String(repeating: "0", count: 3 - fracText.count) + fracText
}

/// Tables for people, printed by the driver after every suite's figure lines so that the lines stay
/// one contiguous block for scripts.
private let deferredTables = Mutex<[String]>([])

/// Queues a table (already formatted lines) to print after all figures.
func deferTable(_ title: String, _ lines: [String]) {
    deferredTables.withLock { $0.append(([""] + [title] + lines).joined(separator: "\n")) }
}

/// Prints the queued tables; called once by the driver at the end.
func printDeferredTables() {
    for table in deferredTables.withLock({ $0 }) { print(table) }
}
