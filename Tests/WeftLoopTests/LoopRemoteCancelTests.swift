import Foundation
import Glibc
import Synchronization
import WeftLoop
import XCTest

/// A cancel requested from another thread (`LoopWaker.cancel`) while the caller knows the operation
/// is pending is either applied to it or withdrawn: never left for the next submission of the same
/// memory, however it races the loop completing the operation.
final class LoopRemoteCancelTests: XCTestCase {
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var generation = 0
        var staleHits = 0
        let stop = Atomic<Bool>(false)
        var waker: LoopWaker?
        let op = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 1)
    }

    func testARemoteCancelNeverReachesTheNextSubmission() throws {
        let loop = try Loop()
        let state = State()
        state.waker = loop.waker
        // Even generations wait 10 s (only a cancel ends them); odd ones fire after 200 µs and are
        // never cancelled on purpose.
        state.op.initialize(to: .timer(after: .seconds(10)))
        let callback: LoopCallback = { raw, context in
            let state = Unmanaged<State>.fromOpaque(context!).takeUnretainedValue()
            let op = LoopOperation.pointer(raw)
            state.lock.lock()
            if state.generation % 2 == 1 && op.pointee.result == -ECANCELED { state.staleHits += 1 }
            state.generation += 1
            let even = state.generation % 2 == 0
            state.lock.unlock()
            op.pointee.time = TimeSpec(even ? Duration.seconds(10) : Duration.microseconds(200))
        }
        let context = Unmanaged.passUnretained(state).toOpaque()
        let canceller = Thread {
            while !state.stop.load(ordering: .relaxed) {
                // Under the lock the callback takes: the generation seen is still pending.
                state.lock.lock()
                if state.generation % 2 == 0 { state.waker!.cancel(state.op) }
                state.lock.unlock()
            }
        }
        try loop.submit(state.op, callback: callback, context: context)
        canceller.start()
        let start = ContinuousClock.now
        var hits = 0
        while ContinuousClock.now - start < .seconds(2) && hits == 0 {
            try loop.run(.once)
            if !state.op.pointee.isPending { try loop.submit(state.op, callback: callback, context: context) }
            state.lock.lock()
            hits = state.staleHits
            state.lock.unlock()
        }
        state.stop.store(true, ordering: .relaxed)
        // The canceller may still be inside a request: wait until it has seen the stop.
        while !canceller.isFinished { usleep(1000) }
        state.lock.lock()
        let generations = state.generation
        state.lock.unlock()
        loop.cancel(state.op)
        try loop.run()
        try loop.close()
        state.op.deinitialize(count: 1)
        state.op.deallocate()
        XCTAssertEqual(hits, 0, "a cancel meant for one submission cancelled the next (\(generations) submissions)")
        XCTAssertGreaterThan(generations, 10)
    }
}
