// swift-tools-version:6.1
//
// Weft: green threads for Swift. One library product per layer; each layer depends only on the
// layers below it (Context → Loop → Runtime → Sync → IO → Weft). C targets are private to their layer.
import PackageDescription

let package = Package(
    name: "Weft",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "WeftContext", targets: ["WeftContext"]),
        .library(name: "WeftLoop", targets: ["WeftLoop"]),
        .library(name: "WeftRuntime", targets: ["WeftRuntime"]),
        .library(name: "WeftSync", targets: ["WeftSync"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0")
    ],
    targets: [
        // Layer 1: context switch, stacks, coroutines.
        .target(
            name: "CWeftContext",
            path: "Packages/Context/Sources/CWeftContext"
        ),
        .target(
            name: "WeftContext",
            dependencies: ["CWeftContext"],
            path: "Packages/Context/Sources/WeftContext"
        ),

        // Layer 2: the completion-based event loop (io_uring through liburing, epoll).
        .target(
            name: "CWeftLoop",
            path: "Packages/Loop/Sources/CWeftLoop",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        .target(
            name: "WeftLoop",
            dependencies: [
                "CWeftLoop",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Packages/Loop/Sources/WeftLoop"
        ),

        // Layer 3: fibers on executors (one loop per executor thread).
        .target(
            name: "CWeftRuntime",
            path: "Packages/Runtime/Sources/CWeftRuntime"
        ),
        .target(
            name: "WeftRuntime",
            dependencies: [
                "CWeftRuntime", "WeftContext", "WeftLoop",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Packages/Runtime/Sources/WeftRuntime"
        ),

        // Layer 4: fiber-aware locks, events, channels and select.
        .target(
            name: "WeftSync",
            dependencies: ["WeftRuntime"],
            path: "Packages/Sync/Sources/WeftSync"
        ),

        // Test-only: runs a scenario in a child process (this test binary re-executed), for tests of
        // what must end the process. No product depends on it.
        .target(name: "WeftTestSupport", path: "Tests/WeftTestSupport"),
        .testTarget(name: "WeftContextTests", dependencies: ["WeftContext", "WeftTestSupport"]),
        // Test-only: a fixed-signature shim over libcurl's variadic setters, for the test that drives
        // libcurl's multi interface from WeftLoop. No product depends on it.
        .target(
            name: "CWeftCurl",
            path: "Tests/CWeftCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        .testTarget(
            name: "WeftLoopTests",
            dependencies: [
                "WeftLoop", "CWeftCurl", "CWeftAllocationCounter", "WeftTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Test-only: counts the calling thread's heap allocations (interposes malloc), for the
        // zero-allocation checks of the fiber I/O path and the loop. No product depends on it.
        .target(
            name: "CWeftAllocationCounter",
            path: "Tests/CWeftAllocationCounter"
        ),
        .testTarget(
            name: "WeftRuntimeTests",
            dependencies: [
                "WeftRuntime", "WeftContext", "WeftLoop", "CWeftAllocationCounter", "WeftTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .testTarget(name: "WeftSyncTests", dependencies: ["WeftSync", "WeftRuntime"]),
    ],
    swiftLanguageModes: [.v6]
)
