import WeftContext
import XCTest

final class SmokeTests: XCTestCase {
    func testGenerator() {
        let fib = Generator<Int> { yield in
            var (a, b) = (0, 1)
            while true { try yield(a); (a, b) = (b, a + b) }
        }
        XCTAssertEqual(Array(fib.prefix(10)), [0, 1, 1, 2, 3, 5, 8, 13, 21, 34])
    }
}
