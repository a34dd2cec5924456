// swift-tools-version:6.1
// Consumer fixture: a downstream package that depends only on the WeftLoop product. Scripts/test
// builds it and checks that nothing of the context layer (no assembly) was compiled.
import Foundation
import PackageDescription

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../..").standardized
let weft = root.lastPathComponent

let package = Package(
    name: "LoopOnly",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../../..")],
    targets: [
        .executableTarget(
            name: "LoopOnlyConsumer",
            dependencies: [.product(name: "WeftLoop", package: weft)],
            path: "Sources/LoopOnlyConsumer"
        )
    ],
    swiftLanguageModes: [.v6]
)
