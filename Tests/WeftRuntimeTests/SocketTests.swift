import Glibc
import Synchronization
import SystemPackage
import WeftContext
import WeftLoop
import WeftRuntime
import XCTest

final class SocketTests: RuntimeTestCase {
    /// A non-blocking listening TCP socket on 127.0.0.1 and its port.
    static func listener() -> (FileDescriptor, UInt16) {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = Glibc.socket(AF_INET, type, 0)
        precondition(fd >= 0)
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                precondition(Glibc.bind(fd, $0, length) == 0)
                precondition(getsockname(fd, $0, &length) == 0)
            }
        }
        precondition(Glibc.listen(fd, 1024) == 0)
        return (FileDescriptor(rawValue: fd), UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return address
    }

    /// A fiber whose socket calls all complete at once (it feeds itself through a socket pair) must
    /// still let the other fibers run: it yields after a budget of such calls.
    func testBusyFiberWhoseCallsCompleteAtOnceLetsOthersRun() throws {
        try runBoth { _ in
            let (a, b) = Self.socketPair()
            let otherRan = Counter()
            let other = try Fiber.spawn { otherRan.add() }
            var rounds = 0
            // Bounded, so that a missing yield fails the assertion instead of hanging.
            while otherRan.value == 0 && rounds < 100_000 {
                try Self.sendByte(a, UInt8(truncatingIfNeeded: rounds))
                XCTAssertEqual(try Self.receiveByte(b), UInt8(truncatingIfNeeded: rounds))
                rounds += 1
            }
            XCTAssertEqual(otherRan.value, 1, "the other fiber never ran while this one did I/O")
            _ = try other.join()
            try Fiber.close(a)
            try Fiber.close(b)
        }
    }

    /// Connections already waiting in the backlog are accepted one after another without a turn of
    /// the run queue each, even when the queue is full of busy fibers (on io_uring the loop is
    /// polled right after the accept is submitted; on epoll the accept is tried at once).
    func testPendingConnectionsAreAcceptedWithoutATurnOfTheQueueEach() throws {
        try runBoth(executors: [1]) { _ in
            let (listener, port) = Self.listener()
            let count = 40
            var clients: [Int32] = []
            for _ in 0..<count {
                let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                var address = Self.loopback(port: port)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                XCTAssertEqual(connected, 0)
                clients.append(fd)
            }
            // Busy fibers that count the turns of the run queue.
            let turns = Counter()
            let stop = Counter()
            var busy: [JoinHandle<Void>] = []
            for _ in 0..<50 {
                busy.append(try Fiber.spawn { while stop.value == 0 { turns.add(); try Fiber.yield() } })
            }
            try Fiber.yield()
            let before = turns.value
            var accepted: [FileDescriptor] = []
            for _ in 0..<count { accepted.append(try Fiber.accept(listener)) }
            // One turn is 50 busy-fiber steps. Without the eager completion every accept waited a
            // turn (at least 40 turns); with it, the acceptor yields once per 32 completions.
            let turnsTaken = (turns.value - before) / 50
            XCTAssertLessThanOrEqual(turnsTaken, 5, "\(turnsTaken) turns of the run queue for \(count) waiting connections")
            stop.add()
            for handle in busy { try handle.join() }
            for fd in accepted { try Fiber.close(fd) }
            for fd in clients { Glibc.close(fd) }
            try Fiber.close(listener)
        }
    }

    func testEchoThroughFibersOverTCP() throws {
        try runBoth { _ in
            let (listener, port) = Self.listener()
            let connections = 100
            let messages = 50
            let server = try Fiber.spawn { () throws -> Void in
                let group = Group()
                for _ in 0..<connections {
                    let client = try Fiber.accept(listener)
                    try group.spawn {
                        defer { try? Fiber.close(client) }
                        var buffer = [UInt8](repeating: 0, count: 256)
                        try buffer.withUnsafeMutableBytes { buffer in
                            while true {
                                let count = try Fiber.recv(client, into: buffer)
                                if count == 0 { return }
                                try Fiber.sendAll(client, UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                            }
                        }
                    }
                }
                try group.wait()
            }
            let clients = Group()
            for c in 0..<connections {
                try clients.spawn {
                    let fd = try Fiber.socket(domain: AF_INET, type: Int32(SOCK_STREAM.rawValue))
                    defer { try? Fiber.close(fd) }
                    var address = Self.loopback(port: port)
                    try withUnsafeBytes(of: &address) {
                        try Fiber.connect(fd, address: $0.baseAddress!, length: $0.count)
                    }
                    var outgoing = [UInt8](repeating: 0, count: 64)
                    var incoming = [UInt8](repeating: 0, count: 64)
                    for m in 0..<messages {
                        for i in 0..<64 { outgoing[i] = UInt8(truncatingIfNeeded: c &+ m &+ i) }
                        try outgoing.withUnsafeBytes { try Fiber.sendAll(fd, $0) }
                        var received = 0
                        try incoming.withUnsafeMutableBytes { buffer in
                            while received < 64 {
                                let count = try Fiber.recv(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[received...]))
                                XCTAssertGreaterThan(count, 0)
                                if count == 0 { return }
                                received += count
                            }
                        }
                        XCTAssertEqual(incoming, outgoing)
                    }
                    try Fiber.shutdown(fd, how: Int32(SHUT_WR))
                }
            }
            try clients.wait()
            try server.join()
            try Fiber.close(listener)
        }
    }

    func testMigrationUnderLoadWithReusedDescriptors() throws {
        // Pairs are opened and closed round after round (the kernel hands the same numbers out
        // again); reader and writer yield between messages so that, with several executors, they
        // move between executors while their descriptors stay registered with the loops.
        let moved = try runBoth { _ in
            let executorsSeen = IndexSet()
            for round in 0..<30 {
                let (a, b) = Self.socketPair()
                let writer = try Fiber.spawn {
                    for m in 0..<40 {
                        try Self.sendByte(a, UInt8(truncatingIfNeeded: round &+ m))
                        executorsSeen.insert(Fiber.executorIndex)
                        try Fiber.yield()
                    }
                }
                let reader = try Fiber.spawn { () throws -> Int in
                    var good = 0
                    for m in 0..<40 {
                        if try Self.receiveByte(b) == UInt8(truncatingIfNeeded: round &+ m) { good += 1 }
                        executorsSeen.insert(Fiber.executorIndex)
                        try Fiber.yield()
                    }
                    return good
                }
                // Busy neighbours give idle executors something to steal.
                let neighbours = try (0..<8).map { _ in try Fiber.spawn { for _ in 0..<20 { try Fiber.yield() } } }
                try writer.join()
                XCTAssertEqual(try reader.join(), 40)
                for handle in neighbours { try handle.join() }
                try Fiber.close(a)
                try Fiber.close(b)
            }
            return executorsSeen.values.count
        }
        XCTAssertEqual(moved[0], 1)
        XCTAssertGreaterThanOrEqual(moved[1], 1)
    }

    func testHundredThousandFibersParkedInReceive() throws {
        // 100,000 fibers on compact stacks, all parked in recv at once on 1,000 socket pairs, then
        // released by one byte each. ThreadSanitizer gives every fiber a thread state of its own
        // (with a 512 KiB shadow-stack mapping): there 10,000 fibers, which it can map.
        let fibers = ExecutionContext.sanitizers.contains("thread") ? 10_000 : 100_000
        let pairs = 1_000
        try runBoth(stackKind: .compact) { _ in
            let sockets = (0..<pairs).map { _ in Self.socketPair() }
            let arrived = Counter()
            let received = Counter()
            let group = Group()
            for n in 0..<fibers {
                let reader = sockets[n % pairs].1
                try group.spawn {
                    arrived.add()
                    if try Self.receiveByte(reader) != nil { received.add() }
                }
            }
            while arrived.value < fibers { try Fiber.sleep(for: .milliseconds(1)) }
            let perPair = [UInt8](repeating: 7, count: fibers / pairs)
            for (writer, _) in sockets {
                try perPair.withUnsafeBytes { try Fiber.sendAll(writer, $0) }
            }
            try group.wait()
            XCTAssertEqual(received.value, fibers)
            for (a, b) in sockets {
                try Fiber.close(a)
                try Fiber.close(b)
            }
        }
    }
}
