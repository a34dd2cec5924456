// swift-tools-version:6.1
// Benchmarks: a package of its own so its dependencies never reach users. Run through Scripts/bench.
import Foundation
import PackageDescription

// The root package's identity is the name of the folder it was cloned into.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
let weft = root.lastPathComponent

let package = Package(
    name: "WeftBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // Allocation counting (malloc interposition), CPU pinning and the server-side allocation report.
        .target(name: "CWeftBenchSupport", path: "Sources/CWeftBenchSupport"),
        .executableTarget(
            name: "WeftBench",
            dependencies: [
                "CWeftBenchSupport",
                .product(name: "WeftContext", package: weft),
                .product(name: "WeftLoop", package: weft),
                .product(name: "WeftRuntime", package: weft),
                .product(name: "WeftSync", package: weft),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/WeftBench"
        )
    ],
    swiftLanguageModes: [.v6]
)
