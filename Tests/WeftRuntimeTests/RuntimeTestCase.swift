import Foundation
import Glibc
import Synchronization
import SystemPackage
import WeftContext
import WeftLoop
import WeftRuntime
import WeftTestSupport
import XCTest

/// A thread-safe counter for test bodies.
final class Counter: Sendable {
    let atomic = Atomic<Int>(0)
    @discardableResult func add(_ n: Int = 1) -> Int { atomic.add(n, ordering: .sequentiallyConsistent).newValue }
    var value: Int { atomic.load(ordering: .sequentiallyConsistent) }
}

/// A set of executor indices that fibers add to. Its methods are never inlined: a
/// `Synchronization.Mutex` inlined into a fiber's function could lock with a thread id cached
/// before a switch, that is, in the name of the thread the fiber ran on before it migrated (see
/// Docs/Runtime.md).
final class IndexSet: @unchecked Sendable {
    private let lock = Mutex<Set<Int>>([])

    @inline(never) func insert(_ index: Int?) {
        guard let index else { return }
        lock.withLock { _ = $0.insert(index) }
    }

    @inline(never) var values: Set<Int> { lock.withLock { $0 } }
}

/// The base of every runtime test: ``runBoth(stackKind:_:)`` runs a body as the first fiber of a
/// runtime with one executor and again with three (the backend comes from `WEFT_BACKEND`), and
/// checks after each run that no descriptor, stack or fiber object leaked.
class RuntimeTestCase: XCTestCase {
    static let flavours = [1, 3]

    /// The pool every run gets. Under ThreadSanitizer guarded stacks are unmapped when released
    /// rather than reused: TSan cannot see the pool's lock hand a stack to another thread (see
    /// Scripts/tsan.supp), so a fiber on a reused stack would be reported against the fiber that
    /// ran there before. A fresh mapping starts with clean shadow memory.
    static func makePool() throws -> StackPool {
        if ExecutionContext.sanitizers.contains("thread") {
            return try StackPool(
                configuration: .init(compactStacksPerMapping: 256, highWaterMark: 0, maximumCachedGuardedStacks: 0))
        }
        return try StackPool(configuration: .init(compactStacksPerMapping: 256))
    }

    /// Swift Concurrency's default executor opens its descriptors (dispatch's epoll and eventfd) on
    /// first use; do that before any test counts descriptors.
    override class func setUp() {
        super.setUp()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            try? await Task.sleep(for: .milliseconds(1))
            done.signal()
        }
        done.wait()
        startSanitizerSymbolizer()
    }

    /// Under a sanitizer, the first report (even a suppressed one: suppressions match symbolized
    /// frames) starts the external symbolizer, a child process talking through two pipes that stay
    /// open. Starting it here, before any test counts descriptors, keeps those pipes out of the
    /// leak check; descriptors opened later still count.
    private static func startSanitizerSymbolizer() {
        if ExecutionContext.sanitizers.isEmpty { return }
        typealias Symbolize = @convention(c) (UnsafeRawPointer?, UnsafePointer<CChar>, UnsafeMutablePointer<CChar>, Int) -> Void
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__sanitizer_symbolize_pc") else { return }
        let symbolize = unsafeBitCast(symbol, to: Symbolize.self)
        var text = [CChar](repeating: 0, count: 256)
        text.withUnsafeMutableBufferPointer { symbolize(UnsafeRawPointer(symbol), "%f", $0.baseAddress!, $0.count) }
    }

    /// Runs `body` under each flavour; returns the results in flavour order.
    @discardableResult
    func runBoth<T: Sendable>(
        stackKind: Stack.Kind = .guarded, executors: [Int] = RuntimeTestCase.flavours,
        file: StaticString = #filePath, line: UInt = #line,
        _ body: @escaping @Sendable (_ executors: Int) throws -> T
    ) throws -> [T] {
        var results: [T] = []
        for count in executors {
            let descriptors = OpenDescriptors.current()
            let pool = try Self.makePool()
            Runtime.tracksFiberObjects = true
            let objects = Runtime.liveFiberObjects
            let result = try Runtime.run(options: .init(executors: .exact(count), stackKind: stackKind, stackPool: pool)) {
                try body(count)
            }
            results.append(result)
            let statistics = pool.statistics
            XCTAssertEqual(statistics.guardedInUse, 0, "guarded stacks leaked (\(count) executors)", file: file, line: line)
            XCTAssertEqual(statistics.compactInUse, 0, "compact stacks leaked (\(count) executors)", file: file, line: line)
            XCTAssertTrue(
                Self.eventually { Runtime.liveFiberObjects <= objects }, "fiber objects leaked (\(count) executors)",
                file: file, line: line)
            let leaked = OpenDescriptors.leaked(since: descriptors)
            XCTAssertTrue(leaked.isEmpty, "descriptors leaked: \(leaked) (\(count) executors)", file: file, line: line)
        }
        return results
    }

    /// Waits (up to 5 s) for a condition that another thread makes true, such as a task releasing
    /// its last reference after it resumed a fiber.
    static func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<5000 {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }


    /// A connected pair of Unix stream sockets (close-on-exec, non-blocking so the epoll backend can
    /// use them directly).
    static func socketPair() -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        precondition(socketpair(AF_UNIX, type, 0, &fds) == 0)
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    /// Sends `bytes` and receives as many back (fiber-blocking).
    static func sendByte(_ fd: FileDescriptor, _ value: UInt8) throws {
        var byte = value
        let sent = try withUnsafeBytes(of: &byte) { try Fiber.send(fd, $0) }
        precondition(sent == 1)
    }

    static func receiveByte(_ fd: FileDescriptor) throws -> UInt8? {
        var byte: UInt8 = 0
        let count = try withUnsafeMutableBytes(of: &byte) { try Fiber.recv(fd, into: $0) }
        return count == 1 ? byte : nil
    }
}
