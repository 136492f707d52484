// swift-tools-version:6.0
import PackageDescription

let optimized: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "LFMAudio",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Formats", targets: ["Formats"]),
        .library(name: "Quantize", targets: ["Quantize"]),
        .library(name: "MiniRuntime", targets: ["MiniRuntime"]),
        .executable(name: "lfm-convert", targets: ["lfm-convert"]),
        .executable(name: "lfm-run", targets: ["lfm-run"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian: libz-dev).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["libz-dev"])]),
        // Small C kernels: instructions Swift does not emit, and exact float conversions.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        .target(
            name: "Formats",
            dependencies: ["CZlib", "CKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: optimized),
        .target(name: "Quantize", dependencies: ["Formats", "CKernels"], swiftSettings: optimized),
        .target(name: "MiniRuntime", dependencies: ["Formats", "CKernels"], swiftSettings: optimized),
        // Parity against reference dumps, benchmarks and logit comparison: tools over the runtime, not its API.
        .target(name: "RuntimeTools", dependencies: ["Formats", "MiniRuntime", "CKernels"], swiftSettings: optimized),
        .executableTarget(
            name: "lfm-convert",
            dependencies: ["Formats", "Quantize", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "lfm-run",
            dependencies: [
                "Formats", "MiniRuntime", "RuntimeTools",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimized),
        .target(
            name: "TestSupport", dependencies: ["Formats", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/TestSupport"),
        // Test fixtures only: regenerates a fixture's detokenizer weights from its recipe (scripts/demo.sh uses it).
        .executableTarget(name: "fixture-weights", dependencies: ["TestSupport"], path: "Tests/FixtureTool"),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Quantize", "TestSupport"]),
        .testTarget(name: "QuantizeTests", dependencies: ["Formats", "Quantize", "TestSupport"]),
        .testTarget(
            name: "RuntimeTests",
            dependencies: ["Formats", "Quantize", "MiniRuntime", "RuntimeTools", "CKernels", "TestSupport"]),
        .testTarget(
            name: "ConvertTests",
            dependencies: ["Formats", "Quantize", "MiniRuntime", "lfm-convert", "lfm-run", "TestSupport"]),
    ]
)
