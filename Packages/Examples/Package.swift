// swift-tools-version:6.1
// Examples: a package of its own so its dependencies never reach users.
import Foundation
import PackageDescription

// The root package's identity is the name of the folder it was cloned into.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
let weft = root.lastPathComponent

let package = Package(
    name: "WeftExamples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // What the example servers share (a loopback listener).
        .target(
            name: "ExampleSupport",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/ExampleSupport"
        ),
        .executableTarget(
            name: "generators",
            dependencies: [.product(name: "WeftContext", package: weft)],
            path: "Sources/generators"
        ),
        .executableTarget(
            name: "loop-echo-server",
            dependencies: [
                "ExampleSupport",
                .product(name: "WeftLoop", package: weft),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/loop-echo-server"
        ),
        .executableTarget(
            name: "echo-server",
            dependencies: [
                "ExampleSupport",
                .product(name: "WeftRuntime", package: weft),
                .product(name: "WeftLoop", package: weft),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/echo-server"
        ),
        .executableTarget(
            name: "multi-executor",
            dependencies: [.product(name: "WeftRuntime", package: weft)],
            path: "Sources/multi-executor"
        ),
        // libcurl driven by WeftLoop alone; the shim and the driver are the WeftLoop tests' own
        // (Sources/CWeftCurl and loop-curl/CurlDriver.swift link to them).
        .target(
            name: "CWeftCurl",
            path: "Sources/CWeftCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        .executableTarget(
            name: "loop-curl",
            dependencies: [
                "CWeftCurl",
                .product(name: "WeftLoop", package: weft),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/loop-curl"
        ),
        // WeftSync: the three examples of Docs/Sync.md.
        .executableTarget(
            name: "sync-producer-consumer",
            dependencies: [.product(name: "WeftRuntime", package: weft), .product(name: "WeftSync", package: weft)],
            path: "Sources/sync-producer-consumer"
        ),
        .executableTarget(
            name: "sync-worker-pool",
            dependencies: [.product(name: "WeftRuntime", package: weft), .product(name: "WeftSync", package: weft)],
            path: "Sources/sync-worker-pool"
        ),
        .executableTarget(
            name: "sync-select-timeout",
            dependencies: [.product(name: "WeftRuntime", package: weft), .product(name: "WeftSync", package: weft)],
            path: "Sources/sync-select-timeout"
        ),
    ],
    swiftLanguageModes: [.v6]
)
