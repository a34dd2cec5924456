import WeftContext
import XCTest

final class SmokeTests: XCTestCase {
    func testVersion() { XCTAssertEqual(weftContextABIVersion, 1) }
}
