import Foundation
import WeftContext
import XCTest

/// Scenarios that must kill the process, run by `CrashTests` in a child process (this test binary
/// re-executed with WEFT_CONTEXT_SCENARIO set). Without that variable the test does nothing.
final class ChildScenarios: XCTestCase {
    func testScenario() throws {
        guard let scenario = ProcessInfo.processInfo.environment["WEFT_CONTEXT_SCENARIO"] else { return }
        switch scenario {
        case "overflow":
            let coroutine = try Coroutine<Void, Int, Int> { _, _ in overflow(0) }
            _ = try coroutine.resume()
        case "canary":
            let pool = try StackPool(configuration: .init(compactStackSize: 32 * 1024))
            let neighbour = try Coroutine<Void, Int, Int>(stack: .compact, pool: pool) { _, _ in 0 }
            let coroutine = try Coroutine<Void, Int, Int>(stack: .compact, pool: pool) { _, yielder in
                let bottom = UInt(bitPattern: ExecutionContext.current!.stackLowerBound!)
                return try deepThenYield(below: bottom - 4096, yielder: yielder, bottom: bottom)
            }
            _ = try coroutine.resume()
            _ = neighbour
        case "yield-after-cancel":
            let coroutine = try Coroutine<Void, Int, Int> { _, yielder in
                do { try yielder.yield(1) } catch {}
                try yielder.yield(2)
                return 0
            }
            _ = try coroutine.resume()
        case "yield-outside":
            let escaped = Shared<Coroutine<Void, Int, Int>.Yielder?>(nil)
            let coroutine = try Coroutine<Void, Int, Int> { _, yielder in
                escaped.value = yielder
                try yielder.yield(1)
                return 0
            }
            _ = try coroutine.resume()
            _ = try escaped.value!.yield(3)
        case "exclusivity-without-hooks":
            _ = try ExclusivityScenario(hooks: false).run(pool: .shared)
        case "exclusivity-migration-without-hooks":
            _ = try ExclusivityScenario(hooks: false, runSecond: false).run(pool: .shared)
        default:
            XCTFail("unknown scenario \(scenario)")
        }
        print("scenario \(scenario) survived")
        exit(0)
    }
}

@inline(never)
func overflow(_ depth: Int) -> Int {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { local in
        local.initialize(repeating: UInt8(truncatingIfNeeded: depth))
        return overflow(depth + 1) + Int(local[depth % 1024])
    }
}

@inline(never)
func deepThenYield(below limit: UInt, yielder: Coroutine<Void, Int, Int>.Yielder, bottom: UInt? = nil) throws -> Int {
    try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { local in
        local.initialize(repeating: 0x5A)
        if UInt(bitPattern: local.baseAddress!) < limit {
            // The frames above wrote over the stack's lowest words, but where a frame leaves a word
            // unwritten depends on the build (a sanitizer lays frames out differently): write the
            // lowest words as an overflowing frame would, so the canary is surely hit.
            if let bottom { UnsafeMutableRawPointer(bitPattern: bottom)!.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 64) }
            try yielder.yield(0)
            return 0
        }
        return try deepThenYield(below: limit, yielder: yielder, bottom: bottom) + Int(local[100])
    }
}
