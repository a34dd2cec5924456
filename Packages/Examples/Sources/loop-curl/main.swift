// Fetches URLs concurrently with libcurl's multi interface, driven by WeftLoop alone: curl says which
// sockets to watch and when to time out, and loop operations (readiness polls, one timer) answer.
//
//   swift run loop-curl [--backend io_uring|epoll] URL...
//
// Prints one line per URL (status, bytes, curl's verdict) and exits 1 if any transfer failed. The
// driver is the one the WeftLoop tests use (CurlDriver.swift).
import CWeftCurl
import Glibc
import WeftLoop

var options = Loop.Options()
var urls: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if argument == "--backend" {
        guard let value = arguments.popFirst().flatMap({ LoopBackendKind(rawValue: $0) }), value != .scripted else {
            print("usage: loop-curl [--backend io_uring|epoll] URL...")
            exit(2)
        }
        options.backend = value
    } else {
        urls.append(argument)
    }
}
guard !urls.isEmpty else {
    print("usage: loop-curl [--backend io_uring|epoll] URL...")
    exit(2)
}

curl_global_init(Int(CURL_GLOBAL_DEFAULT))
do {
    let loop = try Loop(options: options)
    let driver = CurlDriver(loop: loop)
    for url in urls { driver.add(url: url) }
    try driver.run()
    var failures = 0
    for transfer in driver.transfers {
        let verdict = String(cString: curl_easy_strerror(transfer.result))
        print("\(transfer.url): status \(transfer.status), \(transfer.body.count) bytes, \(verdict)")
        if !transfer.done || transfer.result != CURLE_OK || transfer.status >= 400 { failures += 1 }
    }
    print("loop-curl: \(driver.transfers.count - failures) of \(driver.transfers.count) fetched on \(loop.backendKind)")
    exit(failures == 0 ? 0 : 1)
} catch {
    print("loop-curl: \(error)")
    exit(1)
}
