import CWeftCurl
import Foundation
import Glibc
import WeftLoop
import XCTest

/// A tiny HTTP/1.1 server on loopback, in a plain thread: one connection at a time, each answered
/// with a body that names the path it was asked for, then closed.
final class LoopbackHTTPServer: @unchecked Sendable {
    let listener: Int32
    let port: UInt16
    private let finished = DispatchSemaphore(value: 0)

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = Glibc.bind(fd, $0, length)
                _ = getsockname(fd, $0, &length)
            }
        }
        _ = Glibc.listen(fd, 256)
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        Thread { self.serve() }.start()
    }

    static func body(for path: String) -> [UInt8] {
        var body = Array("path=\(path)\n".utf8)
        while body.count < 40_000 { body.append(contentsOf: Array("\(path) ".utf8)) }
        return body
    }

    private func serve() {
        var request = [UInt8](repeating: 0, count: 4096)
        while true {
            let client = Glibc.accept(listener, nil, nil)
            if client < 0 { break }
            var received = 0
            while received < request.count {
                let n = Glibc.read(client, &request[received], request.count - received)
                if n <= 0 { break }
                received += n
                if String(decoding: request[0..<received], as: UTF8.self).contains("\r\n\r\n") { break }
            }
            let line = String(decoding: request[0..<received], as: UTF8.self).split(separator: " ")
            let path = line.count > 1 ? String(line[1]) : "/"
            let body = Self.body(for: path)
            let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
            let response = head + body
            var sent = 0
            while sent < response.count {
                let n = response.withUnsafeBytes { Glibc.write(client, $0.baseAddress! + sent, response.count - sent) }
                if n <= 0 { break }
                sent += n
            }
            Glibc.close(client)
        }
        finished.signal()
    }

    /// Stops accepting (shutdown wakes the blocked accept) and waits for the thread to end.
    func stop() {
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        finished.wait()
        Glibc.close(listener)
    }
}

final class LoopCurlTests: LoopTestCase {
    override class func setUp() {
        super.setUp()
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }

    func testManyConcurrentFetchesThroughLibcurl() throws {
        let server = LoopbackHTTPServer()
        defer { server.stop() }
        let driver = CurlDriver(loop: loop)
        let count = 40
        let origin = "http://127.0.0.1:\(server.port)"
        for i in 0..<count { driver.add(url: origin + "/item/\(i)") }
        // Nothing is pending in the loop yet: curl arms its first timer when handles are added, so
        // the loop has work from here on, and run() returns once curl lets go of everything.
        try driver.run()
        XCTAssertEqual(driver.transfers.count, count)
        for transfer in driver.transfers {
            XCTAssertTrue(transfer.done, "\(transfer.url) did not finish")
            XCTAssertEqual(transfer.result, CURLE_OK, "\(transfer.url)")
            XCTAssertEqual(transfer.status, 200)
            let path = String(transfer.url.dropFirst(origin.count))
            XCTAssertTrue(transfer.body == LoopbackHTTPServer.body(for: path), "\(transfer.url): wrong body")
        }
    }

    func testFetchFromAClosedPortFailsCleanly() throws {
        let (probe, port) = listener()
        disown(probe)
        Glibc.close(probe)
        let driver = CurlDriver(loop: loop)
        driver.add(url: "http://127.0.0.1:\(port)/")
        try driver.run()
        XCTAssertEqual(driver.transfers.first?.done, true)
        XCTAssertEqual(driver.transfers.first?.result, CURLE_COULDNT_CONNECT)
    }
}
