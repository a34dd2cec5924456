import Foundation
import Synchronization
import WeftLoop
import XCTest

final class LoopWakeupTests: LoopTestCase {
    func testWakeEndsABlockedRunOnce() throws {
        let waker = loop.waker
        let thread = Thread { waker.wake() }
        thread.start()
        try loop.run(.once)
    }

    /// Each round another thread publishes a value and wakes; the loop blocks in `run(.once)` until it
    /// sees the value. A lost wake would block forever (the test's timeout catches it).
    func testWakeStormNeverLosesAWake() throws {
        let rounds = 2000
        let published = Atomic<Int>(0)
        let acknowledged = Atomic<Int>(0)
        let waker = loop.waker
        let producer = Thread {
            for i in 1...rounds {
                published.store(i, ordering: .releasing)
                waker.wake()
                while acknowledged.load(ordering: .acquiring) < i { sched_yield() }
            }
        }
        producer.start()
        for i in 1...rounds {
            while published.load(ordering: .acquiring) < i { try loop.run(.once) }
            acknowledged.store(i, ordering: .releasing)
        }
    }

    func testManyThreadsWakingAtOnce() throws {
        let threads = 4
        let wakesPerThread = 5000
        let done = Atomic<Int>(0)
        let waker = loop.waker
        for _ in 0..<threads {
            Thread {
                for _ in 0..<wakesPerThread { waker.wake() }
                done.add(1, ordering: .releasing)
                waker.wake()
            }.start()
        }
        while done.load(ordering: .acquiring) < threads { try loop.run(.once) }
    }

    func testStopFromAnotherThread() throws {
        let op = make(.timer(after: .seconds(60)))
        let recorder = Recorder()
        try submit(op, recorder)
        let waker = loop.waker
        Thread { waker.stop() }.start()
        try loop.run()
        XCTAssertTrue(op.pointee.isPending)
        loop.cancel(op)
        try loop.run()
        XCTAssertEqual(recorder.results, [-ECANCELED])
    }
}
