import Glibc
import Synchronization
import WeftContext
import XCTest

final class CoroutineTests: PoolCheckedTestCase {
    func testResumeYieldFinish() throws {
        let coroutine = try Coroutine<Int, Int, String> { first, yielder in
            var total = first
            while total < 10 { total += try yielder.yield(total) }
            return "done at \(total)"
        }
        XCTAssertEqual(try coroutine.resume(1), .yielded(1))
        XCTAssertEqual(try coroutine.resume(5), .yielded(6))
        XCTAssertFalse(coroutine.isFinished)
        XCTAssertEqual(try coroutine.resume(5), .finished("done at 11"))
        XCTAssertTrue(coroutine.isFinished)
        XCTAssertThrowsError(try coroutine.resume(0)) { XCTAssertEqual($0 as? CoroutineError, .finished) }
    }

    func testBodyErrorPropagatesAndFinishes() throws {
        struct Boom: Error, Equatable {}
        let coroutine = try Coroutine<Void, Int, Int>(stack: .compact) { _, yielder in
            try yielder.yield(1)
            throw Boom()
        }
        XCTAssertEqual(try coroutine.resume(), .yielded(1))
        XCTAssertThrowsError(try coroutine.resume()) { XCTAssertEqual($0 as? Boom, Boom()) }
        XCTAssertThrowsError(try coroutine.resume()) { XCTAssertEqual($0 as? CoroutineError, .finished) }
    }

    func testResumingItselfIsAnError() throws {
        let inner = Shared<Coroutine<Void, Int, String>?>(nil)
        let coroutine = try Coroutine<Void, Int, String> { _, _ in
            do {
                _ = try inner.value!.resume()
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        inner.value = coroutine
        XCTAssertEqual(try coroutine.resume(), .finished(CoroutineError.resumedFromInside.description))
        inner.value = nil
    }

    func testResumingTheCoroutineThatResumedYouIsAnError() throws {
        let outer = Shared<Coroutine<Void, Int, String>?>(nil)
        let inner = try Coroutine<Void, Int, String> { _, _ in
            do {
                _ = try outer.value!.resume()
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let innerBox = Shared(inner)
        outer.value = try Coroutine<Void, Int, String> { _, _ in
            guard case .finished(let message) = try innerBox.value.resume() else { return "inner yielded" }
            return message
        }
        XCTAssertEqual(try outer.value!.resume(), .finished(CoroutineError.alreadyRunning.description))
        outer.value = nil
    }

    func testResumingWhileRunningElsewhereIsAnError() throws {
        let gate = Gate()
        let coroutine = try Coroutine<Void, Int, Int> { _, _ in
            gate.set(1)
            // Wait (without sleeping blindly) until the main thread has tried its resume.
            while gate.value != 2 { sched_yield() }
            return 5
        }
        let box = Shared(coroutine)
        let result = Shared<CoroutineStep<Int, Int>?>(nil)
        let thread = startThread {
            result.value = try? box.value.resume()
        }
        while gate.value != 1 { sched_yield() }
        XCTAssertThrowsError(try coroutine.resume()) { XCTAssertEqual($0 as? CoroutineError, .alreadyRunning) }
        gate.set(2)
        // Joined, not just signalled: the thread's cached stack returns to the pool when it ends.
        pthread_join(thread, nil)
        XCTAssertEqual(result.value, .finished(5))
    }

    func testReleasingASuspendedCoroutineUnwindsItsBody() throws {
        final class Token: Sendable {}
        let log = Shared<[String]>([])
        weak var weakToken: Token?
        do {
            let token = Token()
            weakToken = token
            let coroutine = try Coroutine<Void, Int, Int> { _, yielder in
                let held = token
                defer { log.value.append("unwound") }
                do {
                    while true { try yielder.yield(1) }
                } catch let error as CoroutineCancelled {
                    log.value.append("cancelled: \(error)")
                    _ = held
                    throw error
                }
            }
            XCTAssertEqual(try coroutine.resume(), .yielded(1))
            XCTAssertEqual(try coroutine.resume(), .yielded(1))
        }
        XCTAssertNil(weakToken, "the body's frames were not unwound")
        XCTAssertEqual(log.value, ["cancelled: \(CoroutineCancelled())", "unwound"])
    }

    func testReleasingAnUnstartedOrFinishedCoroutineIsClean() throws {
        _ = try Coroutine<Void, Int, Void>(stack: .compact) { _, _ in XCTFail("must not run") }
        let done = try Coroutine<Void, Int, Int> { _, _ in 3 }
        XCTAssertEqual(try done.resume(), .finished(3))
        weak var weakCoroutine: Coroutine<Void, Int, Int>?
        do {
            let finished = try Coroutine<Void, Int, Int> { _, _ in 4 }
            weakCoroutine = finished
            _ = try finished.resume()
        }
        XCTAssertNil(weakCoroutine)
    }

    func testMigrationAcrossThreads() throws {
        // Thread.current, not pthread_self: glibc marks pthread_self const, so an optimiser may reuse
        // one result across a suspension (see Docs/Context.md). The Thread objects are kept alive
        // so their identities cannot be reused.
        let coroutine = try Coroutine<Int, Thread, Int> { first, yielder in
            var sum = first
            for _ in 0..<4 { sum += try yielder.yield(Thread.current) }
            return sum
        }
        let box = Shared(coroutine)
        guard case .yielded(let firstThread) = try coroutine.resume(1) else { return XCTFail("did not yield") }
        XCTAssertTrue(firstThread === Thread.current)
        var threads = [firstThread]
        for round in 2...4 {
            let seen = Shared<(resumer: Thread, body: Thread)?>(nil)
            onNewThread {
                if case .yielded(let thread)? = try? box.value.resume(round) { seen.value = (Thread.current, thread) }
            }
            guard let pair = seen.value else { return XCTFail("resume on another thread failed") }
            XCTAssertTrue(pair.body === pair.resumer, "the body ran on the resuming thread")
            XCTAssertFalse(threads.contains { $0 === pair.body })
            threads.append(pair.body)
        }
        guard case .finished(let sum) = try coroutine.resume(5) else { return XCTFail("did not finish") }
        XCTAssertEqual(sum, 15)
    }

    func testAccessesOpenAcrossSwitchesOnAFreshThread() {
        // The first switch on a new thread looks up the thread's access list while the resumer
        // holds an access open; switches then run with accesses open on both sides (the calls are
        // made) and with none (they are skipped). Ending each access finds its record in place.
        let outer = AccessHolder()
        let inner = AccessHolder()
        let total = Shared(0)
        onNewThread {
            outer.counter.bump {
                let coroutine = try! Coroutine<Void, Int, Int> { _, yielder in
                    var sum = 0
                    try inner.counter.bump { sum += try yielder.yield(1) == () ? 1 : 0 }
                    sum += try yielder.yield(2) == () ? 1 : 0
                    try inner.counter.bump { sum += try yielder.yield(3) == () ? 1 : 0 }
                    return sum
                }
                var steps = 0
                while case .yielded = try! coroutine.resume() { steps += 1 }
                total.value = steps
            }
            outer.counter.bump {}
        }
        XCTAssertEqual(total.value, 3)
        XCTAssertEqual(outer.counter.count, 2)
        XCTAssertEqual(inner.counter.count, 2)
    }

    func testThousandsInterleaved() throws {
        let count = 2000
        var coroutines: [Coroutine<Void, Int, Int>] = []
        for index in 0..<count {
            coroutines.append(try Coroutine(stack: index % 2 == 0 ? .compact : .guarded) { _, yielder in
                var local = index
                for step in 0..<5 {
                    try yielder.yield(local)
                    local += step
                }
                return local
            })
        }
        for step in 0..<5 {
            for index in stride(from: count - 1, through: 0, by: -1) {
                let expected = index + (0..<step).reduce(0, +)
                XCTAssertEqual(try coroutines[index].resume(), .yielded(expected))
            }
        }
        for index in 0..<count { XCTAssertEqual(try coroutines[index].resume(), .finished(index + 10)) }
    }

    func testDeepRecursionNearTheStackLimit() throws {
        let coroutine = try Coroutine<Void, Int, Int> { _, yielder in
            let bottom = UInt(bitPattern: ExecutionContext.current!.stackLowerBound!)
            return try recurse(depth: 0, bottom: bottom, top: bottom + UInt(StackPool.shared.configuration.guardedStackSize), yielder: yielder)
        }
        var yields = 0
        var step = try coroutine.resume()
        while case .yielded = step {
            yields += 1
            step = try coroutine.resume()
        }
        guard case .finished(let depth) = step else { return XCTFail("did not finish") }
        // 256 KiB of 1 KiB-plus frames: it must have gone most of the way down (sanitizers make
        // frames bigger, and under ASan the buffers are on its fake stack and it stops at 40).
        XCTAssertGreaterThanOrEqual(depth, ExecutionContext.sanitizers.isEmpty ? 100 : 40)
        XCTAssertLessThan(depth, 260)
        XCTAssertGreaterThan(yields, 2)
    }

    func testFloatingPointAndSIMDSurviveSwitches() throws {
        let coroutine = try Coroutine<Double, Double, SIMD4<Float>> { first, yielder in
            var a = first
            var vector = SIMD4<Float>(1, 2, 3, 4)
            var b = 1.0 / 3.0
            for round in 0..<100 {
                a = a * 1.000001 + b
                vector = vector * 1.5 - SIMD4<Float>(repeating: Float(round))
                b += try yielder.yield(a)
                vector += SIMD4<Float>(repeating: Float(b))
            }
            return vector
        }
        var expectedA = 2.0
        var expectedVector = SIMD4<Float>(1, 2, 3, 4)
        var expectedB = 1.0 / 3.0
        var otherSide = SIMD8<Double>(repeating: 7)
        XCTAssertEqual(try coroutine.resume(2.0), .yielded(nextA(&expectedA, expectedB, &expectedVector, 0)))
        for round in 1..<100 {
            otherSide = otherSide * 0.5 + 1
            expectedB += 0.25
            expectedVector += SIMD4<Float>(repeating: Float(expectedB))
            XCTAssertEqual(try coroutine.resume(0.25), .yielded(nextA(&expectedA, expectedB, &expectedVector, round)))
        }
        expectedB += 0.25
        expectedVector += SIMD4<Float>(repeating: Float(expectedB))
        XCTAssertEqual(try coroutine.resume(0.25), .finished(expectedVector))
        XCTAssertEqual(otherSide[3], otherSide[0])
    }

    func testFloatingPointRoundingModeIsPerContext() throws {
        let original = fegetround()
        let coroutine = try Coroutine<Void, Int32, Int32> { _, yielder in
            fesetround(FE_DOWNWARD)
            try yielder.yield(fegetround())
            return fegetround()
        }
        XCTAssertEqual(try coroutine.resume(), .yielded(FE_DOWNWARD))
        XCTAssertEqual(fegetround(), original)
        fesetround(FE_UPWARD)
        XCTAssertEqual(try coroutine.resume(), .finished(FE_DOWNWARD))
        XCTAssertEqual(fegetround(), FE_UPWARD)
        fesetround(original)
    }

    func testGeneratorIsASequence() {
        let fibonacci = Generator<Int> { yield in
            var (a, b) = (0, 1)
            while true {
                try yield(a)
                (a, b) = (b, a + b)
            }
        }
        XCTAssertEqual(Array(fibonacci.prefix(10)), [0, 1, 1, 2, 3, 5, 8, 13, 21, 34])
        let finite = Generator<String>(stack: .compact) { yield in
            for word in ["a", "b", "c"] { try yield(word) }
        }
        XCTAssertEqual(finite.joined(), "abc")
        XCTAssertEqual(Array(finite), ["a", "b", "c"])
        XCTAssertEqual(finite.map { $0.uppercased() }, ["A", "B", "C"])
    }

    func testCoroutinesNestAndPipeline() throws {
        let numbers = Shared(try Coroutine<Void, Int, Void> { _, yielder in
            for value in 1...5 { try yielder.yield(value) }
        })
        let squares = try Coroutine<Void, Int, Void> { _, yielder in
            while case .yielded(let value) = try numbers.value.resume() { try yielder.yield(value * value) }
        }
        var seen: [Int] = []
        while case .yielded(let value) = try squares.resume() { seen.append(value) }
        XCTAssertEqual(seen, [1, 4, 9, 16, 25])
    }
}

/// A flag one thread sets and another waits for.
/// A class property whose mutating calls are dynamic exclusive accesses.
private final class AccessHolder: @unchecked Sendable {
    var counter = AccessCounter()
}

private struct AccessCounter {
    var count = 0
    mutating func bump(_ body: () throws -> Void) rethrows {
        count += 1
        try body()
    }
}

final class Gate: Sendable {
    private let state = Atomic<Int>(0)
    var value: Int { state.load(ordering: .acquiring) }
    func set(_ value: Int) { state.store(value, ordering: .releasing) }
}

private func nextA(_ a: inout Double, _ b: Double, _ vector: inout SIMD4<Float>, _ round: Int) -> Double {
    a = a * 1.000001 + b
    vector = vector * 1.5 - SIMD4<Float>(repeating: Float(round))
    return a
}

/// Recurses with 1 KiB frames until less than 8 KiB of stack is left, yielding now and then.
/// Under ASan the buffers live on its fake stack, not ours: then it stops at a fixed depth.
@inline(never)
private func recurse(depth: Int, bottom: UInt, top: UInt, yielder: Coroutine<Void, Int, Int>.Yielder) throws -> Int {
    var frame = (0..<128).map { _ in depth }
    return try frame.withUnsafeMutableBufferPointer { buffer in
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { local in
            local.initialize(repeating: UInt8(truncatingIfNeeded: depth))
            let address = UInt(bitPattern: local.baseAddress!)
            let onOurStack = address >= bottom && address < top
            if onOurStack ? address < bottom + 8 * 1024 : depth == 40 { return depth }
            if depth % 16 == 0 { try yielder.yield(depth) }
            let result = try recurse(depth: depth + 1, bottom: bottom, top: top, yielder: yielder)
            XCTAssertEqual(local[1000], UInt8(truncatingIfNeeded: depth))
            return result + buffer[0] - depth
        }
    }
}
