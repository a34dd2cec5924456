import Foundation
import WeftContext
import XCTest

final class StackMemoryTests: PoolCheckedTestCase {
    /// Every `.S` file must carry a `.note.GNU-stack` section, or the linker makes the process's
    /// stack executable; the kernel then maps `[stack]` with execute permission.
    func testProcessStackIsNotExecutable() throws {
        let maps = readProcFile("/proc/self/maps")
        let stackLine = maps.split(separator: "\n").first { $0.hasSuffix("[stack]") }
        let permissions = try XCTUnwrap(stackLine?.split(separator: " ").dropFirst().first)
        XCTAssertEqual(permissions, "rw-p")
    }

    func testGuardPageIsNotAccessibleAndStackIsReserved() throws {
        let stack = try StackPool.shared.allocate(.guarded)
        defer { StackPool.shared.release(stack) }
        let maps = readProcFile("/proc/self/maps")
        let guardStart = String(UInt(bitPattern: stack.bottom) - UInt(getpagesize()), radix: 16)
        let guardLine = maps.split(separator: "\n").first { $0.hasPrefix(guardStart + "-") }
        XCTAssertEqual(try XCTUnwrap(guardLine).split(separator: " ")[1], "---p")
    }

    /// The trampoline's CFI marks the bottom frame, so an unwinder walking a coroutine's stack stops
    /// there instead of running into the memory above it.
    func testBacktraceInsideACoroutineEndsAtTheTrampoline() throws {
        // glibc's backtrace(3) (execinfo.h is not in the Glibc module) walks frames with the
        // DWARF unwinder, i.e. by CFI.
        typealias Backtrace = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int32) -> Int32
        let symbol = try XCTUnwrap(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "backtrace"))
        let walk = unsafeBitCast(symbol, to: Backtrace.self)
        let coroutine = try Coroutine<Void, Int, Int> { _, _ in
            var frames = [UnsafeMutableRawPointer?](repeating: nil, count: 256)
            return Int(walk(&frames, 256))
        }
        guard case .finished(let depth) = try coroutine.resume() else { return XCTFail("did not finish") }
        XCTAssertGreaterThan(depth, 2)
        XCTAssertLessThan(depth, 64, "the unwinder did not stop at the bottom frame")
    }

    func testCurrentContextInsideACoroutine() throws {
        XCTAssertNil(ExecutionContext.current)
        let coroutine = try Coroutine<Void, Bool, UInt64> { _, yielder in
            let current = ExecutionContext.current
            try yielder.yield(current?.stackLowerBound != nil)
            return current?.id ?? 0
        }
        XCTAssertEqual(try coroutine.resume(), .yielded(true))
        guard case .finished(let id) = try coroutine.resume() else { return XCTFail("did not finish") }
        XCTAssertEqual(id, 0, "coroutines are named by their stack address")
        XCTAssertNil(ExecutionContext.current)
    }
}

/// Reads a /proc file (their size is reported as 0, so read until end of file).
func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count <= 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}
