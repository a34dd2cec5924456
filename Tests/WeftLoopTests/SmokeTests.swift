import WeftLoop
import XCTest

final class SmokeTests: XCTestCase {
    func testVersion() { XCTAssertEqual(weftLoopABIVersion, 1) }
}
