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
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian: libz-dev).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["libz-dev"])]),
        // FLAC / Ogg Vorbis / Opus / MP3 in and out (Debian: libsndfile1-dev).
        .systemLibrary(name: "CSndfile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
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
        // Audio files in and out through libsndfile (FLAC, Ogg Vorbis, Opus, MP3; WAV encoding): the CLIs' `--audio`,
        // calibration audio and the server's uploads and responses.
        .target(name: "AudioFiles", dependencies: ["MiniRuntime", "CSndfile"], swiftSettings: optimized),
        // `lfm-convert imatrix` runs the model (MiniRuntime) over calibration audio (AudioFiles' decoders).
        .executableTarget(
            name: "lfm-convert",
            dependencies: [
                "Formats", "Quantize", "MiniRuntime", "RuntimeTools", "AudioFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // `lfm-run serve`: OpenAI-compatible HTTP routes, the realtime WebSocket, VAD and the live page.
        .target(
            name: "LFMServer",
            dependencies: [
                "Formats", "MiniRuntime", "AudioFiles",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ]),
        .executableTarget(
            name: "lfm-run",
            dependencies: [
                "Formats", "MiniRuntime", "RuntimeTools", "LFMServer", "AudioFiles",
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
            name: "ServerTests",
            dependencies: ["Formats", "Quantize", "MiniRuntime", "LFMServer", "AudioFiles", "lfm-run", "TestSupport"]),
        .testTarget(
            name: "ConvertTests",
            dependencies: ["Formats", "Quantize", "MiniRuntime", "lfm-convert", "lfm-run", "TestSupport"]),
    ]
)
